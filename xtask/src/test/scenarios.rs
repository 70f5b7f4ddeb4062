//! The QEMU boot scenarios of `tests/boot-scenarios.toml`: how to boot, how QEMU must exit,
//! which events the serial log must show and which it must not.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use toml::{Table, Value};

use crate::run::events::{Expectation, Matcher};
use crate::run::qemu::{self, MemSize};
use crate::test::fault_campaign::Campaign;

/// The scenario file, relative to the workspace root.
pub const SCENARIOS_FILE: &str = "tests/boot-scenarios.toml";
const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Events that fail a scenario expecting a clean exit, unless it lists its own.
const DEFAULT_REJECT: &[&str] = &["panic", "exception"];

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedExit {
    /// The kernel reports success through isa-debug-exit.
    Success,
    /// The kernel reports failure through isa-debug-exit.
    Failure,
    /// No isa-debug-exit device: the kernel powers off through ACPI.
    Poweroff,
}

impl ExpectedExit {
    /// The QEMU exit status this outcome gives.
    pub fn qemu_status(self) -> i32 {
        match self {
            ExpectedExit::Success => qemu::STATUS_KERNEL_SUCCESS,
            ExpectedExit::Failure => qemu::STATUS_KERNEL_FAILURE,
            ExpectedExit::Poweroff => qemu::STATUS_POWERED_OFF,
        }
    }

    /// Whether the machine has the isa-debug-exit device.
    pub fn debug_exit(self) -> bool {
        self != ExpectedExit::Poweroff
    }
}

#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub smp: u32,
    pub mem: MemSize,
    pub cmdline: String,
    pub timeout_secs: u64,
    pub exit: ExpectedExit,
    pub expect: Vec<Expectation>,
    /// Events that must each appear once, in any order (jobs ending on different cores).
    pub expect_any_order: Vec<Expectation>,
    pub reject: Vec<String>,
    /// Text typed on the serial console, each step once its event has appeared (after the
    /// event of the step before).
    pub input: Vec<InputStep>,
    /// Text the serial log must contain, each piece after the one before it (guest output).
    pub expect_text: Vec<String>,
    /// Whether QEMU passes `target/manul/initrd.cpio` with `-initrd`.
    pub initrd: bool,
    /// Its place in the fault campaign, if it is one of its boots.
    pub campaign: Option<Campaign>,
}

/// One piece of console input: `text` is typed once an event matching each of `after` has
/// appeared (in any order) after the events of the step before.
#[derive(Debug)]
pub struct InputStep {
    pub after: Vec<Expectation>,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    scenario: Vec<RawScenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    smp: u32,
    mem: String,
    #[serde(default)]
    cmdline: String,
    timeout: Option<u64>,
    exit: ExpectedExit,
    #[serde(default)]
    expect: Vec<Table>,
    #[serde(default)]
    expect_any_order: Vec<Table>,
    reject: Option<Vec<String>>,
    /// A string typed after `input_after` (default `boot`), or steps
    /// `{ after = { event = ... }, text = "..." }`.
    input: Option<RawInput>,
    input_after: Option<String>,
    #[serde(default)]
    expect_text: Vec<String>,
    initrd: Option<bool>,
    campaign: Option<Campaign>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawInput {
    Text(String),
    Steps(Vec<Table>),
}

pub fn load(path: &Path) -> Result<Vec<Scenario>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read the scenario file {}", path.display()))?;
    parse(&text, path)
}

