//! What `cargo xtask bench` writes: `results.json` (the configuration and every sample),
//! `report.md` (tables of the numbers and their ratios) and SVG plots drawn with `plotters`:
//! `fwq-detours.svg` (the detour distribution of each system), `fwq-timeline.svg` (when the
//! detours happened) and `ratios.svg` (Manul's number over Linux's for every metric).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::bench::workloads::{Better, FwqSeries, Kind, Metric, Samples, WORKLOADS};

/// The system every ratio divides by Linux's number.
pub const MANUL_NATIVE: &str = "manul-native";
pub const LINUX_NATIVE: &str = "linux-native";
pub const MANUL_VM: &str = "manul-vm";
pub const KVM_VM: &str = "kvm-vm";

/// What is compared with what: (system, peer). Manul native against Linux native; a Linux guest
/// on Manul's VMM against the same program as a Manul job (the cost of virtualization), and
/// against the same guest under KVM (the two VMMs); the KVM guest against Linux native (what
/// virtualization costs on Linux).
pub const PAIRS: [(&str, &str); 4] =
    [(MANUL_NATIVE, LINUX_NATIVE), (MANUL_VM, MANUL_NATIVE), (MANUL_VM, KVM_VM), (KVM_VM, LINUX_NATIVE)];

/// How the numbers were made.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// `quick` or `full`.
    pub mode: String,
    /// UTC, when the run started.
    pub date: String,
    /// `git rev-parse HEAD`, and whether the work tree had changes.
    pub commit: String,
    pub dirty: bool,
    pub qemu_version: String,
    pub host_cpus: usize,
    /// The QEMU options both systems ran with, for every measurement.
    pub qemu_common: String,
    /// The options added for the workloads measured in instructions.
    pub icount_args: String,
    /// What a TSC tick is: instructions under icount.
    pub unit: String,
    pub systems: Vec<SystemConfig>,
    /// Sizes of the kernel images.
    pub footprint: Vec<Footprint>,
    /// The embedded VMM's share of the LWK.
    pub vmm: VmmFootprint,
}

/// The embedded VMM's code in the LWK image and its source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VmmFootprint {
    /// The sizes of the image's function symbols from the `embedded_vmm` crate.
    pub text_bytes: u64,
    pub functions: u64,
    /// Lines of `embedded-vmm/src`.
    pub source_lines: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SystemConfig {
    pub name: String,
    pub label: String,
    /// What it is, for the report.
    pub about: String,
    /// QEMU's CPU count for a workload of N CPUs.
    pub cpus: String,
    pub mem: String,
    /// The kernel command line, `{PROGRAM}`/`{ARGS}`/`N` standing for the workload's.
    pub cmdline: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Footprint {
    pub system: String,
    /// The kernel file QEMU loads.
    pub image: String,
    pub file_bytes: u64,
    /// The sum of its PT_LOAD segments' memory sizes: what it occupies once loaded.
    pub loaded_bytes: u64,
}

/// One workload on one system.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub workload: String,
    pub system: String,
    pub args: Vec<String>,
    /// QEMU's CPUs.
    pub smp: u32,
    /// Whether it ran under icount (numbers in instructions) or measured wall time.
    pub icount: bool,
    /// The QEMU command line.
    pub command: String,
    /// The serial console log, relative to the output directory.
    pub log: String,
    pub wall_seconds: f64,
    /// QEMU's exit status (`None`: killed, e.g. on the time-out).
    pub qemu_status: Option<i32>,
    /// The program's exit status, as the system reported it.
    pub exit_status: Option<i64>,
    /// What the system said about itself (clock source, interrupt counts, ...).
    pub info: BTreeMap<String, String>,
    /// Why the run gave no numbers, if it did not.
    pub error: Option<String>,
    pub samples: Option<Samples>,
    pub metrics: Vec<Metric>,
}

impl Run {
    /// A run not made yet: `log` is where its console goes, relative to the output directory.
    pub fn new(workload: &str, system: &str, args: &[&str], smp: u32, icount: bool, log: String) -> Run {
        Run {
            workload: workload.to_owned(),
            system: system.to_owned(),
            args: args.iter().map(|&arg| arg.to_owned()).collect(),
            smp,
            icount,
            command: String::new(),
            log,
            wall_seconds: 0.0,
            qemu_status: None,
            exit_status: None,
            info: BTreeMap::new(),
            error: None,
            samples: None,
            metrics: Vec::new(),
        }
    }
}

