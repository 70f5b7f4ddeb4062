//! AMD SVM: the VMCB, detection and per-CPU enabling, and the VMRUN path.

pub mod bits;
pub mod cpu;
pub mod state;
pub mod vmcb;
