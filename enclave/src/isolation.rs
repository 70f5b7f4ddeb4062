//! Isolation policies and what an error in each error zone reaches under each of them.
//!
//! Errors are classified by where they happen (the error zones of the design): the host kernel
//! (zone 1: the LWK itself), host user (zone 2: a native job's code, which runs directly on the
//! LWK), the guest kernel (zone 3: a VM's kernel) and guest user (zone 4: a process in a VM).
//! An error in zone 2 or 3 that ends the enclave (a job killed by a fatal signal, a guest kernel
//! panic or triple fault) reaches what the enclave's [`Policy`] says; zone 1 always reaches the
//! node and zone 4 never leaves the guest. [`response`] is the table, with the steps the LWK and
//! the VMM must carry out; [`markdown_table`] writes it for `docs/enclaves.md`.

use alloc::string::String;
use core::fmt;

/// An error zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Zone {
    /// Zone 1: the LWK (or the host kernel that runs the VMM module).
    HostKernel = 1,
    /// Zone 2: host user code: a native job on the LWK.
    HostUser = 2,
    /// Zone 3: a guest's kernel.
    GuestKernel = 3,
    /// Zone 4: a process inside a guest.
    GuestUser = 4,
}

/// Every zone, in order.
pub const ZONES: [Zone; 4] = [Zone::HostKernel, Zone::HostUser, Zone::GuestKernel, Zone::GuestUser];

impl Zone {
    /// 1 to 4.
    pub const fn number(self) -> u8 {
        self as u8
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::HostKernel => "host kernel",
            Self::HostUser => "host user",
            Self::GuestKernel => "guest kernel",
            Self::GuestUser => "guest user",
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "zone {} ({})", self.number(), self.name())
    }
}

/// An enclave's isolation policy: the dial between containment and sharing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// The default. A guest kernel error behaves like a guest user error: the enclave ends and
    /// nothing else notices. No memory is shared, all I/O is emulated, no device is given.
    #[default]
    Strict,
    /// The enclave may map shared segments granted to it. A guest kernel error may corrupt data in
    /// what it shares, but must not stop the LWK or enclaves that share nothing with it.
    Shared,
    /// Debugging or maximum performance: segments and devices may be given. An error that ends
    /// the enclave stops the whole node, deliberately, with a report.
    Node,
}

/// Every policy, in order.
pub const POLICIES: [Policy; 3] = [Policy::Strict, Policy::Shared, Policy::Node];

/// A word that is not a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an isolation policy (strict, shared or node)", crate::values::shorten(&self.0))
    }
}

impl Policy {
    /// `strict`, `shared` or `node` (exactly, lower case).
    pub fn parse(word: &str) -> Result<Self, UnknownPolicy> {
        match word {
            "strict" => Ok(Self::Strict),
            "shared" => Ok(Self::Shared),
            "node" => Ok(Self::Node),
            _ => Err(UnknownPolicy(word.into())),
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Shared => "shared",
            Self::Node => "node",
        }
    }

    /// May shared segments be granted to an enclave with this policy?
    pub const fn allows_segments(self) -> bool {
        !matches!(self, Self::Strict)
    }

    /// May a physical device be given to it? Only under `node`: without an IOMMU set up for it, a
    /// device the guest drives can write anywhere in memory by DMA, which is zone 1 reach.
    pub const fn allows_devices(self) -> bool {
        matches!(self, Self::Node)
    }

    /// What its I/O goes through.
    pub const fn io(self) -> &'static str {
        match self {
            Self::Strict => "all I/O emulated by the VMM (or system calls of the LWK); no memory shared",
            Self::Shared => "emulated I/O, plus the shared segments granted to it, mapped directly",
            Self::Node => "emulated I/O, shared segments, and physical devices given to it",
        }
    }

    /// One line for the console's `show` and for the docs.
    pub const fn summary(self) -> &'static str {
        match self {
            Self::Strict => "a guest kernel error ends the enclave only; nothing else notices",
            Self::Shared => {
                "a guest kernel error ends the enclave and may corrupt the segments it shares; the LWK and enclaves sharing nothing with it go on"
            }
            Self::Node => "a guest kernel error stops the whole node, deliberately, with a report",
        }
    }

    /// What an error in `zone` reaches, and what to do (see [`response`]).
    pub fn response(self, zone: Zone) -> Response {
        response(self, zone)
    }

    /// The row the issue is about: a guest kernel error (zone 3).
    pub fn on_guest_kernel_error(self) -> Response {
        response(self, Zone::GuestKernel)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Policy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// How far an error reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reach {
    /// Only the failing process: the kernel that runs it (the guest's) handles it; the VMM does
    /// not even see it.
    Process,
    /// The enclave ends; nothing else notices (the enclave behaves as one guest user process).
    Enclave,
    /// The enclave ends, and the data of the segments it shares may be corrupt; the LWK and the
    /// enclaves that share nothing with it go on.
    SharedData,
    /// The whole node stops.
    Node,
}

