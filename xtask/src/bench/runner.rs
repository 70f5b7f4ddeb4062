//! `cargo xtask bench [--quick | --smoke] [--out DIR]`: every workload of
//! [`workloads::WORKLOADS`] on every system, each under `-icount shift=0,sleep=off -rtc
//! clock=vm` so that the guest's TSC counts retired instructions (those runs share the host's
//! CPUs, two QEMUs at a time: their numbers do not depend on the host; the wall-clock triad runs
//! alone afterwards); then `results.json`, `report.md` and the plots in the output directory
//! (see [`report`]).
//!
//! The systems:
//! - Manul native: the program as an LWK job on core 1 of 2 (`-smp 2`: core 0 is the kernel's
//!   and halts while the job runs), from an initrd holding only the benchmark programs;
//! - Linux native: Debian's kernel (the one the VMM boots, see [`debian_kernel`]) booted directly
//!   by QEMU through its PVH entry with `-smp 1`, its busybox `/init` (`bench/linux-init.sh`)
//!   running the program on that CPU. One CPU because single-threaded icount TCG switches vCPUs
//!   round-robin and a Linux guest with 2 vCPUs under icount is too slow to use;
//! - Manul VM: the same Linux guest with the same initramfs, as a VM of the LWK on core 1 of 2
//!   (one vCPU per program CPU), its console relayed by the LWK;
//! - KVM VM: the same guest under Linux's KVM (`kvm_amd`, nested SVM in the same QEMU CPU),
//!   started by the project's minimal launcher (`bench/kvm-launcher.c`) from the Linux native
//!   system's `/init`; one vCPU, so it runs the single-CPU workloads.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::artifacts::archive::{self, EXECUTABLE, Entry};
use crate::artifacts::busybox;
use crate::artifacts::debian_kernel;
use crate::artifacts::kernel_build::{self, Profile};
use crate::artifacts::linux_guest;
use crate::bench::report::{
    self, Config, Footprint, KVM_VM, LINUX_NATIVE, MANUL_NATIVE, MANUL_VM, Results, Run, SystemConfig, VmmFootprint,
};
use crate::bench::workloads::{self, Metric, WORKLOADS, Workload};
use crate::host::prerequisites::{self, Purpose};
use crate::host::process;
use crate::host::workspace::Workspace;
use crate::run::events;
use crate::run::job_command;
use crate::run::qemu::{self, Completion, Machine, MemSize};

/// The options that make guest time count retired instructions (1 tick = 1 instruction = 1
/// virtual nanosecond) and keep runs repeatable.
const ICOUNT_ARGS: [&str; 4] = ["-icount", "shift=0,sleep=off", "-rtc", "clock=vm"];
/// The options of every run (the guest's random numbers start the same).
const COMMON_ARGS: [&str; 2] = ["-seed", "1"];
/// What a TSC tick is under [`ICOUNT_ARGS`], and how many make a (virtual) second.
const UNIT: &str = "instructions";
const TICKS_PER_SECOND: f64 = 1e9;
/// The memory of the machines, and of the Manul job or the VM within it.
const MEM: &str = "512M";
const JOB_MEM: &str = "256M";
/// The KVM host's memory: its initramfs holds the guest's kernel and initramfs besides the VM.
const KVM_HOST_MEM: &str = "1G";
/// The KVM guest's memory in MiB (the launcher's argument), as [`JOB_MEM`].
const KVM_GUEST_MIB: &str = "256";
/// How long one run may take.
const QUICK_TIMEOUT: Duration = Duration::from_secs(300);
const FULL_TIMEOUT: Duration = Duration::from_secs(900);
/// What the embedded VMM's symbols have in their (mangled) names.
const VMM_CRATE: &str = "embedded_vmm";
/// How a run that did not end in time is reported.
const TIMED_OUT: &str = "timed out";
/// At most this many QEMUs at once (each runs one vCPU thread under icount).
const MAX_PARALLEL_RUNS: usize = 2;

/// How many samples a run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One short iteration of everything (the CI: the harness cannot rot).
    Smoke,
    Quick,
    Full,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

pub struct Options {
    pub mode: Mode,
    pub out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    ManulNative,
    LinuxNative,
    ManulVm,
    KvmVm,
}

const SYSTEMS: [System; 4] = [System::ManulNative, System::LinuxNative, System::ManulVm, System::KvmVm];
/// Where a VM's kernel and initramfs are in the LWK's initrd and in the KVM host's.
const VM_KERNEL: &str = "/boot/vmlinux";
const VM_INITRD: &str = "/boot/bench-initrd.cpio";
/// Where the KVM host's initramfs holds the modules of `debian_kernel::KVM_MODULES`.
const KVM_MODULES_DIR: &str = "lib/kvm";

