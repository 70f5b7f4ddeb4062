//! (being written) The RAM file system.
