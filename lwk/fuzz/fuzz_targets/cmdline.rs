//! The kernel command line (including job options) on arbitrary text: never a panic, every job
//! the parser keeps has a name made of the allowed characters, and composing its shorthands into
//! the boot manifest never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        let (options, _errors) = lwk::control::cmdline::parse(text);
        for job in &options.jobs {
            assert!(job.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
        let _ = lwk::control::boot_manifest::compose(None, &options);
    }
});
