//! The kernel command line, parsed into typed options.
//!
//! Words are separated by spaces; a value may be double-quoted to hold spaces
//! (`job.args="a b c"`). Every option the kernel does not know, and every bad value, is returned
//! as a [`CmdlineError`] so the caller reports it instead of dropping it silently. The `job...`
//! and `vm...` shorthands keep their values as written: they are manifest sections, and the
//! manifest's parser checks them (`boot_manifest`).

use crate::control::job_options::{self, JobsExpect};
use crate::control::vm_options::{self, VmKey};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use enclave::Kind;
use log::LevelFilter;

/// What the kernel does once every CPU is up and nothing (more) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterBoot {
    /// Wait on the serial console for commands (the default when nothing is launched).
    Console,
    /// Power the machine off right after the boot event, or once every enclave has ended (the
    /// default when something is launched).
    Poweroff,
}

/// Which manifest file the node composes at boot (`manifest=PATH|none`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ManifestChoice {
    /// `/etc/manul/node.conf` if the initrd has it.
    #[default]
    Default,
    /// This file, which must exist.
    Path(String),
    /// No file: only the command line's `job=`/`vm=` enclaves.
    None,
}

/// A deliberate failure or check requested with `test=...`, used by the boot scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfTest {
    /// Read an unmapped kernel address: the page-fault report must name it.
    PageFault,
    /// Panic: the panic report must carry the message and a backtrace.
    Panic,
    /// Idle all CPUs for a while, then report per-CPU interrupt counts and power off.
    Idle,
}

/// A `job...` or `vm...` group of options: one `[enclave NAME]` section of the boot manifest, whose
/// values the manifest's parser reads and checks (`boot_manifest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shorthand {
    pub kind: Kind,
    /// How the command line names the group (`job`, `job.sim`, `vm`, `vm.b`).
    pub group: String,
    /// The enclave's name.
    pub name: String,
    /// The last value given to each manifest key, in the order the keys were first given.
    pub settings: Vec<Setting>,
}

/// One `key = value` line of a [`Shorthand`]'s section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The option as written (`job.sim.mem`): errors name it.
    pub option: String,
    /// The manifest key it sets (`memory`).
    pub key: &'static str,
    /// The value as written.
    pub value: String,
}

impl Shorthand {
    /// The group named `group` of `list`, added (named `name`) if it is not there yet.
    fn of<'a>(list: &'a mut Vec<Shorthand>, kind: Kind, group: String, name: &str) -> &'a mut Shorthand {
        match list.iter().position(|s| s.group == group) {
            Some(i) => &mut list[i],
            None => {
                list.push(Shorthand { kind, group, name: name.to_string(), settings: Vec::new() });
                list.last_mut().expect("just pushed")
            }
        }
    }

    fn set(&mut self, option: &str, key: &'static str, value: &str) {
        let setting = Setting { option: option.to_string(), key, value: value.to_string() };
        match self.settings.iter_mut().find(|s| s.key == key) {
            Some(earlier) => *earlier = setting,
            None => self.settings.push(setting),
        }
    }
}

/// Every option the kernel understands, with its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// How much the console log shows.
    pub log: LevelFilter,
    /// `None`: the console when nothing was launched, power-off once every enclave has ended.
    pub then: Option<AfterBoot>,
    pub manifest: ManifestChoice,
    pub test: Option<SelfTest>,
    /// Jobs to launch after boot, in command-line order.
    pub jobs: Vec<Shorthand>,
    pub jobs_expect: JobsExpect,
    /// Virtual machines to launch after boot, in command-line order.
    pub vms: Vec<Shorthand>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log: LevelFilter::Info,
            then: None,
            manifest: ManifestChoice::Default,
            test: None,
            jobs: Vec::new(),
            jobs_expect: JobsExpect::Zero,
            vms: Vec::new(),
        }
    }
}

/// One option the parser refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdlineError {
    /// The option's name (the part before `=`), or the whole word if it has no `=`.
    pub option: String,
    pub reason: String,
}

/// Parses a whole command line. Later options override earlier ones.
pub fn parse(cmdline: &str) -> (Options, Vec<CmdlineError>) {
    let mut options = Options::default();
    let mut errors = Vec::new();
    let words = split_words(cmdline).unwrap_or_else(|reason| {
        errors.push(CmdlineError { option: String::new(), reason });
        Vec::new()
    });
    for (key, value) in words {
        if let Err(reason) = apply(&mut options, &key, value.as_deref()) {
            errors.push(CmdlineError { option: key, reason });
        }
    }
    (options, errors)
}

/// A `job...`/`vm...` option: its value goes to the group's section as written. `Ok(false)`: the
/// key is neither.
fn apply_shorthand(options: &mut Options, key: &str, value: Option<&str>) -> Result<bool, String> {
    if let Some((name, manifest_key)) = job_options::parse_key(key)? {
        let value = value.ok_or("needs a value")?;
        let group = if name == job_options::DEFAULT_NAME { name.to_string() } else { alloc::format!("job.{name}") };
        Shorthand::of(&mut options.jobs, Kind::Job, group, name).set(key, manifest_key, value);
        return Ok(true);
    }
    let Some(vm_key) = vm_options::parse_key(key)? else { return Ok(false) };
    let value = value.ok_or("needs a value")?;
    let (group, name) = match vm_key {
        VmKey::Set { vm: Some(name), .. } => (alloc::format!("vm.{name}"), name),
        _ => ("vm".to_string(), vm_options::DEFAULT_NAME),
    };
    match vm_key {
        VmKey::Name => {
            let name = vm_options::parse_name(value)?;
            Shorthand::of(&mut options.vms, Kind::Vm, group, name).name = name.to_string();
        }
        VmKey::Set { key: manifest_key, .. } => {
            Shorthand::of(&mut options.vms, Kind::Vm, group, name).set(key, manifest_key, value)
        }
    }
    Ok(true)
}

