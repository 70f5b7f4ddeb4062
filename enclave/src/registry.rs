//! The control plane's book of enclaves: each enclave's spec and state, the partition, the
//! segment grants and the health monitor, kept consistent with each other.
//!
//! The LWK (on core 0) owns one [`Registry`]. It calls [`Registry::compose`] with the boot
//! manifest, or [`Registry::create`] for a console `create`; then, for every command or
//! observation, [`Registry::apply`] with the lifecycle event, and carries out what the returned
//! [`Outcome`] says (start the watch, reset cores, scrub, revoke mappings, notify sharers, stop
//! the node). Nothing here runs anything: it decides, the LWK does.

use crate::health::{HealthError, HealthEvent, Monitor, Seen, ThreadSample};
use crate::isolation::{Action, Response, Zone};
use crate::lifecycle::{Event, IllegalTransition, State};
use crate::manifest::{EnclaveSpec, Kind, ManifestErrors, NodeManifest, SegmentSpec};
use crate::partition::{Node, Partition, PartitionError};
use crate::segments::{Containment, SegmentError, SegmentTable};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// One enclave the control plane knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub spec: EnclaveSpec,
    pub state: State,
    /// Times it was launched (relaunches included).
    pub launches: u32,
}

/// Why the registry refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryError {
    NoSuchEnclave(String),
    Manifest(ManifestErrors),
    Partition(PartitionError),
    Segment(SegmentError),
    Transition { enclave: String, illegal: IllegalTransition },
    Health(HealthError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchEnclave(n) => write!(f, "no enclave named `{}`", crate::values::shorten(n)),
            Self::Manifest(e) => e.fmt(f),
            Self::Partition(e) => e.fmt(f),
            Self::Segment(e) => e.fmt(f),
            Self::Transition { enclave, illegal } => write!(f, "enclave `{enclave}`: {illegal}"),
            Self::Health(e) => e.fmt(f),
        }
    }
}

impl From<PartitionError> for RegistryError {
    fn from(e: PartitionError) -> Self {
        Self::Partition(e)
    }
}

impl From<SegmentError> for RegistryError {
    fn from(e: SegmentError) -> Self {
        Self::Segment(e)
    }
}

impl From<HealthError> for RegistryError {
    fn from(e: HealthError) -> Self {
        Self::Health(e)
    }
}

/// What an applied event changed, and what the LWK must now do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub enclave: String,
    pub from: State,
    pub to: State,
    /// After a crash: what it reaches under the enclave's policy and the steps to carry out, in
    /// order (see [`crate::isolation::response`]).
    pub response: Option<Response>,
    /// After a crash under `shared`: grants revoked (unmap them), segments now suspect, and the
    /// enclaves to notify.
    pub containment: Containment,
}

impl Outcome {
    /// The LWK must bring the enclave's cores back to idle (it left a state that holds them).
    pub fn release_cores(&self) -> bool {
        self.from.is_active() && !self.to.is_active()
    }

    /// The node must stop (after the report).
    pub fn stop_node(&self) -> bool {
        self.response.is_some_and(|r| r.actions.contains(&Action::StopNode))
    }
}

/// Every enclave of the node and what they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    partition: Partition,
    segments: SegmentTable,
    health: Monitor,
    records: Vec<Record>,
}

impl Registry {
    /// A node with no enclave yet.
    pub fn new(node: Node) -> Self {
        Self {
            partition: Partition::new(node),
            segments: SegmentTable::new(),
            health: Monitor::new(),
            records: Vec::new(),
        }
    }