/// One metric of one workload on a system and its peer (see [`PAIRS`]).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Comparison {
    pub workload: String,
    pub metric: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub system: String,
    pub peer: String,
    pub value: f64,
    pub peer_value: f64,
    /// The system's number divided by the peer's (`None` when the peer's is 0).
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub config: Config,
    pub runs: Vec<Run>,
    pub comparisons: Vec<Comparison>,
}

/// A goal of the benchmark issue: a metric (or a number of a run's details) of one system's run
/// of a workload, and its bound (goals, not tests).
struct Goal {
    system: &'static str,
    workload: &'static str,
    metric: &'static str,
    at_most: f64,
    text: &'static str,
}

const fn goal(
    system: &'static str,
    workload: &'static str,
    metric: &'static str,
    at_most: f64,
    text: &'static str,
) -> Goal {
    Goal { system, workload, metric, at_most, text }
}

const GOALS: &[Goal] = &[
    goal(MANUL_NATIVE, "fwq", "noise_ppm", 8.0, "FWQ noise at most 8 ppm"),
    goal(MANUL_NATIVE, "fwq", "max_detour", 1000.0, "FWQ largest detour at most 1,000 instructions"),
    goal(MANUL_NATIVE, "syscall", "getpid", 150.0, "null system call at most 150 instructions"),
    goal(MANUL_NATIVE, "launch", "request_to_main", 5e6, "native job: request to main() under 5 million instructions"),
    goal(MANUL_VM, "vmexit", "vmm_path_cpuid", 500.0, "VMM path per CPUID exit at most 500 instructions"),
    goal(MANUL_VM, "vmexit", "vmm_path_msr", 500.0, "VMM path per MSR exit at most 500 instructions"),
    goal(MANUL_VM, "vmexit", "vmm_path_ioio", 1000.0, "VMM path per port I/O exit at most 1,000 instructions"),
    goal(MANUL_VM, "vmexit", "vmm_path_npf", 3000.0, "VMM path per MMIO exit at most 3,000 instructions"),
    goal(MANUL_VM, "launch", "vm_exits", 3000.0, "Linux guest boot (here to the program's main) at most 3,000 exits"),
    goal(
        MANUL_VM,
        "launch",
        "vmm_first_entry",
        1e6,
        "VM launch: request to first guest entry under 1 million instructions",
    ),
    goal(
        MANUL_VM,
        "launch",
        "vmm_memory_bytes",
        256.0 * 1024.0,
        "VMM memory per VM (no guest RAM, no nested tables) under 256 KiB",
    ),
];

/// The number a goal is about: the run's metric, else the number in its details.
fn goal_value(runs: &[Run], goal: &Goal) -> Option<f64> {
    let run = runs.iter().find(|run| run.workload == goal.workload && run.system == goal.system)?;
    run.metrics
        .iter()
        .find(|m| m.name == goal.metric)
        .map(|m| m.value)
        .or_else(|| run.info.get(goal.metric).and_then(|value| value.parse().ok()))
}

/// Every metric that both systems of a pair measured, pair by pair, in the order of the runs.
pub fn comparisons(runs: &[Run]) -> Vec<Comparison> {
    let find = |workload: &str, system: &str| runs.iter().find(|run| run.workload == workload && run.system == system);
    let mut out = Vec::new();
    for (system, peer) in PAIRS {
        for run in runs.iter().filter(|run| run.system == system) {
            let Some(peer_run) = find(&run.workload, peer) else { continue };
            for mine in &run.metrics {
                let Some(theirs) = peer_run.metrics.iter().find(|metric| metric.name == mine.name) else { continue };
                out.push(Comparison {
                    workload: run.workload.clone(),
                    metric: mine.name.clone(),
                    label: mine.label.clone(),
                    unit: mine.unit.to_owned(),
                    better: mine.better,
                    system: system.to_owned(),
                    peer: peer.to_owned(),
                    value: mine.value,
                    peer_value: theirs.value,
                    ratio: (theirs.value != 0.0).then(|| mine.value / theirs.value),
                });
            }
        }
    }
    out
}

