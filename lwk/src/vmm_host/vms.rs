//! Virtual machines on the LWK: the VMM's host interface over the kernel's memory and cores, and
//! VM enclaves, one vCPU per dedicated core, with `vm_launch` and `vm_exit` events. A VM's end
//! (power-off, crash, an exit the VMM cannot handle, an operator's stop) stops only that VM; its
//! memory goes back to the kernel, its cores to idle, and the control plane (`enclaves`) learns
//! how it ended.

use crate::hal::fpu_state;
use crate::hal::kernel_memory::{self, phys_to_virt};
use crate::hal::vectors::RESCHEDULE_VECTOR;
use crate::util::event::Event;
use crate::util::hook::Hook;
use crate::{
    fs::files, hal::cpu, hal::kernel_heap, hal::local_apic, task::per_cpu, time::clock, util::logging,
    util::serial_console,
};
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use embedded_vmm::{HostBlock, LogLevel, SharedRegion, Vm, VmConfig, VmEnd, VmmHost};
use enclave::{Account, Charge};

/// What runs when a VM has ended (its enclave's end): the control plane's.
pub static VM_ENDED: Hook<fn(&str, VmEnd)> = Hook::new();

/// The LWK as the VMM's host.
struct LwkHost;

static HOST: LwkHost = LwkHost;

/// A VM's UART holds a line for the console: core 0 writes it (the control plane's housekeeping), so
/// that the guest's vCPU goes on meanwhile.
static CONSOLE_WAITING: AtomicBool = AtomicBool::new(false);

/// Whether a VM's console line waits for core 0 (the flag is cleared: core 0 writes them all).
pub fn take_console_waiting() -> bool {
    CONSOLE_WAITING.swap(false, Ordering::SeqCst)
}

/// Whether a VM's console line waits for core 0.
pub fn console_waiting() -> bool {
    CONSOLE_WAITING.load(Ordering::SeqCst)
}

impl VmmHost for LwkHost {
    fn alloc_contiguous(&self, bytes: u64, align: u64) -> Option<HostBlock> {
        let phys = kernel_memory::alloc_zeroed_frames(bytes, align).ok()?;
        Some(HostBlock { phys, bytes: bytes.next_multiple_of(4096) })
    }

    fn free_contiguous(&self, block: HostBlock) {
        // Guest RAM, nested page tables, VMCBs: whatever a VM held is scrubbed before reuse.
        if let Err(e) = kernel_memory::scrub_and_free(block.phys, block.bytes) {
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

    fn unix_time_ns_at(&self, now_ns: u64) -> u64 {
        clock::realtime_ns_at(now_ns)
    }

    fn set_wakeup(&self, at_ns: Option<u64>) {
        clock::arm_timer_at(at_ns, clock::uptime_ns);
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

    fn console_waiting(&self) {
        CONSOLE_WAITING.store(true, Ordering::SeqCst);
        if let Some(control) = per_cpu::all().first() {
            local_apic::send_ipi(control.apic_id, RESCHEDULE_VECTOR);
        }
    }

    fn console_output(&self, vm: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        serial_console::with_console_line(|c| {
            let _ = write!(c, "[vm {vm}] {}", text.trim_end_matches(['\r', '\n']));
            let _ = c.write_str("\n");
        });
    }
}

/// What a VM enclave runs and on what: one vCPU per core of its partition.
pub struct VmLaunch<'a> {
    pub name: &'a str,
    pub kernel: &'a str,
    pub initrd: Option<&'a str>,
    pub cmdline: &'a str,
    pub cores: Vec<usize>,
    pub memory: u64,
    /// Segments granted to it, in PCI slot order (their addresses are on `cmdline`).
    pub shared: Vec<SharedRegion>,
    /// Its kernel-memory budget: what the VMM keeps for it (state, devices, control pages,
    /// nested page tables) must fit.
    pub kernel_memory: u64,
}

/// A VM built and loaded: [`PreparedVm::start`] sends its vCPUs to their cores.
pub struct PreparedVm {
    vm: Arc<Vm>,
    cores: Vec<usize>,
    kernel: String,
    /// When the launch was asked for (before the files were read), and when the VM was built.
    requested: u64,
    started: u64,
    /// Reading the kernel and initrd; building the VM (memory, tables, devices, loading).
    read_ns: u64,
    build_ns: u64,
    /// What the kernel heap kept for the VM (its state and devices; guest RAM, nested page
    /// tables and control pages come from frames, counted apart).
    heap_bytes: u64,
    /// What the VMM keeps for it, charged to its kernel-memory account.
    charge: Charge,
}

/// An image in the initrd, as the archive holds it (never copied).
fn read(path: &str) -> Result<&'static [u8], String> {
    files::initrd_file(path).map_err(|e| alloc::format!("{path}: {e}"))
}

/// Reads the kernel and initrd, builds the VM (guest memory, tables, devices) and loads the guest.
pub fn prepare(launch: VmLaunch) -> Result<PreparedVm, String> {
    let requested = clock::uptime_ns();
    let kernel = read(launch.kernel)?;
    let initrd = launch.initrd.map(read).transpose()?;
    let read_ns = clock::uptime_ns().saturating_sub(requested);
    let config = VmConfig {
        name: launch.name,
        memory_bytes: launch.memory,
        vcpus: launch.cores.len(),
        kernel,
        initrd,
        cmdline: launch.cmdline,
        shared: &launch.shared,
    };
    let started = clock::uptime_ns();
    let heap_before = kernel_heap::bytes_in_use();
    let vm = Arc::new(Vm::new(&HOST, &config).map_err(|e| alloc::format!("{e}"))?);
    let heap_bytes = kernel_heap::bytes_in_use().saturating_sub(heap_before);
    let build_ns = clock::uptime_ns().saturating_sub(started);
    // The VMM's structures for the VM are sized by its configuration (vCPUs, memory, devices):
    // charged once built; a VM whose structures pass its budget is not started.
    let account = Arc::new(Account::new(launch.kernel_memory));
    let vmm_bytes = heap_bytes + vm.control_page_bytes() + vm.nested_table_bytes();
    let charge = Charge::new(&account, vmm_bytes).map_err(|e| {
        alloc::format!(
            "the VMM's structures for it ({} KiB) do not fit in its kernel-memory budget: {e}",
            vmm_bytes >> 10
        )
    })?;
    let kernel = launch.kernel.to_string();
    Ok(PreparedVm { vm, cores: launch.cores, kernel, requested, started, read_ns, build_ns, heap_bytes, charge })
}

impl PreparedVm {
    pub fn vm(&self) -> &Arc<Vm> {
        &self.vm
    }

