//! The partition of a node: which cores, how much memory and which devices each enclave owns.
//!
//! Core 0 belongs to the kernel's control plane and is never given to an enclave. Every other
//! core belongs to at most one enclave; memory is counted in bytes (the LWK reserves it as
//! physically contiguous blocks and may record the ranges it took, which must then be disjoint).
//! Shared segments take their memory from the same pool.
//!
//! [`Partition::plan`] places a whole batch (a manifest) or nothing: cores listed by number first,
//! then requests for a number of cores (the highest free ones, as the command line's VMs do), then
//! even shares of the cores left (in ascending order, as the command line's jobs do). Memory asked
//! in bytes is set aside before the even shares, which split three quarters of what is left.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::values::{CpuSet, Size, shorten};

/// Memory is accounted in whole pages of this size (requests are rounded up).
pub const PAGE_SIZE: u64 = x86::bits64::paging::BASE_PAGE_SIZE as u64;
/// Even memory shares are rounded down to this (so the LWK can use 2 MiB pages).
pub const SHARE_ALIGN: u64 = 2 << 20;
/// Longest device name, in bytes.
pub const MAX_DEVICE_NAME: usize = 64;

/// A range of physical memory: `len` bytes from `start`. Never empty, never past 2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemRange {
    start: u64,
    len: u64,
}

impl MemRange {
    /// `None` if `len` is zero or the range would run past 2^64.
    pub fn new(start: u64, len: u64) -> Option<Self> {
        (len != 0 && start.checked_add(len - 1).is_some()).then_some(Self { start, len })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a range is never empty (here for the `len`/`is_empty` pair).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The last byte of the range (inclusive).
    pub fn last(&self) -> u64 {
        self.start + (self.len - 1)
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.start <= other.last() && other.start <= self.last()
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr <= self.last()
    }
}

impl fmt::Display for MemRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x} ({})", self.start, self.last(), Size(self.len))
    }
}

/// What a node offers to enclaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The CPUs that are online (core 0 included: it is the kernel's, never given out).
    pub cpus: CpuSet,
    /// Memory the enclaves and shared segments may take, in bytes (free memory after boot).
    pub memory_bytes: u64,
    /// Devices that may be given to an enclave (e.g. `nic0`, `pci-0000:03:00.0`).
    pub devices: Vec<String>,
}

impl Node {
    pub fn new(cpus: CpuSet, memory_bytes: u64) -> Self {
        Self { cpus, memory_bytes, devices: Vec::new() }
    }

    pub fn with_devices(mut self, devices: impl IntoIterator<Item = String>) -> Self {
        self.devices.extend(devices);
        self
    }
}

/// A device name: 1 to [`MAX_DEVICE_NAME`] printable ASCII characters, none of them a space,
/// a comma or a bracket.
pub fn valid_device(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DEVICE_NAME
        && name.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'[' | b']'))
}

/// Which cores an enclave asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreRequest {
    /// These cores (manifest: `cores = 1-3,5`).
    List(CpuSet),
    /// This many free cores, the highest-numbered ones (manifest: `cores = any 2`).
    Count(usize),
    /// An even share of the cores nobody asked for (manifest: `cores = share`).
    Share,
}

impl fmt::Display for CoreRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::List(set) => write!(f, "{set}"),
            Self::Count(n) => write!(f, "any {n}"),
            Self::Share => f.write_str("share"),
        }
    }
}

/// How much memory an enclave asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryRequest {
    /// This many bytes (rounded up to whole pages).
    Bytes(u64),
    /// An even share of three quarters of what is left once the byte requests are set aside.
    Share,
}

impl fmt::Display for MemoryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(n) => write!(f, "{}", Size(*n)),
            Self::Share => f.write_str("share"),
        }
    }
}

/// One enclave's demand on the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub cores: CoreRequest,
    pub memory: MemoryRequest,
    pub devices: Vec<String>,
}

