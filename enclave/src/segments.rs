//! Shared segments (after XEMEM): a named, physically contiguous piece of memory granted to
//! several enclaves, each with read or read-write access.
//!
//! Only enclaves whose policy allows it (`shared` or `node`) receive grants. When an enclave ends
//! its grants are revoked ([`SegmentTable::revoke_all`]); when it crashes under `shared`, the
//! segments it could write are also marked suspect and the other enclaves that share them are
//! named so they can be told ([`SegmentTable::contain`]). A suspect segment takes no new grant
//! until the control plane clears it.
//!
//! The memory itself is set aside by [`crate::Partition::reserve_segment`]; the LWK maps it into
//! a job with `mmap` of `/dev/manul/seg/NAME` and into a VM as a PCI BAR or reserved range.

use crate::isolation::Policy;
use crate::partition::PAGE_SIZE;
use crate::values::{Size, shorten};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What a grant lets an enclave do with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    Read,
    ReadWrite,
}

impl Access {
    /// `r` (or `ro`) and `rw`.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "r" | "ro" => Some(Self::Read),
            "rw" => Some(Self::ReadWrite),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Read => "r",
            Self::ReadWrite => "rw",
        }
    }

    pub const fn writable(self) -> bool {
        matches!(self, Self::ReadWrite)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One enclave's right to a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub enclave: String,
    pub access: Access,
}

/// A shared segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    /// Bytes, a multiple of 4 KiB.
    pub size: u64,
    /// A file system (mounted at `/shared/NAME` in the jobs granted it, `size` its limit), not
    /// memory.
    pub files: bool,
    /// In the order they were given.
    pub grants: Vec<Grant>,
    /// An enclave that could write it crashed: its data may be corrupt.
    pub suspect: bool,
}

/// Why a segment operation was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentError {
    BadName(String),
    Duplicate(String),
    BadSize { segment: String, size: u64 },
    NoSuchSegment(String),
    StrictEnclave { segment: String, enclave: String },
    AlreadyGranted { segment: String, enclave: String, access: Access },
    NotGranted { segment: String, enclave: String },
    Suspect(String),
    StillGranted { segment: String, enclaves: Vec<String> },
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(n) => write!(f, "`{}` is not a name (1 to 64 letters, digits, '-' and '_')", shorten(n)),
            Self::Duplicate(s) => write!(f, "segment `{s}` already exists"),
            Self::BadSize { segment, size } => {
                write!(f, "segment `{segment}`: size {} is not a non-zero multiple of 4K", Size(*size))
            }
            Self::NoSuchSegment(s) => write!(f, "no segment named `{}`", shorten(s)),
            Self::StrictEnclave { segment, enclave } => write!(
                f,
                "segment `{segment}` cannot be granted to enclave `{enclave}`: it is strict and shares no memory (use isolation = shared)"
            ),
            Self::AlreadyGranted { segment, enclave, access } => {
                write!(f, "segment `{segment}` is already granted to enclave `{enclave}` ({access})")
            }
            Self::NotGranted { segment, enclave } => {
                write!(f, "segment `{segment}` is not granted to enclave `{enclave}`")
            }
            Self::Suspect(s) => {
                write!(f, "segment `{s}` is suspect (an enclave that wrote it crashed); clear it before granting it")
            }
            Self::StillGranted { segment, enclaves } => {
                write!(f, "segment `{segment}` is still granted to {}", enclaves.join(", "))
            }
        }
    }
}

/// What [`SegmentTable::contain`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Containment {
    /// The grants the enclave had: (segment, access).
    pub revoked: Vec<(String, Access)>,
    /// The segments it could write, now suspect.
    pub suspect: Vec<String>,
    /// The other enclaves holding a grant to a suspect segment (sorted, once each).
    pub sharers: Vec<String>,
}

/// Every shared segment of the node and its grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentTable {
    segments: Vec<Segment>,
}

