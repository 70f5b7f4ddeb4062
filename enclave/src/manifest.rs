//! The node manifest: the enclaves to compose at boot, read from the initrd
//! ([`MANIFEST_PATH`]). An INI-like text, one `key = value` a line:
//!
//! ```text
//! # /etc/manul/node.conf
//! [enclave sim]
//! kind = job
//! program = /bin/sim
//! args = -n 1000 'with spaces'
//! env = OMP_NUM_THREADS=2
//! cores = 1-2
//! memory = 512M
//! isolation = shared
//! segments = results:rw
//! progress = 30s
//!
//! [enclave viz]
//! kind = vm
//! kernel = /boot/vmlinux
//! initrd = /boot/guest-initrd.cpio
//! cmdline = console=ttyS0 quiet
//! cores = 3
//! memory = 256M
//! isolation = shared
//! segments = results:r
//! heartbeat = 5s
//!
//! [segment results]
//! size = 64M
//! ```
//!
//! `docs/enclaves.md` is the reference of every key. A manifest is refused as a whole: parsing
//! returns every error found (each with its line and reason, in line order, at most
//! [`MAX_ERRORS`]). Errors of single lines and sections come first; the checks across sections
//! (unknown segments, overlapping cores) run only once every section is well formed. The checks
//! against the node itself (cores that exist, enough memory) are [`NodeManifest::plan`]'s.
//!
//! The kernel command line's `job=...` / `vm=NAME ...` forms are one-enclave sections: the LWK
//! writes them after the file's text and parses the whole. Specs built in code
//! ([`EnclaveSpec::job`] and [`EnclaveSpec::vm`], with the same defaults as a section) are
//! checked by [`NodeManifest::from_specs`], which checks exactly what parsing checks.

use crate::health::{Duration, DurationError, Heartbeat, parse_duration};
use crate::isolation::{Policy, UnknownPolicy};
use crate::partition::{CoreRequest, MemoryRequest, PAGE_SIZE, Partition, PartitionError, Request, valid_device};
use crate::segments::Access;
use crate::values::{
    CpuListError, CpuSet, MAX_CPUS, Size, SizeError, WordsError, join_words, parse_size, shorten, shorten_to,
    split_words,
};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Where the LWK looks for the manifest in the initrd.
pub const MANIFEST_PATH: &str = "/etc/manul/node.conf";
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Longest line, in bytes (without the line end).
pub const MAX_LINE: usize = 4096;
/// Most `[enclave]` sections, and most `[segment]` sections.
pub const MAX_SECTIONS: usize = 256;
/// Most errors reported for one manifest.
pub const MAX_ERRORS: usize = 20;
/// A VM's memory when it names none (`memory`, the command line's `vm.mem=`).
pub const DEFAULT_VM_MEMORY: u64 = 256 << 20;
/// Most live threads a job may be given (`threads`).
pub const MAX_JOB_THREADS: u32 = 1 << 16;
/// The smallest `kernel_memory` an enclave may name: its first process or its VM's control
/// structures need about this much.
pub const MIN_KERNEL_MEMORY: u64 = 1 << 20;
/// Time to a VM's first heartbeat when `heartbeat_grace` is not given.
pub const DEFAULT_HEARTBEAT_GRACE_NS: u64 = 60_000_000_000;

/// What an enclave runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A native job: LWK tasks running an unmodified static Linux executable.
    Job,
    /// A virtual machine run by the embedded VMM.
    Vm,
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Vm => "vm",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The program or guest an enclave runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    Job {
        /// Absolute path in the initrd.
        program: String,
        /// After `argv[0]` (which is the program path).
        args: Vec<String>,
        /// `NAME=VALUE` each.
        env: Vec<String>,
    },
    Vm {
        /// Absolute path in the initrd: a PVH ELF or a bzImage.
        kernel: String,
        initrd: Option<String>,
        cmdline: String,
    },
}

/// Where a spec came from in a manifest file: its section's line and each key's line.
#[derive(Clone, Debug, Default)]
struct Origin {
    section: Option<usize>,
    keys: Vec<(&'static str, usize)>,
}

/// Lines are where a spec was written, not what it says: specs compare equal whatever their origin.
impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Origin {}

impl Origin {
    fn line_of(&self, key: &str) -> Option<usize> {
        self.keys.iter().find(|(k, _)| *k == key).map(|(_, l)| *l).or(self.section)
    }
}

/// One enclave of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveSpec {
    pub name: String,
    pub image: Image,
    pub cores: CoreRequest,
    pub memory: MemoryRequest,
    pub isolation: Policy,
    /// Grants: (segment, access), in the order written.
    pub segments: Vec<(String, Access)>,
    pub devices: Vec<String>,
    /// VMs only: heartbeats through the heartbeat hypercall.
    pub heartbeat: Option<Heartbeat>,
    /// Jobs only: hung when no thread gains CPU time over this many ns.
    pub progress_ns: Option<u64>,
    /// Jobs only: most live threads (all its processes together); `None`: the LWK's default.
    pub max_threads: Option<u32>,
    /// Kernel memory the enclave may make the kernel hold (`kernel_memory`); `None`: the LWK's
    /// default share ([`crate::kernel_budget::default_budget`]).
    pub kernel_memory: Option<u64>,
    /// Jobs only: most bytes of files in its `/tmp` (`tmp_size`, as tmpfs `size=`); `None`:
    /// [`crate::kernel_budget::default_tmp_size`] of its budget.
    pub tmp_size: Option<u64>,
    origin: Origin,
}

impl EnclaveSpec {
    /// A job with a section's defaults: no arguments, an even share of the free cores and of the
    /// free memory, `strict`.
    pub fn job(name: &str, program: &str) -> Self {
        Self::new(name, Image::Job { program: program.into(), args: Vec::new(), env: Vec::new() })
    }

    /// A VM with a section's defaults: one free core (the highest), 256 MiB, `strict`.
    pub fn vm(name: &str, kernel: &str) -> Self {
        Self::new(name, Image::Vm { kernel: kernel.into(), initrd: None, cmdline: String::new() })
    }

