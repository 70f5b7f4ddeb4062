//! AMD SVM: the VMCB, detection and per-CPU enabling, and the VMRUN path.

pub mod cpu;
pub mod vmcb;