    /// The node as a manifest composes it: every segment and enclave, all in state `defined`, or
    /// the error (with its manifest line) that prevents it.
    pub fn compose(node: Node, manifest: &NodeManifest) -> Result<Self, ManifestErrors> {
        let partition = manifest.plan(&node)?;
        let mut registry =
            Self { partition, segments: SegmentTable::new(), health: Monitor::new(), records: Vec::new() };
        // Cannot fail for a manifest `from_specs` accepted; kept as errors all the same.
        let refuse = |line: Option<usize>, e: SegmentError| ManifestErrors {
            errors: alloc::vec![crate::manifest::ManifestError { line, kind: crate::manifest::ErrorKind::Segment(e) }],
            truncated: false,
        };
        for s in &manifest.segments {
            registry.segments.define(&s.name, s.size, s.files).map_err(|e| refuse(s.line(), e))?;
        }
        for spec in &manifest.enclaves {
            for (segment, access) in &spec.segments {
                registry
                    .segments
                    .grant(segment, &spec.name, spec.isolation, *access)
                    .map_err(|e| refuse(spec.line(), e))?;
            }
            registry.records.push(Record { spec: spec.clone(), state: State::Defined, launches: 0 });
        }
        Ok(registry)
    }

    /// Adds one enclave (a console `create`): checked as a manifest section would be (its
    /// segments must exist), then placed on the free cores and memory.
    pub fn create(&mut self, spec: EnclaveSpec) -> Result<&Record, RegistryError> {
        let segments: Vec<SegmentSpec> =
            self.segments.segments().iter().map(|s| SegmentSpec::new(&s.name, s.size).holding_files(s.files)).collect();
        NodeManifest::from_specs(alloc::vec![spec.clone()], segments).map_err(RegistryError::Manifest)?;
        self.partition.assign(&spec.request())?;
        for (i, (segment, access)) in spec.segments.iter().enumerate() {
            if let Err(e) = self.segments.grant(segment, &spec.name, spec.isolation, *access) {
                for (granted, _) in spec.segments.iter().take(i) {
                    let _ = self.segments.revoke(granted, &spec.name);
                }
                self.partition.release(&spec.name);
                return Err(e.into());
            }
        }
        self.records.push(Record { spec, state: State::Defined, launches: 0 });
        self.records.last().ok_or_else(|| RegistryError::NoSuchEnclave(String::new()))
    }