    fn new(name: &str, image: Image) -> Self {
        let kind = match image {
            Image::Job { .. } => Kind::Job,
            Image::Vm { .. } => Kind::Vm,
        };
        Self {
            name: name.into(),
            image,
            cores: default_cores(kind),
            memory: default_memory(kind),
            isolation: Policy::Strict,
            segments: Vec::new(),
            devices: Vec::new(),
            heartbeat: None,
            progress_ns: None,
            max_threads: None,
            kernel_memory: None,
            tmp_size: None,
            origin: Origin::default(),
        }
    }

    /// A job's arguments (ignored for a VM).
    pub fn with_args(mut self, words: Vec<String>) -> Self {
        if let Image::Job { args, .. } = &mut self.image {
            *args = words;
        }
        self
    }

    /// A job's environment (ignored for a VM).
    pub fn with_env(mut self, words: Vec<String>) -> Self {
        if let Image::Job { env, .. } = &mut self.image {
            *env = words;
        }
        self
    }

    /// A VM's initrd (ignored for a job).
    pub fn with_initrd(mut self, path: &str) -> Self {
        if let Image::Vm { initrd, .. } = &mut self.image {
            *initrd = Some(path.into());
        }
        self
    }

    /// A VM's kernel command line (ignored for a job).
    pub fn with_cmdline(mut self, text: &str) -> Self {
        if let Image::Vm { cmdline, .. } = &mut self.image {
            *cmdline = text.into();
        }
        self
    }

    pub fn with_cores(mut self, cores: CoreRequest) -> Self {
        self.cores = cores;
        self
    }

    pub fn with_memory(mut self, memory: MemoryRequest) -> Self {
        self.memory = memory;
        self
    }

    pub fn with_isolation(mut self, policy: Policy) -> Self {
        self.isolation = policy;
        self
    }

    pub fn with_segment(mut self, segment: &str, access: Access) -> Self {
        self.segments.push((segment.into(), access));
        self
    }

    pub fn with_device(mut self, device: &str) -> Self {
        self.devices.push(device.into());
        self
    }

    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    pub fn with_progress(mut self, window_ns: u64) -> Self {
        self.progress_ns = Some(window_ns);
        self
    }

    pub fn with_max_threads(mut self, threads: u32) -> Self {
        self.max_threads = Some(threads);
        self
    }

    pub fn with_kernel_memory(mut self, bytes: u64) -> Self {
        self.kernel_memory = Some(bytes);
        self
    }

    pub fn with_tmp_size(mut self, bytes: u64) -> Self {
        self.tmp_size = Some(bytes);
        self
    }

    pub fn kind(&self) -> Kind {
        match self.image {
            Image::Job { .. } => Kind::Job,
            Image::Vm { .. } => Kind::Vm,
        }
    }

    /// The line of its `[enclave NAME]` header, if it came from a file.
    pub fn line(&self) -> Option<usize> {
        self.origin.section
    }

    /// Its demand on the partition.
    pub fn request(&self) -> Request {
        Request {
            name: self.name.clone(),
            cores: self.cores.clone(),
            memory: self.memory,
            devices: self.devices.clone(),
        }
    }

    /// Its `[enclave NAME]` section, in the manifest format (parsing it gives the spec back).
    pub fn to_section(&self) -> String {
        let mut out = alloc::format!("[enclave {}]\nkind = {}\n", self.name, self.kind());
        let mut line = |key: &str, value: &str| out.push_str(&alloc::format!("{key} = {value}\n"));
        match &self.image {
            Image::Job { program, args, env } => {
                line("program", program);
                if !args.is_empty() {
                    line("args", &join_words(args));
                }
                if !env.is_empty() {
                    line("env", &join_words(env));
                }
            }
            Image::Vm { kernel, initrd, cmdline } => {
                line("kernel", kernel);
                if let Some(initrd) = initrd {
                    line("initrd", initrd);
                }
                if !cmdline.is_empty() {
                    line("cmdline", cmdline);
                }
            }
        }
        line("cores", &self.cores.to_string());
        line("memory", &self.memory.to_string());
        line("isolation", self.isolation.name());
        if !self.segments.is_empty() {
            let grants: Vec<String> = self.segments.iter().map(|(s, a)| alloc::format!("{s}:{a}")).collect();
            line("segments", &grants.join(", "));
        }
        if !self.devices.is_empty() {
            line("devices", &self.devices.join(", "));
        }
        if let Some(hb) = self.heartbeat {
            line("heartbeat", &Duration(hb.period_ns).to_string());
            line("heartbeat_grace", &Duration(hb.grace_ns).to_string());
        }
        if let Some(window) = self.progress_ns {
            line("progress", &Duration(window).to_string());
        }
        if let Some(threads) = self.max_threads {
            line("threads", &threads.to_string());
        }
        if let Some(bytes) = self.kernel_memory {
            line("kernel_memory", &Size(bytes).to_string());
        }
        if let Some(bytes) = self.tmp_size {
            line("tmp_size", &Size(bytes).to_string());
        }
        out
    }
}

fn default_cores(kind: Kind) -> CoreRequest {
    match kind {
        Kind::Job => CoreRequest::Share,
        Kind::Vm => CoreRequest::Count(1),
    }
}

fn default_memory(kind: Kind) -> MemoryRequest {
    match kind {
        Kind::Job => MemoryRequest::Share,
        Kind::Vm => MemoryRequest::Bytes(DEFAULT_VM_MEMORY),
    }
}

/// One shared segment of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpec {
    pub name: String,
    /// Bytes: a non-zero multiple of 4 KiB.
    pub size: u64,
    /// `kind = files`: a file system of at most `size` bytes, mounted at `/shared/NAME` in the
    /// jobs granted it (`kind = memory`, the default: memory they map).
    pub files: bool,
    origin: Origin,
}

