//! The workloads of `cargo xtask bench`: the C programs of `bench/`, how each is run, and what
//! their output means. Everything here but [`build`] is pure (parsing and statistics), so it is
//! unit-tested on the host.
//!
//! A benchmark program prints its results as lines `BENCH {JSON}` with a `"workload"` key. Long
//! lists are cut into parts (`"part":P`, a few pairs a line, so no console line is long) followed
//! by one summary line for the series, which says how many parts there were; [`scan`] finds the
//! lines wherever they are on a line (Manul prefixes a job's output with `[NAME] `), and
//! [`fwq`] and [`syscall`] join the parts back and check that nothing was lost.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::artifacts::test_programs::{self, Program, gcc};
use crate::host::workspace::Workspace;

/// The sources, relative to the workspace root.
pub const SOURCE_DIR: &str = "bench";
/// The header every program includes: a change to it rebuilds them all.
const HEADER: &str = "bench.h";
/// The `/init` of the Linux side, relative to the workspace root.
pub const LINUX_INIT: &str = "bench/linux-init.sh";
/// The applets `LINUX_INIT` runs.
pub const LINUX_INIT_APPLETS: &[&str] = &["cat", "cut", "mount", "poweroff", "sh", "tr", "uname"];

/// The programs, at the same path in both systems' initrds.
const PROGRAMS: &[Program] = &[
    gcc("bench/fwq", "fwq.c", &["-static", "-pthread"]),
    gcc("bench/syscall", "syscall.c", &["-static"]),
    gcc("bench/vmexit", "vmexit.c", &["-static"]),
    gcc("bench/threads", "threads.c", &["-static", "-pthread"]),
    gcc("bench/matmul", "matmul.c", &["-static"]),
    gcc("bench/launch", "launch.c", &["-static"]),
    gcc("bench/triad", "triad.c", &["-static", "-fopenmp"]),
    gcc(KVM_LAUNCHER, "kvm-launcher.c", &["-static"]),
];

/// The KVM peer's launcher (not a workload: only the KVM host's initramfs holds it).
pub const KVM_LAUNCHER: &str = "bench/kvm-launcher";
/// What the launcher puts before each line of its guest's console.
const GUEST_PREFIX: &str = "[guest] ";
/// How the LWK's console begins a VM's lines: `[vm NAME] `.
const VM_PREFIX: &str = "[vm ";

/// What a workload measures, and so how its output reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fwq,
    /// Histograms of timings, one per call (`syscall`, `threads`).
    Calls,
    Launch,
    Matmul,
    Triad,
}

pub struct Workload {
    pub name: &'static str,
    /// One line for the report.
    pub about: &'static str,
    /// Its program in the initrds.
    pub program: &'static str,
    /// One short iteration, for the CI's smoke run (`--smoke`): numbers that mean little, but a
    /// harness that cannot rot.
    pub smoke_args: &'static [&'static str],
    pub quick_args: &'static [&'static str],
    pub full_args: &'static [&'static str],
    pub kind: Kind,
    /// Whether it runs under icount (its numbers in instructions); if not, it measures wall
    /// time, and only the comparison within one run means anything.
    pub icount: bool,
    /// The CPUs the program gets: Manul's job cores, Linux's CPUs.
    pub cores: u32,
}

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "fwq",
        smoke_args: &["2000", "8192"],
        about: "fixed work quanta: 8,192-instruction quanta timed back to back on one core; a detour is a \
                sample minus the shortest",
        program: "/bench/fwq",
        quick_args: &["40000", "8192"],
        full_args: &["400000", "8192"],
        kind: Kind::Fwq,
        icount: true,
        cores: 1,
    },
    Workload {
        name: "fwq-smp",
        smoke_args: &["2000", "8192", "2"],
        about: "FWQ on 2 cores at once, one pinned thread each, per-core detours; wall clock WITHOUT icount \
                (single-threaded icount TCG runs the vCPUs in turn, so each core would count the other's turn as \
                a detour): the host's noise is in every system's numbers, compare them within one run only",
        program: "/bench/fwq",
        quick_args: &["40000", "8192", "2"],
        full_args: &["400000", "8192", "2"],
        kind: Kind::Fwq,
        icount: false,
        cores: 2,
    },
    Workload {
        name: "syscall",
        smoke_args: &["200"],
        about: "null system calls timed one by one: getpid, getppid, clock_gettime (the system call) and \
                glibc's clock_gettime (the vDSO where there is one)",
        program: "/bench/syscall",
        quick_args: &["10000"],
        full_args: &["100000"],
        kind: Kind::Calls,
        icount: true,
        cores: 1,
    },
    Workload {
        name: "vmexit",
        smoke_args: &["200"],
        about: "what a VM exit costs, seen from the guest: CPUID and a read of the UART's line status port \
                (where the system allows port access), timed one by one; natively they exit nowhere",
        program: "/bench/vmexit",
        quick_args: &["2000"],
        full_args: &["20000"],
        kind: Kind::Calls,
        icount: true,
        cores: 1,
    },
    Workload {
        name: "threads",
        smoke_args: &["20"],
        about: "thread create + join (a thread that returns at once) and a futex round trip between two \
                threads (wake the partner, wait for its wake), both on one CPU, so switches included",
        program: "/bench/threads",
        quick_args: &["1000"],
        // Not more: Manul ran out of kernel memory between 4,010 and 10,010 threads created one
        // after the other (docs/benchmarks.md).
        full_args: &["4000"],
        kind: Kind::Calls,
        icount: true,
        cores: 1,
    },
    Workload {
        name: "matmul",
        smoke_args: &["32", "1"],
        about: "a compute kernel: dense matrix multiply of doubles, repeated; pure user-space work, so the \
                systems differ only by what they take away",
        program: "/bench/matmul",
        quick_args: &["128", "5"],
        full_args: &["256", "5"],
        kind: Kind::Matmul,
        icount: true,
        cores: 1,
    },
    Workload {
        name: "launch",
        smoke_args: &[],
        about: "job launch: the TSC read first thing in main(), i.e. the instructions from power-on to the \
                job's first line (kernel boot, program start, C library start-up)",
        program: "/bench/launch",
        quick_args: &[],
        full_args: &[],
        kind: Kind::Launch,
        icount: true,
        cores: 1,
    },
    Workload {
        name: "triad",
        smoke_args: &["65536", "2"],
        about: "STREAM-style triad a = b + s c with OpenMP over 2 CPUs; wall clock WITHOUT icount, so the \
                bandwidth is the emulator's as much as the system's: compare the two systems within one run only",
        program: "/bench/triad",
        quick_args: &["2097152", "5"],
        full_args: &["4194304", "20"],
        kind: Kind::Triad,
        icount: false,
        cores: 2,
    },
];

