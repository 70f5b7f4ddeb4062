//! The node's file system: the RAM file system built from the initrd at boot, shared by every
//! job behind one lock.

use crate::kernel_memory;
use alloc::string::String;
use alloc::vec::Vec;
use lwk::errno::Errno;
use lwk::ram_fs::{FileSystem, Lookup};
use lwk::start_info::BootInfo;

static FS: spin::Once<spin::Mutex<FileSystem>> = spin::Once::new();

/// Builds the file system from the boot modules (QEMU `-initrd`). Returns the number of archive
/// entries loaded; a malformed archive is refused whole with the reason.
pub fn init(boot: &BootInfo) -> Result<usize, String> {
    let mut fs = FileSystem::new();
    fs.set_clock(|| crate::clock::realtime_ns() / 1_000_000_000);
    let mut entries = 0;
    for m in boot.modules() {
        let virt = kernel_memory::map_physical(m.start, m.len(), false).map_err(|e| alloc::format!("{e:?}"))?;
        // SAFETY: the module's frames were reserved from the allocator at boot and are never
        // reused or written, so the slice is valid and unchanging for the kernel's lifetime.
        let archive: &'static [u8] = unsafe { core::slice::from_raw_parts(virt as *const u8, m.len() as usize) };
        entries += fs.load_initrd(archive).map_err(|e| alloc::format!("initrd: {e}"))?;
    }
    FS.call_once(|| spin::Mutex::new(fs));
    Ok(entries)
}

pub fn with_fs<R>(f: impl FnOnce(&mut FileSystem<'static>) -> R) -> R {
    let fs = FS.call_once(|| spin::Mutex::new(FileSystem::new()));
    f(&mut fs.lock())
}

/// The bytes of an executable file, for the program loader.
pub fn read_program(at: &Lookup, path: &str) -> Result<Vec<u8>, Errno> {
    with_fs(|fs| {
        let ino = fs.resolve(at, path, true)?;
        if fs.kind(ino) != lwk::ram_fs::NodeKind::File {
            return Err(Errno::EACCES);
        }
        fs.file_data(ino).map(|d| d.to_vec())
    })
}
