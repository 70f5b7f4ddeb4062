//! A process's user address space: its page tables (the kernel half shared with every other
//! space), the map of its areas, and the job memory pool its pages come from. Memory is mapped
//! populated (no demand paging) with the largest pages the alignment allows.
//!
//! User memory is only ever reached through [`AddressSpace::read`] and [`AddressSpace::write`]:
//! they walk the page tables, check the user and write permissions, and copy through the
//! direct map, so a bad user pointer is `EFAULT` and never a kernel fault.
//!
//! What the space makes the kernel hold is charged to its enclave's kernel-memory account: each
//! page-table frame (4 KiB) and each area ([`AREA_BYTES`]). A mapping whose tables or area the
//! account refuses fails with ENOMEM, as one whose memory the job's pool lacks.

use crate::hal::cpu::USER_END;
use crate::hal::kernel_memory::{self, Root};
use crate::hal::page_table::{self, PageFlags, PageSizes, TableMemory};
use crate::mm::job_memory::JobMemory;
use crate::mm::vm_areas::{Area, AreaKind, VmAreas};
use crate::mm::vm_areas::{PAGE, Protection};
use crate::util::errno::Errno;
use crate::{hal::cpu, hal::per_cpu, time::clock};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use enclave::{Account, Charge};
use lwk_hal::lent_memory::{self, NotLent};

const LARGE_PAGES: PageSizes = PageSizes { use_2m: true, use_1g: true };
/// What one area of the map is charged (its tree node and its description).
const AREA_BYTES: u64 = 128;
/// How long a TLB shootdown waits for the other CPUs before it reports them and goes on.
const SHOOTDOWN_TIMEOUT_NS: u64 = 100_000_000;

/// What a copy to or from user memory needs of each page.
#[derive(Clone, Copy)]
enum Access {
    /// Readable by the user.
    Read,
    /// Writable by the user.
    Write,
    /// Mapped, whatever the protection (the kernel's own work on the space).
    Any,
}

pub struct AddressSpace {
    root: Root,
    pub areas: VmAreas,
    pub memory: Arc<JobMemory>,
    /// The enclave's kernel-memory account, which pays for the page tables.
    account: Arc<Account>,
    /// What the areas are charged.
    areas_charge: Charge,
    /// Program break: start (end of the loaded image) and current end.
    pub brk_start: u64,
    pub brk: u64,
    /// CPUs that may run threads of this space besides the caller's, whose TLBs a change that
    /// removes or restricts translations must flush (empty: only this CPU's). See
    /// [`AddressSpace::set_other_cpus`].
    other_cpus: Vec<usize>,
}

/// Page-table frames charged to an account: a table the account refuses is not allocated (the
/// mapping fails with ENOMEM).
struct ChargedTables<'t> {
    inner: &'t mut dyn TableMemory,
    account: &'t Account,
}

impl TableMemory for ChargedTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.account.try_charge(PAGE).ok()?;
        let table = self.inner.alloc_table();
        if table.is_none() {
            self.account.uncharge(PAGE);
        }
        table
    }

    fn table(&mut self, phys: u64) -> &mut [u64; 512] {
        self.inner.table(phys)
    }

    fn free_table(&mut self, phys: u64) {
        self.inner.free_table(phys);
        self.account.uncharge(PAGE);
    }
}

/// Page-table memory whose freed tables are only collected: they go back after the TLB
/// shootdown, so that no CPU walks a table that has become something else.
struct DeferredTables<'t> {
    inner: &'t mut dyn TableMemory,
    freed: Vec<u64>,
}

impl TableMemory for DeferredTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.inner.alloc_table()
    }

    fn table(&mut self, phys: u64) -> &mut [u64; 512] {
        self.inner.table(phys)
    }

    fn free_table(&mut self, phys: u64) {
        self.freed.push(phys);
    }
}

/// What a change to the page tables gave up: frames of the job's pool and page tables, to be
/// freed once no TLB can still reach them.
struct Released<'t> {
    tables: DeferredTables<'t>,
    frames: Vec<(u64, u64)>,
}

/// Page-table flags for a protection. PROT_NONE pages stay mapped but without the user bit.
pub fn page_flags(p: Protection) -> PageFlags {
    let mut f = PageFlags::empty();
    if p.read || p.write || p.execute {
        f |= PageFlags::USER;
    }
    if p.write {
        f |= PageFlags::WRITABLE;
    }
    if !p.execute {
        f |= PageFlags::NO_EXECUTE;
    }
    f
}

