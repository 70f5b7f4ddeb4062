/* What test guests that print share: `puts` (the NUL-terminated string at ESI on COM1, polling
 * the transmitter before each byte; clobbers EAX, EDX, ESI), `poweroff` (ACPI S5 through the PM1a
 * control register: the VM ends with "poweroff") and `fail` (prints the string at ESI, then
 * loads an empty IDT and faults: the VM ends with "triple_fault", how a guest reports a failed
 * check). Include it after the guest's code. */
    .text
poweroff:
    mov $0x604, %dx                     /* PM1a control: SLP_TYP = 5 (S5), SLP_EN */
    mov $0x3400, %ax
    out %ax, %dx
    cli
    hlt

fail:
    call puts
    lidt zero_idt                       /* no IDT: the next exception triple faults */
    ud2

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
