//! mmap, munmap, mprotect, mremap, brk, madvise, msync, mincore, mlock and friends. Memory comes
//! populated from the job's pool (no demand paging, no swap: every page is resident and locked
//! already); what is unmapped goes back to the pool. A file mapping is a copy of the
//! file's bytes made at `mmap` (private, or shared but read-only: nothing can tell the two apart
//! while the file does not change); `mremap` moves pages without copying them.

use super::{Call, SysResult};
use crate::fs::open_files::{FileObject, IO_CHUNK, NodeRef, OpenFile, sized_buffer};
use crate::fs::open_flags::{O_RDWR, O_WRONLY};
use crate::fs::process_files;
use crate::fs::ram_fs::{DeviceKind, NodeKind};
use crate::hal::cpu::USER_END;
use crate::mm::address_space::AddressSpace;
use crate::mm::map_flags::{MapFlags, MlockallFlags, MremapFlags, MsyncFlags, Prot};
use crate::mm::vm_areas::AreaKind;
use crate::mm::vm_areas::{PAGE, Protection};
use crate::util::errno::Errno;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

const MADV_DONTNEED: u64 = 4;
const LARGE_PAGE: u64 = 1 << 21;
/// Lowest address a fixed mapping may take (Linux's default `vm.mmap_min_addr`).
const MMAP_MIN_ADDR: u64 = 0x1_0000;

/// The caller's address space, locked for a change of its mappings. While the process has
/// other threads, they may run on any core of the job: a change that removes or restricts
/// translations flushes those cores' TLBs too.
fn space_of<'a>(c: &'a Call) -> spin::MutexGuard<'a, AddressSpace> {
    let threaded = c.process.threads.lock().len() > 1;
    let mut space = c.process.space.lock();
    space.set_other_cpus(if threaded { &c.process.job.cores } else { &[] });
    space
}

fn page_len(len: u64) -> Result<u64, Errno> {
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    len.checked_next_multiple_of(PAGE).filter(|&l| l < USER_END).ok_or(Errno::ENOMEM)
}

/// A free range of `len` bytes, preferably at `hint`; 2 MiB aligned when large enough for large
/// pages.
fn free_range(space: &AddressSpace, len: u64, hint: u64) -> Result<u64, Errno> {
    let align = if len >= LARGE_PAGE { LARGE_PAGE } else { PAGE };
    space.areas.find_free(len, align, hint & !(PAGE - 1)).ok_or(Errno::ENOMEM)
}

/// Where a new mapping of `len` bytes goes: `addr` if fixed (unmapping what is there, unless
/// MAP_FIXED_NOREPLACE), else a free range.
fn place(space: &mut AddressSpace, addr: u64, len: u64, flags: MapFlags) -> Result<u64, Errno> {
    if !flags.intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE) {
        return free_range(space, len, addr);
    }
    if !addr.is_multiple_of(PAGE) || addr.checked_add(len).is_none_or(|e| e > USER_END) {
        return Err(Errno::EINVAL);
    }
    if addr < MMAP_MIN_ADDR {
        return Err(Errno::EPERM);
    }
    if space.areas.overlaps(addr, addr + len) {
        if flags.contains(MapFlags::FIXED_NOREPLACE) {
            return Err(Errno::EEXIST);
        }
        // Refuse before unmapping what the new mapping could not replace (as Linux checks the
        // commit first): the pool must hold the part of it that is not already mapped.
        let end = addr + len;
        let mapped: u64 = space
            .areas
            .iter()
            .filter(|a| a.start < end && a.end > addr)
            .map(|a| a.end.min(end) - a.start.max(addr))
            .sum();
        if len - mapped > space.memory.free_bytes() {
            return Err(Errno::ENOMEM);
        }
        space.unmap(addr, len)?;
    }
    Ok(addr)
}

/// What a file mapping copies: a regular file from `offset` (its open file, which keeps the node
/// held while the mapping is filled), with its path for the area.
struct FileSource {
    file: Arc<OpenFile>,
    offset: u64,
    path: String,
}

/// What a mapping holds.
enum MapSource {
    /// Fresh zeroed memory (`MAP_ANONYMOUS`, `/dev/zero`).
    Anonymous,
    /// A private copy of a file's bytes.
    File(FileSource),
    /// A shared segment's own memory from `phys` on (`/dev/manul/seg/NAME`).
    Segment { name: String, phys: u64, writable: bool },
}