impl AddressSpace {
    /// An empty space whose pages come from `memory` and whose tables and areas are charged to
    /// `account` (ENOMEM when it refuses the top-level table).
    pub fn new(memory: Arc<JobMemory>, account: Arc<Account>) -> Result<AddressSpace, Errno> {
        account.try_charge(PAGE).map_err(|_| Errno::ENOMEM)?;
        let root = match kernel_memory::new_user_root() {
            Ok(root) => root,
            Err(_) => {
                account.uncharge(PAGE);
                return Err(Errno::ENOMEM);
            }
        };
        let areas_charge = Charge::empty(&account);
        Ok(AddressSpace {
            root,
            areas: VmAreas::default(),
            memory,
            account,
            areas_charge,
            brk_start: 0,
            brk: 0,
            other_cpus: Vec::new(),
        })
    }

    /// The account the space charges.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Charges room for `extra` more areas than there are (a change may split an area in three):
    /// ENOMEM when the account refuses. [`Self::settle_areas`] then charges what there is.
    fn reserve_areas(&mut self, extra: usize) -> Result<(), Errno> {
        let wanted = (self.areas.len() + extra) as u64 * AREA_BYTES;
        if wanted > self.areas_charge.bytes() {
            self.areas_charge.resize(wanted).map_err(|_| Errno::ENOMEM)?;
        }
        Ok(())
    }

    fn settle_areas(&mut self) {
        // Shrinking never fails; growth past the reservation (none expected) is charged if it can.
        let _ = self.areas_charge.resize(self.areas.len() as u64 * AREA_BYTES);
    }

    /// The page tables, charged to the account.
    fn with_tables<R>(&self, f: impl FnOnce(&mut ChargedTables) -> R) -> R {
        let mut tables = kernel_memory::user_tables();
        f(&mut ChargedTables { inner: &mut tables, account: &self.account })
    }

    pub fn root(&self) -> Root {
        self.root
    }

    /// Names the CPUs on which other threads of this space may run (the job's cores, while the
    /// process has more than one thread; none otherwise). Unmapping and protecting then flush
    /// their TLBs too before freeing anything (a shootdown by cross-CPU call).
    pub fn set_other_cpus(&mut self, cpus: &[usize]) {
        if self.other_cpus != cpus {
            self.other_cpus = cpus.to_vec();
        }
    }

    /// Runs a change of the page tables, then flushes the TLBs that may hold the old
    /// translations (this CPU's and those of [`Self::set_other_cpus`]), then frees what the
    /// change gave up.
    fn change<R>(&mut self, f: impl FnOnce(&mut Released, u64) -> R) -> R {
        let mut kernel_tables = kernel_memory::user_tables();
        let account = self.account.clone();
        let mut tables = ChargedTables { inner: &mut kernel_tables, account: &account };
        let mut released =
            Released { tables: DeferredTables { inner: &mut tables, freed: Vec::new() }, frames: Vec::new() };
        let result = f(&mut released, self.root.phys());
        self.shootdown();
        for &(phys, size) in &released.frames {
            self.memory.free(phys, size);
        }
        let Released { tables: DeferredTables { inner, freed }, .. } = released;
        for table in freed {
            inner.free_table(table);
        }
        result
    }

