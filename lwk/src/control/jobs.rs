//! Native jobs as enclaves: loading one onto its partition (`job_launch`), stopping it, and
//! reporting its end (`job_exit`) to the control plane (`enclaves`).

use crate::control::enclaves::{self, Ending};
use crate::exec::elf_loader::ExecutableKind;
use crate::fs::files::{EnclaveFiles, Mount};
use crate::fs::open_files::FdTable;
use crate::fs::process_files::{self, JobFiles, ProcessFiles};
use crate::fs::ram_fs::WritableUsage;
use crate::mm::job_memory::JobMemory;
use crate::task::interrupt_entry::TrapFrame;
use crate::task::process::{ExitReason, Job, PROCESS_KERNEL_BYTES, Process};
use crate::task::signals::SIGKILL;
use crate::task::thread::{Thread, ThreadState};
use crate::util::event::Event;
use crate::{
    exec::program_loader, hal::cpu, task::process_lifecycle, task::scheduler, time::clock, util::logging,
    util::serial_console,
};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use enclave::{Account, Charge, ThreadSample};

/// What a job enclave runs and on what (its partition's cores and memory).
pub struct JobLaunch<'a> {
    pub name: &'a str,
    pub program: &'a str,
    /// After `argv[0]`, which is the program path.
    pub args: &'a [String],
    pub env: &'a [String],
    pub cores: Vec<usize>,
    pub memory: u64,
    pub max_threads: usize,
    /// Its kernel-memory budget, and the size limit of its `/tmp`.
    pub kernel_memory: u64,
    pub tmp_size: u64,
    /// The segments of files granted to it, mounted at `/shared/NAME`.
    pub mounts: &'a [Mount<'a>],
}

/// A job loaded and ready: [`PreparedJob::start`] makes its first thread runnable.
pub struct PreparedJob {
    job: Arc<Job>,
    thread: Arc<Thread>,
    path: String,
    kind: ExecutableKind,
    /// The TSC when the launch was asked for: a program's first time stamp minus this is its
    /// launch cost (memory, loading, the first switch to user mode, the C library's start).
    requested_tsc: u64,
}

/// Reserves the job's memory, loads its program and creates its first process and thread.
pub fn prepare(launch: JobLaunch) -> Result<PreparedJob, String> {
    let requested_tsc = cpu::rdtsc();
    let JobLaunch { name, program: path, args, env, cores, memory: mem, max_threads, kernel_memory, tmp_size, mounts } =
        launch;
    let memory =
        JobMemory::reserve(name, mem).map_err(|_| alloc::format!("cannot reserve {} MiB for the job", mem >> 20))?;
    let account = Arc::new(Account::new(kernel_memory));
    let files = EnclaveFiles::new(&account, tmp_size, mounts).map_err(|e| {
        alloc::format!("its file system does not fit in its kernel-memory budget of {} KiB: {e}", kernel_memory >> 10)
    })?;
    let job = Arc::new(Job::new(
        name.to_string(),
        cores,
        memory,
        account,
        JobFiles::boxed(files),
        max_threads,
        clock::uptime_ns(),
    ));
    let mut argv: Vec<Vec<u8>> = Vec::with_capacity(args.len() + 1);
    argv.push(path.as_bytes().to_vec());
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let envp: Vec<Vec<u8>> = env.iter().map(|e| e.as_bytes().to_vec()).collect();
    let job_files = process_files::of_job(&job);
    let root = job_files.root();
    let from = program_loader::From { root: job_files, start: &root, exe: "" };
    let program = program_loader::load(job.memory.clone(), job.kernel_memory.clone(), &from, path, &argv, &envp)
        .map_err(|e| alloc::format!("{path}: {e}"))?;
    let pid = job.new_id();
    let files = FdTable::with_console(&job);
    let kind = program.kind;
    let charge = Charge::new(&job.kernel_memory, PROCESS_KERNEL_BYTES)
        .map_err(|e| alloc::format!("its first process does not fit in its kernel-memory budget: {e}"))?;
    let process = Arc::new(Process::new(
        pid,
        0,
        job.clone(),
        program.space,
        program.path,
        ProcessFiles::boxed(files, root),
        (pid, pid),
        charge,
    ));
    let regs = TrapFrame { rip: program.entry, rsp: program.rsp, ..TrapFrame::default() };
    let core = job.place_thread().ok_or("a thread limit of 0")?;
    let thread = Thread::new(pid, process.clone(), core, &regs).map_err(|e| alloc::format!("thread: {e}"))?;
    process.threads.lock().push(thread.clone());
    job.processes.lock().insert(pid, process);
    Ok(PreparedJob { job, thread, path: path.to_string(), kind, requested_tsc })
}

impl PreparedJob {
    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// Reports the launch and makes the first thread runnable.
    pub fn start(self) {
        let PreparedJob { job, thread, path, kind, requested_tsc } = self;
        logging::emit("job_launch", |e| {
            e.str("job", &job.name)
                .str("path", &path)
                .display("cores", format_args!("{:?}", job.cores))
                .u64("mem_mib", job.memory.bytes >> 20)
                .u64("max_threads", job.max_threads as u64)
                .u64("kernel_memory_kib", job.kernel_memory.limit() >> 10)
                .u64("tmp_size_kib", process_files::of_job(&job).tmp_usage().limit >> 10)
                .str("kind", if kind == ExecutableKind::StaticPie { "static-pie" } else { "static" })
                .u64("request_tsc", requested_tsc);
        });
        scheduler::enqueue(thread);
    }
}

