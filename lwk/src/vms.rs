//! Virtual machines on the LWK: the VMM's host interface over the kernel's memory and cores, and
//! launching the VMs the command line names, one vCPU per dedicated core, with `vm_launch` and
//! `vm_exit` events. A VM's end (power-off, crash, an exit the VMM cannot handle) stops only that
//! VM; its memory goes back to the kernel and its cores to idle.

use crate::interrupt_entry::RESCHEDULE_VECTOR;
use crate::kernel_memory::{self, phys_to_virt};
use crate::{clock, cpu, files, jobs, local_apic, logging, per_cpu, serial_console};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use embedded_vmm::{HostBlock, LogLevel, Vm, VmConfig, VmEnd, VmmHost};
use lwk::cmdline::Options;
use lwk::ram_fs::{Lookup, ROOT};
use lwk::vm_options::VmSpec;

const DEFAULT_MEMORY: u64 = 256 << 20;

/// The VMs running now (for the console's `vms` command).
static RUNNING: spin::Mutex<Vec<Arc<Vm>>> = spin::Mutex::new(Vec::new());

/// The LWK as the VMM's host.
struct LwkHost;

static HOST: LwkHost = LwkHost;

impl VmmHost for LwkHost {
    fn alloc_contiguous(&self, bytes: u64, align: u64) -> Option<HostBlock> {
        let phys = kernel_memory::alloc_frames(bytes, align).ok()?;
        let bytes = bytes.next_multiple_of(4096);
        // SAFETY: the frames were just allocated for the VMM and are mapped in the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, bytes as usize) };
        Some(HostBlock { phys, bytes })
    }

    fn free_contiguous(&self, block: HostBlock) {
        if let Err(e) = kernel_memory::free_frames(block.phys, block.bytes) {
            log::error!(target: "vms", "freeing VMM memory {:#x}+{:#x}: {e:?}", block.phys, block.bytes);
        }
    }

    fn phys_to_virt(&self, phys: u64) -> *mut u8 {
        phys_to_virt(phys) as *mut u8
    }

    fn tsc_hz(&self) -> u64 {
        clock::tsc_hz()
    }

    fn now_ns(&self) -> u64 {
        clock::uptime_ns()
    }

    fn unix_time_ns(&self) -> u64 {
        clock::realtime_ns()
    }

    fn set_wakeup(&self, at_ns: Option<u64>) {
        match at_ns {
            Some(t) => {
                let ns = t.saturating_sub(clock::uptime_ns()).max(1000);
                let ticks = (ns as u128 * clock::apic_timer_hz() as u128 / 1_000_000_000).clamp(1, u32::MAX as u128);
                local_apic::start_timer(ticks as u32);
            }
            None => local_apic::stop_timer(),
        }
    }

    fn kick_cpu(&self, cpu: usize) {
        if let Some(c) = per_cpu::all().get(cpu) {
            local_apic::send_ipi(c.apic_id, RESCHEDULE_VECTOR);
        }
    }

    fn wait_for_event(&self, until_ns: Option<u64>, woken: &AtomicBool) {
        // Any interrupt ends the wait: the timer at `until_ns`, or a kick from another vCPU (whose
        // flag, set before the kick, is checked with interrupts off: `sti; hlt` then cannot miss it).
        cpu::without_interrupts(|| {
            if woken.load(Ordering::SeqCst) {
                return;
            }
            if let Some(t) = until_ns {
                self.set_wakeup(Some(t));
            }
            per_cpu::current().halts.fetch_add(1, Ordering::Relaxed);
            cpu::wait_for_interrupt();
        });
    }

    fn log(&self, level: LogLevel, args: fmt::Arguments) {
        let level = match level {
            LogLevel::Error => log::Level::Error,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Info => log::Level::Info,
            LogLevel::Debug => log::Level::Debug,
        };
        log::log!(target: "vmm", level, "{args}");
    }

    fn console_output(&self, vm: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        serial_console::with_console_line(|c| {
            let _ = write!(c, "[vm {vm}] {}", text.trim_end_matches(['\r', '\n']));
            let _ = c.write_str("\n");
        });
    }
}

/// Guest memory a VM will take (what it asks for, or the default).
pub fn memory_of(spec: &VmSpec) -> u64 {
    spec.mem.unwrap_or(DEFAULT_MEMORY)
}

/// The cores each VM will use: those it names, else one free core (the highest free one), never
/// one a job names. Returns the plan and every core it takes.
pub fn plan(options: &Options) -> (Vec<Result<Vec<usize>, String>>, Vec<usize>) {
    let online = jobs::application_cores();
    let mut taken: Vec<usize> = options.jobs.iter().filter_map(|j| j.cores.clone()).flatten().collect();
    taken.extend(options.vms.iter().filter_map(|v| v.cores.clone()).flatten());
    let mut reserved = Vec::new();
    let plans = options
        .vms
        .iter()
        .map(|v| {
            let cores = match &v.cores {
                Some(c) => {
                    if let Some(bad) = c.iter().find(|x| !online.contains(x)) {
                        return Err(alloc::format!("core {bad} is not an online application core"));
                    }
                    c.clone()
                }
                None => {
                    let free = online.iter().rev().find(|c| !taken.contains(c)).ok_or("no free core left for this VM")?;
                    taken.push(*free);
                    alloc::vec![*free]
                }
            };
            reserved.extend(&cores);
            Ok(cores)
        })
        .collect();
    (plans, reserved)
}