impl SegmentSpec {
    pub fn new(name: &str, size: u64) -> Self {
        Self { name: name.into(), size, files: false, origin: Origin::default() }
    }

    /// The same segment holding files (`kind = files`) when `files`.
    pub fn holding_files(self, files: bool) -> Self {
        Self { files, ..self }
    }

    pub fn line(&self) -> Option<usize> {
        self.origin.section
    }

    /// The segment as a manifest section.
    pub fn to_section(&self) -> String {
        let kind = if self.files { "kind = files\n" } else { "" };
        alloc::format!("[segment {}]\nsize = {}\n{kind}", self.name, Size(self.size))
    }
}

/// The two kinds of section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Enclave,
    Segment,
}

impl SectionKind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Enclave => "enclave",
            Self::Segment => "segment",
        }
    }
}

/// A section, as errors name it: `[enclave sim]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub what: SectionKind,
    pub name: String,
}

impl Section {
    fn enclave(name: &str) -> Self {
        Self { what: SectionKind::Enclave, name: name.into() }
    }

    fn segment(name: &str) -> Self {
        Self { what: SectionKind::Segment, name: name.into() }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} {}]", self.what.name(), shorten_to(&self.name, crate::MAX_NAME))
    }
}

/// What is wrong with a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    UnknownKind(String),
    UnknownSegmentKind(String),
    NotAbsolute(String),
    Words(WordsError),
    ControlCharacter,
    NotNameValue(String),
    Cores(CpuListError),
    CoreZero,
    CoreCount(String),
    Size(SizeError),
    NotPageMultiple(u64),
    Duration(DurationError),
    Policy(UnknownPolicy),
    Grant(String),
    Device(String),
    Name(String),
    ThreadCount(String),
    /// A `kernel_memory` below [`MIN_KERNEL_MEMORY`].
    KernelMemory(u64),
    /// A `tmp_size` larger than the enclave's `kernel_memory`.
    TmpOverBudget {
        tmp: u64,
        budget: u64,
    },
    Empty,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKind(k) => write!(f, "`{}` is not a kind (job or vm)", shorten(k)),
            Self::UnknownSegmentKind(k) => write!(f, "`{}` is not a segment kind (memory or files)", shorten(k)),
            Self::NotAbsolute(p) => write!(f, "`{}` is not an absolute path in the initrd", shorten(p)),
            Self::Words(e) => e.fmt(f),
            Self::ControlCharacter => write!(f, "holds a control character"),
            Self::NotNameValue(w) => write!(f, "`{}` is not NAME=VALUE", shorten(w)),
            Self::Cores(e) => e.fmt(f),
            Self::CoreZero => write!(f, "core 0 is the kernel's control core, never an enclave's"),
            Self::CoreCount(w) => {
                write!(f, "`{}` is not a core count (expected e.g. `any 2`, or a list such as 1-3,5)", shorten(w))
            }
            Self::Size(e) => e.fmt(f),
            Self::NotPageMultiple(n) => write!(f, "{} is not a multiple of 4K", Size(*n)),
            Self::Duration(e) => e.fmt(f),
            Self::Policy(e) => e.fmt(f),
            Self::Grant(w) => write!(f, "`{}` is not a grant (expected SEGMENT:r or SEGMENT:rw)", shorten(w)),
            Self::Device(w) => write!(f, "`{}` is not a device name", shorten(w)),
            Self::Name(w) => write!(f, "`{}` is not a name (1 to 64 letters, digits, '-' and '_')", shorten(w)),
            Self::ThreadCount(w) => write!(f, "`{}` is not a thread count (1 to {MAX_JOB_THREADS})", shorten(w)),
            Self::KernelMemory(n) => {
                write!(f, "{} is less than the smallest kernel-memory budget, {}", Size(*n), Size(MIN_KERNEL_MEMORY))
            }
            Self::TmpOverBudget { tmp, budget } => {
                write!(f, "{} of /tmp does not fit in the kernel-memory budget of {}", Size(*tmp), Size(*budget))
            }
            Self::Empty => write!(f, "needs a value"),
        }
    }
}

