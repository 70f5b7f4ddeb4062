//! The paravirtual clock of the KVM guest interface (Linux's `Documentation/virt/kvm/x86/msr.rst`
//! and `cpuid.rst`), which the VMM offers besides its own CPUID leaf: a guest that finds the
//! "KVMKVMKVM" signature at 0x4000_0100 and the `CLOCKSOURCE2` feature writes the guest-physical
//! address of a per-vCPU time record to MSR 0x4b56_4d01 and of a wall-clock record to
//! 0x4b56_4d00, and reads its TSC rate from them instead of calibrating it against the PIT
//! (which, emulated, costs Linux some 17,000 exits a boot). Only the records' contents are
//! computed here; the VMM writes them into guest memory.

/// The hypervisor leaf of the KVM interface and its feature leaf.
pub const KVM_LEAF: u32 = 0x4000_0100;
pub const KVM_FEATURES_LEAF: u32 = 0x4000_0101;
/// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX.
pub const KVM_SIGNATURE: [u32; 3] =
    [u32::from_le_bytes(*b"KVMK"), u32::from_le_bytes(*b"VMKV"), u32::from_le_bytes(*b"M\0\0\0")];
/// The features offered: port 0x80 needs no delay, the clock MSRs at 0x4b56_4d0x, and the
/// promise that the TSC is stable across vCPUs (one host TSC, one offset).
pub const KVM_FEATURES: u32 = FEATURE_NOP_IO_DELAY | FEATURE_CLOCKSOURCE2 | FEATURE_CLOCKSOURCE_STABLE;
const FEATURE_NOP_IO_DELAY: u32 = 1 << 1;
const FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
const FEATURE_CLOCKSOURCE_STABLE: u32 = 1 << 24;

/// The MSRs: the wall clock's record, and this vCPU's time record (bit 0: enabled).
pub const MSR_WALL_CLOCK: u32 = 0x4b56_4d00;
pub const MSR_SYSTEM_TIME: u32 = 0x4b56_4d01;

/// `flags` of the time record: the TSC is synchronised across vCPUs.
const TSC_STABLE: u8 = 1;
/// An even version: the record is complete (the guest retries while it is odd or changes).
const VERSION: u32 = 2;

/// The (multiplier, shift) that turn TSC ticks at `tsc_hz` into nanoseconds the way the guest
/// computes them: `ns = ((ticks << shift, or >> -shift) * multiplier) >> 32`, with the
/// multiplier in [2^31, 2^32) for the most precision.
pub fn time_scale(tsc_hz: u64) -> (u32, i8) {
    const NS: u128 = 1_000_000_000;
    let hz = u128::from(tsc_hz.max(1));
    // ns per tick = NS / hz = multiplier / 2^32 * 2^shift: pick the shift that leaves the
    // multiplier's top bit set.
    let mut shift: i32 = 0;
    loop {
        let multiplier = if shift >= 0 { (NS << 32) / (hz << shift) } else { (NS << (32 - shift)) / hz };
        if multiplier >= 1 << 32 {
            shift += 1;
        } else if multiplier < 1 << 31 && shift > -32 {
            shift -= 1;
        } else {
            return (multiplier as u32, shift as i8);
        }
    }
}

/// Nanoseconds for `ticks`, as the guest computes them from [`time_scale`].
pub fn scale(ticks: u64, (multiplier, shift): (u32, i8)) -> u64 {
    let shifted = if shift >= 0 { ticks << shift } else { ticks >> -shift };
    ((u128::from(shifted) * u128::from(multiplier)) >> 32) as u64
}

/// A vCPU's time record (`struct pvclock_vcpu_time_info`, 32 bytes): at guest TSC
/// `tsc_timestamp` the guest's system time is `system_time_ns`; it advances with the TSC at
/// `tsc_hz`.
pub fn time_record(tsc_timestamp: u64, system_time_ns: u64, tsc_hz: u64) -> [u8; 32] {
    let (multiplier, shift) = time_scale(tsc_hz);
    let mut record = [0u8; 32];
    record[0..4].copy_from_slice(&VERSION.to_le_bytes());
    record[8..16].copy_from_slice(&tsc_timestamp.to_le_bytes());
    record[16..24].copy_from_slice(&system_time_ns.to_le_bytes());
    record[24..28].copy_from_slice(&multiplier.to_le_bytes());
    record[28] = shift as u8;
    record[29] = TSC_STABLE;
    record
}

/// The wall-clock record (`struct pvclock_wall_clock`, 12 bytes): the Unix time at which the
/// guest's system time was 0.
pub fn wall_clock_record(unix_ns_at_zero: u64) -> [u8; 12] {
    let seconds = (unix_ns_at_zero / 1_000_000_000) as u32;
    let nanoseconds = (unix_ns_at_zero % 1_000_000_000) as u32;
    let mut record = [0u8; 12];
    record[0..4].copy_from_slice(&VERSION.to_le_bytes());
    record[4..8].copy_from_slice(&seconds.to_le_bytes());
    record[8..12].copy_from_slice(&nanoseconds.to_le_bytes());
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_turns_ticks_into_nanoseconds() {
        // QEMU's icount TSC (1 GHz), a calibrated rate, a 2.1 GHz and a 100 MHz TSC.
        for hz in [1_000_000_000u64, 999_929_200, 2_100_000_000, 100_000_000, 4_000_000_000] {
            let (multiplier, shift) = time_scale(hz);
            assert!(multiplier >= 1 << 31, "{hz}: multiplier {multiplier:#x} loses precision");
            for seconds in [1u64, 60, 86_400] {
                let ticks = hz * seconds;
                let ns = scale(ticks, (multiplier, shift));
                let exact = seconds * 1_000_000_000;
                // Within 1 ppm (the multiplier has 31 significant bits).
                assert!(ns.abs_diff(exact) <= exact / 1_000_000, "{hz} Hz, {seconds} s: {ns} ns");
            }
        }
    }

    #[test]
    fn records_have_the_layout_linux_reads() {
        let record = time_record(0x1122_3344_5566_7788, 42, 1_000_000_000);
        assert_eq!(u32::from_le_bytes(record[0..4].try_into().unwrap()), 2, "even version");
        assert_eq!(u64::from_le_bytes(record[8..16].try_into().unwrap()), 0x1122_3344_5566_7788);
        assert_eq!(u64::from_le_bytes(record[16..24].try_into().unwrap()), 42);
        let multiplier = u32::from_le_bytes(record[24..28].try_into().unwrap());
        assert_eq!(scale(1_000_000, (multiplier, record[28] as i8)), 1_000_000);
        assert_eq!(record[29], TSC_STABLE);
        let wall = wall_clock_record(1_700_000_000_123_456_789);
        assert_eq!(u32::from_le_bytes(wall[4..8].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_le_bytes(wall[8..12].try_into().unwrap()), 123_456_789);
    }

    #[test]
    fn the_signature_reads_as_kvms() {
        let bytes: Vec<u8> = KVM_SIGNATURE.iter().flat_map(|word| word.to_le_bytes()).collect();
        assert_eq!(&bytes, b"KVMKVMKVM\0\0\0");
    }
}
