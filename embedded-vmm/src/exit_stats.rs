//! Exit statistics: how many exits of each kind a VM took and how many TSC cycles the VMM spent
//! handling them (from #VMEXIT to the next VMRUN).

use crate::svm::vmcb::ExitReason;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCount {
    pub count: u64,
    pub cycles: u64,
}

/// Counted on every exit, so kept in flat tables (a map keyed by name cost some 250
/// instructions an exit in string comparisons).
#[derive(Debug)]
pub struct ExitStats {
    by_reason: [ExitCount; ExitReason::NAMES.len()],
    /// Port I/O exits by port, to see which device costs what: the legacy ports (where the
    /// devices are) in a table, the others in a map.
    legacy_ports: [u32; LEGACY_PORTS],
    other_ports: BTreeMap<u16, u64>,
}

/// The ISA range, 0 to 0x3ff.
const LEGACY_PORTS: usize = 0x400;

impl Default for ExitStats {
    fn default() -> Self {
        ExitStats {
            by_reason: [ExitCount::default(); ExitReason::NAMES.len()],
            legacy_ports: [0; LEGACY_PORTS],
            other_ports: BTreeMap::new(),
        }
    }
}

impl ExitStats {
    pub fn record(&mut self, exit_code: u64, cycles: u64) {
        let e = &mut self.by_reason[ExitReason::of(exit_code) as usize];
        e.count += 1;
        e.cycles += cycles;
    }

    pub fn record_port(&mut self, port: u16) {
        match self.legacy_ports.get_mut(usize::from(port)) {
            Some(count) => *count = count.saturating_add(1),
            None => *self.other_ports.entry(port).or_default() += 1,
        }
    }

    /// The `n` ports with the most exits, most first.
    pub fn busiest_ports(&self, n: usize) -> Vec<(u16, u64)> {
        let legacy = (0u16..).zip(&self.legacy_ports).map(|(port, &count)| (port, u64::from(count)));
        let mut ports: Vec<(u16, u64)> =
            legacy.chain(self.other_ports.iter().map(|(&p, &c)| (p, c))).filter(|&(_, c)| c > 0).collect();
        ports.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ports.truncate(n);
        ports
    }

    pub fn total(&self) -> u64 {
        self.by_reason.iter().map(|e| e.count).sum()
    }

    /// (reason, count, cycles) of the reasons seen, by reason name.
    pub fn rows(&self) -> Vec<(&'static str, ExitCount)> {
        ExitReason::NAMES.iter().zip(&self.by_reason).filter(|(_, e)| e.count > 0).map(|(k, v)| (*k, *v)).collect()
    }

    pub fn merge(&mut self, other: &ExitStats) {
        for (mine, theirs) in self.by_reason.iter_mut().zip(&other.by_reason) {
            mine.count += theirs.count;
            mine.cycles += theirs.cycles;
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

    #[test]
    fn busiest_ports_first_legacy_or_not() {
        let mut s = ExitStats::default();
        for port in [0x3f8, 0x3f8, 0x3f8, 0xc000, 0xc000, 0x80, 0xffff] {
            s.record_port(port);
        }
        assert_eq!(s.busiest_ports(3), [(0x3f8, 3), (0xc000, 2), (0x80, 1)]);
        assert_eq!(s.busiest_ports(10).len(), 4);
    }
}
