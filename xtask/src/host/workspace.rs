//! Where things live: the workspace root, cargo's target directory and the files xtask writes
//! under `target/manul/`.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub struct Workspace {
    root: PathBuf,
    target_dir: PathBuf,
}

impl Workspace {
    /// The workspace is the parent of this crate's directory. Cargo's target directory is
    /// `target/` there unless `CARGO_TARGET_DIR` moves it.
    pub fn locate() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .with_context(|| format!("{} has no parent directory", manifest_dir.display()))?
            .to_path_buf();
        let target_dir = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        Ok(Self { root, target_dir })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where cargo puts the artifacts of `target` built with `profile` (`debug` or `release`).
    pub fn cargo_output_dir(&self, target: &str, profile: &str) -> PathBuf {
        self.target_dir.join(target).join(profile)
    }

    /// The kernel image that `run` and `test` boot.
    pub fn kernel_image(&self) -> PathBuf {
        self.manul_dir().join("lwk")
    }

    /// The initrd that `run` and `test` boot with.
    pub fn initrd(&self) -> PathBuf {
        self.manul_dir().join("initrd.cpio")
    }

    /// The initrd `run --initrd-dir` packs.
    pub fn user_initrd(&self) -> PathBuf {
        self.manul_dir().join("user-initrd.cpio")
    }

    /// Where the test programs of `tests/jobs/` are compiled to.
    pub fn jobs_dir(&self) -> PathBuf {
        self.manul_dir().join("jobs")
    }

    /// The Linux guest made from Debian's kernel: `vmlinux`, `guest-initrd.cpio`.
    pub fn guest_dir(&self) -> PathBuf {
        self.manul_dir().join("guest")
    }

    /// Downloads kept between builds.
    pub fn cache_dir(&self) -> PathBuf {
        self.manul_dir().join("cache")
    }

    /// What `bench` builds: its programs, the initrd of each system.
    pub fn bench_build_dir(&self) -> PathBuf {
        self.manul_dir().join("bench-build")
    }

    /// Where `bench` writes its results unless told otherwise.
    pub fn bench_results_dir(&self) -> PathBuf {
        self.manul_dir().join("bench")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.manul_dir().join("logs")
    }

    /// A path as the user should read it: relative to the workspace root when it is inside it.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    fn manul_dir(&self) -> PathBuf {
        self.target_dir.join("manul")
    }
}

/// The cargo that runs xtask (cargo sets `CARGO` for `cargo run`), so nested builds use the same
/// toolchain.
pub fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The rustc of the toolchain running xtask (cargo sets `RUSTC` only for build scripts; rustup's
/// proxy picks the same toolchain from `rust-toolchain.toml` and `RUSTUP_TOOLCHAIN`).
pub fn rustc() -> OsString {
    env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}