impl System {
    fn name(self) -> &'static str {
        match self {
            System::ManulNative => MANUL_NATIVE,
            System::LinuxNative => LINUX_NATIVE,
            System::ManulVm => MANUL_VM,
            System::KvmVm => KVM_VM,
        }
    }

    fn label(self) -> &'static str {
        match self {
            System::ManulNative => "Manul native",
            System::LinuxNative => "Linux native",
            System::ManulVm => "Manul VM",
            System::KvmVm => "KVM VM",
        }
    }

    /// The CPUs of the machine that gives the program `cores` CPUs: Manul keeps core 0.
    fn smp(self, cores: u32) -> u32 {
        match self {
            System::ManulNative | System::ManulVm => cores + 1,
            System::LinuxNative | System::KvmVm => cores,
        }
    }

    /// The machine's memory.
    fn mem(self) -> &'static str {
        if self == System::KvmVm { KVM_HOST_MEM } else { MEM }
    }

    /// Whether `workload` runs on this system: the KVM launcher makes one vCPU.
    fn runs(self, workload: &Workload) -> bool {
        self != System::KvmVm || workload.cores == 1
    }

    /// The kernel command line that runs `program` with `args` on `cores` CPUs.
    fn cmdline(self, program: &str, args: &[&str], cores: u32) -> Result<String> {
        Ok(match self {
            System::ManulNative => {
                let command = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
                let cores = if cores == 1 { "1".to_owned() } else { format!("1-{cores}") };
                format!("{} job.cores={cores} job.mem={JOB_MEM}", job_command::kernel_options(&command)?)
            }
            System::LinuxNative => linux_cmdline(program, args)?,
            System::ManulVm => {
                let cores = if cores == 1 { "1".to_owned() } else { format!("1-{cores}") };
                format!(
                    "vm=bench vm.kernel={VM_KERNEL} vm.initrd={VM_INITRD} vm.cmdline=\"{}\" vm.cores={cores} vm.mem={JOB_MEM}",
                    linux_cmdline(program, args)?
                )
            }
            System::KvmVm => format!(
                "{} bench.modules={} bench.vm={VM_KERNEL},{VM_INITRD},{KVM_GUEST_MIB}",
                linux_cmdline(program, args)?,
                kvm_module_paths().join(",")
            ),
        })
    }

    /// Whether the LWK is the machine's kernel (it leaves through isa-debug-exit).
    fn on_manul(self) -> bool {
        matches!(self, System::ManulNative | System::ManulVm)
    }

    fn config(self) -> SystemConfig {
        let (about, cpus, cmdline) = match self {
            System::ManulNative => (
                "the static program as an LWK job on cores 1 to N; core 0 is the kernel's and halts meanwhile",
                "N + 1",
                format!("job={{PROGRAM}} job.args=\"{{ARGS}}\" job.cores=1-N job.mem={JOB_MEM}"),
            ),
            System::LinuxNative => (
                "Debian's Linux 6.1 (the PVH vmlinux) booted directly by QEMU; its busybox /init runs the same \
                 static program, then powers off. One CPU under icount (single-threaded icount TCG switches vCPUs \
                 round-robin, and Linux with 2 vCPUs is too slow there)",
                "N",
                "console=ttyS0 quiet bench.run={PROGRAM},{ARGS}".to_owned(),
            ),
            System::ManulVm => (
                "the same Linux guest and initramfs as a VM of the LWK, one vCPU per program CPU on cores 1 to N; \
                 under icount the guest's TSC counts the instructions of the whole machine, the VMM's exits \
                 included",
                "N + 1",
                format!(
                    "vm=bench vm.kernel={VM_KERNEL} vm.initrd={VM_INITRD} \
                     vm.cmdline=\"console=ttyS0 quiet bench.run={{PROGRAM}},{{ARGS}}\" vm.cores=1-N vm.mem={JOB_MEM}"
                ),
            ),
            System::KvmVm => (
                "the same Linux guest and initramfs under Linux's KVM: the Linux native system (with more memory, \
                 for the guest's files) loads kvm_amd (nested SVM of the same QEMU CPU) and runs the project's \
                 minimal launcher bench/kvm-launcher.c (PVH boot, in-kernel APIC/IOAPIC/PIC/PIT, a UART in user \
                 space, no ACPI), one vCPU; the guest's TSC starts at the host's, so it too counts from power-on. \
                 Single-CPU workloads only",
                "N (N = 1)",
                format!(
                    "console=ttyS0 quiet bench.run={{PROGRAM}},{{ARGS}} bench.modules={} \
                     bench.vm={VM_KERNEL},{VM_INITRD},{KVM_GUEST_MIB}",
                    kvm_module_paths().join(",")
                ),
            ),
        };
        SystemConfig {
            name: self.name().to_owned(),
            label: self.label().to_owned(),
            about: about.to_owned(),
            cpus: cpus.to_owned(),
            mem: self.mem().to_owned(),
            cmdline,
        }
    }
}