/// What mapping descriptor `fd` means. Errors as Linux where it refuses too; ENODEV where only
/// this kernel does (writable shared file mappings, whose writes would not reach the file);
/// EINVAL for a private mapping of a segment (a segment is for sharing).
fn map_source(
    c: &Call,
    fd: u64,
    offset: u64,
    len: u64,
    shared: bool,
    protection: Protection,
) -> Result<MapSource, Errno> {
    let file = process_files::of(c.process).fds.lock().get(fd as u32 as u64)?;
    if !offset.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    if offset.checked_add(len).is_none_or(|end| end > i64::MAX as u64) {
        return Err(Errno::EOVERFLOW);
    }
    let access = file.status().access_mode();
    if access == O_WRONLY {
        return Err(Errno::EACCES);
    }
    match &file.object {
        FileObject::Device(DeviceKind::Zero, _) => Ok(MapSource::Anonymous),
        FileObject::Segment { name, view } => {
            if !shared {
                return Err(Errno::EINVAL);
            }
            if protection.write && (access != O_RDWR || !view.writable) {
                return Err(Errno::EACCES);
            }
            if offset.checked_add(len).is_none_or(|end| end > view.memory.bytes) {
                return Err(Errno::ENXIO);
            }
            Ok(MapSource::Segment { name: name.clone(), phys: view.memory.phys + offset, writable: view.writable })
        }
        FileObject::Node(node) => {
            if node.files.with(|fs| fs.kind(node.ino))? != NodeKind::File {
                return Err(Errno::ENODEV);
            }
            if shared && protection.write {
                log::warn!(target: "memory", "a writable shared file mapping is not supported: ENODEV");
                return Err(Errno::ENODEV);
            }
            let path = node.files.with(|fs| fs.path_of(node.ino)).unwrap_or_else(|_| String::from("(deleted)"));
            Ok(MapSource::File(FileSource { file: file.clone(), offset, path }))
        }
        _ => Err(Errno::ENODEV),
    }
}

