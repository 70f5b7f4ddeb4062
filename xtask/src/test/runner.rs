//! `cargo xtask test`: the host unit tests of every crate, the kernel and initrd builds, then the
//! QEMU boot scenarios, each a named item that passes or fails.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::artifacts::initrd;
use crate::artifacts::kernel_build::{self, KERNEL_CRATE, Profile};
use crate::host::prerequisites::{self, Purpose};
use crate::host::process;
use crate::host::workspace::{self, Workspace};
use crate::run::events;
use crate::run::qemu::{self, Completion, Machine};
use crate::test::fault_campaign;
use crate::test::scenarios::{self, InputStep, Scenario};

/// The crates whose host unit tests run, in this order.
const UNIT_TEST_CRATES: &[&str] = &["lwk", "lwk-hal", "embedded-vmm", "enclave", "xtask"];
/// How much of a failed item's log is shown.
const LOG_TAIL_LINES: usize = 30;

enum Item<'a> {
    Unit(&'static str),
    Build,
    Initrd,
    Boot(&'a Scenario),
    /// `cargo xtask bench --smoke`: every workload once, briefly, on every system.
    BenchSmoke,
}

impl Item<'_> {
    fn name(&self) -> String {
        match self {
            Item::Unit(krate) => format!("unit:{krate}"),
            Item::Build => format!("build:{KERNEL_CRATE}"),
            Item::Initrd => "build:initrd".into(),
            Item::Boot(scenario) => format!("boot:{}", scenario.name),
            Item::BenchSmoke => "bench:smoke".into(),
        }
    }
}

enum Outcome {
    Pass {
        /// Worth telling although the item passed (what a build left out, ...).
        notes: Vec<String>,
    },
    Fail {
        reason: String,
        /// Shown after the reason, when the item got that far.
        log: Option<PathBuf>,
    },
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn record(&mut self, workspace: &Workspace, name: &str, started: Instant, outcome: Outcome) {
        match outcome {
            Outcome::Pass { notes } => {
                self.passed += 1;
                println!("PASS {name} ({:.1} s)", started.elapsed().as_secs_f64());
                for note in notes {
                    println!("    note: {note}");
                }
            }
            Outcome::Fail { reason, log } => {
                self.failed += 1;
                println!("FAIL {name}: {reason}");
                if let Some(log) = log {
                    print_log_tail(workspace, &log);
                }
            }
        }
    }
}

