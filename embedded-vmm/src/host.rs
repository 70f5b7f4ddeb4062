//! What the VMM needs from its host, and nothing more (compare Palacios' `v3_os_hooks`, minus
//! its global singletons and 32-bit CPU masks). The LWK implements it over its frame allocator
//! and cores; the Linux module will implement it over the kernel's.

use core::fmt;
use core::sync::atomic::AtomicBool;

/// Physically contiguous host memory handed to the VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBlock {
    pub phys: u64,
    pub bytes: u64,
}

pub trait VmmHost: Sync {
    /// `bytes` of zeroed, physically contiguous memory aligned to `align` (a power of two).
    fn alloc_contiguous(&self, bytes: u64, align: u64) -> Option<HostBlock>;
    /// Returns memory from [`Self::alloc_contiguous`].
    fn free_contiguous(&self, block: HostBlock);
    /// The host virtual address through which the VMM reaches physical address `phys`.
    fn phys_to_virt(&self, phys: u64) -> *mut u8;
    /// Time-stamp counter ticks per second.
    fn tsc_hz(&self) -> u64;
    /// Nanoseconds since the host booted.
    fn now_ns(&self) -> u64;
    /// Nanoseconds since the Unix epoch at host uptime `now_ns` (the guest's real-time clock;
    /// from an uptime already read, since the VMM asks on every port I/O exit).
    fn unix_time_ns_at(&self, now_ns: u64) -> u64;
    /// Interrupts the calling CPU at `at_ns` (host uptime) so that a running guest exits in time
    /// for its next timer event; `None` cancels.
    fn set_wakeup(&self, at_ns: Option<u64>);
    /// Sends an interrupt to physical CPU `cpu` so that a vCPU running there exits to the VMM.
    fn kick_cpu(&self, cpu: usize);
    /// Lets the host run something else while a vCPU waits (HLT with nothing due), until
    /// `until_ns` or an interrupt. Returns at once if `woken` is set once the host's interrupts
    /// are off: the VMM sets it before the [`Self::kick_cpu`] that goes with it, so a kick that
    /// lands between the VMM's last look and the wait is not lost.
    fn wait_for_event(&self, until_ns: Option<u64>, woken: &AtomicBool);
    /// One line of the VMM's log.
    fn log(&self, level: LogLevel, args: fmt::Arguments);
    /// Writes a line of a guest's console output (the host prefixes it with the VM's name). It
    /// may take as long as the host's console needs: the guest's UART reports itself busy
    /// meanwhile, and only the guest waits.
    fn console_output(&self, vm: &str, bytes: &[u8]);
    /// A guest's UART holds a line for the host's console: the host calls
    /// [`crate::Vm::transmit_console`] soon, from a CPU of its own. (A vCPU that finds its
    /// line still waiting after [`crate::CONSOLE_HELP_AFTER_NS`] writes it itself.)
    fn console_waiting(&self);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}
