//! `cargo xtask run`: the kernel booted under QEMU ([`qemu`]) with the serial console here, the
//! named ways to boot ([`run_scenarios`]), `--job` ([`job_command`]), and the kernel's events on
//! the console ([`events`]). Uses `artifacts` and `host`.

pub mod events;
pub mod job_command;
pub mod qemu;
pub mod run_scenarios;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, ensure};
use clap::Args;

use crate::artifacts::kernel_build::{self, Profile};
use crate::artifacts::{self, archive};
use crate::host::prerequisites::{self, Purpose, QEMU};
use crate::host::process;
use crate::host::workspace::Workspace;
use qemu::{Machine, MemSize};

#[derive(Args)]
pub struct RunArgs {
    /// Number of CPUs
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    smp: u32,
    /// Guest memory: a size in whole MiB (512M, 2G; a bare number is MiB)
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

/// Boots the kernel in the foreground and exits according to what QEMU's status means.
pub fn run(workspace: &Workspace, args: &RunArgs) -> Result<ExitCode> {
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
            artifacts::print_initrd(workspace, &summary);
            summary.path
        }
        None => artifacts::build_initrd(workspace)?,
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
    let status = command.status().with_context(|| format!("cannot start {}", QEMU))?;
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
