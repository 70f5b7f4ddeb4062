//! The lifecycle of an enclave: nine states and the events that move between them.
//!
//! Only the transitions of [`TRANSITIONS`] are legal; every other (state, event) pair is refused
//! with an [`IllegalTransition`] that says what was tried. The table, as `docs/enclaves.md` shows
//! it ([`markdown_table`] writes it):
//!
//! | from | event | to |
//! | --- | --- | --- |
//! | defined | launch | launching |
//! | stopped | launch | launching |
//! | failed | launch | launching |
//! | crashed | launch | launching |
//! | launching | started | running |
//! | launching | fail | failed |
//! | running | fail | failed |
//! | paused | fail | failed |
//! | running | pause | paused |
//! | paused | resume | running |
//! | launching | stop | stopped |
//! | running | stop | stopped |
//! | paused | stop | stopped |
//! | hung | stop | stopped |
//! | running | exit | stopped |
//! | hung | exit | stopped |
//! | running | crash | crashed |
//! | hung | crash | crashed |
//! | running | heartbeat | running |
//! | hung | heartbeat | running |
//! | running | miss | hung |
//! | defined | destroy | destroyed |
//! | stopped | destroy | destroyed |
//! | failed | destroy | destroyed |
//! | crashed | destroy | destroyed |
//!
//! An enclave keeps its partition (cores, memory, grants) from `defined` until `destroyed`, so
//! that it can be launched again after it stopped, failed or crashed; the LWK puts its cores back
//! to idle and scrubs its memory when it leaves a running state ([`State::is_active`]).

use core::fmt;

/// Where an enclave is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Created and given its partition; never launched (or ended and not yet relaunched).
    Defined,
    /// Being loaded and started (program or guest kernel read, vCPUs set up).
    Launching,
    /// Its cores run it.
    Running,
    /// Stopped by the control plane, resumable; its cores idle but stay its own.
    Paused,
    /// Ended normally: the job's last process exited, the guest powered off, or an operator
    /// stopped it.
    Stopped,
    /// Could not launch, or the LWK/VMM ended it for an error of its own (bad image, unhandled
    /// exit): not the enclave's fault.
    Failed,
    /// Ended by an error of the enclave itself: a guest kernel crash or triple fault, a job killed
    /// by a fatal signal. What else that affects depends on its isolation policy.
    Crashed,
    /// Missed its heartbeat deadline or made no progress over its window; still on its cores.
    Hung,
    /// Gone: its partition is released. Final.
    Destroyed,
}

/// Every state, in declaration order.
pub const STATES: [State; 9] = [
    State::Defined,
    State::Launching,
    State::Running,
    State::Paused,
    State::Stopped,
    State::Failed,
    State::Crashed,
    State::Hung,
    State::Destroyed,
];

impl State {
    /// The lower-case name used in events and on the console.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Defined => "defined",
            Self::Launching => "launching",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Crashed => "crashed",
            Self::Hung => "hung",
            Self::Destroyed => "destroyed",
        }
    }

    /// Its cores are held by it (running, paused, being launched, or hung on them).
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Launching | Self::Running | Self::Paused | Self::Hung)
    }

    /// It has ended and may be launched again or destroyed.
    pub const fn has_ended(self) -> bool {
        matches!(self, Self::Stopped | Self::Failed | Self::Crashed)
    }

    /// The health monitor should expect heartbeats or progress from it.
    pub const fn is_watched(self) -> bool {
        matches!(self, Self::Running | Self::Hung)
    }

    /// Applies an event (see [`transition`]).
    pub fn apply(self, event: Event) -> Result<State, IllegalTransition> {
        transition(self, event)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that happens to an enclave: a control-plane command or an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// Command `launch` (also relaunch after an end).
    Launch,
    /// The LWK finished launching it: its first thread or vCPU runs.
    Started,
    /// The launch failed, or the LWK/VMM ended it for an error of its own.
    Fail,
    /// Command `pause`.
    Pause,
    /// Command `resume`.
    Resume,
    /// Command `stop`: the control plane ends it.
    Stop,
    /// It ended by itself, normally (last process exited, guest powered off).
    Exit,
    /// It ended by an error of its own (guest kernel crash, fatal signal).
    Crash,
    /// A heartbeat (or progress) was seen.
    Heartbeat,
    /// The health monitor saw its deadline pass without a heartbeat or progress.
    Miss,
    /// Command `destroy`: release its partition.
    Destroy,
}