impl SegmentTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a segment of `size` bytes (a non-zero multiple of 4 KiB).
    pub fn define(&mut self, name: &str, size: u64, files: bool) -> Result<(), SegmentError> {
        if !crate::valid_name(name) {
            return Err(SegmentError::BadName(name.to_string()));
        }
        if self.get(name).is_some() {
            return Err(SegmentError::Duplicate(name.to_string()));
        }
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) {
            return Err(SegmentError::BadSize { segment: name.to_string(), size });
        }
        self.segments.push(Segment { name: name.to_string(), size, files, grants: Vec::new(), suspect: false });
        Ok(())
    }

    /// Removes a segment nobody holds a grant to.
    pub fn remove(&mut self, name: &str) -> Result<Segment, SegmentError> {
        let i = self.index(name)?;
        let enclaves: Vec<String> =
            self.segments.get(i).map(|s| s.grants.iter().map(|g| g.enclave.clone()).collect()).unwrap_or_default();
        if !enclaves.is_empty() {
            return Err(SegmentError::StillGranted { segment: name.to_string(), enclaves });
        }
        Ok(self.segments.remove(i))
    }

    pub fn get(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// The segments in the order they were defined.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Grants `segment` to `enclave` (whose policy is `policy`) with `access`.
    pub fn grant(&mut self, segment: &str, enclave: &str, policy: Policy, access: Access) -> Result<(), SegmentError> {
        let i = self.index(segment)?;
        if !crate::valid_name(enclave) {
            return Err(SegmentError::BadName(enclave.to_string()));
        }
        if !policy.allows_segments() {
            return Err(SegmentError::StrictEnclave { segment: segment.to_string(), enclave: enclave.to_string() });
        }
        let Some(s) = self.segments.get_mut(i) else { return Err(SegmentError::NoSuchSegment(segment.to_string())) };
        if let Some(g) = s.grants.iter().find(|g| g.enclave == enclave) {
            return Err(SegmentError::AlreadyGranted {
                segment: segment.to_string(),
                enclave: enclave.to_string(),
                access: g.access,
            });
        }
        if s.suspect {
            return Err(SegmentError::Suspect(segment.to_string()));
        }
        s.grants.push(Grant { enclave: enclave.to_string(), access });
        Ok(())
    }

    /// Takes `enclave`'s grant to `segment` away; the access it had.
    pub fn revoke(&mut self, segment: &str, enclave: &str) -> Result<Access, SegmentError> {
        let i = self.index(segment)?;
        let not_granted = || SegmentError::NotGranted { segment: segment.to_string(), enclave: enclave.to_string() };
        let s = self.segments.get_mut(i).ok_or_else(not_granted)?;
        let g = s.grants.iter().position(|g| g.enclave == enclave).ok_or_else(not_granted)?;
        Ok(s.grants.remove(g).access)
    }

    /// Takes every grant of `enclave` away (it ended): (segment, access) for each.
    pub fn revoke_all(&mut self, enclave: &str) -> Vec<(String, Access)> {
        let mut revoked = Vec::new();
        for s in &mut self.segments {
            if let Some(g) = s.grants.iter().position(|g| g.enclave == enclave) {
                revoked.push((s.name.clone(), s.grants.remove(g).access));
            }
        }
        revoked
    }

    /// `enclave` crashed under `shared`: revokes its grants, marks the segments it could write
    /// suspect, and names the other enclaves that hold grants to them.
    pub fn contain(&mut self, enclave: &str) -> Containment {
        let revoked = self.revoke_all(enclave);
        let mut out = Containment { revoked, ..Containment::default() };
        for (name, access) in &out.revoked {
            if !access.writable() {
                continue;
            }
            if let Some(s) = self.segments.iter_mut().find(|s| s.name == *name) {
                s.suspect = true;
                out.suspect.push(name.clone());
                out.sharers.extend(s.grants.iter().map(|g| g.enclave.clone()));
            }
        }
        out.sharers.sort_unstable();
        out.sharers.dedup();
        out
    }

    /// The control plane vouches for a suspect segment's data again (or scrubbed it).
    pub fn clear_suspect(&mut self, segment: &str) -> Result<(), SegmentError> {
        let i = self.index(segment)?;
        if let Some(s) = self.segments.get_mut(i) {
            s.suspect = false;
        }
        Ok(())
    }

    /// The grants `enclave` holds: (segment, access), in segment order.
    pub fn grants_of(&self, enclave: &str) -> Vec<(String, Access)> {
        self.segments
            .iter()
            .filter_map(|s| s.grants.iter().find(|g| g.enclave == enclave).map(|g| (s.name.clone(), g.access)))
            .collect()
    }

    /// The segments granted to `enclave` and to nobody else: granted anew, their data belongs to
    /// no one now (what earlier holders left must be scrubbed before `enclave` maps them).
    pub fn held_only_by(&self, enclave: &str) -> Vec<String> {
        self.segments
            .iter()
            .filter(|s| !s.grants.is_empty() && s.grants.iter().all(|g| g.enclave == enclave))
            .map(|s| s.name.clone())
            .collect()
    }

    /// The other enclaves that share at least one segment with `enclave` (sorted, once each).
    pub fn sharers_of(&self, enclave: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .segments
            .iter()
            .filter(|s| s.grants.iter().any(|g| g.enclave == enclave))
            .flat_map(|s| s.grants.iter().filter(|g| g.enclave != enclave).map(|g| g.enclave.clone()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn index(&self, name: &str) -> Result<usize, SegmentError> {
        self.segments.iter().position(|s| s.name == name).ok_or_else(|| SegmentError::NoSuchSegment(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    fn table() -> SegmentTable {
        let mut t = SegmentTable::new();
        t.define("results", 64 * M, false).unwrap();
        t.define("params", 4096, false).unwrap();
        t
    }

    #[test]
    fn access_words() {
        assert_eq!(Access::parse("r"), Some(Access::Read));
        assert_eq!(Access::parse("ro"), Some(Access::Read));
        assert_eq!(Access::parse("rw"), Some(Access::ReadWrite));
        assert_eq!(Access::parse("RW"), None);
        assert_eq!(Access::parse("w"), None);
        assert_eq!(Access::ReadWrite.to_string(), "rw");
    }

    #[test]
    fn define_and_remove() {
        let mut t = table();
        assert_eq!(t.define("results", M, false).unwrap_err().to_string(), "segment `results` already exists");
        assert_eq!(
            t.define("odd", 100, false).unwrap_err().to_string(),
            "segment `odd`: size 100 is not a non-zero multiple of 4K"
        );
        assert!(t.define("zero", 0, false).is_err());
        assert!(t.define("bad name", M, false).is_err());
        assert!(t.define(&"n".repeat(65), M, false).is_err());
        t.grant("params", "a", Policy::Shared, Access::Read).unwrap();
        assert_eq!(t.remove("params").unwrap_err().to_string(), "segment `params` is still granted to a");
        t.revoke("params", "a").unwrap();
        assert_eq!(t.remove("params").unwrap().name, "params");
        assert!(t.remove("params").is_err());
        assert_eq!(t.segments().len(), 1);
    }

    #[test]
    fn grants_follow_the_policy() {
        let mut t = table();
        let e = t.grant("results", "sim", Policy::Strict, Access::ReadWrite).unwrap_err();
        assert_eq!(e, SegmentError::StrictEnclave { segment: "results".into(), enclave: "sim".into() });
        assert!(e.to_string().contains("it is strict"));
        t.grant("results", "sim", Policy::Shared, Access::ReadWrite).unwrap();
        t.grant("results", "viz", Policy::Node, Access::Read).unwrap();
        let e = t.grant("results", "viz", Policy::Node, Access::ReadWrite).unwrap_err().to_string();
        assert_eq!(e, "segment `results` is already granted to enclave `viz` (r)");
        assert_eq!(
            t.grant("nope", "viz", Policy::Node, Access::Read).unwrap_err().to_string(),
            "no segment named `nope`"
        );
        assert!(t.grant("results", "", Policy::Shared, Access::Read).is_err());
        assert_eq!(t.grants_of("sim"), [("results".to_string(), Access::ReadWrite)]);
        assert_eq!(t.sharers_of("sim"), ["viz"]);
        assert!(t.sharers_of("nobody").is_empty());
        assert_eq!(t.revoke("results", "viz"), Ok(Access::Read));
        assert!(t.revoke("results", "viz").unwrap_err().to_string().contains("not granted"));
        assert!(t.revoke("nope", "viz").is_err());
    }

    #[test]
    fn revoke_all_and_containment() {
        let mut t = table();
        t.grant("results", "sim", Policy::Shared, Access::ReadWrite).unwrap();
        t.grant("params", "sim", Policy::Shared, Access::Read).unwrap();
        t.grant("results", "viz", Policy::Shared, Access::Read).unwrap();
        t.grant("params", "post", Policy::Shared, Access::ReadWrite).unwrap();
        t.grant("results", "post", Policy::Shared, Access::Read).unwrap();
        let c = t.contain("sim");
        assert_eq!(c.revoked, [("results".to_string(), Access::ReadWrite), ("params".to_string(), Access::Read)]);
        assert_eq!(c.suspect, ["results"], "only what it could write");
        assert_eq!(c.sharers, ["post", "viz"]);
        assert!(t.get("results").unwrap().suspect && !t.get("params").unwrap().suspect);
        assert!(t.grants_of("sim").is_empty());
        // Relaunch: no new grant to a suspect segment until it is cleared.
        let e = t.grant("results", "sim", Policy::Shared, Access::ReadWrite).unwrap_err();
        assert_eq!(e, SegmentError::Suspect("results".into()));
        t.clear_suspect("results").unwrap();
        t.grant("results", "sim", Policy::Shared, Access::ReadWrite).unwrap();
        assert!(t.clear_suspect("nope").is_err());
        assert_eq!(t.revoke_all("post").len(), 2);
        assert!(t.revoke_all("post").is_empty());
        assert_eq!(t.contain("nobody"), Containment::default());
    }

    #[test]
    fn segments_held_by_one_enclave_alone() {
        let mut t = table();
        t.grant("results", "sim", Policy::Shared, Access::ReadWrite).unwrap();
        t.grant("params", "sim", Policy::Shared, Access::Read).unwrap();
        t.grant("params", "viz", Policy::Shared, Access::Read).unwrap();
        assert_eq!(t.held_only_by("sim"), ["results"]);
        assert!(t.held_only_by("viz").is_empty());
        t.revoke_all("sim");
        assert_eq!(t.held_only_by("viz"), ["params"], "once the others are gone");
        assert!(t.held_only_by("nobody").is_empty());
    }
}
