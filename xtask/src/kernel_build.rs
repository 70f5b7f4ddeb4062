//! Building the kernel for bare metal and installing the image where `run` and `test` boot it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process;
use crate::workspace::{self, Workspace};

pub const KERNEL_CRATE: &str = "lwk";
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

#[derive(Clone, Copy)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    /// The directory cargo names after the profile.
    fn dir_name(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// `cargo build -p lwk --target x86_64-unknown-none [--release]`, run from the workspace root.
pub fn cargo_build_command(workspace: &Workspace, profile: Profile) -> Command {
    let mut command = Command::new(workspace::cargo());
    command.current_dir(workspace.root()).args(["build", "-p", KERNEL_CRATE, "--target", KERNEL_TARGET]);
    if let Profile::Release = profile {
        command.arg("--release");
    }
    command
}

/// Builds the kernel with cargo's output on the terminal and installs the image.
pub fn build(workspace: &Workspace, profile: Profile) -> Result<PathBuf> {
    let mut command = cargo_build_command(workspace, profile);
    let status = command.status().with_context(|| format!("cannot start `{}`", process::describe(&command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::describe(&command));
    }
    let image = install_image(workspace, profile)?;
    print_image(workspace, &image)?;
    Ok(image)
}

/// Copies the image cargo built to `target/manul/lwk` and returns that path.
pub fn install_image(workspace: &Workspace, profile: Profile) -> Result<PathBuf> {
    let built = workspace.cargo_output_dir(KERNEL_TARGET, profile.dir_name()).join(KERNEL_CRATE);
    let installed = workspace.kernel_image();
    if let Some(dir) = installed.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::copy(&built, &installed)
        .with_context(|| format!("cannot copy the kernel image {} to {}", built.display(), installed.display()))?;
    Ok(installed)
}

fn print_image(workspace: &Workspace, image: &Path) -> Result<()> {
    let size = fs::metadata(image).with_context(|| format!("cannot read the size of {}", image.display()))?.len();
    // Lossy only for display: the image is a few MiB.
    let mib = size as f64 / (1024.0 * 1024.0);
    println!("kernel image: {} ({size} bytes, {mib:.1} MiB)", workspace.display(image));
    Ok(())
}
