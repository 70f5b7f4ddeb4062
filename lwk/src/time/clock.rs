//! Time: the TSC as the clock (frequency from CPUID, or measured against the 8254 PIT), the
//! local APIC timer's rate measured in the same window, and one-shot sleeps. There is no periodic
//! tick: a CPU takes a timer interrupt only when something on it asked for one.

use crate::hal::cpu::{self, Features};
use crate::{hal::cmos, hal::local_apic, hal::per_cpu, hal::pit};
use core::sync::atomic::{AtomicU64, Ordering};

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_MS: u64 = 10;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// Records the TSC at boot; uptime counts from here.
pub fn mark_boot() {
    BOOT_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// How the TSC frequency was found.
#[derive(Clone, Copy, Debug)]
pub enum TscSource {
    Cpuid,
    Pit,
}

impl TscSource {
    pub fn name(self) -> &'static str {
        match self {
            TscSource::Cpuid => "cpuid",
            TscSource::Pit => "pit",
        }
    }
}

/// Measures the TSC (unless CPUID states it) and the APIC timer against the PIT. The boot CPU's
/// local APIC must be enabled.
pub fn calibrate(features: &Features) -> TscSource {
    // The PIT's channel 2 counts CALIBRATION_MS; the TSC and the APIC timer run meanwhile.
    let latch = (PIT_HZ * CALIBRATION_MS / 1000) as u16;
    let ((apic0, tsc0), (tsc1, apic1)) = pit::time_channel2(
        latch,
        || {
            local_apic::start_free_running();
            (local_apic::timer_current(), cpu::rdtsc())
        },
        || (cpu::rdtsc(), local_apic::timer_current()),
    );
    local_apic::stop_timer();
    let apic_ticks = apic0.wrapping_sub(apic1);
    let per_second = |delta: u64| delta * 1000 / CALIBRATION_MS;
    APIC_TIMER_HZ.store(per_second(apic_ticks as u64).max(1), Ordering::Relaxed);
    match features.tsc_hz {
        Some(hz) => {
            TSC_HZ.store(hz, Ordering::Relaxed);
            TscSource::Cpuid
        }
        None => {
            TSC_HZ.store(per_second(tsc1 - tsc0).max(1), Ordering::Relaxed);
            TscSource::Pit
        }
    }
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn apic_timer_hz() -> u64 {
    APIC_TIMER_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since boot (0 until the TSC is calibrated).
pub fn uptime_ns() -> u64 {
    match tsc_hz() {
        0 => 0,
        hz => {
            ((cpu::rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed))) as u128 * 1_000_000_000 / hz as u128) as u64
        }
    }
}

/// Busy-waits (for device timing such as the INIT-SIPI delays).
pub fn spin_ns(ns: u64) {
    let end = cpu::rdtsc() + (ns as u128 * tsc_hz() as u128 / 1_000_000_000) as u64;
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Local APIC timer ticks for `ns` nanoseconds (at least 1, at most what the counter holds).
pub fn apic_ticks(ns: u64) -> u32 {
    (ns as u128 * apic_timer_hz() as u128 / 1_000_000_000).clamp(1, u32::MAX as u128) as u32
}

pub use crate::hal::per_cpu::{TIMER_STOPPED, TIMER_UNKNOWN};

/// Arms this CPU's timer to fire at uptime `deadline` (at least 1 µs after `now()`, which is
/// read only when the timer is programmed; a deadline beyond the counter's reach fires early,
/// and the caller arms it again), or stops it. Asking for what is armed already changes
/// nothing. (The deadline is recorded before the timer is programmed: an interrupt between the
/// two marks it stopped, which only costs a re-arm.)
pub fn arm_timer_at(deadline: Option<u64>, now: impl FnOnce() -> u64) {
    let armed = &per_cpu::this_cpu().timer_deadline;
    let wanted = deadline.unwrap_or(TIMER_STOPPED);
    if armed.load(Ordering::Acquire) == wanted {
        return;
    }
    armed.store(wanted, Ordering::Release);
    match deadline {
        Some(t) => local_apic::start_timer(apic_ticks(t.saturating_sub(now()).max(1000))),
        None => local_apic::stop_timer(),
    }
}

/// Halts this CPU for `ns` nanoseconds with one timer interrupt at the end. Other interrupts
/// (cross-CPU calls, console input) are served meanwhile.
pub fn sleep_ns(ns: u64) {
    let me = per_cpu::this_cpu();
    let ticks = apic_ticks(ns);
    cpu::without_interrupts(|| {
        me.timer_fired.store(false, Ordering::Relaxed);
        me.timer_deadline.store(TIMER_UNKNOWN, Ordering::Release);
        local_apic::start_timer(ticks);
        while !me.timer_fired.load(Ordering::Acquire) {
            me.halts.fetch_add(1, Ordering::Relaxed);
            cpu::wait_for_interrupt();
        }
        local_apic::stop_timer();
        me.timer_deadline.store(TIMER_STOPPED, Ordering::Release);
    });
}

/// Unix time at boot, from the CMOS real-time clock (0 if it cannot be read).
static BOOT_UNIX_NS: AtomicU64 = AtomicU64::new(0);

/// Reads the CMOS RTC (UTC, as QEMU and most firmware keep it) once at boot.
pub fn read_real_time_clock() {
    let read = cmos::read;
    // Wait out an update in progress, then read until two reads agree.
    let snapshot = || {
        let mut spins = 0;
        while read(0x0a) & 0x80 != 0 && spins < 1_000_000 {
            spins += 1;
        }
        [read(0x00), read(0x02), read(0x04), read(0x07), read(0x08), read(0x09), read(0x32)]
    };
    let mut regs = snapshot();
    for _ in 0..5 {
        let again = snapshot();
        if again == regs {
            break;
        }
        regs = again;
    }
    let status_b = read(0x0b);
    let binary = status_b & 0x04 != 0;
    let decode = |v: u8| if binary { v as u32 } else { (v & 0x0f) as u32 + (v >> 4) as u32 * 10 };
    let [sec, min, hour_raw, day, month, year, century] = regs;
    let mut hour = decode(hour_raw & 0x7f);
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12; // 12-hour mode, PM
    }
    let century = match decode(century) {
        19..=99 => decode(century),
        _ => 20,
    };
    let year = century * 100 + decode(year);
    match crate::time::calendar::unix_seconds(year, decode(month), decode(day), hour, decode(min), decode(sec)) {
        Some(s) => BOOT_UNIX_NS.store(s * 1_000_000_000 - uptime_ns().min(s * 1_000_000_000), Ordering::Relaxed),
        None => log::warn!(target: "clock", "the real-time clock holds an impossible date; wall time starts at 1970"),
    }
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    realtime_ns_at(uptime_ns())
}

/// Unix time at uptime `uptime_ns`.
pub fn realtime_ns_at(uptime_ns: u64) -> u64 {
    BOOT_UNIX_NS.load(Ordering::Relaxed) + uptime_ns
}
