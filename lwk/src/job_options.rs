//! Jobs named on the kernel command line:
//!
//! ```text
//! job=/bin/app job.args="a 'b c'" job.env="K=V K2=V2" job.cores=1-3 job.mem=512M job.threads=256
//! job.isolation=strict|shared|node job.progress=30s
//! job.sim=/bin/sim job.sim.cores=1-2   job.viz=/bin/viz job.viz.cores=3
//! jobs.expect=zero|any
//! ```
//!
//! `job=` names the job `job`; `job.NAME=` names it NAME. Values are read as the manifest reads
//! them (`enclave::manifest`): arguments split at spaces, quotes group. Cores are lists and ranges (`1,3,5-7`); memory takes K, M or G; `threads` caps
//! the job's live threads (all its processes together; by default a share of the kernel memory
//! the jobs leave, see [`default_max_threads`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Words after `job.` that are settings, not job names.
const SETTINGS: [&str; 9] =
    ["args", "env", "cores", "mem", "threads", "isolation", "progress", "kernel_memory", "tmp_size"];
/// Kernel memory one thread takes: its 32 KiB kernel stack, its XSAVE area and its bookkeeping.
pub const THREAD_KERNEL_BYTES: u64 = 40 * 1024;
/// Bounds of a job's thread limit.
pub const MIN_THREADS: usize = 16;
pub const MAX_THREADS: usize = enclave::manifest::MAX_JOB_THREADS as usize;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    /// Program path in the initrd; empty until `job=` / `job.NAME=` is seen.
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// `None`: every core but core 0, shared out among the jobs that did not choose.
    pub cores: Option<Vec<usize>>,
    /// `None`: an even share of most of the free memory.
    pub mem: Option<u64>,
    /// Most live threads at once; `None`: [`default_max_threads`].
    pub threads: Option<usize>,
    /// Its isolation policy; `None`: `strict`.
    pub isolation: Option<enclave::Policy>,
    /// Hung when no thread gains CPU time for this many ns; `None`: not watched.
    pub progress_ns: Option<u64>,
    /// Its kernel-memory budget; `None`: the default share.
    pub kernel_memory: Option<u64>,
    /// Most bytes of files in its `/tmp`; `None`: half its budget.
    pub tmp_size: Option<u64>,
}

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

/// Applies one `job...` / `jobs...` option. `Ok(false)`: the key is not a job option.
pub fn apply(jobs: &mut Vec<JobSpec>, expect: &mut JobsExpect, key: &str, value: Option<&str>) -> Result<bool, String> {
    if key == "jobs.expect" {
        *expect = match value {
            Some("zero") => JobsExpect::Zero,
            Some("any") => JobsExpect::Any,
            _ => return Err("expected zero or any".to_string()),
        };
        return Ok(true);
    }
    let rest = match key.strip_prefix("job") {
        Some("") => "",
        Some(r) if r.starts_with('.') => &r[1..],
        _ => return Ok(false),
    };
    let (name, setting) = match rest.split_once('.') {
        Some((name, setting)) => (name, Some(setting)),
        None if SETTINGS.contains(&rest) => ("job", Some(rest)),
        None if rest.is_empty() => ("job", None),
        None => (rest, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err("a job name uses letters, digits, '-' and '_'".to_string());
    }
    let value = value.ok_or("needs a value")?;
    let job = match jobs.iter().position(|j| j.name == name) {
        Some(i) => &mut jobs[i],
        None => {
            jobs.push(JobSpec { name: name.to_string(), ..JobSpec::default() });
            jobs.last_mut().expect("just pushed")
        }
    };
    match setting {
        None => {
            if !value.starts_with('/') {
                return Err("the program must be an absolute path in the initrd".to_string());
            }
            job.path = value.to_string();
        }
        Some("args") => job.args = split_args(value)?,
        Some("env") => {
            let env = split_args(value)?;
            if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
                return Err(alloc::format!("\"{bad}\" is not NAME=VALUE"));
            }
            job.env = env;
        }
        Some("cores") => job.cores = Some(parse_cores(value)?),
        Some("mem") => job.mem = Some(parse_size(value)?),
        Some("threads") => {
            let n: usize = value.parse().map_err(|_| alloc::format!("bad thread count \"{value}\""))?;
            if n == 0 || n > MAX_THREADS {
                return Err(alloc::format!("the thread limit must be 1 to {MAX_THREADS}"));
            }
            job.threads = Some(n);
        }
        Some("isolation") => job.isolation = Some(enclave::Policy::parse(value).map_err(|e| e.to_string())?),
        Some("progress") => job.progress_ns = Some(enclave::health::parse_duration(value).map_err(|e| e.to_string())?),
        Some("kernel_memory") => job.kernel_memory = Some(parse_size(value)?),
        Some("tmp_size") => job.tmp_size = Some(parse_size(value)?),
        Some(other) => return Err(alloc::format!("unknown job setting \"{other}\"")),
    }
    Ok(true)
}

/// Checks what only the whole line can show: every job has a program. (Cores named twice are
/// the manifest's check, which the shorthands go through: `boot_manifest`.)
pub fn validate(jobs: &[JobSpec]) -> Vec<(String, String)> {
    jobs.iter()
        .filter(|j| j.path.is_empty())
        .map(|j| (j.name.clone(), "settings without a program (job.NAME=/path)".to_string()))
        .collect()
}

