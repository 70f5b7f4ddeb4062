//! Contents of the kernel's synthetic files (`/proc/cpuinfo`, `/proc/meminfo`,
//! `/proc/self/maps`, `/sys/devices/system/cpu/online`), generated when a process opens them.

use crate::fs::ram_fs::SyntheticKind;
use crate::hal::per_cpu;
use crate::task::process::Process;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::x86_64::__cpuid_count;
use core::fmt::Write;
use core::sync::atomic::Ordering;

pub fn generate(kind: SyntheticKind, process: &Process) -> Vec<u8> {
    let mut s = String::new();
    match kind {
        SyntheticKind::CpuInfo => cpuinfo(&mut s),
        SyntheticKind::MemInfo => {
            let total = process.job.memory.bytes >> 10;
            let free = process.job.memory.free_bytes() >> 10;
            let _ = write!(
                s,
                "MemTotal:       {total:8} kB\nMemFree:        {free:8} kB\nMemAvailable:   {free:8} kB\n\
                 Buffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\n\
                 SwapFree:              0 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n"
            );
        }
        SyntheticKind::CpuOnline => {
            let online: Vec<usize> =
                per_cpu::cpus().filter(|c| c.online.load(Ordering::Relaxed)).map(|c| c.index).collect();
            write_ranges(&mut s, &online);
            s.push('\n');
        }
        SyntheticKind::SelfMaps => s = process.space.lock().areas.maps_text(),
        // A link, not a file: resolved by the file system.
        SyntheticKind::SelfExe => {}
    }
    s.into_bytes()
}

/// `0-3,5` form of a sorted list.
fn write_ranges(s: &mut String, list: &[usize]) {
    let mut i = 0;
    while i < list.len() {
        let mut j = i;
        while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
            j += 1;
        }
        if !s.is_empty() {
            s.push(',');
        }
        let _ = if i == j { write!(s, "{}", list[i]) } else { write!(s, "{}-{}", list[i], list[j]) };
        i = j + 1;
    }
}

fn cpuinfo(s: &mut String) {
    let mut brand = [0u8; 48];
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let r = __cpuid_count(leaf, 0);
        for (j, reg) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
            brand[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&reg.to_le_bytes());
        }
    }
    let brand = core::str::from_utf8(&brand).unwrap_or("").trim_matches(char::from(0)).trim();
    let l1 = __cpuid_count(1, 0);
    let mhz = crate::time::clock::tsc_hz() / 1_000_000;
    let flags = cpu_flags(l1.edx, l1.ecx);
    let cpus: Vec<_> = per_cpu::cpus().collect();
    for c in cpus.iter().filter(|c| c.online.load(Ordering::Relaxed)) {
        let _ = write!(
            s,
            "processor\t: {}\nvendor_id\t: {}\ncpu family\t: {}\nmodel\t\t: {}\nmodel name\t: {brand}\n\
             stepping\t: {}\ncpu MHz\t\t: {mhz}.000\nphysical id\t: 0\nsiblings\t: {n}\ncore id\t\t: {}\n\
             cpu cores\t: {n}\napicid\t\t: {}\nflags\t\t: {flags}\n\n",
            c.index,
            vendor(),
            (l1.eax >> 8) & 0xf,
            (l1.eax >> 4) & 0xf,
            l1.eax & 0xf,
            c.index,
            c.apic_id,
            n = cpus.len(),
        );
    }
}

fn vendor() -> String {
    let r = __cpuid_count(0, 0);
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..].copy_from_slice(&r.ecx.to_le_bytes());
    String::from_utf8_lossy(&v).into_owned()
}

fn cpu_flags(edx: u32, ecx: u32) -> String {
    const EDX: [(u32, &str); 8] =
        [(0, "fpu"), (4, "tsc"), (5, "msr"), (9, "apic"), (15, "cmov"), (23, "mmx"), (25, "sse"), (26, "sse2")];
    const ECX: [(u32, &str); 7] =
        [(0, "pni"), (9, "ssse3"), (19, "sse4_1"), (20, "sse4_2"), (23, "popcnt"), (26, "xsave"), (28, "avx")];
    let mut out = String::new();
    let present =
        EDX.iter().filter(|(b, _)| edx & (1 << b) != 0).chain(ECX.iter().filter(|(b, _)| ecx & (1 << b) != 0));
    for (_, name) in present {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(name);
    }
    out
}
