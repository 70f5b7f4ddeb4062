//! What the node composes at boot: the manifest file in the initrd (`/etc/manul/node.conf`, or
//! the one `manifest=PATH` names; `manifest=none` skips it) together with the command line's
//! `job=` and `vm=` shorthands, each a one-enclave section (`docs/enclaves.md`). One parser and
//! one set of checks serve both: a command-line job is refused with the same words as a section.

use crate::cmdline::{ManifestChoice, Options};
use crate::job_options::JobSpec;
use crate::vm_options::VmSpec;
use alloc::string::String;
use alloc::vec::Vec;
use enclave::manifest::MANIFEST_PATH;
use enclave::{CoreRequest, CpuSet, EnclaveSpec, ManifestErrors, MemoryRequest, NodeManifest};

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
    /// The file, or the file and the shorthands together, are refused.
    Manifest(ManifestErrors),
    /// A shorthand that no manifest can express (the command-line checks make this rare).
    Shorthand(String),
}

/// The boot manifest: the file's enclaves and segments (`file`: its bytes, if one was read),
/// then the command line's jobs and VMs in command-line order.
pub fn compose(file: Option<&[u8]>, options: &Options) -> Result<NodeManifest, ComposeError> {
    let from_file = match file {
        Some(bytes) => NodeManifest::parse(bytes).map_err(ComposeError::Manifest)?,
        None => NodeManifest::default(),
    };
    let mut enclaves = from_file.enclaves;
    for job in &options.jobs {
        enclaves.push(job_spec(job).map_err(ComposeError::Shorthand)?);
    }
    for vm in &options.vms {
        enclaves.push(vm_spec(vm).map_err(ComposeError::Shorthand)?);
    }
    NodeManifest::from_specs(enclaves, from_file.segments).map_err(ComposeError::Manifest)
}

fn cores(name: &str, cores: &Option<Vec<usize>>) -> Result<Option<CoreRequest>, String> {
    cores
        .as_ref()
        .map(|list| {
            CpuSet::from_cpus(list.iter().copied())
                .map(CoreRequest::List)
                .map_err(|e| alloc::format!("{name}: cores: {e}"))
        })
        .transpose()
}

/// `job.NAME=...` as `[enclave NAME]` with `kind = job`.
fn job_spec(job: &JobSpec) -> Result<EnclaveSpec, String> {
    let mut spec = EnclaveSpec::job(&job.name, &job.path).with_args(job.args.clone()).with_env(job.env.clone());
    if let Some(c) = cores(&job.name, &job.cores)? {
        spec = spec.with_cores(c);
    }
    if let Some(bytes) = job.mem {
        spec = spec.with_memory(MemoryRequest::Bytes(bytes));
    }
    if let Some(policy) = job.isolation {
        spec = spec.with_isolation(policy);
    }
    if let Some(window) = job.progress_ns {
        spec = spec.with_progress(window);
    }
    if let Some(threads) = job.threads {
        let threads = u32::try_from(threads).map_err(|_| alloc::format!("{}: too many threads", job.name))?;
        spec = spec.with_max_threads(threads);
    }
    if let Some(bytes) = job.kernel_memory {
        spec = spec.with_kernel_memory(bytes);
    }
    if let Some(bytes) = job.tmp_size {
        spec = spec.with_tmp_size(bytes);
    }
    Ok(spec)
}

/// `vm=NAME ...` as `[enclave NAME]` with `kind = vm`.
fn vm_spec(vm: &VmSpec) -> Result<EnclaveSpec, String> {
    let mut spec = EnclaveSpec::vm(&vm.name, &vm.kernel).with_cmdline(&vm.cmdline);
    if let Some(initrd) = &vm.initrd {
        spec = spec.with_initrd(initrd);
    }
    if let Some(c) = cores(&vm.name, &vm.cores)? {
        spec = spec.with_cores(c);
    }
    if let Some(bytes) = vm.mem {
        spec = spec.with_memory(MemoryRequest::Bytes(bytes));
    }
    if let Some(policy) = vm.isolation {
        spec = spec.with_isolation(policy);
    }
    if let Some(period_ns) = vm.heartbeat_ns {
        // The manifest's default grace for the first beat (the guest's boot).
        let grace_ns = enclave::manifest::DEFAULT_HEARTBEAT_GRACE_NS.max(period_ns);
        spec = spec.with_heartbeat(enclave::health::Heartbeat { period_ns, grace_ns });
    }
    if let Some(bytes) = vm.kernel_memory {
        spec = spec.with_kernel_memory(bytes);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline;
    use enclave::{Image, Kind};

    fn options(line: &str) -> Options {
        let (options, errors) = cmdline::parse(line);
        assert!(errors.is_empty(), "{errors:?}");
        options
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
        let (_, errors) = cmdline::parse("job=/a job.isolation=paranoid vm=v vm.kernel=/k vm.isolation=loose");
        let refused: Vec<&str> = errors.iter().map(|e| e.option.as_str()).collect();
        assert_eq!(refused, ["job.isolation", "vm.isolation"], "{errors:?}");
        assert!(errors[0].reason.contains("paranoid"), "{}", errors[0].reason);
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
        let ComposeError::Manifest(e) = compose(Some(file), &options("job=/bin/b")).unwrap_err() else {
            panic!("expected a manifest error")
        };
        assert!(e.to_string().contains("[enclave job] again (first on line 1)"), "{e}");
        let file = b"[enclave a]\nkind = job\nprogram = /bin/a\ncores = 1\n";
        let ComposeError::Manifest(e) = compose(Some(file), &options("job.b=/bin/b job.b.cores=1")).unwrap_err() else {
            panic!("expected a manifest error")
        };
        assert!(e.to_string().contains("core 1 is also [enclave a]'s"), "{e}");
    }

    #[test]
    fn a_broken_file_is_refused_with_its_lines() {
        let ComposeError::Manifest(e) =
            compose(Some(b"[enclave a]\nkind = job\nprogam = /a\n"), &Options::default()).unwrap_err()
        else {
            panic!("expected a manifest error")
        };
        assert_eq!(e.errors[0].line, Some(3));
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