/// Parses the text of a scenario file; `origin` names the file in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Vec<Scenario>> {
    let context = || format!("invalid scenario file {}", origin.display());
    let file: ScenarioFile = toml::from_str(text).with_context(context)?;
    ensure!(!file.scenario.is_empty(), "{}: it has no [[scenario]]", context());
    let mut names = HashSet::new();
    let mut scenarios = Vec::new();
    for (index, raw) in file.scenario.into_iter().enumerate() {
        let label = format!("scenario {} (\"{}\")", index + 1, raw.name);
        let scenario = validate(raw).with_context(|| label.clone()).with_context(context)?;
        if !names.insert(scenario.name.clone()) {
            bail!("{}: {label}: the name is used twice", context());
        }
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

fn validate(raw: RawScenario) -> Result<Scenario> {
    ensure!(
        !raw.name.is_empty() && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
        "the name must be non-empty and use only letters, digits, '-', '_' and '.'"
    );
    ensure!(raw.smp >= 1, "smp must be at least 1");
    let mem: MemSize = raw.mem.parse().map_err(anyhow::Error::msg)?;
    let timeout_secs = raw.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    ensure!(timeout_secs >= 1, "timeout must be at least 1 second");
    let expect = raw
        .expect
        .iter()
        .enumerate()
        .map(|(index, entry)| expectation(entry).with_context(|| format!("expect entry {}", index + 1)))
        .collect::<Result<_>>()?;
    let expect_any_order = raw
        .expect_any_order
        .iter()
        .enumerate()
        .map(|(index, entry)| expectation(entry).with_context(|| format!("expect_any_order entry {}", index + 1)))
        .collect::<Result<_>>()?;
    let reject = raw.reject.unwrap_or_else(|| match raw.exit {
        ExpectedExit::Success | ExpectedExit::Poweroff => DEFAULT_REJECT.iter().map(|&name| name.to_owned()).collect(),
        ExpectedExit::Failure => Vec::new(),
    });
    let input = match raw.input {
        None => {
            ensure!(raw.input_after.is_none(), "input_after needs an input");
            Vec::new()
        }
        Some(RawInput::Text(text)) => {
            let event = raw.input_after.unwrap_or_else(|| "boot".to_owned());
            vec![InputStep { after: vec![Expectation { event, fields: Vec::new() }], text }]
        }
        Some(RawInput::Steps(steps)) => {
            ensure!(raw.input_after.is_none(), "input steps name their own `after` events; drop input_after");
            steps
                .iter()
                .enumerate()
                .map(|(index, step)| input_step(step).with_context(|| format!("input step {}", index + 1)))
                .collect::<Result<_>>()?
        }
    };
    Ok(Scenario {
        name: raw.name,
        smp: raw.smp,
        mem,
        cmdline: raw.cmdline,
        timeout_secs,
        exit: raw.exit,
        expect,
        expect_any_order,
        reject,
        input,
        expect_text: raw.expect_text,
        initrd: raw.initrd.unwrap_or(true),
        campaign: raw.campaign,
    })
}

fn input_step(step: &Table) -> Result<InputStep> {
    ensure!(
        step.keys().all(|key| key == "after" || key == "text"),
        "a step is {{ after = {{ event = ... }}, text = \"...\" }}"
    );
    let after = match step.get("after") {
        Some(Value::Table(after)) => vec![expectation(after).context("after")?],
        Some(Value::Array(all)) if !all.is_empty() => all
            .iter()
            .enumerate()
            .map(|(index, entry)| match entry {
                Value::Table(after) => expectation(after).with_context(|| format!("after entry {}", index + 1)),
                other => bail!("after entry {} must be an event table, not {}", index + 1, other.type_str()),
            })
            .collect::<Result<_>>()?,
        Some(other) => bail!("\"after\" must be an event table or a list of them, not {}", other.type_str()),
        None => bail!("it has no \"after\" key"),
    };
    let text = match step.get("text") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => bail!("\"text\" must be a string, not {}", other.type_str()),
        None => bail!("it has no \"text\" key"),
    };
    Ok(InputStep { after, text })
}

fn expectation(entry: &Table) -> Result<Expectation> {
    let event = match entry.get("event") {
        Some(Value::String(event)) => event.clone(),
        Some(other) => bail!("\"event\" must be a string, not {}", other.type_str()),
        None => bail!("it has no \"event\" key"),
    };
    let fields = entry
        .iter()
        .filter(|(key, _)| key.as_str() != "event")
        .map(|(key, value)| {
            let matcher = matcher(value).with_context(|| format!("key \"{key}\""))?;
            Ok((key.clone(), matcher))
        })
        .collect::<Result<_>>()?;
    Ok(Expectation { event, fields })
}

