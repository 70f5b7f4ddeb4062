//! Building the kernel for bare metal and installing the image where `run` and `test` boot it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::host::process;
use crate::host::workspace::{self, Workspace};

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

/// `cargo build -p lwk --target x86_64-unknown-none [--release]`, run from the workspace root,
/// once the toolchain has the kernel's target.
pub fn cargo_build_command(workspace: &Workspace, profile: Profile) -> Result<Command> {
    ensure_target(workspace)?;
    let mut command = Command::new(workspace::cargo());
    command.current_dir(workspace.root()).args(["build", "-p", KERNEL_CRATE, "--target", KERNEL_TARGET]);
    if let Profile::Release = profile {
        command.arg("--release");
    }
    Ok(command)
}

/// Makes sure the toolchain that builds the kernel (the one `rust-toolchain.toml` names) has the
/// standard library for [`KERNEL_TARGET`]: rustup installs a toolchain file's targets only when
/// it installs the toolchain itself, so a machine that already had that toolchain lacks it.
/// Adds it with `rustup target add`, or says what to run when that is not possible.
pub fn ensure_target(workspace: &Workspace) -> Result<()> {
    let sysroot = toolchain_sysroot(workspace)?;
    let installed = |sysroot: &Path| sysroot.join("lib/rustlib").join(KERNEL_TARGET).join("lib").is_dir();
    if installed(&sysroot) {
        return Ok(());
    }
    let hint = format!("install it with `rustup target add {KERNEL_TARGET}` in {}", workspace.root().display());
    eprintln!("the Rust toolchain at {} lacks the kernel's target {KERNEL_TARGET}: adding it", sysroot.display());
    let mut command = Command::new("rustup");
    command.current_dir(workspace.root()).args(["target", "add", KERNEL_TARGET]);
    eprintln!("$ {}", process::describe(&command));
    match command.status() {
        Ok(status) if status.success() && installed(&sysroot) => Ok(()),
        Ok(status) => bail!("`{}` failed ({status}): {hint}", process::describe(&command)),
        Err(error) => bail!("cannot run rustup ({error}) to add the kernel's target {KERNEL_TARGET}: {hint}"),
    }
}

/// The sysroot of the toolchain cargo builds the workspace with (`rustc --print sysroot` from the
/// workspace root, so that `rust-toolchain.toml` and the toolchain running xtask apply).
fn toolchain_sysroot(workspace: &Workspace) -> Result<PathBuf> {
    let mut command = Command::new(workspace::rustc());
    command.current_dir(workspace.root()).args(["--print", "sysroot"]);
    let output = command.output().with_context(|| format!("cannot run `{}`", process::describe(&command)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            process::describe(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

/// Builds the kernel with cargo's output on the terminal and installs the image.
pub fn build(workspace: &Workspace, profile: Profile) -> Result<PathBuf> {
    let mut command = cargo_build_command(workspace, profile)?;
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
