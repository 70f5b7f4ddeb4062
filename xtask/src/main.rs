//! `cargo xtask`: build the Manul kernel, boot it under QEMU, and run the project's tests.

mod events;
mod kernel_build;
mod prerequisites;
mod process;
mod qemu;
mod scenarios;
mod test_runner;
mod workspace;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::kernel_build::Profile;
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
    /// Build the kernel for x86_64-unknown-none and copy it to target/manul/lwk
    Build {
        /// Build the debug profile instead of release
        #[arg(long)]
        debug: bool,
    },
    /// Build the kernel and boot it under QEMU with the serial console here (Ctrl-A X quits)
    Run(RunArgs),
    /// Run the host unit tests, build the kernel and run the QEMU boot scenarios of
    /// tests/boot-scenarios.toml
    Test {
        /// Run only the items whose name contains this text (e.g. `unit:`, `smp8`)
        filter: Option<String>,
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
            kernel_build::build(&workspace, profile)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Run(args) => run_kernel(&workspace, &args),
        Task::Test { filter } => test_runner::run(&workspace, filter.as_deref()),
    }
}

/// Boots the kernel in the foreground and exits according to what QEMU's status means.
fn run_kernel(workspace: &Workspace, args: &RunArgs) -> Result<ExitCode> {
    prerequisites::ensure()?;
    let kernel = kernel_build::build(workspace, Profile::Release)?;
    let mut command = qemu::command(&Machine {
        kernel: &kernel,
        smp: args.smp,
        mem: args.mem,
        cmdline: &args.cmdline,
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
