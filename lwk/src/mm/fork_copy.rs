//! The eager copy `fork` makes: every area of the parent's address space mapped afresh from the
//! job's pool and filled with the parent's bytes. There is no demand paging in the LWK, hence no
//! copy-on-write either; a fork costs what it copies, once, and never faults later. Shared
//! segments are the exception: parent and child map the same segment memory.

use crate::hal::kernel_memory;
use crate::hal::page_table;
use crate::mm::address_space::AddressSpace;
use crate::mm::vm_areas::{Area, AreaKind, VmAreas};
use crate::util::errno::Errno;
use lwk_hal::lent_memory::{self, NotLent};

/// A new address space with the same areas and contents as `parent`, whose calling thread's
/// stack pointer is `rsp`: below it (and its 128-byte red zone) the stack holds nothing live, so
/// only the part above is copied; the rest of the child's stack starts zeroed.
pub fn duplicate(parent: &AddressSpace, rsp: u64) -> Result<AddressSpace, Errno> {
    let mut child = AddressSpace::new(parent.memory.clone(), parent.account().clone())?;
    let areas: VmAreas = parent.areas.clone();
    for Area { start, end, protection, shared, kind } in areas.iter().cloned() {
        // A segment is shared with the child: the same memory, nothing copied.
        if let AreaKind::Segment { phys, .. } = kind {
            child.map_foreign(start, end - start, phys, protection, kind)?;
            continue;
        }
        let live_from = if kind == AreaKind::Stack && (start..end).contains(&rsp) {
            rsp.saturating_sub(128) & !(crate::mm::vm_areas::PAGE - 1)
        } else {
            start
        };
        child.map_anonymous(start, end - start, protection, shared, kind)?;
        copy_range(parent.root().phys(), child.root().phys(), live_from.max(start), end)?;
    }
    child.brk_start = parent.brk_start;
    child.brk = parent.brk;
    Ok(child)
}

/// Copies `[start, end)` between two address spaces through the direct map, whatever the
/// protection (PROT_NONE pages too).
fn copy_range(from_root: u64, to_root: u64, start: u64, end: u64) -> Result<(), Errno> {
    let mut tables = kernel_memory::user_tables();
    let mut at = start;
    while at < end {
        let src = page_table::translate(&mut tables, from_root, at).ok_or(Errno::EFAULT)?;
        let dst = page_table::translate(&mut tables, to_root, at).ok_or(Errno::EFAULT)?;
        let left_src = src.page_size - (at & (src.page_size - 1));
        let left_dst = dst.page_size - (at & (dst.page_size - 1));
        let n = left_src.min(left_dst).min(end - at);
        lent_memory::copy(dst.phys, src.phys, n as usize).map_err(|NotLent| Errno::EFAULT)?;
        at += n;
    }
    Ok(())
}
