//! What the node composes at boot: the manifest file in the initrd (`/etc/manul/node.conf`, or
//! the one `manifest=PATH` names; `manifest=none` skips it) together with the command line's
//! `job=` and `vm=` shorthands, each a one-enclave section (`docs/enclaves.md`). The shorthands
//! are written as sections after the file's text and the whole is read by the manifest's parser:
//! one grammar and one set of checks serve both, and a shorthand is refused with a section's words.

use crate::control::cmdline::{ManifestChoice, Options, Shorthand};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use enclave::manifest::{ErrorKind, MANIFEST_PATH, ManifestError};
use enclave::{ManifestErrors, NodeManifest};

/// Where the boot manifest comes from, given the options: `None` when no file is read.
pub fn manifest_path(options: &Options) -> Option<&str> {
    match &options.manifest {
        ManifestChoice::Default => Some(MANIFEST_PATH),
        ManifestChoice::Path(path) => Some(path),
        ManifestChoice::None => None,
    }
}

/// Why the boot manifest cannot be composed.
#[derive(Debug, PartialEq, Eq)]
pub enum ComposeError {
    /// The file is refused.
    Manifest(ManifestErrors),
    /// The shorthands (with the file) are refused: each error after the option it is about
    /// (`job.sim.mem: ...`), separated by `; `.
    Shorthand(String),
}

