//! The kernel's machine-readable events on the serial console, and matching them against a
//! scenario's expectations.
//!
//! An event is a line `@manul {"event":"NAME",...}`: the prefix starts the line and a JSON
//! object with a string "event" key follows.

use std::fmt;

use serde_json::{Map, Number, Value};

pub const EVENT_PREFIX: &str = "@manul ";

pub struct Event {
    /// 1-based line number in the log.
    pub line_number: usize,
    /// The line as the kernel printed it.
    pub line: String,
    pub name: String,
    pub fields: Map<String, Value>,
}

/// The events of a log, and the event lines that could not be read.
pub struct ParsedLog {
    pub events: Vec<Event>,
    pub malformed: Vec<String>,
}

pub fn parse_log(text: &str) -> ParsedLog {
    let mut log = ParsedLog { events: Vec::new(), malformed: Vec::new() };
    for (index, line) in text.lines().enumerate() {
        match parse_line(index + 1, line) {
            None => {}
            Some(Ok(event)) => log.events.push(event),
            Some(Err(problem)) => log.malformed.push(problem),
        }
    }
    log
}

/// `None` for a line that is not an event line; an error for an event line that is not valid.
fn parse_line(line_number: usize, line: &str) -> Option<Result<Event, String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let json = line.strip_prefix(EVENT_PREFIX)?;
    let malformed = |why: String| Err(format!("malformed event at log line {line_number}: {why}: {line}"));
    let fields = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Some(malformed("not a JSON object".into())),
        Err(error) => return Some(malformed(format!("invalid JSON ({error})"))),
    };
    let name = match fields.get("event") {
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Some(malformed("\"event\" is not a string".into())),
        None => return Some(malformed("no \"event\" key".into())),
    };
    Some(Ok(Event { line_number, line: line.to_owned(), name, fields }))
}

/// What one key of an expectation accepts.
#[derive(Debug, PartialEq)]
pub enum Matcher {
    String(String),
    Integer(i64),
    Bool(bool),
    /// A number within the bounds, inclusive.
    Range {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// A string containing the text.
    Contains(String),
}

impl Matcher {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Matcher::String(expected), Value::String(actual)) => expected == actual,
            (Matcher::Integer(expected), Value::Number(actual)) => integer(actual) == Some(i128::from(*expected)),
            (Matcher::Bool(expected), Value::Bool(actual)) => expected == actual,
            (Matcher::Range { min, max }, Value::Number(actual)) => {
                within(actual, min.map(i128::from), max.map(i128::from))
            }
            (Matcher::Contains(text), Value::String(actual)) => actual.contains(text.as_str()),
            _ => false,
        }
    }
}

/// A JSON integer, whether serde_json holds it as i64 or u64.
fn integer(number: &Number) -> Option<i128> {
    number.as_i64().map(i128::from).or_else(|| number.as_u64().map(i128::from))
}

fn within(number: &Number, min: Option<i128>, max: Option<i128>) -> bool {
    match integer(number) {
        Some(n) => min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max),
        None => {
            // A fraction: bounds are far below 2^53, so converting them is exact.
            let Some(n) = number.as_f64() else {
                return false;
            };
            min.is_none_or(|min| n >= min as f64) && max.is_none_or(|max| n <= max as f64)
        }
    }
}

/// Written like the TOML that produced it.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::String(text) => write!(f, "{}", Value::from(text.as_str())),
            Matcher::Integer(n) => write!(f, "{n}"),
            Matcher::Bool(b) => write!(f, "{b}"),
            Matcher::Range { min, max } => {
                let bounds: Vec<String> = [("min", min), ("max", max)]
                    .into_iter()
                    .filter_map(|(name, bound)| bound.map(|b| format!("{name} = {b}")))
                    .collect();
                write!(f, "{{ {} }}", bounds.join(", "))
            }
            Matcher::Contains(text) => {
                write!(f, "{{ contains = {} }}", Value::from(text.as_str()))
            }
        }
    }
}

