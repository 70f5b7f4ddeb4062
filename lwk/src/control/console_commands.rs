//! The console after boot, on core 0: a line editor on the serial port, the node's commands and
//! the enclave control plane's (`enclaves`). Each enclave command answers in text and with a
//! matching `@manul` event. The boot CPU halts between keystrokes (input arrives by interrupt).

use crate::util::power::{ExitStatus, shutdown};
use crate::{
    control::enclaves, hal::cpu, hal::kernel_memory, print, println, task::per_cpu, time::clock, util::logging,
    util::serial_console,
};
use alloc::string::String;
use core::sync::atomic::Ordering;

/// Longest command line (a `create` with a guest command line needs room).
const MAX_LINE: usize = 1024;

const HELP: &str = "enclaves:
  list                      every enclave: kind, state, cores, memory, isolation
  show NAME                 its manifest section, state and partition
  create NAME key=value...  a new enclave, keys as in a manifest section, e.g.
                            create viz kind=vm kernel=/boot/vmlinux cores=3 memory=256M
                            (quote values with spaces: cmdline=\"console=ttyS0 quiet\")
  launch NAME               start it (again) on its cores and memory
  pause NAME                stop it where it is: a VM's vCPUs leave the guest, a job's threads
                            stop on their way to user mode (enclave_paused)
  resume NAME               let it go on
  stop NAME                 end it: a job's processes are killed, a VM's vCPUs stopped
  destroy NAME              forget an ended enclave and free its cores and memory
  stats [NAME]              VM exits per reason and job CPU time (vm_stats, job_stats)
node:
  help      this list
  cpus      every CPU with its interrupt counts
  mem       free physical memory
  uptime    time since boot
  health    check that every core answers and how much memory is free (node_health)
  poweroff  power the machine off";

pub fn run() -> ! {
    println!("Manul is up. Type 'help' for commands.");
    print!("manul> ");
    let me = per_cpu::current();
    let mut line = String::new();
    loop {
        enclaves::housekeeping();
        enclaves::check_health();
        while let Some(b) = serial_console::read_input() {
            match b {
                b'\r' | b'\n' => {
                    println!();
                    execute(line.trim());
                    line.clear();
                    print!("manul> ");
                }
                0x08 | 0x7f if line.pop().is_some() => print!("\x08 \x08"),
                b if (b.is_ascii_graphic() || b == b' ') && line.len() < MAX_LINE => {
                    line.push(b as char);
                    print!("{}", b as char);
                }
                _ => {}
            }
        }
        // Checked with interrupts off, so that work queued just before the halt is not missed
        // (the halt takes the interrupt that queued it as its wake-up).
        cpu::without_interrupts(|| {
            if !enclaves::housekeeping_pending() && !serial_console::input_pending() {
                me.halts.fetch_add(1, Ordering::Relaxed);
                cpu::wait_for_interrupt();
            }
        });
    }
}

/// Reports the answer of an enclave command: its text, or the refusal as text and a
/// `command_error` event.
fn answer(command: &str, result: Result<String, String>) {
    match result {
        Ok(text) if text.is_empty() => {}
        Ok(text) => println!("{}", text.trim_end()),
        Err(reason) => {
            println!("{command}: {reason}");
            logging::emit("command_error", |e| {
                e.str("command", command).str("reason", &reason);
            });
        }
    }
}

/// The enclave commands; `false` if `command` is not one.
fn enclave_command(command: &str) -> bool {
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    let name =
        || if rest.is_empty() || rest.contains(' ') { Err(String::from("expects one enclave name")) } else { Ok(rest) };
    let result = match verb {
        "list" => {
            let lines = enclaves::list();
            Ok(if lines.is_empty() { String::from("no enclave") } else { lines.join("\n") })
        }
        "show" => name().and_then(enclaves::show),
        "launch" => name().and_then(|n| enclaves::launch(n).map(|()| String::new())),
        "stop" => name().and_then(|n| enclaves::stop(n).map(|()| alloc::format!("stopping {n}"))),
        "pause" => name().and_then(enclaves::pause),
        "resume" => name().and_then(|n| enclaves::resume(n).map(|()| String::new())),
        "destroy" => name().and_then(|n| enclaves::destroy(n).map(|()| String::new())),
        "create" => crate::control::cmdline::split_words(rest).and_then(|words| match words.split_first() {
            Some(((n, None), settings)) => enclaves::create(n, settings).map(|()| String::new()),
            _ => Err(String::from("expects a name, then key=value settings")),
        }),
        "stats" => {
            let only = (!rest.is_empty()).then_some(rest);
            match enclaves::stats(only) {
                0 => Ok(String::from(if only.is_some() {
                    "that enclave is not running"
                } else {
                    "no enclave is running"
                })),
                _ => Ok(String::new()),
            }
        }
        _ => return false,
    };
    answer(verb, result);
    true
}

fn execute(command: &str) {
    if enclave_command(command) {
        return;
    }
    match command {
        "" => {}
        "help" => {
            println!("{HELP}");
            logging::emit("help", |e| {
                e.u64("commands", HELP.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ")).count() as u64);
            });
        }
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
        "health" => {
            crate::control::enclaves::health();
        }
        "poweroff" => shutdown(ExitStatus::Success),
        other => println!("unknown command '{other}'; try 'help'"),
    }
}
