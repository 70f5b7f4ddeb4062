//! The kernel's address space and physical memory, set up once on the boot CPU:
//!
//! ```text
//! 0x0000_0000_0000_0000 .. 0x0000_7fff_ffff_ffff   user jobs (empty in the kernel's own tables)
//! 0xffff_8000_0000_0000 .. (+ top of RAM)          direct map of all physical memory
//! 0xffff_c000_0000_0000 ..                         kernel stacks, each below an unmapped guard page
//! 0xffff_ffff_8000_0000 + physical                 the kernel image (text RX, rodata R, data RW)
//! ```
//!
//! Physical memory left after the kernel image, the first MiB, the boot modules and the early
//! page tables goes to the buddy [`FrameAllocator`].

use crate::cpu::{self, Features, IrqMutex};
use crate::frame_allocator::{FRAME_SIZE, FrameAllocator, FrameError, FrameMetadata, Link};
use crate::memory_map::Range;
use crate::memory_map::{E820_RAM, MemoryMap, MemoryMapError, PhysRead};
use crate::page_table::{self, MapError, PageFlags, PageSizes, TableMemory};
use crate::start_info::{BootInfo, MAX_MODULES};
use core::sync::atomic::{AtomicU64, Ordering};

pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// The flags of a kernel page-table entry that points at a table (present, writable), and of a
/// 2 MiB page of the boot and trampoline tables (huge too).
pub const TABLE_ENTRY: u64 = PageFlags::PRESENT.union(PageFlags::WRITABLE).bits();
pub const LARGE_PAGE_ENTRY: u64 = TABLE_ENTRY | PageFlags::HUGE.bits();
pub const STACKS_BASE: u64 = 0xffff_c000_0000_0000;
pub const KERNEL_OFFSET: u64 = 0xffff_ffff_8000_0000;
/// The boot page tables map only the first GiB.
const BOOT_MAPPED_LIMIT: u64 = 1 << 30;
/// E820 types that are memory (RAM, ACPI reclaimable, ACPI NVS) and belong in the direct map.
const E820_ACPI: u32 = 3;
const E820_NVS: u32 = 4;

unsafe extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

/// The address of a linker-script symbol (only the address means anything).
fn symbol(s: *const u8) -> u64 {
    s as u64
}

#[inline]
pub fn phys_to_virt(phys: u64) -> u64 {
    phys + DIRECT_MAP_BASE
}

/// The physical address of a kernel object in the direct map or the kernel image.
#[inline]
pub fn virt_to_phys(virt: u64) -> u64 {
    if virt >= KERNEL_OFFSET { virt - KERNEL_OFFSET } else { virt - DIRECT_MAP_BASE }
}

/// Where page-table frames come from: the boot memory map before the frame allocator exists,
/// the frame allocator afterwards.
enum TableSource<'a> {
    Boot(&'a mut MemoryMap),
    Frames,
}

/// Page-table frames seen through the boot identity map (`view` = 0) or the direct map.
struct KernelTables<'a> {
    source: TableSource<'a>,
    view: u64,
}

impl TableMemory for KernelTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        let phys = match &mut self.source {
            TableSource::Boot(map) => map.take(FRAME_SIZE, FRAME_SIZE, BOOT_MAPPED_LIMIT).ok()?,
            TableSource::Frames => FRAMES.lock().as_mut()?.alloc(0).ok()?,
        };
        self.table(phys).fill(0);
        Some(phys)
    }

    fn free_table(&mut self, phys: u64) {
        // Boot-time tables are never unmapped; later ones go back to the frame allocator.
        if let TableSource::Frames = self.source {
            let _ = free_frames(phys, FRAME_SIZE);
        }
    }

    fn table(&mut self, phys: u64) -> &mut [u64; 512] {
        // SAFETY: `phys` is a page-table frame this module allocated; it is mapped at `view` +
        // phys (identity during boot, the direct map afterwards) and only touched under
        // KERNEL_TABLES' lock or by the boot CPU before other CPUs run.
        unsafe { &mut *((phys + self.view) as *mut [u64; 512]) }
    }
}

