//! Processes and jobs. A job is what the command line launches: a name, its cores, its memory
//! pool, and the processes it runs (its first process and, later, whatever that one forks). A
//! process owns an address space and its threads share it.

use crate::address_space::AddressSpace;
use crate::job_memory::JobMemory;
use crate::open_files::FdTable;
use lwk::ram_fs::Ino;
use crate::thread::Thread;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

pub struct Job {
    pub name: String,
    pub cores: Vec<usize>,
    pub memory: Arc<JobMemory>,
    pub started_ns: u64,
    next_id: AtomicU32,
    /// Whether the job's console output is at the start of a line (for the name prefix).
    pub console_line_start: AtomicBool,
    /// Processes not yet reaped.
    pub live_processes: AtomicU32,
    pub cpu_ns: AtomicU64,
}

impl Job {
    pub fn new(name: String, cores: Vec<usize>, memory: JobMemory, started_ns: u64) -> Job {
        Job {
            name,
            cores,
            memory: Arc::new(memory),
            started_ns,
            next_id: AtomicU32::new(1),
            console_line_start: AtomicBool::new(true),
            live_processes: AtomicU32::new(0),
            cpu_ns: AtomicU64::new(0),
        }
    }

    /// A new process or thread id, unique within the job (the first is 1).
    pub fn new_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub struct Process {
    pub pid: u32,
    pub parent: u32,
    pub job: Arc<Job>,
    pub space: spin::Mutex<AddressSpace>,
    root: AtomicU64,
    pub exe: spin::Mutex<String>,
    pub files: spin::Mutex<FdTable>,
    /// Working directory (its inode is held in the file system while it is the cwd).
    pub cwd: spin::Mutex<Ino>,
    pub umask: AtomicU32,
    pub threads: spin::Mutex<Vec<Arc<Thread>>>,
    pub cpu_ns: AtomicU64,
    /// Set by the first `exit_group` or fatal signal: the status the process ends with.
    pub exit_status: spin::Mutex<Option<i32>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let cwd = *self.cwd.lock();
        crate::files::with_fs(|fs| fs.release(cwd));
    }
}

impl Process {
    pub fn new(pid: u32, parent: u32, job: Arc<Job>, space: AddressSpace, exe: String, files: FdTable, cwd: Ino) -> Process {
        crate::files::with_fs(|fs| fs.hold(cwd));
        Process {
            pid,
            parent,
            job,
            root: AtomicU64::new(space.root()),
            space: spin::Mutex::new(space),
            exe: spin::Mutex::new(exe),
            files: spin::Mutex::new(files),
            cwd: spin::Mutex::new(cwd),
            umask: AtomicU32::new(0o022),
            threads: spin::Mutex::new(Vec::new()),
            cpu_ns: AtomicU64::new(0),
            exit_status: spin::Mutex::new(None),
        }
    }

    /// A path lookup from this process's point of view.
    pub fn with_lookup<R>(&self, f: impl FnOnce(&lwk::ram_fs::Lookup) -> R) -> R {
        let exe = self.exe.lock().clone();
        let at = lwk::ram_fs::Lookup { cwd: *self.cwd.lock(), exe: &exe };
        f(&at)
    }

    /// The page-table root to load when a thread of this process runs (read without the lock:
    /// the scheduler needs it while switching).
    pub fn page_table_root(&self) -> u64 {
        self.root.load(Ordering::Relaxed)
    }
}