/// Words of a value (`job.args`, `job.env`), in the manifest's grammar: spaces separate, single
/// or double quotes group (`sh -c 'echo hi'`).
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    enclave::manifest::split_words(s).map_err(|e| e.to_string())
}

/// `1-3,5` -> [1, 2, 3, 5] (sorted, no duplicates), as the manifest reads core lists.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let cores = enclave::CpuSet::parse(s).map_err(|e| alloc::format!("bad core list: {e}"))?;
    if cores.is_empty() {
        return Err("bad core list: it is empty".to_string());
    }
    Ok(cores.iter().collect())
}

/// `512M`, `1G`, `4096K`, `1T`, or bytes, as the manifest reads sizes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    enclave::partition::parse_size(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[(&str, &str)]) -> Result<(Vec<JobSpec>, JobsExpect), String> {
        let (mut jobs, mut expect) = (Vec::new(), JobsExpect::default());
        for (k, v) in words {
            assert!(apply(&mut jobs, &mut expect, k, Some(v))?);
        }
        Ok((jobs, expect))
    }

    #[test]
    fn thread_limits() {
        let (jobs, _) = parse(&[("job", "/a"), ("job.threads", "100")]).unwrap();
        assert_eq!(jobs[0].threads, Some(100));
        assert!(parse(&[("job.threads", "0")]).is_err());
        assert!(parse(&[("job.threads", "many")]).is_err());
        assert!(parse(&[("job.threads", "70000")]).is_err());
        // 256 MiB left: 128 MiB at 40 KiB a thread for one job, half each for two.
        assert_eq!(default_max_threads(256 << 20, 1), 3276);
        assert_eq!(default_max_threads(256 << 20, 2), 1638);
        assert_eq!(default_max_threads(0, 1), MIN_THREADS);
        assert_eq!(default_max_threads(u64::MAX, 1), MAX_THREADS);
    }

    #[test]
    fn the_single_job_form() {
        let (jobs, _) = parse(&[
            ("job", "/bin/app"),
            ("job.args", "a 'b c' d"),
            ("job.env", "K=V K2=V2"),
            ("job.cores", "1-3"),
            ("job.mem", "512M"),
        ])
        .unwrap();
        assert_eq!(
            jobs,
            [JobSpec {
                name: "job".into(),
                path: "/bin/app".into(),
                args: vec!["a".into(), "b c".into(), "d".into()],
                env: vec!["K=V".into(), "K2=V2".into()],
                cores: Some(vec![1, 2, 3]),
                mem: Some(512 << 20),
                threads: None,
                isolation: None,
                progress_ns: None,
                kernel_memory: None,
                tmp_size: None,
            }]
        );
    }

    #[test]
    fn named_jobs_and_expect() {
        let (jobs, expect) =
            parse(&[("job.sim", "/bin/sim"), ("job.viz.cores", "3"), ("job.viz", "/bin/viz"), ("jobs.expect", "any")])
                .unwrap();
        assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["sim", "viz"]);
        assert_eq!(jobs[1].cores, Some(vec![3]));
        assert_eq!(expect, JobsExpect::Any);
        assert!(validate(&jobs).is_empty());
    }

    #[test]
    fn bad_values_say_why() {
        assert!(parse(&[("job", "bin/app")]).unwrap_err().contains("absolute"));
        assert!(parse(&[("job.cores", "3-1")]).unwrap_err().contains("core list"));
        assert!(parse(&[("job.cores", "a")]).is_err());
        assert!(parse(&[("job.mem", "12X")]).unwrap_err().contains("size"));
        assert!(parse(&[("job.mem", "0")]).is_err());
        assert!(parse(&[("job.mem", "99999999999G")]).is_err());
        assert!(parse(&[("job.env", "NOEQUALS")]).is_err());
        assert!(parse(&[("job.args", "'open")]).unwrap_err().contains("quote"));
        assert!(parse(&[("job.a.b.c", "x")]).unwrap_err().contains("unknown job setting"));
        assert!(parse(&[("job.b@d", "/x")]).is_err());
        assert!(parse(&[("jobs.expect", "maybe")]).is_err());
        let (mut jobs, mut e) = (Vec::new(), JobsExpect::Zero);
        assert_eq!(apply(&mut jobs, &mut e, "jobless", Some("x")), Ok(false));
        assert_eq!(apply(&mut jobs, &mut e, "log", Some("x")), Ok(false));
    }

    #[test]
    fn whole_line_checks() {
        let (jobs, _) = parse(&[
            ("job.a", "/a"),
            ("job.a.cores", "1-2"),
            ("job.b", "/b"),
            ("job.b.cores", "2"),
            ("job.c.mem", "1M"),
        ])
        .unwrap();
        let errors = validate(&jobs);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].1.contains("without a program"));
    }

    #[test]
    fn core_lists_and_sizes() {
        assert_eq!(parse_cores("5,1-3,2").unwrap(), [1, 2, 3, 5]);
        assert!(parse_cores("").unwrap_err().contains("core list"));
        assert!(parse_cores("4096").unwrap_err().contains("core list"));
        assert_eq!(parse_size(" 1T ").unwrap(), 1 << 40);
        assert_eq!(split_args("a \"b c\" 'd e'").unwrap(), ["a", "b c", "d e"]);
        assert_eq!(parse_size("4096K").unwrap(), 4 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
    }
}