/// The boot manifest: the file's enclaves and segments (`file`: its bytes, if one was read),
/// then the command line's jobs and VMs in command-line order.
pub fn compose(file: Option<&[u8]>, options: &Options) -> Result<NodeManifest, ComposeError> {
    let from_file = file.map(NodeManifest::parse).transpose().map_err(ComposeError::Manifest)?;
    let lines: Vec<(&str, String)> = options.jobs.iter().chain(&options.vms).flat_map(section).collect();
    if lines.is_empty() {
        return Ok(from_file.unwrap_or_default());
    }
    // A line end in a value would start a line of the shorthand's choosing.
    let broken: Vec<String> = lines
        .iter()
        .filter(|(_, line)| line.contains('\n'))
        .map(|(option, _)| alloc::format!("{option}: {}", ErrorKind::ControlCharacter('\n')))
        .collect();
    if !broken.is_empty() {
        return Err(ComposeError::Shorthand(broken.join("; ")));
    }
    let mut text = file.unwrap_or_default().to_vec();
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    let file_lines = text.iter().filter(|&&b| b == b'\n').count();
    for (_, line) in &lines {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    NodeManifest::parse(&text).map_err(|e| ComposeError::Shorthand(describe(&e, file_lines, &lines)))
}

/// A shorthand's `[enclave NAME]` section, a line at a time, each with the option it comes from.
fn section(shorthand: &Shorthand) -> Vec<(&str, String)> {
    let group = shorthand.group.as_str();
    let mut lines = alloc::vec![
        (group, alloc::format!("[enclave {}]", shorthand.name)),
        (group, alloc::format!("kind = {}", shorthand.kind)),
    ];
    lines.extend(shorthand.settings.iter().map(|s| (s.option.as_str(), alloc::format!("{} = {}", s.key, s.value))));
    lines
}

/// The errors of the file followed by the shorthands' `lines`: an error of a shorthand's line is
/// named by its option instead (a line of the composed text means nothing on the command line).
fn describe(errors: &ManifestErrors, file_lines: usize, lines: &[(&str, String)]) -> String {
    let shorthand_line =
        |line: Option<usize>| line.and_then(|l| l.checked_sub(file_lines + 1)).and_then(|i| lines.get(i));
    let mut messages: Vec<String> = errors
        .errors
        .iter()
        .map(|e| {
            let mut kind = e.kind.clone();
            if let ErrorKind::DuplicateSection { first_line, .. } = &mut kind
                && shorthand_line(*first_line).is_some()
            {
                *first_line = None;
            }
            match shorthand_line(e.line) {
                Some((option, _)) => alloc::format!("{option}: {kind}"),
                None => ManifestError { line: e.line, kind }.to_string(),
            }
        })
        .collect();
    if errors.truncated {
        messages.push("more errors not shown".into());
    }
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::cmdline;
    use enclave::{CoreRequest, CpuSet, Image, Kind, MemoryRequest};

    fn options(line: &str) -> Options {
        let (options, errors) = cmdline::parse(line);
        assert!(errors.is_empty(), "{errors:?}");
        options
    }

    /// The error of a refused shorthand.
    fn refused(file: Option<&[u8]>, line: &str) -> String {
        match compose(file, &options(line)) {
            Err(ComposeError::Shorthand(reason)) => reason,
            other => panic!("{line}: expected a shorthand error, got {other:?}"),
        }
    }

    #[test]
    fn shorthands_become_sections_after_the_file() {
        let file = b"[enclave sim]\nkind = job\nprogram = /bin/sim\ncores = 1\n";
        let o = options(
            r#"job.post=/bin/post job.post.args="a 'b c'" job.post.cores=2 job.post.mem=64M job.post.threads=99 job.post.kernel_memory=48M job.post.tmp_size=16M job.post.isolation=node job.post.progress=2s vm=viz vm.kernel=/boot/vmlinux vm.initrd=/i vm.cmdline="console=ttyS0 quiet" vm.cores=3-4 vm.mem=128M vm.isolation=shared vm.heartbeat=500ms vm.kernel_memory=2G"#,
        );
        let m = compose(Some(file), &o).unwrap();
        let names: Vec<&str> = m.enclaves.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["sim", "post", "viz"]);
        let post = m.enclave("post").unwrap();
        assert_eq!(
            post.image,
            Image::Job { program: "/bin/post".into(), args: alloc::vec!["a".into(), "b c".into()], env: Vec::new() }
        );
        assert_eq!(post.cores, CoreRequest::List(CpuSet::parse("2").unwrap()));
        assert_eq!(post.memory, MemoryRequest::Bytes(64 << 20));
        assert_eq!(post.max_threads, Some(99));
        assert_eq!((post.kernel_memory, post.tmp_size), (Some(48 << 20), Some(16 << 20)));
        assert_eq!(post.isolation, enclave::Policy::Node);
        assert_eq!(post.progress_ns, Some(2_000_000_000));
        let viz = m.enclave("viz").unwrap();
        assert_eq!(viz.kind(), Kind::Vm);
        assert_eq!(viz.kernel_memory, Some(2 << 30));
        assert_eq!(
            viz.image,
            Image::Vm {
                kernel: "/boot/vmlinux".into(),
                initrd: Some("/i".into()),
                cmdline: "console=ttyS0 quiet".into()
            }
        );
        assert_eq!(viz.cores, CoreRequest::List(CpuSet::parse("3-4").unwrap()));
        assert_eq!(viz.memory, MemoryRequest::Bytes(128 << 20));
        assert_eq!(viz.isolation, enclave::Policy::Shared);
        let heartbeat = viz.heartbeat.unwrap();
        assert_eq!((heartbeat.period_ns, heartbeat.grace_ns), (500_000_000, 60_000_000_000));
        let e = refused(None, "job=/a job.isolation=paranoid vm=v vm.kernel=/k vm.isolation=loose");
        assert!(e.starts_with("job.isolation: `isolation` in [enclave job]: "), "{e}");
        assert!(e.contains("paranoid") && e.contains("; vm.isolation: "), "{e}");
    }

    /// A shorthand and the section it stands for give the same manifest.
    #[test]
    fn a_shorthand_is_its_section() {
        let file = b"[segment s]\nsize = 4K\n[enclave sim]\nkind = job\nprogram = /bin/sim";
        let pairs: [(&str, &str); 5] = [
            (
                r#"job=/bin/app job.args="a 'b c' d" job.env="K=V K2=V2" job.cores=1-3 job.mem=512M job.mem=1T job.threads=256 job.progress=30s job.isolation=shared job.kernel_memory=16M job.tmp_size=8M"#,
                "[enclave job]\nkind = job\nprogram = /bin/app\nargs = a 'b c' d\nenv = K=V K2=V2\ncores = 1-3\nmemory = 1T\nthreads = 256\nprogress = 30s\nisolation = shared\nkernel_memory = 16M\ntmp_size = 8M\n",
            ),
            (
                "job.sim2=/bin/sim job.viz.cores=3 job.viz=/bin/viz job.sim2.cores=1,2",
                "[enclave sim2]\nkind = job\nprogram = /bin/sim\ncores = 1-2\n[enclave viz]\nkind = job\nprogram = /bin/viz\ncores = 3\n",
            ),
            (
                r#"vm.kernel=/k vm=linux vm.initrd=/i vm.cmdline="console=ttyS0 x='y z'" vm.cores=2-3 vm.mem=512M vm.heartbeat=5s vm.kernel_memory=1G vm.isolation=node"#,
                "[enclave linux]\nkind = vm\nkernel = /k\ninitrd = /i\ncmdline = console=ttyS0 x='y z'\ncores = 2-3\nmemory = 512M\nheartbeat = 5s\nkernel_memory = 1G\nisolation = node\n",
            ),
            (
                "vm.b.kernel=/k2 vm.b.cores=4 vm.kernel=/k",
                "[enclave b]\nkind = vm\nkernel = /k2\ncores = 4\n[enclave vm]\nkind = vm\nkernel = /k\n",
            ),
            (
                "vm=v vm.kernel=/k job.x=/x",
                "[enclave x]\nkind = job\nprogram = /x\n[enclave v]\nkind = vm\nkernel = /k\n",
            ),
        ];
        for (line, section) in pairs {
            let text = [&file[..], b"\n", section.as_bytes()].concat();
            assert_eq!(compose(Some(file), &options(line)), Ok(NodeManifest::parse(&text).unwrap()), "{line}");
            assert_eq!(compose(None, &options(line)), Ok(NodeManifest::parse(section.as_bytes()).unwrap()), "{line}");
        }
    }

    #[test]
    fn bad_shorthands_are_refused_naming_the_option() {
        let cases = [
            ("job=bin/app", "job: `program` in [enclave job]: `bin/app` is not an absolute path"),
            ("job=/a job.cores=3-1", "job.cores: `cores` in [enclave job]: "),
            ("job=/a job.cores=0", "job.cores: `cores` in [enclave job]: core 0 is the kernel's"),
            ("job=/a job.mem=12X", "job.mem: `memory` in [enclave job]: "),
            ("job=/a job.mem=0", "job.mem: `memory` in [enclave job]: "),
            ("job=/a job.threads=70000", "job.threads: `threads` in [enclave job]: `70000` is not a thread count"),
            ("job=/a job.env=NOEQUALS", "job.env: `env` in [enclave job]: `NOEQUALS` is not NAME=VALUE"),
            (r#"job=/a job.args="'open""#, "job.args: `args` in [enclave job]: a quote is not closed"),
            ("job=/a job.progress=0s", "job.progress: `progress` in [enclave job]: "),
            (
                "job=/a job.tmp_size=8M job.kernel_memory=4M",
                "job.tmp_size: `tmp_size` in [enclave job]: 8M of /tmp does not fit",
            ),
            ("job.c.mem=1M", "job.c: [enclave c] has no `program`"),
            ("vm.a.kernel=/k vm.b.cores=1", "vm.b: [enclave b] has no `kernel`"),
            ("vm=a vm.kernel=/k vm.a.kernel=/k", "vm.a: [enclave a] given twice"),
            (
                "job.a=/a job.a.cores=1-2 job.b=/b job.b.cores=2",
                "job.b.cores: [enclave b]: core 2 is also [enclave a]'s",
            ),
            ("vm.kernel=/k vm.heartbeat=1", "vm.heartbeat: `heartbeat` in [enclave vm]: "),
            ("job=/a\nkind=vm", "job: control character 0x0a"),
            ("job=/a job.args=\"x\ry\"", "job.args: control character 0x0d"),
        ];
        for (line, reason) in cases {
            let e = refused(None, line);
            assert!(e.starts_with(reason), "{line}: {e}");
        }
    }

    #[test]
    fn defaults_are_the_command_line_defaults() {
        let m = compose(None, &options("job=/bin/hello vm=v vm.kernel=/k")).unwrap();
        assert_eq!(m.enclaves[0].name, "job");
        assert_eq!((&m.enclaves[0].cores, m.enclaves[0].memory), (&CoreRequest::Share, MemoryRequest::Share));
        assert_eq!(
            (&m.enclaves[1].cores, m.enclaves[1].memory),
            (&CoreRequest::Count(1), MemoryRequest::Bytes(256 << 20))
        );
    }

    #[test]
    fn a_name_in_both_or_a_shared_core_is_refused_whole() {
        let file = b"[enclave job]\nkind = job\nprogram = /bin/a\ncores = 1\n";
        assert_eq!(refused(Some(file), "job=/bin/b"), "job: [enclave job] again (first on line 1)");
        let file = b"[enclave a]\nkind = job\nprogram = /bin/a\ncores = 1";
        assert_eq!(
            refused(Some(file), "job.b=/bin/b job.b.cores=1"),
            "job.b.cores: [enclave b]: core 1 is also [enclave a]'s"
        );
    }

    #[test]
    fn a_broken_file_is_refused_with_its_lines() {
        let ComposeError::Manifest(e) =
            compose(Some(b"[enclave a]\nkind = job\nprogam = /a\n"), &options("job=/b")).unwrap_err()
        else {
            panic!("expected a manifest error")
        };
        assert_eq!(e.errors[0].line, Some(3));
        assert_eq!(e.errors.len(), 1);
    }

    #[test]
    fn the_file_is_chosen_by_the_manifest_option() {
        assert_eq!(manifest_path(&Options::default()), Some(MANIFEST_PATH));
        assert_eq!(manifest_path(&options("manifest=/etc/other.conf")), Some("/etc/other.conf"));
        assert_eq!(manifest_path(&options("manifest=none")), None);
        let (_, errors) = cmdline::parse("manifest=relative.conf");
        assert_eq!(errors[0].option, "manifest");
    }
}