/// What is wrong with a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    TooLarge {
        bytes: usize,
    },
    NotUtf8,
    ControlCharacter(char),
    LineTooLong {
        bytes: usize,
    },
    NotASection(String),
    BadName {
        what: SectionKind,
        name: String,
    },
    DuplicateSection {
        section: Section,
        first_line: Option<usize>,
    },
    TooManySections(SectionKind),
    OutsideSection,
    NotKeyValue,
    UnknownKey {
        key: String,
        section: Section,
        suggestion: Option<&'static str>,
    },
    WrongKind {
        key: &'static str,
        section: Section,
        kind: Kind,
    },
    DuplicateKey {
        key: &'static str,
        section: Section,
        first_line: usize,
    },
    MissingKey {
        key: &'static str,
        section: Section,
    },
    BadValue {
        key: &'static str,
        section: Section,
        reason: ValueError,
    },
    UnknownSegment {
        section: Section,
        segment: String,
    },
    GrantToStrict {
        section: Section,
        segment: String,
    },
    /// A VM granted a segment of files: a guest sees no LWK file system.
    FilesToVm {
        section: Section,
        segment: String,
    },
    DuplicateGrant {
        section: Section,
        segment: String,
    },
    DevicesNeedNode {
        section: Section,
    },
    CoreOverlap {
        section: Section,
        cpu: usize,
        other: String,
    },
    /// [`NodeManifest::plan`]: the node cannot hold the manifest.
    Partition(PartitionError),
    /// [`crate::Registry::compose`]: a grant the segment table refused.
    Segment(crate::segments::SegmentError),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes } => write!(f, "the manifest has {bytes} bytes, more than {MAX_MANIFEST_BYTES}"),
            Self::NotUtf8 => write!(f, "not UTF-8 text"),
            Self::ControlCharacter(c) => write!(f, "control character {:#04x}", u32::from(*c)),
            Self::LineTooLong { bytes } => write!(f, "the line has {bytes} bytes, more than {MAX_LINE}"),
            Self::NotASection(t) => {
                write!(f, "`{}` is not a section header: use [enclave NAME] or [segment NAME]", shorten(t))
            }
            Self::BadName { what, name } => {
                write!(f, "`{}` is not a {} name (1 to 64 letters, digits, '-' and '_')", shorten(name), what.name())
            }
            Self::DuplicateSection { section, first_line: Some(l) } => write!(f, "{section} again (first on line {l})"),
            Self::DuplicateSection { section, first_line: None } => write!(f, "{section} given twice"),
            Self::TooManySections(what) => write!(f, "more than {MAX_SECTIONS} [{} ...] sections", what.name()),
            Self::OutsideSection => {
                write!(f, "a setting before any section: start with [enclave NAME] or [segment NAME]")
            }
            Self::NotKeyValue => {
                write!(f, "expected `key = value`, a [section], a # comment or a blank line")
            }
            Self::UnknownKey { key, section, suggestion } => {
                write!(f, "unknown key `{}` in {section}", shorten(key))?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean `{s}`?)"),
                    None => Ok(()),
                }
            }
            Self::WrongKind { key, section, kind } => {
                let other = if *kind == Kind::Job { "VMs" } else { "jobs" };
                write!(f, "`{key}` is for {other}, and {section} is a {kind}")
            }
            Self::DuplicateKey { key, section, first_line } => {
                write!(f, "`{key}` given twice in {section} (first on line {first_line})")
            }
            Self::MissingKey { key, section } => write!(f, "{section} has no `{key}`"),
            Self::BadValue { key, section, reason } => write!(f, "`{key}` in {section}: {reason}"),
            Self::UnknownSegment { section, segment } => {
                write!(f, "{section} is granted segment `{}`, which no [segment] section defines", shorten(segment))
            }
            Self::GrantToStrict { section, segment } => write!(
                f,
                "{section} is strict and shares no memory, so segment `{segment}` cannot be granted to it (use isolation = shared)"
            ),
            Self::FilesToVm { section, segment } => write!(
                f,
                "{section} is a VM, and segment `{segment}` holds files (kind = files), which only jobs can mount"
            ),
            Self::DuplicateGrant { section, segment } => write!(f, "{section} is granted segment `{segment}` twice"),
            Self::DevicesNeedNode { section } => write!(
                f,
                "{section} is given devices, which only isolation = node allows (a device can reach all memory by DMA)"
            ),
            Self::CoreOverlap { section, cpu, other } => write!(f, "{section}: core {cpu} is also [enclave {other}]'s"),
            Self::Partition(e) => e.fmt(f),
            Self::Segment(e) => e.fmt(f),
        }
    }
}

/// One error, with its line (1-based) when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub line: Option<usize>,
    pub kind: ErrorKind,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => self.kind.fmt(f),
        }
    }
}

/// Every error of a refused manifest, in line order (errors without a line last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestErrors {
    /// At least one, at most [`MAX_ERRORS`].
    pub errors: Vec<ManifestError>,
    /// More errors were found than are listed.
    pub truncated: bool,
}

impl ManifestErrors {
    fn one(line: Option<usize>, kind: ErrorKind) -> Self {
        Self { errors: alloc::vec![ManifestError { line, kind }], truncated: false }
    }

    pub fn first(&self) -> Option<&ManifestError> {
        self.errors.first()
    }
}

/// One error a line.
impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            e.fmt(f)?;
        }
        if self.truncated {
            write!(f, "\n(more errors not shown)")?;
        }
        Ok(())
    }
}

/// Collects errors; full once it holds a few more than will be shown.
#[derive(Default)]
struct Errors(Vec<ManifestError>);

impl Errors {
    const KEEP: usize = MAX_ERRORS * 4;

    fn push(&mut self, line: Option<usize>, kind: ErrorKind) {
        if !self.full() {
            self.0.push(ManifestError { line, kind });
        }
    }

    fn full(&self) -> bool {
        self.0.len() >= Self::KEEP
    }

    fn finish(mut self) -> Result<(), ManifestErrors> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        let truncated = self.0.len() > MAX_ERRORS;
        self.0.truncate(MAX_ERRORS);
        Err(ManifestErrors { errors: self.0, truncated })
    }
}

/// A validated manifest: enclaves and segments in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeManifest {
    pub enclaves: Vec<EnclaveSpec>,
    pub segments: Vec<SegmentSpec>,
}

/// The keys of an `[enclave]` section: (key, only for this kind).
const ENCLAVE_KEYS: [(&str, Option<Kind>); 18] = [
    ("kind", None),
    ("program", Some(Kind::Job)),
    ("args", Some(Kind::Job)),
    ("env", Some(Kind::Job)),
    ("progress", Some(Kind::Job)),
    ("threads", Some(Kind::Job)),
    ("tmp_size", Some(Kind::Job)),
    ("kernel", Some(Kind::Vm)),
    ("initrd", Some(Kind::Vm)),
    ("cmdline", Some(Kind::Vm)),
    ("heartbeat", Some(Kind::Vm)),
    ("heartbeat_grace", Some(Kind::Vm)),
    ("cores", None),
    ("memory", None),
    ("isolation", None),
    ("segments", None),
    ("devices", None),
    ("kernel_memory", None),
];
const ENCLAVE_KEY_NAMES: [&str; 18] = {
    let mut names = [""; 18];
    let mut i = 0;
    while i < ENCLAVE_KEYS.len() {
        names[i] = ENCLAVE_KEYS[i].0;
        i += 1;
    }
    names
};
const SEGMENT_KEYS: [&str; 2] = ["size", "kind"];