/// Ends every process of the job (SIGKILL); its first process's end then ends the job.
pub fn stop(job: &Job) {
    let processes: Vec<Arc<Process>> = job.processes.lock().values().cloned().collect();
    for p in &processes {
        process_lifecycle::kill_process(p, ExitReason::Signaled(SIGKILL));
    }
}

/// Pauses the job: each thread stops on its next way back to user mode (running ones are
/// kicked into the kernel now; sleeping ones stop when they wake) and waits for [`resume`].
pub fn pause(job: &Job) {
    job.frozen.store(true, Ordering::SeqCst);
    for t in threads(job) {
        scheduler::kick(&t);
    }
}

pub fn resume(job: &Job) {
    job.frozen.store(false, Ordering::SeqCst);
    job.thaw.wake_all();
}

/// The job's threads that are running or ready to run (not blocked in the kernel).
pub fn runnable_threads(job: &Job) -> usize {
    threads(job).iter().filter(|t| t.state() != ThreadState::Blocked).count()
}

/// The CPU time of each live thread, for the health monitor's progress check.
pub fn thread_samples(job: &Job) -> Vec<ThreadSample> {
    threads(job).iter().map(|t| ThreadSample { tid: t.tid as u64, cpu_ns: scheduler::cpu_time_ns(t) }).collect()
}

/// Every live thread of the job.
fn threads(job: &Job) -> Vec<Arc<Thread>> {
    let processes: Vec<Arc<Process>> = job.processes.lock().values().cloned().collect();
    processes.iter().flat_map(|p| p.threads.lock().clone()).collect()
}

/// The job's CPU time so far, as a `job_stats` event (the console's `stats`).
pub fn report(job: &Job) {
    let threads = threads(job).len();
    let kmem = KernelMemoryFields::of(job);
    logging::emit("job_stats", |e| {
        e.str("job", &job.name)
            .u64("processes", job.processes.lock().len() as u64)
            .u64("threads", threads as u64)
            .u64("threads_frozen", job.threads_frozen.load(Ordering::SeqCst) as u64)
            .u64("cpu_ms", job.cpu_ns.load(Ordering::Relaxed) / 1_000_000)
            .u64("wall_ms", clock::uptime_ns().saturating_sub(job.started_ns) / 1_000_000);
        kmem.write(e);
    });
}

/// The job's kernel memory and `/tmp`, as fields of `job_stats` and `job_exit`: bytes in use,
/// the high-water mark and the budget; refused charges; `/tmp` bytes and its limit. Read before
/// the event is written (its file system has a lock of its own).
struct KernelMemoryFields {
    used: u64,
    peak: u64,
    limit: u64,
    refusals: u64,
    tmp: WritableUsage,
}

impl KernelMemoryFields {
    fn of(job: &Job) -> Self {
        let account = &job.kernel_memory;
        let tmp = process_files::of_job(job).tmp_usage();
        Self { used: account.used(), peak: account.peak(), limit: account.limit(), refusals: account.refusals(), tmp }
    }

    fn write(&self, e: &mut Event<&mut dyn core::fmt::Write>) {
        e.u64("kmem_used_kib", self.used >> 10)
            .u64("kmem_peak_kib", self.peak >> 10)
            .u64("kmem_limit_kib", self.limit >> 10)
            .u64("kmem_refusals", self.refusals)
            .u64("tmp_used_kib", self.tmp.bytes >> 10)
            .u64("tmp_limit_kib", self.tmp.limit >> 10);
    }
}

/// The job's first process has ended: report it and tell the control plane.
pub fn end_job(job: &Job, reason: ExitReason) {
    let status = reason.shell_status();
    let wall = clock::uptime_ns().saturating_sub(job.started_ns);
    let kmem = KernelMemoryFields::of(job);
    logging::emit("job_exit", |e| {
        e.str("job", &job.name)
            .u64("status", status as u64)
            .u64("cpu_ms", job.cpu_ns.load(Ordering::Relaxed) / 1_000_000)
            .u64("wall_ms", wall / 1_000_000);
        kmem.write(e);
    });
    job.ended.store(true, Ordering::SeqCst);
    enclaves::ended(&job.name, Ending::Job(reason));
}

/// Most bytes of a job's output written under the console lock at once: other writers (the
/// kernel's events, other enclaves) wait at most that long, and the job's `write` waits for the
/// console (the output is never dropped).
const CONSOLE_PIECE: usize = 256;

/// Job output on the console, each line it begins prefixed with the job's name (see
/// [`serial_console::write_owned`]), in pieces of at most [`CONSOLE_PIECE`] bytes that end at a
/// line end or a character boundary.
pub fn console_write(job: &Job, data: &[u8]) {
    let owner = job as *const Job as usize;
    let mut rest = data;
    while !rest.is_empty() {
        let mut end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |n| n + 1).min(CONSOLE_PIECE);
        // Back off to a UTF-8 character boundary (continuation bytes are 0b10xx_xxxx), unless the
        // piece is one long run of them.
        while end < rest.len() && end > 0 && rest[end] & 0xc0 == 0x80 {
            end -= 1;
        }
        if end == 0 {
            end = rest.len().min(CONSOLE_PIECE);
        }
        let (piece, next) = rest.split_at(end);
        let text = String::from_utf8_lossy(piece);
        serial_console::write_owned(
            owner,
            |c| {
                let _ = write!(c, "[{}] ", job.name);
            },
            &text,
        );
        rest = next;
    }
}
