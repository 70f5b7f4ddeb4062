//! The QEMU machine the kernel boots on, and what QEMU's exit status means.

use std::fmt;
use std::path::Path;
use std::process::{Child, Command};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use enclave::values::parse_size;

use crate::host::prerequisites::QEMU;

pub const QEMU_MACHINE: &str = "q35";
pub const QEMU_CPU: &str = "max";

/// The kernel reports its result by writing a code to this I/O port of QEMU's isa-debug-exit
/// device; QEMU then exits with status `(code << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// The code the kernel writes to [`DEBUG_EXIT_PORT`] on success.
pub const KERNEL_SUCCESS_CODE: i32 = 0x10;
/// The code the kernel writes to [`DEBUG_EXIT_PORT`] on failure.
pub const KERNEL_FAILURE_CODE: i32 = 0x11;
pub const STATUS_KERNEL_SUCCESS: i32 = (KERNEL_SUCCESS_CODE << 1) | 1;
pub const STATUS_KERNEL_FAILURE: i32 = (KERNEL_FAILURE_CODE << 1) | 1;
/// QEMU stopped by itself: an ACPI power-off, but also a triple fault under `-no-reboot`, so it
/// is a clean power-off only if the kernel printed its `shutdown` event.
pub const STATUS_POWERED_OFF: i32 = 0;
/// QEMU could not start the machine (bad arguments, unloadable kernel image, ...).
pub const STATUS_QEMU_ERROR: i32 = 1;

/// How often a test polls QEMU for its exit.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

const MIB: u64 = 1 << 20;

/// A guest memory size, as given to `-m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemSize {
    mib: u64,
}

impl FromStr for MemSize {
    type Err = String;

    /// A size as a manifest writes it (`enclave::values::parse_size`: `512M`, `1G`, ...) of
    /// whole MiB, or a bare number of MiB (as QEMU reads one).
    fn from_str(text: &str) -> Result<Self, String> {
        let bare = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let bytes = if bare { parse_size(&format!("{text}M")) } else { parse_size(text) };
        let bytes = bytes.map_err(|e| format!("invalid memory size '{text}': {e}"))?;
        if bytes % MIB != 0 {
            return Err(format!("invalid memory size '{text}': not a whole number of MiB"));
        }
        Ok(Self { mib: bytes / MIB })
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}M", self.mib)
    }
}

/// One guest: what `run` and every boot scenario configure.
pub struct Machine<'a> {
    pub kernel: &'a Path,
    /// The cpio archive passed with `-initrd`, if any.
    pub initrd: Option<&'a Path>,
    pub smp: u32,
    pub mem: MemSize,
    pub cmdline: &'a str,
    /// Whether the isa-debug-exit device is present, letting the kernel choose QEMU's status.
    pub debug_exit: bool,
}