/// The kernel command line of Linux (native, or as Manul's guest) that runs `program` with `args`.
fn linux_cmdline(program: &str, args: &[&str]) -> Result<String> {
    ensure!(
        args.iter().all(|arg| !arg.is_empty() && !arg.contains([',', ' ', '"', '\''])),
        "arguments {args:?} cannot go on the Linux command line"
    );
    let run = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(",");
    Ok(format!("console=ttyS0 quiet bench.run={run}"))
}

/// Where the KVM host's `/init` finds the KVM modules, in loading order.
fn kvm_module_paths() -> Vec<String> {
    debian_kernel::KVM_MODULES.iter().map(|module| format!("/{KVM_MODULES_DIR}/{module}")).collect()
}

/// The kernels and initrds of the systems.
struct Prepared {
    lwk: PathBuf,
    manul_initrd: PathBuf,
    vmlinux: PathBuf,
    linux_initrd: PathBuf,
    /// The LWK's initrd for Manul VM: the guest's kernel and Linux's initramfs.
    manul_vm_initrd: PathBuf,
    /// The KVM host's initramfs: Linux's, the launcher, the KVM modules and what the VM boots.
    kvm_host_initrd: PathBuf,
}

pub fn run(workspace: &Workspace, options: &Options) -> Result<ExitCode> {
    let started = Instant::now();
    let date = utc_now();
    prerequisites::ensure(&[Purpose::Boot, Purpose::Initrd])?;
    let out = options.out.clone().unwrap_or_else(|| workspace.bench_results_dir());
    let logs = out.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let prepared = prepare(workspace)?;
    let config = config(workspace, &prepared, options.mode, date)?;
    let timeout = if options.mode == Mode::Full { FULL_TIMEOUT } else { QUICK_TIMEOUT };
    println!(
        "bench: {} run, {} workloads on {} systems, {} QEMUs at a time (wall-clock runs alone); results in {}",
        config.mode,
        WORKLOADS.len(),
        SYSTEMS.len(),
        parallel_runs(),
        workspace.display(&out)
    );

    let args = |workload: &Workload| match options.mode {
        Mode::Smoke => workload.smoke_args,
        Mode::Quick => workload.quick_args,
        Mode::Full => workload.full_args,
    };
    // Every (workload, system) run, in the report's order; each fills its slot.
    let plan: Vec<(usize, System)> = WORKLOADS
        .iter()
        .enumerate()
        .flat_map(|(index, workload)| {
            SYSTEMS.into_iter().filter(move |system| system.runs(workload)).map(move |system| (index, system))
        })
        .collect();
    let slots: Vec<Mutex<Option<Run>>> = plan.iter().map(|_| Mutex::new(None)).collect();
    let finished = Mutex::new(0usize);
    let run_planned = |item: usize| {
        let (index, system) = plan[item];
        let workload = &WORKLOADS[index];
        let mut run = run_one(&prepared, system, workload, args(workload), &out, timeout);
        // The smoke run checks the harness, not the systems: a run that hung (one Manul VM run
        // in about a hundred did, see docs/benchmarks.md) is run once more, and says so.
        if options.mode == Mode::Smoke
            && let Some(error) = run.error.clone().filter(|error| error.starts_with(TIMED_OUT))
        {
            run = run_one(&prepared, system, workload, args(workload), &out, timeout);
            run.info.insert("retried_after".into(), error);
        }
        *lock(&slots[item]) = Some(run);
        // The workload's last run prints its progress line.
        let mut finished = lock(&finished);
        let mine: Vec<usize> = (0..plan.len()).filter(|&other| plan[other].0 == index).collect();
        let briefs: Option<Vec<String>> = mine
            .iter()
            .map(|&other| lock(&slots[other]).as_ref().map(|run| format!("{}: {}", plan[other].1.label(), brief(run))))
            .collect();
        if let Some(briefs) = briefs {
            *finished += 1;
            println!(
                "[{}/{}] {} (done at {:.0} s): {}",
                *finished,
                WORKLOADS.len(),
                workload.name,
                started.elapsed().as_secs_f64(),
                briefs.join(" | ")
            );
        }
    };
    // Runs under icount count instructions whatever else the host does: they share its CPUs.
    // Wall-clock runs come after them, alone.
    let icount: Vec<usize> = (0..plan.len()).filter(|&item| WORKLOADS[plan[item].0].icount).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallel_runs() {
            scope.spawn(|| {
                while let Some(&item) = icount.get(next.fetch_add(1, Ordering::Relaxed)) {
                    run_planned(item);
                }
            });
        }
    });
    for item in (0..plan.len()).filter(|item| !icount.contains(item)) {
        run_planned(item);
    }
    let runs: Vec<Run> =
        slots.into_iter().filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner())).collect();

    let comparisons = report::comparisons(&runs);
    let failed = runs.iter().filter(|run| run.error.is_some()).count();
    let results = Results { config, runs, comparisons };
    let written = report::write(&out, &results)?;
    let names: Vec<String> =
        written.iter().map(|path| path.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    println!(
        "bench: wrote {} in {} after {:.0} s{}",
        names.join(", "),
        workspace.display(&out),
        started.elapsed().as_secs_f64(),
        if failed > 0 { format!("; {failed} runs gave no numbers (see report.md)") } else { String::new() }
    );
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// How many icount runs go at once: one per host CPU, at most [`MAX_PARALLEL_RUNS`].
fn parallel_runs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_PARALLEL_RUNS)
}