/// Frame allocator metadata for memory in the direct map: one tag byte per frame in `tags`
/// (a static slice for the kernel's allocator, a vector for a job's pool); free-list links inside
/// the free blocks themselves.
pub struct DirectMapMetadata<T> {
    pub tags: T,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FrameMetadata for DirectMapMetadata<T> {
    fn tag(&self, index: usize) -> u8 {
        self.tags.as_ref()[index]
    }
    fn set_tag(&mut self, index: usize, tag: u8) {
        self.tags.as_mut()[index] = tag;
    }
    fn link(&self, block: u64) -> Link {
        // SAFETY: `block` is a free block owned by the allocator, mapped in the direct map.
        unsafe { ((phys_to_virt(block)) as *const Link).read() }
    }
    fn set_link(&mut self, block: u64, link: Link) {
        // SAFETY: as above; nobody else uses a free block's memory.
        unsafe { ((phys_to_virt(block)) as *mut Link).write(link) }
    }
}

static FRAMES: IrqMutex<Option<FrameAllocator<DirectMapMetadata<&'static mut [u8]>>>> = IrqMutex::new(None);
/// Serialises changes to the kernel half of the page tables.
static KERNEL_TABLES: IrqMutex<()> = IrqMutex::new(());
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
static NEXT_STACK: AtomicU64 = AtomicU64::new(STACKS_BASE);
static PAGE_SIZES: spin::Once<PageSizes> = spin::Once::new();
static GLOBAL: AtomicU64 = AtomicU64::new(0);
/// The boot modules (the initrd), reserved at [`init`]: never reused or written.
static BOOT_MODULES: spin::Once<([Range; MAX_MODULES], usize)> = spin::Once::new();

/// What memory set-up found.
#[derive(Clone, Copy, Debug)]
pub struct MemoryReport {
    /// RAM in the firmware's map.
    pub ram_bytes: u64,
    /// Handed to the frame allocator.
    pub free_bytes: u64,
    pub early_bytes: u64,
}

#[derive(Clone, Copy, Debug)]
pub enum MemoryError {
    Map(MemoryMapError),
    Paging(MapError),
    Frames(FrameError),
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            MemoryError::Map(e) => write!(f, "boot memory map: {e:?}"),
            MemoryError::Paging(e) => write!(f, "page tables: {e:?}"),
            MemoryError::Frames(e) => write!(f, "frame allocator: {e:?}"),
        }
    }
}

impl From<MemoryMapError> for MemoryError {
    fn from(e: MemoryMapError) -> Self {
        MemoryError::Map(e)
    }
}
impl From<MapError> for MemoryError {
    fn from(e: MapError) -> Self {
        MemoryError::Paging(e)
    }
}
impl From<FrameError> for MemoryError {
    fn from(e: FrameError) -> Self {
        MemoryError::Frames(e)
    }
}

