//! The kernel command line (including job options) on arbitrary text: never a panic, and every
//! job the parser keeps has a name made of the allowed characters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        let (options, _errors) = lwk::cmdline::parse(text);
        for job in &options.jobs {
            assert!(job.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
    }
});