/// An event the log must contain: every key must be in the event and match.
#[derive(Debug, PartialEq)]
pub struct Expectation {
    /// The event name, kept apart because every expectation has one.
    pub event: String,
    pub fields: Vec<(String, Matcher)>,
}

impl Expectation {
    pub fn matches(&self, event: &Event) -> bool {
        event.name == self.event
            && self
                .fields
                .iter()
                .all(|(key, matcher)| event.fields.get(key).is_some_and(|value| matcher.matches(value)))
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{ event = {}", Value::from(self.event.as_str()))?;
        for (key, matcher) in &self.fields {
            write!(f, ", {key} = {matcher}")?;
        }
        write!(f, " }}")
    }
}

/// Everything wrong with `events`: a rejected event, or the first expectation that has no
/// match after the matches of the ones before it.
pub fn check(events: &[Event], expect: &[Expectation], any_order: &[Expectation], reject: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    let rejected: Vec<&Event> = events.iter().filter(|event| reject.contains(&event.name)).collect();
    if let Some(first) = rejected.first() {
        let more = match rejected.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more rejected events)"),
        };
        failures.push(format!("rejected event at log line {}: {}{more}", first.line_number, first.line));
    }
    // Each unordered entry needs an event of its own, anywhere in the log.
    let mut used = vec![false; events.len()];
    for expectation in any_order {
        match events.iter().enumerate().position(|(i, event)| !used[i] && expectation.matches(event)) {
            Some(i) => used[i] = true,
            None => failures.push(format!("expected event (in any order) not found: {expectation}")),
        }
    }
    let mut position = 0;
    for (index, expectation) in expect.iter().enumerate() {
        match events[position..].iter().position(|event| expectation.matches(event)) {
            Some(offset) => position += offset + 1,
            None => {
                failures.push(missing(events, expect, index, position));
                break;
            }
        }
    }
    failures
}