/// Runs the items whose name contains `filter` (all without one) and prints the summary.
pub fn run(workspace: &Workspace, filter: Option<&str>) -> Result<ExitCode> {
    let scenarios = scenarios::load(&workspace.root().join(scenarios::SCENARIOS_FILE))?;
    let items: Vec<Item> = UNIT_TEST_CRATES
        .iter()
        .map(|&krate| Item::Unit(krate))
        .chain([Item::Build, Item::Initrd])
        .chain(scenarios.iter().map(Item::Boot))
        .chain([Item::BenchSmoke])
        .collect();
    let selected = |item: &Item| filter.is_none_or(|filter| item.name().contains(filter));
    let boots = items.iter().any(|item| matches!(item, Item::Boot(_)) && selected(item));
    let boots_with_initrd =
        items.iter().any(|item| matches!(item, Item::Boot(scenario) if scenario.initrd) && selected(item));
    // A boot scenario needs the kernel and, unless it says otherwise, the initrd: selecting it
    // selects their builds.
    let chosen: Vec<&Item> = items
        .iter()
        .filter(|item| {
            selected(item)
                || (matches!(item, Item::Build) && boots)
                || (matches!(item, Item::Initrd) && boots_with_initrd)
        })
        .collect();
    if chosen.is_empty() {
        let names: Vec<String> = items.iter().map(Item::name).collect();
        bail!("no test item name contains \"{}\"; the items are: {}", filter.unwrap_or_default(), names.join(", "));
    }
    if boots {
        prerequisites::ensure(&[Purpose::Boot])?;
    }
    let logs = workspace.logs_dir();
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;

    let mut tally = Tally::default();
    let mut campaign = Vec::new();
    // The builds come before every boot item.
    let (mut built, mut initrd_built) = (true, true);
    for item in chosen {
        let started = Instant::now();
        let outcome = match item {
            Item::Unit(krate) => unit_tests(workspace, krate),
            Item::Build => {
                let outcome = build_kernel(workspace);
                built = matches!(outcome, Outcome::Pass { .. });
                outcome
            }
            Item::Initrd => {
                let outcome = build_initrd(workspace);
                initrd_built = matches!(outcome, Outcome::Pass { .. });
                outcome
            }
            Item::Boot(_) if !built => Outcome::Fail { reason: "skipped: the kernel did not build".into(), log: None },
            Item::Boot(scenario) if scenario.initrd && !initrd_built => {
                Outcome::Fail { reason: "skipped: the initrd did not build".into(), log: None }
            }
            Item::Boot(scenario) => boot(workspace, scenario),
            Item::BenchSmoke => bench_smoke(workspace),
        };
        if let Item::Boot(scenario) = item
            && let Some(tag) = &scenario.campaign
        {
            let text = process::read_log(&log_path(workspace, &format!("boot-{}", scenario.name))).unwrap_or_default();
            let passed = matches!(outcome, Outcome::Pass { .. });
            campaign.push(fault_campaign::row(tag, &events::parse_log(&text).events, passed));
        }
        tally.record(workspace, &item.name(), started, outcome);
    }
    if !campaign.is_empty() {
        println!("\nFault campaign (docs/enclaves.md, \"Isolation policies and error zones\"):\n");
        print!("{}", fault_campaign::table(&campaign));
        println!();
    }

    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(if tally.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn log_path(workspace: &Workspace, stem: &str) -> PathBuf {
    workspace.logs_dir().join(format!("{stem}.log"))
}

/// Runs a command to completion with its output in `log`; passes when it succeeds.
fn logged(mut command: Command, log: PathBuf) -> Outcome {
    match process::run_logged(&mut command, &log) {
        Ok(status) if status.success() => Outcome::Pass { notes: Vec::new() },
        Ok(status) => {
            Outcome::Fail { reason: format!("`{}` failed ({status})", process::describe(&command)), log: Some(log) }
        }
        Err(error) => Outcome::Fail { reason: format!("{error:#}"), log: None },
    }
}

/// `cargo test -p CRATE` for the host.
fn unit_tests(workspace: &Workspace, krate: &str) -> Outcome {
    let mut command = Command::new(workspace::cargo());
    command.current_dir(workspace.root()).args(["test", "-p", krate]);
    logged(command, log_path(workspace, &format!("unit-{krate}")))
}

/// The benchmark harness end to end, briefly (it builds what it needs itself): it passes when
/// every run gave numbers; what they are is not judged.
fn bench_smoke(workspace: &Workspace) -> Outcome {
    let xtask = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => return Outcome::Fail { reason: format!("cannot find the xtask binary: {error}"), log: None },
    };
    let mut command = Command::new(xtask);
    let out = workspace.bench_results_dir().with_file_name("bench-smoke");
    command.current_dir(workspace.root()).args(["bench", "--smoke", "--out"]).arg(out);
    logged(command, log_path(workspace, "bench-smoke"))
}

/// The release kernel, installed at `target/manul/lwk`.
fn build_kernel(workspace: &Workspace) -> Outcome {
    let command = match kernel_build::cargo_build_command(workspace, Profile::Release) {
        Ok(command) => command,
        Err(error) => return Outcome::Fail { reason: format!("{error:#}"), log: None },
    };
    let log = log_path(workspace, &format!("build-{KERNEL_CRATE}"));
    match logged(command, log) {
        Outcome::Pass { notes } => match kernel_build::install_image(workspace, Profile::Release) {
            Ok(_) => Outcome::Pass { notes },
            Err(error) => Outcome::Fail { reason: format!("{error:#}"), log: None },
        },
        failed => failed,
    }
}

/// The test programs, busybox and `target/manul/initrd.cpio`, with the progress in a log.
fn build_initrd(workspace: &Workspace) -> Outcome {
    let log = log_path(workspace, "build-initrd");
    let mut file = match File::create(&log) {
        Ok(file) => file,
        Err(error) => {
            return Outcome::Fail { reason: format!("cannot create log file {}: {error}", log.display()), log: None };
        }
    };
    match prerequisites::ensure(&[Purpose::Initrd]).and_then(|()| initrd::build(workspace, &mut file)) {
        Ok(summary) => Outcome::Pass { notes: summary.notes },
        Err(error) => {
            // The log holds the progress before the failure, if any.
            let worth_showing = fs::metadata(&log).is_ok_and(|metadata| metadata.len() > 0);
            Outcome::Fail { reason: format!("{error:#}"), log: worth_showing.then_some(log) }
        }
    }
}

/// Boots one scenario with its serial console in its log, then judges the log and exit status.
fn boot(workspace: &Workspace, scenario: &Scenario) -> Outcome {
    let kernel = workspace.kernel_image();
    let initrd = workspace.initrd();
    let mut command = qemu::command(&Machine {
        kernel: &kernel,
        initrd: scenario.initrd.then_some(initrd.as_path()),
        smp: scenario.smp,
        mem: scenario.mem,
        cmdline: &scenario.cmdline,
        debug_exit: scenario.exit.debug_exit(),
    });
    command.args(["-serial", "stdio", "-monitor", "none"]);
    let log = log_path(workspace, &format!("boot-{}", scenario.name));
    let fail = |reason: String, log: Option<PathBuf>| Outcome::Fail { reason, log };

    let stdin = if scenario.input.is_empty() { Stdio::null() } else { Stdio::piped() };
    let started = Instant::now();
    let timeout = Duration::from_secs(scenario.timeout_secs);
    let completion = match process::spawn_logged(&mut command, stdin, &log) {
        Ok(mut child) => type_input(&mut child, &scenario.input, &log, started + timeout)
            .and_then(|()| qemu::wait_with_timeout(&mut child, timeout.saturating_sub(started.elapsed()))),
        Err(error) => return fail(format!("QEMU failed to start: {error:#}"), None),
    };
    let completion = match completion {
        Ok(completion) => completion,
        Err(error) => return fail(format!("{error:#}"), Some(log)),
    };
    let text = match process::read_log(&log) {
        Ok(text) => text,
        Err(error) => return fail(format!("{error:#}"), None),
    };

    let failures = judge(scenario, &completion, &text);
    if failures.is_empty() { Outcome::Pass { notes: Vec::new() } } else { fail(failures.join("; "), Some(log)) }
}

/// Writes each input step to QEMU's serial console once the log shows its events after the
/// events of the step before (typing before the `boot` event could be lost when the kernel
/// resets its UART), then closes the console's input. Gives up quietly at `deadline` or when
/// QEMU exits: the judgement then reports what is missing.
fn type_input(child: &mut Child, steps: &[InputStep], log: &Path, deadline: Instant) -> Result<()> {
    let Some(mut stdin) = child.stdin.take() else { return Ok(()) };
    // Events before this index belong to steps already typed.
    let mut position = 0;
    for step in steps {
        loop {
            if Instant::now() >= deadline || child.try_wait().context("cannot poll QEMU")?.is_some() {
                return Ok(());
            }
            let events = events::parse_log(&process::read_log(log)?).events;
            let found: Option<Vec<usize>> = step
                .after
                .iter()
                .map(|after| events.iter().skip(position).position(|event| after.matches(event)))
                .collect();
            if let Some(offsets) = found {
                position += offsets.into_iter().max().unwrap_or(0) + 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // QEMU may already be gone; the exit status and events then tell what happened.
        if stdin.write_all(step.text.as_bytes()).and_then(|()| stdin.flush()).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The first piece of `expected` text not found in `log` after the pieces before it.
fn missing_text(expected: &[String], log: &str) -> Option<String> {
    let mut rest = log;
    for (index, text) in expected.iter().enumerate() {
        match rest.find(text.as_str()) {
            Some(at) => rest = &rest[at + text.len()..],
            None if index == 0 => return Some(format!("expected text not found in the log: {text:?}")),
            None => {
                return Some(format!("expected text not found after {:?}: {text:?}", expected[index - 1]));
            }
        }
    }
    None
}

/// Everything wrong with a finished boot, from how QEMU ended and the serial log.
fn judge(scenario: &Scenario, completion: &Completion, log: &str) -> Vec<String> {
    let parsed = events::parse_log(log);
    if matches!(completion, Completion::Exited(Some(qemu::STATUS_QEMU_ERROR))) && parsed.events.is_empty() {
        // QEMU's own complaint is the last thing it printed.
        let complaint = log.lines().rev().find(|line| !line.trim().is_empty());
        return vec![format!(
            "QEMU failed to start (exit status {}): {}",
            qemu::STATUS_QEMU_ERROR,
            complaint.unwrap_or("it printed nothing")
        )];
    }
    let mut failures = Vec::new();
    let expected = scenario.exit.qemu_status();
    match *completion {
        Completion::TimedOut => {
            failures.push(format!("timed out after {} s", scenario.timeout_secs));
        }
        Completion::Exited(status) if status != Some(expected) => {
            failures.push(format!(
                "QEMU exit status: expected {expected} ({}), got {} ({})",
                qemu::describe_status(Some(expected)),
                status.map_or_else(|| "none".to_owned(), |code| code.to_string()),
                qemu::describe_status(status)
            ));
        }
        Completion::Exited(_) => {}
    }
    if let Some(first) = parsed.malformed.first() {
        failures.push(match parsed.malformed.len() - 1 {
            0 => first.clone(),
            more => format!("{first} (and {more} more malformed event lines)"),
        });
    }
    failures.extend(events::check(&parsed.events, &scenario.expect, &scenario.expect_any_order, &scenario.reject));
    failures.extend(missing_text(&scenario.expect_text, log));
    failures
}

fn print_log_tail(workspace: &Workspace, log: &Path) {
    match process::read_log(log) {
        Ok(text) => {
            println!("    --- last {LOG_TAIL_LINES} lines of {} ---", workspace.display(log));
            for line in process::last_lines(&text, LOG_TAIL_LINES) {
                println!("    {}", line.strip_suffix('\r').unwrap_or(line));
            }
        }
        Err(error) => println!("    ({error:#})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(exit: &str) -> Scenario {
        let text = format!(
            "[[scenario]]\nname = \"s\"\nsmp = 1\nmem = \"128M\"\ntimeout = 5\nexit = \"{exit}\"\n\
             expect = [{{ event = \"boot\" }}, {{ event = \"shutdown\" }}]\n"
        );
        scenarios::parse(&text, Path::new("test.toml")).unwrap().remove(0)
    }

    const CLEAN_LOG: &str = "$ qemu-system-x86_64 ...\n\
                             @manul {\"event\":\"boot\"}\r\n\
                             @manul {\"event\":\"shutdown\"}\r\n";

    #[test]
    fn expected_text_is_found_in_order() {
        let log = "[vm linux] manul-guest: kernel 6.1.0\n[vm linux] MANUL-GUEST-INIT-OK\n";
        let pieces = |texts: &[&str]| texts.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        assert_eq!(missing_text(&pieces(&["kernel 6.1", "INIT-OK"]), log), None);
        assert_eq!(missing_text(&[], log), None);
        let out_of_order = missing_text(&pieces(&["INIT-OK", "kernel 6.1"]), log).unwrap();
        assert!(out_of_order.contains("after \"INIT-OK\""), "{out_of_order}");
        let absent = missing_text(&pieces(&["2 online CPUs"]), log).unwrap();
        assert!(absent.contains("not found in the log"), "{absent}");
    }

    #[test]
    fn a_clean_boot_passes() {
        let success = Completion::Exited(Some(qemu::STATUS_KERNEL_SUCCESS));
        assert!(judge(&scenario("success"), &success, CLEAN_LOG).is_empty());
        let powered_off = Completion::Exited(Some(qemu::STATUS_POWERED_OFF));
        assert!(judge(&scenario("poweroff"), &powered_off, CLEAN_LOG).is_empty());
    }

    #[test]
    fn a_wrong_exit_status_is_explained() {
        let failed = Completion::Exited(Some(qemu::STATUS_KERNEL_FAILURE));
        let failures = judge(&scenario("success"), &failed, CLEAN_LOG);
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].starts_with("QEMU exit status: expected 33 (the kernel reported success"),
            "{}",
            failures[0]
        );
        assert!(failures[0].contains("got 35 (the kernel reported failure"));
        let killed = judge(&scenario("failure"), &Completion::Exited(None), CLEAN_LOG);
        assert!(killed[0].contains("got none (QEMU was killed by a signal)"));
    }

    #[test]
    fn qemu_failing_to_start_is_reported_with_its_complaint() {
        let log = "$ qemu-system-x86_64 ...\n\
                   qemu: could not open kernel file 'target/manul/lwk': No such file or directory\n";
        let failures = judge(&scenario("success"), &Completion::Exited(Some(1)), log);
        assert_eq!(
            failures,
            ["QEMU failed to start (exit status 1): qemu: could not open kernel file \
              'target/manul/lwk': No such file or directory"]
        );
    }

    #[test]
    fn a_timeout_is_reported_with_what_the_log_lacks() {
        let failures = judge(&scenario("success"), &Completion::TimedOut, "@manul {\"event\":\"boot\"}\n");
        assert_eq!(failures[0], "timed out after 5 s");
        assert!(failures[1].starts_with("expected event not found: { event = \"shutdown\" }"));
    }

    #[test]
    fn bad_json_after_the_prefix_fails_the_scenario() {
        let log = format!("{CLEAN_LOG}@manul {{\"event\":\"late\",\n@manul nonsense\n");
        let success = Completion::Exited(Some(qemu::STATUS_KERNEL_SUCCESS));
        let failures = judge(&scenario("success"), &success, &log);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("malformed event at log line 4: invalid JSON"), "{}", failures[0]);
        assert!(failures[0].ends_with("(and 1 more malformed event lines)"));
    }

    #[test]
    fn rejected_events_fail_a_clean_exit() {
        let log = format!("{CLEAN_LOG}@manul {{\"event\":\"panic\",\"message\":\"x\"}}\n");
        let success = Completion::Exited(Some(qemu::STATUS_KERNEL_SUCCESS));
        let failures = judge(&scenario("success"), &success, &log);
        assert_eq!(failures, ["rejected event at log line 4: @manul {\"event\":\"panic\",\"message\":\"x\"}"]);
    }
}