fn apply(options: &mut Options, key: &str, value: Option<&str>) -> Result<(), String> {
    if apply_shorthand(options, key, value)? {
        return Ok(());
    }
    let choose = |allowed: &[&str]| -> Result<usize, String> {
        let v = value.ok_or_else(|| alloc::format!("needs a value: one of {}", allowed.join(", ")))?;
        allowed
            .iter()
            .position(|a| *a == v)
            .ok_or_else(|| alloc::format!("unknown value \"{v}\": expected one of {}", allowed.join(", ")))
    };
    match key {
        "log" => {
            const LEVELS: [LevelFilter; 5] =
                [LevelFilter::Error, LevelFilter::Warn, LevelFilter::Info, LevelFilter::Debug, LevelFilter::Trace];
            options.log = LEVELS[choose(&["error", "warn", "info", "debug", "trace"])?];
        }
        "then" => {
            options.then = Some([AfterBoot::Console, AfterBoot::Poweroff][choose(&["console", "poweroff"])?]);
        }
        "manifest" => {
            options.manifest = match value {
                Some("none") => ManifestChoice::None,
                Some(path) if path.starts_with('/') => ManifestChoice::Path(path.to_string()),
                _ => return Err("expected an absolute path in the initrd, or none".to_string()),
            };
        }
        "jobs.expect" => options.jobs_expect = job_options::parse_expect(value)?,
        "test" => {
            const TESTS: [SelfTest; 3] = [SelfTest::PageFault, SelfTest::Panic, SelfTest::Idle];
            options.test = Some(TESTS[choose(&["pagefault", "panic", "idle"])?]);
        }
        _ => return Err("unknown option".to_string()),
    }
    Ok(())
}

/// Splits into `(key, value)` words in the manifest's word grammar (`enclave::values`): spaces
/// separate, double or single quotes group anywhere in a word (`vm.cmdline="console=ttyS0 quiet"`);
/// a word's first `=` ends its key. A quote left open is an error, and gives no words. (The
/// console's `create` splits its words the same way.)
pub fn split_words(cmdline: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let words = enclave::values::split_words(cmdline).map_err(|e| e.to_string())?;
    Ok(words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_gives_defaults() {
        let (o, e) = parse("   ");
        assert_eq!(o, Options::default());
        assert!(e.is_empty());
    }

    #[test]
    fn known_options_are_typed() {
        let (o, e) = parse("log=debug then=poweroff test=idle");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(o.log, LevelFilter::Debug);
        assert_eq!(o.then, Some(AfterBoot::Poweroff));
        assert_eq!(o.test, Some(SelfTest::Idle));
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let (o, _) = parse("then=poweroff then=console");
        assert_eq!(o.then, Some(AfterBoot::Console));
    }

    #[test]
    fn unknown_options_and_bad_values_are_reported() {
        let (o, e) = parse("frobnicate=3 then=explode log quiet");
        assert_eq!(o, Options::default());
        let names: Vec<_> = e.iter().map(|e| e.option.as_str()).collect();
        assert_eq!(names, ["frobnicate", "then", "log", "quiet"]);
        assert_eq!(e[0].reason, "unknown option");
        assert!(e[1].reason.contains("\"explode\""), "{}", e[1].reason);
        assert!(e[2].reason.contains("needs a value"), "{}", e[2].reason);
    }

    #[test]
    fn shorthands_keep_their_values_for_the_manifest() {
        let (o, e) = parse(r#"vm.mem=1G job=/bin/hello job.args="a 'b c'" job.x.cores=1 job.mem=1M job.mem=2M vm=v"#);
        assert!(e.is_empty(), "{e:?}");
        let groups: Vec<(&str, &str)> =
            o.jobs.iter().chain(&o.vms).map(|s| (s.group.as_str(), s.name.as_str())).collect();
        assert_eq!(groups, [("job", "job"), ("job.x", "x"), ("vm", "v")]);
        let settings: Vec<(&str, &str, &str)> =
            o.jobs[0].settings.iter().map(|s| (s.option.as_str(), s.key, s.value.as_str())).collect();
        assert_eq!(
            settings,
            [("job", "program", "/bin/hello"), ("job.args", "args", "a 'b c'"), ("job.mem", "memory", "2M")]
        );
        let (o, e) = parse("job.x.disk=1 vm=\"a b\" vm.b.cores jobs.expect=any");
        let refused: Vec<&str> = e.iter().map(|e| e.option.as_str()).collect();
        assert_eq!(refused, ["job.x.disk", "vm", "vm.b.cores"], "{e:?}");
        assert!(o.jobs.is_empty() && o.vms.is_empty(), "{o:?}");
        assert_eq!(o.jobs_expect, JobsExpect::Any);
    }

    #[test]
    fn quotes_keep_spaces_in_values() {
        let words = split_words(r#"job.args="a b  c" x=1 "q r"=2 k='s t'"#).unwrap();
        assert_eq!(words[3], ("k".to_string(), Some("s t".to_string())));
        assert_eq!(words[0], ("job.args".to_string(), Some("a b  c".to_string())));
        assert_eq!(words[1], ("x".to_string(), Some("1".to_string())));
        assert_eq!(words[2], ("q r".to_string(), Some("2".to_string())));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let (_, e) = parse(r#"log=info job.args="a b"#);
        assert!(e.iter().any(|e| e.reason.contains("quote is not closed")), "{e:?}");
    }

    #[test]
    fn empty_quoted_value_is_a_value() {
        let words = split_words(r#"k="""#).unwrap();
        assert_eq!(words[0], ("k".to_string(), Some(String::new())));
    }
}
