//! A vCPU's life on its physical CPU: waiting for INIT and SIPI (an application processor),
//! then the run loop: interrupts injected, VMRUN, the exit decoded and handled, until the VM
//! ends. Its states besides running: held outside the guest while the VM is paused, halted
//! until an interrupt is due (HLT), parked for good (HLT with interrupts off).

use crate::end::VmEnd;
use crate::exits::{self, Context, CpuState, Exit, UD, inject_exception};
use crate::host::LogLevel;
use crate::irq::{ApStart, close_interrupt_window};
use crate::loaders::Boot;
use crate::svm::bits::RFLAGS_IF;
use crate::svm::cpu::{GuestRegisters, SvmCpu, rdtsc, xgetbv, xsetbv};
use crate::svm::state::{self, Entry, VmTables};
use crate::svm::vmcb::{Event, TLB_FLUSH_NOTHING, Vmcb};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The longest a waiting vCPU sleeps before it looks again for a stop or console input.
const WAIT_SLICE_NS: u64 = 10_000_000;
/// How long a line the guest's UART holds may wait for the host (which writes it from a CPU of
/// its own, [`crate::VmmHost::console_waiting`]) before a vCPU of the VM writes it itself: the
/// host's CPU may be busy (building another VM), and a guest's kernel polls its UART with a
/// timeout.
pub const CONSOLE_HELP_AFTER_NS: u64 = 1_000_000;
/// HLT is f4.
const HLT_LENGTH: u64 = 1;
/// INVD is 0f 08.
const INVD_LENGTH: u64 = 2;

/// What the vCPUs of a VM share besides the exits' state: the pause, and who stopped.
#[derive(Debug, Default)]
pub struct Gate {
    /// The host asked the vCPUs to stay out of the guest.
    pub paused: AtomicBool,
    /// vCPUs waiting outside the guest because of the pause.
    pub held: AtomicUsize,
    /// vCPUs stopped by HLT with interrupts off.
    pub parked: AtomicUsize,
}

/// How a VM's vCPUs start: the boot vCPU's entry, and the tables every VMCB points at.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    pub boot: Boot,
    pub tables: VmTables,
}

/// Runs vCPU `index` on the calling physical CPU (`host_cpu`, for kicks) until the VM ends;
/// returns why it ended.
pub fn run(ctx: &Context, gate: &Gate, start: &Start, index: usize, host_cpu: usize) -> VmEnd {
    let irq = &ctx.vm.irq;
    if !irq.place(index, host_cpu) {
        return VmEnd::VmmError(String::from("no such vCPU"));
    }
    // Application processors wait for INIT and SIPI from the boot processor's APIC.
    let sipi = loop {
        if let Some(end) = ctx.end_reason() {
            return end;
        }
        irq.kicked[index].store(false, Ordering::SeqCst);
        if let ApStart::Start(vector) = *irq.start[index].lock() {
            break vector;
        }
        ctx.host.wait_for_event(Some(ctx.host.now_ns() + 1_000_000), &irq.kicked[index]);
    };
    let mut cpu = match SvmCpu::enable(ctx.host) {
        Ok(cpu) => cpu,
        Err(why) => {
            ctx.stop(VmEnd::VmmError(String::from(why)));
            return ctx.end_reason().unwrap_or(VmEnd::Halted);
        }
    };
    let mut regs = GuestRegisters::default();
    let entry = if index == 0 {
        (regs.rbx, regs.rsi) = (start.boot.rbx, start.boot.rsi);
        start.boot.entry
    } else {
        Entry::RealMode { vector: sipi }
    };
    state::initial(cpu.vmcb(), entry, start.tables);
    let mut state = CpuState::new(index, xgetbv());
    let end = run_loop(ctx, gate, &mut cpu, &mut regs, &mut state);
    ctx.host.set_wakeup(None);
    if xgetbv() != state.host_xcr0 {
        xsetbv(state.host_xcr0, state.host_xcr0);
    }
    end
}

