/* The KVM peer of `cargo xtask bench`: a minimal KVM launcher that boots a Linux guest through
 * its PVH entry, so that the same guest (kernel, initramfs, /init) that Manul's VMM runs can
 * be measured under Linux's KVM in the same QEMU machine.
 *
 * Usage: kvm-launcher KERNEL INITRD MEM_MIB [WORD...]
 *   KERNEL   an uncompressed vmlinux with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY)
 *   INITRD   the guest's initramfs, handed over as the PVH start info's one module
 *   MEM_MIB  the guest's memory in MiB (from physical address 0; the first 640 KiB and
 *            everything from 1 MiB on are RAM)
 *   WORD...  the guest's kernel command line, the words joined by spaces; the launcher
 *            appends "reboot=t acpi=off pci=off" (see below)
 *
 * The machine is what KVM itself provides and nothing more: one vCPU with the CPUID KVM
 * supports (its paravirtual leaves included: the guest uses kvm-clock), the in-kernel local
 * APIC, I/O APIC, PICs and PIT, described to the guest by MP tables (as Firecracker does) so
 * that it uses the local APIC and I/O APIC as on any PC, guest memory backed by transparent
 * huge pages where the host has them, and two devices in user space: a 16550A UART at 0x3f8
 * (IRQ 4), whose output goes to standard output, and the CMOS real-time clock (ports 0x70 and
 * 0x71, the host's UTC time). There is no ACPI (the launcher appends "acpi=off"), no PCI (it
 * appends "pci=off"; without it a guest that sees a K8, as under QEMU's software CPU, searches
 * every PCI bus for a GART aperture, 33,000 exits to user space) and no firmware; reads of any
 * other port return all ones. Having no power-off device either,
 * the guest ends by rebooting through a triple fault (the launcher appends "reboot=t"), whose
 * shutdown exit ends the launcher.
 *
 * At the end the launcher prints, as `BENCH-INFO key=value` lines, the TSC cycles from its
 * start to the first KVM_RUN (files read, memory, tables), the exits it saw in user space and
 * every non-zero counter of KVM's statistics of the VM and the vCPU (`kvm_exits`,
 * `kvm_io_exits`, ...), read through KVM_GET_STATS_FD before the VM goes away.
 *
 * The guest's TSC is set to the host's when the vCPU is made, so that a guest's time stamp
 * counts from the machine's power-on as it does on Manul.
 *
 * Exit status: 0 when the guest shut down, 1 on any error (with a message on stderr). */
#define _GNU_SOURCE
#include "bench.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Where the PVH start info, its tables and the command line go (below 1 MiB, away from the
 * kernel, which loads at 16 MiB). */
enum {
    START_INFO = 0x6000,
    MODLIST = 0x6040,
    MEMMAP = 0x6080,
    CMDLINE = 0x7000,
    CMDLINE_MAX = 0x1000,
    LOW_RAM_END = 0x9fc00, /* the MP tables follow, in the last KiB of base memory */
    MP_TABLES = 0x9fc00,
    MP_TABLES_END = 0xa0000,
    HIGH_RAM_START = 0x100000,
    HUGE_PAGE = 2 << 20,
    PAGE = 4096,
};