    /// Adds a shared segment of memory (it comes from the free pool).
    pub fn define_segment(&mut self, name: &str, size: u64) -> Result<(), RegistryError> {
        self.segments.define(name, size, false)?;
        if let Err(e) = self.partition.reserve_segment(name, size) {
            let _ = self.segments.remove(name);
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes a segment nobody holds a grant to, and frees its memory.
    pub fn remove_segment(&mut self, name: &str) -> Result<(), RegistryError> {
        self.segments.remove(name)?;
        self.partition.release_segment(name);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.spec.name == name)
    }

    /// Every enclave, in the order they were composed or created.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// For [`Partition::record_ranges`] once the LWK has reserved the memory.
    pub fn partition_mut(&mut self) -> &mut Partition {
        &mut self.partition
    }

    pub fn segments(&self) -> &SegmentTable {
        &self.segments
    }

    /// For [`SegmentTable::clear_suspect`].
    pub fn segments_mut(&mut self) -> &mut SegmentTable {
        &mut self.segments
    }

    pub fn health(&self) -> &Monitor {
        &self.health
    }

    /// Applies a lifecycle event to `name` at time `now` (ns), with its effects on the grants and
    /// the health monitor. Refused without any change if the transition is illegal, or if a
    /// relaunch needs a grant to a segment that is suspect.
    pub fn apply(&mut self, name: &str, event: Event, now: u64) -> Result<Outcome, RegistryError> {
        let i = self.records.iter().position(|r| r.spec.name == name);
        let record =
            i.and_then(|i| self.records.get(i)).ok_or_else(|| RegistryError::NoSuchEnclave(name.to_string()))?;
        let from = record.state;
        let to =
            from.apply(event).map_err(|illegal| RegistryError::Transition { enclave: name.to_string(), illegal })?;
        let spec = record.spec.clone();
        let mut outcome =
            Outcome { enclave: name.to_string(), from, to, response: None, containment: Containment::default() };
        match event {
            Event::Launch => self.regrant(&spec)?,
            Event::Started => match (spec.heartbeat, spec.progress_ns) {
                (Some(hb), _) => self.health.watch_heartbeat(name, hb, now)?,
                (None, Some(window)) => self.health.watch_progress(name, window, now)?,
                (None, None) => {}
            },
            Event::Pause => {
                let _ = self.health.pause(name);
            }
            Event::Resume => {
                let _ = self.health.resume(name, now);
            }
            Event::Stop | Event::Exit | Event::Fail => {
                self.health.unwatch(name);
            }
            Event::Crash => {
                self.health.unwatch(name);
                let zone = match spec.kind() {
                    Kind::Job => Zone::HostUser,
                    Kind::Vm => Zone::GuestKernel,
                };
                let response = spec.isolation.response(zone);
                if response.actions.contains(&Action::RevokeGrants) {
                    outcome.containment = self.segments.contain(name);
                }
                outcome.response = Some(response);
            }
            Event::Heartbeat | Event::Miss => {}
            Event::Destroy => {
                self.health.unwatch(name);
                self.segments.revoke_all(name);
                self.partition.release(name);
                self.records.retain(|r| r.spec.name != name);
                return Ok(outcome);
            }
        }
        if let Some(r) = self.records.iter_mut().find(|r| r.spec.name == name) {
            r.state = to;
            if event == Event::Launch {
                r.launches = r.launches.saturating_add(1);
            }
        }
        Ok(outcome)
    }

    /// A heartbeat from `name` (the VMM saw the heartbeat hypercall). `Some` if it recovered from
    /// hung (the `heartbeat` event was applied).
    pub fn beat(&mut self, name: &str, now: u64) -> Result<Option<Outcome>, RegistryError> {
        let seen = self.health.beat(name, now)?;
        self.after_seen(name, seen, now)
    }

    /// A sample of a job's threads' CPU time. `Some` if it recovered from hung.
    pub fn sample(&mut self, name: &str, now: u64, threads: &[ThreadSample]) -> Result<Option<Outcome>, RegistryError> {
        let seen = self.health.sample(name, now, threads)?;
        self.after_seen(name, seen, now)
    }

    /// Marks every enclave newly past its deadline as hung (the `miss` event) and returns what
    /// the monitor found. What to do about a hung enclave (wait, stop, relaunch) is the control
    /// plane's choice.
    pub fn check_health(&mut self, now: u64) -> Vec<HealthEvent> {
        let events = self.health.check(now);
        for e in &events {
            if let HealthEvent::Hung { enclave, .. } = e {
                let _ = self.apply(enclave, Event::Miss, now);
            }
        }
        events
    }

    fn after_seen(&mut self, name: &str, seen: Seen, now: u64) -> Result<Option<Outcome>, RegistryError> {
        if seen == Seen::Recovered && self.get(name).is_some_and(|r| r.state == State::Hung) {
            return self.apply(name, Event::Heartbeat, now).map(Some);
        }
        Ok(None)
    }

    /// Gives back the grants of the spec that a crash revoked (relaunch); all or none.
    fn regrant(&mut self, spec: &EnclaveSpec) -> Result<(), RegistryError> {
        let held = self.segments.grants_of(&spec.name);
        let missing: Vec<_> = spec.segments.iter().filter(|(s, _)| !held.iter().any(|(h, _)| h == s)).collect();
        for (i, (segment, access)) in missing.iter().enumerate() {
            if let Err(e) = self.segments.grant(segment, &spec.name, spec.isolation, *access) {
                for (granted, _) in missing.iter().take(i) {
                    let _ = self.segments.revoke(granted, &spec.name);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Heartbeat;
    use crate::isolation::{Policy, Reach};
    use crate::partition::{CoreRequest, MemoryRequest};
    use crate::segments::Access;
    use crate::values::CpuSet;

    const M: u64 = 1 << 20;
    const S: u64 = 1_000_000_000;

    fn node() -> Node {
        Node::new(CpuSet::first_n(8), 2048 * M)
    }

    fn manifest() -> NodeManifest {
        NodeManifest::parse(
            b"[enclave sim]\nkind = job\nprogram = /bin/sim\ncores = 1-2\nmemory = 512M\nisolation = shared\n\
              segments = results:rw\nprogress = 10s\n\n\
              [enclave viz]\nkind = vm\nkernel = /boot/vmlinux\ncores = 3\nisolation = shared\n\
              segments = results:r\nheartbeat = 5s\nheartbeat_grace = 30s\n\n\
              [enclave solo]\nkind = vm\nkernel = /boot/vmlinux\ncores = 4\n\n\
              [segment results]\nsize = 64M\n",
        )
        .unwrap()
    }

    #[test]
    fn compose_a_manifest() {
        let r = Registry::compose(node(), &manifest()).unwrap();
        assert_eq!(r.records().len(), 3);
        assert!(r.records().iter().all(|e| e.state == State::Defined && e.launches == 0));
        assert_eq!(r.partition().get("viz").unwrap().cores, CpuSet::parse("3").unwrap());
        assert_eq!(r.partition().get("viz").unwrap().memory_bytes, 256 * M);
        assert_eq!(r.segments().get("results").unwrap().grants.len(), 2);
        assert_eq!(r.partition().free_memory(), 2048 * M - 512 * M - 256 * M - 256 * M - 64 * M);
        // The node cannot hold it: the error names the enclave's line.
        let small = Node::new(CpuSet::first_n(4), 1024 * M);
        let e = Registry::compose(small, &manifest()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 19: enclave `solo`: core 4 does not exist or is offline (the node has cores 0-3)"
        );
    }

    #[test]
    fn a_shared_crash_is_contained_and_relaunch_waits_for_the_segment() {
        let mut r = Registry::compose(node(), &manifest()).unwrap();
        for e in [Event::Launch, Event::Started] {
            r.apply("sim", e, 0).unwrap();
            r.apply("viz", e, 0).unwrap();
        }
        assert_eq!(r.health().deadline("viz"), Some(30 * S));
        assert_eq!(r.health().deadline("sim"), Some(10 * S));
        let o = r.apply("sim", Event::Crash, S).unwrap();
        assert_eq!((o.from, o.to), (State::Running, State::Crashed));
        assert!(o.release_cores() && !o.stop_node());
        assert_eq!(o.response.unwrap().reach, Reach::SharedData);
        assert_eq!(o.containment.suspect, ["results"]);
        assert_eq!(o.containment.sharers, ["viz"]);
        assert!(!r.health().is_watched("sim"));
        assert!(r.get("viz").unwrap().state == State::Running, "the sharer goes on");
        // Relaunch is refused while the segment is suspect, and changes nothing.
        let before = r.clone();
        let e = r.apply("sim", Event::Launch, 2 * S).unwrap_err();
        assert!(e.to_string().contains("suspect"), "{e}");
        assert_eq!(r, before);
        r.segments_mut().clear_suspect("results").unwrap();
        let o = r.apply("sim", Event::Launch, 2 * S).unwrap();
        assert_eq!(o.to, State::Launching);
        assert_eq!(r.get("sim").unwrap().launches, 2);
        assert_eq!(r.segments().grants_of("sim"), [("results".to_string(), Access::ReadWrite)]);
    }

    #[test]
    fn strict_and_node_crashes() {
        let mut r = Registry::compose(node(), &manifest()).unwrap();
        r.apply("solo", Event::Launch, 0).unwrap();
        r.apply("solo", Event::Started, 0).unwrap();
        let o = r.apply("solo", Event::Crash, 0).unwrap();
        assert_eq!(o.response.unwrap().reach, Reach::Enclave);
        assert_eq!(o.containment, Containment::default());
        let mut r = Registry::new(node());
        r.create(EnclaveSpec::vm("dbg", "/k").with_isolation(Policy::Node)).unwrap();
        for e in [Event::Launch, Event::Started] {
            r.apply("dbg", e, 0).unwrap();
        }
        assert!(r.apply("dbg", Event::Crash, 0).unwrap().stop_node());
    }

    #[test]
    fn heartbeats_hang_and_recover() {
        let mut r = Registry::compose(node(), &manifest()).unwrap();
        for e in [Event::Launch, Event::Started] {
            r.apply("viz", e, 0).unwrap();
        }
        assert_eq!(r.beat("viz", 10 * S), Ok(None));
        let events = r.check_health(16 * S);
        assert_eq!(events.len(), 1);
        assert_eq!(r.get("viz").unwrap().state, State::Hung);
        assert!(r.check_health(17 * S).is_empty());
        let o = r.beat("viz", 18 * S).unwrap().unwrap();
        assert_eq!((o.from, o.to), (State::Hung, State::Running));
        // Paused: no deadline; resumed: a fresh period.
        r.apply("viz", Event::Pause, 20 * S).unwrap();
        assert!(r.check_health(100 * S).is_empty());
        r.apply("viz", Event::Resume, 100 * S).unwrap();
        assert_eq!(r.health().deadline("viz"), Some(105 * S));
        // Progress for the job.
        for e in [Event::Launch, Event::Started] {
            r.apply("sim", e, 100 * S).unwrap();
        }
        let t = |cpu_ns| [ThreadSample { tid: 1, cpu_ns }];
        assert_eq!(r.sample("sim", 101 * S, &t(5)), Ok(None));
        assert_eq!(r.check_health(112 * S).len(), 2);
        assert_eq!(r.get("sim").unwrap().state, State::Hung);
        assert_eq!(r.sample("sim", 113 * S, &t(6)).unwrap().unwrap().to, State::Running);
        assert!(r.beat("solo", 0).is_err(), "not watched");
        // A hung enclave can be stopped, then destroyed.
        r.apply("viz", Event::Stop, 120 * S).unwrap();
        assert!(!r.health().is_watched("viz"));
    }

    #[test]
    fn create_destroy_and_refusals() {
        let mut r = Registry::compose(node(), &manifest()).unwrap();
        let free = r.partition().free_cpus();
        let e = r.create(
            EnclaveSpec::job("late", "/bin/x").with_isolation(Policy::Shared).with_segment("nope", Access::Read),
        );
        assert!(e.unwrap_err().to_string().contains("segment `nope`"));
        let e = r.create(EnclaveSpec::job("sim", "/bin/x")).unwrap_err();
        assert_eq!(e.to_string(), "enclave `sim` already exists");
        let e = r.create(EnclaveSpec::job("late", "relative")).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        assert_eq!(r.partition().free_cpus(), free, "refusals change nothing");
        let rec = r
            .create(
                EnclaveSpec::job("late", "/bin/x")
                    .with_isolation(Policy::Shared)
                    .with_segment("results", Access::Read)
                    .with_cores(CoreRequest::Count(1))
                    .with_memory(MemoryRequest::Bytes(M)),
            )
            .unwrap();
        assert_eq!(rec.state, State::Defined);
        assert_eq!(r.partition().get("late").unwrap().cores, CpuSet::parse("7").unwrap());
        let e = r.apply("late", Event::Pause, 0).unwrap_err();
        assert_eq!(e.to_string(), "enclave `late`: cannot pause an enclave that is defined (allowed: launch, destroy)");
        assert!(r.apply("ghost", Event::Launch, 0).is_err());
        let o = r.apply("late", Event::Destroy, 0).unwrap();
        assert_eq!(o.to, State::Destroyed);
        assert!(r.get("late").is_none());
        assert_eq!(r.partition().free_cpus(), free);
        assert_eq!(r.segments().grants_of("late"), []);
        // Segments: defined, refused while granted, removed.
        r.define_segment("scratch", 4 * M).unwrap();
        assert!(r.define_segment("scratch", 4 * M).is_err());
        assert!(r.define_segment("huge", 1 << 40).unwrap_err().to_string().contains("asks for 1T"));
        assert!(r.segments().get("huge").is_none());
        assert!(r.remove_segment("results").unwrap_err().to_string().contains("still granted"));
        r.remove_segment("scratch").unwrap();
        assert_eq!(r.partition().segment_bytes("scratch"), None);
    }

    #[test]
    fn a_heartbeat_spec_watches_by_heartbeat() {
        let mut r = Registry::new(node());
        let hb = Heartbeat { period_ns: S, grace_ns: 2 * S };
        r.create(EnclaveSpec::vm("v", "/k").with_heartbeat(hb)).unwrap();
        r.apply("v", Event::Launch, 0).unwrap();
        assert!(!r.health().is_watched("v"), "watched only once started");
        r.apply("v", Event::Started, 5 * S).unwrap();
        assert_eq!(r.health().deadline("v"), Some(7 * S));
        r.apply("v", Event::Exit, 6 * S).unwrap();
        assert!(!r.health().is_watched("v"));
    }
}