/// Why `expect[index]` found no match among `events[position..]`.
fn missing(events: &[Event], expect: &[Expectation], index: usize, position: usize) -> String {
    let expectation = &expect[index];
    let mut message = format!("expected event not found: {expectation}");
    if index > 0 {
        let previous = &events[position - 1];
        message += &format!(" (after the match of {} at log line {})", expect[index - 1], previous.line_number);
    }
    let same_name_after = events[position..].iter().find(|event| event.name == expectation.event);
    let same_name_anywhere = events.iter().find(|event| event.name == expectation.event);
    match (same_name_after, same_name_anywhere) {
        (Some(event), _) => {
            message += &format!("; nearest \"{}\" event, line {}: {}", event.name, event.line_number, event.line)
        }
        (None, Some(event)) => {
            message += &format!("; a matching name appears only earlier, line {}: {}", event.line_number, event.line)
        }
        (None, None) => message += &format!("; no \"{}\" event at all", expectation.event),
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        let log = parse_log(text);
        assert!(log.malformed.is_empty(), "{:?}", log.malformed);
        log.events
    }

    fn expectation(event: &str, fields: Vec<(&str, Matcher)>) -> Expectation {
        Expectation {
            event: event.into(),
            fields: fields.into_iter().map(|(key, matcher)| (key.to_owned(), matcher)).collect(),
        }
    }

    fn matches(expectation: &Expectation, line: &str) -> bool {
        let events = events(line);
        assert_eq!(events.len(), 1);
        expectation.matches(&events[0])
    }

    const BOOT: &str =
        r#"@manul {"event":"boot","cpus":4,"mem_mib":1020,"acpi":true,"cpu":"QEMU TCG","big":18446744073709551615}"#;

    #[test]
    fn scalars_match_equal_values_of_the_same_type() {
        use Matcher::*;
        assert!(matches(&expectation("boot", vec![]), BOOT));
        assert!(!matches(&expectation("shutdown", vec![]), BOOT));
        assert!(matches(&expectation("boot", vec![("cpus", Integer(4))]), BOOT));
        assert!(!matches(&expectation("boot", vec![("cpus", Integer(2))]), BOOT));
        assert!(!matches(&expectation("boot", vec![("cpus", String("4".into()))]), BOOT));
        assert!(matches(&expectation("boot", vec![("acpi", Bool(true))]), BOOT));
        assert!(!matches(&expectation("boot", vec![("acpi", Bool(false))]), BOOT));
        assert!(matches(&expectation("boot", vec![("cpu", String("QEMU TCG".into()))]), BOOT));
        assert!(!matches(&expectation("boot", vec![("cpu", String("QEMU".into()))]), BOOT));
        assert!(!matches(&expectation("boot", vec![("big", Integer(-1))]), BOOT));
        let float = r#"@manul {"event":"boot","cpus":4.0}"#;
        assert!(!matches(&expectation("boot", vec![("cpus", Integer(4))]), float));
    }

    #[test]
    fn ranges_are_inclusive_and_open_ended() {
        let range = |min, max| expectation("boot", vec![("mem_mib", Matcher::Range { min, max })]);
        assert!(matches(&range(Some(921), Some(1024)), BOOT));
        assert!(matches(&range(Some(1020), Some(1020)), BOOT));
        assert!(!matches(&range(Some(1021), None), BOOT));
        assert!(!matches(&range(None, Some(1019)), BOOT));
        assert!(matches(&range(None, None), BOOT));
        let big = |min| expectation("boot", vec![("big", Matcher::Range { min, max: None })]);
        assert!(matches(&big(Some(i64::MAX)), BOOT));
        let float = r#"@manul {"event":"boot","mem_mib":1.5}"#;
        assert!(matches(&range(Some(1), Some(2)), float));
        assert!(!matches(&range(Some(2), None), float));
        let text = expectation("boot", vec![("cpu", Matcher::Range { min: None, max: None })]);
        assert!(!matches(&text, BOOT));
    }

    #[test]
    fn contains_matches_substrings_of_strings_only() {
        let contains = |key: &str, text: &str| expectation("boot", vec![(key, Matcher::Contains(text.into()))]);
        assert!(matches(&contains("cpu", "TCG"), BOOT));
        assert!(!matches(&contains("cpu", "KVM"), BOOT));
        assert!(!matches(&contains("cpus", "4"), BOOT));
    }

    #[test]
    fn a_key_missing_from_the_event_never_matches() {
        let expectation = expectation("boot", vec![("numa_nodes", Matcher::Range { min: None, max: None })]);
        assert!(!matches(&expectation, BOOT));
    }

    #[test]
    fn expectations_match_in_order() {
        let log = events(concat!(
            "@manul {\"event\":\"boot\",\"cpus\":2}\n",
            "@manul {\"event\":\"irq_stats\",\"cpu\":0}\n",
            "@manul {\"event\":\"irq_stats\",\"cpu\":1}\n",
            "@manul {\"event\":\"shutdown\",\"status\":\"success\"}\n",
        ));
        let boot = || expectation("boot", vec![]);
        let cpu = |n| expectation("irq_stats", vec![("cpu", Matcher::Integer(n))]);
        let shutdown = || expectation("shutdown", vec![]);
        let none: &[String] = &[];
        assert!(check(&log, &[boot(), cpu(0), cpu(1), shutdown()], &[], none).is_empty());
        assert!(check(&log, &[cpu(1), shutdown()], &[], none).is_empty());
        assert!(check(&log, &[], &[], none).is_empty());

        let failures = check(&log, &[boot(), cpu(1), cpu(0), shutdown()], &[], none);
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].starts_with(
                "expected event not found: { event = \"irq_stats\", cpu = 0 } \
                 (after the match of { event = \"irq_stats\", cpu = 1 } at log line 3)"
            ),
            "{}",
            failures[0]
        );
        let failures = check(&log, &[shutdown(), boot()], &[], none);
        assert!(failures[0].contains("appears only earlier, line 1"), "{}", failures[0]);
        let failures = check(&log, &[expectation("panic", vec![])], &[], none);
        assert!(failures[0].ends_with("no \"panic\" event at all"), "{}", failures[0]);
    }

    #[test]
    fn unordered_expectations_each_need_their_own_event() {
        let log = events(concat!(
            "@manul {\"event\":\"job_exit\",\"job\":\"b\",\"status\":0}\n",
            "@manul {\"event\":\"job_exit\",\"job\":\"a\",\"status\":139}\n",
        ));
        let exit = |job: &str| expectation("job_exit", vec![("job", Matcher::String(job.into()))]);
        assert!(check(&log, &[], &[exit("a"), exit("b")], &[]).is_empty());
        let failures = check(&log, &[], &[exit("a"), exit("a")], &[]);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("expected event (in any order) not found"), "{}", failures[0]);
    }

    #[test]
    fn rejected_events_fail_with_their_line() {
        let log = events(concat!(
            "@manul {\"event\":\"boot\"}\n",
            "@manul {\"event\":\"exception\",\"vector\":14}\n",
            "@manul {\"event\":\"exception\",\"vector\":13}\n",
        ));
        let reject = ["panic".to_owned(), "exception".to_owned()];
        assert_eq!(
            check(&log, &[], &[], &reject),
            ["rejected event at log line 2: @manul {\"event\":\"exception\",\"vector\":14} \
                 (and 1 more rejected events)"]
        );
        assert!(check(&log, &[], &[], &[]).is_empty());
    }

    #[test]
    fn only_lines_starting_with_the_prefix_are_events() {
        let log = parse_log(concat!(
            "SeaBIOS (version 1.16)\n",
            "\u{fffd}garbage @manul {\"event\":\"boot\"}\n",
            " @manul {\"event\":\"boot\"}\n",
            "@manul{\"event\":\"boot\"}\n",
            "@manul {\"event\":\"boot\",\"cpus\":1}\r\n",
            "\n",
        ));
        assert!(log.malformed.is_empty());
        assert_eq!(log.events.len(), 1);
        assert_eq!(log.events[0].line_number, 5);
        assert_eq!(log.events[0].name, "boot");
        assert_eq!(log.events[0].line, "@manul {\"event\":\"boot\",\"cpus\":1}");
    }

    #[test]
    fn malformed_event_lines_are_reported() {
        let log = parse_log(concat!(
            "@manul {\"event\":\"boot\"\n",
            "@manul [1, 2]\n",
            "@manul {\"cpus\":1}\n",
            "@manul {\"event\":7}\n",
            "@manul {\"event\":\"shutdown\"}\n",
        ));
        assert_eq!(log.events.len(), 1);
        assert_eq!(log.malformed.len(), 4);
        assert!(log.malformed[0].starts_with("malformed event at log line 1: invalid JSON"));
        assert!(log.malformed[0].ends_with(": @manul {\"event\":\"boot\""));
        assert!(log.malformed[1].contains("not a JSON object"));
        assert!(log.malformed[2].contains("no \"event\" key"));
        assert!(log.malformed[3].contains("\"event\" is not a string"));
    }

    #[test]
    fn expectations_display_as_toml() {
        let expectation = expectation(
            "boot",
            vec![
                ("cpus", Matcher::Integer(1)),
                ("mem_mib", Matcher::Range { min: Some(116), max: Some(128) }),
                ("acpi", Matcher::Bool(true)),
                ("cpu", Matcher::Contains("TCG".into())),
                ("vendor", Matcher::String("a \"b\"".into())),
            ],
        );
        assert_eq!(
            expectation.to_string(),
            r#"{ event = "boot", cpus = 1, mem_mib = { min = 116, max = 128 }, acpi = true, cpu = { contains = "TCG" }, vendor = "a \"b\"" }"#
        );
    }
}