/// Compiles the programs that are out of date into `target/manul/bench-build/`; returns
/// (path in the initrds, binary on the host).
pub fn build(workspace: &Workspace, log: &mut dyn Write) -> Result<Vec<(String, PathBuf)>> {
    let sources = workspace.root().join(SOURCE_DIR);
    let out_dir = workspace.bench_build_dir();
    let header = modified(&sources.join(HEADER)).with_context(|| format!("{SOURCE_DIR}/{HEADER} is missing"))?;
    let mut built = Vec::new();
    for program in PROGRAMS {
        let binary = out_dir.join(program.path());
        // The compile step compares the binary with its .c file only.
        if modified(&binary).is_some_and(|binary| binary < header) {
            fs::remove_file(&binary).with_context(|| format!("cannot remove {}", binary.display()))?;
        }
        let binary = test_programs::compile(program, &sources, &out_dir, log)?
            .with_context(|| format!("{} was not built", program.path()))?;
        built.push((program.path().to_owned(), binary));
    }
    Ok(built)
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|metadata| metadata.modified()).ok()
}

/// What a run printed for the xtask, wherever it was on the console.
#[derive(Debug, Default)]
pub struct Output {
    /// The `BENCH {...}` objects, in order.
    pub records: Vec<Map<String, Value>>,
    /// `BENCH-INFO key=value` lines.
    pub info: BTreeMap<String, String>,
    /// `BENCH-EXIT STATUS` (the Linux side's /init prints it).
    pub exit: Option<i64>,
    /// Lines that looked like records but could not be read.
    pub malformed: Vec<String>,
    /// Guest kernel messages found inside a record line: a guest's console driver prints a
    /// kernel message at once, between the bytes of a program's line, so the record's end comes
    /// on the console line after the message. The record is read joined again; the messages are
    /// kept here for the report.
    pub interrupting: Vec<String>,
}

const RECORD: &str = "BENCH {";
const INFO: &str = "BENCH-INFO ";
const EXIT: &str = "BENCH-EXIT ";

/// A KVM host's console cut in two: the guest's lines (without their prefix), then the host's.
pub fn split_guest(log: &str) -> (String, String) {
    let (mut guest, mut host) = (String::new(), String::new());
    for line in log.lines() {
        let (text, to) = match line.strip_prefix(GUEST_PREFIX) {
            Some(text) => (text, &mut guest),
            None => (line, &mut host),
        };
        to.push_str(text);
        to.push('\n');
    }
    (guest, host)
}

/// A record: a JSON object with a `workload` string.
fn record(json: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(record)) if record.get("workload").is_some_and(Value::is_string) => Some(record),
        _ => None,
    }
}

