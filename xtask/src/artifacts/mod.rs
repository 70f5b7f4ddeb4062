//! What the xtask builds: the kernel ([`kernel_build`]), the initrd ([`initrd`]: busybox, the
//! test programs, the Linux guest) and the archives they are written as ([`archive`], [`cpio`]),
//! with Debian's packages as material ([`debian_package`], [`busybox`], [`debian_kernel`],
//! [`linux_guest`]). Uses only `host`.

pub mod archive;
pub mod busybox;
pub mod cpio;
pub mod debian_kernel;
pub mod debian_package;
pub mod initrd;
pub mod kernel_build;
pub mod linux_guest;
pub mod test_programs;

use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::host::workspace::Workspace;

/// Builds the project's initrd, with progress and notes on stderr and a summary line.
pub fn build_initrd(workspace: &Workspace) -> Result<PathBuf> {
    let summary = initrd::build(workspace, &mut io::stderr()).context("cannot build the initrd")?;
    for note in &summary.notes {
        eprintln!("note: {note}");
    }
    print_initrd(workspace, &summary);
    Ok(summary.path)
}

/// One line on stdout: where the initrd is, its size, and whether it was rewritten.
pub fn print_initrd(workspace: &Workspace, summary: &archive::Summary) {
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