/// A mutex whose holder may have panicked: the data is still what it was.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds the kernel, the programs and both initrds.
fn prepare(workspace: &Workspace) -> Result<Prepared> {
    let log = &mut io::stderr();
    let lwk = kernel_build::build(workspace, Profile::Release)?;
    let programs = workloads::build(workspace, log).context("cannot build the benchmark programs")?;
    // The launcher only in the KVM host's initramfs.
    let program_entries = |launcher: bool| -> Result<Vec<Entry>> {
        programs
            .iter()
            .filter(|(name, _)| launcher || name != workloads::KVM_LAUNCHER)
            .map(|(name, binary)| Entry::file(name, binary, EXECUTABLE))
            .collect()
    };
    let build_dir = workspace.bench_build_dir();

    let manul_initrd = build_dir.join("manul-initrd.cpio");
    archive::write_if_changed(&manul_initrd, &archive::with_directories(program_entries(false)?, &[]), log)
        .context("cannot write Manul's benchmark initrd")?;

    let busybox = busybox::fetch(workspace, log)?;
    let kernel = debian_kernel::fetch(workspace, log).context("cannot get Debian's Linux kernel")?;
    ensure!(
        kernel.pvh_entry.is_some(),
        "{} has no PVH entry: QEMU cannot boot it directly",
        workspace.display(&kernel.vmlinux)
    );
    let init = workspace.root().join(workloads::LINUX_INIT);
    let entries = linux_guest::initramfs(&init, &busybox, workloads::LINUX_INIT_APPLETS, program_entries(false)?)?;
    let linux_initrd = build_dir.join("linux-initrd.cpio");
    archive::write_if_changed(&linux_initrd, &entries, log).context("cannot write Linux's benchmark initramfs")?;
    let manul_vm_initrd = build_dir.join("manul-vm-initrd.cpio");
    let vm_entries = || -> Result<Vec<Entry>> {
        Ok(vec![
            Entry::file(VM_KERNEL.trim_start_matches('/'), &kernel.vmlinux, archive::READABLE)?,
            Entry::file(VM_INITRD.trim_start_matches('/'), &linux_initrd, archive::READABLE)?,
        ])
    };
    archive::write_if_changed(&manul_vm_initrd, &archive::with_directories(vm_entries()?, &[]), log)
        .context("cannot write the Manul VM's initrd")?;
    let kvm_host_initrd = build_dir.join("kvm-host-initrd.cpio");
    let mut host_entries = program_entries(true)?;
    host_entries.extend(vm_entries()?);
    for module in &kernel.kvm_modules {
        let name = module.file_name().unwrap_or_default().to_string_lossy();
        host_entries.push(Entry::file(&format!("{KVM_MODULES_DIR}/{name}"), module, archive::READABLE)?);
    }
    let host_entries = linux_guest::initramfs(&init, &busybox, workloads::LINUX_INIT_APPLETS, host_entries)?;
    archive::write_if_changed(&kvm_host_initrd, &host_entries, log).context("cannot write the KVM host's initramfs")?;
    Ok(Prepared { lwk, manul_initrd, vmlinux: kernel.vmlinux, linux_initrd, manul_vm_initrd, kvm_host_initrd })
}