/// Copies the file's bytes into the new mapping at `at` (beyond the end of the file it stays
/// zero).
fn fill_from_file(space: &AddressSpace, at: u64, len: u64, source: &FileSource) -> Result<(), Errno> {
    let FileObject::Node(NodeRef { files, ino }) = &source.file.object else { return Err(Errno::ENODEV) };
    let mut buf = Vec::new();
    sized_buffer(&mut buf, IO_CHUNK.min(len as usize))?;
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = files.with(|fs| fs.read(*ino, source.offset + done, &mut buf[..want]))?;
        if n == 0 {
            break;
        }
        space.write_initial(at + done, &buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

pub fn mmap(c: &mut Call) -> SysResult {
    let [addr, len, prot, flags, fd, offset] = c.args;
    let flags = MapFlags::from_bits_retain(flags);
    let shared = flags.shared().ok_or(Errno::EINVAL)?;
    let len = page_len(len)?;
    let protection = Prot::for_mmap(prot).ok_or(Errno::EINVAL)?;
    let source = if flags.contains(MapFlags::ANONYMOUS) {
        MapSource::Anonymous
    } else {
        map_source(c, fd, offset, len, shared, protection)?
    };
    let mut space = space_of(c);
    let at = place(&mut space, addr, len, flags)?;
    match source {
        MapSource::Anonymous => space.map_anonymous(at, len, protection, shared, AreaKind::Anonymous)?,
        MapSource::File(source) => {
            let kind = AreaKind::File { path: source.path.clone(), offset: source.offset };
            space.map_anonymous(at, len, protection, shared, kind)?;
            if let Err(e) = fill_from_file(&space, at, len, &source) {
                let _ = space.unmap(at, len);
                return Err(e);
            }
        }
        MapSource::Segment { name, phys, writable } => {
            let kind = AreaKind::Segment { name, phys, offset, writable };
            space.map_foreign(at, len, phys, protection, kind)?;
        }
    }
    Ok(at)
}

pub fn munmap(c: &mut Call) -> SysResult {
    let [addr, len, ..] = c.args;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_len(len).map_err(|_| Errno::EINVAL)?;
    space_of(c).unmap(addr, len)?;
    Ok(0)
}

pub fn mprotect(c: &mut Call) -> SysResult {
    let [addr, len, prot, ..] = c.args;
    let protection = Prot::for_mprotect(prot).ok_or(Errno::EINVAL)?;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let len = page_len(len)?;
    if addr.checked_add(len).is_none_or(|end| end > USER_END) {
        return Err(Errno::ENOMEM);
    }
    let mut space = space_of(c);
    // A segment granted read-only never becomes writable.
    let read_only_segment = space
        .areas
        .iter()
        .any(|a| a.start < addr + len && a.end > addr && matches!(a.kind, AreaKind::Segment { writable: false, .. }));
    if protection.write && read_only_segment {
        return Err(Errno::EACCES);
    }
    space.protect(addr, len, protection)?;
    Ok(0)
}

pub fn brk(c: &mut Call) -> SysResult {
    let want = c.args[0];
    let mut space = space_of(c);
    let (start, cur) = (space.brk_start, space.brk);
    if want < start || want > USER_END / 2 {
        return Ok(cur);
    }
    let (old_top, new_top) = (cur.next_multiple_of(PAGE), want.next_multiple_of(PAGE));
    if new_top > old_top {
        let rw = Protection { read: true, write: true, execute: false };
        if space.areas.overlaps(old_top, new_top)
            || space.map_anonymous(old_top, new_top - old_top, rw, false, AreaKind::Heap).is_err()
        {
            return Ok(cur);
        }
    } else if new_top < old_top {
        space.unmap(new_top, old_top - new_top)?;
    }
    space.brk = want;
    Ok(want)
}

pub fn mremap(c: &mut Call) -> SysResult {
    let [old, old_len, new_len, flags, new_addr, _] = c.args;
    let flags = MremapFlags::parse(flags).ok_or(Errno::EINVAL)?;
    if old % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    // old_len 0 (a second mapping of shared memory) is not supported.
    let old_len = page_len(old_len).map_err(|_| Errno::EINVAL)?;
    let new_len = page_len(new_len).map_err(|_| Errno::EINVAL)?;
    let mut space = space_of(c);
    // The whole old range must lie in one area (adjacent mappings alike are one area).
    let area = space.areas.find(old).cloned().ok_or(Errno::EFAULT)?;
    if old.checked_add(old_len).is_none_or(|e| e > area.end) {
        return Err(Errno::EFAULT);
    }
    // A segment mapping may shrink or move, never grow past what was mapped of the segment.
    if matches!(area.kind, AreaKind::Segment { .. }) && new_len > old_len {
        return Err(Errno::EINVAL);
    }
    let old_end = old + old_len;

    if flags.contains(MremapFlags::FIXED) {
        let target_end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
        if new_addr % PAGE != 0 || target_end > USER_END || (new_addr < old_end && old < target_end) {
            return Err(Errno::EINVAL);
        }
        place(&mut space, new_addr, new_len, MapFlags::FIXED)?;
        if new_len < old_len {
            space.unmap(old + new_len, old_len - new_len)?;
            space.move_pages(old, new_len, new_addr)?;
        } else {
            grow_by_moving(&mut space, old, old_len, new_len, new_addr)?;
        }
        return Ok(new_addr);
    }

    if new_len <= old_len {
        if new_len < old_len {
            space.unmap(old + new_len, old_len - new_len)?;
        }
        return Ok(old);
    }
    // Grow in place when the range is the end of its area and the room above is free.
    let grow = new_len - old_len;
    if old_end == area.end
        && old_end.checked_add(grow).is_some_and(|e| e <= USER_END)
        && !space.areas.overlaps(old_end, old_end + grow)
    {
        space.map_anonymous(old_end, grow, area.protection, area.shared, area.kind_at(old_end))?;
        return Ok(old);
    }
    if !flags.contains(MremapFlags::MAYMOVE) {
        return Err(Errno::ENOMEM);
    }
    // Keep the offset within a large page, so large pages stay large after the move.
    let target = if new_len >= LARGE_PAGE {
        let room = new_len.checked_add(LARGE_PAGE).ok_or(Errno::ENOMEM)?;
        free_range(&space, room, 0)? + (old & (LARGE_PAGE - 1))
    } else {
        free_range(&space, new_len, 0)?
    };
    grow_by_moving(&mut space, old, old_len, new_len, target)?;
    Ok(target)
}

/// Moves `[old, old + old_len)` to the free range at `target` and extends it to `new_len` with
/// fresh memory. Either all of it happens or (on ENOMEM) nothing.
fn grow_by_moving(space: &mut AddressSpace, old: u64, old_len: u64, new_len: u64, target: u64) -> Result<(), Errno> {
    let area = space.areas.find(old).cloned().ok_or(Errno::EFAULT)?;
    let grow = new_len - old_len;
    if grow > 0 {
        space.map_anonymous(target + old_len, grow, area.protection, area.shared, area.kind_at(old + old_len))?;
    }
    if let Err(e) = space.move_pages(old, old_len, target) {
        if grow > 0 {
            let _ = space.unmap(target + old_len, grow);
        }
        return Err(e);
    }
    Ok(())
}

pub fn madvise(c: &mut Call) -> SysResult {
    let [addr, len, advice, ..] = c.args;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let len = page_len(len).map_err(|_| Errno::EINVAL)?;
    let end = addr.checked_add(len).filter(|&e| e <= USER_END).ok_or(Errno::EINVAL)?;
    let space = c.process.space.lock();
    if !space.areas.covers(addr, end) {
        return Err(Errno::ENOMEM);
    }
    if advice == MADV_DONTNEED {
        // Private anonymous memory reads back as zeros. Shared memory keeps its contents, and so
        // do file copies (Linux would read the file again; they still hold its bytes unless the
        // program wrote them).
        let private: Vec<(u64, u64)> = space
            .areas
            .iter()
            .filter(|a| a.start < end && a.end > addr && !a.shared && !matches!(a.kind, AreaKind::File { .. }))
            .map(|a| (a.start.max(addr), a.end.min(end)))
            .collect();
        for (start, stop) in private {
            space.zero(start, stop - start)?;
        }
    }
    Ok(0)
}

/// The page range `[start, end)` of a call that takes any address and rounds it (mlock,
/// munlock): EINVAL when it wraps, ENOMEM when it leaves user space.
fn rounded_range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
    let start = addr & !(PAGE - 1);
    let len = len.checked_add(addr - start).and_then(|l| l.checked_next_multiple_of(PAGE)).ok_or(Errno::EINVAL)?;
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    if end > USER_END {
        return Err(Errno::ENOMEM);
    }
    Ok((start, end))
}

/// msync: file mappings are copies that are never written back (writable shared file mappings
/// are refused at mmap), so there is nothing to flush; the arguments are checked as Linux does
/// and the range must be mapped (ENOMEM).
pub fn msync(c: &mut Call) -> SysResult {
    let [addr, len, flags, ..] = c.args;
    if MsyncFlags::parse(flags).is_none() || addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::ENOMEM)?;
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    if end == addr {
        return Ok(0);
    }
    if end > USER_END || !c.process.space.lock().areas.covers(addr, end) {
        return Err(Errno::ENOMEM);
    }
    Ok(0)
}