/// Where a Linux kernel message (`[   28.682161] text`) starts in `text`, if it has one.
fn kernel_message_at(text: &str) -> Option<usize> {
    text.match_indices('[').map(|(at, _)| at).find(|&at| {
        let Some((stamp, _)) = text[at + 1..].split_once("] ") else { return false };
        let Some((seconds, fraction)) = stamp.trim_start().split_once('.') else { return false };
        [seconds, fraction].iter().all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A console line without the LWK's prefix for a VM's output (`[vm NAME] `).
fn without_vm_prefix(line: &str) -> &str {
    line.strip_prefix(VM_PREFIX).and_then(|rest| rest.split_once("] ")).map_or(line, |(_, text)| text)
}

/// Most console lines past the first that a record cut by kernel messages may span.
const MAX_PIECES: usize = 64;

/// A record whose line `json` holds a kernel message (the guest's console printed it between the
/// record's bytes, and the LWK began a new line for the rest), joined again from the lines that
/// follow: each gives the text before its own kernel message (a line that is all kernel message
/// gives nothing) until the record parses. Returns the record, the messages, and how many lines
/// after the first it took; `None` when no join parses (a new record begins, or too many lines).
fn rejoin<'a>(
    json: &str,
    mut lines: impl Iterator<Item = &'a str>,
) -> Option<(Map<String, Value>, Vec<String>, usize)> {
    let cut = kernel_message_at(json)?;
    let mut text = json[..cut].to_owned();
    let mut messages = vec![json[cut..].to_owned()];
    for used in 1..=MAX_PIECES {
        let line = without_vm_prefix(lines.next()?);
        if line.contains(RECORD) {
            return None;
        }
        let cut = kernel_message_at(line).unwrap_or(line.len());
        text.push_str(&line[..cut]);
        if cut < line.len() {
            messages.push(line[cut..].to_owned());
        }
        if let Some(found) = record(&text) {
            return Some((found, messages, used));
        }
    }
    None
}

/// The benchmark lines of a console log.
pub fn scan(log: &str) -> Output {
    let mut output = Output::default();
    let mut lines = log.lines().map(|line| line.trim_end_matches(['\r', '\n'])).peekable();
    while let Some(line) = lines.next() {
        if let Some(at) = line.find(RECORD) {
            let json = &line[at + RECORD.len() - 1..];
            if let Some(found) = record(json) {
                output.records.push(found);
                continue;
            }
            match rejoin(json, lines.clone()) {
                Some((found, messages, used)) => {
                    for _ in 0..used {
                        lines.next();
                    }
                    output.records.push(found);
                    output.interrupting.extend(messages);
                }
                None => output.malformed.push(line.to_owned()),
            }
        } else if let Some(at) = line.find(INFO) {
            match line[at + INFO.len()..].split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    output.info.insert(key.trim().to_owned(), value.trim().to_owned());
                }
                _ => output.malformed.push(line.to_owned()),
            }
        } else if let Some(at) = line.find(EXIT) {
            match line[at + EXIT.len()..].trim().parse() {
                Ok(status) => output.exit = Some(status),
                Err(_) => output.malformed.push(line.to_owned()),
            }
        }
    }
    output
}

/// One core's FWQ samples, exactly: sample `i` is `min` plus the excess listed for `i` in
/// `detours` (0 if `i` is not listed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FwqSeries {
    pub core: u64,
    pub samples: u64,
    /// The work of a quantum (instructions).
    pub quantum: u64,
    /// The shortest sample (the quantum plus the timing's own instructions).
    pub min: u64,
    /// The sum of all samples.
    pub total: u64,
    /// (sample index, excess over `min`), by index.
    pub detours: Vec<[u64; 2]>,
}

impl FwqSeries {
    /// The time taken away from the job: the sum of the detours.
    pub fn lost(&self) -> u64 {
        self.detours.iter().map(|[_, excess]| excess).sum()
    }

    /// The share of the run that the detours took, in parts per million.
    pub fn noise_ppm(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.lost() as f64 * 1e6 / self.total as f64 }
    }

    pub fn max_detour(&self) -> u64 {
        self.detours.iter().map(|[_, excess]| *excess).max().unwrap_or(0)
    }

    /// Detours per second of run time, with `ticks_per_second` (10^9 under `-icount shift=0`).
    pub fn detours_per_second(&self, ticks_per_second: f64) -> f64 {
        if self.total == 0 { 0.0 } else { self.detours.len() as f64 * ticks_per_second / self.total as f64 }
    }

    /// The detour sizes as a histogram.
    pub fn detour_histogram(&self) -> Histogram {
        Histogram::of(self.detours.iter().map(|[_, excess]| *excess))
    }
}

/// A distribution of integer values: (value, count) pairs, by increasing value, counts above 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Histogram {
    pub bins: Vec<[u64; 2]>,
}

impl Histogram {
    pub fn of(values: impl IntoIterator<Item = u64>) -> Self {
        let mut counts = BTreeMap::new();
        for value in values {
            *counts.entry(value).or_insert(0) += 1;
        }
        Self { bins: counts.into_iter().map(|(value, count)| [value, count]).collect() }
    }

    /// From (value, count) pairs in any order, values possibly repeated.
    pub fn from_pairs(pairs: &[[u64; 2]]) -> Self {
        let mut counts = BTreeMap::new();
        for &[value, count] in pairs {
            *counts.entry(value).or_insert(0) += count;
        }
        Self { bins: counts.into_iter().filter(|&(_, count)| count > 0).map(|(value, count)| [value, count]).collect() }
    }

    pub fn count(&self) -> u64 {
        self.bins.iter().map(|[_, count]| count).sum()
    }

    pub fn min(&self) -> Option<u64> {
        self.bins.first().map(|[value, _]| *value)
    }

    pub fn max(&self) -> Option<u64> {
        self.bins.last().map(|[value, _]| *value)
    }

    pub fn mean(&self) -> Option<f64> {
        let count = self.count();
        let sum: f64 = self.bins.iter().map(|&[value, count]| value as f64 * count as f64).sum();
        (count > 0).then(|| sum / count as f64)
    }