fn config(workspace: &Workspace, prepared: &Prepared, mode: Mode, date: String) -> Result<Config> {
    let first_line = |command: &mut Command| {
        process::captured(command).ok().filter(|output| output.status.success()).and_then(|output| {
            String::from_utf8_lossy(&output.stdout).lines().next().map(|line| line.trim().to_owned())
        })
    };
    let root = workspace.root();
    let commit = first_line(Command::new("git").arg("-C").arg(root).args(["rev-parse", "HEAD"]));
    let dirty = process::captured(Command::new("git").arg("-C").arg(root).args(["status", "--porcelain"]))
        .is_ok_and(|output| !output.stdout.is_empty());
    let footprint = |system: System, image: &Path| -> Result<Footprint> {
        let (file_bytes, loaded_bytes) = image_size(image)?;
        Ok(Footprint { system: system.name().to_owned(), image: workspace.display(image), file_bytes, loaded_bytes })
    };
    Ok(Config {
        mode: mode.name().to_owned(),
        date,
        commit: commit.unwrap_or_else(|| "unknown".into()),
        dirty,
        qemu_version: first_line(Command::new(prerequisites::QEMU).arg("--version"))
            .unwrap_or_else(|| "unknown".into()),
        host_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        qemu_common: format!(
            "-machine {} -accel tcg -cpu {} -nic none -vga none {} (-m: each system's memory)",
            qemu::QEMU_MACHINE,
            qemu::QEMU_CPU,
            COMMON_ARGS.join(" ")
        ),
        icount_args: ICOUNT_ARGS.join(" "),
        unit: UNIT.to_owned(),
        systems: SYSTEMS.iter().map(|system| system.config()).collect(),
        footprint: vec![
            footprint(System::ManulNative, &prepared.lwk)?,
            footprint(System::LinuxNative, &prepared.vmlinux)?,
        ],
        vmm: vmm_footprint(workspace, &prepared.lwk)?,
    })
}

/// The embedded VMM's functions in the LWK image (symbols whose path names the crate, generic
/// code the kernel instantiated included) and the lines of its source.
fn vmm_footprint(workspace: &Workspace, lwk: &Path) -> Result<VmmFootprint> {
    let bytes = fs::read(lwk).with_context(|| format!("cannot read {}", lwk.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes).with_context(|| format!("{} is not an ELF file", lwk.display()))?;
    let (mut text_bytes, mut functions) = (0, 0);
    for symbol in elf.syms.iter().filter(|symbol| symbol.is_function() && symbol.st_size > 0) {
        if elf.strtab.get_at(symbol.st_name).is_some_and(|name| name.contains(VMM_CRATE)) {
            text_bytes += symbol.st_size;
            functions += 1;
        }
    }
    let mut source_lines = 0;
    let mut dirs = vec![workspace.root().join("embedded-vmm/src")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                source_lines += text.lines().count() as u64;
            }
        }
    }
    Ok(VmmFootprint { text_bytes, functions, source_lines })
}

/// An ELF file's size, and the memory its PT_LOAD segments take.
fn image_size(image: &Path) -> Result<(u64, u64)> {
    let bytes = fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes).with_context(|| format!("{} is not an ELF file", image.display()))?;
    let loaded = elf
        .program_headers
        .iter()
        .filter(|header| header.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|header| header.p_memsz)
        .sum();
    Ok((bytes.len() as u64, loaded))
}