/// Writes `results.json`, `report.md` and the plots into `dir`; returns the files written.
pub fn write(dir: &Path, results: &Results) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut save = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    save("results.json", serde_json::to_string_pretty(results)? + "\n")?;
    save("report.md", markdown(results))?;
    // The plots are of the runs in instructions (the wall-clock FWQ is in the report's tables).
    let fwq: Vec<(String, &FwqSeries)> = results
        .runs
        .iter()
        .filter(|run| run.icount)
        .filter_map(|run| match &run.samples {
            Some(Samples::Fwq { series }) => series.first().map(|one| (label(&results.config, &run.system), one)),
            _ => None,
        })
        .collect();
    if !fwq.is_empty() {
        save("fwq-detours.svg", fwq_distribution_svg(&fwq, &results.config.unit)?)?;
        save("fwq-timeline.svg", fwq_timeline_svg(&fwq, &results.config.unit)?)?;
    }
    if results.comparisons.iter().any(|comparison| comparison.ratio.is_some()) {
        save("ratios.svg", ratios_svg(&results.comparisons)?)?;
    }
    Ok(written)
}

fn label(config: &Config, system: &str) -> String {
    config.systems.iter().find(|s| s.name == system).map_or_else(|| system.to_owned(), |s| s.label.clone())
}

/// A number for a table: integers with thousands separators, small numbers with 2 decimals.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value != 0.0 && value.abs() < 100.0 && value.fract() != 0.0 {
        return format!("{value:.2}");
    }
    let rounded = value.round() as i128;
    let digits = rounded.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if rounded < 0 { format!("-{grouped}") } else { grouped }
}

/// A metric's label up to its first parenthesis.
fn short_label(label: &str) -> &str {
    label.split(" (").next().unwrap_or(label)
}

fn format_ratio(ratio: Option<f64>) -> String {
    match ratio {
        None => "—".into(),
        Some(0.0) => "0".into(),
        Some(ratio) if ratio < 0.01 => format!("{ratio:.4}"),
        Some(ratio) => format!("{ratio:.2}"),
    }
}