    /// The nearest-rank percentile: the smallest value with at least `percent` % of the values
    /// at or below it.
    pub fn percentile(&self, percent: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((percent / 100.0 * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for &[value, n] in &self.bins {
            seen += n;
            if seen >= rank {
                return Some(value);
            }
        }
        self.max()
    }

    pub fn median(&self) -> Option<u64> {
        self.percentile(50.0)
    }

    /// The counts in power-of-two buckets: (lower bound, count) for each bucket
    /// `[2^k, 2^(k+1))` from the lowest to the highest that holds a value (0 goes with 1).
    pub fn log2_buckets(&self) -> Vec<(u64, u64)> {
        let bucket = |value: u64| 63 - value.max(1).leading_zeros();
        let (Some(low), Some(high)) = (self.min(), self.max()) else {
            return Vec::new();
        };
        let mut buckets: Vec<(u64, u64)> = (bucket(low)..=bucket(high)).map(|k| (1u64 << k, 0)).collect();
        let first = bucket(low);
        for &[value, count] in &self.bins {
            buckets[(bucket(value) - first) as usize].1 += count;
        }
        buckets
    }
}

/// The timings of one call of the `syscall` or `threads` workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallSeries {
    pub call: String,
    pub iterations: u64,
    /// Each timing (TSC ticks) and how often it occurred.
    pub histogram: Histogram,
}

/// The parsed output of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Samples {
    Fwq {
        series: Vec<FwqSeries>,
    },
    Calls {
        series: Vec<CallSeries>,
    },
    /// The TSC at the start of main().
    Launch {
        tsc_at_main: u64,
    },
    /// Each repeat's TSC ticks.
    Matmul {
        n: u64,
        ticks: Vec<u64>,
        checksum: f64,
    },
    /// Each repeat's nanoseconds (wall clock), and the bytes a repeat moves.
    Triad {
        threads: u64,
        n: u64,
        bytes: u64,
        ns: Vec<u64>,
    },
}

/// Reads the records of `workload` (of `kind`) from a run's output.
pub fn samples(workload: &str, kind: Kind, records: &[Map<String, Value>]) -> Result<Samples> {
    Ok(match kind {
        Kind::Fwq => Samples::Fwq { series: fwq(records)? },
        Kind::Calls => Samples::Calls { series: calls(records, workload)? },
        Kind::Launch => Samples::Launch { tsc_at_main: number(single(records, workload)?, "tsc_at_main")? },
        Kind::Matmul => {
            let record = single(records, workload)?;
            let ticks = numbers(record, "ticks")?;
            ensure!(!ticks.is_empty(), "{workload}: no repeat");
            let checksum = record.get("checksum").and_then(Value::as_f64).context("matmul: no checksum")?;
            Samples::Matmul { n: number(record, "n")?, ticks, checksum }
        }
        Kind::Triad => {
            let record = single(records, workload)?;
            let check = record.get("check").and_then(Value::as_str);
            ensure!(check == Some("ok"), "{workload}: the results were wrong (check {check:?})");
            let ns = numbers(record, "ns")?;
            ensure!(!ns.is_empty() && ns.iter().all(|&ns| ns > 0), "{workload}: no repeat, or one of no time");
            Samples::Triad {
                threads: number(record, "threads")?,
                n: number(record, "n")?,
                bytes: number(record, "bytes")?,
                ns,
            }
        }
    })
}

/// The one record of `workload`.
fn single<'a>(records: &'a [Map<String, Value>], workload: &str) -> Result<&'a Map<String, Value>> {
    let mut found = records.iter().filter(|record| record.get("workload").and_then(Value::as_str) == Some(workload));
    match (found.next(), found.next()) {
        (Some(record), None) => Ok(record),
        (None, _) => bail!("no {workload} line"),
        (Some(_), Some(_)) => bail!("more than one {workload} line"),
    }
}

/// The list of unsigned numbers `key`.
fn numbers(record: &Map<String, Value>, key: &str) -> Result<Vec<u64>> {
    record
        .get(key)
        .and_then(Value::as_array)
        .and_then(|list| list.iter().map(Value::as_u64).collect())
        .with_context(|| format!("no list of unsigned numbers \"{key}\" in {}", Value::Object(record.clone())))
}

fn number(record: &Map<String, Value>, key: &str) -> Result<u64> {
    record
        .get(key)
        .and_then(Value::as_u64)
        .with_context(|| format!("no unsigned number \"{key}\" in {}", Value::Object(record.clone())))
}

/// The pairs of the list `field` of one series: the records of `workload` whose `key` is
/// `value` and that have a `"part"`, joined in part order; there must be exactly `parts` of
/// them, numbered from 0.
fn parts(
    records: &[Map<String, Value>],
    workload: &str,
    key: &str,
    value: &Value,
    field: &str,
    parts: u64,
) -> Result<Vec<[u64; 2]>> {
    let mut by_part = BTreeMap::new();
    for record in records.iter().filter(|record| {
        record.get("workload").and_then(Value::as_str) == Some(workload)
            && record.get(key) == Some(value)
            && record.contains_key("part")
    }) {
        let part = number(record, "part")?;
        let pairs = record
            .get(field)
            .and_then(Value::as_array)
            .with_context(|| format!("part {part} of {workload} {key}={value} has no list \"{field}\""))?;
        let pairs = pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([a, b]) => Some([a.as_u64()?, b.as_u64()?]),
                _ => None,
            })
            .collect::<Option<Vec<[u64; 2]>>>()
            .with_context(|| format!("part {part} of {workload} {key}={value}: \"{field}\" is not a list of pairs"))?;
        ensure!(by_part.insert(part, pairs).is_none(), "part {part} of {workload} {key}={value} appears twice");
    }
    let numbers: Vec<u64> = by_part.keys().copied().collect();
    ensure!(
        numbers == (0..parts).collect::<Vec<_>>(),
        "{workload} {key}={value}: expected parts 0 to {parts} (exclusive), found {numbers:?} (console output lost?)"
    );
    Ok(by_part.into_values().flatten().collect())
}

/// The summary records of `workload` (those without a `"part"`).
fn summaries<'a>(records: &'a [Map<String, Value>], workload: &'a str) -> impl Iterator<Item = &'a Map<String, Value>> {
    records
        .iter()
        .filter(move |record| record.get("workload").and_then(Value::as_str) == Some(workload))
        .filter(|record| !record.contains_key("part"))
}

