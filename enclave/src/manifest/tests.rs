use super::*;
use crate::partition::Node;
use crate::values::MAX_CPUS;
use alloc::format;
use alloc::vec;

const M: u64 = 1 << 20;
const S: u64 = 1_000_000_000;

const EXAMPLE: &str = "\
# /etc/manul/node.conf
[enclave sim]
kind = job
program = /bin/sim
args = -n 1000 'with spaces'
env = OMP_NUM_THREADS=2
cores = 1-2
memory = 512M
isolation = strict
progress = 30s

[enclave viz]
kind = vm
kernel = /boot/vmlinux
initrd = /boot/guest-initrd.cpio
cmdline = console=ttyS0 quiet
cores = 3
memory = 256M
isolation = shared
segments = results:rw
heartbeat = 5s

[segment results]
size = 64M
";

fn parse(text: &str) -> Result<NodeManifest, ManifestErrors> {
    NodeManifest::parse(text.as_bytes())
}

/// The messages of a refused manifest.
fn errors(text: &str) -> Vec<String> {
    parse(text).unwrap_err().errors.iter().map(ToString::to_string).collect()
}

/// The single message of a refused manifest.
fn error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap_or_default()
}

#[test]
fn the_example_parses() {
    let m = parse(EXAMPLE).unwrap();
    assert_eq!(m.enclaves.len(), 2);
    let sim = m.enclave("sim").unwrap();
    assert_eq!(sim.line(), Some(2));
    assert_eq!(sim.kind(), Kind::Job);
    assert_eq!(
        sim.image,
        Image::Job {
            program: "/bin/sim".into(),
            args: vec!["-n".into(), "1000".into(), "with spaces".into()],
            env: vec!["OMP_NUM_THREADS=2".into()],
        }
    );
    assert_eq!(sim.cores, CoreRequest::List(CpuSet::parse("1-2").unwrap()));
    assert_eq!(sim.memory, MemoryRequest::Bytes(512 * M));
    assert_eq!(sim.isolation, Policy::Strict);
    assert_eq!(sim.progress_ns, Some(30 * S));
    let viz = m.enclave("viz").unwrap();
    assert_eq!(
        viz.image,
        Image::Vm {
            kernel: "/boot/vmlinux".into(),
            initrd: Some("/boot/guest-initrd.cpio".into()),
            cmdline: "console=ttyS0 quiet".into(),
        }
    );
    assert_eq!(viz.segments, [("results".to_string(), Access::ReadWrite)]);
    assert_eq!(viz.heartbeat, Some(Heartbeat { period_ns: 5 * S, grace_ns: DEFAULT_HEARTBEAT_GRACE_NS }));
    assert_eq!(viz.isolation, Policy::Shared);
    assert_eq!(m.segment("results").unwrap().size, 64 * M);
    assert_eq!(m.segment("results").unwrap().line(), Some(23));
    assert!(m.enclave("nope").is_none() && m.segment("nope").is_none());
}

#[test]
fn defaults_match_the_command_line() {
    let m = parse("[enclave a]\nkind = job\nprogram = /a\n[enclave b]\nkind = vm\nkernel = /k\n").unwrap();
    let (a, b) = (&m.enclaves[0], &m.enclaves[1]);
    assert_eq!((a.cores.clone(), a.memory), (CoreRequest::Share, MemoryRequest::Share));
    assert_eq!((b.cores.clone(), b.memory), (CoreRequest::Count(1), MemoryRequest::Bytes(256 * M)));
    assert_eq!(a.isolation, Policy::Strict);
    assert_eq!(b.image, Image::Vm { kernel: "/k".into(), initrd: None, cmdline: String::new() });
    assert_eq!(*a, EnclaveSpec::job("a", "/a"));
    assert_eq!(*b, EnclaveSpec::vm("b", "/k"));
}

