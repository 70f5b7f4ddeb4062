//! Starting an application processor: INIT-SIPI-SIPI (the kernel sends them, through
//! `local_apic`) into a real-mode trampoline copied below 1 MiB, which enters long mode
//! directly, on temporary page tables that identity-map it, and jumps to the kernel's entry for
//! that CPU with its per-CPU entry as the argument.

use crate::cpu;
use crate::kernel_memory::{LARGE_PAGE_ENTRY, TABLE_ENTRY, kernel_root, phys_to_virt};
use crate::per_cpu::PerCpu;
use core::arch::global_asm;

/// Physical page of the trampoline (its STARTUP vector is this page number) and of the
/// temporary page tables that identity-map it while the CPU switches to long mode.
const TRAMPOLINE: u64 = 0x8000;
const TRAMPOLINE_PML4: u64 = 0x9000;
const TRAMPOLINE_PDPT: u64 = 0xa000;
const TRAMPOLINE_PD: u64 = 0xb000;

global_asm!(
    r#"
    .section .ap_trampoline, "a"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    movl (ap_mailbox - ap_trampoline_start + 0x8000 + 4), %eax
    movl %eax, %cr4
    movl (ap_mailbox - ap_trampoline_start + 0x8000), %eax
    movl %eax, %cr3
    movl ${msr_efer}, %ecx
    rdmsr
    orl (ap_mailbox - ap_trampoline_start + 0x8000 + 8), %eax
    wrmsr
    movl ${cr0}, %eax
    movl %eax, %cr0
    lgdtl (ap_gdt_pointer - ap_trampoline_start + 0x8000)
    ljmpl $0x08, $(ap_long_mode - ap_trampoline_start + 0x8000)

    .code64
ap_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq (ap_mailbox - ap_trampoline_start + 0x8000 + 16), %rsp
    movq (ap_mailbox - ap_trampoline_start + 0x8000 + 32), %rdi
    xorl %ebp, %ebp
    movq (ap_mailbox - ap_trampoline_start + 0x8000 + 24), %rax
    jmpq *%rax

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
ap_gdt_pointer:
    .word 23
    .long ap_gdt - ap_trampoline_start + 0x8000
    .balign 8
    .global ap_mailbox
ap_mailbox:
    .fill 5, 8, 0
    .global ap_trampoline_end
ap_trampoline_end:
    "#,
    msr_efer = const cpu::MSR_EFER,
    cr0 = const cpu::ENTRY_CR0,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_mailbox: u8;
}

/// What the trampoline reads (at `ap_mailbox`): CR3, CR4, EFER bits, stack, entry, argument.
#[repr(C)]
struct Mailbox {
    cr3: u32,
    cr4: u32,
    efer: u32,
    _pad: u32,
    stack_top: u64,
    entry: u64,
    argument: u64,
}

/// The trampoline, copied to its pages with its tables built ([`Trampoline::install`]).
pub struct Trampoline {
    mailbox: u64,
}

impl Trampoline {
    /// Copies the trampoline to 0x8000 and builds its page tables (0x9000-0xbfff: the first
    /// 2 MiB identity-mapped, the kernel half as the kernel's). The caller has checked that
    /// those pages are RAM; the memory set-up keeps the first MiB from the frame allocator.
    pub fn install() -> Trampoline {
        let start = (&raw const ap_trampoline_start) as u64;
        let len = (&raw const ap_trampoline_end) as u64 - start;
        let mailbox_offset = (&raw const ap_mailbox) as u64 - start;
        // SAFETY: the first MiB is reserved from the frame allocator and mapped in the direct
        // map; the trampoline and its tables use pages 0x8000-0xbfff there, which nothing else
        // uses.
        unsafe {
            core::ptr::copy_nonoverlapping(start as *const u8, phys_to_virt(TRAMPOLINE) as *mut u8, len as usize);
            let pml4 = &mut *(phys_to_virt(TRAMPOLINE_PML4) as *mut [u64; 512]);
            let kernel = &*(phys_to_virt(kernel_root().phys()) as *const [u64; 512]);
            pml4.fill(0);
            pml4[256..].copy_from_slice(&kernel[256..]);
            pml4[0] = TRAMPOLINE_PDPT | TABLE_ENTRY;
            let pdpt = &mut *(phys_to_virt(TRAMPOLINE_PDPT) as *mut [u64; 512]);
            pdpt.fill(0);
            pdpt[0] = TRAMPOLINE_PD | TABLE_ENTRY;
            let pd = &mut *(phys_to_virt(TRAMPOLINE_PD) as *mut [u64; 512]);
            pd.fill(0);
            pd[0] = LARGE_PAGE_ENTRY; // the first 2 MiB, identity
        }
        Trampoline { mailbox: phys_to_virt(TRAMPOLINE + mailbox_offset) }
    }

    /// The STARTUP vector: the trampoline's page number.
    pub fn startup_vector(&self) -> u8 {
        (TRAMPOLINE >> 12) as u8
    }

    /// Tells the next CPU to start where to go: `entry(cpu)` on `cpu`'s stack, with this CPU's
    /// CR4 and EFER.LME (and NXE if `nx`). One CPU at a time: the previous one must have read
    /// the mailbox (it has once it reports itself online).
    pub fn post<K: Sync + 'static>(
        &self,
        cpu: &'static PerCpu<K>,
        nx: bool,
        entry: extern "C" fn(&'static PerCpu<K>) -> !,
    ) {
        let efer = (cpu::EFER_LME | if nx { cpu::EFER_NXE } else { 0 }) as u32;
        // SAFETY: the mailbox is inside the trampoline copy; the previous CPU has finished
        // with it (above).
        unsafe {
            (self.mailbox as *mut Mailbox).write_volatile(Mailbox {
                cr3: TRAMPOLINE_PML4 as u32,
                cr4: cpu::read_cr4() as u32,
                efer,
                _pad: 0,
                stack_top: cpu.stack.top(),
                entry: entry as *const () as u64,
                argument: cpu as *const PerCpu<K> as u64,
            })
        };
    }
}