/// Builds the kernel's page tables, switches to them and starts the frame allocator.
pub fn init(boot: &BootInfo, features: &Features) -> Result<MemoryReport, MemoryError> {
    let sizes = *PAGE_SIZES.call_once(|| PageSizes { use_2m: true, use_1g: features.pages_1g });
    let global = if features.global_pages { PageFlags::GLOBAL } else { PageFlags::empty() };
    GLOBAL.store(global.bits(), Ordering::Relaxed);
    let nx = if features.nx { PageFlags::NO_EXECUTE } else { PageFlags::empty() };

    let mut usable = MemoryMap::default();
    let mut memory = MemoryMap::default();
    for e in boot.memmap() {
        let end = e.addr.saturating_add(e.size);
        if e.kind == E820_RAM {
            usable.add(e.addr, end)?;
        }
        if matches!(e.kind, E820_RAM | E820_ACPI | E820_NVS) {
            memory.add(e.addr & !(FRAME_SIZE - 1), end.next_multiple_of(FRAME_SIZE))?;
        }
    }
    memory.add(0, 1 << 20)?;
    let ram_bytes = usable.total();
    usable.reserve(0, 1 << 20)?;
    let (kstart, kend) = (symbol(&raw const __kernel_phys_start), symbol(&raw const __kernel_phys_end));
    usable.reserve(kstart, kend)?;
    for m in boot.modules() {
        usable.reserve(m.start & !(FRAME_SIZE - 1), m.end.next_multiple_of(FRAME_SIZE))?;
    }
    BOOT_MODULES.call_once(|| {
        let mut modules = [Range::default(); MAX_MODULES];
        modules[..boot.modules().len()].copy_from_slice(boot.modules());
        (modules, boot.modules().len())
    });
    let before = usable.total();

    let mut tables = KernelTables { source: TableSource::Boot(&mut usable), view: 0 };
    let root = tables.alloc_table().ok_or(MapError::OutOfMemory)?;
    let section = |s: *const u8, e: *const u8| (symbol(s), symbol(e) - symbol(s));
    let text = section(&raw const __text_start, &raw const __text_end);
    let rodata = section(&raw const __rodata_start, &raw const __rodata_end);
    let data = section(&raw const __data_start, &raw const __data_end);
    let small = PageSizes { use_2m: false, use_1g: false };
    for ((virt, len), flags) in [(text, global), (rodata, global | nx), (data, global | nx | PageFlags::WRITABLE)] {
        page_table::map(&mut tables, root, virt, virt - KERNEL_OFFSET, len, flags, small)?;
    }
    for r in memory.ranges() {
        let flags = global | nx | PageFlags::WRITABLE;
        page_table::map(&mut tables, root, phys_to_virt(r.start), r.start, r.len(), flags, sizes)?;
    }
    // SAFETY: the new tables map the kernel image at the same virtual addresses as the boot
    // tables, and the stack lives in the image's .bss; nothing in the lower half is used after
    // this point (start_info was copied into `boot`).
    unsafe { cpu::write_cr3(root) };
    if features.global_pages {
        // SAFETY: PGE is supported (CPUID) and makes global kernel mappings survive CR3 loads.
        unsafe { cpu::write_cr4(cpu::read_cr4() | cpu::CR4_PGE) };
    }
    KERNEL_ROOT.store(root, Ordering::Relaxed);

    // The frame allocator's tags cover every frame up to the end of usable RAM.
    let frames = (usable.end() / FRAME_SIZE) as usize;
    let tag_bytes = FrameAllocator::<DirectMapMetadata<&'static mut [u8]>>::tag_bytes(frames) as u64;
    let tags_phys = usable.take(tag_bytes.next_multiple_of(FRAME_SIZE), FRAME_SIZE, u64::MAX)?;
    // SAFETY: `tags_phys` was just taken out of usable RAM for this purpose only and is mapped
    // in the direct map; it lives for the rest of the kernel's life.
    let tags = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(tags_phys) as *mut u8, tag_bytes as usize) };
    let mut allocator = FrameAllocator::new(DirectMapMetadata { tags }, 0, frames);
    for r in usable.ranges() {
        allocator.add_range(r.start, r.end)?;
    }
    let free_bytes = allocator.free_total();
    *FRAMES.lock() = Some(allocator);
    crate::lent_memory::set_lendable(1 << 20, usable.end(), (kstart, kend));
    // Every upper-half slot the kernel uses gets its PDPT now, so the kernel half that user
    // address spaces copy at creation never misses a later kernel mapping.
    let direct_end = phys_to_virt(usable.end().max(1 << 32) - 1);
    let mut tables = KernelTables { source: TableSource::Frames, view: DIRECT_MAP_BASE };
    for slot in (pml4_slot(DIRECT_MAP_BASE)..=pml4_slot(direct_end)).chain([pml4_slot(STACKS_BASE)]) {
        if tables.table(root)[slot] & PageFlags::PRESENT.bits() == 0 {
            let pdpt = tables.alloc_table().ok_or(MapError::OutOfMemory)?;
            tables.table(root)[slot] = pdpt | TABLE_ENTRY;
        }
    }
    Ok(MemoryReport { ram_bytes, free_bytes, early_bytes: before - free_bytes })
}

fn pml4_slot(virt: u64) -> usize {
    ((virt >> 39) & 0x1ff) as usize
}

/// A page-table root that maps the kernel half as every address space does: the kernel's own
/// or a user space's (only this module makes one), so it can be loaded into CR3 safely
/// (`per_cpu::PerCpu::load_root`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root(u64);

impl Root {
    /// The root table's physical address (what page-table walks start from).
    #[inline]
    pub fn phys(self) -> u64 {
        self.0
    }
}

/// A [`Root`] that changes (a process's, on `execve`), read without a lock.
pub struct AtomicRoot(AtomicU64);

impl AtomicRoot {
    pub fn new(root: Root) -> Self {
        AtomicRoot(AtomicU64::new(root.0))
    }

    #[inline]
    pub fn load(&self) -> Root {
        Root(self.0.load(Ordering::Relaxed))
    }

    pub fn store(&self, root: Root) {
        self.0.store(root.0, Ordering::Relaxed)
    }
}