#[test]
fn syntax_variants() {
    let m = parse(
        "\u{feff}; a comment\r\n  # another\r\n\t[ enclave \t x ]  \r\n kind=vm\r\nkernel\t=\t/k \r\ncmdline = a=b 'c' \"d\"\r\n\
         cores = any 2\r\nmemory = share\r\nisolation = node\r\ndevices = nic0, gpu0 disk\r\nsegments = s:r,t:rw\r\n\
         heartbeat = 500ms\r\nheartbeat_grace = 2m\r\n[segment s]\r\nsize=4K\r\n[segment t]\r\nsize = 1G",
    )
    .unwrap();
    let x = &m.enclaves[0];
    assert_eq!(x.image, Image::Vm { kernel: "/k".into(), initrd: None, cmdline: "a=b 'c' \"d\"".into() });
    assert_eq!(x.cores, CoreRequest::Count(2));
    assert_eq!(x.memory, MemoryRequest::Share);
    assert_eq!(x.devices, ["nic0", "gpu0", "disk"]);
    assert_eq!(x.segments, [("s".to_string(), Access::Read), ("t".to_string(), Access::ReadWrite)]);
    assert_eq!(x.heartbeat, Some(Heartbeat { period_ns: S / 2, grace_ns: 120 * S }));
    assert_eq!(x.line(), Some(3));
    // A grace shorter than the period is raised to the period.
    let m = parse("[enclave v]\nkind=vm\nkernel=/k\nheartbeat=10s\nheartbeat_grace=1s\n").unwrap();
    assert_eq!(m.enclaves[0].heartbeat, Some(Heartbeat { period_ns: 10 * S, grace_ns: 10 * S }));
    // Empty and comment-only manifests compose nothing.
    assert_eq!(parse("").unwrap(), NodeManifest::default());
    assert_eq!(parse("\n\n# nothing\n").unwrap(), NodeManifest::default());
    // Empty args and env are allowed.
    let m = parse("[enclave j]\nkind=job\nprogram=/p\nargs=\nenv=\n").unwrap();
    assert_eq!(m.enclaves[0], EnclaveSpec::job("j", "/p"));
}

#[test]
fn round_trip_through_text() {
    let m = parse(EXAMPLE).unwrap();
    let text = m.to_text();
    assert_eq!(parse(&text).unwrap(), m, "{text}");
    let built = NodeManifest::from_specs(
        vec![
            EnclaveSpec::job("j", "/bin/x y")
                .with_args(vec!["a b".into(), "it's".into(), String::new()])
                .with_env(vec!["K=V W".into()])
                .with_cores(CoreRequest::Count(3))
                .with_isolation(Policy::Node)
                .with_device("nic0")
                .with_segment("s", Access::Read)
                .with_progress(1500 * 1_000_000)
                .with_max_threads(300)
                .with_kernel_memory(64 << 20)
                .with_tmp_size(5 << 20),
            EnclaveSpec::vm("v", "/k")
                .with_kernel_memory(3 << 30)
                .with_initrd("/i")
                .with_cmdline("console=ttyS0 x=\"y z\"")
                .with_memory(MemoryRequest::Bytes(5000))
                .with_heartbeat(Heartbeat { period_ns: 7, grace_ns: 9 }),
        ],
        vec![SegmentSpec::new("s", 12 * 1024), SegmentSpec::new("f", 8192).holding_files(true)],
    )
    .unwrap();
    let text = built.to_text();
    assert!(text.contains("[segment f]\nsize = 8K\nkind = files\n"), "{text}");
    assert_eq!(parse(&text).unwrap(), built, "{text}");
    assert!(text.contains("args = 'a b' 'it'\"'\"'s' ''\n"), "{text}");
    assert!(text.contains("memory = 5000\n") && text.contains("size = 12K\n"), "{text}");
}

