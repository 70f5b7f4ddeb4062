//! Jobs named on the kernel command line:
//!
//! ```text
//! job=/bin/app job.args="a 'b c'" job.env="K=V K2=V2" job.cores=1-3 job.mem=512M
//! job.sim=/bin/sim job.sim.cores=1-2   job.viz=/bin/viz job.viz.cores=3
//! jobs.expect=zero|any
//! ```
//!
//! `job=` names the job `job`; `job.NAME=` names it NAME. Arguments are split at spaces, single
//! quotes group. Cores are lists and ranges (`1,3,5-7`); memory takes K, M or G.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Words after `job.` that are settings, not job names.
const SETTINGS: [&str; 4] = ["args", "env", "cores", "mem"];
/// Largest core number accepted (the kernel checks against the CPUs it really has).
const MAX_CORE: usize = 4095;

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
        Some(other) => return Err(alloc::format!("unknown job setting \"{other}\"")),
    }
    Ok(true)
}

/// Checks what only the whole line can show: every job has a program, no core twice.
pub fn validate(jobs: &[JobSpec]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        if j.path.is_empty() {
            errors.push((j.name.clone(), "settings without a program (job.NAME=/path)".to_string()));
        }
        if let Some(cores) = &j.cores
            && let Some(other) =
                jobs[..i].iter().find(|o| o.cores.as_ref().is_some_and(|c| c.iter().any(|x| cores.contains(x))))
        {
            errors.push((j.name.clone(), alloc::format!("shares cores with job {}", other.name)));
        }
    }
    errors
}

/// Splits at spaces; single quotes group (`sh -c 'echo hi'`).
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut in_word) = (false, false);
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    out.push(core::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated single quote".to_string());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `1-3,5` -> [1, 2, 3, 5] (sorted, no duplicates).
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in s.split(',') {
        let num = |t: &str| t.trim().parse::<usize>().ok().filter(|&n| n <= MAX_CORE);
        let bad = || alloc::format!("bad core list \"{s}\": expected e.g. 1-3,5");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?),
            None => {
                let n = num(part).ok_or_else(bad)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        cores.extend(lo..=hi);
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

/// `512M`, `1G`, `4096K`, or bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || alloc::format!("bad size \"{s}\": expected e.g. 512M or 2G");
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(bad());
    }
    Ok(bytes)
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
        assert_eq!(errors.len(), 2);
        assert!(errors[0].1.contains("shares cores with job a"));
        assert!(errors[1].1.contains("without a program"));
    }

    #[test]
    fn core_lists_and_sizes() {
        assert_eq!(parse_cores("5,1-3,2").unwrap(), [1, 2, 3, 5]);
        assert_eq!(parse_size("4096K").unwrap(), 4 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
    }
}