/// The FWQ series of a run, one per core, each checked against its summary.
pub fn fwq(records: &[Map<String, Value>]) -> Result<Vec<FwqSeries>> {
    let mut series = Vec::new();
    for summary in summaries(records, "fwq") {
        let core = number(summary, "core")?;
        let detours = parts(records, "fwq", "core", &Value::from(core), "detours", number(summary, "parts")?)?;
        let one = FwqSeries {
            core,
            samples: number(summary, "samples")?,
            quantum: number(summary, "quantum")?,
            min: number(summary, "min")?,
            total: number(summary, "total")?,
            detours,
        };
        ensure!(
            one.detours.len() as u64 == number(summary, "detours")?,
            "fwq core {core}: {} detours listed, the summary says {}",
            one.detours.len(),
            number(summary, "detours")?
        );
        ensure!(
            one.detours.windows(2).all(|pair| pair[0][0] < pair[1][0])
                && one.detours.last().is_none_or(|[index, _]| *index < one.samples)
                && one.detours.iter().all(|[_, excess]| *excess > 0),
            "fwq core {core}: the detours are not increasing indexes below {} with positive excesses",
            one.samples
        );
        ensure!(
            one.min * one.samples + one.lost() == one.total,
            "fwq core {core}: {} samples of at least {} with {} of detours do not add up to the total {}",
            one.samples,
            one.min,
            one.lost(),
            one.total
        );
        series.push(one);
    }
    ensure!(!series.is_empty(), "no fwq summary line");
    series.sort_by_key(|one| one.core);
    Ok(series)
}

/// The timings of each call of `workload` (`syscall`, `threads`), each checked against its
/// summary.
pub fn calls(records: &[Map<String, Value>], workload: &str) -> Result<Vec<CallSeries>> {
    let mut series = Vec::new();
    for summary in summaries(records, workload) {
        let Some(call) = summary.get("call").and_then(Value::as_str) else {
            bail!("a {workload} summary without \"call\": {}", Value::Object(summary.clone()));
        };
        let pairs = parts(records, workload, "call", &Value::from(call), "histogram", number(summary, "parts")?)?;
        let histogram = Histogram::from_pairs(&pairs);
        let iterations = number(summary, "iterations")?;
        ensure!(
            histogram.count() == iterations,
            "{workload} {call}: the histogram holds {} timings, the summary says {iterations}",
            histogram.count()
        );
        series.push(CallSeries { call: call.to_owned(), iterations, histogram });
    }
    ensure!(!series.is_empty(), "no {workload} summary line");
    Ok(series)
}

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// One number of a run that the report compares across systems.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    /// Unique within the workload: `noise_ppm`, `getpid`, ...
    pub name: String,
    /// For people: "noise", "getpid (median, minus the timing)".
    pub label: String,
    pub unit: &'static str,
    pub value: f64,
    pub better: Better,
}

impl Metric {
    pub fn lower(name: &str, label: &str, unit: &'static str, value: f64) -> Self {
        Self { name: name.to_owned(), label: label.to_owned(), unit, value, better: Better::Lower }
    }

    fn higher(name: &str, label: &str, unit: &'static str, value: f64) -> Self {
        Self { better: Better::Higher, ..Self::lower(name, label, unit, value) }
    }
}