fn utc_now() -> String {
    process::captured(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|date| !date.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Boots `system` running `workload`, with its console in `out/logs/`, and reads the results.
fn run_one(
    prepared: &Prepared,
    system: System,
    workload: &Workload,
    args: &[&str],
    out: &Path,
    timeout: Duration,
) -> Run {
    let log_name = format!("logs/{}-{}.log", workload.name, system.name());
    let mut run =
        Run::new(workload.name, system.name(), args, system.smp(workload.cores), workload.icount, log_name.clone());
    if let Err(error) = boot_and_read(prepared, system, workload, args, &out.join(&log_name), timeout, &mut run) {
        run.error = Some(format!("{error:#}"));
    }
    run
}

fn boot_and_read(
    prepared: &Prepared,
    system: System,
    workload: &Workload,
    args: &[&str],
    log: &Path,
    timeout: Duration,
    run: &mut Run,
) -> Result<()> {
    let cmdline = system.cmdline(workload.program, args, workload.cores)?;
    let (kernel, initrd) = match system {
        System::ManulNative => (&prepared.lwk, &prepared.manul_initrd),
        System::LinuxNative => (&prepared.vmlinux, &prepared.linux_initrd),
        System::ManulVm => (&prepared.lwk, &prepared.manul_vm_initrd),
        System::KvmVm => (&prepared.vmlinux, &prepared.kvm_host_initrd),
    };
    let mem: MemSize = system.mem().parse().map_err(anyhow::Error::msg)?;
    let mut command = qemu::command(&Machine {
        kernel,
        initrd: Some(initrd),
        smp: system.smp(workload.cores),
        mem,
        cmdline: &cmdline,
        // Linux powers off through ACPI: QEMU then exits with 0.
        debug_exit: system.on_manul(),
    });
    if workload.icount {
        command.args(ICOUNT_ARGS);
    }
    command.args(COMMON_ARGS).args(["-serial", "stdio", "-monitor", "none"]);
    run.command = process::describe(&command);
    let started = Instant::now();
    let mut child = process::spawn_logged(&mut command, Stdio::null(), log)?;
    let completion = qemu::wait_with_timeout(&mut child, timeout)?;
    run.wall_seconds = started.elapsed().as_secs_f64();
    let text = process::read_log(log)?;
    // The KVM host's console carries its guest's lines, which are the run's; the host's own
    // lines say how the launcher and KVM fared (`host_` before the host's /init's keys).
    let (text, host) = match system {
        System::KvmVm => workloads::split_guest(&text),
        _ => (text, String::new()),
    };
    let output = workloads::scan(&text);
    run.info = output.info.clone();
    let host = workloads::scan(&host);
    for (key, value) in &host.info {
        let key = if key.starts_with("kvm_") { key.clone() } else { format!("host_{key}") };
        run.info.insert(key, value.clone());
    }
    if !output.malformed.is_empty() {
        run.info.insert("malformed_lines".into(), output.malformed.len().to_string());
    }
    if let Some(first) = output.interrupting.first() {
        run.info.insert("guest_kernel_messages_in_records".into(), output.interrupting.len().to_string());
        run.info.insert("guest_kernel_message_first".into(), first.clone());
    }
    let expected_status = match system {
        System::ManulNative => {
            manul_info(&text, run);
            qemu::STATUS_KERNEL_SUCCESS
        }
        System::LinuxNative => {
            run.exit_status = output.exit;
            qemu::STATUS_POWERED_OFF
        }
        System::KvmVm => {
            run.exit_status = output.exit;
            ensure!(host.exit == Some(0), "the KVM launcher's exit status was {:?}, not 0", host.exit);
            qemu::STATUS_POWERED_OFF
        }
        System::ManulVm => {
            manul_info(&text, run);
            // The guest's /init reports the program's status; the LWK that the VM powered off.
            run.exit_status = output.exit;
            qemu::STATUS_KERNEL_SUCCESS
        }
    };
    match completion {
        Completion::TimedOut => anyhow::bail!("{TIMED_OUT} after {} s", timeout.as_secs()),
        Completion::Exited(status) => {
            run.qemu_status = status;
            ensure!(
                status == Some(expected_status),
                "QEMU exited with {status:?}, not {expected_status}: {}",
                qemu::describe_status(status)
            );
        }
    }
    ensure!(run.exit_status == Some(0), "the program's exit status was {:?}, not 0", run.exit_status);
    let samples = workloads::samples(workload.name, workload.kind, &output.records)?;
    // Without icount a sample is in TSC ticks of the host's rate, which the report does not know.
    run.metrics = if run.icount {
        workloads::metrics(&samples, UNIT, Some(TICKS_PER_SECOND))
    } else {
        workloads::metrics(&samples, "TSC ticks", None)
    };
    run.metrics.extend(vm_metrics(system, &run.info, run.icount));
    if let (workloads::Samples::Launch { tsc_at_main }, Some(requested)) =
        (&samples, run.info.get("job_request_tsc").and_then(|tsc| tsc.parse::<u64>().ok()))
        && run.icount
    {
        let label = "job launch: the request to main() (memory, loading, first entry, C library start)";
        run.metrics.push(Metric::lower("request_to_main", label, UNIT, tsc_at_main.saturating_sub(requested) as f64));
    }
    run.samples = Some(samples);
    Ok(())
}

/// The job's exit status and what Manul's events say about the run: the TSC rate, the boot
/// time, the job's times and the job core's interrupts.
fn manul_info(text: &str, run: &mut Run) {
    let parsed = events::parse_log(text);
    let field = |fields: &serde_json::Map<String, Value>, key: &str| {
        fields.get(key).map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    };
    for event in &parsed.events {
        let copy: &[(&str, &str)] = match event.name.as_str() {
            "boot" => &[("tsc_hz", "tsc_hz"), ("boot_us", "boot_us")],
            "job_exit" => &[("cpu_ms", "job_cpu_ms"), ("wall_ms", "job_wall_ms")],
            "job_launch" => &[("request_tsc", "job_request_tsc")],
            "vm_launch" => &[
                ("read_ns", "vm_read_ns"),
                ("build_ns", "vm_build_ns"),
                ("vmm_heap_bytes", "vmm_heap_bytes"),
                ("vmm_page_bytes", "vmm_page_bytes"),
                ("nested_table_bytes", "vmm_nested_table_bytes"),
            ],
            "vm_exit" => &[
                ("wall_ms", "vm_wall_ms"),
                ("first_entry_ns", "vm_first_entry_ns"),
                ("exits", "vm_exits"),
                ("exits_ioio", "vm_exits_ioio"),
                ("exits_npf", "vm_exits_npf"),
                ("exits_cpuid", "vm_exits_cpuid"),
                ("exits_msr", "vm_exits_msr"),
                ("exits_hlt", "vm_exits_hlt"),
                ("exits_intr", "vm_exits_intr"),
                ("exits_vintr", "vm_exits_vintr"),
            ],
            // The job runs on core 1: its interrupts over the whole boot.
            "irq_stats" if event.fields.get("cpu").and_then(Value::as_u64) == Some(1) => {
                &[("timer", "timer_interrupts"), ("ipi", "ipis"), ("halts", "halts")]
            }
            _ => &[],
        };
        for (key, name) in copy {
            if let Some(value) = field(&event.fields, key) {
                run.info.insert((*name).to_owned(), value);
            }
        }
        if event.name == "vm_launch" {
            let number = |key: &str| event.fields.get(key).and_then(Value::as_u64);
            if let (Some(heap), Some(pages)) = (number("vmm_heap_bytes"), number("vmm_page_bytes")) {
                run.info.insert("vmm_memory_bytes".to_owned(), (heap + pages).to_string());
            }
        }
        // Cycles are instructions only under icount; without it they time the emulator.
        if event.name == "vm_exit" && run.icount {
            for (reason, path) in vmm_paths(&event.fields) {
                run.info.insert(format!("vmm_path_{reason}"), path.to_string());
            }
        }
        if event.name == "job_exit" {
            run.exit_status = event.fields.get("status").and_then(Value::as_i64);
        }
    }
}

/// What the VMM says about a VM's run, as metrics: its exits over the whole run (Manul's
/// `vm_exit` event; KVM's statistics, exits handled in the kernel included) and, under icount,
/// the instructions from the launch's start to the first guest entry (Manul: from the request,
/// files read, to vCPU 0 entering; the KVM launcher: from its start to the first KVM_RUN).
fn vm_metrics(system: System, info: &std::collections::BTreeMap<String, String>, icount: bool) -> Vec<Metric> {
    let (exits, first_entry) = match system {
        System::ManulVm => ("vm_exits", "vm_first_entry_ns"),
        System::KvmVm => ("kvm_exits", "kvm_launcher_first_entry_cycles"),
        System::ManulNative | System::LinuxNative => return Vec::new(),
    };
    let number = |key: &str| info.get(key).and_then(|value| value.parse::<f64>().ok());
    let mut metrics = Vec::new();
    if let Some(exits) = number(exits) {
        metrics.push(Metric::lower(
            "vm_exits",
            "VM exits over the whole run (boot, program, power-off)",
            "exits",
            exits,
        ));
    }
    if let Some(first_entry) = number(first_entry).filter(|_| icount) {
        let label = "VMM launch: its start to the first guest entry (files read, memory, tables)";
        metrics.push(Metric::lower("vmm_first_entry", label, UNIT, first_entry));
    }
    metrics
}

/// Exit reasons whose handling is all VMM work (no waiting, no host interrupt in it).
const VMM_PATH_REASONS: [&str; 4] = ["cpuid", "msr", "ioio", "npf"];

/// The VMM's path length per exit, for each reason of [`VMM_PATH_REASONS`] the VM took: the
/// TSC cycles from the exit to the next VMRUN over the exits, from a `vm_exit` event's
/// `cycles_REASON` and `exits_REASON`. Under icount a cycle is an instruction.
fn vmm_paths(fields: &serde_json::Map<String, Value>) -> Vec<(&'static str, u64)> {
    VMM_PATH_REASONS
        .iter()
        .filter_map(|&reason| {
            let exits = fields.get(&format!("exits_{reason}"))?.as_u64().filter(|&n| n > 0)?;
            let cycles = fields.get(&format!("cycles_{reason}"))?.as_u64()?;
            Some((reason, (cycles + exits / 2) / exits))
        })
        .collect()
}

/// The first numbers of a run, or why it has none, for the progress line.
fn brief(run: &Run) -> String {
    match &run.error {
        Some(error) => format!("FAILED ({})", error.lines().next().unwrap_or_default()),
        None => run
            .metrics
            .iter()
            .take(3)
            .map(|metric| format!("{} {}", metric.name, report::format_number(metric.value)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_carry_the_program_and_its_arguments() {
        assert_eq!(
            System::ManulNative.cmdline("/bench/fwq", &["40000", "8192"], 1).unwrap(),
            "job=/bench/fwq job.args=\"40000 8192\" job.cores=1 job.mem=256M"
        );
        assert_eq!(System::ManulNative.cmdline("/bench/x", &[], 2).unwrap(), "job=/bench/x job.cores=1-2 job.mem=256M");
        assert_eq!(
            System::LinuxNative.cmdline("/bench/fwq", &["40000", "8192"], 1).unwrap(),
            "console=ttyS0 quiet bench.run=/bench/fwq,40000,8192"
        );
        assert!(System::LinuxNative.cmdline("/bench/fwq", &["a,b"], 1).is_err());
        assert_eq!((System::ManulNative.smp(1), System::LinuxNative.smp(1)), (2, 1));
        assert_eq!(System::ManulVm.smp(2), 3);
        let event: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"exits_cpuid":4,"cycles_cpuid":1202,"exits_msr":0,"cycles_msr":0,"exits_ioio":3,"cycles_ioio":3001,"exits_hlt":2,"cycles_hlt":99}"#,
        )
        .unwrap();
        assert_eq!(vmm_paths(&event), [("cpuid", 301), ("ioio", 1000)], "no msr exits, hlt is not VMM work");
        assert_eq!(
            System::ManulVm.cmdline("/bench/fwq", &["40000", "8192"], 1).unwrap(),
            "vm=bench vm.kernel=/boot/vmlinux vm.initrd=/boot/bench-initrd.cpio \
             vm.cmdline=\"console=ttyS0 quiet bench.run=/bench/fwq,40000,8192\" vm.cores=1 vm.mem=256M"
        );
        assert_eq!((System::ManulNative.smp(2), System::LinuxNative.smp(2)), (3, 2));
        for system in SYSTEMS {
            assert!(system.config().cmdline.contains("{PROGRAM}"));
        }
    }

    #[test]
    fn manul_events_give_the_exit_status_and_the_job_core_interrupts() {
        let log = "@manul {\"event\":\"boot\",\"cpus\":2,\"tsc_hz\":999930400,\"boot_us\":39692}\n\
                   [job] BENCH {\"workload\":\"x\"}\n\
                   @manul {\"event\":\"job_exit\",\"job\":\"job\",\"status\":0,\"cpu_ms\":405,\"wall_ms\":407}\n\
                   @manul {\"event\":\"irq_stats\",\"cpu\":0,\"timer\":5,\"ipi\":0,\"halts\":1}\n\
                   @manul {\"event\":\"irq_stats\",\"cpu\":1,\"timer\":0,\"ipi\":2,\"halts\":2}\n";
        let mut run = Run::new("x", MANUL_NATIVE, &[], 2, true, String::new());
        manul_info(log, &mut run);
        assert_eq!(run.exit_status, Some(0));
        assert_eq!(run.info["timer_interrupts"], "0");
        assert_eq!(run.info["ipis"], "2");
        assert_eq!(run.info["tsc_hz"], "999930400");
        assert_eq!(run.info["job_wall_ms"], "407");
        assert_eq!(brief(&run), "");
        run.error = Some("timed out after 300 s\nmore".into());
        assert_eq!(brief(&run), "FAILED (timed out after 300 s)");
    }
}
