//! `clone`'s flags as x86-64 Linux numbers them, and which of their combinations the kernel
//! makes: a thread of the caller's process, or a new process (forked, or vforked).

use bitflags::bitflags;

bitflags! {
    /// `clone`'s flags word.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct CloneFlags: u64 {
        /// The low byte: the signal the parent gets when the child ends (a number, not flags;
        /// the parent always gets SIGCHLD).
        const EXIT_SIGNAL = 0xff;
        const VM = 0x100;
        const FS = 0x200;
        const FILES = 0x400;
        const SIGHAND = 0x800;
        const VFORK = 0x4000;
        const PARENT = 0x8000;
        const THREAD = 0x1_0000;
        const SYSVSEM = 0x4_0000;
        const SETTLS = 0x8_0000;
        const PARENT_SETTID = 0x10_0000;
        const CHILD_CLEARTID = 0x20_0000;
        const DETACHED = 0x40_0000;
        const CHILD_SETTID = 0x100_0000;
    }
}

impl CloneFlags {
    /// `raw` if the kernel can honour it, `None` (EINVAL) otherwise: a flag it does not know
    /// (namespaces, pidfds...), a thread that does not share memory and signal handlers, or a
    /// new process sharing memory other than through vfork (threads share it instead).
    pub fn parse(raw: u64) -> Option<CloneFlags> {
        let flags = CloneFlags::from_bits(raw)?;
        let ok = if flags.contains(CloneFlags::THREAD) {
            flags.contains(CloneFlags::VM | CloneFlags::SIGHAND)
        } else {
            !flags.contains(CloneFlags::VM) || flags.contains(CloneFlags::VFORK)
        };
        ok.then_some(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGCHLD: u64 = 17;

    #[test]
    fn what_libc_asks_is_taken() {
        // glibc's pthread_create, fork (through clone) and posix_spawn (vfork).
        let thread = 0x3d0f00;
        assert_eq!(CloneFlags::parse(thread).map(|f| f.bits()), Some(thread));
        let fork = (CloneFlags::CHILD_SETTID | CloneFlags::CHILD_CLEARTID).bits() | SIGCHLD;
        assert_eq!(CloneFlags::parse(fork).map(|f| f.bits()), Some(fork));
        let spawn = (CloneFlags::VM | CloneFlags::VFORK).bits() | SIGCHLD;
        assert!(CloneFlags::parse(spawn).is_some());
        assert!(CloneFlags::parse(0).is_some());
    }

    #[test]
    fn unknown_flags_are_refused() {
        const CLONE_NEWNS: u64 = 0x2_0000;
        const CLONE_PIDFD: u64 = 0x1000;
        for bit in [CLONE_NEWNS, CLONE_PIDFD, 1 << 32, 1 << 63] {
            assert_eq!(CloneFlags::parse(bit | SIGCHLD), None, "{bit:#x}");
        }
    }

    #[test]
    fn sharing_must_be_whole() {
        assert_eq!(CloneFlags::parse((CloneFlags::THREAD | CloneFlags::VM).bits()), None);
        assert_eq!(CloneFlags::parse((CloneFlags::THREAD | CloneFlags::SIGHAND).bits()), None);
        assert_eq!(CloneFlags::parse(CloneFlags::VM.bits() | SIGCHLD), None);
        assert!(CloneFlags::parse((CloneFlags::THREAD | CloneFlags::VM | CloneFlags::SIGHAND).bits()).is_some());
    }
}
