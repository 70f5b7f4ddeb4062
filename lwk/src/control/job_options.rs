//! Jobs named on the kernel command line:
//!
//! ```text
//! job=/bin/app job.args="a 'b c'" job.env="K=V K2=V2" job.cores=1-3 job.mem=512M job.threads=256
//! job.isolation=strict|shared|node job.progress=30s
//! job.sim=/bin/sim job.sim.cores=1-2   job.viz=/bin/viz job.viz.cores=3
//! jobs.expect=zero|any
//! ```
//!
//! `job=` names the job `job`; `job.NAME=` names it NAME. Each job is an `[enclave NAME]` section
//! with `kind = job` whose values the manifest's parser reads (`boot_manifest`): this module reads
//! only the options' names. `threads` caps the job's live threads (all its processes together;
//! by default a share of the kernel memory the jobs leave, see [`default_max_threads`]).

use crate::task::THREAD_KERNEL_BYTES;
use alloc::string::{String, ToString};

/// `job.SETTING=` and `job.NAME.SETTING=`: (SETTING, the manifest key it sets). `job=` and
/// `job.NAME=` set `program`.
const SETTINGS: [(&str, &str); 9] = [
    ("args", "args"),
    ("env", "env"),
    ("cores", "cores"),
    ("mem", "memory"),
    ("threads", "threads"),
    ("isolation", "isolation"),
    ("progress", "progress"),
    ("kernel_memory", "kernel_memory"),
    ("tmp_size", "tmp_size"),
];
/// The name of the job `job=` and `job.SETTING=` describe.
pub const DEFAULT_NAME: &str = "job";
/// Bounds of a job's thread limit.
pub const MIN_THREADS: usize = 16;
pub const MAX_THREADS: usize = enclave::manifest::MAX_JOB_THREADS as usize;

/// A job's default thread limit: half of the kernel memory the jobs leave free, shared evenly by
/// `jobs`, at [`THREAD_KERNEL_BYTES`] a thread (within [`MIN_THREADS`]..=[`MAX_THREADS`]). A job
/// that reaches it gets EAGAIN from `clone`/`fork` instead of exhausting the kernel's memory.
pub fn default_max_threads(kernel_free_bytes: u64, jobs: usize) -> usize {
    let share = kernel_free_bytes / 2 / jobs.max(1) as u64 / THREAD_KERNEL_BYTES;
    usize::try_from(share).unwrap_or(MAX_THREADS).clamp(MIN_THREADS, MAX_THREADS)
}

/// What decides the boot's exit status once every job has ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobsExpect {
    /// Success only if every job exited with status 0.
    #[default]
    Zero,
    /// Success whatever the jobs' statuses (tests that expect a job to fail check `job_exit`).
    Any,
}

/// `jobs.expect=`'s value.
pub fn parse_expect(value: Option<&str>) -> Result<JobsExpect, String> {
    match value {
        Some("zero") => Ok(JobsExpect::Zero),
        Some("any") => Ok(JobsExpect::Any),
        _ => Err("expected zero or any".to_string()),
    }
}

/// The job a `job...` option describes and the manifest key it sets; `Ok(None)`: not a job option.
pub fn parse_key(option: &str) -> Result<Option<(&str, &'static str)>, String> {
    let rest = match option.strip_prefix("job") {
        Some("") => "",
        Some(r) if r.starts_with('.') => &r[1..],
        _ => return Ok(None),
    };
    let setting = |word: &str| SETTINGS.iter().find(|(w, _)| *w == word).map(|(_, key)| *key);
    let (name, key) = match rest.split_once('.') {
        Some((name, word)) => (name, setting(word).ok_or_else(|| alloc::format!("unknown job setting \"{word}\""))?),
        None if rest.is_empty() => (DEFAULT_NAME, "program"),
        None => match setting(rest) {
            Some(key) => (DEFAULT_NAME, key),
            None => (rest, "program"),
        },
    };
    if !enclave::valid_name(name) {
        return Err("a job name uses 1 to 64 letters, digits, '-' and '_'".to_string());
    }
    Ok(Some((name, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_limits() {
        // 256 MiB left: 128 MiB at 40 KiB a thread for one job, half each for two.
        assert_eq!(default_max_threads(256 << 20, 1), 3276);
        assert_eq!(default_max_threads(256 << 20, 2), 1638);
        assert_eq!(default_max_threads(0, 1), MIN_THREADS);
        assert_eq!(default_max_threads(u64::MAX, 1), MAX_THREADS);
    }

    #[test]
    fn options_name_a_job_and_a_key() {
        assert_eq!(parse_key("job"), Ok(Some(("job", "program"))));
        assert_eq!(parse_key("job.args"), Ok(Some(("job", "args"))));
        assert_eq!(parse_key("job.mem"), Ok(Some(("job", "memory"))));
        assert_eq!(parse_key("job.sim"), Ok(Some(("sim", "program"))));
        assert_eq!(parse_key("job.viz.cores"), Ok(Some(("viz", "cores"))));
        assert_eq!(parse_key("job.args.tmp_size"), Ok(Some(("args", "tmp_size"))));
        assert_eq!(parse_key("jobless"), Ok(None));
        assert_eq!(parse_key("jobs.expect"), Ok(None));
        assert_eq!(parse_key("log"), Ok(None));
        assert_eq!(parse_expect(Some("any")), Ok(JobsExpect::Any));
        assert_eq!(parse_expect(Some("zero")), Ok(JobsExpect::Zero));
    }

    #[test]
    fn bad_options_say_why() {
        assert!(parse_key("job.a.b.c").unwrap_err().contains("unknown job setting \"b.c\""));
        assert!(parse_key("job.a.memory").unwrap_err().contains("unknown job setting"));
        assert!(parse_key("job.b@d").unwrap_err().contains("job name"));
        assert!(parse_key("job..cores").unwrap_err().contains("job name"));
        assert!(parse_key(&alloc::format!("job.{}", "x".repeat(65))).is_err());
        assert!(parse_expect(Some("maybe")).is_err());
        assert!(parse_expect(None).is_err());
    }
}