/// Every event, in declaration order.
pub const EVENTS: [Event; 11] = [
    Event::Launch,
    Event::Started,
    Event::Fail,
    Event::Pause,
    Event::Resume,
    Event::Stop,
    Event::Exit,
    Event::Crash,
    Event::Heartbeat,
    Event::Miss,
    Event::Destroy,
];

impl Event {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Launch => "launch",
            Self::Started => "started",
            Self::Fail => "fail",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Stop => "stop",
            Self::Exit => "exit",
            Self::Crash => "crash",
            Self::Heartbeat => "heartbeat",
            Self::Miss => "miss",
            Self::Destroy => "destroy",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The legal transitions: (from, event, to). Everything else is refused.
pub const TRANSITIONS: [(State, Event, State); 25] = {
    use Event as E;
    use State as S;
    [
        (S::Defined, E::Launch, S::Launching),
        (S::Stopped, E::Launch, S::Launching),
        (S::Failed, E::Launch, S::Launching),
        (S::Crashed, E::Launch, S::Launching),
        (S::Launching, E::Started, S::Running),
        (S::Launching, E::Fail, S::Failed),
        (S::Running, E::Fail, S::Failed),
        (S::Paused, E::Fail, S::Failed),
        (S::Running, E::Pause, S::Paused),
        (S::Paused, E::Resume, S::Running),
        (S::Launching, E::Stop, S::Stopped),
        (S::Running, E::Stop, S::Stopped),
        (S::Paused, E::Stop, S::Stopped),
        (S::Hung, E::Stop, S::Stopped),
        (S::Running, E::Exit, S::Stopped),
        (S::Hung, E::Exit, S::Stopped),
        (S::Running, E::Crash, S::Crashed),
        (S::Hung, E::Crash, S::Crashed),
        (S::Running, E::Heartbeat, S::Running),
        (S::Hung, E::Heartbeat, S::Running),
        (S::Running, E::Miss, S::Hung),
        (S::Defined, E::Destroy, S::Destroyed),
        (S::Stopped, E::Destroy, S::Destroyed),
        (S::Failed, E::Destroy, S::Destroyed),
        (S::Crashed, E::Destroy, S::Destroyed),
    ]
};

/// An event that the current state does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: State,
    pub event: Event,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} an enclave that is {}", self.event, self.from)?;
        let allowed = TRANSITIONS.iter().filter(|(from, _, _)| *from == self.from);
        let mut first = true;
        for (_, event, _) in allowed {
            f.write_str(if first { " (allowed: " } else { ", " })?;
            first = false;
            write!(f, "{event}")?;
        }
        f.write_str(if first { " (nothing is allowed)" } else { ")" })
    }
}

/// The state `event` leads to from `from`, or the refusal.
pub fn transition(from: State, event: Event) -> Result<State, IllegalTransition> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
        .ok_or(IllegalTransition { from, event })
}