/// A section being read: its header and its `key = value` lines.
struct RawSection {
    section: Section,
    line: usize,
    entries: Vec<(&'static str, String, usize)>,
    /// A line of it was refused: a missing key may be that line's, so it is not reported.
    damaged: bool,
}

impl NodeManifest {
    /// Parses and validates a manifest file (see the module documentation).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestErrors> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestErrors::one(None, ErrorKind::TooLarge { bytes: bytes.len() }));
        }
        let mut errors = Errors::default();
        let mut manifest = NodeManifest::default();
        let mut current: Option<RawSection> = None;
        // Lines of every header seen (duplicates included), for "first on line N".
        let mut headers: Vec<(Section, usize)> = Vec::new();
        let mut seen_header = false;
        let mut errors_before = 0;
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            if errors.full() {
                break;
            }
            if let Some(section) = current.as_mut() {
                section.damaged |= errors.0.len() != errors_before;
            }
            errors_before = errors.0.len();
            let n = index + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let raw = if n == 1 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
            if raw.len() > MAX_LINE {
                errors.push(Some(n), ErrorKind::LineTooLong { bytes: raw.len() });
                continue;
            }
            let Ok(text) = core::str::from_utf8(raw) else {
                errors.push(Some(n), ErrorKind::NotUtf8);
                continue;
            };
            if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
                errors.push(Some(n), ErrorKind::ControlCharacter(c));
                continue;
            }
            let text = trim(text);
            if text.is_empty() || text.starts_with('#') || text.starts_with(';') {
                continue;
            }
            if let Some(inner) = text.strip_prefix('[') {
                seen_header = true;
                if let Some(done) = current.take() {
                    manifest.interpret(done, &mut errors);
                }
                let Some(section) = parse_header(inner) else {
                    errors.push(Some(n), ErrorKind::NotASection(text.to_string()));
                    continue;
                };
                if !crate::valid_name(&section.name) {
                    errors.push(Some(n), ErrorKind::BadName { what: section.what, name: section.name });
                    continue;
                }
                if let Some((_, first)) = headers.iter().find(|(s, _)| *s == section) {
                    let first_line = Some(*first);
                    errors.push(Some(n), ErrorKind::DuplicateSection { section, first_line });
                    continue;
                }
                let count = headers.iter().filter(|(s, _)| s.what == section.what).count();
                if count >= MAX_SECTIONS {
                    if count == MAX_SECTIONS {
                        errors.push(Some(n), ErrorKind::TooManySections(section.what));
                    }
                    headers.push((section, n));
                    continue;
                }
                headers.push((section.clone(), n));
                current = Some(RawSection { section, line: n, entries: Vec::new(), damaged: false });
                errors_before = errors.0.len();
                continue;
            }
            let Some((key, value)) = text.split_once('=') else {
                errors.push(Some(n), ErrorKind::NotKeyValue);
                continue;
            };
            let (key, value) = (trim(key), trim(value));
            if key.is_empty() {
                errors.push(Some(n), ErrorKind::NotKeyValue);
                continue;
            }
            // A key after a refused header belongs to no section we keep: already reported.
            let Some(section) = current.as_mut() else {
                if !seen_header {
                    errors.push(Some(n), ErrorKind::OutsideSection);
                }
                continue;
            };
            let known: &[&'static str] = match section.section.what {
                SectionKind::Enclave => &ENCLAVE_KEY_NAMES,
                SectionKind::Segment => &SEGMENT_KEYS,
            };
            let Some(&key) = known.iter().find(|k| **k == key) else {
                let suggestion = suggest(key, known);
                let section = section.section.clone();
                errors.push(Some(n), ErrorKind::UnknownKey { key: key.to_string(), section, suggestion });
                continue;
            };
            if let Some((_, _, first_line)) = section.entries.iter().find(|(k, _, _)| *k == key) {
                let (section, first_line) = (section.section.clone(), *first_line);
                errors.push(Some(n), ErrorKind::DuplicateKey { key, section, first_line });
                continue;
            }
            section.entries.push((key, value.to_string(), n));
        }
        if let Some(mut done) = current.take() {
            done.damaged |= errors.0.len() != errors_before;
            manifest.interpret(done, &mut errors);
        }
        errors.finish()?;
        Self::from_specs(manifest.enclaves, manifest.segments)
    }

    /// Checks specs built in code (an enclave added by `Registry::create`) exactly as parsing
    /// checks a file; errors carry lines only for specs that came from a file.
    pub fn from_specs(enclaves: Vec<EnclaveSpec>, segments: Vec<SegmentSpec>) -> Result<Self, ManifestErrors> {
        let mut errors = Errors::default();
        check_segments(&segments, &mut errors);
        for (i, spec) in enclaves.iter().enumerate() {
            check_enclave(spec, &mut errors);
            if let Some(first) = enclaves.get(..i).and_then(|before| before.iter().find(|e| e.name == spec.name)) {
                let section = Section::enclave(&spec.name);
                errors.push(spec.line(), ErrorKind::DuplicateSection { section, first_line: first.line() });
            }
        }
        if enclaves.len() > MAX_SECTIONS {
            errors.push(None, ErrorKind::TooManySections(SectionKind::Enclave));
        }
        if segments.len() > MAX_SECTIONS {
            errors.push(None, ErrorKind::TooManySections(SectionKind::Segment));
        }
        if errors.0.is_empty() {
            check_across(&enclaves, &segments, &mut errors);
        }
        errors.finish()?;
        Ok(Self { enclaves, segments })
    }

    pub fn enclave(&self, name: &str) -> Option<&EnclaveSpec> {
        self.enclaves.iter().find(|e| e.name == name)
    }

    pub fn segment(&self, name: &str) -> Option<&SegmentSpec> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// Places the manifest on `node`: segments, then every enclave, all or nothing. The error is
    /// the first that stops it, with the line of the enclave's (or segment's) section.
    pub fn plan(&self, node: &crate::partition::Node) -> Result<Partition, ManifestErrors> {
        let mut partition = Partition::new(node.clone());
        // A segment of files lives in kernel memory (the LWK commits it), not in the partition.
        for s in self.segments.iter().filter(|s| !s.files) {
            partition
                .reserve_segment(&s.name, s.size)
                .map_err(|e| ManifestErrors::one(s.line(), ErrorKind::Partition(e)))?;
        }
        let requests: Vec<Request> = self.enclaves.iter().map(EnclaveSpec::request).collect();
        partition.plan(&requests).map_err(|e| {
            let line = e.subject().and_then(|n| self.enclave(n)).and_then(EnclaveSpec::line);
            ManifestErrors::one(line, ErrorKind::Partition(e))
        })?;
        Ok(partition)
    }

    /// The manifest in its text format (parsing it gives an equal manifest back).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.enclaves {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&e.to_section());
        }
        for s in &self.segments {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&s.to_section());
        }
        out
    }

    /// Turns one read section into a spec, or errors.
    fn interpret(&mut self, raw: RawSection, errors: &mut Errors) {
        let RawSection { section, line, entries, damaged } = raw;
        let origin = Origin { section: Some(line), keys: entries.iter().map(|(k, _, l)| (*k, *l)).collect() };
        let value = |key: &str| entries.iter().find(|(k, _, _)| *k == key).map(|(_, v, l)| (v.as_str(), *l));
        let before = errors.0.len();
        let mut bad = |key: &'static str, at: usize, reason: ValueError| {
            errors.push(Some(at), ErrorKind::BadValue { key, section: section.clone(), reason });
        };
        if section.what == SectionKind::Segment {
            let files = match value("kind") {
                None | Some(("memory", _)) => Some(false),
                Some(("files", _)) => Some(true),
                Some((other, at)) => {
                    bad("kind", at, ValueError::UnknownSegmentKind(other.to_string()));
                    None
                }
            };
            let size = match value("size") {
                None => {
                    if !damaged {
                        errors.push(Some(line), ErrorKind::MissingKey { key: "size", section: section.clone() });
                    }
                    None
                }
                Some((v, at)) => parse_size(v).map_err(|e| bad("size", at, ValueError::Size(e))).ok(),
            };
            if let (Some(size), Some(files)) = (size, files) {
                self.segments.push(SegmentSpec { name: section.name.clone(), size, files, origin });
            }
            return;
        }
        let kind = match value("kind") {
            Some(("job", _)) => Some(Kind::Job),
            Some(("vm", _)) => Some(Kind::Vm),
            Some((other, at)) => {
                bad("kind", at, ValueError::UnknownKind(other.to_string()));
                None
            }
            None => {
                if !damaged {
                    errors.push(Some(line), ErrorKind::MissingKey { key: "kind", section: section.clone() });
                }
                None
            }
        };
        // Keys of the other kind.
        if let Some(kind) = kind {
            for (key, _, at) in &entries {
                if ENCLAVE_KEYS.iter().any(|(k, only)| k == key && only.is_some_and(|o| o != kind)) {
                    errors.push(Some(*at), ErrorKind::WrongKind { key, section: section.clone(), kind });
                }
            }
        }
        let mut bad = |key: &'static str, at: usize, reason: ValueError| {
            errors.push(Some(at), ErrorKind::BadValue { key, section: section.clone(), reason });
        };
        let words = |key: &'static str, bad: &mut dyn FnMut(&'static str, usize, ValueError)| match value(key) {
            None => Vec::new(),
            Some((v, at)) => split_words(v).unwrap_or_else(|e| {
                bad(key, at, ValueError::Words(e));
                Vec::new()
            }),
        };
        let args = words("args", &mut bad);
        let env = words("env", &mut bad);
        let cores = value("cores").and_then(|(v, at)| parse_cores(v).map_err(|e| bad("cores", at, e)).ok());
        let memory = value("memory").and_then(|(v, at)| parse_memory(v).map_err(|e| bad("memory", at, e)).ok());
        let isolation = value("isolation")
            .and_then(|(v, at)| Policy::parse(v).map_err(|e| bad("isolation", at, ValueError::Policy(e))).ok());
        let duration = |key: &'static str, bad: &mut dyn FnMut(&'static str, usize, ValueError)| {
            value(key).and_then(|(v, at)| parse_duration(v).map_err(|e| bad(key, at, ValueError::Duration(e))).ok())
        };
        let heartbeat = duration("heartbeat", &mut bad);
        let grace = duration("heartbeat_grace", &mut bad);
        let progress = duration("progress", &mut bad);
        let threads = value("threads").and_then(|(v, at)| parse_threads(v).map_err(|e| bad("threads", at, e)).ok());
        let size = |key: &'static str, bad: &mut dyn FnMut(&'static str, usize, ValueError)| {
            value(key).and_then(|(v, at)| parse_size(v).map_err(|e| bad(key, at, ValueError::Size(e))).ok())
        };
        let kernel_memory = size("kernel_memory", &mut bad);
        let tmp_size = size("tmp_size", &mut bad);
        let segments = value("segments").map_or(Vec::new(), |(v, at)| {
            list_items(v).filter_map(|item| parse_grant(item).map_err(|e| bad("segments", at, e)).ok()).collect()
        });
        let devices: Vec<String> =
            value("devices").map_or(Vec::new(), |(v, _)| list_items(v).map(String::from).collect());
        let (Some(kind), true) = (kind, errors.0.len() == before) else {
            return;
        };
        let image = match kind {
            Kind::Job => {
                let Some((program, _)) = value("program") else {
                    if !damaged {
                        errors.push(Some(line), ErrorKind::MissingKey { key: "program", section });
                    }
                    return;
                };
                Image::Job { program: program.to_string(), args, env }
            }
            Kind::Vm => {
                let Some((kernel, _)) = value("kernel") else {
                    if !damaged {
                        errors.push(Some(line), ErrorKind::MissingKey { key: "kernel", section });
                    }
                    return;
                };
                let initrd = value("initrd").map(|(v, _)| v.to_string());
                Image::Vm {
                    kernel: kernel.to_string(),
                    initrd,
                    cmdline: value("cmdline").map_or("", |(v, _)| v).to_string(),
                }
            }
        };
        let heartbeat = heartbeat.map(|period_ns| Heartbeat {
            period_ns,
            grace_ns: grace.unwrap_or(DEFAULT_HEARTBEAT_GRACE_NS).max(period_ns),
        });
        if grace.is_some() && heartbeat.is_none() {
            errors.push(value("heartbeat_grace").map(|(_, l)| l), ErrorKind::MissingKey { key: "heartbeat", section });
            return;
        }
        self.enclaves.push(EnclaveSpec {
            name: section.name.clone(),
            image,
            cores: cores.unwrap_or_else(|| default_cores(kind)),
            memory: memory.unwrap_or_else(|| default_memory(kind)),
            isolation: isolation.unwrap_or_default(),
            segments,
            devices,
            heartbeat,
            progress_ns: progress,
            max_threads: threads,
            kernel_memory,
            tmp_size,
            origin,
        });
    }
}