/// mincore: every mapped page is resident (1 per page in `vec`); ENOMEM when part of the range
/// is not mapped, EFAULT for a bad `vec`.
pub fn mincore(c: &mut Call) -> SysResult {
    const PIECE: u64 = 4096;
    let [addr, len, vec, ..] = c.args;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(len).filter(|&e| e <= USER_END).ok_or(Errno::ENOMEM)?;
    let pages = len.div_ceil(PAGE);
    if pages == 0 {
        return Ok(0);
    }
    let space = c.process.space.lock();
    if !space.areas.covers(addr, end.next_multiple_of(PAGE)) {
        return Err(Errno::ENOMEM);
    }
    let ones = [1u8; PIECE as usize];
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(PIECE);
        space.write(vec.checked_add(done).ok_or(Errno::EFAULT)?, &ones[..n as usize])?;
        done += n;
    }
    Ok(0)
}

/// mlock and munlock: memory is always resident, so this only checks that the range (rounded
/// out to pages) is mapped.
pub fn mlock(c: &mut Call) -> SysResult {
    let [addr, len, ..] = c.args;
    let (start, end) = rounded_range(addr, len)?;
    if start != end && !c.process.space.lock().areas.covers(start, end) {
        return Err(Errno::ENOMEM);
    }
    Ok(0)
}

/// mlock2: mlock with flags (MLOCK_ONFAULT only).
pub fn mlock2(c: &mut Call) -> SysResult {
    const MLOCK_ONFAULT: u64 = 1;
    if c.args[2] & !MLOCK_ONFAULT != 0 {
        return Err(Errno::EINVAL);
    }
    mlock(c)
}

/// mlockall: MCL_CURRENT, MCL_FUTURE and MCL_ONFAULT (not alone) are accepted; munlockall has
/// nothing to undo.
pub fn mlockall(c: &mut Call) -> SysResult {
    MlockallFlags::parse(c.args[0] as u32).ok_or(Errno::EINVAL)?;
    Ok(0)
}
