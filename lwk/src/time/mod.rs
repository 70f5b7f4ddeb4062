//! Layer 3: the clock (TSC calibration, uptime, the RTC's date) and one-shot timers.

#[cfg(target_os = "none")]
pub(crate) mod clock;
