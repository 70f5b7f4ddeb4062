/* What test guests that print share: `puts` (the NUL-terminated string at ESI on COM1, polling
 * the transmitter before each byte; clobbers EAX, EDX, ESI) and `zero_idt`, an empty IDT whose
 * `lidt` makes the next exception a triple fault (how a guest reports a failed check as
 * "triple_fault"). Include it after the guest's code. */
    .text
puts:
    mov $0x3fd, %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    lodsb
    test %al, %al
    jz 2f
    mov $0x3f8, %dx
    out %al, %dx
    mov $0x3fd, %dx
    jmp 1b
2:  ret

    .data
    .balign 8
zero_idt:
    .word 0
    .long 0
