//! Launching the jobs the command line names, watching them end, and powering off when the last
//! one has: `job_launch`, `job_exit` and `job_error` events.

use crate::interrupt_entry::TrapFrame;
use crate::job_memory::JobMemory;
use crate::open_files::FdTable;
use crate::power::{ExitStatus, shutdown};
use crate::process::{Job, Process};
use crate::thread::Thread;
use crate::{clock, kernel_memory, logging, per_cpu, program_loader, scheduler, serial_console};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use lwk::cmdline::Options;
use lwk::elf_loader::ExecutableKind;
use lwk::job_options::{self, JobSpec, JobsExpect};
use lwk::ram_fs::{Lookup, ROOT};

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static ALL_ZERO: AtomicBool = AtomicBool::new(true);
static EXPECT_ANY: AtomicBool = AtomicBool::new(false);

/// Something the command line started (a job, a VM, or the launch itself) is running; the
/// machine powers off when the last one ends.
pub fn begin_work() {
    RUNNING.fetch_add(1, Ordering::SeqCst);
}

/// The end of something [`begin_work`] counted; `success` false makes the boot's verdict failure.
pub fn end_work(success: bool) {
    if !success {
        ALL_ZERO.store(false, Ordering::Relaxed);
    }
    if RUNNING.fetch_sub(1, Ordering::SeqCst) == 1 {
        all_done();
    }
}

/// Launches every job on cores not in `reserved` (the VMs'), leaving `reserved_mem` bytes of free
/// memory for the VMs. Jobs that cannot start get a `job_error` event and count as failed. The
/// caller holds a [`begin_work`] for the launch.
pub fn launch_all(options: &Options, reserved: &[usize], reserved_mem: u64) {
    EXPECT_ANY.store(options.jobs_expect == JobsExpect::Any, Ordering::Relaxed);
    let plans = plan(&options.jobs, reserved, reserved_mem);
    for (spec, plan) in options.jobs.iter().zip(plans) {
        if let Err(reason) = plan.and_then(|plan| launch(spec, plan)) {
            ALL_ZERO.store(false, Ordering::Relaxed);
            log::error!(target: "jobs", "job {}: {reason}", spec.name);
            logging::emit("job_error", |e| {
                e.str("job", &spec.name).str("path", &spec.path).str("reason", &reason);
            });
        }
    }
}

/// The online application cores (core 0 is the kernel's).
pub fn application_cores() -> Vec<usize> {
    per_cpu::all().iter().filter(|c| c.index != 0 && c.online.load(Ordering::Acquire)).map(|c| c.index).collect()
}

/// What a job gets: its cores, its memory and its thread limit.
struct JobPlan {
    cores: Vec<usize>,
    mem: u64,
    max_threads: usize,
}

/// Cores, memory and thread limits for each job: the ones asked for, else a fair share of what
/// is left.
fn plan(specs: &[JobSpec], reserved: &[usize], reserved_mem: u64) -> Vec<Result<JobPlan, String>> {
    let online: Vec<usize> = application_cores().into_iter().filter(|c| !reserved.contains(c)).collect();
    let taken: Vec<usize> = specs.iter().filter_map(|s| s.cores.clone()).flatten().collect();
    let free: Vec<usize> = online.iter().copied().filter(|c| !taken.contains(c)).collect();
    let choosing = specs.iter().filter(|s| s.cores.is_none()).count().max(1);
    let share = free.len() / choosing;
    let (free_mem, _) = kernel_memory::frame_stats();
    let asked: u64 = specs.iter().filter_map(|s| s.mem).sum();
    let without_mem = specs.iter().filter(|s| s.mem.is_none()).count().max(1) as u64;
    let mem_share = (free_mem.saturating_sub(asked + reserved_mem) / 4 * 3 / without_mem) & !((1 << 21) - 1);
    let jobs_mem: u64 = specs.iter().map(|s| s.mem.unwrap_or(mem_share)).sum();
    let kernel_left = free_mem.saturating_sub(jobs_mem + reserved_mem);
    let default_threads = job_options::default_max_threads(kernel_left, specs.len());
    let mut next_free = 0;
    specs
        .iter()
        .map(|s| {
            let cores = match &s.cores {
                Some(c) => {
                    if let Some(bad) = c.iter().find(|x| !online.contains(x)) {
                        return Err(alloc::format!("core {bad} is not an online application core (core 0 is the kernel's)"));
                    }
                    c.clone()
                }
                None => {
                    if share == 0 {
                        return Err("no free core left for this job".to_string());
                    }
                    let c = free[next_free..next_free + share].to_vec();
                    next_free += share;
                    c
                }
            };
            Ok(JobPlan { cores, mem: s.mem.unwrap_or(mem_share), max_threads: s.threads.unwrap_or(default_threads) })
        })
        .collect()
}

fn launch(spec: &JobSpec, plan: JobPlan) -> Result<(), String> {
    let JobPlan { cores, mem, max_threads } = plan;
    let memory = JobMemory::reserve(mem).map_err(|_| alloc::format!("cannot reserve {} MiB for the job", mem >> 20))?;
    let job = Arc::new(Job::new(spec.name.clone(), cores, memory, max_threads, clock::uptime_ns()));
    let mut argv: Vec<Vec<u8>> = Vec::with_capacity(spec.args.len() + 1);
    argv.push(spec.path.as_bytes().to_vec());
    argv.extend(spec.args.iter().map(|a| a.as_bytes().to_vec()));
    let envp: Vec<Vec<u8>> = spec.env.iter().map(|e| e.as_bytes().to_vec()).collect();
    let at = Lookup { cwd: ROOT, exe: "" };
    let program = program_loader::load(job.memory.clone(), &at, &spec.path, &argv, &envp)
        .map_err(|e| alloc::format!("{}: {e}", spec.path))?;
    let pid = job.new_id();
    let files = FdTable::with_console(&job);
    let kind = program.kind;
    let process = Arc::new(Process::new(pid, 0, job.clone(), program.space, program.path, files, ROOT, (pid, pid)));
    let mut regs = empty_frame();
    regs.rip = program.entry;
    regs.rsp = program.rsp;
    let core = job.place_thread().ok_or("a thread limit of 0")?;
    let thread = Thread::new(pid, process.clone(), core, &regs).map_err(|e| alloc::format!("thread: {e}"))?;
    process.threads.lock().push(thread.clone());
    job.processes.lock().insert(pid, process);
    begin_work();
    logging::emit("job_launch", |e| {
        e.str("job", &job.name)
            .str("path", &spec.path)
            .display("cores", format_args!("{:?}", job.cores))
            .u64("mem_mib", job.memory.bytes >> 20)
            .u64("max_threads", job.max_threads as u64)
            .str("kind", if kind == ExecutableKind::StaticPie { "static-pie" } else { "static" });
    });
    scheduler::enqueue(thread);
    Ok(())
}

/// A frame with every register zero (user segments and flags are set by `Thread::new`).
pub fn empty_frame() -> TrapFrame {
    // SAFETY: TrapFrame is plain integers; all-zero is a valid value.
    unsafe { core::mem::zeroed() }
}

/// The job's first process has ended: report it, and power off after the last job.
pub fn end_job(job: &Job, status: i32) {
    let wall = clock::uptime_ns().saturating_sub(job.started_ns);
    logging::emit("job_exit", |e| {
        e.str("job", &job.name)
            .u64("status", status as u64)
            .u64("cpu_ms", job.cpu_ns.load(Ordering::Relaxed) / 1_000_000)
            .u64("wall_ms", wall / 1_000_000);
    });
    job.ended.store(true, Ordering::SeqCst);
    end_work(status == 0);
}

/// Everything the command line started has ended: power off with the boot's verdict.
fn all_done() -> ! {
    let healthy = crate::node_health::report();
    let ok = healthy && (ALL_ZERO.load(Ordering::Relaxed) || EXPECT_ANY.load(Ordering::Relaxed));
    shutdown(if ok { ExitStatus::Success } else { ExitStatus::Failure })
}

/// Job output on the console, each line prefixed with the job's name.
pub fn console_write(job: &Job, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let write_lines = |c: &mut dyn core::fmt::Write| {
        for piece in text.split_inclusive('\n') {
            if job.console_line_start.load(Ordering::Relaxed) {
                let _ = write!(c, "[{}] ", job.name);
            }
            let _ = c.write_str(piece);
            job.console_line_start.store(piece.ends_with('\n'), Ordering::Relaxed);
        }
    };
    // A new line of the job's output starts on a fresh console line; a continued one does not.
    if job.console_line_start.load(Ordering::Relaxed) {
        serial_console::with_console_line(write_lines);
    } else {
        serial_console::with_console(write_lines);
    }
}
