//! The enclave fault campaign: boot scenarios tagged with a `campaign` table, each injecting one
//! fault (a guest kernel panic, a triple fault, a job's segfault or wild writes, a job exhausting
//! a kernel resource) into one enclave under one isolation policy beside a bystander enclave (and
//! a bystander VM, for the exhaustion rows). Each scenario's expectations
//! judge it like any other; this module reads what happened from its log and prints the table of
//! outcomes after the run: how the failing enclave ended, whether the bystander finished its
//! work, whether the node stayed healthy, and whether a replacement ran on the freed resources.

use serde::Deserialize;
use serde_json::Value;

use crate::run::events::Event;

/// A scenario's place in the campaign.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// What goes wrong, for the table: "guest kernel panic (sysrq)".
    pub fault: String,
    /// The failing enclave's isolation policy.
    pub policy: String,
    /// The enclave the fault hits.
    pub failing: String,
    /// The enclave beside it that must finish its work.
    pub bystander: String,
    /// A second bystander, a VM, that must finish too.
    pub bystander_vm: Option<String>,
    /// The errno the failing program must see (it exits 0 only if it did): the exhaustion rows.
    pub errno: Option<String>,
    /// The enclave launched on the failing one's freed cores and memory, if the policy leaves
    /// the node running.
    pub replacement: Option<String>,
}

/// One line of the table.
#[derive(Debug, PartialEq)]
pub struct Row {
    pub fault: String,
    pub policy: String,
    pub failing: String,
    pub bystander: String,
    pub node: String,
    pub replacement: String,
    pub verdict: &'static str,
}

fn field<'a>(event: &'a Event, key: &str) -> Option<&'a Value> {
    event.fields.get(key)
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

/// How an enclave's job or VM ended, from its `job_exit` or `vm_exit` event.
fn end_of(events: &[Event], enclave: &str) -> Option<String> {
    events.iter().find_map(|e| match e.name.as_str() {
        "job_exit" if field(e, "job").and_then(Value::as_str) == Some(enclave) => {
            Some(format!("exit status {}", text(field(e, "status"))))
        }
        "vm_exit" if field(e, "vm").and_then(Value::as_str) == Some(enclave) => Some(text(field(e, "reason"))),
        _ => None,
    })
}

