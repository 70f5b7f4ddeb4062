//! mmap, munmap, mprotect, mremap, brk, madvise. Memory comes populated from the job's pool (no
//! demand paging); what is unmapped goes back to the pool.

use super::{Call, SysResult};
use crate::address_space::AddressSpace;
use alloc::vec;
use lwk::elf_loader::{PAGE, Protection, USER_END};
use lwk::errno::Errno;
use lwk::vm_areas::AreaKind;

const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MADV_DONTNEED: u64 = 4;
const LARGE_PAGE: u64 = 1 << 21;

pub fn protection(prot: u64) -> Result<Protection, Errno> {
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Protection { read: prot & PROT_READ != 0, write: prot & PROT_WRITE != 0, execute: prot & PROT_EXEC != 0 })
}

fn page_len(len: u64) -> Result<u64, Errno> {
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    len.checked_next_multiple_of(PAGE).filter(|&l| l < USER_END).ok_or(Errno::ENOMEM)
}

/// Where a new mapping of `len` bytes goes: `addr` if fixed, else a free range (2 MiB aligned
/// when large enough for large pages).
fn place(space: &mut AddressSpace, addr: u64, len: u64, flags: u64) -> Result<u64, Errno> {
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if addr % PAGE != 0 || addr.checked_add(len).is_none_or(|e| e > USER_END) || addr < PAGE {
            return Err(Errno::EINVAL);
        }
        if space.areas.overlaps(addr, addr + len) {
            if flags & MAP_FIXED_NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            space.unmap(addr, len)?;
        }
        return Ok(addr);
    }
    let align = if len >= LARGE_PAGE { LARGE_PAGE } else { PAGE };
    space.areas.find_free(len, align, addr & !(PAGE - 1)).ok_or(Errno::ENOMEM)
}

pub fn mmap(c: &mut Call) -> SysResult {
    let [addr, len, prot, flags, _fd, offset] = c.args;
    let len = page_len(len)?;
    let protection = protection(prot)?;
    let shared = match flags & (MAP_SHARED | MAP_PRIVATE) {
        MAP_SHARED => true,
        MAP_PRIVATE => false,
        _ => return Err(Errno::EINVAL),
    };
    if flags & MAP_ANONYMOUS == 0 {
        // File mappings arrive with the file system calls.
        let _ = offset;
        return Err(Errno::ENODEV);
    }
    let mut space = c.process.space.lock();
    let at = place(&mut space, addr, len, flags)?;
    space.map_anonymous(at, len, protection, shared, AreaKind::Anonymous)?;
    Ok(at)
}

pub fn munmap(c: &mut Call) -> SysResult {
    let [addr, len, ..] = c.args;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_len(len)?;
    c.process.space.lock().unmap(addr, len)?;
    Ok(0)
}

pub fn mprotect(c: &mut Call) -> SysResult {
    let [addr, len, prot, ..] = c.args;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let len = page_len(len)?;
    c.process.space.lock().protect(addr, len, protection(prot)?)?;
    Ok(0)
}

pub fn brk(c: &mut Call) -> SysResult {
    let want = c.args[0];
    let mut space = c.process.space.lock();
    let (start, cur) = (space.brk_start, space.brk);
    if want < start || want > USER_END / 2 {
        return Ok(cur);
    }
    let (old_top, new_top) = (cur.next_multiple_of(PAGE), want.next_multiple_of(PAGE));
    if new_top > old_top {
        let rw = Protection { read: true, write: true, execute: false };
        if space.areas.overlaps(old_top, new_top) || space.map_anonymous(old_top, new_top - old_top, rw, false, AreaKind::Heap).is_err()
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
    if old % PAGE != 0 || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
        return Err(Errno::EINVAL);
    }
    let (old_len, new_len) = (page_len(old_len)?, page_len(new_len)?);
    let mut space = c.process.space.lock();
    let area = space.areas.find(old).cloned().ok_or(Errno::EFAULT)?;
    if old.checked_add(old_len).is_none_or(|e| e > area.end) {
        return Err(Errno::EFAULT);
    }
    if flags & MREMAP_FIXED == 0 && new_len <= old_len {
        if new_len < old_len {
            space.unmap(old + new_len, old_len - new_len)?;
        }
        return Ok(old);
    }
    // Grow in place when the range above is free.
    if flags & MREMAP_FIXED == 0 && !space.areas.overlaps(old + old_len, old + new_len) && old + new_len <= USER_END {
        let kind = area.kind.clone();
        space.map_anonymous(old + old_len, new_len - old_len, area.protection, area.shared, kind)?;
        return Ok(old);
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::ENOMEM);
    }
    let target = if flags & MREMAP_FIXED != 0 {
        if new_addr % PAGE != 0 || (new_addr < old + old_len && old < new_addr + new_len) {
            return Err(Errno::EINVAL);
        }
        place(&mut space, new_addr, new_len, MAP_FIXED)?
    } else {
        place(&mut space, 0, new_len, 0)?
    };
    space.map_anonymous(target, new_len, area.protection, area.shared, area.kind.clone())?;
    // Copy the old contents through a bounce buffer, then drop the old range.
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0;
    let keep = old_len.min(new_len);
    while done < keep {
        let n = (keep - done).min(buf.len() as u64) as usize;
        space.read(old + done, &mut buf[..n]).or_else(|_| read_any(&space, old + done, &mut buf[..n]))?;
        space.write_initial(target + done, &buf[..n])?;
        done += n as u64;
    }
    space.unmap(old, old_len)?;
    Ok(target)
}

/// Reads memory the user may not read (a PROT_NONE range being moved): zeros.
fn read_any(_space: &AddressSpace, _addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    buf.fill(0);
    Ok(())
}

pub fn madvise(c: &mut Call) -> SysResult {
    let [addr, len, advice, ..] = c.args;
    if addr % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    if advice == MADV_DONTNEED && len > 0 {
        // Private anonymous memory reads back as zeros after DONTNEED.
        let len = page_len(len)?;
        let space = c.process.space.lock();
        if !space.areas.covers(addr, addr + len) {
            return Err(Errno::ENOMEM);
        }
        let zeros = vec![0u8; PAGE as usize];
        let mut at = addr;
        while at < addr + len {
            if space.areas.find(at).is_some_and(|a| !a.shared && a.protection.write) {
                space.write(at, &zeros)?;
            }
            at += PAGE;
        }
    }
    Ok(0)
}
