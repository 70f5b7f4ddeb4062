//! `open`'s flags as x86-64 Linux numbers them: the access mode (a number in the low two bits)
//! and the status flags (a set of bits), defined once for the open files and the system calls.

use bitflags::bitflags;

/// The access mode's bits, and its values (a number, not flags). Mode 3 is an `O_PATH`
/// descriptor's: neither read nor written.
pub const O_ACCMODE: u32 = 3;
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;

bitflags! {
    /// `open`'s flags. Bits without a name here (`O_SYNC`, `O_DIRECT`, the access mode...) are
    /// kept as the caller gave them (`from_bits_retain`): Linux ignores the open flags it does
    /// not know, and F_GETFL reports them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct OpenFlags: u32 {
        const CREAT = 0o100;
        const EXCL = 0o200;
        const NOCTTY = 0o400;
        const TRUNC = 0o1000;
        const APPEND = 0o2000;
        const NONBLOCK = 0o4000;
        const LARGEFILE = 0o100000;
        const DIRECTORY = 0o200000;
        const NOFOLLOW = 0o400000;
        const CLOEXEC = 0o2000000;
        /// A descriptor that only names a node (neither read nor written, invisible to poll).
        const PATH = 0o10000000;
    }
}

impl OpenFlags {
    /// The flags F_SETFL changes; the access mode and the others stay as open set them.
    const SETTABLE: OpenFlags = OpenFlags::APPEND.union(OpenFlags::NONBLOCK);

    /// The access mode: [`O_RDONLY`], [`O_WRONLY`], [`O_RDWR`] or 3.
    pub const fn access_mode(self) -> u32 {
        self.bits() & O_ACCMODE
    }

    /// Open for reading (access mode 3 is neither readable nor writable).
    pub const fn readable(self) -> bool {
        matches!(self.access_mode(), O_RDONLY | O_RDWR)
    }

    pub const fn writable(self) -> bool {
        matches!(self.access_mode(), O_WRONLY | O_RDWR)
    }

    /// What an open file keeps of `open`'s flags (and F_GETFL reports): Linux drops the flags
    /// that only mean something to open and adds O_LARGEFILE on 64-bit machines; an O_PATH
    /// descriptor's access mode is 3, neither read nor write.
    pub fn kept(self) -> OpenFlags {
        let kept = self.difference(OpenFlags::CREAT | OpenFlags::EXCL | OpenFlags::NOCTTY | OpenFlags::TRUNC)
            | OpenFlags::LARGEFILE;
        if self.contains(OpenFlags::PATH) { kept | OpenFlags::from_bits_retain(O_ACCMODE) } else { kept }
    }

    /// F_SETFL's result: O_APPEND and O_NONBLOCK as `arg` has them, the rest as before.
    pub fn with_settable(self, arg: u32) -> OpenFlags {
        self.difference(Self::SETTABLE) | OpenFlags::from_bits_retain(arg).intersection(Self::SETTABLE)
    }

    /// `flags` if they hold nothing but `allowed` (pipe2's and dup3's check), bits above the
    /// 32 of an `int` too; `None` (EINVAL) otherwise.
    pub fn only(flags: u64, allowed: OpenFlags) -> Option<OpenFlags> {
        let flags = OpenFlags::from_bits_retain(u32::try_from(flags).ok()?);
        allowed.contains(flags).then_some(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O_SYNC: u32 = 0o4010000;

    #[test]
    fn access_modes() {
        let mode = |m| OpenFlags::from_bits_retain(m | OpenFlags::CLOEXEC.bits());
        assert!(mode(O_RDONLY).readable() && !mode(O_RDONLY).writable());
        assert!(!mode(O_WRONLY).readable() && mode(O_WRONLY).writable());
        assert!(mode(O_RDWR).readable() && mode(O_RDWR).writable());
        assert!(!mode(3).readable() && !mode(3).writable());
    }

    #[test]
    fn kept_drops_open_only_flags_and_keeps_unknown_ones() {
        let given = OpenFlags::from_bits_retain(O_WRONLY | O_SYNC)
            | OpenFlags::CREAT
            | OpenFlags::EXCL
            | OpenFlags::TRUNC
            | OpenFlags::NOCTTY
            | OpenFlags::APPEND;
        assert_eq!(given.kept().bits(), O_WRONLY | O_SYNC | OpenFlags::APPEND.bits() | OpenFlags::LARGEFILE.bits());
        let path = (OpenFlags::PATH | OpenFlags::DIRECTORY).kept();
        assert_eq!(path.access_mode(), 3);
        assert!(path.contains(OpenFlags::PATH | OpenFlags::DIRECTORY | OpenFlags::LARGEFILE));
    }

    #[test]
    fn setfl_changes_append_and_nonblock_only() {
        let file = OpenFlags::from_bits_retain(O_RDWR | O_SYNC) | OpenFlags::APPEND | OpenFlags::LARGEFILE;
        let arg = OpenFlags::NONBLOCK.bits() | O_WRONLY | OpenFlags::CLOEXEC.bits() | OpenFlags::TRUNC.bits();
        assert_eq!(
            file.with_settable(arg).bits(),
            O_RDWR | O_SYNC | OpenFlags::NONBLOCK.bits() | OpenFlags::LARGEFILE.bits()
        );
        assert_eq!(file.with_settable(0).bits(), O_RDWR | O_SYNC | OpenFlags::LARGEFILE.bits());
    }

    #[test]
    fn only_refuses_anything_else() {
        let pipe = OpenFlags::CLOEXEC | OpenFlags::NONBLOCK;
        assert_eq!(OpenFlags::only(0, pipe), Some(OpenFlags::empty()));
        assert_eq!(OpenFlags::only(u64::from(pipe.bits()), pipe), Some(pipe));
        assert_eq!(OpenFlags::only(u64::from(O_WRONLY), pipe), None);
        assert_eq!(OpenFlags::only(u64::from(O_SYNC), pipe), None);
        assert_eq!(OpenFlags::only(1 << 40, pipe), None);
        assert_eq!(OpenFlags::only(u64::from(OpenFlags::NONBLOCK.bits()), OpenFlags::CLOEXEC), None);
    }
}