/// The report: configuration, then a table per workload, the goals, the runs.
pub fn markdown(results: &Results) -> String {
    let config = &results.config;
    let mut md = String::new();
    let _ = writeln!(md, "# Manul benchmarks ({} run)\n", config.mode);
    let _ = writeln!(
        md,
        "Commit `{}`{}, {}, {}, host with {} CPUs.\n",
        config.commit,
        if config.dirty { " (with uncommitted changes)" } else { "" },
        config.date,
        config.qemu_version,
        config.host_cpus
    );
    let _ = writeln!(
        md,
        "Every run is QEMU TCG with `{}`. All workloads but those marked *wall clock* add `{}`: the \
         guest's TSC then counts retired instructions, so their numbers are **{}** (one instruction is one \
         virtual nanosecond) and repeat from run to run; hardware events (TLB misses, cache misses, exits) \
         cost nothing there. Wall-clock numbers under TCG measure the emulator as much as the system: \
         compare the systems within one run only. A ratio is a system's number divided by its peer's: \
         Manul native over Linux native; Manul VM (the program in a Linux guest on Manul's VMM) over \
         Manul native, and over KVM VM (the same guest under Linux's KVM); KVM VM over Linux native.\n",
        config.qemu_common, config.icount_args, config.unit
    );
    let _ =
        writeln!(md, "| system | CPUs for a workload of N | memory | kernel command line |\n| --- | --- | --- | --- |");
    for system in &config.systems {
        let _ = writeln!(md, "| {} | {} | {} | `{}` |", system.label, system.cpus, system.mem, system.cmdline);
    }
    md.push('\n');
    for system in &config.systems {
        let _ = writeln!(md, "- {}: {}", system.label, system.about);
    }
    md.push('\n');

    for workload in WORKLOADS {
        let rows: Vec<&Comparison> = results.comparisons.iter().filter(|c| c.workload == workload.name).collect();
        let runs: Vec<&Run> = results.runs.iter().filter(|run| run.workload == workload.name).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {}\n\n{}.\n", workload.name, workload.about);
        if let Some(run) = runs.first() {
            let _ = writeln!(
                md,
                "`{}` on {} CPU{}, {}.\n",
                std::iter::once(workload.program.to_owned())
                    .chain(run.args.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" "),
                workload.cores,
                if workload.cores == 1 { "" } else { "s" },
                if run.icount { "under icount" } else { "*wall clock* (no icount)" }
            );
        }
        for (system, peer) in PAIRS {
            let pair: Vec<&&Comparison> = rows.iter().filter(|c| c.system == system && c.peer == peer).collect();
            if pair.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "| metric | unit | better | {} | {} | ratio |\n| --- | --- | --- | ---: | ---: | ---: |",
                label(config, system),
                label(config, peer)
            );
            for row in pair {
                let better = match row.better {
                    Better::Lower => "lower",
                    Better::Higher => "higher",
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {better} | {} | {} | {} |",
                    row.label,
                    row.unit,
                    format_number(row.value),
                    format_number(row.peer_value),
                    format_ratio(row.ratio)
                );
            }
            md.push('\n');
        }
        match workload.kind {
            Kind::Fwq => fwq_details(&mut md, config, &runs),
            Kind::Calls => calls_details(&mut md, config, &runs),
            Kind::Launch | Kind::Matmul | Kind::Triad => list_details(&mut md, config, &runs),
        }
        for run in runs.iter().filter(|run| run.error.is_some()) {
            let _ = writeln!(
                md,
                "**{} gave no numbers**: {} (log: `{}`).\n",
                label(config, &run.system),
                run.error.as_deref().unwrap_or_default(),
                run.log
            );
        }
    }

    let _ = writeln!(md, "## Footprint\n\n| system | image | file bytes | loaded bytes |\n| --- | --- | ---: | ---: |");
    for footprint in &config.footprint {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} |",
            label(config, &footprint.system),
            footprint.image,
            format_number(footprint.file_bytes as f64),
            format_number(footprint.loaded_bytes as f64)
        );
    }
    let loaded = |system: &str| config.footprint.iter().find(|f| f.system == system).map(|f| f.loaded_bytes as f64);
    if let (Some(manul), Some(linux)) = (loaded(MANUL_NATIVE), loaded(LINUX_NATIVE))
        && linux > 0.0
    {
        let _ = writeln!(md, "\nLoaded size ratio (Manul / Linux): {}.", format_ratio(Some(manul / linux)));
    }
    let _ = writeln!(
        md,
        "\nThe embedded VMM in the LWK image: {} bytes of code in {} functions; {} lines of Rust in \
         `embedded-vmm/src`. What it keeps per VM besides guest RAM and nested page tables is \
         `vmm_memory_bytes` in a Manul VM run's details (`vmm_heap_bytes` + `vmm_page_bytes`).",
        format_number(config.vmm.text_bytes as f64),
        format_number(config.vmm.functions as f64),
        format_number(config.vmm.source_lines as f64)
    );
    md.push('\n');

    let _ = writeln!(md, "## Goals (of the benchmark issue; measurements, not tests)\n");
    let _ = writeln!(md, "| goal | system | measured | met |\n| --- | --- | ---: | --- |");
    let vmm = &config.vmm;
    let vmm_goals = [
        ("VMM code under 512 KiB (bytes of its functions in the LWK)", vmm.text_bytes as f64, 512.0 * 1024.0),
        ("VMM under 25,000 lines", vmm.source_lines as f64, 25_000.0),
    ];
    let rows = GOALS
        .iter()
        .map(|goal| (goal.text, label(config, goal.system), goal_value(&results.runs, goal), goal.at_most))
        .chain(vmm_goals.map(|(text, value, at_most)| (text, label(config, MANUL_NATIVE), Some(value), at_most)));
    for (text, system, value, at_most) in rows {
        let (shown, met) = match value {
            Some(value) => (format_number(value), if value <= at_most { "yes" } else { "no" }),
            None => ("—".to_owned(), "not measured"),
        };
        let _ = writeln!(md, "| {text} | {system} | {shown} | {met} |");
    }
    md.push('\n');

    let _ = writeln!(
        md,
        "## Runs\n\n| workload | system | CPUs | icount | wall time (s) | QEMU status | exit status | log |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | --- | ---: | ---: | ---: | --- |");
    for run in &results.runs {
        let status = |status: Option<i64>| status.map_or_else(|| "—".to_owned(), |s| s.to_string());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} | {} | {} | `{}` |",
            run.workload,
            label(config, &run.system),
            run.smp,
            if run.icount { "yes" } else { "no" },
            run.wall_seconds,
            status(run.qemu_status.map(i64::from)),
            status(run.exit_status),
            run.log
        );
    }
    md.push('\n');
    let _ =
        writeln!(md, "Plots: `fwq-detours.svg`, `fwq-timeline.svg`, `ratios.svg`. Every sample is in `results.json`.");
    md
}