#[test]
fn kernel_memory_and_tmp_size() {
    let m = parse("[enclave a]\nkind = job\nprogram = /a\nkernel_memory = 32M\ntmp_size = 8M\n").unwrap();
    let a = m.enclave("a").unwrap();
    assert_eq!((a.kernel_memory, a.tmp_size), (Some(32 << 20), Some(8 << 20)));
    let v = parse("[enclave v]\nkind = vm\nkernel = /k\nkernel_memory = 2G\n").unwrap();
    assert_eq!(v.enclaves[0].kernel_memory, Some(2 << 30));
    assert_eq!(
        error("[enclave v]\nkind = vm\nkernel = /k\ntmp_size = 4M\n"),
        "line 4: `tmp_size` is for jobs, and [enclave v] is a vm"
    );
    assert_eq!(
        error("[enclave a]\nkind = job\nprogram = /a\nkernel_memory = 512K\n"),
        "line 4: `kernel_memory` in [enclave a]: 512K is less than the smallest kernel-memory budget, 1M"
    );
    assert_eq!(
        error("[enclave a]\nkind = job\nprogram = /a\nkernel_memory = 4M\ntmp_size = 8M\n"),
        "line 5: `tmp_size` in [enclave a]: 8M of /tmp does not fit in the kernel-memory budget of 4M"
    );
    assert!(error("[enclave a]\nkind = job\nprogram = /a\ntmp_size = lots\n").contains("`tmp_size` in [enclave a]"));
}

#[test]
fn a_job_thread_limit() {
    let m = parse("[enclave a]\nkind = job\nprogram = /a\nthreads = 512\n").unwrap();
    assert_eq!(m.enclave("a").unwrap().max_threads, Some(512));
    assert_eq!(parse("[enclave a]\nkind = job\nprogram = /a\n").unwrap().enclaves[0].max_threads, None);
    let max = format!("[enclave a]\nkind = job\nprogram = /a\nthreads = {MAX_JOB_THREADS}\n");
    assert_eq!(parse(&max).unwrap().enclaves[0].max_threads, Some(MAX_JOB_THREADS));
    for bad in ["0", "-1", "65537", "many", "1e3"] {
        assert_eq!(
            error(&format!("[enclave a]\nkind = job\nprogram = /a\nthreads = {bad}\n")),
            format!("line 4: `threads` in [enclave a]: `{bad}` is not a thread count (1 to 65536)")
        );
    }
    assert_eq!(
        error("[enclave v]\nkind = vm\nkernel = /k\nthreads = 4\n"),
        "line 4: `threads` is for jobs, and [enclave v] is a vm"
    );
    let built = EnclaveSpec::vm("v", "/k").with_max_threads(4);
    let refused = NodeManifest::from_specs(vec![built], vec![]).unwrap_err().errors[0].to_string();
    assert_eq!(refused, "`threads` is for jobs, and [enclave v] is a vm");
    let refused = single(EnclaveSpec::job("j", "/j").with_max_threads(0)).unwrap_err();
    assert!(refused.errors[0].to_string().contains("`0` is not a thread count"), "{refused}");
}