fn run_loop(ctx: &Context, gate: &Gate, cpu: &mut SvmCpu, regs: &mut GuestRegisters, state: &mut CpuState) -> VmEnd {
    let index = state.index as usize;
    loop {
        if let Some(end) = ctx.end_reason() {
            return end;
        }
        if gate.paused.load(Ordering::SeqCst) {
            hold(ctx, gate, index);
            continue;
        }
        before_entry(ctx, cpu.vmcb(), index);
        cpu.run(regs);
        let started = rdtsc();
        let v = cpu.vmcb();
        v.control.tlb_control = TLB_FLUSH_NOTHING;
        let exit = exits::decode(v);
        if exit == Exit::Invalid {
            ctx.stop(VmEnd::VmmError(String::from("VMRUN refused the guest state (VMEXIT_INVALID)")));
            continue;
        }
        // An event the CPU was delivering when the exit came is delivered again.
        let pending = v.control.exit_int_info;
        if pending.contains(Event::VALID) {
            v.control.event_injection = pending;
        }
        if let Some(end) = handle(ctx, gate, v, regs, state, exit) {
            ctx.stop(end);
        }
        ctx.vm.stats.lock().record(v.control.exit_code, rdtsc().wrapping_sub(started));
    }
}

/// Before each VMRUN: the console's line goes out if the host is late with it, the devices'
/// interrupt lines are brought up to date and routed, and the router injects what is due.
#[inline(always)]
fn before_entry(ctx: &Context, v: &mut Vmcb, index: usize) {
    let now = ctx.host.now_ns();
    let (messages, late) = {
        let mut d = ctx.vm.devices.lock();
        let late = d.com1.held_since().is_some_and(|t| now.saturating_sub(t) >= CONSOLE_HELP_AFTER_NS);
        (d.update_lines(now), late)
    };
    if late {
        ctx.transmit_console();
    }
    ctx.vm.irq.deliver(messages, index);
    ctx.vm.irq.inject(v, index, &ctx.vm.devices, now);
}

/// Handles one exit; `Some` ends the VM.
#[inline(always)]
fn handle(
    ctx: &Context,
    gate: &Gate,
    v: &mut Vmcb,
    regs: &mut GuestRegisters,
    state: &mut CpuState,
    exit: Exit,
) -> Option<VmEnd> {
    let index = state.index as usize;
    match exit {
        Exit::Host => None, // the host takes it after STGI
        Exit::InterruptWindow => {
            close_interrupt_window(v);
            None
        }
        Exit::Io(access) => exits::io::handle(ctx, v, regs, access),
        Exit::Hlt => {
            v.save.rip += HLT_LENGTH;
            if v.save.rflags & RFLAGS_IF == 0 {
                return park(ctx, gate, index);
            }
            halt(ctx, v, index);
            None
        }
        Exit::Shutdown => {
            ctx.log(
                LogLevel::Info,
                format_args!(
                    "vcpu {index} triple fault at {:#x}:{:#x} (cr0 {:#x}, efer {:#x})",
                    v.save.cs.selector, v.save.rip, v.save.cr0, v.save.efer
                ),
            );
            Some(VmEnd::TripleFault)
        }
        Exit::Cpuid => {
            exits::cpuid::handle(ctx, v, regs, state);
            None
        }
        Exit::Msr { write } => {
            exits::msr::handle(ctx, v, regs, state, write);
            None
        }
        Exit::Xsetbv => {
            exits::xsetbv::handle(v, regs, state);
            None
        }
        Exit::Vmmcall => {
            exits::hypercall::handle(ctx, v);
            None
        }
        Exit::Undefined => {
            inject_exception(v, UD, None);
            None
        }
        Exit::Invd => {
            v.save.rip += INVD_LENGTH;
            None
        }
        Exit::Npf { gpa } => exits::npf::handle(ctx, v, regs, index, gpa),
        Exit::Invalid | Exit::Unhandled => Some(VmEnd::unhandled(v)),
    }
}

