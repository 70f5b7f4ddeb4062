//! `cargo xtask`: build the Manul kernel, boot it under QEMU, and run the project's tests.

mod artifacts;
mod bench;
mod host;
mod run;
mod test;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::artifacts::kernel_build::{self, Profile};
use crate::host::prerequisites::{self, Purpose};
use crate::host::workspace::Workspace;

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
    Run(run::RunArgs),
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
            artifacts::build_initrd(&workspace)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Run(args) => run::run(&workspace, &args),
        Task::Test { filter } => test::runner::run(&workspace, filter.as_deref()),
        Task::Bench { quick, smoke, out } => {
            let mode = match (smoke, quick) {
                (true, _) => bench::runner::Mode::Smoke,
                (false, true) => bench::runner::Mode::Quick,
                (false, false) => bench::runner::Mode::Full,
            };
            bench::runner::run(&workspace, &bench::runner::Options { mode, out })
        }
    }
}
