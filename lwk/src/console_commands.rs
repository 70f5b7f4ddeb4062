//! The console after boot: a line editor on the serial port and a few commands. The boot CPU
//! halts between keystrokes (input arrives by interrupt).

use crate::power::{ExitStatus, shutdown};
use crate::{clock, cpu, kernel_memory, per_cpu, print, println, serial_console};
use alloc::string::String;
use core::sync::atomic::Ordering;

const HELP: &str = "commands:
  help      this list
  cpus      every CPU with its interrupt counts
  mem       free physical memory
  vms       exit statistics of the running VMs (vm_stats events)
  uptime    time since boot
  poweroff  power the machine off";

pub fn run() -> ! {
    println!("Manul is up. Type 'help' for commands.");
    print!("manul> ");
    let me = per_cpu::current();
    let mut line = String::new();
    loop {
        while let Some(b) = serial_console::read_input() {
            match b {
                b'\r' | b'\n' => {
                    println!();
                    execute(line.trim());
                    line.clear();
                    print!("manul> ");
                }
                0x08 | 0x7f if line.pop().is_some() => print!("\x08 \x08"),
                b if (b.is_ascii_graphic() || b == b' ') && line.len() < 256 => {
                    line.push(b as char);
                    print!("{}", b as char);
                }
                _ => {}
            }
        }
        me.halts.fetch_add(1, Ordering::Relaxed);
        cpu::wait_for_interrupt();
    }
}

fn execute(command: &str) {
    match command {
        "" => {}
        "help" => println!("{HELP}"),
        "cpus" => {
            println!("cpu  apic  online  timer  ipi  spurious  halts");
            for c in per_cpu::all() {
                println!(
                    "{:3}  {:4}  {:6}  {:5}  {:3}  {:8}  {:5}",
                    c.index,
                    c.apic_id,
                    c.online.load(Ordering::Relaxed),
                    c.timer_interrupts.load(Ordering::Relaxed),
                    c.cross_call_interrupts.load(Ordering::Relaxed),
                    c.spurious_interrupts.load(Ordering::Relaxed),
                    c.halts.load(Ordering::Relaxed)
                );
            }
        }
        "mem" => {
            let (free, largest) = kernel_memory::frame_stats();
            println!("free: {} MiB, largest contiguous block: {} KiB", free >> 20, largest.map_or(0, |o| 4u64 << o));
        }
        "uptime" => {
            let ns = clock::uptime_ns();
            println!("{}.{:03} s", ns / 1_000_000_000, ns / 1_000_000 % 1000);
        }
        "vms" => {
            if crate::vms::report() == 0 {
                println!("no VM is running");
            }
        }
        "poweroff" => shutdown(ExitStatus::Success),
        other => println!("unknown command '{other}'; try 'help'"),
    }
}
