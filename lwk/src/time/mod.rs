//! Layer 3: the clock (TSC calibration, uptime, the RTC's date) and one-shot timers.

pub mod calendar;
#[cfg(target_os = "none")]
pub(crate) mod clock;