    /// Flushes this space's translations from this CPU and from the other CPUs that may hold
    /// them, waiting for those (at most [`SHOOTDOWN_TIMEOUT_NS`]).
    fn shootdown(&self) {
        flush_tlb();
        let me = per_cpu::this_cpu().index;
        let root = self.root.phys();
        let pending = Arc::new(AtomicUsize::new(0));
        for &target in self.other_cpus.iter().filter(|&&c| c != me) {
            pending.fetch_add(1, Ordering::AcqRel);
            let done = pending.clone();
            let flush = move || {
                // A CPU running this space's threads has its root loaded; any other CPU does
                // not cache its translations (the scheduler loads a root when it switches).
                if cpu::read_cr3() == root {
                    cpu::flush_tlb();
                }
                done.fetch_sub(1, Ordering::AcqRel);
            };
            if per_cpu::run_on(target, flush).is_err() {
                pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let deadline = clock::uptime_ns() + SHOOTDOWN_TIMEOUT_NS;
        while pending.load(Ordering::Acquire) > 0 {
            if clock::uptime_ns() > deadline {
                log::error!("TLB shootdown: {} CPUs did not answer", pending.load(Ordering::Acquire));
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Maps `[start, start + len)` to fresh zeroed memory from the job's pool.
    pub fn map_anonymous(
        &mut self,
        start: u64,
        len: u64,
        protection: Protection,
        shared: bool,
        kind: AreaKind,
    ) -> Result<(), Errno> {
        check_user_range(start, len)?;
        if self.areas.overlaps(start, start + len) {
            return Err(Errno::EEXIST);
        }
        self.reserve_areas(1)?;
        let pieces = self.memory.alloc(len)?;
        let mut at = start;
        for &(phys, plen) in &pieces {
            let root = self.root.phys();
            let mapped = self.with_tables(|tables| {
                page_table::map(tables, root, at, phys, plen, page_flags(protection), LARGE_PAGES)
            });
            if let Err(e) = mapped {
                log::debug!("mapping user memory at {at:#x}: {e:?}");
                // Undo: unmap everything mapped so far (the failed piece may be mapped in part),
                // then give every piece back, whole.
                self.change(|released, root| {
                    let _ = page_table::unmap(&mut released.tables, root, start, at - start + plen, &mut |_, _| {});
                });
                for &(p, l) in &pieces {
                    self.memory.free(p, l);
                }
                self.settle_areas();
                return Err(Errno::ENOMEM);
            }
            at += plen;
        }
        let inserted =
            self.areas.insert(Area { start, end: start + len, protection, shared, kind }).map_err(|_| Errno::EEXIST);
        self.settle_areas();
        inserted
    }

    /// Maps `[start, start + len)` to the physical memory at `phys`, which is not the job's
    /// (a shared segment): unmapping it later gives nothing back to the job's pool.
    pub fn map_foreign(
        &mut self,
        start: u64,
        len: u64,
        phys: u64,
        protection: Protection,
        kind: AreaKind,
    ) -> Result<(), Errno> {
        check_user_range(start, len)?;
        if self.areas.overlaps(start, start + len) {
            return Err(Errno::EEXIST);
        }
        self.reserve_areas(1)?;
        let root = self.root.phys();
        let mapped = self
            .with_tables(|tables| page_table::map(tables, root, start, phys, len, page_flags(protection), LARGE_PAGES));
        if let Err(e) = mapped {
            log::debug!("mapping a segment at {start:#x}: {e:?}");
            self.change(|released, root| {
                let _ = page_table::unmap(&mut released.tables, root, start, len, &mut |_, _| {});
            });
            self.settle_areas();
            return Err(Errno::ENOMEM);
        }
        let inserted = self
            .areas
            .insert(Area { start, end: start + len, protection, shared: true, kind })
            .map_err(|_| Errno::EEXIST);
        self.settle_areas();
        inserted
    }

    /// Removes the pages of `[start, start + len)` from the tables; the job's memory among them
    /// goes back to its pool once no TLB holds it (a segment's stays the segment's).
    fn unmap_pages(&mut self, start: u64, len: u64) {
        let memory = self.memory.clone();
        self.change(|released, root| {
            let frames = &mut released.frames;
            let mut give_back = |phys, size| {
                if memory.owns(phys) {
                    frames.push((phys, size));
                }
            };
            if let Err(e) = page_table::unmap(&mut released.tables, root, start, len, &mut give_back) {
                log::error!("unmapping user memory at {start:#x}: {e:?}");
            }
        });
    }

    /// Unmaps `[start, start + len)`; the memory goes back to the job's pool.
    pub fn unmap(&mut self, start: u64, len: u64) -> Result<(), Errno> {
        check_user_range(start, len)?;
        // Punching a hole may split an area in two. Giving memory back never fails for want of
        // budget: an area the account cannot take stays uncharged (there are at most as many
        // as the job has pages, which its memory bounds).
        let _ = self.reserve_areas(1);
        self.areas.remove(start, start + len);
        self.unmap_pages(start, len);
        self.settle_areas();
        Ok(())
    }

    /// Moves the pages of `[from, from + len)` to `[to, to + len)`, which must be free and apart
    /// from it: the same memory, now at `to` (for `mremap`), its areas moved along. Nothing is
    /// copied and nothing is allocated but page tables.
    pub fn move_pages(&mut self, from: u64, len: u64, to: u64) -> Result<(), Errno> {
        check_user_range(from, len)?;
        check_user_range(to, len)?;
        if self.areas.overlaps(to, to + len) || (from < to + len && to < from + len) {
            return Err(Errno::EINVAL);
        }
        // The source may split at both ends, and its pieces move whole.
        self.reserve_areas(2)?;
        let moved = self
            .change(|released, root| page_table::move_range(&mut released.tables, root, from, to, len, LARGE_PAGES));
        if moved.is_err() {
            self.settle_areas();
            return Err(Errno::ENOMEM);
        }
        for piece in self.areas.remove(from, from + len) {
            let moved = Area { start: piece.start - from + to, end: piece.end - from + to, ..piece };
            if self.areas.insert(moved).is_err() {
                log::error!("moving user memory to {to:#x}: the target range was taken");
            }
        }
        self.settle_areas();
        Ok(())
    }

    /// Zeroes `[addr, addr + len)` whatever its protection (`MADV_DONTNEED`); EFAULT if part of
    /// it is not mapped.
    pub fn zero(&self, addr: u64, len: u64) -> Result<(), Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::EFAULT)?;
        self.each_piece(addr, len, Access::Any, |phys, n, _| lent_memory::zero(phys, n))
    }

    /// Changes the protection of a fully mapped range.
    pub fn protect(&mut self, start: u64, len: u64, protection: Protection) -> Result<(), Errno> {
        check_user_range(start, len)?;
        // A protection change inside an area splits it in three.
        self.reserve_areas(2)?;
        let protected = self.areas.protect(start, start + len, protection).map_err(|_| Errno::ENOMEM).and_then(|()| {
            self.change(|released, root| {
                page_table::protect(&mut released.tables, root, start, len, page_flags(protection))
            })
            .map_err(|_| Errno::ENOMEM)
        });
        self.settle_areas();
        protected
    }

    /// Calls `f(physical address, length, bytes done before)` for each piece of
    /// `[addr, addr + len)`, checking that every page is mapped and allows `access`.
    fn each_piece(
        &self,
        addr: u64,
        len: usize,
        access: Access,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), NotLent>,
    ) -> Result<(), Errno> {
        let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        if end > USER_END {
            return Err(Errno::EFAULT);
        }
        let mut tables = kernel_memory::user_tables();
        let mut at = addr;
        let mut done = 0usize;
        while at < end {
            let t = page_table::translate(&mut tables, self.root.phys(), at).ok_or(Errno::EFAULT)?;
            let allowed = match access {
                Access::Read => t.flags.contains(PageFlags::USER),
                Access::Write => t.flags.contains(PageFlags::USER | PageFlags::WRITABLE),
                Access::Any => true,
            };
            if !allowed {
                return Err(Errno::EFAULT);
            }
            let page_end = (at & !(t.page_size - 1)) + t.page_size;
            let n = (page_end.min(end) - at) as usize;
            f(t.phys, n, done).map_err(|NotLent| Errno::EFAULT)?;
            at += n as u64;
            done += n;
        }
        Ok(())
    }

    /// Copies user memory at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.each_piece(addr, buf.len(), Access::Read, |phys, n, done| {
            lent_memory::read(phys, &mut buf[done..done + n])
        })
    }

    /// Copies `data` into user memory at `addr` (which must be writable by the user).
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.write_checked(addr, data, Access::Write)
    }

    /// Like [`Self::write`] but ignores the user's permissions (loading a program image, filling
    /// a file mapping, which may be read-only or PROT_NONE).
    pub fn write_initial(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.write_checked(addr, data, Access::Any)
    }

    fn write_checked(&self, addr: u64, data: &[u8], access: Access) -> Result<(), Errno> {
        self.each_piece(addr, data.len(), access, |phys, n, done| lent_memory::write(phys, &data[done..done + n]))
    }

    /// A NUL-terminated string from user memory, at most `max` bytes (ENAMETOOLONG beyond).
    pub fn read_string(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut at = addr;
        loop {
            let mut chunk = [0u8; 64];
            let n = (64 - (at % 64)) as usize;
            self.read(at, &mut chunk[..n])?;
            if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            if out.len() > max {
                return Err(Errno::ENAMETOOLONG);
            }
            at += n as u64;
        }
    }

    pub fn read_u64(&self, addr: u64) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl AddressSpace {
    /// Unmaps the whole user half (process exit); the tables stay until the space is dropped.
    pub fn release_all(&mut self) {
        // The process's threads are gone, but a CPU whose thread has just ended may not have
        // switched away from these tables yet: give it a moment (it is on its way out).
        let deadline = clock::uptime_ns() + SHOOTDOWN_TIMEOUT_NS;
        while !per_cpu::others_with_root(self.root).is_empty() && clock::uptime_ns() < deadline {
            core::hint::spin_loop();
        }
        self.other_cpus.clear();
        self.areas = VmAreas::default();
        self.unmap_pages(0, USER_END);
        self.settle_areas();
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // No other CPU may still run on these tables when they are freed (threads of the process
        // end before its space goes, execve included): check every CPU's loaded root, and keep
        // the tables (a leak, reported) rather than free them under a running CPU.
        let in_use = per_cpu::others_with_root(self.root);
        if !in_use.is_empty() {
            log::error!("an address space freed while CPUs {in_use:?} still run on it: kept");
            crate::util::logging::emit("tables_in_use", |e| {
                e.u64("root", self.root.phys()).display("cpus", format_args!("{in_use:?}"));
            });
            return;
        }
        self.other_cpus.clear();
        self.unmap_pages(0, USER_END);
        let root = self.root.phys();
        self.with_tables(|tables| tables.free_table(root));
    }
}

fn check_user_range(start: u64, len: u64) -> Result<(), Errno> {
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    if !start.is_multiple_of(PAGE) || len == 0 || !len.is_multiple_of(PAGE) || end > USER_END {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Drops this CPU's cached translations for the user half (other CPUs running threads of the
/// same space are flushed by [`AddressSpace::shootdown`]).
pub fn flush_tlb() {
    crate::hal::cpu::flush_tlb();
}