/* The PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h). */
enum { XEN_ELFNOTE_PHYS32_ENTRY = 18, HVM_START_MAGIC = 0x336ec578, E820_RAM = 1 };
struct hvm_start_info {
    uint32_t magic, version, flags, nr_modules;
    uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
    uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_table_entry {
    uint64_t addr, size;
    uint32_t type, reserved;
};

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("kvm-launcher: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static int checked_ioctl(int fd, unsigned long request, void *arg, const char *what) {
    int result = ioctl(fd, request, arg);
    if (result < 0)
        fail("%s: %s", what, strerror(errno));
    return result;
}

struct guest {
    uint8_t *memory;
    uint64_t size;
};

/* The guest's bytes [address, address + length), or a failure naming `what`. */
static uint8_t *guest_range(const struct guest *guest, uint64_t address, uint64_t length, const char *what) {
    if (address > guest->size || length > guest->size - address)
        fail("%s [%#llx, +%#llx) is outside the guest's %llu MiB", what, (unsigned long long)address,
             (unsigned long long)length, (unsigned long long)(guest->size >> 20));
    return guest->memory + address;
}

static uint8_t *read_file(const char *path, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (fd < 0 || fstat(fd, &info) < 0)
        fail("cannot open %s: %s", path, strerror(errno));
    uint8_t *bytes = malloc(info.st_size ? info.st_size : 1);
    if (!bytes)
        fail("cannot allocate %lld bytes for %s", (long long)info.st_size, path);
    for (off_t done = 0; done < info.st_size;) {
        ssize_t got = read(fd, bytes + done, info.st_size - done);
        if (got <= 0)
            fail("cannot read %s: %s", path, got < 0 ? strerror(errno) : "unexpected end of file");
        done += got;
    }
    close(fd);
    *size = info.st_size;
    return bytes;
}

/* The PVH entry point in a PT_NOTE segment of the ELF file `elf` of `size` bytes, or 0. */
static uint32_t pvh_entry(const uint8_t *elf, uint64_t size, const Elf64_Phdr *note) {
    if (note->p_offset > size || note->p_filesz > size - note->p_offset)
        return 0;
    const uint8_t *at = elf + note->p_offset, *end = at + note->p_filesz;
    while ((uint64_t)(end - at) >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr header;
        memcpy(&header, at, sizeof header);
        uint64_t name = (header.n_namesz + 3ull) & ~3ull, desc = (header.n_descsz + 3ull) & ~3ull;
        at += sizeof header;
        if (name > (uint64_t)(end - at) || desc > (uint64_t)(end - at) - name)
            return 0;
        if (header.n_type == XEN_ELFNOTE_PHYS32_ENTRY && header.n_namesz == 4 && memcmp(at, "Xen", 4) == 0 &&
            header.n_descsz >= 4) {
            uint32_t entry;
            memcpy(&entry, at + name, sizeof entry);
            return entry;
        }
        at += name + desc;
    }
    return 0;
}

/* Loads the PT_LOAD segments of the vmlinux at `path` at their physical addresses; returns
 * its PVH entry point. */
static uint32_t load_kernel(struct guest *guest, const char *path) {
    uint64_t size;
    uint8_t *elf = read_file(path, &size);
    Elf64_Ehdr header;
    if (size < sizeof header)
        fail("%s is too short for an ELF header", path);
    memcpy(&header, elf, sizeof header);
    if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64 ||
        header.e_machine != EM_X86_64)
        fail("%s is not a 64-bit x86 ELF file (the launcher needs the vmlinux, not a bzImage)", path);
    if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phoff > size ||
        (uint64_t)header.e_phnum * sizeof(Elf64_Phdr) > size - header.e_phoff)
        fail("%s: program headers out of the file", path);
    uint32_t entry = 0;
    for (int i = 0; i < header.e_phnum; i++) {
        Elf64_Phdr segment;
        memcpy(&segment, elf + header.e_phoff + i * sizeof segment, sizeof segment);
        if (segment.p_type == PT_NOTE && entry == 0)
            entry = pvh_entry(elf, size, &segment);
        if (segment.p_type != PT_LOAD)
            continue;
        if (segment.p_filesz > segment.p_memsz || segment.p_offset > size ||
            segment.p_filesz > size - segment.p_offset)
            fail("%s: segment %d is out of the file", path, i);
        uint8_t *to = guest_range(guest, segment.p_paddr, segment.p_memsz, "a kernel segment");
        memcpy(to, elf + segment.p_offset, segment.p_filesz);
        memset(to + segment.p_filesz, 0, segment.p_memsz - segment.p_filesz);
    }
    free(elf);
    if (entry == 0)
        fail("%s has no PVH entry note", path);
    return entry;
}

/* Writes the PVH start info: the memory map, the command line and the initrd (loaded at the
 * top of memory). */
static void write_start_info(struct guest *guest, const char *initrd_path, const char *cmdline) {
    uint64_t initrd_size;
    uint8_t *initrd = read_file(initrd_path, &initrd_size);
    if (initrd_size > guest->size / 2)
        fail("the initrd (%llu bytes) takes more than half the guest's memory", (unsigned long long)initrd_size);
    uint64_t initrd_at = (guest->size - initrd_size) & ~(uint64_t)(PAGE - 1);
    memcpy(guest_range(guest, initrd_at, initrd_size, "the initrd"), initrd, initrd_size);
    free(initrd);

    size_t length = strlen(cmdline);
    if (length >= CMDLINE_MAX)
        fail("the command line has %zu bytes, more than %d", length, CMDLINE_MAX - 1);
    memcpy(guest_range(guest, CMDLINE, length + 1, "the command line"), cmdline, length + 1);

    struct hvm_memmap_table_entry memmap[2] = {
        {.addr = 0, .size = LOW_RAM_END, .type = E820_RAM},
        {.addr = HIGH_RAM_START, .size = guest->size - HIGH_RAM_START, .type = E820_RAM},
    };
    memcpy(guest_range(guest, MEMMAP, sizeof memmap, "the memory map"), memmap, sizeof memmap);
    struct hvm_modlist_entry module = {.paddr = initrd_at, .size = initrd_size};
    memcpy(guest_range(guest, MODLIST, sizeof module, "the module list"), &module, sizeof module);
    struct hvm_start_info info = {
        .magic = HVM_START_MAGIC,
        .version = 1,
        .nr_modules = 1,
        .modlist_paddr = MODLIST,
        .cmdline_paddr = CMDLINE,
        .memmap_paddr = MEMMAP,
        .memmap_entries = 2,
    };
    memcpy(guest_range(guest, START_INFO, sizeof info, "the start info"), &info, sizeof info);
}

