//! (being written) The initrd: a cpio "newc" archive parser.