/// A job's thread limit: 1 to [`MAX_JOB_THREADS`].
fn parse_threads(text: &str) -> Result<u32, ValueError> {
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_JOB_THREADS).contains(n))
        .ok_or_else(|| ValueError::ThreadCount(text.to_string()))
}

/// `enclave NAME]` (after the `[`) -> the section; `None` if it is not that shape.
fn parse_header(inner: &str) -> Option<Section> {
    let inner = inner.strip_suffix(']')?;
    let mut words = inner.split([' ', '\t']).filter(|w| !w.is_empty());
    let (what, name) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    match what {
        "enclave" => Some(Section::enclave(name)),
        "segment" => Some(Section::segment(name)),
        _ => None,
    }
}

/// Spaces and tabs off both ends (nothing else: a value keeps every other character).
fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// Items separated by commas and/or spaces.
fn list_items(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ' ', '\t']).filter(|w| !w.is_empty())
}

/// `1-3,5` | `any N` | `share`.
fn parse_cores(text: &str) -> Result<CoreRequest, ValueError> {
    if text == "share" {
        return Ok(CoreRequest::Share);
    }
    if let Some(count) = text.strip_prefix("any") {
        let count = trim(count);
        return match count.bytes().all(|b| b.is_ascii_digit()).then(|| count.parse::<usize>()) {
            Some(Ok(n)) if n > 0 && n < MAX_CPUS => Ok(CoreRequest::Count(n)),
            _ => Err(ValueError::CoreCount(text.to_string())),
        };
    }
    CpuSet::parse(text).map(CoreRequest::List).map_err(ValueError::Cores)
}