#[test]
fn errors_name_the_line_and_the_reason() {
    assert_eq!(
        error("[enclave sim]\nkind = job\nprogram = /bin/sim\n\n\n\nprogam = /bin/sim\n"),
        "line 7: unknown key `progam` in [enclave sim] (did you mean `program`?)"
    );
    assert_eq!(error("[enclave a]\nkind = job\nprogram = /a\nfoo = 1\n"), "line 4: unknown key `foo` in [enclave a]");
    assert_eq!(error("[segment s]\nsise = 4K\n"), "line 2: unknown key `sise` in [segment s] (did you mean `size`?)");
    assert_eq!(
        error("kind = job\n"),
        "line 1: a setting before any section: start with [enclave NAME] or [segment NAME]"
    );
    assert_eq!(
        error("[enclave a]\nkind = job\nprogram /a\n"),
        "line 3: expected `key = value`, a [section], a # comment or a blank line"
    );
    assert_eq!(
        error("[enclave a]\n= x\nkind=job\nprogram=/a"),
        "line 2: expected `key = value`, a [section], a # comment or a blank line"
    );
    assert_eq!(
        error("[enclave a]\nkind = job\nkind = vm\nprogram = /a\n"),
        "line 3: `kind` given twice in [enclave a] (first on line 2)"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\n[enclave a]\nkind=vm\nkernel=/k\n"),
        "line 4: [enclave a] again (first on line 1)"
    );
    // A segment and an enclave may share a name: they are different sections.
    assert!(parse("[enclave a]\nkind=job\nprogram=/a\n[segment a]\nsize=4K\n").is_ok());
    assert_eq!(error("[enclave a]\nprogram = /a\n"), "line 1: [enclave a] has no `kind`");
    assert_eq!(error("[enclave a]\nkind = job\n"), "line 1: [enclave a] has no `program`");
    assert_eq!(error("[enclave a]\nkind = vm\n"), "line 1: [enclave a] has no `kernel`");
    assert_eq!(error("[segment s]\n"), "line 1: [segment s] has no `size`");
    assert_eq!(
        error("[enclave v]\nkind=vm\nkernel=/k\nheartbeat_grace=5s\n"),
        "line 4: [enclave v] has no `heartbeat`"
    );
    assert_eq!(
        error("[enclave a]\nkind = thing\n"),
        "line 2: `kind` in [enclave a]: `thing` is not a kind (job or vm)"
    );
    assert_eq!(
        error("[enclave a]\nkind = job\nprogram = /a\nkernel = /k\n"),
        "line 4: `kernel` is for VMs, and [enclave a] is a job"
    );
    assert_eq!(
        error("[enclave a]\nkind = vm\nkernel = /k\nargs = x\n"),
        "line 4: `args` is for jobs, and [enclave a] is a vm"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nheartbeat=5s\n"),
        "line 4: `heartbeat` is for VMs, and [enclave a] is a job"
    );
    assert_eq!(
        error("[enclave a]\nkind=vm\nkernel=/k\nprogress=5s\n"),
        "line 4: `progress` is for jobs, and [enclave a] is a vm"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=bin/a\n"),
        "line 3: `program` in [enclave a]: `bin/a` is not an absolute path in the initrd"
    );
    assert_eq!(error("[enclave a]\nkind=job\nprogram=\n"), "line 3: `program` in [enclave a]: needs a value");
    assert_eq!(
        error("[enclave a]\nkind=vm\nkernel=/k\ninitrd=i\n"),
        "line 4: `initrd` in [enclave a]: `i` is not an absolute path in the initrd"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nargs='x\n"),
        "line 4: `args` in [enclave a]: a quote is not closed"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nenv=A=1 B\n"),
        "line 4: `env` in [enclave a]: `B` is not NAME=VALUE"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nenv==x\n"),
        "line 4: `env` in [enclave a]: `=x` is not NAME=VALUE"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\ncores=0-2\n"),
        "line 4: `cores` in [enclave a]: core 0 is the kernel's control core, never an enclave's"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\ncores=3-1\n"),
        "line 4: `cores` in [enclave a]: range 3-1 runs backwards"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\ncores=any 0\n"),
        "line 4: `cores` in [enclave a]: `any 0` is not a core count (expected e.g. `any 2`, or a list such as 1-3,5)"
    );
    assert!(error("[enclave a]\nkind=job\nprogram=/a\ncores=any\n").contains("not a core count"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\ncores=any -1\n").contains("not a core count"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\ncores=any 4096\n").contains("not a core count"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\ncores=\n").contains("an empty core list"));
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nmemory=12X\n"),
        "line 4: `memory` in [enclave a]: `12X` is not a size (expected e.g. 512M, 2G, 4096K)"
    );
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nmemory=0\n").contains("more than zero"));
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nisolation=loose\n"),
        "line 4: `isolation` in [enclave a]: `loose` is not an isolation policy (strict, shared or node)"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nprogress=5\n"),
        "line 4: `progress` in [enclave a]: `5` is not a duration (a number and a unit: ns, us, ms, s, m, h; e.g. 5s)"
    );
    assert!(error("[enclave a]\nkind=vm\nkernel=/k\nheartbeat=0s\n").contains("more than zero"));
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nisolation=shared\nsegments=s\n[segment s]\nsize=4K\n"),
        "line 5: `segments` in [enclave a]: `s` is not a grant (expected SEGMENT:r or SEGMENT:rw)"
    );
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nisolation=shared\nsegments=s:x\n").contains("not a grant"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nisolation=shared\nsegments=b@d:r\n").contains("not a name"));
    assert_eq!(error("[segment s]\nsize = 100\n"), "line 2: `size` in [segment s]: 100 is not a multiple of 4K");
    assert!(error("[segment s]\nsize = 0\n").contains("more than zero"));
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\ndevices=nic0\n"),
        "line 4: [enclave a] is given devices, which only isolation = node allows (a device can reach all memory by DMA)"
    );
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nisolation=node\ndevices=nic0 nic0\n").contains("twice"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nisolation=node\ndevices=[x]\n").contains("not a device"));
}

