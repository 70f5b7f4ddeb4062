//! The PVH entry point: the Xen ELF note that tells a loader (QEMU `-kernel`, Xen, Cloud
//! Hypervisor, ...) where to start, and the 32-bit code that builds boot page tables (the first
//! GiB mapped both at 0 and at -2 GiB), enters long mode, clears `.bss` and calls
//! the kernel's main function on the boot stack with the start_info address.
//!
//! The kernel names its main function with [`pvh_entry!`], which places the entry code in the
//! kernel's image (the entry must call the kernel, which this crate cannot name).

/// The PVH entry, calling `$main(start_info: u32) -> !` on the boot stack.
#[macro_export]
macro_rules! pvh_entry {
    ($main:path) => {
        core::arch::global_asm!(
            r#"
            .section .note.Xen, "a"
            .balign 4
            .long 4                 /* name size: "Xen\0" */
            .long 8                 /* descriptor size */
            .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
            .asciz "Xen"
            .balign 4
            .quad pvh_start32
            .balign 4

            .section .boot.text, "ax"
            .code32
            .global pvh_start32
        pvh_start32:
            cli
            cld
            mov esi, ebx                    /* start_info physical address */

            /* One page directory of 2 MiB pages maps the first GiB. */
            lea edi, [boot_pd]
            mov eax, {large_page}
            mov ecx, 512
        1:  mov dword ptr [edi], eax
            mov dword ptr [edi + 4], 0
            add eax, 0x200000
            add edi, 8
            loop 1b

            lea eax, [boot_pd + {table}]
            mov dword ptr [boot_pdpt_low], eax
            mov dword ptr [boot_pdpt_high + 510 * 8], eax
            lea eax, [boot_pdpt_low + {table}]
            mov dword ptr [boot_pml4], eax
            lea eax, [boot_pdpt_high + {table}]
            mov dword ptr [boot_pml4 + 511 * 8], eax

            mov eax, cr4
            or eax, {cr4_pae}
            mov cr4, eax
            lea eax, [boot_pml4]
            mov cr3, eax
            mov ecx, {msr_efer}
            rdmsr
            or eax, {efer_lme}
            wrmsr
            mov eax, cr0
            or eax, {cr0}
            mov cr0, eax

            lgdt [boot_gdt_pointer]
            push 0x08
            lea eax, [pvh_start64]
            push eax
            retf

            .code64
        pvh_start64:
            mov ax, 0x10
            mov ds, ax
            mov es, ax
            mov ss, ax
            xor eax, eax
            mov fs, ax
            mov gs, ax

            mov rdi, offset __bss_start
            mov rcx, offset __bss_end
            sub rcx, rdi
            xor eax, eax
            rep stosb

            mov rsp, offset {stack} + {stack_size}
            xor ebp, ebp
            mov edi, esi
            mov rax, offset {main}
            call rax
            ud2

            .section .boot.data, "aw"
            .balign 4096
        boot_pml4:      .fill 512, 8, 0
        boot_pdpt_low:  .fill 512, 8, 0
        boot_pdpt_high: .fill 512, 8, 0
        boot_pd:        .fill 512, 8, 0
        boot_gdt:
            .quad 0
            .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code */
            .quad 0x00CF92000000FFFF        /* 0x10: data */
        boot_gdt_pointer:
            .word 23
            .long boot_gdt
            "#,
            stack = sym $crate::kernel_memory::BOOT_STACK,
            stack_size = const $crate::kernel_memory::BOOT_STACK_SIZE,
            main = sym $main,
            cr4_pae = const $crate::cpu::CR4_PAE,
            msr_efer = const $crate::cpu::MSR_EFER,
            efer_lme = const $crate::cpu::EFER_LME,
            cr0 = const $crate::cpu::ENTRY_CR0,
            table = const $crate::kernel_memory::TABLE_ENTRY,
            large_page = const $crate::kernel_memory::LARGE_PAGE_ENTRY,
        );
    };
}