/// A size | `share`.
fn parse_memory(text: &str) -> Result<MemoryRequest, ValueError> {
    if text == "share" {
        return Ok(MemoryRequest::Share);
    }
    parse_size(text).map(MemoryRequest::Bytes).map_err(ValueError::Size)
}

/// `NAME:r` | `NAME:rw`.
fn parse_grant(item: &str) -> Result<(String, Access), ValueError> {
    let bad = || ValueError::Grant(item.to_string());
    let (name, access) = item.split_once(':').ok_or_else(bad)?;
    let access = Access::parse(access).ok_or_else(bad)?;
    if !crate::valid_name(name) {
        return Err(ValueError::Name(name.to_string()));
    }
    Ok((name.to_string(), access))
}

/// The closest known key, if it is at most two edits away.
fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    if key.len() > 32 {
        return None;
    }
    known
        .iter()
        .map(|k| (edit_distance(key.as_bytes(), k.as_bytes()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = i;
        let mut left = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let here = (diagonal + usize::from(ca != cb)).min(up.saturating_add(1)).min(left + 1);
            diagonal = up;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = here;
            }
            left = here;
        }
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
    }
    row.last().copied().unwrap_or(0)
}

fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

/// Checks of one enclave that need nothing else.
fn check_enclave(spec: &EnclaveSpec, errors: &mut Errors) {
    if !crate::valid_name(&spec.name) {
        errors.push(spec.line(), ErrorKind::BadName { what: SectionKind::Enclave, name: spec.name.clone() });
        return;
    }
    let section = || Section::enclave(&spec.name);
    let at = |key: &str| spec.origin.line_of(key);
    let mut bad = |key: &'static str, reason: ValueError| {
        errors.push(at(key), ErrorKind::BadValue { key, section: section(), reason });
    };
    let path = |key: &'static str, p: &str, bad: &mut dyn FnMut(&'static str, ValueError)| {
        if p.is_empty() {
            bad(key, ValueError::Empty);
        } else if !p.starts_with('/') {
            bad(key, ValueError::NotAbsolute(p.to_string()));
        } else if has_control(p) {
            bad(key, ValueError::ControlCharacter);
        }
    };
    match &spec.image {
        Image::Job { program, args, env } => {
            path("program", program, &mut bad);
            if args.iter().any(|a| has_control(a)) {
                bad("args", ValueError::ControlCharacter);
            }
            if env.iter().any(|a| has_control(a)) {
                bad("env", ValueError::ControlCharacter);
            }
            if let Some(e) = env.iter().find(|e| e.split_once('=').is_none_or(|(name, _)| name.is_empty())) {
                bad("env", ValueError::NotNameValue(e.clone()));
            }
        }
        Image::Vm { kernel, initrd, cmdline } => {
            path("kernel", kernel, &mut bad);
            if let Some(initrd) = initrd {
                path("initrd", initrd, &mut bad);
            }
            if has_control(cmdline) {
                bad("cmdline", ValueError::ControlCharacter);
            }
        }
    }
    match &spec.cores {
        CoreRequest::List(set) if set.is_empty() => bad("cores", ValueError::Cores(CpuListError::Empty)),
        CoreRequest::List(set) if set.contains(0) => bad("cores", ValueError::CoreZero),
        CoreRequest::Count(0) => bad("cores", ValueError::CoreCount("any 0".into())),
        _ => {}
    }
    if spec.memory == MemoryRequest::Bytes(0) {
        bad("memory", ValueError::Size(SizeError::Zero));
    }
    let kind = spec.kind();
    if spec.heartbeat.is_some() && kind == Kind::Job {
        errors.push(at("heartbeat"), ErrorKind::WrongKind { key: "heartbeat", section: section(), kind });
    }
    if spec.progress_ns.is_some() && kind == Kind::Vm {
        errors.push(at("progress"), ErrorKind::WrongKind { key: "progress", section: section(), kind });
    }
    if spec.heartbeat.is_some_and(|h| h.period_ns == 0) {
        errors.push(
            at("heartbeat"),
            ErrorKind::BadValue {
                key: "heartbeat",
                section: section(),
                reason: ValueError::Duration(DurationError::Zero),
            },
        );
    }
    if spec.max_threads.is_some() && kind == Kind::Vm {
        errors.push(at("threads"), ErrorKind::WrongKind { key: "threads", section: section(), kind });
    }
    if let Some(n) = spec.max_threads.filter(|n| !(1..=MAX_JOB_THREADS).contains(n)) {
        let reason = ValueError::ThreadCount(n.to_string());
        errors.push(at("threads"), ErrorKind::BadValue { key: "threads", section: section(), reason });
    }
    if spec.tmp_size.is_some() && kind == Kind::Vm {
        errors.push(at("tmp_size"), ErrorKind::WrongKind { key: "tmp_size", section: section(), kind });
    }
    if let Some(bytes) = spec.kernel_memory.filter(|&b| b < MIN_KERNEL_MEMORY) {
        let reason = ValueError::KernelMemory(bytes);
        errors.push(at("kernel_memory"), ErrorKind::BadValue { key: "kernel_memory", section: section(), reason });
    }
    if let (Some(tmp), Some(budget)) = (spec.tmp_size, spec.kernel_memory)
        && tmp > budget
    {
        let reason = ValueError::TmpOverBudget { tmp, budget };
        errors.push(at("tmp_size"), ErrorKind::BadValue { key: "tmp_size", section: section(), reason });
    }
    if spec.progress_ns == Some(0) {
        let reason = ValueError::Duration(DurationError::Zero);
        errors.push(at("progress"), ErrorKind::BadValue { key: "progress", section: section(), reason });
    }
    for (i, d) in spec.devices.iter().enumerate() {
        if !valid_device(d) {
            let reason = ValueError::Device(d.clone());
            errors.push(at("devices"), ErrorKind::BadValue { key: "devices", section: section(), reason });
        } else if spec.devices.get(..i).is_some_and(|before| before.contains(d)) {
            let reason = ValueError::Device(alloc::format!("{d} (twice)"));
            errors.push(at("devices"), ErrorKind::BadValue { key: "devices", section: section(), reason });
        }
    }
    if !spec.devices.is_empty() && !spec.isolation.allows_devices() {
        errors.push(at("devices"), ErrorKind::DevicesNeedNode { section: section() });
    }
    for (i, (segment, _)) in spec.segments.iter().enumerate() {
        if !crate::valid_name(segment) {
            let reason = ValueError::Name(segment.clone());
            errors.push(at("segments"), ErrorKind::BadValue { key: "segments", section: section(), reason });
        } else if spec.segments.get(..i).is_some_and(|before| before.iter().any(|(s, _)| s == segment)) {
            errors.push(at("segments"), ErrorKind::DuplicateGrant { section: section(), segment: segment.clone() });
        } else if !spec.isolation.allows_segments() {
            errors.push(at("segments"), ErrorKind::GrantToStrict { section: section(), segment: segment.clone() });
        }
    }
}