/* The MP tables (Intel MultiProcessor Specification 1.4) of a PC with one CPU (local APIC 0),
 * one I/O APIC (ID 1, 24 pins) and an ISA bus whose 16 interrupts go to the same-numbered
 * I/O APIC pins (KVM's default routing), the PICs reached through LINT0 (ExtINT) and NMIs
 * through LINT1. */
static uint8_t mp_checksum(const uint8_t *bytes, size_t length) {
    uint8_t sum = 0;
    for (size_t i = 0; i < length; i++)
        sum += bytes[i];
    return (uint8_t)-sum;
}

static void write_mp_tables(struct guest *guest) {
    enum { LAPIC = 0xfee00000, IOAPIC = 0xfec00000, IOAPIC_ID = 1, ISA_IRQS = 16, HEADER = 44 };
    uint8_t table[MP_TABLES_END - MP_TABLES - 16] = {0};
    size_t at = HEADER;
    uint16_t entries = 0;
    uint32_t signature = 0x00800f12, features = 0x0781abfd;
    /* Processor: local APIC 0, version 0x14, enabled, bootstrap processor. */
    table[at] = 0, table[at + 1] = 0, table[at + 2] = 0x14, table[at + 3] = 0x3;
    memcpy(table + at + 4, &signature, 4);
    memcpy(table + at + 8, &features, 4);
    at += 20, entries++;
    /* Bus 0: ISA. */
    table[at] = 1, table[at + 1] = 0;
    memcpy(table + at + 2, "ISA   ", 6);
    at += 8, entries++;
    /* I/O APIC: version 0x11, enabled. */
    uint32_t ioapic = IOAPIC;
    table[at] = 2, table[at + 1] = IOAPIC_ID, table[at + 2] = 0x11, table[at + 3] = 1;
    memcpy(table + at + 4, &ioapic, 4);
    at += 8, entries++;
    /* I/O interrupts: ISA IRQ n -> I/O APIC pin n, bus-default polarity and trigger. */
    for (int irq = 0; irq < ISA_IRQS; irq++, at += 8, entries++) {
        table[at] = 3, table[at + 1] = 0 /* INT */, table[at + 4] = 0 /* bus */, table[at + 5] = irq;
        table[at + 6] = IOAPIC_ID, table[at + 7] = irq;
    }
    /* Local interrupts: LINT0 ExtINT, LINT1 NMI, on every local APIC. */
    for (int lint = 0; lint < 2; lint++, at += 8, entries++) {
        table[at] = 4, table[at + 1] = lint == 0 ? 3 /* ExtINT */ : 1 /* NMI */, table[at + 6] = 0xff;
        table[at + 7] = lint;
    }
    uint16_t length = at;
    uint32_t lapic = LAPIC;
    memcpy(table, "PCMP", 4);
    memcpy(table + 4, &length, 2);
    table[6] = 4; /* specification 1.4 */
    memcpy(table + 8, "MANUL   ", 8);
    memcpy(table + 16, "KVM-LAUNCHER", 12);
    memcpy(table + 34, &entries, 2);
    memcpy(table + 36, &lapic, 4);
    table[7] = mp_checksum(table, length);

    uint8_t pointer[16] = {'_', 'M', 'P', '_'};
    uint32_t config = MP_TABLES + sizeof pointer;
    memcpy(pointer + 4, &config, 4);
    pointer[8] = 1; /* length in 16-byte units */
    pointer[9] = 4;
    pointer[10] = mp_checksum(pointer, sizeof pointer);
    memcpy(guest_range(guest, MP_TABLES, sizeof pointer, "the MP floating pointer"), pointer, sizeof pointer);
    memcpy(guest_range(guest, config, length, "the MP configuration table"), table, length);
}