#[test]
fn section_headers() {
    assert_eq!(
        error("[enclave]\n"),
        "line 1: `[enclave]` is not a section header: use [enclave NAME] or [segment NAME]"
    );
    assert!(error("[node]\n").contains("not a section header"));
    assert!(error("[enclave a b]\n").contains("not a section header"));
    assert!(error("[enclave a\n").contains("not a section header"));
    assert!(error("[]\n").contains("not a section header"));
    assert_eq!(
        error("[enclave b@d]\nkind=job\nprogram=/a\n"),
        "line 1: `b@d` is not a enclave name (1 to 64 letters, digits, '-' and '_')"
    );
    // Keys after a refused header are not reported again.
    assert_eq!(errors("[enclave a b]\nkind=job\nprogram=/a\n").len(), 1);
    assert_eq!(errors("[enclave b@d]\nkind=job\n[enclave ok]\nkind=job\nprogram=/a\n").len(), 1);
}

#[test]
fn checks_across_sections() {
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nisolation=shared\nsegments=results:rw\n"),
        "line 5: [enclave a] is granted segment `results`, which no [segment] section defines"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nsegments=results:rw\n[segment results]\nsize=4K\n"),
        "line 4: [enclave a] is strict and shares no memory, so segment `results` cannot be granted to it (use isolation = shared)"
    );
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\nisolation=shared\nsegments=s:r s:rw\n[segment s]\nsize=4K\n"),
        "line 5: [enclave a] is granted segment `s` twice"
    );
    // Segments of files: for jobs only, and not placed in the partition's memory.
    let files =
        "[enclave a]\nkind=job\nprogram=/a\nisolation=shared\nsegments=f:rw\n[segment f]\nsize=1T\nkind=files\n";
    let m = parse(files).unwrap();
    assert!(m.segment("f").is_some_and(|f| f.files && f.size == 1 << 40));
    assert_eq!(
        error("[enclave v]\nkind=vm\nkernel=/k\nisolation=shared\nsegments=f:r\n[segment f]\nsize=4K\nkind=files\n"),
        "line 5: [enclave v] is a VM, and segment `f` holds files (kind = files), which only jobs can mount"
    );
    assert_eq!(
        error("[segment f]\nsize=4K\nkind=disk\n"),
        "line 3: `kind` in [segment f]: `disk` is not a segment kind (memory or files)"
    );
    assert!(parse("[segment f]\nsize=4K\nkind=memory\n").is_ok_and(|m| m.segment("f").is_some_and(|f| !f.files)));
    assert_eq!(
        error("[enclave a]\nkind=job\nprogram=/a\ncores=1-3\n[enclave b]\nkind=vm\nkernel=/k\ncores=5,3\n"),
        "line 8: [enclave b]: core 3 is also [enclave a]'s"
    );
    // Counted and shared cores never overlap on paper: the partition places them.
    assert!(
        parse("[enclave a]\nkind=job\nprogram=/a\ncores=1-3\n[enclave b]\nkind=vm\nkernel=/k\ncores=any 3\n").is_ok()
    );
    // Cross checks wait until every section is well formed.
    let e =
        errors("[enclave a]\nkind=job\nprogram=/a\ncores=1\n[enclave b]\nkind=job\nprogram=/b\ncores=1\nmemory=x\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("line 9:"));
}

