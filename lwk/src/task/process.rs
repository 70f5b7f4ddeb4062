//! Processes and jobs. A job is what the command line launches: a name, its cores, its memory
//! pool, and its processes (the first one and whatever it forks, with per-job process ids). A
//! process owns an address space, descriptors, signal actions and threads that share them.

use crate::hal::kernel_memory::{AtomicRoot, Root};
use crate::mm::address_space::AddressSpace;
use crate::mm::job_memory::JobMemory;
use crate::task::futex::FutexTable;
use crate::task::thread::Thread;
use crate::task::wait_queue::WaitQueue;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use bitflags::bitflags;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use enclave::{Account, Charge};

/// The file layer's state of a process (its descriptor table, its working directory) or of a
/// job (its file systems). The task layer holds it without naming its type, which is the file
/// layer's (`fs::process_files`), and tells it when the process has ended.
pub trait FileState: Any + Send + Sync {
    /// The process has ended: close every descriptor now (a zombie keeps nothing open).
    fn close_all(&self) {}
}

pub struct Job {
    pub name: String,
    pub cores: Vec<usize>,
    pub memory: Arc<JobMemory>,
    /// The enclave's kernel-memory account: what its processes make the kernel hold.
    pub kernel_memory: Arc<Account>,
    /// Its file systems (a private `/tmp`, the shares it mounts), charged to `kernel_memory`:
    /// the file layer's (`fs::process_files::of_job`).
    pub files: Box<dyn FileState>,
    /// Most live threads at once (all processes); `clone`/`fork` beyond it fail with EAGAIN.
    pub max_threads: usize,
    pub started_ns: u64,
    next_id: AtomicU32,
    /// Every process not yet reaped, by pid.
    pub processes: spin::Mutex<BTreeMap<u32, Arc<Process>>>,
    /// Threads placed on each of `cores` (same order), for spreading new ones.
    core_load: spin::Mutex<Vec<usize>>,
    pub cpu_ns: AtomicU64,
    pub ended: AtomicBool,
    /// Paused: its threads stop on their way back to user mode and wait on `thaw`.
    pub frozen: AtomicBool,
    pub thaw: WaitQueue,
    /// Threads waiting on `thaw` now.
    pub threads_frozen: AtomicUsize,
    /// Futex waiters on words of its own memory (`crate::task::futex`).
    pub futexes: FutexTable,
}

impl Job {
    pub fn new(
        name: String,
        cores: Vec<usize>,
        memory: JobMemory,
        kernel_memory: Arc<Account>,
        files: Box<dyn FileState>,
        max_threads: usize,
        started_ns: u64,
    ) -> Job {
        let n = cores.len();
        Job {
            name,
            cores,
            memory: Arc::new(memory),
            kernel_memory,
            files,
            max_threads,
            started_ns,
            next_id: AtomicU32::new(1),
            processes: spin::Mutex::new(BTreeMap::new()),
            core_load: spin::Mutex::new(vec![0; n]),
            cpu_ns: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
            thaw: WaitQueue::new(),
            threads_frozen: AtomicUsize::new(0),
            futexes: FutexTable::new(),
        }
    }

    /// A new process or thread id, unique within the job (the first is 1).
    pub fn new_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The job core with the fewest threads (space sharing), now counted with one more; `None`
    /// when the job already has `max_threads` live threads.
    pub fn place_thread(&self) -> Option<usize> {
        let mut load = self.core_load.lock();
        if load.iter().sum::<usize>() >= self.max_threads {
            return None;
        }
        let (i, _) = load.iter().enumerate().min_by_key(|&(_, n)| *n).unwrap_or((0, &0));
        if let Some(n) = load.get_mut(i) {
            *n += 1;
        }
        Some(self.cores.get(i).copied().unwrap_or(0))
    }

    /// A thread moves between two of the job's cores.
    pub fn thread_moved(&self, from: usize, to: usize) {
        self.thread_left(from);
        if let Some(i) = self.cores.iter().position(|&c| c == to) {
            self.core_load.lock()[i] += 1;
        }
    }

    /// A thread placed on `core` has ended.
    pub fn thread_left(&self, core: usize) {
        if let Some(i) = self.cores.iter().position(|&c| c == core) {
            let mut load = self.core_load.lock();
            load[i] = load[i].saturating_sub(1);
        }
    }