fn check_segments(segments: &[SegmentSpec], errors: &mut Errors) {
    for (i, s) in segments.iter().enumerate() {
        let section = Section::segment(&s.name);
        if !crate::valid_name(&s.name) {
            errors.push(s.line(), ErrorKind::BadName { what: SectionKind::Segment, name: s.name.clone() });
        } else if let Some(first) = segments.get(..i).and_then(|b| b.iter().find(|o| o.name == s.name)) {
            errors.push(s.line(), ErrorKind::DuplicateSection { section, first_line: first.line() });
        } else if s.size == 0 {
            let reason = ValueError::Size(SizeError::Zero);
            errors.push(s.origin.line_of("size"), ErrorKind::BadValue { key: "size", section, reason });
        } else if !s.size.is_multiple_of(PAGE_SIZE) {
            let reason = ValueError::NotPageMultiple(s.size);
            errors.push(s.origin.line_of("size"), ErrorKind::BadValue { key: "size", section, reason });
        }
    }
}

/// Checks between sections: granted segments exist, listed cores do not overlap.
fn check_across(enclaves: &[EnclaveSpec], segments: &[SegmentSpec], errors: &mut Errors) {
    for (i, spec) in enclaves.iter().enumerate() {
        for (segment, _) in &spec.segments {
            let section = Section::enclave(&spec.name);
            let at = spec.origin.line_of("segments");
            match segments.iter().find(|s| s.name == *segment) {
                None => errors.push(at, ErrorKind::UnknownSegment { section, segment: segment.clone() }),
                Some(s) if s.files && spec.kind() == Kind::Vm => {
                    errors.push(at, ErrorKind::FilesToVm { section, segment: segment.clone() })
                }
                Some(_) => {}
            }
        }
        let CoreRequest::List(mine) = &spec.cores else { continue };
        let earlier = enclaves.get(..i).unwrap_or(&[]);
        let clash = earlier.iter().find_map(|o| match &o.cores {
            CoreRequest::List(theirs) => mine.intersection(theirs).first().map(|cpu| (cpu, o)),
            _ => None,
        });
        if let Some((cpu, other)) = clash {
            let section = Section::enclave(&spec.name);
            let kind = ErrorKind::CoreOverlap { section, cpu, other: other.name.clone() };
            errors.push(spec.origin.line_of("cores"), kind);
        }
    }
}

#[cfg(test)]
mod tests;
