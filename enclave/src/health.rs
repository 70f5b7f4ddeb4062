//! Health monitoring: heartbeats with deadlines, and progress of a job's threads.
//!
//! No clock is read here: every call takes the time `now` in nanoseconds (any monotonic clock,
//! e.g. the LWK's uptime). A VM is watched by heartbeats (a tiny guest helper issues a heartbeat
//! hypercall); it must beat within `grace` of being watched and then at least every `period`.
//! A native job is watched by progress: the LWK samples the CPU time of its threads, and a job
//! whose threads gained no CPU time over `window` is hung (a job that sleeps longer than its
//! window on purpose should not be watched). A paused enclave has no deadline.
//!
//! [`Monitor::check`] reports each hang once (and [`Monitor::beat`] / [`Monitor::sample`] the
//! recovery); [`Monitor::next_deadline`] tells the control core when to look next, so it can
//! sleep on a one-shot timer instead of polling.

use crate::values::shorten;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

const NS_PER: [(&str, u64); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Why a duration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Not digits followed by a unit (the text, shortened).
    Syntax(String),
    /// More than 2^64 - 1 nanoseconds.
    TooLarge(String),
    Zero,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(t) => write!(f, "`{t}` is not a duration (a number and a unit: ns, us, ms, s, m, h; e.g. 5s)"),
            Self::TooLarge(t) => write!(f, "duration `{t}` is too long"),
            Self::Zero => write!(f, "a duration must be more than zero (leave the key out to turn it off)"),
        }
    }
}

/// `5s`, `500ms`, `2m`, `100us`, `1h`, `250ns`: in nanoseconds, never zero.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let text = text.trim();
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = (text.get(..digits_end).unwrap_or(""), text.get(digits_end..).unwrap_or(""));
    let scale = NS_PER.iter().find(|(u, _)| *u == unit).map(|(_, n)| *n);
    let (Some(scale), false) = (scale, digits.is_empty()) else {
        return Err(DurationError::Syntax(shorten(text)));
    };
    let n: u64 = digits.parse().map_err(|_| DurationError::TooLarge(shorten(text)))?;
    let ns = n.checked_mul(scale).ok_or_else(|| DurationError::TooLarge(shorten(text)))?;
    if ns == 0 {
        return Err(DurationError::Zero);
    }
    Ok(ns)
}

/// Nanoseconds printed in the largest unit that divides them: `5s`, `1500ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub u64);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) =
            NS_PER.iter().rev().find(|(_, n)| self.0 != 0 && self.0.is_multiple_of(*n)).copied().unwrap_or(("ns", 1));
        write!(f, "{}{unit}", self.0 / scale)
    }
}

/// How a heartbeat-watched enclave must beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Longest time between two beats, in ns.
    pub period_ns: u64,
    /// Longest time to the first beat after being watched (boot of the guest), in ns.
    pub grace_ns: u64,
}

/// One thread's CPU time, as the LWK samples it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThreadSample {
    pub tid: u64,
    pub cpu_ns: u64,
}

/// Why an enclave is hung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    MissedHeartbeat,
    NoProgress,
}

impl Cause {
    pub const fn name(self) -> &'static str {
        match self {
            Self::MissedHeartbeat => "missed_heartbeat",
            Self::NoProgress => "no_progress",
        }
    }
}

/// What the monitor reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// Newly past its deadline: the control plane applies [`crate::Event::Miss`].
    Hung { enclave: String, cause: Cause, silent_ns: u64 },
    /// A hung enclave beat or progressed again: the control plane applies
    /// [`crate::Event::Heartbeat`].
    Recovered { enclave: String },
}

/// What a beat or a sample found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A beat, or progress: the deadline moved.
    Alive,
    /// A sample without progress: the deadline stays.
    NoProgress,
    /// It was hung and is alive again.
    Recovered,
}

