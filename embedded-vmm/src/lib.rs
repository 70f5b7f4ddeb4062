//! Manul's embedded virtual machine monitor: an OS-independent `no_std` + `alloc` library that
//! boots Linux guests with AMD SVM and nested paging. It reaches its host only through one narrow
//! interface, so the same code runs inside the LWK and inside the Linux module.
//!
//! The VMM itself arrives with its own issue; this crate holds the shared pieces as they land.
#![cfg_attr(not(test), no_std)]
