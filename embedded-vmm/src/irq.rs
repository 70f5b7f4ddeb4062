//! The interrupt router: the vCPUs' local APICs, pending NMIs and start states, the physical
//! CPUs they run on; interrupts and IPIs delivered to the vCPUs they address (kicking their
//! CPUs), and before each VMRUN the highest-priority interrupt injected into the VMCB.

use crate::devices::Devices;
use crate::devices::io_apic::Message;
use crate::devices::local_apic::{Delivery, Destination, LocalApic};
use crate::host::VmmHost;
use crate::svm::bits::RFLAGS_IF;
use crate::svm::vmcb::{Event, EventType, InterceptMisc1, InterruptShadow, VirtualInterrupt, Vmcb};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The NMI's vector.
const NMI_VECTOR: u8 = 2;

/// An application processor's way to its first instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApStart {
    WaitForInit,
    WaitForSipi,
    Start(u8),
}

/// Not on a physical CPU (yet).
const NO_CORE: usize = usize::MAX;

pub struct Router {
    host: &'static dyn VmmHost,
    /// Per vCPU: its APIC, a pending NMI, its start state, the physical CPU it runs on.
    pub lapics: Vec<spin::Mutex<LocalApic>>,
    pub nmi: Vec<AtomicBool>,
    pub start: Vec<spin::Mutex<ApStart>>,
    cores: Vec<AtomicUsize>,
    /// Set for a vCPU before its physical CPU is kicked; cleared by the vCPU before it looks for
    /// work and waits (see `VmmHost::wait_for_event`).
    pub kicked: Vec<AtomicBool>,
}