fn matcher(value: &Value) -> Result<Matcher> {
    const FORMS: &str = "use a string, an integer, a boolean, { min = N, max = N } or { contains = \"text\" }";
    match value {
        Value::String(text) => Ok(Matcher::String(text.clone())),
        Value::Integer(n) => Ok(Matcher::Integer(*n)),
        Value::Boolean(b) => Ok(Matcher::Bool(*b)),
        Value::Table(table) if table.contains_key("contains") => {
            ensure!(table.len() == 1, "{{ contains = ... }} takes no other key");
            match &table["contains"] {
                Value::String(text) => Ok(Matcher::Contains(text.clone())),
                other => bail!("contains must be a string, not {}", other.type_str()),
            }
        }
        Value::Table(table) => {
            ensure!(
                !table.is_empty() && table.keys().all(|key| key == "min" || key == "max"),
                "a table must be {{ min = N, max = N }} (either bound optional) or {{ contains = \"text\" }}"
            );
            let bound = |name: &str| match table.get(name) {
                None => Ok(None),
                Some(Value::Integer(n)) => Ok(Some(*n)),
                Some(other) => bail!("{name} must be an integer, not {}", other.type_str()),
            };
            let (min, max) = (bound("min")?, bound("max")?);
            if let (Some(min), Some(max)) = (min, max) {
                ensure!(min <= max, "min ({min}) is greater than max ({max})");
            }
            Ok(Matcher::Range { min, max })
        }
        other => bail!("unsupported {} value: {FORMS}", other.type_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "tests/boot-scenarios.toml";

    fn parse_ok(text: &str) -> Vec<Scenario> {
        parse(text, Path::new(ORIGIN)).unwrap_or_else(|error| panic!("{error:#}"))
    }

    fn parse_error(text: &str) -> String {
        let error = parse(text, Path::new(ORIGIN)).expect_err("parsing should fail");
        format!("{error:#}")
    }

    #[test]
    fn input_is_a_string_or_steps_after_events() {
        let head = "[[scenario]]\nname = \"s\"\nsmp = 1\nmem = \"128M\"\nexit = \"success\"\n";
        let plain = parse_ok(&format!("{head}input = \"help\\r\"\n")).remove(0);
        assert_eq!(plain.input.len(), 1);
        assert_eq!((plain.input[0].after[0].event.as_str(), plain.input[0].text.as_str()), ("boot", "help\r"));
        let steps = parse_ok(&format!(
            "{head}input = [{{ after = {{ event = \"vm_exit\", vm = \"a\" }}, text = \"list\\r\" }}, \
             {{ after = {{ event = \"enclave_state\" }}, text = \"poweroff\\r\" }}]\n\
             expect_text = [\"MANUL-GUEST-INIT-OK\"]\n"
        ))
        .remove(0);
        assert_eq!(steps.input.len(), 2);
        assert_eq!(steps.input[0].after[0].fields, vec![("vm".to_owned(), Matcher::String("a".into()))]);
        assert_eq!(steps.input[1].text, "poweroff\r");
        assert_eq!(steps.expect_text, ["MANUL-GUEST-INIT-OK"]);
        let both = parse_ok(&format!(
            "{head}input = [{{ after = [{{ event = \"job_exit\" }}, {{ event = \"vm_exit\" }}], text = \"x\" }}]\n"
        ))
        .remove(0);
        let names: Vec<&str> = both.input[0].after.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(names, ["job_exit", "vm_exit"]);
        let error = parse_error(&format!("{head}input = [{{ after = [], text = \"x\" }}]\n"));
        assert!(error.contains("an event table or a list of them"), "{error}");
        let error = parse_error(&format!("{head}input = [{{ text = \"x\" }}]\n"));
        assert!(error.contains("input step 1") && error.contains("no \"after\""), "{error}");
        let error = parse_error(&format!(
            "{head}input = [{{ after = {{ event = \"boot\" }}, text = \"x\" }}]\ninput_after = \"boot\"\n"
        ));
        assert!(error.contains("drop input_after"), "{error}");
    }

    #[test]
    fn a_full_scenario_is_read() {
        let scenarios = parse_ok(
            r#"
            [[scenario]]
            name = "smp1-128m"
            smp = 1
            mem = "128M"
            cmdline = "then=poweroff"
            timeout = 30
            exit = "success"
            expect = [
              { event = "boot", cpus = 1, mem_mib = { min = 116, max = 128 } },
              { event = "panic", message = { contains = "deliberate" }, fatal = true, id = "x" },
            ]
            reject = ["exception"]
            "#,
        );
        assert_eq!(scenarios.len(), 1);
        let scenario = &scenarios[0];
        assert_eq!(scenario.name, "smp1-128m");
        assert_eq!((scenario.smp, scenario.mem.to_string().as_str()), (1, "128M"));
        assert_eq!(scenario.cmdline, "then=poweroff");
        assert_eq!(scenario.timeout_secs, 30);
        assert_eq!(scenario.exit, ExpectedExit::Success);
        assert_eq!(scenario.reject, ["exception"]);
        assert_eq!(
            scenario.expect[0],
            Expectation {
                event: "boot".into(),
                fields: vec![
                    ("cpus".into(), Matcher::Integer(1)),
                    ("mem_mib".into(), Matcher::Range { min: Some(116), max: Some(128) }),
                ],
            }
        );
        assert_eq!(
            scenario.expect[1].to_string(),
            r#"{ event = "panic", fatal = true, id = "x", message = { contains = "deliberate" } }"#
        );
    }

    #[test]
    fn defaults_depend_on_the_expected_exit() {
        let scenarios = parse_ok(
            r#"
            [[scenario]]
            name = "a"
            smp = 2
            mem = "1G"
            exit = "poweroff"

            [[scenario]]
            name = "b"
            smp = 2
            mem = "1G"
            exit = "failure"
            initrd = false
            "#,
        );
        let a = &scenarios[0];
        assert_eq!((a.cmdline.as_str(), a.timeout_secs), ("", 60));
        assert!(a.initrd, "the initrd is passed by default");
        assert!(!scenarios[1].initrd);
        assert!(a.expect.is_empty());
        assert_eq!(a.reject, ["panic", "exception"]);
        assert!(!a.exit.debug_exit());
        assert_eq!(a.exit.qemu_status(), 0);
        assert!(scenarios[1].reject.is_empty());
        assert_eq!(scenarios[1].exit.qemu_status(), 35);
    }

    #[test]
    fn malformed_files_name_the_file_and_the_problem() {
        let base = "[[scenario]]\nname = \"a\"\nsmp = 1\nmem = \"128M\"\nexit = \"success\"\n";
        let cases = [
            ("[[scenario]\n", "invalid scenario file tests/boot-scenarios.toml"),
            ("", "it has no [[scenario]]"),
            ("[[scenario]]\nname = \"a\"\n", "missing field"),
            (&format!("{base}colour = 1\n"), "unknown field `colour`"),
            (&base.replace("success", "ok"), "unknown variant `ok`"),
            (&base.replace("128M", "128X"), "invalid memory size '128X'"),
            (&base.replace("smp = 1", "smp = 0"), "smp must be at least 1"),
            (&base.replace("\"a\"", "\"a b\""), "the name must be"),
            (&format!("{base}timeout = 0\n"), "timeout must be at least 1 second"),
            (&format!("{base}initrd = \"no\"\n"), "invalid type: string \"no\", expected a boolean"),
            (&format!("{base}{base}"), "scenario 2 (\"a\"): the name is used twice"),
            (&format!("{base}expect = [{{ cpus = 1 }}]\n"), "expect entry 1: it has no \"event\" key"),
            (&format!("{base}expect = [{{ event = 1 }}]\n"), "\"event\" must be a string"),
            (
                &format!("{base}expect = [{{ event = \"boot\" }}, {{ event = \"x\", cpus = [1] }}]\n"),
                "expect entry 2: key \"cpus\": unsupported array value",
            ),
            (
                &format!("{base}expect = [{{ event = \"x\", n = {{ min = 3, max = 2 }} }}]\n"),
                "min (3) is greater than max (2)",
            ),
            (&format!("{base}expect = [{{ event = \"x\", n = {{ min = 1.5 }} }}]\n"), "min must be an integer"),
            (&format!("{base}expect = [{{ event = \"x\", n = {{ }} }}]\n"), "a table must be"),
            (&format!("{base}expect = [{{ event = \"x\", n = {{ least = 1 }} }}]\n"), "a table must be"),
            (
                &format!("{base}expect = [{{ event = \"x\", n = {{ contains = \"a\", max = 1 }} }}]\n"),
                "takes no other key",
            ),
            (&format!("{base}expect = [{{ event = \"x\", n = {{ contains = 1 }} }}]\n"), "contains must be a string"),
        ];
        for (text, expected) in cases {
            let error = parse_error(text);
            assert!(error.starts_with("invalid scenario file tests/boot-scenarios.toml"), "{error}");
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[test]
    fn load_names_a_missing_file() {
        let error = load(Path::new("/nonexistent/boot-scenarios.toml")).unwrap_err();
        assert!(format!("{error:#}").contains("cannot read the scenario file /nonexistent/boot-scenarios.toml"));
    }

    #[test]
    fn the_project_scenario_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SCENARIOS_FILE);
        let scenarios = load(&path).unwrap_or_else(|error| panic!("{error:#}"));
        assert!(scenarios.iter().any(|s| s.name == "smp1-128m"));
        // Both ways of booting stay tested.
        assert!(scenarios.iter().any(|s| s.initrd) && scenarios.iter().any(|s| !s.initrd));
    }
}