/// `qemu-system-x86_64` with the arguments common to `run` and `test`; the caller adds the
/// serial console and monitor.
pub fn command(machine: &Machine<'_>) -> Command {
    let mut command = Command::new(QEMU);
    command
        .args(["-machine", QEMU_MACHINE, "-accel", "tcg", "-cpu", QEMU_CPU])
        .arg("-smp")
        .arg(machine.smp.to_string())
        .arg("-m")
        .arg(machine.mem.to_string())
        .arg("-kernel")
        .arg(machine.kernel);
    if let Some(initrd) = machine.initrd {
        command.arg("-initrd").arg(initrd);
    }
    command.arg("-append").arg(machine.cmdline).args([
        "-no-reboot",
        "-nic",
        "none",
        "-vga",
        "none",
        "-display",
        "none",
    ]);
    if machine.debug_exit {
        command.arg("-device").arg(format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"));
    }
    command
}

/// What QEMU's exit status (`None`: killed by a signal) says about the guest.
pub fn describe_status(status: Option<i32>) -> String {
    match status {
        Some(STATUS_KERNEL_SUCCESS) => "the kernel reported success through isa-debug-exit".into(),
        Some(STATUS_KERNEL_FAILURE) => "the kernel reported failure through isa-debug-exit".into(),
        Some(STATUS_POWERED_OFF) => {
            "QEMU stopped by itself: an ACPI power-off, a triple fault (-no-reboot) or a quit from the monitor".into()
        }
        Some(STATUS_QEMU_ERROR) => "QEMU failed: bad arguments or a kernel image it could not load".into(),
        Some(code) if code % 2 == 1 && (3..=511).contains(&code) => format!(
            "the kernel wrote {:#x} to the isa-debug-exit port, which is neither success \
             ({KERNEL_SUCCESS_CODE:#x}) nor failure ({KERNEL_FAILURE_CODE:#x})",
            code >> 1
        ),
        Some(_) => "an exit status QEMU does not use".into(),
        None => "QEMU was killed by a signal".into(),
    }
}

pub enum Completion {
    Exited(Option<i32>),
    TimedOut,
}

/// Waits for `child` to exit, killing it once `timeout` has passed.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Result<Completion> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("cannot poll QEMU")? {
            return Ok(Completion::Exited(status.code()));
        }
        if Instant::now() >= deadline {
            child.kill().context("cannot kill QEMU")?;
            child.wait().context("cannot wait for the killed QEMU")?;
            return Ok(Completion::TimedOut);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mib(text: &str) -> Result<u64, String> {
        text.parse::<MemSize>().map(|size| size.mib)
    }

    #[test]
    fn mem_sizes_are_read_in_mib() {
        assert_eq!(mib("128M"), Ok(128));
        assert_eq!(mib("1G"), Ok(1024));
        assert_eq!(mib("4096M"), Ok(4096));
        assert_eq!(mib("4g"), Ok(4096));
        assert_eq!(mib("512"), Ok(512));
        assert_eq!("1G".parse::<MemSize>().unwrap().to_string(), "1024M");
        // The manifest's size grammar.
        assert_eq!(mib("4096K"), Ok(4));
        assert_eq!(mib("1T"), Ok(1 << 20));
        assert_eq!(mib(" 1G"), Ok(1024));
    }

    #[test]
    fn bad_mem_sizes_are_rejected() {
        for text in ["", "M", "1.5G", "-1G", "1 G", "0M", "0", "1500K", "99999999999999999999G"] {
            assert!(mib(text).is_err(), "{text:?} was accepted");
        }
        assert!(mib("18446744073709551615G").unwrap_err().contains("too large"));
        assert!(mib("18446744073709551615").unwrap_err().contains("too large"));
        assert!(mib("1500K").unwrap_err().contains("whole number of MiB"));
    }

    #[test]
    fn the_debug_exit_device_is_present_unless_disabled() {
        let kernel = Path::new("target/manul/lwk");
        let machine = |debug_exit, initrd| Machine {
            kernel,
            initrd,
            smp: 2,
            mem: "256M".parse().unwrap(),
            cmdline: "then=poweroff",
            debug_exit,
        };
        let args = |debug_exit, initrd| {
            command(&machine(debug_exit, initrd))
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            args(true, None),
            "-machine q35 -accel tcg -cpu max -smp 2 -m 256M -kernel target/manul/lwk \
             -append then=poweroff -no-reboot -nic none -vga none -display none \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04"
        );
        assert!(!args(false, None).contains("isa-debug-exit"));
        let initrd = Path::new("target/manul/initrd.cpio");
        assert!(
            args(true, Some(initrd))
                .contains("-kernel target/manul/lwk -initrd target/manul/initrd.cpio -append then=poweroff")
        );
    }

    #[test]
    fn exit_statuses_are_explained() {
        assert!(describe_status(Some(33)).contains("success"));
        assert!(describe_status(Some(35)).contains("failure"));
        assert!(describe_status(Some(0)).contains("power-off"));
        assert!(describe_status(Some(37)).contains("0x12"));
        assert!(describe_status(None).contains("signal"));
    }
}