/// A new top-level table for a user address space: the lower half empty, the kernel half shared.
pub fn new_user_root() -> Result<Root, FrameError> {
    let root = alloc_frames(FRAME_SIZE, FRAME_SIZE)?;
    let mut tables = KernelTables { source: TableSource::Frames, view: DIRECT_MAP_BASE };
    let kernel = *tables.table(kernel_root().0);
    let user = tables.table(root);
    user[..256].fill(0);
    user[256..].copy_from_slice(&kernel[256..]);
    Ok(Root(root))
}

/// Page-table access for user address spaces (tables from the kernel's frame allocator).
pub fn user_tables() -> impl TableMemory {
    KernelTables { source: TableSource::Frames, view: DIRECT_MAP_BASE }
}

/// Takes `bytes` from the kernel's allocator as a few large contiguous blocks (largest first,
/// 2 MiB aligned where possible), for a job's memory pool. All or nothing.
pub fn reserve_blocks(bytes: u64) -> Result<alloc::vec::Vec<(u64, u64)>, FrameError> {
    let mut blocks = alloc::vec::Vec::new();
    let mut left = bytes.next_multiple_of(FRAME_SIZE);
    while left > 0 {
        let largest = frame_stats().1.map_or(0, crate::frame_allocator::order_size);
        let take = left.min(largest);
        let align = if take >= 1 << 21 { 1 << 21 } else { FRAME_SIZE };
        match (take > 0).then(|| alloc_frames(take, align)) {
            Some(Ok(phys)) => {
                blocks.push((phys, take));
                left -= take;
            }
            _ => {
                for (phys, len) in blocks {
                    let _ = free_frames(phys, len);
                }
                return Err(FrameError::OutOfMemory);
            }
        }
    }
    Ok(blocks)
}

/// Physically contiguous memory from the frame allocator, `bytes` rounded up to frames.
pub fn alloc_frames(bytes: u64, align: u64) -> Result<u64, FrameError> {
    FRAMES.lock().as_mut().ok_or(FrameError::OutOfMemory)?.alloc_bytes(bytes, align)
}

/// Like [`alloc_frames`], the memory zeroed (no earlier owner's data in it).
pub fn alloc_zeroed_frames(bytes: u64, align: u64) -> Result<u64, FrameError> {
    let phys = alloc_frames(bytes, align)?;
    // SAFETY: the frames were just allocated and belong to nobody else yet; the direct map
    // covers them.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, bytes.next_multiple_of(FRAME_SIZE) as usize) };
    Ok(phys)
}

/// Zeroes `bytes` at `phys` (frames the caller owns) and gives them back to the allocator: what
/// an enclave held is scrubbed before anyone else can get it.
pub fn scrub_and_free(phys: u64, bytes: u64) -> Result<(), FrameError> {
    // SAFETY: the caller owns these frames (it is about to free them); the direct map maps all
    // RAM writable, and nobody else touches them until they are freed below.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, bytes as usize) };
    free_frames(phys, bytes)
}

pub fn free_frames(phys: u64, bytes: u64) -> Result<(), FrameError> {
    FRAMES.lock().as_mut().ok_or(FrameError::BadAddress(phys))?.free_bytes(phys, bytes)
}

/// Free bytes in the frame allocator and its largest free block order.
pub fn frame_stats() -> (u64, Option<usize>) {
    FRAMES.lock().as_ref().map_or((0, None), |f| (f.free_total(), f.largest_free_order()))
}

/// The boot modules' bytes (QEMU's `-initrd`), each mapped once: their frames were reserved at
/// [`init`] and are never reused or written, so the slices live as long as the kernel. A module
/// that cannot be mapped gives the mapping's error.
pub fn boot_modules() -> alloc::vec::Vec<Result<&'static [u8], MapError>> {
    let Some((modules, count)) = BOOT_MODULES.get() else { return alloc::vec::Vec::new() };
    modules[..*count]
        .iter()
        .map(|m| {
            let virt = map_physical(m.start, m.len(), false)?;
            // SAFETY: the module's frames were reserved at `init` and are never reused or
            // written; `map_physical` mapped all `m.len()` bytes at `virt` for good.
            Ok(unsafe { core::slice::from_raw_parts(virt as *const u8, m.len() as usize) })
        })
        .collect()
}

/// An address no kernel table maps (the lower half is the user's, empty in the kernel's own
/// tables and never mapped this low in a job's).
pub const UNMAPPED: u64 = 0xdead000;