/// Why the monitor refused a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthError {
    NotWatched(String),
    /// A heartbeat from an enclave watched by progress, or a sample from one watched by
    /// heartbeats.
    WrongWatch {
        enclave: String,
        watched_by: &'static str,
    },
    ZeroDeadline(String),
}

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotWatched(e) => write!(f, "enclave `{}` is not watched", shorten(e)),
            Self::WrongWatch { enclave, watched_by } => write!(f, "enclave `{enclave}` is watched by {watched_by}"),
            Self::ZeroDeadline(e) => write!(f, "enclave `{e}`: a deadline must be more than zero"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Watch {
    Heartbeat { config: Heartbeat, beaten: bool },
    Progress { window_ns: u64, threads: Vec<ThreadSample> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    enclave: String,
    watch: Watch,
    /// The last beat or progress, or when watching started or resumed.
    last_ns: u64,
    hung: bool,
    paused: bool,
}

impl Entry {
    /// The time after which the enclave is hung (`None` while paused).
    fn deadline(&self) -> Option<u64> {
        let allowed = match &self.watch {
            Watch::Heartbeat { config, beaten: true } => config.period_ns,
            Watch::Heartbeat { config, beaten: false } => config.grace_ns.max(config.period_ns),
            Watch::Progress { window_ns, .. } => *window_ns,
        };
        (!self.paused).then(|| self.last_ns.saturating_add(allowed))
    }

    fn alive(&mut self, now: u64) -> Seen {
        self.last_ns = self.last_ns.max(now);
        if core::mem::take(&mut self.hung) { Seen::Recovered } else { Seen::Alive }
    }
}

/// The health of every watched enclave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Monitor {
    entries: Vec<Entry>,
}

impl Monitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches `enclave` by heartbeats from `now` (replacing any earlier watch, e.g. on relaunch).
    pub fn watch_heartbeat(&mut self, enclave: &str, config: Heartbeat, now: u64) -> Result<(), HealthError> {
        if config.period_ns == 0 {
            return Err(HealthError::ZeroDeadline(enclave.to_string()));
        }
        self.insert(enclave, Watch::Heartbeat { config, beaten: false }, now);
        Ok(())
    }

    /// Watches `enclave` by the progress of its threads over `window_ns`, from `now`.
    pub fn watch_progress(&mut self, enclave: &str, window_ns: u64, now: u64) -> Result<(), HealthError> {
        if window_ns == 0 {
            return Err(HealthError::ZeroDeadline(enclave.to_string()));
        }
        self.insert(enclave, Watch::Progress { window_ns, threads: Vec::new() }, now);
        Ok(())
    }

    /// Stops watching (the enclave ended); `true` if it was watched.
    pub fn unwatch(&mut self, enclave: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.enclave != enclave);
        before != self.entries.len()
    }

    pub fn is_watched(&self, enclave: &str) -> bool {
        self.entries.iter().any(|e| e.enclave == enclave)
    }

    /// A heartbeat from `enclave` at `now`.
    pub fn beat(&mut self, enclave: &str, now: u64) -> Result<Seen, HealthError> {
        let entry = self.entry(enclave)?;
        match &mut entry.watch {
            Watch::Heartbeat { beaten, .. } => *beaten = true,
            Watch::Progress { .. } => {
                return Err(HealthError::WrongWatch { enclave: enclave.to_string(), watched_by: "progress" });
            }
        }
        Ok(entry.alive(now))
    }

    /// The CPU time of `enclave`'s threads at `now`. Progress: a thread gained CPU time since the
    /// last sample, or a thread is new. The first sample sets the baseline (its threads are new).
    pub fn sample(&mut self, enclave: &str, now: u64, threads: &[ThreadSample]) -> Result<Seen, HealthError> {
        let entry = self.entry(enclave)?;
        let Watch::Progress { threads: previous, .. } = &mut entry.watch else {
            return Err(HealthError::WrongWatch { enclave: enclave.to_string(), watched_by: "heartbeats" });
        };
        let mut current = threads.to_vec();
        current.sort_unstable_by(|a, b| a.tid.cmp(&b.tid).then(b.cpu_ns.cmp(&a.cpu_ns)));
        current.dedup_by_key(|t| t.tid);
        let progressed = current.iter().any(|t| match previous.binary_search_by_key(&t.tid, |p| p.tid) {
            Ok(i) => previous.get(i).is_some_and(|p| t.cpu_ns > p.cpu_ns),
            Err(_) => true,
        });
        *previous = current;
        Ok(if progressed { entry.alive(now) } else { Seen::NoProgress })
    }

    /// No deadline while paused.
    pub fn pause(&mut self, enclave: &str) -> Result<(), HealthError> {
        self.entry(enclave)?.paused = true;
        Ok(())
    }

    /// Resumed at `now`: a full period (or window) from now.
    pub fn resume(&mut self, enclave: &str, now: u64) -> Result<(), HealthError> {
        let entry = self.entry(enclave)?;
        entry.paused = false;
        entry.last_ns = entry.last_ns.max(now);
        Ok(())
    }

    /// When `enclave` becomes hung without a beat or progress (`None`: not watched, or paused).
    pub fn deadline(&self, enclave: &str) -> Option<u64> {
        self.entries.iter().find(|e| e.enclave == enclave).and_then(Entry::deadline)
    }

    /// Every watched enclave past its deadline at `now` (hung ones included), in watch order.
    pub fn overdue(&self, now: u64) -> Vec<String> {
        self.entries.iter().filter(|e| e.deadline().is_some_and(|d| now > d)).map(|e| e.enclave.clone()).collect()
    }

    /// Marks the enclaves newly past their deadline as hung and reports each once.
    pub fn check(&mut self, now: u64) -> Vec<HealthEvent> {
        let mut events = Vec::new();
        for e in &mut self.entries {
            if !e.hung && e.deadline().is_some_and(|d| now > d) {
                e.hung = true;
                let cause = match e.watch {
                    Watch::Heartbeat { .. } => Cause::MissedHeartbeat,
                    Watch::Progress { .. } => Cause::NoProgress,
                };
                events.push(HealthEvent::Hung {
                    enclave: e.enclave.clone(),
                    cause,
                    silent_ns: now.saturating_sub(e.last_ns),
                });
            }
        }
        events
    }

    /// The earliest deadline of an enclave not yet hung: when [`Monitor::check`] should run next.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries.iter().filter(|e| !e.hung).filter_map(Entry::deadline).min()
    }

    fn insert(&mut self, enclave: &str, watch: Watch, now: u64) {
        self.unwatch(enclave);
        self.entries.push(Entry { enclave: enclave.to_string(), watch, last_ns: now, hung: false, paused: false });
    }

    fn entry(&mut self, enclave: &str) -> Result<&mut Entry, HealthError> {
        self.entries
            .iter_mut()
            .find(|e| e.enclave == enclave)
            .ok_or_else(|| HealthError::NotWatched(enclave.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(5 * S));
        assert_eq!(parse_duration("500ms"), Ok(S / 2));
        assert_eq!(parse_duration("2m"), Ok(120 * S));
        assert_eq!(parse_duration("1h"), Ok(3600 * S));
        assert_eq!(parse_duration("100us"), Ok(100_000));
        assert_eq!(parse_duration("7ns"), Ok(7));
        assert_eq!(parse_duration(" 5s "), Ok(5 * S));
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        for bad in ["", "5", "s", "5 s", "5S", "-5s", "5.5s", "5sec", "5d", "é"] {
            assert!(matches!(parse_duration(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        assert!(matches!(parse_duration("99999999999h"), Err(DurationError::TooLarge(_))));
        assert!(matches!(parse_duration("999999999999999999999999ns"), Err(DurationError::TooLarge(_))));
        assert_eq!(Duration(5 * S).to_string(), "5s");
        assert_eq!(Duration(1500 * 1_000_000).to_string(), "1500ms");
        assert_eq!(Duration(120 * S).to_string(), "2m");
        assert_eq!(Duration(0).to_string(), "0ns");
    }

    fn hb(period: u64, grace: u64) -> Heartbeat {
        Heartbeat { period_ns: period * S, grace_ns: grace * S }
    }

    #[test]
    fn heartbeats_and_deadlines() {
        let mut m = Monitor::new();
        m.watch_heartbeat("viz", hb(5, 60), 0).unwrap();
        assert_eq!(m.deadline("viz"), Some(60 * S), "grace before the first beat");
        assert!(m.overdue(60 * S).is_empty(), "the deadline itself is still in time");
        assert_eq!(m.overdue(60 * S + 1), ["viz"]);
        assert_eq!(m.beat("viz", 10 * S), Ok(Seen::Alive));
        assert_eq!(m.deadline("viz"), Some(15 * S));
        assert_eq!(m.next_deadline(), Some(15 * S));
        assert!(m.check(15 * S).is_empty());
        let events = m.check(16 * S);
        assert_eq!(
            events,
            [HealthEvent::Hung { enclave: "viz".into(), cause: Cause::MissedHeartbeat, silent_ns: 6 * S }]
        );
        assert!(m.check(100 * S).is_empty(), "reported once");
        assert_eq!(m.overdue(100 * S), ["viz"], "still overdue");
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.beat("viz", 101 * S), Ok(Seen::Recovered));
        assert_eq!(m.beat("viz", 102 * S), Ok(Seen::Alive));
        // A clock that goes backwards never moves a deadline back.
        assert_eq!(m.beat("viz", 3 * S), Ok(Seen::Alive));
        assert_eq!(m.deadline("viz"), Some(107 * S));
        assert_eq!(m.beat("nobody", 0), Err(HealthError::NotWatched("nobody".into())));
        assert!(m.watch_heartbeat("x", hb(0, 1), 0).is_err());
        assert!(m.unwatch("viz"));
        assert!(!m.unwatch("viz"));
        assert!(!m.is_watched("viz"));
    }

    #[test]
    fn pause_suspends_the_deadline() {
        let mut m = Monitor::new();
        m.watch_heartbeat("viz", hb(5, 5), 0).unwrap();
        m.pause("viz").unwrap();
        assert_eq!(m.deadline("viz"), None);
        assert!(m.check(1000 * S).is_empty());
        m.resume("viz", 1000 * S).unwrap();
        assert_eq!(m.deadline("viz"), Some(1005 * S));
        assert!(m.pause("nobody").is_err() && m.resume("nobody", 0).is_err());
    }

    #[test]
    fn progress_of_threads() {
        let mut m = Monitor::new();
        let t = |tid, cpu_ns| ThreadSample { tid, cpu_ns };
        m.watch_progress("sim", 10 * S, 0).unwrap();
        assert_eq!(m.sample("sim", S, &[t(1, 100), t(2, 100)]), Ok(Seen::Alive), "new threads");
        assert_eq!(m.sample("sim", 5 * S, &[t(2, 100), t(1, 100)]), Ok(Seen::NoProgress));
        assert_eq!(m.deadline("sim"), Some(11 * S));
        assert_eq!(m.sample("sim", 6 * S, &[t(1, 100), t(2, 101)]), Ok(Seen::Alive));
        // A thread that ends does not count as progress, nor against it.
        assert_eq!(m.sample("sim", 7 * S, &[t(2, 101)]), Ok(Seen::NoProgress));
        assert_eq!(m.sample("sim", 8 * S, &[t(2, 101), t(3, 0)]), Ok(Seen::Alive), "a new thread");
        let events = m.check(19 * S);
        assert_eq!(events, [HealthEvent::Hung { enclave: "sim".into(), cause: Cause::NoProgress, silent_ns: 11 * S }]);
        assert_eq!(m.sample("sim", 20 * S, &[t(2, 101), t(3, 0)]), Ok(Seen::NoProgress));
        assert_eq!(m.sample("sim", 21 * S, &[t(2, 102), t(3, 0)]), Ok(Seen::Recovered));
        // Duplicate tids (keep the largest time), empty samples, huge values: no panic.
        assert_eq!(m.sample("sim", 22 * S, &[t(2, 5), t(2, u64::MAX), t(2, 7)]), Ok(Seen::Alive));
        assert_eq!(m.sample("sim", 23 * S, &[t(2, 7)]), Ok(Seen::NoProgress));
        assert_eq!(m.sample("sim", 24 * S, &[]), Ok(Seen::NoProgress));
        assert!(m.watch_progress("y", 0, 0).is_err());
    }

    #[test]
    fn watches_are_not_mixed() {
        let mut m = Monitor::new();
        m.watch_heartbeat("viz", hb(5, 5), 0).unwrap();
        m.watch_progress("sim", 5 * S, 0).unwrap();
        assert_eq!(m.beat("sim", 1).unwrap_err().to_string(), "enclave `sim` is watched by progress");
        assert_eq!(m.sample("viz", 1, &[]).unwrap_err().to_string(), "enclave `viz` is watched by heartbeats");
        // Watching again (relaunch) replaces the watch.
        m.watch_progress("viz", 5 * S, 100 * S).unwrap();
        assert_eq!(m.deadline("viz"), Some(105 * S));
        assert_eq!(m.next_deadline(), Some(5 * S));
        assert_eq!(m.overdue(u64::MAX).len(), 2);
        let far = Monitor { entries: alloc::vec![] };
        assert!(far.overdue(0).is_empty());
        // Deadlines saturate instead of overflowing.
        m.watch_heartbeat("late", hb(5, 5), u64::MAX - 1).unwrap();
        assert_eq!(m.deadline("late"), Some(u64::MAX));
        assert!(!m.overdue(u64::MAX).contains(&"late".to_string()));
    }
}