impl Reach {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Enclave => "enclave",
            Self::SharedData => "shared data",
            Self::Node => "node",
        }
    }

    /// The zone whose consequence this is, where there is one: a contained error behaves like
    /// zone 4, a node stop like zone 1; "shared data" sits in between.
    pub const fn behaves_like(self) -> Option<Zone> {
        match self {
            Self::Process | Self::Enclave => Some(Zone::GuestUser),
            Self::SharedData => None,
            Self::Node => Some(Zone::HostKernel),
        }
    }
}

impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step the LWK or the VMM carries out after an error, in the order of [`Response::actions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Stop the enclave: no more VMRUN on its vCPUs, its threads killed.
    EndEnclave,
    /// Bring its cores back to the idle loop with no state of the enclave left on them.
    ResetCores,
    /// Take its grants away and unmap the segments from every address space of the enclave.
    RevokeGrants,
    /// Mark the segments it could write as suspect (no new grant until cleared).
    MarkSegmentsSuspect,
    /// Tell the enclaves that share those segments (an event naming the segments).
    NotifySharers,
    /// Zero its memory before it is reused.
    ScrubMemory,
    /// Report it: a machine-readable event with the enclave, zone and reason.
    Report,
    /// Stop every enclave and power the node off with status failure, after the report.
    StopNode,
}

impl Action {
    pub const fn name(self) -> &'static str {
        match self {
            Self::EndEnclave => "end the enclave",
            Self::ResetCores => "reset its cores to idle",
            Self::RevokeGrants => "revoke its grants",
            Self::MarkSegmentsSuspect => "mark its writable segments suspect",
            Self::NotifySharers => "notify the sharers",
            Self::ScrubMemory => "scrub its memory",
            Self::Report => "report",
            Self::StopNode => "stop the node",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an error reaches and what must be done about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub reach: Reach,
    /// In order.
    pub actions: &'static [Action],
}

const NOTHING: &[Action] = &[];
const CONTAIN: &[Action] = &[Action::EndEnclave, Action::ResetCores, Action::ScrubMemory, Action::Report];
const CONTAIN_SHARED: &[Action] = &[
    Action::EndEnclave,
    Action::ResetCores,
    Action::RevokeGrants,
    Action::MarkSegmentsSuspect,
    Action::NotifySharers,
    Action::ScrubMemory,
    Action::Report,
];
const STOP_NODE: &[Action] = &[Action::Report, Action::StopNode];

/// What an error in `zone` reaches for an enclave with `policy`, and what to do.
///
/// - Zone 1 (the LWK itself) cannot be contained: the node stops, whatever the policy.
/// - Zone 2 and zone 3 (an error that ends a native job or a guest kernel) reach what the policy
///   says: the enclave (`strict`), its shared data (`shared`), the node (`node`).
/// - Zone 4 stays in the guest: its kernel handles it; the VMM does nothing.
pub const fn response(policy: Policy, zone: Zone) -> Response {
    match (zone, policy) {
        (Zone::HostKernel, _) => Response { reach: Reach::Node, actions: STOP_NODE },
        (Zone::GuestUser, _) => Response { reach: Reach::Process, actions: NOTHING },
        (_, Policy::Strict) => Response { reach: Reach::Enclave, actions: CONTAIN },
        (_, Policy::Shared) => Response { reach: Reach::SharedData, actions: CONTAIN_SHARED },
        (_, Policy::Node) => Response { reach: Reach::Node, actions: STOP_NODE },
    }
}

/// The zone-by-policy table as Markdown (the one in `docs/enclaves.md`).
pub fn markdown_table() -> String {
    let mut out = String::from("| zone | policy | reaches | behaves like | steps |\n| --- | --- | --- | --- | --- |\n");
    for zone in ZONES {
        for policy in POLICIES {
            let r = response(policy, zone);
            let like = match r.reach.behaves_like() {
                Some(z) => alloc::format!("zone {}", z.number()),
                None => String::from("zone 4, plus its shared data"),
            };
            let mut steps = String::new();
            for (i, a) in r.actions.iter().enumerate() {
                if i > 0 {
                    steps.push_str(", ");
                }
                steps.push_str(a.name());
            }
            if steps.is_empty() {
                steps.push_str("none (the guest kernel handles it)");
            }
            out.push_str(&alloc::format!("| {} | {policy} | {} | {like} | {steps} |\n", zone.number(), r.reach));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for p in POLICIES {
            assert_eq!(Policy::parse(p.name()), Ok(p));
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
        }
        assert_eq!(Policy::default(), Policy::Strict);
        assert_eq!(
            Policy::parse("Strict").unwrap_err().to_string(),
            "`Strict` is not an isolation policy (strict, shared or node)"
        );
        assert!(Policy::parse("").is_err());
        assert!(Policy::parse(" strict").is_err());
        assert!(Policy::parse(&"x".repeat(1000)).unwrap_err().to_string().len() < 100);
    }

    #[test]
    fn guest_kernel_error_row_of_the_issue() {
        let strict = Policy::Strict.on_guest_kernel_error();
        assert_eq!((strict.reach, strict.reach.behaves_like()), (Reach::Enclave, Some(Zone::GuestUser)));
        assert!(strict.actions.contains(&Action::ScrubMemory) && !strict.actions.contains(&Action::StopNode));
        let shared = Policy::Shared.on_guest_kernel_error();
        assert_eq!((shared.reach, shared.reach.behaves_like()), (Reach::SharedData, None));
        for a in [Action::RevokeGrants, Action::MarkSegmentsSuspect, Action::NotifySharers, Action::ScrubMemory] {
            assert!(shared.actions.contains(&a), "{a}");
        }
        let node = Policy::Node.on_guest_kernel_error();
        assert_eq!((node.reach, node.reach.behaves_like()), (Reach::Node, Some(Zone::HostKernel)));
        assert_eq!(node.actions, [Action::Report, Action::StopNode]);
    }

    #[test]
    fn every_cell_is_consistent() {
        for zone in ZONES {
            for policy in POLICIES {
                let r = policy.response(zone);
                // A report always comes before a node stop, and the enclave ends before cleanup.
                let pos = |a| r.actions.iter().position(|x| *x == a);
                if let Some(stop) = pos(Action::StopNode) {
                    assert!(pos(Action::Report).is_some_and(|rep| rep < stop));
                    assert_eq!(r.reach, Reach::Node);
                }
                if let Some(end) = pos(Action::EndEnclave) {
                    assert!(r.actions.iter().skip(end + 1).all(|a| *a != Action::EndEnclave));
                    assert!(pos(Action::ScrubMemory).is_some_and(|s| s > end));
                }
                // Grants are revoked exactly when the policy lets the enclave have them.
                let revokes = pos(Action::RevokeGrants).is_some();
                assert_eq!(revokes, r.reach == Reach::SharedData, "{zone} {policy}");
                // Zone 1 is never contained; zone 4 never leaves the guest.
                match zone {
                    Zone::HostKernel => assert_eq!(r.reach, Reach::Node),
                    Zone::GuestUser => assert_eq!(r.reach, Reach::Process),
                    _ => assert_eq!(policy.response(Zone::HostUser), policy.response(Zone::GuestKernel)),
                }
            }
        }
    }

    #[test]
    fn what_each_policy_allows() {
        assert!(!Policy::Strict.allows_segments() && !Policy::Strict.allows_devices());
        assert!(Policy::Shared.allows_segments() && !Policy::Shared.allows_devices());
        assert!(Policy::Node.allows_segments() && Policy::Node.allows_devices());
        for p in POLICIES {
            assert!(!p.io().is_empty() && !p.summary().is_empty());
        }
        assert_eq!(Zone::GuestKernel.to_string(), "zone 3 (guest kernel)");
        assert_eq!(ZONES.map(Zone::number), [1, 2, 3, 4]);
    }

    #[test]
    fn markdown_has_every_cell() {
        let t = markdown_table();
        assert_eq!(t.lines().count(), 2 + ZONES.len() * POLICIES.len());
        assert!(t.contains("| 3 | strict | enclave | zone 4 |"));
        assert!(t.contains("| 3 | node | node | zone 1 | report, stop the node |"));
    }
}