fn fwq_details(md: &mut String, config: &Config, runs: &[&Run]) {
    let _ = writeln!(
        md,
        "| system | samples | shortest sample | detours | detour sizes: median / p99 / max | lost | timer interrupts |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for run in runs {
        let Some(Samples::Fwq { series }) = &run.samples else { continue };
        for one in series {
            let sizes = one.detour_histogram();
            let size = |value: Option<u64>| value.map_or_else(|| "—".to_owned(), |v| format_number(v as f64));
            let _ = writeln!(
                md,
                "| {}{} | {} | {} | {} | {} / {} / {} | {} | {} |",
                label(config, &run.system),
                if series.len() > 1 { format!(" core {}", one.core) } else { String::new() },
                format_number(one.samples as f64),
                format_number(one.min as f64),
                format_number(one.detours.len() as f64),
                size(sizes.median()),
                size(sizes.percentile(99.0)),
                size(sizes.max()),
                format_number(one.lost() as f64),
                run.info.get("timer_interrupts").map_or("—", String::as_str)
            );
        }
    }
    md.push('\n');
}

fn calls_details(md: &mut String, config: &Config, runs: &[&Run]) {
    let _ = writeln!(
        md,
        "Timings including the timing itself (`lfence; rdtsc` twice), {}:\n\n\
         | system | call | min | median | mean | p99 | max |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        config.unit
    );
    for run in runs {
        let Some(Samples::Calls { series }) = &run.samples else { continue };
        for one in series {
            let h = &one.histogram;
            let value = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), |v| format_number(v as f64));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                label(config, &run.system),
                one.call,
                value(h.min()),
                value(h.median()),
                h.mean().map_or_else(|| "—".to_owned(), format_number),
                value(h.percentile(99.0)),
                value(h.max())
            );
        }
    }
    md.push('\n');
}

/// The samples of the single-line workloads as they are, and what the systems said about the run.
fn list_details(md: &mut String, config: &Config, runs: &[&Run]) {
    let _ = writeln!(md, "| system | samples | reported by the system |\n| --- | --- | --- |");
    for run in runs {
        let samples = match &run.samples {
            Some(Samples::Launch { tsc_at_main }) => format!("TSC at main(): {}", format_number(*tsc_at_main as f64)),
            Some(Samples::Matmul { n, ticks, checksum }) => {
                let ticks: Vec<String> = ticks.iter().map(|t| format_number(*t as f64)).collect();
                format!("{n} x {n}, each repeat: {} (checksum {checksum})", ticks.join(", "))
            }
            Some(Samples::Triad { threads, n, bytes, ns }) => {
                let ns: Vec<String> = ns.iter().map(|t| format_number(*t as f64)).collect();
                format!(
                    "{threads} threads, {n} elements ({} bytes a repeat), ns each: {}",
                    format_number(*bytes as f64),
                    ns.join(", ")
                )
            }
            _ => continue,
        };
        let info: Vec<String> = run.info.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let _ = writeln!(md, "| {} | {samples} | {} |", label(config, &run.system), info.join(", "));
    }
    md.push('\n');
}

const COLORS: [RGBColor; 4] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28), GREEN, MAGENTA];
const SIZE: (u32, u32) = (900, 520);

fn plot_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the plot: {error:?}")
}