/// What one enclave received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub cores: CpuSet,
    /// Whole pages.
    pub memory_bytes: u64,
    pub devices: Vec<String>,
    /// The physical ranges the LWK took for it, once recorded ([`Partition::record_ranges`]).
    pub ranges: Vec<MemRange>,
}

/// Who owns some memory: an enclave or a shared segment (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Enclave(String),
    Segment(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Enclave(n) => write!(f, "enclave `{n}`"),
            Self::Segment(n) => write!(f, "segment `{n}`"),
        }
    }
}

/// Why the partition refused a request. Every variant names the enclave (or segment) and, for a
/// conflict, the other party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionError {
    BadName(String),
    DuplicateName(Owner),
    NoSuchEnclave(String),
    NoSuchSegment(String),
    EmptyCores { enclave: String },
    CoreZero { enclave: String },
    NoSuchCpu { enclave: String, cpu: usize, node: CpuSet },
    CoreTaken { enclave: String, cpu: usize, by: String },
    NotEnoughCores { enclave: String, wanted: usize, free: usize },
    NoCoreForShare { enclave: String },
    ZeroMemory(Owner),
    NotEnoughMemory { owner: Owner, wanted: u64, free: u64 },
    NoMemoryForShare { enclave: String, free: u64 },
    BadDevice { enclave: String, device: String },
    NoSuchDevice { enclave: String, device: String },
    DeviceTaken { enclave: String, device: String, by: String },
    RangeOverlap { owner: Owner, range: MemRange, other: Owner, other_range: MemRange },
    RangesExceedReservation { owner: Owner, recorded: u64, reserved: u64 },
}

impl PartitionError {
    /// The enclave (or segment) the error is about, if it names one.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::BadName(n) | Self::NoSuchEnclave(n) | Self::NoSuchSegment(n) => Some(n),
            Self::DuplicateName(o)
            | Self::ZeroMemory(o)
            | Self::NotEnoughMemory { owner: o, .. }
            | Self::RangeOverlap { owner: o, .. }
            | Self::RangesExceedReservation { owner: o, .. } => match o {
                Owner::Enclave(n) | Owner::Segment(n) => Some(n),
            },
            Self::EmptyCores { enclave }
            | Self::CoreZero { enclave }
            | Self::NoSuchCpu { enclave, .. }
            | Self::CoreTaken { enclave, .. }
            | Self::NotEnoughCores { enclave, .. }
            | Self::NoCoreForShare { enclave }
            | Self::NoMemoryForShare { enclave, .. }
            | Self::BadDevice { enclave, .. }
            | Self::NoSuchDevice { enclave, .. }
            | Self::DeviceTaken { enclave, .. } => Some(enclave),
        }
    }
}

impl fmt::Display for PartitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(n) => {
                write!(f, "`{}` is not a name (1 to 64 letters, digits, '-' and '_')", shorten(n))
            }
            Self::DuplicateName(o) => write!(f, "{o} already exists"),
            Self::NoSuchEnclave(n) => write!(f, "no enclave named `{n}`"),
            Self::NoSuchSegment(n) => write!(f, "no segment named `{n}`"),
            Self::EmptyCores { enclave } => write!(f, "enclave `{enclave}`: asks for no core"),
            Self::CoreZero { enclave } => {
                write!(f, "enclave `{enclave}`: core 0 is the kernel's control core, never an enclave's")
            }
            Self::NoSuchCpu { enclave, cpu, node } => {
                write!(f, "enclave `{enclave}`: core {cpu} does not exist or is offline (the node has cores {node})")
            }
            Self::CoreTaken { enclave, cpu, by } => {
                write!(f, "enclave `{enclave}`: core {cpu} is already enclave `{by}`'s")
            }
            Self::NotEnoughCores { enclave, wanted, free } => {
                write!(f, "enclave `{enclave}`: asks for {wanted} free cores, {free} left")
            }
            Self::NoCoreForShare { enclave } => {
                write!(f, "enclave `{enclave}`: no free core left for its share (name its cores)")
            }
            Self::ZeroMemory(o) => write!(f, "{o}: memory must be more than zero"),
            Self::NotEnoughMemory { owner, wanted, free } => {
                write!(f, "{owner}: asks for {} of memory, {} left", Size(*wanted), Size(*free))
            }
            Self::NoMemoryForShare { enclave, free } => write!(
                f,
                "enclave `{enclave}`: {} of memory left is too little for its share (give its memory)",
                Size(*free)
            ),
            Self::BadDevice { enclave, device } => {
                write!(f, "enclave `{enclave}`: `{}` is not a device name", shorten(device))
            }
            Self::NoSuchDevice { enclave, device } => {
                write!(f, "enclave `{enclave}`: device `{device}` does not exist on this node")
            }
            Self::DeviceTaken { enclave, device, by } => {
                write!(f, "enclave `{enclave}`: device `{device}` is already enclave `{by}`'s")
            }
            Self::RangeOverlap { owner, range, other, other_range } => {
                write!(f, "{owner}: memory {range} overlaps {other_range} of {other}")
            }
            Self::RangesExceedReservation { owner, recorded, reserved } => {
                write!(f, "{owner}: {} of memory ranges recorded, only {} reserved", Size(*recorded), Size(*reserved))
            }
        }
    }
}

