//! Guest loaders: a PVH ELF (Xen's PHYS32 entry note, as QEMU `-kernel` boots Manul itself and
//! Debian's vmlinux), and later the Linux x86 boot protocol for a bzImage.

pub mod bzimage;
pub mod pvh;