/// The transition table as a Markdown table (the one in `docs/enclaves.md`).
pub fn markdown_table() -> alloc::string::String {
    let mut out = alloc::string::String::from("| from | event | to |\n| --- | --- | --- |\n");
    for (from, event, to) in TRANSITIONS {
        out.push_str(&alloc::format!("| {from} | {event} | {to} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, event) pair, written out: `Some(to)` legal, `None` refused. Independent of
    /// [`TRANSITIONS`], so a change to one without the other fails.
    fn expected(from: State, event: Event) -> Option<State> {
        use Event as E;
        use State as S;
        match (from, event) {
            (S::Defined | S::Stopped | S::Failed | S::Crashed, E::Launch) => Some(S::Launching),
            (S::Launching, E::Started) => Some(S::Running),
            (S::Launching | S::Running | S::Paused, E::Fail) => Some(S::Failed),
            (S::Running, E::Pause) => Some(S::Paused),
            (S::Paused, E::Resume) => Some(S::Running),
            (S::Launching | S::Running | S::Paused | S::Hung, E::Stop) => Some(S::Stopped),
            (S::Running | S::Hung, E::Exit) => Some(S::Stopped),
            (S::Running | S::Hung, E::Crash) => Some(S::Crashed),
            (S::Running | S::Hung, E::Heartbeat) => Some(S::Running),
            (S::Running, E::Miss) => Some(S::Hung),
            (S::Defined | S::Stopped | S::Failed | S::Crashed, E::Destroy) => Some(S::Destroyed),
            _ => None,
        }
    }

    #[test]
    fn every_pair_is_legal_or_refused_as_specified() {
        let mut legal = 0;
        for from in STATES {
            for event in EVENTS {
                let got = transition(from, event);
                match expected(from, event) {
                    Some(to) => {
                        assert_eq!(got, Ok(to), "{from} --{event}-->");
                        legal += 1;
                    }
                    None => assert_eq!(got, Err(IllegalTransition { from, event }), "{from} --{event}-->"),
                }
            }
        }
        assert_eq!(legal, TRANSITIONS.len());
        assert_eq!(STATES.len() * EVENTS.len(), 99);
    }

    #[test]
    fn table_has_no_duplicate_pairs() {
        for (i, (f, e, _)) in TRANSITIONS.iter().enumerate() {
            assert!(!TRANSITIONS[..i].iter().any(|(f2, e2, _)| f2 == f && e2 == e), "{f} {e}");
        }
    }

    #[test]
    fn destroyed_is_final_and_every_state_reachable() {
        for event in EVENTS {
            assert!(transition(State::Destroyed, event).is_err());
        }
        for state in STATES {
            assert!(state == State::Defined || TRANSITIONS.iter().any(|(_, _, to)| *to == state), "{state}");
        }
    }

    #[test]
    fn a_life() {
        let mut s = State::Defined;
        for e in [Event::Launch, Event::Started, Event::Pause, Event::Resume, Event::Miss, Event::Heartbeat] {
            s = s.apply(e).unwrap();
        }
        assert_eq!(s, State::Running);
        s = s.apply(Event::Crash).unwrap();
        assert!(s.has_ended() && !s.is_active());
        s = s.apply(Event::Launch).unwrap();
        assert!(s.is_active() && !s.is_watched());
        assert_eq!(
            s.apply(Event::Destroy).unwrap_err().to_string(),
            "cannot destroy an enclave that is launching (allowed: started, fail, stop)"
        );
        assert_eq!(
            IllegalTransition { from: State::Destroyed, event: Event::Launch }.to_string(),
            "cannot launch an enclave that is destroyed (nothing is allowed)"
        );
    }

    #[test]
    fn state_predicates() {
        for s in STATES {
            assert!(!(s.is_active() && s.has_ended()), "{s}");
            assert!(!s.is_watched() || s.is_active(), "{s}");
            // Only an ended (or never launched) enclave may be destroyed: never one on its cores.
            assert_eq!(transition(s, Event::Destroy).is_ok(), s == State::Defined || s.has_ended(), "{s}");
        }
    }

    #[test]
    fn markdown_matches_module_doc() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), TRANSITIONS.len() + 2);
        let source = include_str!("lifecycle.rs");
        for row in table.lines() {
            assert!(source.contains(&alloc::format!("//! {row}\n")), "module doc lacks {row}");
        }
    }
}