#[test]
fn all_errors_in_line_order() {
    let e =
        errors("[enclave a]\nkind=job\nbogus=1\nprogram=rel\n[enclave b]\nkind=job\nprogram=/b\ncores=x\nkind=vm\n");
    let lines: Vec<&str> = e.iter().map(|m| m.split(':').next().unwrap_or("")).collect();
    assert_eq!(lines, ["line 3", "line 8", "line 9"], "{e:?}");
    // The bad `program` on line 4 is reported once the rest of its section is right.
    assert_eq!(
        errors("[enclave a]\nkind=job\nprogram=rel\n"),
        ["line 3: `program` in [enclave a]: `rel` is not an absolute path in the initrd"]
    );
    // Many errors: at most MAX_ERRORS, flagged.
    let text: String = (0..100).map(|i| format!("junk line {i}\n")).collect();
    let e = parse(&text).unwrap_err();
    assert_eq!(e.errors.len(), MAX_ERRORS);
    assert!(e.truncated);
    assert!(e.to_string().ends_with("(more errors not shown)"));
    assert_eq!(e.first().unwrap().line, Some(1));
    assert_eq!(e.errors.last().unwrap().line, Some(MAX_ERRORS));
}

#[test]
fn hostile_input() {
    // Too large as a whole.
    let big = vec![b'#'; MAX_MANIFEST_BYTES + 1];
    assert_eq!(
        NodeManifest::parse(&big).unwrap_err().to_string(),
        format!("the manifest has {} bytes, more than {MAX_MANIFEST_BYTES}", MAX_MANIFEST_BYTES + 1)
    );
    // A very long line.
    let long = format!("[enclave a]\nkind=job\nprogram=/{}\n", "x".repeat(MAX_LINE));
    assert_eq!(error(&long), format!("line 3: the line has {} bytes, more than {MAX_LINE}", MAX_LINE + 9));
    // Binary junk, NUL, escape sequences, invalid UTF-8.
    assert_eq!(error("[enclave a]\nkind=job\nprogram=/a\x00b\n"), "line 3: control character 0x00");
    assert_eq!(error("[enclave a]\nkind=job\x1b[31m\nprogram=/a\n"), "line 2: control character 0x1b");
    assert!(error("[enclave a]\nkind=job\nprogram=/a\u{85}\n").contains("control character 0x85"));
    let e = NodeManifest::parse(b"[enclave a]\nkind=job\nprogram=/\xff\xfe\n").unwrap_err();
    assert_eq!(e.to_string(), "line 3: not UTF-8 text");
    assert_eq!(NodeManifest::parse(b"\r\r\r").unwrap_err().to_string(), "line 1: control character 0x0d");
    // Huge numbers.
    assert!(error("[enclave a]\nkind=job\nprogram=/a\ncores=99999999999999999999999\n").contains("beyond the largest"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\ncores=1-99999999999\n").contains("beyond the largest"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nmemory=18446744073709551616\n").contains("too large"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nmemory=99999999999T\n").contains("too large"));
    assert!(error("[enclave a]\nkind=job\nprogram=/a\nprogress=99999999999999h\n").contains("too long"));
    let e = error(&format!("[enclave a]\nkind=job\nprogram=/a\ncores={}\n", "1,".repeat(2000)));
    assert!(e.len() < 200, "{e}");
    // The whole core range is fine (but core 0).
    let m = parse(&format!("[enclave a]\nkind=job\nprogram=/a\ncores=1-{}\n", MAX_CPUS - 1)).unwrap();
    assert!(matches!(&m.enclaves[0].cores, CoreRequest::List(s) if s.len() == MAX_CPUS - 1));
    // Overlapping ranges inside one list merge; across enclaves they are refused.
    let m = parse("[enclave a]\nkind=job\nprogram=/a\ncores=1-5,3-7,2\n").unwrap();
    assert_eq!(m.enclaves[0].cores, CoreRequest::List(CpuSet::parse("1-7").unwrap()));
    // A long key and a long name are shortened in messages.
    let e = error(&format!("[enclave a]\n{} = 1\nkind=job\nprogram=/a\n", "k".repeat(3000)));
    assert!(e.len() < 120, "{e}");
    let e = error(&format!("[enclave {}]\n", "n".repeat(3000)));
    assert!(e.len() < 150, "{e}");
    // Too many sections.
    let many: String = (0..MAX_SECTIONS + 3).map(|i| format!("[segment s{i}]\nsize=4K\n")).collect();
    assert_eq!(error(&many), format!("line {}: more than {MAX_SECTIONS} [segment ...] sections", 2 * MAX_SECTIONS + 1));
    let exactly: String = (0..MAX_SECTIONS).map(|i| format!("[enclave e{i}]\nkind=job\nprogram=/p\n")).collect();
    assert_eq!(parse(&exactly).unwrap().enclaves.len(), MAX_SECTIONS);
    // Duplicate sections many times over.
    let dup: String = (0..50).map(|_| "[enclave a]\nkind=job\nprogram=/a\n").collect();
    let e = parse(&dup).unwrap_err();
    assert!(e.errors.iter().all(|m| m.to_string().contains("again (first on line 1)")));
}

/// Random bytes and random damage to a good manifest: never a panic; an accepted manifest
/// always survives a round trip through its text.
#[test]
fn fuzz_like_damage_never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"[]=#;:,-' \"\t\n\r\x00\xffabcdeijkmnoprstvyz0123456789/KMGs";
    let node = Node::new(CpuSet::first_n(8), 4096 * M);
    let mut accepted = 0;
    for round in 0..3000 {
        let bytes: Vec<u8> = if round % 3 == 0 {
            let len = (next() % 400) as usize;
            (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
        } else {
            let mut b = EXAMPLE.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % b.len() as u64) as usize;
                match next() % 3 {
                    0 => b[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                    1 => {
                        b.remove(at);
                    }
                    _ => b.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                }
            }
            b
        };
        match NodeManifest::parse(&bytes) {
            Ok(m) => {
                accepted += 1;
                assert_eq!(parse(&m.to_text()).as_ref(), Ok(&m));
                let _ = m.plan(&node);
            }
            Err(e) => {
                assert!(!e.errors.is_empty() && e.errors.len() <= MAX_ERRORS);
                let lines = bytes.split(|&b| b == b'\n').count();
                assert!(e.errors.iter().all(|m| m.line.is_none_or(|l| l >= 1 && l <= lines)));
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(accepted > 100, "some damage is harmless ({accepted})");
}

/// A manifest of one spec built in code.
fn single(spec: EnclaveSpec) -> Result<NodeManifest, ManifestErrors> {
    NodeManifest::from_specs(vec![spec], Vec::new())
}

#[test]
fn specs_built_in_code_are_checked_as_parsed() {
    let job = EnclaveSpec::job("job", "/bin/app")
        .with_args(split_words("a 'b c'").unwrap())
        .with_env(vec!["K=V".into()])
        .with_cores(CoreRequest::List(CpuSet::parse("1-3").unwrap()))
        .with_memory(MemoryRequest::Bytes(512 * M));
    let m = single(job.clone()).unwrap();
    assert_eq!(m.enclaves, core::slice::from_ref(&job));
    assert_eq!(job.line(), None);
    let vm = EnclaveSpec::vm("linux", "/boot/vmlinux")
        .with_initrd("/boot/guest-initrd.cpio")
        .with_cmdline("console=ttyS0")
        .with_cores(CoreRequest::List(CpuSet::parse("1").unwrap()));
    assert!(single(vm.clone()).is_ok());
    // Settings of the other kind are ignored by the builders.
    assert_eq!(
        EnclaveSpec::vm("v", "/k").with_args(vec!["x".into()]).with_env(vec!["A=1".into()]),
        EnclaveSpec::vm("v", "/k")
    );
    assert_eq!(EnclaveSpec::job("j", "/p").with_initrd("/i").with_cmdline("c"), EnclaveSpec::job("j", "/p"));
    // Several enclaves in one manifest.
    let both = NodeManifest::from_specs(vec![job.clone(), vm.clone()], Vec::new()).unwrap_err();
    assert_eq!(both.to_string(), "[enclave linux]: core 1 is also [enclave job]'s");
    // Errors of specs built in code carry no line.
    let e = single(EnclaveSpec::job("j", "rel")).unwrap_err();
    assert_eq!(e.to_string(), "`program` in [enclave j]: `rel` is not an absolute path in the initrd");
    let e = single(EnclaveSpec::job("b d", "/p")).unwrap_err();
    assert!(e.to_string().contains("not a enclave name"));
    let e = NodeManifest::from_specs(vec![EnclaveSpec::job("a", "/p"), EnclaveSpec::job("a", "/q")], Vec::new());
    assert_eq!(e.unwrap_err().to_string(), "[enclave a] given twice");
    let bad = EnclaveSpec::job("a", "/p")
        .with_args(vec!["x\ny".into()])
        .with_env(vec!["NOVALUE".into()])
        .with_cores(CoreRequest::Count(0))
        .with_memory(MemoryRequest::Bytes(0))
        .with_heartbeat(Heartbeat { period_ns: 0, grace_ns: 0 })
        .with_progress(0);
    let e: Vec<String> = single(bad).unwrap_err().errors.iter().map(ToString::to_string).collect();
    assert_eq!(e.len(), 7, "{e:?}");
    let e = single(EnclaveSpec::vm("v", "/k").with_cmdline("a\rb").with_cores(CoreRequest::List(CpuSet::new())));
    assert_eq!(e.unwrap_err().errors.len(), 2);
    let segs = vec![
        SegmentSpec::new("s", 4096),
        SegmentSpec::new("s", 4096),
        SegmentSpec::new("t", 1),
        SegmentSpec::new("", 4096),
    ];
    assert_eq!(NodeManifest::from_specs(Vec::new(), segs).unwrap_err().errors.len(), 3);
}

#[test]
fn plan_against_the_node() {
    let m = parse(EXAMPLE).unwrap();
    let p = m.plan(&Node::new(CpuSet::first_n(4), 1024 * M)).unwrap();
    assert_eq!(p.get("sim").unwrap().cores.to_string(), "1-2");
    assert_eq!(p.segment_bytes("results"), Some(64 * M));
    assert_eq!(
        m.plan(&Node::new(CpuSet::first_n(3), 1024 * M)).unwrap_err().to_string(),
        "line 12: enclave `viz`: core 3 does not exist or is offline (the node has cores 0-2)"
    );
    assert_eq!(
        m.plan(&Node::new(CpuSet::first_n(4), 600 * M)).unwrap_err().to_string(),
        "line 12: enclave `viz`: asks for 256M of memory, 24M left"
    );
    assert_eq!(
        m.plan(&Node::new(CpuSet::first_n(4), 32 * M)).unwrap_err().to_string(),
        "line 23: segment `results`: asks for 64M of memory, 32M left"
    );
}