/// Memory set aside for one shared segment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SegmentMemory {
    name: String,
    bytes: u64,
    range: Option<MemRange>,
}

/// The node's partition: what is given to whom, and what is free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    node: Node,
    enclaves: Vec<Assignment>,
    segments: Vec<SegmentMemory>,
}

impl Partition {
    pub fn new(node: Node) -> Self {
        Self { node, enclaves: Vec::new(), segments: Vec::new() }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Every enclave's assignment, in the order they were placed.
    pub fn assignments(&self) -> &[Assignment] {
        &self.enclaves
    }

    pub fn get(&self, name: &str) -> Option<&Assignment> {
        self.enclaves.iter().find(|a| a.name == name)
    }

    /// Online cores that are neither core 0 nor an enclave's.
    pub fn free_cpus(&self) -> CpuSet {
        let mut free = self.node.cpus.clone();
        free.remove(0);
        self.enclaves.iter().fold(free, |free, a| free.difference(&a.cores))
    }

    /// Memory given to enclaves and segments.
    pub fn used_memory(&self) -> u64 {
        let enclaves = self.enclaves.iter().fold(0u64, |sum, a| sum.saturating_add(a.memory_bytes));
        self.segments.iter().fold(enclaves, |sum, s| sum.saturating_add(s.bytes))
    }

    pub fn free_memory(&self) -> u64 {
        self.node.memory_bytes.saturating_sub(self.used_memory())
    }

    /// Places one enclave (a console `create`); see [`Partition::plan`].
    pub fn assign(&mut self, request: &Request) -> Result<Assignment, PartitionError> {
        let mut placed = self.plan(core::slice::from_ref(request))?;
        placed.pop().ok_or_else(|| PartitionError::NoSuchEnclave(request.name.clone()))
    }

    /// Places a batch of enclaves, all or none: on error the partition is unchanged and the error
    /// names the first enclave (in batch order) that could not be placed.
    pub fn plan(&mut self, requests: &[Request]) -> Result<Vec<Assignment>, PartitionError> {
        let mut placed: Vec<Assignment> = Vec::with_capacity(requests.len());
        let owner_of_core = |placed: &[Assignment], cpu: usize| {
            self.enclaves.iter().chain(placed).find(|a| a.cores.contains(cpu)).map(|a| a.name.clone())
        };
        // Names, listed cores, devices.
        for r in requests {
            if !crate::valid_name(&r.name) {
                return Err(PartitionError::BadName(r.name.clone()));
            }
            if self.get(&r.name).is_some() || placed.iter().any(|a| a.name == r.name) {
                return Err(PartitionError::DuplicateName(Owner::Enclave(r.name.clone())));
            }
            let enclave = || r.name.clone();
            let mut cores = CpuSet::new();
            if let CoreRequest::List(list) = &r.cores {
                if list.is_empty() {
                    return Err(PartitionError::EmptyCores { enclave: enclave() });
                }
                if list.contains(0) {
                    return Err(PartitionError::CoreZero { enclave: enclave() });
                }
                if let Some(cpu) = list.difference(&self.node.cpus).first() {
                    return Err(PartitionError::NoSuchCpu { enclave: enclave(), cpu, node: self.node.cpus.clone() });
                }
                for cpu in list.iter() {
                    if let Some(by) = owner_of_core(&placed, cpu) {
                        return Err(PartitionError::CoreTaken { enclave: enclave(), cpu, by });
                    }
                }
                cores = list.clone();
            }
            for (i, device) in r.devices.iter().enumerate() {
                if !valid_device(device) {
                    return Err(PartitionError::BadDevice { enclave: enclave(), device: device.clone() });
                }
                if !self.node.devices.contains(device) {
                    return Err(PartitionError::NoSuchDevice { enclave: enclave(), device: device.clone() });
                }
                let by =
                    self.enclaves.iter().chain(&placed).find(|a| a.devices.contains(device)).map(|a| a.name.clone());
                let by = by.or_else(|| r.devices.get(..i).filter(|d| d.contains(device)).map(|_| r.name.clone()));
                if let Some(by) = by {
                    return Err(PartitionError::DeviceTaken { enclave: enclave(), device: device.clone(), by });
                }
            }
            placed.push(Assignment {
                name: r.name.clone(),
                cores,
                memory_bytes: 0,
                devices: r.devices.clone(),
                ranges: Vec::new(),
            });
        }
        // Counted cores: the highest free ones.
        let mut free = placed.iter().fold(self.free_cpus(), |free, a| free.difference(&a.cores));
        for (r, a) in requests.iter().zip(placed.iter_mut()) {
            if let CoreRequest::Count(wanted) = r.cores {
                if wanted == 0 {
                    return Err(PartitionError::EmptyCores { enclave: r.name.clone() });
                }
                if free.len() < wanted {
                    return Err(PartitionError::NotEnoughCores { enclave: r.name.clone(), wanted, free: free.len() });
                }
                for cpu in free.iter().rev().take(wanted) {
                    a.cores.set_bit(cpu);
                }
                free = free.difference(&a.cores);
            }
        }
        // Even shares of the rest, ascending.
        let sharing = requests.iter().filter(|r| r.cores == CoreRequest::Share).count();
        let share = free.len().checked_div(sharing).unwrap_or(0);
        let mut rest = free.iter();
        for (r, a) in requests.iter().zip(placed.iter_mut()) {
            if r.cores == CoreRequest::Share {
                if share == 0 {
                    return Err(PartitionError::NoCoreForShare { enclave: r.name.clone() });
                }
                for cpu in rest.by_ref().take(share) {
                    a.cores.set_bit(cpu);
                }
            }
        }
        // Memory: byte requests first, then even shares of three quarters of the rest.
        let mut left = self.free_memory();
        for (r, a) in requests.iter().zip(placed.iter_mut()) {
            if let MemoryRequest::Bytes(bytes) = r.memory {
                let owner = || Owner::Enclave(r.name.clone());
                if bytes == 0 {
                    return Err(PartitionError::ZeroMemory(owner()));
                }
                let wanted = round_up_to_page(bytes);
                if wanted > left {
                    return Err(PartitionError::NotEnoughMemory { owner: owner(), wanted, free: left });
                }
                left -= wanted;
                a.memory_bytes = wanted;
            }
        }
        let sharing = requests.iter().filter(|r| r.memory == MemoryRequest::Share).count() as u64;
        let share = (left / 4 * 3).checked_div(sharing).unwrap_or(0) & !(SHARE_ALIGN - 1);
        for (r, a) in requests.iter().zip(placed.iter_mut()) {
            if r.memory == MemoryRequest::Share {
                if share == 0 {
                    return Err(PartitionError::NoMemoryForShare { enclave: r.name.clone(), free: left });
                }
                a.memory_bytes = share;
            }
        }
        self.enclaves.extend(placed.iter().cloned());
        Ok(placed)
    }

    /// Gives an enclave's cores, memory and devices back; its assignment, if it had one.
    pub fn release(&mut self, name: &str) -> Option<Assignment> {
        let i = self.enclaves.iter().position(|a| a.name == name)?;
        Some(self.enclaves.remove(i))
    }

    /// Sets memory aside for a shared segment (rounded up to whole pages).
    pub fn reserve_segment(&mut self, name: &str, bytes: u64) -> Result<(), PartitionError> {
        let owner = || Owner::Segment(name.to_string());
        if !crate::valid_name(name) {
            return Err(PartitionError::BadName(name.to_string()));
        }
        if self.segments.iter().any(|s| s.name == name) {
            return Err(PartitionError::DuplicateName(owner()));
        }
        if bytes == 0 {
            return Err(PartitionError::ZeroMemory(owner()));
        }
        let wanted = round_up_to_page(bytes);
        let free = self.free_memory();
        if wanted > free {
            return Err(PartitionError::NotEnoughMemory { owner: owner(), wanted, free });
        }
        self.segments.push(SegmentMemory { name: name.to_string(), bytes: wanted, range: None });
        Ok(())
    }

    /// Gives a segment's memory back; `true` if it existed.
    pub fn release_segment(&mut self, name: &str) -> bool {
        let before = self.segments.len();
        self.segments.retain(|s| s.name != name);
        self.segments.len() != before
    }

    /// The memory set aside for a segment, in bytes.
    pub fn segment_bytes(&self, name: &str) -> Option<u64> {
        self.segments.iter().find(|s| s.name == name).map(|s| s.bytes)
    }

    /// Records the physical ranges the LWK reserved for an enclave (replacing earlier ones):
    /// they must fit its reservation and overlap no other enclave's or segment's ranges.
    pub fn record_ranges(&mut self, name: &str, ranges: &[MemRange]) -> Result<(), PartitionError> {
        let owner = Owner::Enclave(name.to_string());
        let reserved = self.get(name).ok_or_else(|| PartitionError::NoSuchEnclave(name.to_string()))?.memory_bytes;
        self.check_ranges(&owner, ranges, reserved)?;
        if let Some(a) = self.enclaves.iter_mut().find(|a| a.name == name) {
            a.ranges = ranges.to_vec();
        }
        Ok(())
    }

    /// Records the physical range the LWK reserved for a segment (one contiguous range).
    pub fn record_segment_range(&mut self, name: &str, range: MemRange) -> Result<(), PartitionError> {
        let owner = Owner::Segment(name.to_string());
        let reserved = self.segment_bytes(name).ok_or_else(|| PartitionError::NoSuchSegment(name.to_string()))?;
        self.check_ranges(&owner, &[range], reserved)?;
        if let Some(s) = self.segments.iter_mut().find(|s| s.name == name) {
            s.range = Some(range);
        }
        Ok(())
    }

    /// The range recorded for a segment.
    pub fn segment_range(&self, name: &str) -> Option<MemRange> {
        self.segments.iter().find(|s| s.name == name).and_then(|s| s.range)
    }

    fn check_ranges(&self, owner: &Owner, ranges: &[MemRange], reserved: u64) -> Result<(), PartitionError> {
        let recorded = ranges.iter().fold(0u64, |sum, r| sum.saturating_add(r.len()));
        if recorded > reserved {
            return Err(PartitionError::RangesExceedReservation { owner: owner.clone(), recorded, reserved });
        }
        let others = self
            .enclaves
            .iter()
            .flat_map(|a| a.ranges.iter().map(move |r| (Owner::Enclave(a.name.clone()), *r)))
            .chain(self.segments.iter().filter_map(|s| s.range.map(|r| (Owner::Segment(s.name.clone()), r))))
            .filter(|(o, _)| o != owner);
        let mut earlier: Vec<(Owner, MemRange)> = others.collect();
        for range in ranges {
            if let Some((other, other_range)) = earlier.iter().find(|(_, r)| r.overlaps(range)) {
                return Err(PartitionError::RangeOverlap {
                    owner: owner.clone(),
                    range: *range,
                    other: other.clone(),
                    other_range: *other_range,
                });
            }
            earlier.push((owner.clone(), *range));
        }
        Ok(())
    }
}

/// `bytes` rounded up to whole pages (saturating at the last whole page below 2^64).
fn round_up_to_page(bytes: u64) -> u64 {
    match bytes.checked_add(PAGE_SIZE - 1) {
        Some(n) => n & !(PAGE_SIZE - 1),
        None => !(PAGE_SIZE - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    fn req(name: &str, cores: CoreRequest, memory: MemoryRequest) -> Request {
        Request { name: name.into(), cores, memory, devices: Vec::new() }
    }

    const M: u64 = 1 << 20;

    #[test]
    fn memory_ranges() {
        assert!(MemRange::new(0, 0).is_none());
        assert!(MemRange::new(u64::MAX, 2).is_none());
        let top = MemRange::new(u64::MAX, 1).unwrap();
        assert_eq!(top.last(), u64::MAX);
        let a = MemRange::new(0x1000, 0x1000).unwrap();
        let b = MemRange::new(0x2000, 0x1000).unwrap();
        let c = MemRange::new(0x1fff, 2).unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && c.overlaps(&b));
        assert!(a.contains(0x1fff) && !a.contains(0x2000));
        assert_eq!(a.to_string(), "0x1000-0x1fff (4K)");
        assert!(!top.overlaps(&a));
    }

    fn node() -> Node {
        Node::new(set("0-7"), 1024 * M).with_devices(["nic0".to_string(), "gpu0".to_string()])
    }

    #[test]
    fn listed_counted_and_shared_cores() {
        let mut p = Partition::new(node());
        let placed = p
            .plan(&[
                req("job1", CoreRequest::Share, MemoryRequest::Share),
                req("vm1", CoreRequest::Count(1), MemoryRequest::Bytes(256 * M)),
                req("sim", CoreRequest::List(set("1-2")), MemoryRequest::Bytes(100 * M + 1)),
                req("job2", CoreRequest::Share, MemoryRequest::Share),
            ])
            .unwrap();
        let cores: Vec<String> = placed.iter().map(|a| a.cores.to_string()).collect();
        assert_eq!(cores, ["3-4", "7", "1-2", "5-6"]);
        assert_eq!(placed[2].memory_bytes, 100 * M + 4096, "rounded up to a page");
        // (1024M - 256M - 100M - 4K) * 3/4 / 2, rounded down to 2 MiB.
        let share = ((1024 * M - 356 * M - 4096) / 4 * 3 / 2) & !(SHARE_ALIGN - 1);
        assert_eq!(placed[0].memory_bytes, share);
        assert_eq!(placed[3].memory_bytes, share);
        assert_eq!(p.free_cpus(), CpuSet::new());
        assert_eq!(p.used_memory(), 356 * M + 4096 + 2 * share);
        assert_eq!(p.assignments().len(), 4);
        assert_eq!(p.get("vm1").unwrap().cores, set("7"));
        // Released cores come back.
        assert_eq!(p.release("vm1").unwrap().name, "vm1");
        assert!(p.release("vm1").is_none());
        assert_eq!(p.free_cpus(), set("7"));
        let a = p.assign(&req("late", CoreRequest::Count(1), MemoryRequest::Bytes(M))).unwrap();
        assert_eq!(a.cores, set("7"));
        assert_eq!(p.node().cpus, set("0-7"));
    }

    #[test]
    fn uneven_shares_leave_cores_free() {
        let mut p = Partition::new(Node::new(set("0-7"), 1024 * M));
        let placed = p
            .plan(&[
                req("a", CoreRequest::Share, MemoryRequest::Share),
                req("b", CoreRequest::Share, MemoryRequest::Share),
            ])
            .unwrap();
        assert_eq!((placed[0].cores.to_string(), placed[1].cores.to_string()), ("1-3".into(), "4-6".into()));
        assert_eq!(p.free_cpus(), set("7"));
    }

    fn refused(p: &mut Partition, requests: &[Request]) -> String {
        let before = p.clone();
        let e = p.plan(requests).unwrap_err();
        assert_eq!(*p, before, "a refused plan changes nothing");
        e.to_string()
    }

    #[test]
    fn core_conflicts_are_named() {
        let mut p = Partition::new(node());
        p.assign(&req("sim", CoreRequest::List(set("1-2")), MemoryRequest::Bytes(M))).unwrap();
        let m = MemoryRequest::Bytes(M);
        let e = refused(&mut p, &[req("viz", CoreRequest::List(set("2-3")), m)]);
        assert_eq!(e, "enclave `viz`: core 2 is already enclave `sim`'s");
        let e =
            refused(&mut p, &[req("a", CoreRequest::List(set("3-4")), m), req("b", CoreRequest::List(set("4")), m)]);
        assert_eq!(e, "enclave `b`: core 4 is already enclave `a`'s");
        let e = refused(&mut p, &[req("a", CoreRequest::List(set("0-1")), m)]);
        assert!(e.contains("core 0 is the kernel's"), "{e}");
        let e = refused(&mut p, &[req("a", CoreRequest::List(set("9")), m)]);
        assert_eq!(e, "enclave `a`: core 9 does not exist or is offline (the node has cores 0-7)");
        let e = refused(&mut p, &[req("a", CoreRequest::List(CpuSet::new()), m)]);
        assert!(e.contains("no core"), "{e}");
        let e = refused(&mut p, &[req("a", CoreRequest::Count(0), m)]);
        assert!(e.contains("no core"), "{e}");
        let e = refused(&mut p, &[req("a", CoreRequest::Count(6), m)]);
        assert_eq!(e, "enclave `a`: asks for 6 free cores, 5 left");
        let e = refused(&mut p, &[req("a", CoreRequest::List(set("3-7")), m), req("b", CoreRequest::Share, m)]);
        assert!(e.contains("enclave `b`: no free core left"), "{e}");
        let e = refused(&mut p, &[req("sim", CoreRequest::Share, m)]);
        assert_eq!(e, "enclave `sim` already exists");
        let e = refused(&mut p, &[req("x", CoreRequest::Share, m), req("x", CoreRequest::Share, m)]);
        assert_eq!(e, "enclave `x` already exists");
        let e = refused(&mut p, &[req("bad name", CoreRequest::Share, m)]);
        assert!(e.contains("not a name"), "{e}");
    }

    #[test]
    fn memory_and_devices() {
        let mut p = Partition::new(node());
        let c = |s: &str| CoreRequest::List(set(s));
        let e = refused(&mut p, &[req("a", c("1"), MemoryRequest::Bytes(2048 * M))]);
        assert_eq!(e, "enclave `a`: asks for 2G of memory, 1G left");
        let e = refused(
            &mut p,
            &[req("a", c("1"), MemoryRequest::Bytes(800 * M)), req("b", c("2"), MemoryRequest::Bytes(300 * M))],
        );
        assert_eq!(e, "enclave `b`: asks for 300M of memory, 224M left");
        let e = refused(&mut p, &[req("a", c("1"), MemoryRequest::Bytes(0))]);
        assert!(e.contains("more than zero"));
        let e = refused(&mut p, &[req("a", c("1"), MemoryRequest::Bytes(u64::MAX))]);
        assert!(e.contains("left"), "{e}");
        let e = refused(
            &mut p,
            &[req("a", c("1"), MemoryRequest::Bytes(1023 * M)), req("b", c("2"), MemoryRequest::Share)],
        );
        assert!(e.contains("enclave `b`: 1M of memory left is too little"), "{e}");

        let mut with = |name: &str, devices: &[&str]| {
            let mut r = req(name, CoreRequest::Count(1), MemoryRequest::Bytes(M));
            r.devices = devices.iter().map(|d| d.to_string()).collect();
            p.assign(&r).map_err(|e| e.to_string())
        };
        assert_eq!(with("a", &["nic0"]).unwrap().devices, ["nic0"]);
        assert_eq!(with("b", &["nic0"]).unwrap_err(), "enclave `b`: device `nic0` is already enclave `a`'s");
        assert_eq!(with("b", &["gpu0", "gpu0"]).unwrap_err(), "enclave `b`: device `gpu0` is already enclave `b`'s");
        assert_eq!(with("b", &["disk"]).unwrap_err(), "enclave `b`: device `disk` does not exist on this node");
        assert!(with("b", &["a b"]).unwrap_err().contains("not a device name"));
        assert!(valid_device("pci-0000:03:00.0"));
        assert!(!valid_device("a,b") && !valid_device("") && !valid_device(&"d".repeat(65)));
    }

    #[test]
    fn segments_and_recorded_ranges() {
        let mut p = Partition::new(node());
        p.reserve_segment("results", 64 * M).unwrap();
        assert_eq!(p.segment_bytes("results"), Some(64 * M));
        assert_eq!(p.free_memory(), 960 * M);
        assert_eq!(p.reserve_segment("results", M).unwrap_err().to_string(), "segment `results` already exists");
        assert!(p.reserve_segment("big", 961 * M).unwrap_err().to_string().contains("segment `big`: asks for 961M"));
        assert!(p.reserve_segment("zero", 0).is_err());
        assert!(p.reserve_segment("", 1).is_err());
        p.assign(&req("a", CoreRequest::List(set("1")), MemoryRequest::Bytes(4 * M))).unwrap();
        p.assign(&req("b", CoreRequest::List(set("2")), MemoryRequest::Bytes(4 * M))).unwrap();
        let r = |start: u64, len: u64| MemRange::new(start, len).unwrap();
        p.record_ranges("a", &[r(0x100_0000, 2 * M), r(0x400_0000, 2 * M)]).unwrap();
        let e = p.record_ranges("b", &[r(0x110_0000, M)]).unwrap_err().to_string();
        assert_eq!(e, "enclave `b`: memory 0x1100000-0x11fffff (1M) overlaps 0x1000000-0x11fffff (2M) of enclave `a`");
        let e = p.record_ranges("b", &[r(0, M), r(M / 2, M)]).unwrap_err().to_string();
        assert!(e.contains("of enclave `b`"), "{e}");
        let e = p.record_ranges("b", &[r(0, 8 * M)]).unwrap_err().to_string();
        assert_eq!(e, "enclave `b`: 8M of memory ranges recorded, only 4M reserved");
        assert!(p.record_ranges("nobody", &[]).is_err());
        p.record_segment_range("results", r(0x800_0000, 64 * M)).unwrap();
        assert_eq!(p.segment_range("results"), Some(r(0x800_0000, 64 * M)));
        let e = p.record_ranges("b", &[r(0x800_0000, M)]).unwrap_err().to_string();
        assert!(e.ends_with("of segment `results`"), "{e}");
        // Recording again replaces the enclave's own ranges.
        p.record_ranges("a", &[r(0x100_0000, 4 * M)]).unwrap();
        assert!(p.record_segment_range("nothing", r(0, 1)).is_err());
        assert!(p.release_segment("results"));
        assert!(!p.release_segment("results"));
        assert_eq!(p.segment_range("results"), None);
    }

    #[test]
    fn every_error_names_its_subject() {
        let errors = [
            PartitionError::CoreZero { enclave: "e".into() },
            PartitionError::ZeroMemory(Owner::Segment("e".into())),
            PartitionError::NoSuchEnclave("e".into()),
        ];
        for e in errors {
            assert_eq!(e.subject(), Some("e"));
        }
    }
}
