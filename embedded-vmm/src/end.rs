//! How a VM ends: every exit the VMM cannot or should not handle, the guest's own power-off and
//! reset, a stop by the host.

use crate::svm::vmcb::{Vmcb, exit_name};
use alloc::string::String;
use core::fmt;

/// Why a VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest powered off (ACPI S5).
    PowerOff,
    /// The guest asked for a reset (keyboard controller, 0xcf9); Manul does not reboot guests.
    Reboot,
    /// A triple fault (the SHUTDOWN intercept).
    TripleFault,
    /// The guest kernel panicked and said so through the guest-panic port (Linux's pvpanic).
    GuestPanic,
    /// Every vCPU halted with interrupts off: nothing can ever wake it.
    Halted,
    /// An exit the VMM does not handle.
    UnhandledExit { code: u64, info1: u64, info2: u64, rip: u64 },
    /// The VMM could not go on (VMRUN refused the state, no memory, ...).
    VmmError(String),
    /// The host stopped it ([`crate::Vm::stop`]: an operator's `stop`, or the node going down).
    Stopped,
}

impl VmEnd {
    /// The `reason` of the `vm_exit` event.
    pub fn name(&self) -> &'static str {
        match self {
            VmEnd::PowerOff => "poweroff",
            VmEnd::Reboot => "reboot",
            VmEnd::TripleFault => "triple_fault",
            VmEnd::GuestPanic => "guest_panic",
            VmEnd::Halted => "halted",
            VmEnd::UnhandledExit { .. } => "unhandled_exit",
            VmEnd::VmmError(_) => "vmm_error",
            VmEnd::Stopped => "stopped",
        }
    }

    /// The exit in `v` (its code, information and RIP), which the VMM does not handle.
    pub fn unhandled(v: &Vmcb) -> VmEnd {
        VmEnd::UnhandledExit {
            code: v.control.exit_code,
            info1: v.control.exit_info1,
            info2: v.control.exit_info2,
            rip: v.save.rip,
        }
    }
}

impl fmt::Display for VmEnd {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            VmEnd::UnhandledExit { code, info1, info2, rip } => write!(
                f,
                "unhandled exit {} ({code:#x}) at rip {rip:#x}, info1 {info1:#x}, info2 {info2:#x}",
                exit_name(*code)
            ),
            VmEnd::VmmError(e) => write!(f, "VMM error: {e}"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::vmcb::exit;

    #[test]
    fn an_unhandled_exit_names_its_reason_and_state() {
        let mut v = Vmcb::zeroed();
        (v.control.exit_code, v.control.exit_info1, v.control.exit_info2, v.save.rip) =
            (exit::NPF, 6, 0xfed0_0000, 0x1000);
        let end = VmEnd::unhandled(&v);
        assert_eq!(end.name(), "unhandled_exit");
        assert_eq!(end.to_string(), "unhandled exit npf (0x400) at rip 0x1000, info1 0x6, info2 0xfed00000");
        assert_eq!(VmEnd::VmmError("no memory".into()).to_string(), "VMM error: no memory");
        assert_eq!(VmEnd::Halted.to_string(), "halted");
    }
}