/// Reads [`UNMAPPED`]: the page fault the kernel's self-test (`test=pagefault`) reports. The
/// fault handler ends the kernel, so this only returns if the address was mapped after all.
pub fn read_unmapped() -> u64 {
    // SAFETY: reading an unmapped address raises a page fault, which the kernel treats as fatal
    // and reports; no memory is read or written. Were it mapped, a read of a u64 is harmless.
    unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) }
}

#[inline]
pub fn kernel_root() -> Root {
    Root(KERNEL_ROOT.load(Ordering::Relaxed))
}

fn map_kernel(virt: u64, phys: u64, len: u64, flags: PageFlags, sizes: PageSizes) -> Result<(), MapError> {
    let _guard = KERNEL_TABLES.lock();
    let mut tables = KernelTables { source: TableSource::Frames, view: DIRECT_MAP_BASE };
    page_table::map(&mut tables, kernel_root().0, virt, phys, len, flags, sizes)
}

fn translate_kernel(virt: u64) -> Option<page_table::Translation> {
    let _guard = KERNEL_TABLES.lock();
    let mut tables = KernelTables { source: TableSource::Frames, view: DIRECT_MAP_BASE };
    page_table::translate(&mut tables, kernel_root().0, virt)
}

/// Makes `[phys, phys + len)` reachable in the direct map, page by page where it is not yet
/// (firmware tables outside RAM, device registers). `uncached` for device memory.
pub fn map_physical(phys: u64, len: u64, uncached: bool) -> Result<u64, MapError> {
    let start = phys & !(FRAME_SIZE - 1);
    let end = phys.checked_add(len).ok_or(MapError::NonCanonical(phys))?.next_multiple_of(FRAME_SIZE);
    let mut flags =
        PageFlags::from_bits_truncate(GLOBAL.load(Ordering::Relaxed)) | PageFlags::WRITABLE | PageFlags::NO_EXECUTE;
    if uncached {
        flags |= PageFlags::NO_CACHE | PageFlags::WRITE_THROUGH;
    }
    let small = PageSizes { use_2m: false, use_1g: false };
    let mut p = start;
    while p < end {
        if translate_kernel(phys_to_virt(p)).is_none() {
            map_kernel(phys_to_virt(p), p, FRAME_SIZE, flags, small)?;
        }
        p += FRAME_SIZE;
    }
    Ok(phys_to_virt(phys))
}

/// A kernel stack: `[bottom, top)`, with an unmapped guard page below `bottom`. Only this
/// module makes one (a mapped stack, or the boot CPU's).
#[derive(Clone, Copy, Debug)]
pub struct Stack {
    bottom: u64,
    top: u64,
}

impl Stack {
    #[inline]
    pub fn top(&self) -> u64 {
        self.top
    }

    #[inline]
    pub fn bottom(&self) -> u64 {
        self.bottom
    }

    /// The 8-byte word at `at` if it lies inside the stack (a backtrace's walk). The stack
    /// must not have been freed: a freed stack is unmapped, and reading it faults.
    pub fn word(&self, at: u64) -> Option<u64> {
        let inside = at.is_multiple_of(8) && at >= self.bottom && at.checked_add(8).is_some_and(|end| end <= self.top);
        // SAFETY: an aligned word inside the stack's mapped range (checked).
        inside.then(|| unsafe { (at as *const u64).read_volatile() })
    }
}

/// Bytes of the boot CPU's stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct BootStack([u8; BOOT_STACK_SIZE]);

/// The boot CPU's stack, in `.bss` (zeroed by the entry code before it is used); the PVH entry
/// switches to it.
pub static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

/// The boot CPU's stack as a [`Stack`].
pub fn boot_stack() -> Stack {
    let bottom = (&raw const BOOT_STACK) as u64;
    Stack { bottom, top: bottom + BOOT_STACK_SIZE as u64 }
}

/// Kernel stacks unmapped whose addresses other CPUs may still translate: kernel pages are
/// global, so a CR3 load does not drop them. Their address ranges are reused once every CPU has
/// flushed its TLB ([`recycle_stacks`]).
static RETIRED_STACKS: IrqMutex<alloc::vec::Vec<Stack>> = IrqMutex::new(alloc::vec::Vec::new());
/// Address ranges of freed stacks that no TLB holds any more: taken before new ones.
static REUSABLE_STACKS: IrqMutex<alloc::vec::Vec<Stack>> = IrqMutex::new(alloc::vec::Vec::new());
/// How many stack address ranges were ever made (the region holds about 15 million).
static STACK_SLOTS: AtomicU64 = AtomicU64::new(0);
/// How many retired stacks make it worth a TLB flush on every CPU to reuse their ranges.
pub const STACK_RECYCLE_BATCH: usize = 256;