impl Router {
    /// `vcpus` vCPUs; the first starts at once, the others wait for INIT and SIPI.
    pub fn new(host: &'static dyn VmmHost, vcpus: usize) -> Router {
        Router {
            host,
            lapics: (0..vcpus).map(|i| spin::Mutex::new(LocalApic::new(i as u8))).collect(),
            nmi: (0..vcpus).map(|_| AtomicBool::new(false)).collect(),
            start: (0..vcpus)
                .map(|i| spin::Mutex::new(if i == 0 { ApStart::Start(0) } else { ApStart::WaitForInit }))
                .collect(),
            cores: (0..vcpus).map(|_| AtomicUsize::new(NO_CORE)).collect(),
            kicked: (0..vcpus).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub fn vcpus(&self) -> usize {
        self.lapics.len()
    }

    /// vCPU `index` runs on physical CPU `core` from now on; false if there is no such vCPU.
    pub fn place(&self, index: usize, core: usize) -> bool {
        self.cores.get(index).map(|c| c.store(core, Ordering::SeqCst)).is_some()
    }

    /// Interrupts the physical CPU of every vCPU that runs, so each leaves the guest.
    pub fn kick_all(&self) {
        for i in 0..self.vcpus() {
            self.kick(i);
        }
    }

    fn kick(&self, index: usize) {
        let core = self.cores[index].load(Ordering::SeqCst);
        if core != NO_CORE {
            self.kicked[index].store(true, Ordering::SeqCst);
            self.host.kick_cpu(core);
        }
    }

    /// Delivers an interrupt or IPI to the vCPUs it addresses (from vCPU `from`), kicking the
    /// physical CPUs they run on.
    pub fn route(&self, destination: Destination, delivery: Delivery, from: usize) {
        let targets: Vec<usize> = (0..self.vcpus())
            .filter(|&i| match destination {
                Destination::SelfOnly => i == from,
                Destination::All => true,
                Destination::AllButSelf => i != from,
                d => self.lapics[i].lock().matches(d),
            })
            .collect();
        let targets = match delivery {
            // Lowest priority: the first addressed vCPU is as good as any here.
            Delivery::LowestPriority(_) => targets.into_iter().take(1).collect(),
            _ => targets,
        };
        for i in targets {
            match delivery {
                Delivery::Fixed(v) | Delivery::LowestPriority(v) => self.lapics[i].lock().accept(v),
                Delivery::Nmi => self.nmi[i].store(true, Ordering::SeqCst),
                Delivery::Init => {
                    if i != 0 {
                        self.lapics[i].lock().reset();
                        *self.start[i].lock() = ApStart::WaitForSipi;
                    }
                }
                Delivery::Startup(vector) => {
                    let mut s = self.start[i].lock();
                    if *s == ApStart::WaitForSipi {
                        *s = ApStart::Start(vector);
                    }
                }
            }
            if i != from {
                self.kick(i);
            }
        }
    }

    /// Delivers the I/O APIC's messages (fixed delivery).
    #[inline]
    pub fn deliver(&self, messages: Vec<Message>, from: usize) {
        for m in messages {
            self.route(m.destination, Delivery::Fixed(m.vector), from);
        }
    }

    /// Before VMRUN of vCPU `index`: brings its APIC timer up to date, injects the
    /// highest-priority pending interrupt (an NMI, then the local APIC, then the 8259 pair
    /// through LINT0 or directly when the APIC is off) if the guest can take it now, otherwise
    /// asks for an exit when it can (VINTR); arms the host wake-up for the next timer so a busy
    /// guest still gets its interrupts. An event already queued (re-injected) goes first.
    #[inline(always)]
    pub fn inject(&self, v: &mut Vmcb, index: usize, devices: &spin::Mutex<Devices>, now: u64) {
        if v.control.event_injection.contains(Event::VALID) {
            return;
        }
        if self.nmi[index].swap(false, Ordering::SeqCst) {
            v.control.event_injection = Event::new(NMI_VECTOR, EventType::Nmi, None);
            return;
        }
        let interruptible =
            v.save.rflags & RFLAGS_IF != 0 && !v.control.interrupt_shadow.contains(InterruptShadow::SHADOW);
        let mut lapic = self.lapics[index].lock();
        lapic.update_timer(now);
        let mut wanted = lapic.pending().is_some();
        if interruptible && let Some(vector) = lapic.pending() {
            lapic.acknowledge(vector);
            v.control.event_injection = Event::new(vector, EventType::Intr, None);
            wanted = false;
        }
        let extint = index == 0 && lapic.accepts_extint();
        let lapic_timer = lapic.next_timer_ns();
        drop(lapic);
        let mut d = devices.lock();
        if extint && !v.control.event_injection.contains(Event::VALID) && d.pic.has_pending() {
            if interruptible {
                if let Some(vector) = d.pic.acknowledge() {
                    v.control.event_injection = Event::new(vector, EventType::Intr, None);
                }
            } else {
                wanted = true;
            }
        }
        if wanted {
            v.control.intercept_misc1.insert(InterceptMisc1::VINTR);
            v.control.virtual_interrupt.insert(VirtualInterrupt::V_IRQ | VirtualInterrupt::V_IGN_TPR);
        } else {
            close_interrupt_window(v);
        }
        let next = [d.next_event_ns(), lapic_timer].into_iter().flatten().min();
        drop(d);
        self.host.set_wakeup(next);
    }

    /// For a halted vCPU `index`: `None` if an interrupt can be delivered to it now, otherwise
    /// when the next device or timer event is due (if one is).
    pub fn next_wake(&self, v: &Vmcb, index: usize, devices: &spin::Mutex<Devices>, now: u64) -> Option<Option<u64>> {
        let (lapic_pending, lapic_timer) = {
            let mut l = self.lapics[index].lock();
            l.update_timer(now);
            (l.pending().is_some(), l.next_timer_ns())
        };
        let mut d = devices.lock();
        let pic = index == 0 && d.pic.has_pending();
        if pic
            || lapic_pending
            || self.nmi[index].load(Ordering::SeqCst)
            || v.control.event_injection.contains(Event::VALID)
        {
            return None;
        }
        Some([d.next_event_ns(), lapic_timer].into_iter().flatten().min())
    }
}

/// No more exits when the guest can take an interrupt (the VINTR exit came, or nothing waits).
#[inline]
pub fn close_interrupt_window(v: &mut Vmcb) {
    v.control.intercept_misc1.remove(InterceptMisc1::VINTR);
    v.control.virtual_interrupt.remove(VirtualInterrupt::V_IRQ);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    /// A router for `vcpus` vCPUs, and the devices.
    fn router(vcpus: usize) -> (&'static FakeHost, Router, spin::Mutex<Devices>) {
        let host = FakeHost::default().leak();
        (host, Router::new(host, vcpus), spin::Mutex::new(Devices::default()))
    }

    /// Enables vCPU `index`'s APIC (SVR).
    fn enable_apic(irq: &Router, index: usize) {
        irq.lapics[index].lock().write(0xf0, 0x1ff, 0);
    }

    #[test]
    fn fixed_interrupts_reach_the_addressed_vcpu_and_kick_its_cpu() {
        let (host, irq, _) = router(2);
        enable_apic(&irq, 1);
        assert!(irq.place(1, 7));
        assert!(!irq.place(2, 7), "no vCPU 2");
        irq.route(Destination::Physical(1), Delivery::Fixed(0x41), 0);
        assert_eq!(irq.lapics[1].lock().pending(), Some(0x41));
        assert!(irq.kicked[1].load(Ordering::SeqCst));
        assert_eq!(host.kicks.load(Ordering::SeqCst), 1);
        irq.route(Destination::SelfOnly, Delivery::Fixed(0x42), 1);
        assert_eq!(host.kicks.load(Ordering::SeqCst), 1, "no kick for oneself");
        irq.route(Destination::AllButSelf, Delivery::Nmi, 1);
        assert!(irq.nmi[0].load(Ordering::SeqCst) && !irq.nmi[1].load(Ordering::SeqCst));
    }

    #[test]
    fn application_processors_start_after_init_and_sipi() {
        let (_, irq, _) = router(2);
        assert_eq!(*irq.start[0].lock(), ApStart::Start(0));
        irq.route(Destination::AllButSelf, Delivery::Startup(0x9a), 0);
        assert_eq!(*irq.start[1].lock(), ApStart::WaitForInit, "SIPI before INIT is ignored");
        irq.route(Destination::All, Delivery::Init, 0);
        assert_eq!(*irq.start[0].lock(), ApStart::Start(0), "INIT leaves the boot vCPU alone");
        assert_eq!(*irq.start[1].lock(), ApStart::WaitForSipi);
        irq.route(Destination::AllButSelf, Delivery::Startup(0x9a), 0);
        assert_eq!(*irq.start[1].lock(), ApStart::Start(0x9a));
    }

    #[test]
    fn nmis_go_first_then_the_apic_and_a_guest_with_if_clear_gets_a_window() {
        let (_, irq, devices) = router(1);
        enable_apic(&irq, 0);
        let mut v = Vmcb::zeroed();
        v.save.rflags = RFLAGS_IF;
        irq.lapics[0].lock().accept(0x50);
        irq.nmi[0].store(true, Ordering::SeqCst);
        irq.inject(&mut v, 0, &devices, 0);
        let nmi = 2 | 2 << 8 | 1 << 31;
        assert_eq!(v.control.event_injection.bits(), nmi);
        irq.inject(&mut v, 0, &devices, 0);
        assert_eq!(v.control.event_injection.bits(), nmi, "still queued: nothing more");
        v.control.event_injection = Event::empty();
        v.save.rflags = 0;
        irq.inject(&mut v, 0, &devices, 0);
        assert_eq!(v.control.event_injection, Event::empty(), "IF clear: not now");
        assert!(v.control.intercept_misc1.contains(InterceptMisc1::VINTR));
        assert_eq!(v.control.virtual_interrupt.bits(), 1 << 8 | 1 << 20, "V_IRQ, V_IGN_TPR");
        v.save.rflags = RFLAGS_IF;
        irq.inject(&mut v, 0, &devices, 0);
        assert_eq!(v.control.event_injection.bits(), 0x50 | 1 << 31);
        assert!(!v.control.intercept_misc1.contains(InterceptMisc1::VINTR), "window closed");
        assert_eq!(v.control.virtual_interrupt.bits(), 1 << 20, "V_IRQ cleared");
        assert_eq!(irq.next_wake(&v, 0, &devices, 0), None, "an event is queued: no sleep");
    }

    #[test]
    fn the_8259_reaches_the_boot_vcpu_while_its_apic_is_off() {
        let (_, irq, devices) = router(1);
        {
            let mut d = devices.lock();
            for (port, value) in [(0x20, 0x11), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01), (0x21, 0x00)] {
                d.pic.write(port, value);
            }
            d.pic.set_irq(1, true);
        }
        let mut v = Vmcb::zeroed();
        v.save.rflags = RFLAGS_IF;
        assert_eq!(irq.next_wake(&v, 0, &devices, 0), None, "the PIC has one");
        irq.inject(&mut v, 0, &devices, 0);
        assert_eq!(v.control.event_injection.bits(), 0x31 | 1 << 31);
        assert_eq!(irq.next_wake(&Vmcb::zeroed(), 0, &devices, 0), Some(None), "nothing due");
    }
}