/// Bars of the number of detours in each power-of-two size bucket, a group per bucket, a colour
/// per system; a system without detours says so in the legend.
pub fn fwq_distribution_svg(systems: &[(String, &FwqSeries)], unit: &str) -> Result<String> {
    let bucket_sets: Vec<Vec<(u64, u64)>> =
        systems.iter().map(|(_, one)| one.detour_histogram().log2_buckets()).collect();
    let exponent = |lower: u64| f64::from(63 - lower.leading_zeros());
    let exponents: Vec<f64> = bucket_sets.iter().flatten().map(|&(lower, _)| exponent(lower)).collect();
    let low = exponents.iter().copied().fold(f64::INFINITY, f64::min).min(4.0);
    let high = exponents.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(low + 4.0);
    let top = bucket_sets.iter().flatten().map(|&(_, count)| count).max().unwrap_or(1).max(1) as f64 * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("FWQ detours by size", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((low - 0.6)..(high + 0.6), 0.0..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("detour size ({unit}), power-of-two buckets"))
            .y_desc("detours")
            .y_label_formatter(&|y| format_number(*y))
            .x_labels((high - low) as usize + 2)
            .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{}", 1u64 << *x as u32) } else { String::new() })
            .disable_x_mesh()
            .draw()
            .map_err(plot_error)?;
        let width = 0.8 / systems.len() as f64;
        for (i, ((name, one), buckets)) in systems.iter().zip(&bucket_sets).enumerate() {
            let color = COLORS[i % COLORS.len()];
            let offset = -0.4 + width * i as f64;
            let legend = if one.detours.is_empty() {
                format!("{name}: no detour in {} samples", format_number(one.samples as f64))
            } else {
                format!(
                    "{name}: {} detours in {} samples",
                    format_number(one.detours.len() as f64),
                    format_number(one.samples as f64)
                )
            };
            chart
                .draw_series(buckets.iter().filter(|&&(_, count)| count > 0).map(|&(lower, count)| {
                    let x = exponent(lower) + offset;
                    Rectangle::new([(x, 0.0), (x + width, count as f64)], color.filled())
                }))
                .map_err(plot_error)?
                .label(legend)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Each detour as a point: when it happened (run time, at one tick a nanosecond) and its size.
pub fn fwq_timeline_svg(systems: &[(String, &FwqSeries)], unit: &str) -> Result<String> {
    let end_ms = systems.iter().map(|(_, one)| one.total as f64 / 1e6).fold(1.0, f64::max);
    let top = systems.iter().map(|(_, one)| one.max_detour()).max().unwrap_or(0).max(10) as f64 * 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("FWQ detours over the run", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..end_ms, (1.0..top).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(format!("run time (ms, at one {} a nanosecond)", unit.trim_end_matches('s')))
            .y_desc(format!("detour ({unit})"))
            .y_label_formatter(&|y| format_number(*y))
            .draw()
            .map_err(plot_error)?;
        for (i, (name, one)) in systems.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            // A detour's time: the start of its sample, all earlier samples being known exactly.
            let mut lost_before = 0u64;
            let points: Vec<(f64, f64)> = one
                .detours
                .iter()
                .map(|&[index, excess]| {
                    let at = (index * one.min + lost_before) as f64 / 1e6;
                    lost_before += excess;
                    (at, excess as f64)
                })
                .collect();
            let legend = if points.is_empty() { format!("{name}: no detour") } else { name.clone() };
            chart
                .draw_series(points.into_iter().map(|point| Circle::new(point, 3, color.filled())))
                .map_err(plot_error)?
                .label(legend)
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// A horizontal bar per metric and pair: the system's number over its peer's, with a line at 1.
pub fn ratios_svg(comparisons: &[Comparison]) -> Result<String> {
    // (label without its parenthesis, ratio, whether Manul does better).
    let rows: Vec<(String, f64, bool)> = comparisons
        .iter()
        .filter_map(|c| {
            let ratio = c.ratio?;
            let manul_better = match c.better {
                Better::Lower => ratio <= 1.0,
                Better::Higher => ratio >= 1.0,
            };
            let pair = if c.system == MANUL_NATIVE { String::new() } else { format!(" ({} / {})", c.system, c.peer) };
            Some((format!("{}: {}{pair}", c.workload, short_label(&c.label)), ratio, manul_better))
        })
        .collect();
    let right = rows.iter().map(|(_, ratio, _)| *ratio).fold(1.2, f64::max) * 1.1;
    let height = 120 + 40 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let count = rows.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Manul native / Linux native, and others as named (blue: the first does better)",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(260)
            .build_cartesian_2d(0.0..right, -0.5..(count - 0.5))
            .map_err(plot_error)?;
        let names: Vec<String> = rows.iter().map(|(name, _, _)| name.clone()).collect();
        chart
            .configure_mesh()
            .x_desc("ratio")
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|y| {
                let index = y.round();
                if (y - index).abs() < 1e-6 && index >= 0.0 {
                    names.get(names.len().wrapping_sub(1 + index as usize)).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_y_mesh()
            .draw()
            .map_err(plot_error)?;
        // The first row at the top.
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, ratio, manul_better))| {
                let y = count - 1.0 - i as f64;
                let color = if *manul_better { COLORS[0] } else { COLORS[1] };
                Rectangle::new([(0.0, y - 0.3), (*ratio, y + 0.3)], color.filled())
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, ratio, _))| {
                let y = count - 1.0 - i as f64;
                Text::new(format!(" {}", format_ratio(Some(*ratio))), (*ratio, y + 0.15), ("sans-serif", 14))
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new([(1.0, -0.5), (1.0, count - 0.5)], BLACK.stroke_width(2)))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::workloads::{CallSeries, Histogram};

    fn metric(name: &str, value: f64) -> Metric {
        Metric { name: name.into(), label: name.into(), unit: "instructions", value, better: Better::Lower }
    }

    fn run(workload: &str, system: &str, metrics: Vec<Metric>, samples: Option<Samples>) -> Run {
        Run {
            workload: workload.into(),
            system: system.into(),
            args: vec!["10".into()],
            smp: 2,
            icount: true,
            command: "qemu".into(),
            log: format!("logs/{workload}-{system}.log"),
            wall_seconds: 1.5,
            qemu_status: Some(33),
            exit_status: Some(0),
            info: BTreeMap::new(),
            error: None,
            samples,
            metrics,
        }
    }

    fn fwq_series(detours: Vec<[u64; 2]>) -> FwqSeries {
        let lost: u64 = detours.iter().map(|[_, e]| e).sum();
        FwqSeries { core: 0, samples: 1000, quantum: 8192, min: 8204, total: 8204 * 1000 + lost, detours }
    }

    fn results() -> Results {
        let runs = vec![
            run(
                "fwq",
                MANUL_NATIVE,
                vec![metric("noise_ppm", 0.0), metric("max_detour", 0.0)],
                Some(Samples::Fwq { series: vec![fwq_series(vec![])] }),
            ),
            run(
                "fwq",
                LINUX_NATIVE,
                vec![metric("noise_ppm", 2619.5), metric("max_detour", 59631.0)],
                Some(Samples::Fwq { series: vec![fwq_series(vec![[3, 6353], [500, 59631], [900, 2570]])] }),
            ),
            run(
                "syscall",
                MANUL_NATIVE,
                vec![metric("getpid", 305.0), metric("only_manul", 1.0)],
                Some(Samples::Calls {
                    series: vec![CallSeries {
                        call: "getpid".into(),
                        iterations: 2,
                        histogram: Histogram::of([317, 317]),
                    }],
                }),
            ),
            run("syscall", LINUX_NATIVE, vec![metric("getpid", 0.0)], None),
        ];
        let config = Config {
            mode: "quick".into(),
            date: "2025-01-01T00:00:00Z".into(),
            commit: "abc".into(),
            dirty: true,
            qemu_version: "QEMU emulator version 7.2.22".into(),
            host_cpus: 2,
            qemu_common: "-machine q35".into(),
            icount_args: "-icount shift=0,sleep=off".into(),
            unit: "instructions".into(),
            systems: vec![
                SystemConfig {
                    name: MANUL_NATIVE.into(),
                    label: "Manul native".into(),
                    about: "the job".into(),
                    cpus: "N + 1".into(),
                    mem: "512M".into(),
                    cmdline: "job={PROGRAM}".into(),
                },
                SystemConfig {
                    name: LINUX_NATIVE.into(),
                    label: "Linux native".into(),
                    about: "Linux".into(),
                    cpus: "N".into(),
                    mem: "512M".into(),
                    cmdline: "bench.run={PROGRAM}".into(),
                },
            ],
            footprint: vec![
                Footprint { system: MANUL_NATIVE.into(), image: "lwk".into(), file_bytes: 2000, loaded_bytes: 1000 },
                Footprint {
                    system: LINUX_NATIVE.into(),
                    image: "vmlinux".into(),
                    file_bytes: 9000,
                    loaded_bytes: 4000,
                },
            ],
            vmm: VmmFootprint { text_bytes: 70_000, functions: 900, source_lines: 6_000 },
        };
        let comparisons = comparisons(&runs);
        Results { config, runs, comparisons }
    }

    #[test]
    fn comparisons_pair_the_metrics_both_systems_have() {
        let results = results();
        let names: Vec<(&str, &str)> =
            results.comparisons.iter().map(|c| (c.workload.as_str(), c.metric.as_str())).collect();
        assert_eq!(names, [("fwq", "noise_ppm"), ("fwq", "max_detour"), ("syscall", "getpid")]);
        assert_eq!(results.comparisons[0].ratio, Some(0.0));
        assert_eq!(results.comparisons[2].ratio, None, "Linux's 0 divides nothing");
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(59631.0), "59,631");
        assert_eq!(format_number(1234567.4), "1,234,567");
        assert_eq!(format_number(2619.52), "2,620");
        assert_eq!(format_number(7.126), "7.13");
        assert_eq!(format_number(-1500.0), "-1,500");
        assert_eq!(format_number(100.0), "100");
        assert_eq!(format_ratio(Some(0.5)), "0.50");
        assert_eq!(format_ratio(Some(0.001234)), "0.0012");
        assert_eq!(format_ratio(None), "—");
    }

    #[test]
    fn the_report_has_the_tables_goals_and_runs() {
        let md = markdown(&results());
        for needed in [
            "# Manul benchmarks (quick run)",
            "Commit `abc` (with uncommitted changes)",
            "| Manul native | N + 1 | 512M | `job={PROGRAM}` |",
            "## fwq",
            "| noise_ppm | instructions | lower | 0 | 2,620 | 0 |",
            "| max_detour | instructions | lower | 0 | 59,631 | 0 |",
            "| Linux native | 1,000 | 8,204 | 3 | 6,353 / 59,631 / 59,631 | 68,554 | — |",
            "| getpid | instructions | lower | 305 | 0 | — |",
            "| Manul native | getpid | 317 | 317 | 317 | 317 | 317 |",
            "| FWQ noise at most 8 ppm | Manul native | 0 | yes |",
            "| null system call at most 150 instructions | Manul native | 305 | no |",
            "| VMM path per CPUID exit at most 500 instructions | manul-vm | — | not measured |",
            "| VMM code under 512 KiB (bytes of its functions in the LWK) | Manul native | 70,000 | yes |",
            "Loaded size ratio (Manul / Linux): 0.25.",
            "70,000 bytes of code in 900 functions; 6,000 lines",
            "| fwq | Manul native | 2 | yes | 1.5 | 33 | 0 | `logs/fwq-manul-native.log` |",
        ] {
            assert!(md.contains(needed), "the report lacks {needed:?}:\n{md}");
        }
    }

    #[test]
    fn plots_are_svg_with_every_system_named() {
        let quiet = fwq_series(vec![]);
        let noisy = fwq_series(vec![[3, 6353], [500, 59631], [900, 2570], [901, 2]]);
        let systems = vec![("Manul native".to_owned(), &quiet), ("Linux native".to_owned(), &noisy)];
        for svg in [
            fwq_distribution_svg(&systems, "instructions").unwrap(),
            fwq_timeline_svg(&systems, "instructions").unwrap(),
        ] {
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains("Manul native: no detour"), "{svg}");
            assert!(svg.contains("Linux native"), "{svg}");
        }
        let svg = ratios_svg(&results().comparisons).unwrap();
        assert!(svg.contains("fwq: max_detour") && svg.contains("0.00") || svg.contains(" 0"), "{svg}");
        assert!(!svg.contains("syscall: getpid"), "a metric without a ratio has no bar");
    }

    #[test]
    fn everything_is_written() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = write(&dir, &results()).unwrap();
        let names: Vec<String> =
            written.iter().map(|path| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["results.json", "report.md", "fwq-detours.svg", "fwq-timeline.svg", "ratios.svg"]);
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(json["runs"][1]["samples"]["kind"], "fwq");
        assert_eq!(json["runs"][1]["samples"]["series"][0]["detours"][1][1], 59631);
        assert_eq!(json["config"]["qemu_version"], "QEMU emulator version 7.2.22");
        fs::remove_dir_all(&dir).unwrap();
    }
}
