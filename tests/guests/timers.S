/* A PVH guest for the VMM's interrupt path: its own GDT and IDT, the 8259 pair remapped to
 * 0x20, PIT channel 0 at 1 kHz until five IRQ 0 interrupts have woken it from HLT, then the
 * local APIC (MMIO at 0xfee00000: SVR, divide, LVT timer, initial count) firing a one-shot
 * timer interrupt that wakes it from HLT again, acknowledged by an EOI; then, if CPUID offers
 * them, x2APIC mode (APIC base MSR EXTD, registers as MSRs: ID, self IPI, EOI) and the
 * TSC-deadline timer (IA32_TSC_DEADLINE), each waking it from HLT. It reports each step on
 * COM1 and powers off; an unexpected interrupt or exception prints "FAIL" and halts with
 * interrupts off, so the VM ends "halted" instead of "poweroff". */
#include "pvh-entry.h"

    .set APIC, 0xfee00000
_start:
    mov $stack_top, %esp
    lgdt gdt_pointer
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss

    /* IDT: every vector to `unexpected`, then 0x20 (IRQ 0) and 0x40 (APIC timer). */
    xor %ecx, %ecx
2:  mov $unexpected, %eax
    call set_gate
    inc %ecx
    cmp $256, %ecx
    jne 2b
    mov $0x20, %ecx
    mov $pit_interrupt, %eax
    call set_gate
    mov $0x40, %ecx
    mov $apic_interrupt, %eax
    call set_gate
    mov $0x41, %ecx
    mov $x2apic_self_ipi, %eax
    call set_gate
    mov $0x42, %ecx
    mov $deadline_interrupt, %eax
    call set_gate
    lidt idt_pointer

    /* 8259 pair: vectors 0x20/0x28, cascade on IRQ 2, only IRQ 0 unmasked. */
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $0x04, %al
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xa1
    mov $0x01, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfe, %al
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1

    /* PIT channel 0, rate generator, 1193 ticks = 1 ms. */
    mov $0x34, %al
    out %al, $0x43
    mov $0xa9, %al
    out %al, $0x40
    mov $0x04, %al
    out %al, $0x40
    sti
3:  hlt
    cmpl $5, pit_ticks
    jb 3b
    cli
    mov $pit_ok, %esi
    call puts
    mov $0xff, %al
    out %al, $0x21                      /* mask the 8259 again */

    /* Local APIC: enable (SVR), divide by 1, one-shot timer on vector 0x40, 1,000,000 ticks. */
    movl $0x1ff, APIC + 0xf0
    movl $0x0b, APIC + 0x3e0
    movl $0x40, APIC + 0x320
    movl $1000000, APIC + 0x380
    sti
4:  hlt
    cmpl $0, apic_fired
    je 4b
    cli
    mov $apic_ok, %esi
    call puts

    /* x2APIC and TSC-deadline: CPUID.1:ECX bits 21 and 24 must both be offered. */
    mov $1, %eax
    cpuid
    and $0x01200000, %ecx
    cmp $0x01200000, %ecx
    jne unexpected
    mov $0x1b, %ecx                     /* APIC base: set EXTD */
    rdmsr
    or $0x400, %eax
    wrmsr
    mov $0x802, %ecx                    /* the x2APIC ID of the boot vCPU is 0 */
    rdmsr
    test %eax, %eax
    jnz unexpected
    mov $0x83f, %ecx                    /* SELF IPI, vector 0x41 */
    mov $0x41, %eax
    xor %edx, %edx
    wrmsr
    sti
7:  hlt
    cmpl $0, self_ipi_fired
    je 7b
    cli
    mov $0x832, %ecx                    /* LVT timer: TSC-deadline mode, vector 0x42 */
    mov $0x40042, %eax
    xor %edx, %edx
    wrmsr
    rdtsc                               /* deadline: 2,000,000 TSC ticks from now */
    add $2000000, %eax
    adc $0, %edx
    mov $0x6e0, %ecx
    wrmsr
    sti
8:  hlt
    cmpl $0, deadline_fired
    je 8b
    cli
    mov $0x6e0, %ecx                    /* a deadline that fired reads back as 0 */
    rdmsr
    or %edx, %eax
    jnz unexpected
    mov $x2apic_ok, %esi
    call puts

    mov $0x604, %dx                     /* ACPI S5 */
    mov $0x3400, %ax
    out %ax, %dx
    cli
    hlt

pit_interrupt:
    incl pit_ticks
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret

apic_interrupt:
    movl $1, apic_fired
    movl $0, APIC + 0xb0                /* EOI */
    iret

x2apic_self_ipi:
    movl $1, self_ipi_fired
    jmp x2apic_eoi

deadline_interrupt:
    movl $1, deadline_fired
x2apic_eoi:
    push %eax
    push %ecx
    push %edx
    mov $0x80b, %ecx                    /* EOI as an MSR */
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    pop %edx
    pop %ecx
    pop %eax
    iret

unexpected:
    mov $fail, %esi
    call puts
    cli
    hlt

/* IDT gate ECX -> handler EAX (32-bit interrupt gate, selector 0x08). */
set_gate:
    lea idt(,%ecx,8), %edx
    mov %ax, (%edx)
    movw $0x08, 2(%edx)
    movw $0x8e00, 4(%edx)
    shr $16, %eax
    mov %ax, 6(%edx)
    ret

/* Prints the NUL-terminated string at ESI on COM1. */
puts:
    push %edx
    mov $0x3f8, %dx
5:  lodsb
    test %al, %al
    jz 6f
    out %al, %dx
    jmp 5b
6:  pop %edx
    ret

    .data
    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
gdt_pointer:
    .word 23
    .long gdt
idt_pointer:
    .word 256 * 8 - 1
    .long idt
pit_ticks:  .long 0
apic_fired: .long 0
self_ipi_fired: .long 0
deadline_fired: .long 0
pit_ok:     .asciz "timers guest: 5 PIT interrupts woke HLT\n"
apic_ok:    .asciz "timers guest: the local APIC timer interrupt woke HLT\n"
x2apic_ok:  .asciz "timers guest: the x2APIC self IPI and the TSC-deadline timer woke HLT\n"
fail:       .asciz "timers guest: FAIL: unexpected interrupt or exception\n"

    .bss
    .balign 8
idt:
    .skip 256 * 8
    .balign 16
    .skip 4096
stack_top:
