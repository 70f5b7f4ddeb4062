/*
 * elf32: a 32-bit x86 executable, built freestanding (gcc -m32 -static -nostdlib) so that no
 * 32-bit libc is needed. The kernel runs only x86_64 programs and must refuse to load it.
 * Were it run anyway (as on Linux with 32-bit support), it would exit with status 99 through
 * the i386 system call gate, and fault if there is none.
 */
void _start(void) {
    __asm__ volatile("int $0x80" : : "a"(1), "b"(99));
    __asm__ volatile("ud2");
}