/// The numbers the report compares, with `unit` naming a TSC tick (instructions under icount)
/// and `ticks_per_second` its rate, when known (rates per second are left out otherwise).
pub fn metrics(samples: &Samples, unit: &'static str, ticks_per_second: Option<f64>) -> Vec<Metric> {
    let mut metrics = Vec::new();
    match samples {
        Samples::Fwq { series } => {
            for one in series {
                // Cores other than the first get their own names.
                let suffix = if one.core == 0 { String::new() } else { format!("_core{}", one.core) };
                let on = if one.core == 0 { String::new() } else { format!(" (core {})", one.core) };
                metrics.push(Metric::lower(
                    &format!("noise_ppm{suffix}"),
                    &format!("noise{on}"),
                    "ppm",
                    one.noise_ppm(),
                ));
                metrics.push(Metric::lower(
                    &format!("max_detour{suffix}"),
                    &format!("largest detour{on}"),
                    unit,
                    one.max_detour() as f64,
                ));
                if let Some(ticks_per_second) = ticks_per_second {
                    metrics.push(Metric::lower(
                        &format!("detours_per_s{suffix}"),
                        &format!("detours per second{on}"),
                        "1/s",
                        one.detours_per_second(ticks_per_second),
                    ));
                }
            }
        }
        Samples::Calls { series } => {
            // The timing's own cost, when the program measured it.
            let empty = series.iter().find(|one| one.call == "empty").and_then(|one| one.histogram.median());
            for one in series.iter().filter(|one| one.call != "empty") {
                let Some(median) = one.histogram.median() else { continue };
                let label = match empty {
                    Some(empty) => format!("{} (median, less the timing's own {empty})", one.call),
                    None => format!("{} (median)", one.call),
                };
                metrics.push(Metric::lower(&one.call, &label, unit, median.saturating_sub(empty.unwrap_or(0)) as f64));
            }
        }
        Samples::Launch { tsc_at_main } => {
            metrics.push(Metric::lower("power_on_to_main", "power-on to main()", unit, *tsc_at_main as f64));
        }
        Samples::Matmul { n, ticks, .. } => {
            let ticks = Histogram::of(ticks.iter().copied());
            let label = format!("{n} x {n} multiply");
            metrics.push(Metric::lower(
                "fastest",
                &format!("{label}, fastest repeat"),
                unit,
                ticks.min().unwrap_or(0) as f64,
            ));
            metrics.push(Metric::lower(
                "slowest",
                &format!("{label}, slowest repeat"),
                unit,
                ticks.max().unwrap_or(0) as f64,
            ));
        }
        Samples::Triad { bytes, ns, .. } => {
            let ns = Histogram::of(ns.iter().copied());
            // bytes / ns = GB/s.
            let mb_per_s = |ns: Option<u64>| ns.map_or(0.0, |ns| *bytes as f64 * 1e3 / ns as f64);
            metrics.push(Metric::higher(
                "best_mb_s",
                "bandwidth, best repeat (wall clock)",
                "MB/s",
                mb_per_s(ns.min()),
            ));
            metrics.push(Metric::higher(
                "median_mb_s",
                "bandwidth, median repeat (wall clock)",
                "MB/s",
                mb_per_s(ns.median()),
            ));
        }
    }
    metrics
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn records(log: &str) -> Vec<Map<String, Value>> {
        let output = scan(log);
        assert!(output.malformed.is_empty(), "{:?}", output.malformed);
        output.records
    }

    #[test]
    fn the_tables_are_consistent_with_bench() {
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SOURCE_DIR);
        assert!(sources.join(HEADER).is_file());
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(LINUX_INIT).is_file());
        let mut names = HashSet::new();
        for workload in WORKLOADS {
            assert!(names.insert(workload.name), "{} appears twice", workload.name);
            let program = PROGRAMS.iter().find(|p| format!("/{}", p.path()) == workload.program);
            let program = program.unwrap_or_else(|| panic!("{}: no program {}", workload.name, workload.program));
            assert!(sources.join(program.source()).is_file(), "{} has no source", program.path());
            for arg in workload.quick_args.iter().chain(workload.full_args).chain(workload.smoke_args) {
                assert!(!arg.is_empty() && !arg.contains([' ', ',', '"', '\'']), "{}: argument {arg:?}", workload.name);
            }
        }
    }

    #[test]
    fn lines_are_found_behind_prefixes_and_bad_ones_reported() {
        let log = "Manul LWK booting\r\n\
                   [job] BENCH {\"workload\":\"x\",\"a\":1}\r\n\
                   manul> [job] BENCH {\"workload\":\"y\"}\n\
                   BENCH-INFO clocksource=tsc\n\
                   BENCH-INFO kernel = 6.1.0\n\
                   [    2.0] random kernel line\n\
                   BENCH {\"workload\":\"z\",\"cut\n\
                   BENCH {\"no_workload\":1}\n\
                   BENCH-INFO novalue\n\
                   BENCH-EXIT 0\n";
        let output = scan(log);
        let names: Vec<&str> = output.records.iter().map(|r| r["workload"].as_str().unwrap()).collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(output.records[0]["a"], 1);
        assert_eq!(output.info["clocksource"], "tsc");
        assert_eq!(output.info["kernel"], "6.1.0");
        assert_eq!(output.exit, Some(0));
        assert_eq!(output.malformed.len(), 3, "{:?}", output.malformed);
    }

    #[test]
    fn a_record_cut_by_a_guest_kernel_message_is_joined_again() {
        // As seen in a Manul VM's fwq-smp run: the guest's console printed a soft-lockup report
        // between the bytes of a record, the LWK began a new line for the rest.
        let log = "[vm bench] BENCH {\"workload\":\"fwq\",\"part\":7,\"detours\":[[1,2],[338\
                   [   28.682161] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [swapper/1:0]\n\
                   [vm bench] 84,3]]}\n\
                   [vm bench] BENCH {\"workload\":\"fwq\",\"part\":8,\"detours\":[[5,6]]}\n";
        let output = scan(log);
        assert!(output.malformed.is_empty(), "{:?}", output.malformed);
        assert_eq!(output.records.len(), 2);
        assert_eq!(output.records[0]["detours"], serde_json::json!([[1, 2], [33884, 3]]));
        assert_eq!(output.interrupting.len(), 1);
        assert!(
            output.interrupting[0].starts_with("[   28.682161] watchdog: BUG: soft lockup"),
            "{:?}",
            output.interrupting
        );
        // Without a kernel message, or when the join is not a record, the line stays malformed.
        for log in [
            "BENCH {\"workload\":\"fwq\",\"part\":7,\"detours\":[[1,2],[338\n84,3]]}\n",
            "BENCH {\"workload\":\"fwq\",\"part\":7,[   1.5] message\nnot the rest\n",
            "BENCH {\"workload\":\"fwq\",\"part\":7,[1.x] message\n3]]}\n",
        ] {
            let output = scan(log);
            assert_eq!((output.records.len(), output.malformed.len()), (0, 1), "{log:?}");
        }
    }

    #[test]
    fn a_record_cut_by_several_kernel_messages_is_joined_again() {
        // As seen in a Manul VM's fwq-smp run: an RCU stall report of several lines, each
        // printed between bytes of one record.
        let log = "[vm bench] BENCH {\"workload\":\"fwq\",\"part\":1939,\"detours\":[[31025,11206],[31\
                   [   25.126554] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n\
                   [vm bench] 027,7566],[31028[   25.133517] rcu: \t1-...!: (68 ticks this GP)\n\
                   [vm bench] ,6994][   25.149211] rcu: rcu_preempt kthread timer wakeup didn't happen\n\
                   [vm bench] [   25.164376] rcu: rcu_preempt kthread starved for 5253 jiffies!\n\
                   [vm bench] ,[31031,9334]]}\n\
                   [vm bench] BENCH {\"workload\":\"fwq\",\"part\":1940,\"detours\":[[5,6]]}\n";
        let output = scan(log);
        assert!(output.malformed.is_empty(), "{:?}", output.malformed);
        assert_eq!(output.records.len(), 2);
        assert_eq!(
            output.records[0]["detours"],
            serde_json::json!([[31025, 11206], [31027, 7566], [31028, 6994], [31031, 9334]])
        );
        assert_eq!(output.interrupting.len(), 4);
        assert!(output.interrupting[3].contains("starved for 5253 jiffies"), "{:?}", output.interrupting);
        // A new record before the join parses: the cut one stays malformed, the new one is read.
        let log = "BENCH {\"workload\":\"fwq\",\"part\":1,[   1.5] message\n\
                   BENCH {\"workload\":\"fwq\",\"part\":2}\n";
        let output = scan(log);
        assert_eq!((output.records.len(), output.malformed.len()), (1, 1));
    }

    #[test]
    fn a_kvm_hosts_console_is_cut_into_guest_and_host() {
        let log = "BENCH-INFO kernel=host\n[guest] BENCH-INFO kernel=guest\n[guest] BENCH-EXIT 3\n\
                   kvm-launcher: the guest ended (shutdown)\nBENCH-INFO kvm_exits=7\nBENCH-EXIT 0\n";
        let (guest, host) = split_guest(log);
        let (guest, host) = (scan(&guest), scan(&host));
        assert_eq!((guest.info["kernel"].as_str(), guest.exit), ("guest", Some(3)));
        assert!(!guest.info.contains_key("kvm_exits"));
        assert_eq!((host.info["kernel"].as_str(), host.info["kvm_exits"].as_str(), host.exit), ("host", "7", Some(0)));
    }

    const FWQ_LOG: &str = "\
[job] BENCH {\"workload\":\"fwq\",\"core\":0,\"part\":1,\"detours\":[[9,1]]}
[job] BENCH {\"workload\":\"fwq\",\"core\":0,\"part\":0,\"detours\":[[2,100],[5,20]]}
[job] BENCH {\"workload\":\"fwq\",\"core\":0,\"samples\":10,\"quantum\":8,\"min\":10,\"total\":221,\"detours\":3,\"parts\":2}
";

    #[test]
    fn fwq_parts_are_joined_and_summarised() {
        let series = fwq(&records(FWQ_LOG)).unwrap();
        assert_eq!(series.len(), 1);
        let one = &series[0];
        assert_eq!(one.detours, [[2, 100], [5, 20], [9, 1]]);
        assert_eq!(one.lost(), 121);
        assert_eq!(one.max_detour(), 100);
        assert!((one.noise_ppm() - 121e6 / 221.0).abs() < 1e-6);
        // 3 detours in 221 ticks, at 1000 ticks a second.
        assert!((one.detours_per_second(1000.0) - 3000.0 / 221.0).abs() < 1e-9);
        assert_eq!(one.detour_histogram().bins, [[1, 1], [20, 1], [100, 1]]);
        let metrics = metrics(&Samples::Fwq { series }, "instructions", Some(1e9));
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["noise_ppm", "max_detour", "detours_per_s"]);
        assert_eq!(metrics[1].value, 100.0);
    }

    #[test]
    fn a_quiet_fwq_run_has_no_parts() {
        let log = "BENCH {\"workload\":\"fwq\",\"core\":0,\"samples\":4,\"quantum\":8,\"min\":12,\"total\":48,\"detours\":0,\"parts\":0}";
        let series = fwq(&records(log)).unwrap();
        assert_eq!((series[0].noise_ppm(), series[0].max_detour()), (0.0, 0));
        assert!(series[0].detour_histogram().log2_buckets().is_empty());
    }

    #[test]
    fn inconsistent_fwq_output_is_refused() {
        let lost_part = FWQ_LOG.lines().skip(1).collect::<Vec<_>>().join("\n");
        let error = fwq(&records(&lost_part)).unwrap_err().to_string();
        assert!(error.contains("expected parts 0 to 2"), "{error}");
        let bad_total = FWQ_LOG.replace("\"total\":221", "\"total\":222");
        assert!(fwq(&records(&bad_total)).unwrap_err().to_string().contains("do not add up"));
        let bad_count = FWQ_LOG.replace("\"detours\":3", "\"detours\":4");
        assert!(fwq(&records(&bad_count)).unwrap_err().to_string().contains("3 detours listed"));
        let twice = format!("{FWQ_LOG}{}", FWQ_LOG.lines().next().unwrap());
        assert!(fwq(&records(&twice)).unwrap_err().to_string().contains("appears twice"));
        let out_of_range = FWQ_LOG.replace("[[9,1]]", "[[10,1]]");
        assert!(fwq(&records(&out_of_range)).unwrap_err().to_string().contains("increasing indexes"));
        assert!(fwq(&[]).unwrap_err().to_string().contains("no fwq summary"));
    }

    #[test]
    fn syscall_histograms_give_costs_less_the_timing() {
        let log = "\
BENCH {\"workload\":\"syscall\",\"call\":\"empty\",\"part\":0,\"histogram\":[[12,4]]}
BENCH {\"workload\":\"syscall\",\"call\":\"empty\",\"iterations\":4,\"parts\":1}
BENCH {\"workload\":\"syscall\",\"call\":\"getpid\",\"part\":0,\"histogram\":[[300,2],[310,1]]}
BENCH {\"workload\":\"syscall\",\"call\":\"getpid\",\"part\":1,\"histogram\":[[9000,1]]}
BENCH {\"workload\":\"syscall\",\"call\":\"getpid\",\"iterations\":4,\"parts\":2}
";
        let series = calls(&records(log), "syscall").unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].histogram.bins, [[300, 2], [310, 1], [9000, 1]]);
        let metrics = metrics(&Samples::Calls { series }, "instructions", Some(1e9));
        assert_eq!(metrics.len(), 1);
        assert_eq!((metrics[0].name.as_str(), metrics[0].value), ("getpid", 288.0));
        let short = log.replace("\"iterations\":4,\"parts\":2", "\"iterations\":5,\"parts\":2");
        assert!(calls(&records(&short), "syscall").unwrap_err().to_string().contains("holds 4 timings"));
    }

    #[test]
    fn calls_without_an_empty_series_are_reported_as_they_are() {
        let log = "\
BENCH {\"workload\":\"threads\",\"call\":\"create_join\",\"part\":0,\"histogram\":[[60000,3]]}
BENCH {\"workload\":\"threads\",\"call\":\"create_join\",\"iterations\":3,\"parts\":1}
BENCH {\"workload\":\"syscall\",\"call\":\"empty\",\"iterations\":0,\"parts\":0}
";
        let samples = samples("threads", Kind::Calls, &records(log)).unwrap();
        let metrics = metrics(&samples, "instructions", Some(1e9));
        assert_eq!(metrics.len(), 1);
        assert_eq!((metrics[0].label.as_str(), metrics[0].value), ("create_join (median)", 60000.0));
    }

    #[test]
    fn single_line_workloads() {
        let log = "\
[job] BENCH {\"workload\":\"launch\",\"tsc_at_main\":41000000}
[job] BENCH {\"workload\":\"matmul\",\"n\":128,\"ticks\":[400,300,500],\"checksum\":-766.5}
BENCH {\"workload\":\"triad\",\"threads\":2,\"n\":1000,\"bytes\":24000,\"ns\":[24000,12000,48000],\"check\":\"ok\"}
";
        let records = records(log);
        let launch = samples("launch", Kind::Launch, &records).unwrap();
        assert_eq!(launch, Samples::Launch { tsc_at_main: 41_000_000 });
        assert_eq!(metrics(&launch, "instructions", Some(1e9))[0].value, 41e6);
        let matmul = samples("matmul", Kind::Matmul, &records).unwrap();
        let values: Vec<f64> = metrics(&matmul, "instructions", Some(1e9)).iter().map(|m| m.value).collect();
        assert_eq!(values, [300.0, 500.0]);
        let triad = samples("triad", Kind::Triad, &records).unwrap();
        let triad = metrics(&triad, "instructions", Some(1e9));
        // 24,000 bytes in 12,000 ns: 2 GB/s; the median repeat takes 24,000 ns.
        assert_eq!((triad[0].value, triad[0].better), (2000.0, Better::Higher));
        assert_eq!(triad[1].value, 1000.0);
        let wrong = log.replace("\"ok\"", "\"wrong\"");
        assert!(
            samples("triad", Kind::Triad, &super::tests::records(&wrong)).unwrap_err().to_string().contains("wrong")
        );
        let twice = format!("{log}{}", log.lines().next().unwrap());
        assert!(samples("launch", Kind::Launch, &super::tests::records(&twice)).is_err());
        assert!(samples("fwq", Kind::Fwq, &records).is_err());
    }

    #[test]
    fn histogram_statistics() {
        let histogram = Histogram::of([5, 1, 3, 3, 3, 100, 1, 2, 2, 4]);
        assert_eq!(histogram.bins, [[1, 2], [2, 2], [3, 3], [4, 1], [5, 1], [100, 1]]);
        assert_eq!(histogram.count(), 10);
        assert_eq!((histogram.min(), histogram.max()), (Some(1), Some(100)));
        assert_eq!(histogram.mean(), Some(12.4));
        assert_eq!(histogram.median(), Some(3));
        assert_eq!(histogram.percentile(10.0), Some(1));
        assert_eq!(histogram.percentile(20.0), Some(1));
        assert_eq!(histogram.percentile(21.0), Some(2));
        assert_eq!(histogram.percentile(90.0), Some(5));
        assert_eq!(histogram.percentile(99.0), Some(100));
        assert_eq!(histogram.percentile(0.0), Some(1));
        assert_eq!(Histogram::default().median(), None);
        assert_eq!(Histogram::default().mean(), None);
        assert_eq!(Histogram::from_pairs(&[[7, 1], [3, 0], [7, 2], [2, 1]]).bins, [[2, 1], [7, 3]]);
    }

    #[test]
    fn log2_buckets_cover_from_the_lowest_to_the_highest() {
        let histogram = Histogram::of([0, 1, 3, 2, 40, 63, 64]);
        assert_eq!(histogram.log2_buckets(), [(1, 2), (2, 2), (4, 0), (8, 0), (16, 0), (32, 2), (64, 1)]);
        assert_eq!(Histogram::of([6000]).log2_buckets(), [(4096, 1)]);
    }
}
