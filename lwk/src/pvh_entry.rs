//! The kernel's entry point: the hardware layer's PVH entry code (`lwk_hal::pvh_entry!`), which
//! builds boot page tables, enters long mode, clears `.bss` and calls
//! [`crate::kernel_main::kernel_main`] on the boot stack with the start_info address.

lwk_hal::pvh_entry!(crate::kernel_main::kernel_main);
