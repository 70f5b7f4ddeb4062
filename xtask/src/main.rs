//! `cargo xtask`: build the Manul kernel, boot it under QEMU, and run the project's tests.

mod archive;
mod bench;
mod bench_report;
mod bench_workloads;
mod busybox;
mod cpio;
mod debian_kernel;
mod debian_package;
mod events;
mod fault_campaign;
mod initrd;
mod job_command;
mod kernel_build;
mod linux_guest;
mod prerequisites;
mod process;
mod qemu;
mod run_scenarios;
mod scenarios;
mod test_programs;
mod test_runner;
#[cfg(test)]
mod test_support;
mod workspace;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, ensure};
use clap::{Args, Parser, Subcommand};

use crate::kernel_build::Profile;
use crate::prerequisites::Purpose;
use crate::qemu::{Machine, MemSize};
use crate::workspace::Workspace;

#[derive(Parser)]
#[command(bin_name = "cargo xtask", about = "Build, boot and test the Manul kernel")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the kernel for x86_64-unknown-none and copy it to target/manul/lwk, and the initrd
    /// (busybox, the test programs of tests/jobs, Debian's Linux as a guest) at
    /// target/manul/initrd.cpio
    Build {
        /// Build the debug profile instead of release
        #[arg(long)]
        debug: bool,
    },
    /// Build the kernel and the initrd and boot them under QEMU with the serial console here
    /// (Ctrl-A X quits)
    Run(RunArgs),
    /// Run the host unit tests, build the kernel and the initrd and run the QEMU boot scenarios
    /// of tests/boot-scenarios.toml
    Test {
        /// Run only the items whose name contains this text (e.g. `unit:`, `smp8`)
        filter: Option<String>,
    },
    /// Measure Manul (native jobs, and Linux guests on its VMM) against Linux native and KVM on
    /// the benchmark programs of bench/ (under QEMU icount: numbers in instructions); writes
    /// results.json, report.md and SVG plots
    Bench {
        /// Fewer samples: a few minutes instead of the full run
        #[arg(long, conflicts_with = "smoke")]
        quick: bool,
        /// One short iteration of every workload on every system: numbers that mean little, a
        /// harness that is known to work (what `cargo xtask test` runs)
        #[arg(long)]
        smoke: bool,
        /// Where to write the results (default: target/manul/bench)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Number of CPUs
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    smp: u32,
    /// Guest memory: MiB with an optional M or G suffix
    #[arg(long, default_value = "1G")]
    mem: MemSize,
    /// Kernel command line
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Wait for gdb on TCP port 1234 before starting the guest
    #[arg(long)]
    gdb: bool,
    /// Leave out the isa-debug-exit device, so the kernel powers off through ACPI
    #[arg(long)]
    no_debug_exit: bool,
    /// Boot with this directory packed as the initrd (recursively, keeping symbolic links and
    /// permissions; into target/manul/user-initrd.cpio) instead of the project's initrd
    #[arg(long, value_name = "DIR")]
    initrd_dir: Option<PathBuf>,
    /// Start this command as the job: split like a shell would (quotes respected, nothing
    /// expanded), it adds `job=PROGRAM job.args="ARGS"` to the kernel command line
    #[arg(long, value_name = "CMD")]
    job: Option<String>,
    /// Boot a named scenario: its options go on the kernel command line before those of
    /// --cmdline and --job (default, when none of --cmdline, --job and --initrd-dir is given:
    /// compose)
    #[arg(long, value_name = "NAME", value_parser = run_scenarios::parser())]
    scenario: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run_task(cli.task) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<ExitCode> {
    let workspace = Workspace::locate()?;
    match task {
        Task::Build { debug } => {
            let profile = if debug { Profile::Debug } else { Profile::Release };
            prerequisites::ensure(&[Purpose::Initrd])?;
            kernel_build::build(&workspace, profile)?;
            build_initrd(&workspace)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Run(args) => run_kernel(&workspace, &args),
        Task::Test { filter } => test_runner::run(&workspace, filter.as_deref()),
        Task::Bench { quick, smoke, out } => {
            let mode = match (smoke, quick) {
                (true, _) => bench::Mode::Smoke,
                (false, true) => bench::Mode::Quick,
                (false, false) => bench::Mode::Full,
            };
            bench::run(&workspace, &bench::Options { mode, out })
        }
    }
}

/// Builds the project's initrd, with progress and notes on stderr and a summary line.
fn build_initrd(workspace: &Workspace) -> Result<PathBuf> {
    let summary = initrd::build(workspace, &mut io::stderr()).context("cannot build the initrd")?;
    for note in &summary.notes {
        eprintln!("note: {note}");
    }
    print_initrd(workspace, &summary);
    Ok(summary.path)
}

fn print_initrd(workspace: &Workspace, summary: &archive::Summary) {
    // Lossy only for display: the archive is a few MiB.
    let mib = summary.bytes as f64 / (1024.0 * 1024.0);
    println!(
        "initrd: {} ({} entries, {} bytes, {mib:.1} MiB{})",
        workspace.display(&summary.path),
        summary.entries,
        summary.bytes,
        if summary.written { "" } else { ", up to date" }
    );
}

/// Boots the kernel in the foreground and exits according to what QEMU's status means.
fn run_kernel(workspace: &Workspace, args: &RunArgs) -> Result<ExitCode> {
    // A bad --job is reported before anything is built.
    let job_options = args.job.as_deref().map(job_command::kernel_options).transpose()?;
    if let Some(dir) = &args.initrd_dir {
        ensure!(dir.is_dir(), "--initrd-dir {}: not a directory", dir.display());
    }
    // Nothing to run given: the default scenario shows what Manul is about.
    let nothing_given = args.cmdline.is_empty() && args.job.is_none() && args.initrd_dir.is_none();
    let scenario = match (&args.scenario, nothing_given) {
        (Some(name), _) => {
            run_scenarios::find(name).with_context(|| format!("no run scenario is called {name}"))?.cmdline
        }
        (None, true) => run_scenarios::find(run_scenarios::DEFAULT).map_or("", |s| s.cmdline),
        (None, false) => "",
    };
    let cmdline = run_scenarios::join_cmdline(&[scenario, &args.cmdline, job_options.as_deref().unwrap_or_default()]);
    prerequisites::ensure(if args.initrd_dir.is_some() {
        &[Purpose::Boot]
    } else {
        &[Purpose::Boot, Purpose::Initrd]
    })?;
    let kernel = kernel_build::build(workspace, Profile::Release)?;
    let initrd = match &args.initrd_dir {
        Some(dir) => {
            let summary = archive::pack_directory(dir, &workspace.user_initrd())
                .with_context(|| format!("cannot pack {} as the initrd", dir.display()))?;
            print_initrd(workspace, &summary);
            summary.path
        }
        None => build_initrd(workspace)?,
    };
    let mut command = qemu::command(&Machine {
        kernel: &kernel,
        initrd: Some(&initrd),
        smp: args.smp,
        mem: args.mem,
        cmdline: &cmdline,
        debug_exit: !args.no_debug_exit,
    });
    command.args(["-serial", "mon:stdio"]);
    if args.gdb {
        command.args(["-s", "-S"]);
        eprintln!("QEMU waits for gdb: gdb {} -ex 'target remote :1234'", workspace.display(&kernel));
    }
    eprintln!("$ {}", process::describe(&command));
    let status = command.status().with_context(|| format!("cannot start {}", qemu::QEMU))?;
    let code = status.code();
    eprintln!(
        "QEMU exited with status {}: {}",
        code.map_or_else(|| "none".to_owned(), |code| code.to_string()),
        qemu::describe_status(code)
    );
    Ok(match code {
        Some(qemu::STATUS_KERNEL_SUCCESS | qemu::STATUS_POWERED_OFF) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
