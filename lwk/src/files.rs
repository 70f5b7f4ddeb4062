//! The node's file systems: the *template*, built at boot from the initrd and never changed
//! afterwards, and each job enclave's own copy of it ([`EnclaveFiles`]). A copy shares the
//! initrd's files read-only (their bytes are borrowed from the archive, never copied) and has a
//! private writable `/tmp`, charged to the enclave's kernel-memory account and bounded by its
//! `tmp_size`: one enclave can neither read nor fill another's `/tmp`.

use crate::kernel_memory;
use alloc::string::String;
use alloc::sync::Arc;
use enclave::Account;
use lwk::errno::Errno;
use lwk::ram_fs::{FileSystem, Lookup, NodeKind, ROOT, WritableUsage};
use lwk::start_info::BootInfo;

static TEMPLATE: spin::Once<FileSystem<'static>> = spin::Once::new();

/// Builds the template from the boot modules (QEMU `-initrd`). Returns the number of archive
/// entries loaded; a malformed archive is refused whole with the reason (the template then holds
/// only the built-in nodes).
pub fn init(boot: &BootInfo) -> Result<usize, String> {
    let mut fs = FileSystem::new();
    fs.set_clock(|| crate::clock::realtime_ns() / 1_000_000_000);
    let mut loaded = Ok(0);
    for m in boot.modules() {
        let virt = match kernel_memory::map_physical(m.start, m.len(), false) {
            Ok(virt) => virt,
            Err(e) => {
                loaded = Err(alloc::format!("{e:?}"));
                break;
            }
        };
        // SAFETY: the module's frames were reserved from the allocator at boot and are never
        // reused or written, so the slice is valid and unchanging for the kernel's lifetime.
        let archive: &'static [u8] = unsafe { core::slice::from_raw_parts(virt as *const u8, m.len() as usize) };
        match fs.load_initrd(archive) {
            Ok(n) => loaded = loaded.map(|total| total + n),
            Err(e) => {
                loaded = Err(alloc::format!("initrd: {e}"));
                break;
            }
        }
    }
    TEMPLATE.call_once(|| fs);
    loaded
}

fn template() -> &'static FileSystem<'static> {
    TEMPLATE.call_once(FileSystem::new)
}

/// An initrd file's bytes as the archive holds them (no copy), for what the kernel itself reads:
/// the manifest, a VM's kernel and initrd. `EISDIR`/`EINVAL` for what is not a file, `EROFS` for
/// a file of the template's writable part (it has no bytes in the archive to lend).
pub fn initrd_file(path: &str) -> Result<&'static [u8], Errno> {
    let fs = template();
    let ino = fs.resolve(&Lookup { cwd: ROOT, exe: "" }, path, true)?;
    fs.initrd_bytes(ino)?.ok_or(Errno::EROFS)
}

/// One enclave's file system: a copy of the template behind its own lock.
pub struct EnclaveFiles {
    fs: spin::Mutex<FileSystem<'static>>,
}

impl EnclaveFiles {
    /// A copy of the template for an enclave whose kernel memory is `account`, its `/tmp`
    /// bounded by `tmp_limit` bytes. `ENOSPC` when the account cannot hold the copy.
    pub fn new(account: &Arc<Account>, tmp_limit: u64) -> Result<Arc<EnclaveFiles>, Errno> {
        let fs = template().instance(account, tmp_limit)?;
        Ok(Arc::new(EnclaveFiles { fs: spin::Mutex::new(fs) }))
    }

    /// Runs `f` on the file system, under its lock (held only for `f`: callers that move much
    /// data do it in pieces).
    pub fn with<R>(&self, f: impl FnOnce(&mut FileSystem<'static>) -> R) -> R {
        f(&mut self.fs.lock())
    }

    /// What its `/tmp` holds and may hold.
    pub fn tmp_usage(&self) -> WritableUsage {
        self.fs.lock().writable_usage()
    }

    /// Resolves `path` and holds the node in one step, so that no other thread can free it in
    /// between (`ENOENT` if it is gone); the caller releases it.
    pub fn resolve_and_hold(&self, at: &Lookup, path: &str) -> Result<lwk::ram_fs::Ino, Errno> {
        self.with(|fs| {
            let ino = fs.resolve(at, path, true)?;
            if fs.kind(ino)? != NodeKind::File {
                return Err(Errno::EACCES);
            }
            fs.hold(ino)?;
            Ok(ino)
        })
    }
}