/// What the log of a campaign scenario shows, and whether the scenario passed.
pub fn row(campaign: &Campaign, events: &[Event], passed: bool) -> Row {
    let named = |name: &str, key: &str, value: &str| {
        events.iter().find(|e| e.name == name && field(e, key).and_then(Value::as_str) == Some(value))
    };
    let failing = match named("enclave_crash", "enclave", &campaign.failing) {
        Some(crash) => format!("crashed ({}), reach {}", text(field(crash, "reason")), text(field(crash, "reach"))),
        None => match (end_of(events, &campaign.failing), &campaign.errno) {
            (None, _) => "no end seen".into(),
            (Some(end), Some(errno)) if end == "exit status 0" => format!("got {errno}, {end}"),
            (Some(end), _) => format!("ended: {end}"),
        },
    };
    let mut bystander = end_of(events, &campaign.bystander).unwrap_or_else(|| "stopped with the node".into());
    if let Some(vm) = &campaign.bystander_vm {
        let end = end_of(events, vm).unwrap_or_else(|| "stopped with the node".into());
        bystander = format!("{bystander}; VM: {end}");
    }
    let stopped =
        events.iter().any(|e| e.name == "shutdown" && field(e, "status").and_then(Value::as_str) == Some("failure"));
    let node = match events.iter().rev().find(|e| e.name == "node_health") {
        Some(h) if field(h, "healthy") == Some(&Value::Bool(true)) => {
            format!("healthy, {} KiB not back", text(field(h, "unreturned_kib")))
        }
        Some(_) => "unhealthy".into(),
        None if stopped => "stopped, as the policy says".into(),
        None => "?".into(),
    };
    let replacement = match &campaign.replacement {
        Some(name) => end_of(events, name).map_or_else(|| "did not run".into(), |end| format!("ran: {end}")),
        None => "none (node stopped)".into(),
    };
    Row {
        fault: campaign.fault.clone(),
        policy: campaign.policy.clone(),
        failing,
        bystander,
        node,
        replacement,
        verdict: if passed { "as documented" } else { "NOT as documented" },
    }
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| fault | policy | failing enclave | bystander | node | replacement | outcome |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.fault, r.policy, r.failing, r.bystander, r.node, r.replacement, r.verdict
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::events::parse_log;

    fn campaign(replacement: Option<&str>) -> Campaign {
        Campaign {
            fault: "native job segfault".into(),
            policy: "strict".into(),
            failing: "f".into(),
            bystander: "by".into(),
            bystander_vm: None,
            errno: None,
            replacement: replacement.map(str::to_owned),
        }
    }

    #[test]
    fn an_exhaustion_row_names_the_errno_and_both_bystanders() {
        let log = concat!(
            "@manul {\"event\":\"job_exit\",\"job\":\"f\",\"status\":0}\n",
            "@manul {\"event\":\"job_exit\",\"job\":\"by\",\"status\":0}\n",
            "@manul {\"event\":\"vm_exit\",\"vm\":\"lin\",\"reason\":\"poweroff\"}\n",
        );
        let c = Campaign { bystander_vm: Some("lin".into()), errno: Some("ENOSPC".into()), ..campaign(Some("r")) };
        let row = row(&c, &parse_log(log).events, true);
        assert_eq!(row.failing, "got ENOSPC, exit status 0");
        assert_eq!(row.bystander, "exit status 0; VM: poweroff");
        let failed = "@manul {\"event\":\"job_exit\",\"job\":\"f\",\"status\":60}\n";
        assert_eq!(super::row(&c, &parse_log(failed).events, false).failing, "ended: exit status 60");
    }

    #[test]
    fn a_contained_fault_reads_as_such() {
        let log = concat!(
            "@manul {\"event\":\"job_exit\",\"job\":\"f\",\"status\":139}\n",
            "@manul {\"event\":\"enclave_crash\",\"enclave\":\"f\",\"zone\":2,\"policy\":\"strict\",\"reach\":\"enclave\",\"reason\":\"signal 11\"}\n",
            "@manul {\"event\":\"job_exit\",\"job\":\"r\",\"status\":0}\n",
            "@manul {\"event\":\"job_exit\",\"job\":\"by\",\"status\":0}\n",
            "@manul {\"event\":\"node_health\",\"healthy\":true,\"unreturned_kib\":8}\n",
            "@manul {\"event\":\"shutdown\",\"status\":\"success\"}\n",
        );
        let row = row(&campaign(Some("r")), &parse_log(log).events, true);
        assert_eq!(row.failing, "crashed (signal 11), reach enclave");
        assert_eq!(row.bystander, "exit status 0");
        assert_eq!(row.node, "healthy, 8 KiB not back");
        assert_eq!(row.replacement, "ran: exit status 0");
        assert_eq!(row.verdict, "as documented");
        let table = table(&[row]);
        assert!(table.contains("| native job segfault | strict | crashed (signal 11), reach enclave |"), "{table}");
    }

    #[test]
    fn a_node_stop_and_a_missing_end_read_as_such() {
        let log = concat!(
            "@manul {\"event\":\"vm_exit\",\"vm\":\"f\",\"reason\":\"guest_panic\"}\n",
            "@manul {\"event\":\"shutdown\",\"status\":\"failure\"}\n",
        );
        let row = row(&campaign(None), &parse_log(log).events, false);
        assert_eq!(row.failing, "ended: guest_panic");
        assert_eq!(row.bystander, "stopped with the node");
        assert_eq!(row.node, "stopped, as the policy says");
        assert_eq!(row.replacement, "none (node stopped)");
        assert_eq!(row.verdict, "NOT as documented");
        assert_eq!(super::row(&campaign(Some("r")), &[], true).replacement, "did not run");
    }
}