/// Launches every VM of the command line on its planned cores. The caller holds a
/// `jobs::begin_work` for the launch.
pub fn launch_all(options: &Options, plans: Vec<Result<Vec<usize>, String>>) {
    for (spec, plan) in options.vms.iter().zip(plans) {
        if let Err(reason) = plan.and_then(|cores| launch(spec, cores)) {
            log::error!(target: "vms", "vm {}: {reason}", spec.name);
            logging::emit("vm_error", |e| {
                e.str("vm", &spec.name).str("reason", &reason);
            });
            jobs::begin_work();
            jobs::end_work(false);
        }
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    files::read_program(&Lookup { cwd: ROOT, exe: "" }, path).map_err(|e| alloc::format!("{path}: {e}"))
}

fn launch(spec: &VmSpec, cores: Vec<usize>) -> Result<(), String> {
    let kernel = read(&spec.kernel)?;
    let initrd = spec.initrd.as_deref().map(read).transpose()?;
    let config = VmConfig {
        name: &spec.name,
        memory_bytes: memory_of(spec),
        vcpus: cores.len(),
        kernel: &kernel,
        initrd: initrd.as_deref(),
        cmdline: &spec.cmdline,
    };
    let started = clock::uptime_ns();
    let vm = Arc::new(Vm::new(&HOST, &config).map_err(|e| alloc::format!("{e}"))?);
    drop(kernel);
    drop(initrd);
    logging::emit("vm_launch", |e| {
        e.str("vm", &spec.name)
            .str("kernel", &spec.kernel)
            .display("cores", format_args!("{cores:?}"))
            .u64("mem_mib", vm.guest_memory_bytes() >> 20)
            .u64("vcpus", vm.vcpus() as u64);
    });
    jobs::begin_work();
    RUNNING.lock().push(vm.clone());
    // The last vCPU to leave reports the end and frees the VM (its memory goes back only once
    // no vCPU holds it).
    let inside = Arc::new(AtomicUsize::new(cores.len()));
    for (index, &core) in cores.iter().enumerate() {
        let (vm, inside) = (vm.clone(), inside.clone());
        let work: Box<dyn FnOnce() + Send> = Box::new(move || run_vcpu(vm, index, core, started, &inside));
        let Some(target) = per_cpu::all().get(core) else { continue };
        *target.vcpu_work.lock() = Some(work);
        local_apic::send_ipi(target.apic_id, RESCHEDULE_VECTOR);
    }
    Ok(())
}

/// Runs one vCPU on this core until the VM ends; the last vCPU out reports the end.
fn run_vcpu(vm: Arc<Vm>, index: usize, core: usize, started: u64, inside: &AtomicUsize) {
    let end = vm.run_vcpu(index, core);
    if inside.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    vm.flush_console();
    let stats = vm.stats().rows();
    let total: u64 = stats.iter().map(|(_, c)| c.count).sum();
    let wall = clock::uptime_ns().saturating_sub(started);
    log::info!(target: "vms", "vm {}: ended: {end} ({})", vm.name, vm.summary());
    logging::emit("vm_exit", |e| {
        e.str("vm", &vm.name).str("reason", end.name()).display("detail", &end).u64("wall_ms", wall / 1_000_000).u64("exits", total);
        for (reason, c) in &stats {
            e.u64(&alloc::format!("exits_{reason}"), c.count);
            e.u64(&alloc::format!("cycles_{reason}"), c.cycles);
        }
    });
    let powered_off = end == VmEnd::PowerOff;
    RUNNING.lock().retain(|v| !Arc::ptr_eq(v, &vm));
    drop(vm);
    jobs::end_work(powered_off);
}

/// Exit statistics of every running VM, as `vm_stats` events (the console's `vms` command).
pub fn report() -> usize {
    let vms = RUNNING.lock().clone();
    for vm in &vms {
        let stats = vm.stats().rows();
        let total: u64 = stats.iter().map(|(_, c)| c.count).sum();
        logging::emit("vm_stats", |e| {
            e.str("vm", &vm.name).u64("vcpus", vm.vcpus() as u64).u64("exits", total);
            for (reason, c) in &stats {
                e.u64(&alloc::format!("exits_{reason}"), c.count);
                e.u64(&alloc::format!("cycles_{reason}"), c.cycles);
            }
        });
    }
    vms.len()
}

/// Whether a vCPU is waiting to start on this core (the idle loop runs it).
pub fn take_work() -> Option<Box<dyn FnOnce() + Send>> {
    per_cpu::current().vcpu_work.lock().take()
}

/// Interrupts on while a vCPU runs on this core's idle context.
pub fn run_work(work: Box<dyn FnOnce() + Send>) {
    cpu::enable_interrupts();
    work();
    cpu::disable_interrupts();
}