/// HLT with interrupts off: this vCPU stops for good (only an NMI could wake it, which the VMM
/// then delivers). When every vCPU has stopped, the VM has halted.
fn park(ctx: &Context, gate: &Gate, index: usize) -> Option<VmEnd> {
    let irq = &ctx.vm.irq;
    if gate.parked.fetch_add(1, Ordering::SeqCst) + 1 == irq.vcpus() {
        return Some(VmEnd::Halted);
    }
    loop {
        if let Some(end) = ctx.end_reason() {
            return Some(end);
        }
        irq.kicked[index].store(false, Ordering::SeqCst);
        if irq.nmi[index].load(Ordering::SeqCst) {
            gate.parked.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        ctx.host.wait_for_event(Some(ctx.host.now_ns() + WAIT_SLICE_NS), &irq.kicked[index]);
    }
}

/// Waits outside the guest while the VM is paused (and not ended), halting the physical CPU
/// between kicks.
fn hold(ctx: &Context, gate: &Gate, index: usize) {
    let kicked = &ctx.vm.irq.kicked[index];
    gate.held.fetch_add(1, Ordering::SeqCst);
    ctx.host.set_wakeup(None);
    loop {
        kicked.store(false, Ordering::SeqCst);
        if !gate.paused.load(Ordering::SeqCst) || ctx.end_reason().is_some() {
            break;
        }
        ctx.host.wait_for_event(Some(ctx.host.now_ns() + WAIT_SLICE_NS), kicked);
    }
    gate.held.fetch_sub(1, Ordering::SeqCst);
}

/// HLT with interrupts on: wait until an interrupt is due (a device event, or anything the host
/// sees), without spinning.
fn halt(ctx: &Context, v: &Vmcb, index: usize) {
    let irq = &ctx.vm.irq;
    irq.kicked[index].store(false, Ordering::SeqCst);
    let now = ctx.host.now_ns();
    let messages = ctx.vm.devices.lock().update_lines(now);
    irq.deliver(messages, index);
    // Wake at the next device or timer event, and at least every WAIT_SLICE_NS anyway (console
    // input, a stop request from another vCPU, a guest deadline far away).
    if let Some(next) = irq.next_wake(v, index, &ctx.vm.devices, now) {
        let until = next.map_or(now + WAIT_SLICE_NS, |at| at.min(now + WAIT_SLICE_NS));
        ctx.host.wait_for_event(Some(until), &irq.kicked[index]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::test_support::TestVm;
    use crate::svm::vmcb::{InterceptMisc1, exit};

    fn handled(vm: &TestVm, v: &mut Vmcb, code: u64) -> Option<VmEnd> {
        v.control.exit_code = code;
        let (gate, mut regs, mut state) = (Gate::default(), GuestRegisters::default(), CpuState::new(0, 0));
        handle(&vm.context(), &gate, v, &mut regs, &mut state, exits::decode(v))
    }

    #[test]
    fn exits_of_the_run_loop_itself() {
        let vm = TestVm::new(1);
        let mut v = Vmcb::zeroed();
        v.control.intercept_misc1 = InterceptMisc1::VINTR | InterceptMisc1::CPUID;
        assert_eq!(handled(&vm, &mut v, exit::VINTR), None);
        assert_eq!(v.control.intercept_misc1, InterceptMisc1::CPUID, "the window is closed");
        assert_eq!(handled(&vm, &mut v, exit::INVD), None);
        assert_eq!(v.save.rip, 2);
        assert_eq!(handled(&vm, &mut v, exit::MONITOR), None);
        assert_eq!(v.control.event_injection.bits(), 6 | (3 << 8) | (1 << 31), "#UD");
        assert_eq!(handled(&vm, &mut v, exit::SHUTDOWN), Some(VmEnd::TripleFault));
        assert_eq!(vm.host.log.lock().unwrap().len(), 1);
        assert!(matches!(handled(&vm, &mut v, exit::EXCEPTION_BASE + 14), Some(VmEnd::UnhandledExit { .. })));
    }

    #[test]
    fn hlt_with_interrupts_off_parks_and_the_last_parked_vcpu_halts_the_vm() {
        let vm = TestVm::new(1);
        let mut v = Vmcb::zeroed();
        assert_eq!(handled(&vm, &mut v, exit::HLT), Some(VmEnd::Halted));
        assert_eq!(v.save.rip, 1);
        // With interrupts on and an NMI pending, HLT returns to the guest at once.
        v.save.rflags = RFLAGS_IF;
        vm.state.irq.nmi[0].store(true, Ordering::SeqCst);
        assert_eq!(handled(&vm, &mut v, exit::HLT), None);
        assert_eq!(v.save.rip, 2);
    }
}