pub fn alloc_stack(bytes: u64) -> Result<Stack, MemoryError> {
    let bytes = bytes.next_multiple_of(FRAME_SIZE);
    let reused = {
        let mut reusable = REUSABLE_STACKS.lock();
        let found = reusable.iter().position(|s| s.top - s.bottom == bytes);
        found.map(|i| reusable.swap_remove(i).bottom)
    };
    let bottom = match reused {
        Some(bottom) => bottom,
        None => {
            STACK_SLOTS.fetch_add(1, Ordering::Relaxed);
            NEXT_STACK.fetch_add(bytes + FRAME_SIZE, Ordering::Relaxed) + FRAME_SIZE
        }
    };
    let give_back = |bottom| REUSABLE_STACKS.lock().push(Stack { bottom, top: bottom + bytes });
    let phys = match alloc_frames(bytes, FRAME_SIZE) {
        Ok(phys) => phys,
        Err(e) => {
            give_back(bottom);
            return Err(e.into());
        }
    };
    let flags =
        PageFlags::from_bits_truncate(GLOBAL.load(Ordering::Relaxed)) | PageFlags::WRITABLE | PageFlags::NO_EXECUTE;
    let small = PageSizes { use_2m: false, use_1g: false };
    if let Err(e) = map_kernel(bottom, phys, bytes, flags, small) {
        let _ = free_frames(phys, bytes);
        give_back(bottom);
        return Err(e.into());
    }
    Ok(Stack { bottom, top: bottom + bytes })
}

/// Stacks freed since the last [`recycle_stacks`].
pub fn retired_stacks() -> usize {
    RETIRED_STACKS.lock().len()
}

/// Makes the retired stacks' address ranges reusable if `flush_everywhere` (a TLB flush of
/// global pages on every CPU) succeeds; otherwise they stay retired for a later try.
pub fn recycle_stacks(flush_everywhere: impl FnOnce() -> bool) {
    let batch = core::mem::take(&mut *RETIRED_STACKS.lock());
    if flush_everywhere() {
        REUSABLE_STACKS.lock().extend(batch);
    } else {
        RETIRED_STACKS.lock().extend(batch);
    }
}

/// How many kernel-stack address ranges were ever made.
pub fn stack_slots() -> u64 {
    STACK_SLOTS.load(Ordering::Relaxed)
}

/// Unmaps a stack from [`alloc_stack`] and frees its frames; its address range is retired until
/// every CPU has flushed its TLB ([`recycle_stacks`]). Until then a stale entry on another CPU
/// could only matter to a buggy kernel path reading a stack it no longer owns.
pub fn free_stack(stack: Stack) {
    {
        let _guard = KERNEL_TABLES.lock();
        let mut tables = KernelTables { source: TableSource::Frames, view: DIRECT_MAP_BASE };
        let mut release = |phys, size| {
            let _ = free_frames(phys, size);
        };
        let _ = page_table::unmap(&mut tables, kernel_root().0, stack.bottom, stack.top - stack.bottom, &mut release);
    }
    RETIRED_STACKS.lock().push(stack);
}

/// Physical memory read through the direct map, mapping pages on demand (for firmware tables).
pub struct DirectMapReader;

impl PhysRead for DirectMapReader {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        match map_physical(phys, buf.len() as u64, false) {
            Ok(virt) => {
                // SAFETY: the range was just made present in the direct map; firmware tables are
                // plain memory that nothing writes while the kernel reads them.
                let src = unsafe { core::slice::from_raw_parts(virt as *const u8, buf.len()) };
                buf.copy_from_slice(src);
                true
            }
            Err(_) => false,
        }
    }
}

/// Early reads of the PVH handoff through the boot identity map (first GiB only).
pub struct BootIdentityReader;

impl PhysRead for BootIdentityReader {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
        let Some(end) = phys.checked_add(buf.len() as u64) else { return false };
        if end > BOOT_MAPPED_LIMIT || phys == 0 {
            return false;
        }
        // SAFETY: before the kernel switches page tables the first GiB is identity-mapped, and
        // the loader's handoff data in it is not written by anyone else.
        let src = unsafe { core::slice::from_raw_parts(phys as *const u8, buf.len()) };
        buf.copy_from_slice(src);
        true
    }
}
