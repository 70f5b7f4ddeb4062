//! Exit statistics: how many exits of each kind a VM took and how many TSC cycles the VMM spent
//! handling them (from #VMEXIT to the next VMRUN).

use crate::svm::vmcb::exit_name;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCount {
    pub count: u64,
    pub cycles: u64,
}

#[derive(Debug, Default)]
pub struct ExitStats {
    by_reason: BTreeMap<&'static str, ExitCount>,
    /// Port I/O exits by port, to see which device costs what.
    by_port: BTreeMap<u16, u64>,
}

impl ExitStats {
    pub fn record(&mut self, exit_code: u64, cycles: u64) {
        let e = self.by_reason.entry(exit_name(exit_code)).or_default();
        e.count += 1;
        e.cycles += cycles;
    }

    pub fn record_port(&mut self, port: u16) {
        *self.by_port.entry(port).or_default() += 1;
    }

    /// The `n` ports with the most exits, most first.
    pub fn busiest_ports(&self, n: usize) -> Vec<(u16, u64)> {
        let mut ports: Vec<(u16, u64)> = self.by_port.iter().map(|(p, c)| (*p, *c)).collect();
        ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ports.truncate(n);
        ports
    }

    pub fn total(&self) -> u64 {
        self.by_reason.values().map(|e| e.count).sum()
    }

    /// (reason, count, cycles), by reason name.
    pub fn rows(&self) -> Vec<(&'static str, ExitCount)> {
        self.by_reason.iter().map(|(k, v)| (*k, *v)).collect()
    }

    pub fn merge(&mut self, other: &ExitStats) {
        for (k, v) in &other.by_reason {
            let e = self.by_reason.entry(k).or_default();
            e.count += v.count;
            e.cycles += v.cycles;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::vmcb::exit;

    #[test]
    fn counts_by_reason() {
        let mut s = ExitStats::default();
        s.record(exit::IOIO, 100);
        s.record(exit::IOIO, 50);
        s.record(exit::HLT, 7);
        assert_eq!(s.total(), 3);
        assert_eq!(
            s.rows(),
            [("hlt", ExitCount { count: 1, cycles: 7 }), ("ioio", ExitCount { count: 2, cycles: 150 })]
        );
    }
}