    pub fn process(&self, pid: u32) -> Option<Arc<Process>> {
        self.processes.lock().get(&pid).cloned()
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    Exited(i32),
    Signaled(i32),
}

impl ExitReason {
    /// The status word `wait4` reports.
    pub fn wait_status(self) -> u32 {
        match self {
            ExitReason::Exited(code) => ((code & 0xff) as u32) << 8,
            ExitReason::Signaled(sig) => (sig & 0x7f) as u32,
        }
    }

    /// The status a shell would show (and `job_exit` reports): the code, or 128 + signal.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitReason::Exited(code) => code & 0xff,
            ExitReason::Signaled(sig) => 128 + sig,
        }
    }
}

/// A signal's disposition (`struct k_sigaction`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SignalAction {
    pub handler: u64,
    pub flags: SaFlags,
    pub restorer: u64,
    pub mask: u64,
}

bitflags! {
    /// A signal action's flags (`sa_flags`). Bits without a name here are kept as given
    /// (`from_bits_retain`) and sigaction reports them back, as Linux does.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct SaFlags: u64 {
        const SIGINFO = 0x4;
        const RESTORER = 0x0400_0000;
        const ONSTACK = 0x0800_0000;
        const RESTART = 0x1000_0000;
        const NODEFER = 0x4000_0000;
        const RESETHAND = 0x8000_0000;
    }
}

pub struct Process {
    pub pid: u32,
    pub parent: AtomicU32,
    pub pgid: AtomicU32,
    pub sid: AtomicU32,
    pub job: Arc<Job>,
    pub space: spin::Mutex<AddressSpace>,
    root: AtomicRoot,
    pub exe: spin::Mutex<String>,
    /// Its descriptor table and working directory: the file layer's (`fs::process_files::of`).
    pub files: Box<dyn FileState>,
    pub umask: AtomicU32,
    pub threads: spin::Mutex<Vec<Arc<Thread>>>,
    pub children: spin::Mutex<Vec<Arc<Process>>>,
    /// Woken when a child ends (the parent waits here in wait4).
    pub child_events: WaitQueue,
    pub exit: spin::Mutex<Option<ExitReason>>,
    /// Torn down and waiting to be reaped.
    pub zombie: AtomicBool,
    pub actions: spin::Mutex<[SignalAction; 64]>,
    /// Signals sent to the process as a whole.
    pub pending_signals: AtomicU64,
    /// A vfork parent waits here until the child execs or exits.
    pub vfork_done: WaitQueue,
    pub vfork_released: AtomicBool,
    pub cpu_ns: AtomicU64,
    /// Address spaces an `execve` replaced while another thread might still run on them: freed
    /// with the process.
    pub retired_spaces: spin::Mutex<Vec<AddressSpace>>,
    /// Its bookkeeping (this structure, its signal actions, its descriptor table), charged to
    /// the enclave's kernel memory until it is reaped.
    _charge: Charge,
}

/// What a process is charged besides its threads, mappings and open files.
pub const PROCESS_KERNEL_BYTES: u64 = 8 * 1024;

impl Process {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pid: u32,
        parent: u32,
        job: Arc<Job>,
        space: AddressSpace,
        exe: String,
        files: Box<dyn FileState>,
        group: (u32, u32),
        charge: Charge,
    ) -> Process {
        Process {
            pid,
            parent: AtomicU32::new(parent),
            pgid: AtomicU32::new(group.0),
            sid: AtomicU32::new(group.1),
            job,
            root: AtomicRoot::new(space.root()),
            space: spin::Mutex::new(space),
            exe: spin::Mutex::new(exe),
            files,
            umask: AtomicU32::new(0o022),
            threads: spin::Mutex::new(Vec::new()),
            children: spin::Mutex::new(Vec::new()),
            child_events: WaitQueue::new(),
            exit: spin::Mutex::new(None),
            zombie: AtomicBool::new(false),
            actions: spin::Mutex::new([SignalAction::default(); 64]),
            pending_signals: AtomicU64::new(0),
            vfork_done: WaitQueue::new(),
            vfork_released: AtomicBool::new(false),
            cpu_ns: AtomicU64::new(0),
            retired_spaces: spin::Mutex::new(Vec::new()),
            _charge: charge,
        }
    }

    /// The page-table root to load when a thread of this process runs (read without the lock:
    /// the scheduler needs it while switching).
    pub fn page_table_root(&self) -> Root {
        self.root.load()
    }

    /// Installs a new address space (execve); the old one is returned to be dropped.
    pub fn replace_space(&self, space: AddressSpace) -> AddressSpace {
        let mut current = self.space.lock();
        self.root.store(space.root());
        core::mem::replace(&mut *current, space)
    }
}