/* The CPUID KVM supports, with the hypervisor bit set (leaf 1, ECX bit 31). */
static void set_cpuid(int kvm, int vcpu) {
    for (int entries = 64; entries <= 4096; entries *= 2) {
        struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + entries * sizeof cpuid->entries[0]);
        if (!cpuid)
            fail("cannot allocate %d CPUID entries", entries);
        cpuid->nent = entries;
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
            free(cpuid);
            if (errno == E2BIG)
                continue;
            fail("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        }
        for (uint32_t i = 0; i < cpuid->nent; i++)
            if (cpuid->entries[i].function == 1)
                cpuid->entries[i].ecx |= 1u << 31;
        checked_ioctl(vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
        free(cpuid);
        return;
    }
    fail("KVM_GET_SUPPORTED_CPUID wants more than 4096 entries");
}

/* The PVH entry state: 32-bit protected mode with flat segments, paging off, EBX = the start
 * info. */
static void set_entry_state(int vcpu, uint32_t entry) {
    struct kvm_sregs sregs;
    checked_ioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    struct kvm_segment code = {
        .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0xb, .present = 1, .db = 1, .s = 1, .g = 1};
    struct kvm_segment data = code;
    data.selector = 0x18;
    data.type = 0x3;
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = (struct kvm_segment){.base = 0, .limit = 0x67, .selector = 0x20, .type = 0xb, .present = 1};
    sregs.cr0 = 0x11; /* PE, ET */
    sregs.cr4 = 0;
    sregs.efer = 0;
    checked_ioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = entry, .rbx = START_INFO, .rflags = 2};
    checked_ioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

/* The guest's TSC starts where the host's is. */
static void set_tsc(int vcpu) {
    struct {
        struct kvm_msrs header;
        struct kvm_msr_entry entry;
    } msrs = {.header = {.nmsrs = 1}, .entry = {.index = 0x10, .data = bench_tsc()}};
    if (ioctl(vcpu, KVM_SET_MSRS, &msrs) != 1)
        fail("KVM_SET_MSRS (the TSC): %s", strerror(errno));
}

/* The local APIC's LINT0 delivers the PICs' interrupts (ExtINT), LINT1 NMIs, as on a PC. */
static void set_lapic(int vcpu) {
    struct kvm_lapic_state lapic;
    checked_ioctl(vcpu, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
    uint32_t lint0 = 7u << 8, lint1 = 4u << 8;
    memcpy(lapic.regs + 0x350, &lint0, sizeof lint0);
    memcpy(lapic.regs + 0x360, &lint1, sizeof lint1);
    checked_ioctl(vcpu, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}

/* A 16550A UART that transmits at once and never receives. */
enum { UART_BASE = 0x3f8, UART_IRQ = 4, IER_THRI = 0x02, LCR_DLAB = 0x80, MCR_LOOP = 0x10 };
struct uart {
    uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
    bool thr_interrupt, line;
};

static void uart_update_irq(struct uart *uart, int vm) {
    bool level = (uart->ier & IER_THRI) && uart->thr_interrupt;
    if (level == uart->line)
        return;
    uart->line = level;
    struct kvm_irq_level irq = {.irq = UART_IRQ, .level = level};
    checked_ioctl(vm, KVM_IRQ_LINE, &irq, "KVM_IRQ_LINE");
}

static uint8_t uart_read(struct uart *uart, unsigned offset) {
    bool dlab = uart->lcr & LCR_DLAB;
    switch (offset) {
    case 0:
        return dlab ? uart->dll : 0;
    case 1:
        return dlab ? uart->dlm : uart->ier;
    case 2: {
        uint8_t fifo = (uart->fcr & 1) ? 0xc0 : 0;
        if ((uart->ier & IER_THRI) && uart->thr_interrupt) {
            uart->thr_interrupt = false; /* reading the IIR acknowledges THRE */
            return fifo | 0x02;
        }
        return fifo | 0x01;
    }
    case 3:
        return uart->lcr;
    case 4:
        return uart->mcr;
    case 5:
        return 0x60; /* transmitter empty */
    case 6:
        if (uart->mcr & MCR_LOOP) /* modem outputs looped back: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD */
            return ((uart->mcr & 0x02) << 3) | ((uart->mcr & 0x01) << 5) | ((uart->mcr & 0x04) << 4) |
                   ((uart->mcr & 0x08) << 4);
        return 0xb0; /* DCD, DSR, CTS */
    default:
        return uart->scr;
    }
}

/* The guest's console on standard output, each line prefixed with "[guest] " so that a reader
 * tells it from the host's. */
static void guest_output(uint8_t byte) {
    static bool line_start = true;
    if (line_start)
        fputs("[guest] ", stdout);
    putchar(byte);
    line_start = byte == '\n';
    if (line_start)
        fflush(stdout);
}

static void uart_write(struct uart *uart, unsigned offset, uint8_t value) {
    bool dlab = uart->lcr & LCR_DLAB;
    switch (offset) {
    case 0:
        if (dlab) {
            uart->dll = value;
        } else {
            if (!(uart->mcr & MCR_LOOP))
                guest_output(value);
            uart->thr_interrupt = true;
        }
        break;
    case 1:
        if (dlab) {
            uart->dlm = value;
        } else {
            if ((value & IER_THRI) && !(uart->ier & IER_THRI))
                uart->thr_interrupt = true;
            uart->ier = value & 0x0f;
        }
        break;
    case 2:
        uart->fcr = value;
        break;
    case 3:
        uart->lcr = value;
        break;
    case 4:
        uart->mcr = value & 0x1f;
        break;
    case 7:
        uart->scr = value;
        break;
    default:
        break;
    }
}

/* The CMOS real-time clock: the register selected through port 0x70, read through 0x71. The
 * time is the host's (UTC, BCD, 24-hour); no update is ever in progress, so that a guest
 * waiting for one to end does not spin. */
enum { CMOS_INDEX = 0x70, CMOS_DATA = 0x71 };

static uint8_t bcd(int value) {
    return (uint8_t)(((value / 10) << 4) | (value % 10));
}

static uint8_t cmos_read(uint8_t index) {
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    switch (index & 0x7f) {
    case 0x00:
        return bcd(utc.tm_sec);
    case 0x02:
        return bcd(utc.tm_min);
    case 0x04:
        return bcd(utc.tm_hour);
    case 0x06:
        return bcd(utc.tm_wday + 1);
    case 0x07:
        return bcd(utc.tm_mday);
    case 0x08:
        return bcd(utc.tm_mon + 1);
    case 0x09:
        return bcd(utc.tm_year % 100);
    case 0x32:
        return bcd(19 + utc.tm_year / 100); /* century */
    case 0x0a:
        return 0x26; /* 32.768 kHz time base, 1024 Hz rate, no update in progress */
    case 0x0b:
        return 0x02; /* 24-hour mode, BCD, no interrupts */
    case 0x0d:
        return 0x80; /* the battery is good */
    default:
        return 0;
    }
}

/* Every non-zero cumulative counter of KVM's binary statistics of `fd` (a VM or a vCPU). */
static void print_stats(int fd) {
    int stats = ioctl(fd, KVM_GET_STATS_FD, NULL);
    if (stats < 0) {
        printf("BENCH-INFO kvm_stats_error=%s\n", strerror(errno));
        return;
    }
    struct kvm_stats_header header;
    if (pread(stats, &header, sizeof header, 0) != sizeof header)
        fail("cannot read KVM's statistics header");
    size_t desc_size = sizeof(struct kvm_stats_desc) + header.name_size;
    uint8_t *descs = malloc((size_t)header.num_desc * desc_size);
    if (!descs || pread(stats, descs, (size_t)header.num_desc * desc_size, header.desc_offset) !=
                      (ssize_t)((size_t)header.num_desc * desc_size))
        fail("cannot read KVM's statistics descriptors");
    for (uint32_t i = 0; i < header.num_desc; i++) {
        struct kvm_stats_desc *desc = (struct kvm_stats_desc *)(descs + i * desc_size);
        uint64_t value;
        if ((desc->flags & KVM_STATS_TYPE_MASK) != KVM_STATS_TYPE_CUMULATIVE || desc->size != 1)
            continue;
        if (pread(stats, &value, sizeof value, header.data_offset + desc->offset) != sizeof value)
            fail("cannot read KVM's statistic %.*s", (int)header.name_size, desc->name);
        if (value != 0)
            printf("BENCH-INFO kvm_%.*s=%llu\n", (int)header.name_size, desc->name, (unsigned long long)value);
    }
    free(descs);
    close(stats);
}

int main(int argc, char **argv) {
    uint64_t requested = bench_tsc();
    if (argc < 4)
        fail("usage: kvm-launcher KERNEL INITRD MEM_MIB [COMMAND-LINE WORD...]");
    char *end;
    unsigned long mib = strtoul(argv[3], &end, 10);
    if (*end != '\0' || mib < 16 || mib > 3072)
        fail("memory %s MiB: give 16 to 3072", argv[3]);
    char cmdline[CMDLINE_MAX] = "";
    size_t used = 0;
    for (int i = 4; i <= argc; i++) {
        const char *word = i < argc ? argv[i] : "reboot=t acpi=off pci=off";
        int wrote = snprintf(cmdline + used, sizeof cmdline - used, "%s%s", used ? " " : "", word);
        if (wrote < 0 || (size_t)wrote >= sizeof cmdline - used)
            fail("the command line is longer than %d bytes", CMDLINE_MAX - 1);
        used += wrote;
    }

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        fail("cannot open /dev/kvm: %s (is kvm_amd loaded?)", strerror(errno));
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        fail("KVM API version is not %d", KVM_API_VERSION);
    int vm = checked_ioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
    checked_ioctl(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {.flags = 0};
    checked_ioctl(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

    struct guest guest = {.size = (uint64_t)mib << 20};
    uint8_t *mapping = mmap(NULL, guest.size + HUGE_PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping == MAP_FAILED)
        fail("cannot map %lu MiB of guest memory: %s", mib, strerror(errno));
    guest.memory = (uint8_t *)(((uintptr_t)mapping + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    madvise(guest.memory, guest.size, MADV_HUGEPAGE); /* best effort: without THP, 4 KiB pages */
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = guest.size, .userspace_addr = (uintptr_t)guest.memory};
    checked_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

    uint32_t entry = load_kernel(&guest, argv[1]);
    write_start_info(&guest, argv[2], cmdline);
    write_mp_tables(&guest);

    int vcpu = checked_ioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
    int run_size = checked_ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        fail("cannot map the vCPU's run structure: %s", strerror(errno));
    set_cpuid(kvm, vcpu);
    set_tsc(vcpu);
    set_lapic(vcpu);
    set_entry_state(vcpu, entry);
    fprintf(stderr, "kvm-launcher: %s at %#x, %lu MiB, command line \"%s\"\n", argv[1], entry, mib, cmdline);

    struct uart uart = {0};
    uint8_t cmos_index = 0;
    uint64_t io_exits = 0, mmio_exits = 0, first_entry = bench_tsc() - requested;
    const char *ended = NULL;
    while (!ended) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            fail("KVM_RUN: %s", strerror(errno));
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            io_exits++;
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
                uint16_t port = run->io.port;
                bool in = run->io.direction == KVM_EXIT_IO_IN;
                if (port >= UART_BASE && port < UART_BASE + 8 && run->io.size == 1) {
                    if (in)
                        *data = uart_read(&uart, port - UART_BASE);
                    else
                        uart_write(&uart, port - UART_BASE, *data);
                    uart_update_irq(&uart, vm);
                } else if (port == CMOS_INDEX && !in && run->io.size == 1) {
                    cmos_index = *data;
                } else if (port == CMOS_DATA && in && run->io.size == 1) {
                    *data = cmos_read(cmos_index);
                } else if (in) {
                    memset(data, 0xff, run->io.size); /* nothing there (PCI configuration included) */
                }
            }
            break;
        }
        case KVM_EXIT_MMIO:
            mmio_exits++;
            if (!run->mmio.is_write)
                memset(run->mmio.data, 0xff, sizeof run->mmio.data);
            break;
        case KVM_EXIT_SHUTDOWN:
            ended = "shutdown";
            break;
        case KVM_EXIT_HLT:
            ended = "halt";
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            ended = "system event";
            break;
        case KVM_EXIT_FAIL_ENTRY:
            fail("VMRUN failed: hardware reason %#llx",
                 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            fail("KVM internal error, suberror %u", run->internal.suberror);
            break;
        default:
            fail("unexpected exit reason %u", run->exit_reason);
        }
    }
    fflush(stdout);
    fprintf(stderr, "kvm-launcher: the guest ended (%s)\n", ended);
    printf("BENCH-INFO kvm_launcher_end=%s\n", ended);
    printf("BENCH-INFO kvm_launcher_first_entry_cycles=%llu\n", (unsigned long long)first_entry);
    printf("BENCH-INFO kvm_launcher_io_exits=%llu\n", (unsigned long long)io_exits);
    printf("BENCH-INFO kvm_launcher_mmio_exits=%llu\n", (unsigned long long)mmio_exits);
    print_stats(vm);
    print_stats(vcpu);
    return 0;
}