    /// Its kernel-memory account.
    pub fn account(&self) -> &Arc<Account> {
        self.charge.account()
    }

    /// Reports the launch and starts one vCPU on each core.
    pub fn start(self) {
        let PreparedVm { vm, cores, kernel, requested, started, read_ns, build_ns, heap_bytes, charge } = self;
        logging::emit("vm_launch", |e| {
            e.str("vm", &vm.name)
                .str("kernel", &kernel)
                .display("cores", format_args!("{cores:?}"))
                .u64("mem_mib", vm.guest_memory_bytes() >> 20)
                .u64("vcpus", vm.vcpus() as u64)
                .u64("read_ns", read_ns)
                .u64("build_ns", build_ns)
                .u64("vmm_heap_bytes", heap_bytes)
                .u64("vmm_page_bytes", vm.control_page_bytes())
                .u64("kernel_memory_kib", charge.account().limit() >> 10)
                .u64("kmem_used_kib", charge.bytes() >> 10)
                .u64("nested_table_bytes", vm.nested_table_bytes());
        });
        let first_entry = Arc::new(AtomicU64::new(0));
        // The last vCPU to leave reports the end and frees the VM (its memory goes back only
        // once no vCPU holds it).
        let inside = Arc::new(AtomicUsize::new(cores.len()));
        // The charge goes back when the last vCPU has left (with the VM's memory).
        let charge = Arc::new(charge);
        for (index, &core) in cores.iter().enumerate() {
            let (vm, inside, first_entry, charge) = (vm.clone(), inside.clone(), first_entry.clone(), charge.clone());
            let work: Box<dyn FnOnce() + Send> = Box::new(move || {
                run_vcpu(vm, index, core, (requested, started), &inside, &first_entry);
                drop(charge);
            });
            let Some(target) = per_cpu::all().get(core) else { continue };
            *target.vcpu_work.lock() = Some(work);
            local_apic::send_ipi(target.apic_id, RESCHEDULE_VECTOR);
        }
    }
}

/// Runs one vCPU on this core until the VM ends; the last vCPU out reports the end, with the
/// time from the launch's request to the first vCPU's entering (`first_entry_ns`).
fn run_vcpu(
    vm: Arc<Vm>,
    index: usize,
    core: usize,
    (requested, started): (u64, u64),
    inside: &AtomicUsize,
    first_entry: &AtomicU64,
) {
    if index == 0 {
        first_entry.store(clock::uptime_ns().saturating_sub(requested), Ordering::Relaxed);
    }
    // The guest starts from the floating-point state of a reset CPU and zero debug addresses,
    // not from whatever the core's last owner (a job, another VM) left in its registers.
    fpu_state::load_reset_state();
    cpu::clear_debug_addresses();
    let end = vm.run_vcpu(index, core);
    if inside.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    vm.flush_console();
    let wall = clock::uptime_ns().saturating_sub(started);
    log::info!(target: "vms", "vm {}: ended: {end} ({})", vm.name, vm.summary());
    logging::emit("vm_exit", |e| {
        e.str("vm", &vm.name)
            .str("reason", end.name())
            .display("detail", &end)
            .u64("wall_ms", wall / 1_000_000)
            .u64("first_entry_ns", first_entry.load(Ordering::Relaxed));
        counters(e, &vm);
    });
    let name = vm.name.clone();
    // The control plane holds the other reference; the VM's memory goes back when both are gone.
    drop(vm);
    if let Some(ended) = VM_ENDED.get() {
        ended(&name, end);
    }
}

/// Exit statistics of a running VM, as a `vm_stats` event (the console's `stats`).
pub fn report(vm: &Vm) {
    logging::emit("vm_stats", |e| {
        e.str("vm", &vm.name).u64("vcpus", vm.vcpus() as u64).u64("vcpus_held", vm.vcpus_held() as u64);
        counters(e, vm);
    });
}

/// A VM's counters, the same in `vm_exit` and `vm_stats`: heartbeats, console bytes written and
/// refused, exits in all and per reason with the VMM's cycles for each.
fn counters(e: &mut Event<&mut dyn core::fmt::Write>, vm: &Vm) {
    let stats = vm.stats().rows();
    let (bytes, refused) = vm.console_counts();
    e.u64("heartbeats", vm.heartbeats().0)
        .u64("console_bytes", bytes)
        .u64("console_refused", refused)
        .u64("exits", stats.iter().map(|(_, c)| c.count).sum());
    for (reason, c) in &stats {
        e.u64(&alloc::format!("exits_{reason}"), c.count);
        e.u64(&alloc::format!("cycles_{reason}"), c.cycles);
    }
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
