/* The PVH entry note every test guest carries: XEN_ELFNOTE_PHYS32_ENTRY (18) naming _start, the
 * 32-bit protected-mode entry point the VMM jumps to with EBX pointing at hvm_start_info. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 4, 18          /* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long _start

    .text
    .code32
    .globl _start
