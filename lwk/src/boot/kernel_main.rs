//! The boot sequence on the boot CPU, from the PVH entry to the `boot` event, and what follows
//! it (a self-test, power-off, or the console).

use crate::boot::cpus;
use crate::control::cmdline::{self, AfterBoot, SelfTest};
use crate::hal::acpi_tables::{self, Madt};
use crate::hal::kernel_memory::{BootIdentityReader, DirectMapReader};
use crate::hal::start_info::BootInfo;
use crate::util::power::{ExitStatus, shutdown};
use crate::{
    control::console_commands, control::enclaves, fs::files, hal::cpu, hal::descriptor_tables, hal::fpu_state,
    hal::io_apic, hal::kernel_memory, hal::local_apic, println, syscalls::entry, task::interrupt_entry, task::per_cpu,
    task::smp, time::clock, util::logging, util::serial_console,
};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

/// Reports a boot step that cannot go on and stops with the failure code.
fn fail(step: &str, reason: impl core::fmt::Display) -> ! {
    log::error!(target: "boot", "{step} failed: {reason}");
    logging::emit_from_fault("boot_failed", |e| {
        e.str("step", step).display("reason", &reason);
    });
    shutdown(ExitStatus::Failure)
}

pub extern "C" fn kernel_main(start_info: u32) -> ! {
    clock::mark_boot();
    descriptor_tables::load_early_gdt();
    serial_console::init();
    logging::init();
    interrupt_entry::load_idt();
    println!("Manul LWK {} booting", env!("CARGO_PKG_VERSION"));

    let boot = BootInfo::read(&BootIdentityReader, start_info as u64)
        .unwrap_or_else(|e| fail("reading PVH start_info", format_args!("{e:?}")));
    let features = cpu::Features::detect();
    cpu::enable_no_execute(&features);
    log::info!(target: "cpu", "x2apic {}, tsc-deadline {}, invariant tsc {}, nx {}, 1g pages {}, svm {}, hypervisor {}",
        features.x2apic,
        features.tsc_deadline,
        features.invariant_tsc,
        features.nx,
        features.pages_1g,
        features.svm,
        features.hypervisor
    );
    let memory = kernel_memory::init(&boot, &features).unwrap_or_else(|e| fail("memory set-up", e));

    let (options, errors) = cmdline::parse(boot.cmdline());
    log::set_max_level(options.log);
    log::info!(target: "cmdline", "\"{}\"", boot.cmdline());
    for e in &errors {
        log::warn!(target: "cmdline", "{}: {}", e.option, e.reason);
        logging::emit("cmdline_error", |ev| {
            ev.str("option", &e.option).str("reason", &e.reason);
        });
    }
    if boot.cmdline_truncated {
        logging::emit("cmdline_error", |ev| {
            ev.str("option", "").str("reason", "command line longer than 4096 bytes was cut");
        });
    }
    log::info!(target: "memory", "{} MiB RAM, {} MiB free for allocation, {} KiB used by early tables",
        memory.ram_bytes >> 20,
        memory.free_bytes >> 20,
        memory.early_bytes >> 10
    );

    let tss = descriptor_tables::init_this_cpu().unwrap_or_else(|e| fail("boot CPU descriptor tables", e));
    let madt = match acpi_tables::discover(&DirectMapReader, boot.rsdp) {
        Ok(info) => {
            let names: Vec<&str> = info.tables.iter().map(|t| core::str::from_utf8(t).unwrap_or("?")).collect();
            log::info!(target: "acpi", "tables {names:?}, {} CPUs and {} I/O APICs in the MADT",
                info.madt.cpus.len(),
                info.madt.io_apics.len()
            );
            match info.power_off {
                Some(p) => crate::util::power::set_acpi_power_off(p),
                None => log::warn!(target: "acpi", "no FADT power-off information; ACPI power-off unavailable"),
            }
            info.madt
        }
        Err(e) => {
            log::error!(target: "acpi", "{e}; running on the boot CPU only");
            logging::emit("acpi_error", |ev| {
                ev.display("reason", &e);
            });
            Madt { local_apic_address: 0xfee0_0000, ..Madt::default() }
        }
    };

    io_apic::disable_legacy_pic();
    let apic_mode = local_apic::choose_mode(&features, madt.local_apic_address)
        .unwrap_or_else(|e| fail("local APIC", format_args!("{e:?}")));
    local_apic::init_this_cpu();
    let tsc_source = clock::calibrate(&features);
    clock::read_real_time_clock();
    entry::init_this_cpu();
    fpu_state::init_this_cpu();
    log::info!(target: "clock", "TSC {} MHz ({}), APIC timer {} kHz, {apic_mode}",
        clock::tsc_hz() / 1_000_000,
        tsc_source.name(),
        clock::apic_timer_hz() / 1000
    );

    let boot_stack = kernel_memory::boot_stack();
    let me = smp::init_boot_cpu(&madt, boot_stack).unwrap_or_else(|e| fail("per-CPU data", e));
    me.tss.store(tss, Ordering::Relaxed);
    match io_apic::init(&madt) {
        Ok(n) if n > 0 => {
            match io_apic::route_isa_irq(
                &madt,
                serial_console::COM1_IRQ,
                crate::hal::vectors::SERIAL_VECTOR,
                me.apic_id,
            ) {
                Some(_) => serial_console::enable_input_interrupts(),
                None => log::warn!(target: "io_apic", "no I/O APIC input for COM1: console input disabled"),
            }
        }
        Ok(_) => log::warn!(target: "io_apic", "no I/O APIC: console input disabled"),
        Err(e) => log::error!(target: "io_apic", "{e:?}"),
    }

    let trampoline_ram = boot
        .memmap()
        .iter()
        .any(|e| e.kind == crate::hal::memory_map::E820_RAM && e.addr <= 0x8000 && e.addr + e.size >= 0xc000);
    let smp = smp::start_application_processors(trampoline_ram, &features, cpus::ap_entry)
        .unwrap_or_else(|e| fail("starting CPUs", e));
    // Every started CPU must answer a cross-CPU call with its own APIC ID.
    let mut answering = 1;
    for c in per_cpu::all().iter().skip(1).filter(|c| c.online.load(Ordering::Acquire)) {
        match smp::call_on(c.index, 100_000_000, local_apic::id) {
            Ok(id) if id == c.apic_id => answering += 1,
            Ok(id) => log::error!(target: "smp", "cpu {} answered with APIC ID {id}, expected {}", c.index, c.apic_id),
            Err(e) => log::error!(target: "smp", "cpu {} did not answer a cross-CPU call: {e}", c.index),
        }
    }
    let (free, largest) = kernel_memory::frame_stats();
    logging::emit("boot", |e| {
        e.u64("cpus", answering)
            .u64("cpus_failed", smp.failed.len() as u64 + (smp.started as u64 + 1 - answering))
            .u64("mem_mib", memory.ram_bytes >> 20)
            .u64("free_mib", free >> 20)
            .u64("largest_block_mib", largest.map_or(0, |o| 4u64 << o >> 10))
            .str("apic", apic_mode)
            .u64("tsc_hz", clock::tsc_hz())
            .str("tsc_source", tsc_source.name())
            .bool("pages_1g", features.pages_1g)
            .u64("boot_us", clock::uptime_ns() / 1000);
    });

    match options.test {
        Some(SelfTest::PageFault) => {
            log::info!(target: "selftest", "test=pagefault: reading {:#x}", kernel_memory::UNMAPPED);
            let v = kernel_memory::read_unmapped();
            fail("test=pagefault", format_args!("read {v:#x} from an unmapped address"))
        }
        Some(SelfTest::Panic) => panic!("deliberate panic (test=panic)"),
        Some(SelfTest::Idle) => {
            log::info!(target: "selftest", "test=idle: all CPUs idle for 200 ms");
            clock::sleep_ns(200_000_000);
            shutdown(ExitStatus::Success)
        }
        None => {}
    }
    match files::init() {
        Ok(n) => log::info!(target: "files", "initrd: {n} entries"),
        Err(reason) => {
            log::error!(target: "files", "{reason}");
            logging::emit("initrd_error", |e| {
                e.str("reason", &reason);
            });
        }
    }
    // The node's enclaves (the manifest and the command line's job=/vm=); the last one to end
    // powers the node off unless then=console. Meanwhile the console takes commands.
    enclaves::install_hooks();
    let launched = enclaves::boot(&options);
    match options.then {
        Some(AfterBoot::Poweroff) if !launched => shutdown(ExitStatus::Success),
        _ => console_commands::run(),
    }
}
