//! The node's enclaves on the LWK (`docs/enclaves.md`): composed at boot from the manifest file
//! and the command line's `job=`/`vm=` shorthands through the `enclave` crate's [`Registry`],
//! launched on their partitions, and ended (exit, crash, failure, an operator's stop), each
//! lifecycle step an `enclave_state` event. The console's commands (`list`, `show`, `create`,
//! `launch`, `stop`, `destroy`, `stats`) call the same functions as the boot.
//!
//! When everything has ended the node powers off (with success only if every enclave ended
//! well), unless `then=console` keeps it up for more commands.

use crate::control::boot_manifest::{self, ComposeError};
use crate::control::cmdline::{AfterBoot, Options};
use crate::control::job_options::{self, JobsExpect};
use crate::control::jobs::{self, JobLaunch, PreparedJob};
use crate::fs::files::{Mount, Share};
use crate::hal::cpu::IrqMutex;
use crate::hal::vectors::RESCHEDULE_VECTOR;
use crate::mm::segment::{SegmentMemory, SegmentView};
use crate::task::process::{ExitReason, Job};
use crate::util::power::{ExitStatus, shutdown};
use crate::vmm_host::vms::{self, PreparedVm, VmLaunch};
use crate::{
    control::node_health, fs::files, hal::kernel_memory, hal::local_apic, println, task::per_cpu, time::clock,
    util::logging,
};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use embedded_vmm::{SharedRegion, Vm, VmEnd};
use enclave::health::Cause;
use enclave::isolation::Action;
use enclave::{
    CpuSet, EnclaveSpec, Event, HealthEvent, Image, Kind, Node, NodeManifest, Outcome, Registry, SegmentSpec,
    kernel_budget,
};
use lwk_hal::lent_memory;

/// Memory the kernel keeps for itself beyond what enclaves may take: page tables, stacks, VMCBs.
const KERNEL_RESERVE_MIN: u64 = 16 << 20;
/// What the VMM takes per VM besides guest RAM (nested page tables, VMCBs, device state).
const VMM_RESERVE_PER_VM: u64 = 8 << 20;

/// What runs for an enclave that is launching, running or hung.
#[derive(Clone)]
enum Handle {
    Job(Arc<Job>),
    /// A VM and its kernel-memory account.
    Vm(Arc<Vm>, Arc<enclave::Account>),
}

struct Instance {
    name: String,
    handle: Handle,
    /// An operator asked it to stop: its end is the `stop` event, not an exit or a crash.
    stop_requested: bool,
    /// The health monitor found it hung and the control plane ended it: its end is a crash.
    hung: Option<Cause>,
    /// Heartbeat hypercalls already given to the monitor (VMs).
    beats_seen: u64,
    /// Its kernel-memory budget, committed while it runs.
    kernel_budget: u64,
}

struct ControlPlane {
    registry: Registry,
    running: Vec<Instance>,
    /// The boot is still launching the manifest's enclaves: an early end must not power off.
    launching: bool,
    /// Whether the node powers off once nothing runs.
    power_off_when_done: bool,
    jobs_expect: JobsExpect,
    /// Free memory when the node was composed: what enclaves leave of it is the kernel's.
    free_at_compose: u64,
    /// Ended jobs whose memory has not come back (scrubbed) yet: the node waits for it before
    /// it powers off, and a relaunch waits for it too.
    unreleased: Vec<String>,
    /// The shared segments' memory, reserved at boot for the node's lifetime.
    segments: Vec<(String, SegmentMemory)>,
    /// The segments of files (`kind = files`), created at boot for the node's lifetime; their
    /// sizes are committed kernel memory.
    shares: Vec<(String, Arc<Share>)>,
    /// The kernel-memory budgets of the running enclaves, added up: never more than the kernel
    /// memory the partition leaves, less [`KERNEL_RESERVE_MIN`] for the kernel itself.
    kernel_committed: u64,
}

/// Reserves every segment of the registry as one contiguous zeroed block (2 MiB aligned when it
/// is that large, so mappings use large pages) and records it in the partition.
fn reserve_segments(registry: &mut Registry) -> Result<Vec<(String, SegmentMemory)>, String> {
    let wanted: Vec<(String, u64)> =
        registry.segments().segments().iter().filter(|s| !s.files).map(|s| (s.name.clone(), s.size)).collect();
    let mut reserved = Vec::new();
    for (name, bytes) in wanted {
        let align = if bytes >= 1 << 21 { 1 << 21 } else { 4096 };
        let phys = kernel_memory::alloc_zeroed_frames(bytes, align).map_err(|_| {
            alloc::format!("[segment {name}]: no physically contiguous block of {} KiB is free", bytes >> 10)
        })?;
        let range = enclave::MemRange::new(phys, bytes).ok_or("a segment range wraps")?;
        registry.partition_mut().record_segment_range(&name, range).map_err(|e| e.to_string())?;
        log::info!(target: "enclaves", "segment {name}: {} KiB at {phys:#x}", bytes >> 10);
        reserved.push((name, SegmentMemory { phys, bytes }));
    }
    Ok(reserved)
}

/// The segments `enclave` holds grants to (a crash revokes them) that `find` knows, with what it
/// finds and whether the grant lets the enclave write.
fn granted<T>(plane: &ControlPlane, enclave: &str, find: impl Fn(&str) -> Option<T>) -> Vec<(String, T, bool)> {
    plane
        .registry
        .segments()
        .grants_of(enclave)
        .into_iter()
        .filter_map(|(name, access)| Some((name.clone(), find(&name)?, access.writable())))
        .collect()
}

/// The segments of memory `enclave` holds grants to, as it may map them.
fn granted_segments(plane: &ControlPlane, enclave: &str) -> Vec<(String, SegmentView)> {
    let memory_of = |name: &str| plane.segments.iter().find(|(n, _)| n == name).map(|(_, m)| *m);
    granted(plane, enclave, memory_of)
        .into_iter()
        .map(|(name, memory, writable)| (name, SegmentView { memory, writable }))
        .collect()
}

/// Creates every segment of files of the registry; refused when their sizes do not fit in the
/// kernel memory the partition leaves (less [`KERNEL_RESERVE_MIN`]).
fn create_shares(registry: &Registry, kernel_left: u64) -> Result<Vec<(String, Arc<Share>)>, String> {
    let wanted: Vec<(String, u64)> =
        registry.segments().segments().iter().filter(|s| s.files).map(|s| (s.name.clone(), s.size)).collect();
    let total: u64 = wanted.iter().map(|(_, size)| size).sum();
    let room = kernel_left.saturating_sub(KERNEL_RESERVE_MIN);
    if total > room {
        return Err(alloc::format!(
            "the segments of files ask for {} KiB of kernel memory, {} KiB is left",
            total >> 10,
            room >> 10
        ));
    }
    let mut shares = Vec::new();
    for (name, size) in wanted {
        let share = Share::new(size).map_err(|e| alloc::format!("[segment {name}]: {e}"))?;
        log::info!(target: "enclaves", "segment {name}: files, at most {} KiB", size >> 10);
        shares.push((name, Arc::new(share)));
    }
    Ok(shares)
}

/// The segments of files `enclave` holds grants to, and whether it may write them.
fn granted_shares(plane: &ControlPlane, enclave: &str) -> Vec<(String, Arc<Share>, bool)> {
    granted(plane, enclave, |name| plane.shares.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone()))
}

/// Segment `segment` as enclave `enclave` may map it: ENOENT unless it holds a grant to it.
pub fn segment_for(enclave: &str, segment: &str) -> Result<SegmentView, crate::util::errno::Errno> {
    let guard = PLANE.lock();
    let plane = guard.as_ref().ok_or(crate::util::errno::Errno::ENOENT)?;
    granted_segments(plane, enclave)
        .into_iter()
        .find(|(name, _)| name == segment)
        .map(|(_, view)| view)
        .ok_or(crate::util::errno::Errno::ENOENT)
}

static PLANE: IrqMutex<Option<ControlPlane>> = IrqMutex::new(None);
/// Set by the one core that powers the node off once every enclave has ended.
static POWERING_OFF: AtomicBool = AtomicBool::new(false);
/// Every enclave so far ended well (jobs with status 0, VMs powered off, none failed).
static ALL_ENDED_WELL: AtomicBool = AtomicBool::new(true);

/// Composes the node from the manifest and the command line and launches every enclave. Returns
/// whether anything was launched. A refused manifest is reported (one `manifest_error` per
/// error) and nothing starts: the node then powers off with failure.
pub fn boot(options: &Options) -> bool {
    let file = match boot_manifest::manifest_path(options) {
        Some(path) => match files::initrd_file(path) {
            Ok(bytes) => Some((path, bytes)),
            // The default file is optional; one named on the command line is not.
            Err(_) if options.manifest == crate::control::cmdline::ManifestChoice::Default => None,
            Err(e) => refuse_boot(|| report_manifest_error(path, None, &alloc::format!("cannot read it: {e}"))),
        },
        None => None,
    };
    let source = file.as_ref().map_or("the command line", |(path, _)| path);
    let manifest = match boot_manifest::compose(file.as_ref().map(|(_, b)| *b), options) {
        Ok(m) => m,
        Err(ComposeError::Manifest(errors)) => refuse_boot(|| report_manifest_errors(source, &errors)),
        Err(ComposeError::Shorthand(reason)) => {
            refuse_boot(|| report_manifest_error("the command line", None, &reason))
        }
    };
    let registry = match Registry::compose(node(&manifest), &manifest) {
        Ok(r) => r,
        Err(errors) => refuse_boot(|| report_manifest_errors(source, &errors)),
    };
    let mut registry = registry;
    let segments = match reserve_segments(&mut registry) {
        Ok(segments) => segments,
        Err(reason) => refuse_boot(|| report_manifest_error(source, None, &reason)),
    };
    let free_at_compose = kernel_memory::frame_stats().0;
    let shares = match create_shares(&registry, free_at_compose.saturating_sub(registry.partition().used_memory())) {
        Ok(shares) => shares,
        Err(reason) => refuse_boot(|| report_manifest_error(source, None, &reason)),
    };
    let shares_bytes = registry.segments().segments().iter().filter(|s| s.files).map(|s| s.size).sum();
    let launched = !registry.records().is_empty();
    if file.is_some() {
        logging::emit("manifest", |e| {
            e.str("path", source)
                .u64("enclaves", manifest.enclaves.len() as u64)
                .u64("segments", manifest.segments.len() as u64);
        });
    }
    let names: Vec<String> = registry.records().iter().map(|r| r.spec.name.clone()).collect();
    *PLANE.lock() = Some(ControlPlane {
        registry,
        running: Vec::new(),
        launching: true,
        power_off_when_done: match options.then {
            Some(then) => then == AfterBoot::Poweroff,
            None => launched,
        },
        jobs_expect: options.jobs_expect,
        free_at_compose,
        unreleased: Vec::new(),
        segments,
        shares,
        kernel_committed: shares_bytes,
    });
    node_health::mark_before_launch();
    for name in &names {
        // A failed launch is reported by `launch` and counts against the verdict.
        let _ = launch(name);
    }
    if let Some(plane) = PLANE.lock().as_mut() {
        plane.launching = false;
    }
    if launched {
        power_off_if_done();
    }
    launched
}

/// The node as the partition sees it: the online cores, and the free memory less the kernel's
/// own reserve and the VMM's tables of each VM.
fn node(manifest: &NodeManifest) -> Node {
    let mut cpus = CpuSet::default();
    for c in per_cpu::all().iter().filter(|c| c.online.load(Ordering::Acquire)) {
        // Indices come from the MADT, far below the set's 4096.
        let _ = cpus.insert(c.index);
    }
    let free = kernel_memory::frame_stats().0;
    let vms = manifest.enclaves.iter().filter(|e| e.kind() == Kind::Vm).count() as u64;
    let reserve = (free / 16).max(KERNEL_RESERVE_MIN) + vms * VMM_RESERVE_PER_VM;
    Node::new(cpus, free.saturating_sub(reserve))
}

fn report_manifest_error(source: &str, line: Option<usize>, reason: &str) {
    log::error!(target: "enclaves", "{source}{}: {reason}", line.map(|l| alloc::format!(":{l}")).unwrap_or_default());
    logging::emit("manifest_error", |e| {
        e.str("source", source);
        if let Some(l) = line {
            e.u64("line", l as u64);
        }
        e.str("reason", reason);
    });
}

fn report_manifest_errors(source: &str, errors: &enclave::ManifestErrors) {
    for e in &errors.errors {
        report_manifest_error(source, e.line, &e.kind.to_string());
    }
    if errors.truncated {
        report_manifest_error(source, None, "more errors not shown");
    }
}

/// Reports why the boot's enclaves cannot start, then powers off with failure.
fn refuse_boot(report: impl FnOnce()) -> ! {
    report();
    println!("The node manifest is refused: nothing was launched.");
    shutdown(ExitStatus::Failure)
}

fn emit_state(outcome: &Outcome, event: Event) {
    logging::emit("enclave_state", |e| {
        e.str("enclave", &outcome.enclave)
            .str("from", outcome.from.name())
            .str("to", outcome.to.name())
            .str("cause", event.name());
    });
}

/// Applies `event` and reports the transition.
fn apply(plane: &mut ControlPlane, name: &str, event: Event) -> Result<Outcome, String> {
    let outcome = plane.registry.apply(name, event, clock::uptime_ns()).map_err(|e| e.to_string())?;
    emit_state(&outcome, event);
    Ok(outcome)
}

/// Launches a defined (or ended) enclave on its partition.
pub fn launch(name: &str) -> Result<(), String> {
    let (spec, cores, memory, default_threads, budget, segments, shares) = {
        let mut guard = PLANE.lock();
        let plane = guard.as_mut().ok_or("the control plane is not up")?;
        if plane.unreleased.iter().any(|n| n == name) {
            return Err(alloc::format!("the memory of `{name}`'s last run is still being scrubbed; try again"));
        }
        let spec = plane
            .registry
            .get(name)
            .map(|r| r.spec.clone())
            .ok_or_else(|| alloc::format!("no enclave named `{name}`"))?;
        let jobs = plane.registry.records().iter().filter(|r| r.spec.kind() == Kind::Job).count();
        // Half of the kernel memory the enclaves leave, shared by the jobs (threads) or by all
        // enclaves (budgets).
        let kernel_left = plane.free_at_compose.saturating_sub(plane.registry.partition().used_memory());
        let enclaves = plane.registry.records().len();
        let budget = spec.kernel_memory.unwrap_or_else(|| kernel_budget::default_budget(kernel_left, enclaves));
        let room = kernel_left.saturating_sub(KERNEL_RESERVE_MIN).saturating_sub(plane.kernel_committed);
        if budget > room {
            return Err(alloc::format!(
                "its kernel-memory budget of {} KiB does not fit: the running enclaves' budgets leave {} KiB of the kernel's memory",
                budget >> 10,
                room >> 10
            ));
        }
        apply(plane, name, Event::Launch)?;
        let assignment = plane.registry.partition().get(name).ok_or("the enclave has no partition")?;
        let segments = granted_segments(plane, name);
        let shares = granted_shares(plane, name);
        // Committed now, so that no other launch counts on the same room; given back if this
        // one fails, or when the enclave ends.
        plane.kernel_committed += budget;
        (
            spec,
            assignment.cores.to_vec(),
            assignment.memory_bytes,
            job_options::default_max_threads(kernel_left, jobs),
            budget,
            segments,
            shares,
        )
    };
    let mounts: Vec<Mount> =
        shares.iter().map(|(name, share, writable)| Mount { name, share, writable: *writable }).collect();
    let prepared = prepare(segments, &mounts, &spec, cores, memory, default_threads, budget);
    let mut guard = PLANE.lock();
    let Some(plane) = guard.as_mut() else { return Err("the control plane is not up".into()) };
    match prepared {
        Ok(ready) => {
            if let Err(e) = apply(plane, name, Event::Started) {
                plane.kernel_committed = plane.kernel_committed.saturating_sub(budget);
                return Err(e);
            }
            let handle = match &ready {
                Ready::Job(j) => Handle::Job(j.job().clone()),
                Ready::Vm(v) => Handle::Vm(v.vm().clone(), v.account().clone()),
            };
            plane.running.push(Instance {
                name: name.to_string(),
                handle,
                stop_requested: false,
                hung: None,
                beats_seen: 0,
                kernel_budget: budget,
            });
            drop(guard);
            match ready {
                Ready::Job(j) => j.start(),
                Ready::Vm(v) => v.start(),
            }
            Ok(())
        }
        Err(reason) => {
            plane.kernel_committed = plane.kernel_committed.saturating_sub(budget);
            log::error!(target: "enclaves", "{name}: {reason}");
            match &spec.image {
                Image::Job { program, .. } => logging::emit("job_error", |e| {
                    e.str("job", name).str("path", program).str("reason", &reason);
                }),
                Image::Vm { .. } => logging::emit("vm_error", |e| {
                    e.str("vm", name).str("reason", &reason);
                }),
            }
            if plane.jobs_expect != JobsExpect::Any {
                ALL_ENDED_WELL.store(false, Ordering::Relaxed);
            }
            let _ = apply(plane, name, Event::Fail);
            drop(guard);
            power_off_if_done();
            Err(reason)
        }
    }
}

enum Ready {
    Job(PreparedJob),
    Vm(PreparedVm),
}

fn prepare(
    plane_segments: Vec<(String, SegmentView)>,
    mounts: &[Mount],
    spec: &EnclaveSpec,
    cores: Vec<usize>,
    memory: u64,
    default_threads: usize,
    kernel_memory: u64,
) -> Result<Ready, String> {
    match &spec.image {
        Image::Job { program, args, env } => jobs::prepare(JobLaunch {
            name: &spec.name,
            program,
            args,
            env,
            cores,
            memory,
            max_threads: spec.max_threads.map_or(default_threads, |t| t as usize),
            kernel_memory,
            tmp_size: spec.tmp_size.unwrap_or_else(|| kernel_budget::default_tmp_size(kernel_memory)),
            mounts,
        })
        .map(Ready::Job),
        Image::Vm { kernel, initrd, cmdline } => {
            // Each granted segment is a PCI function of the guest; its command line names them,
            // and the heartbeat helper's period (half the enclave's).
            let mut cmdline = cmdline.clone();
            if let Some(heartbeat) = spec.heartbeat {
                cmdline.push_str(&alloc::format!(" manul.heartbeat_ms={}", (heartbeat.period_ns / 2_000_000).max(1)));
            }
            let mut shared = Vec::new();
            for (i, (name, view)) in plane_segments.into_iter().enumerate() {
                cmdline.push_str(&alloc::format!(" manul.seg.{name}={}", embedded_vmm::shared_regions::pci_address(i)));
                shared.push(SharedRegion {
                    name,
                    host_phys: view.memory.phys,
                    bytes: view.memory.bytes,
                    writable: view.writable,
                });
            }
            vms::prepare(VmLaunch {
                name: &spec.name,
                kernel,
                initrd: initrd.as_deref(),
                cmdline: &cmdline,
                cores,
                memory,
                shared,
                kernel_memory,
            })
            .map(Ready::Vm)
        }
    }
}

/// How an enclave's job or VM ended.
pub enum Ending {
    Job(ExitReason),
    Vm(VmEnd),
}

/// Signals that mean the program faulted (a zone 2 error), not that it was told to end.
const FAULT_SIGNALS: [i32; 6] = [4, 5, 6, 7, 8, 11]; // SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGSEGV

/// The lifecycle event an ending is, and whether it counts as a good end.
fn classify(ending: &Ending, expect: JobsExpect) -> (Event, bool) {
    match ending {
        Ending::Job(ExitReason::Exited(code)) => (Event::Exit, *code == 0 || expect == JobsExpect::Any),
        Ending::Job(ExitReason::Signaled(sig)) if FAULT_SIGNALS.contains(sig) => {
            (Event::Crash, expect == JobsExpect::Any)
        }
        Ending::Job(ExitReason::Signaled(_)) => (Event::Exit, expect == JobsExpect::Any),
        Ending::Vm(VmEnd::PowerOff) => (Event::Exit, true),
        // A reset request: Manul does not reboot guests, so the enclave ends (not a clean end).
        Ending::Vm(VmEnd::Reboot) => (Event::Exit, false),
        Ending::Vm(VmEnd::Stopped) => (Event::Stop, true),
        Ending::Vm(VmEnd::VmmError(_)) => (Event::Fail, false),
        Ending::Vm(VmEnd::GuestPanic | VmEnd::TripleFault | VmEnd::Halted | VmEnd::UnhandledExit { .. }) => {
            (Event::Crash, false)
        }
    }
}

/// An enclave's job or VM has ended (called on the core it ran on, after its memory went back).
pub fn ended(name: &str, ending: Ending) {
    let mut guard = PLANE.lock();
    let Some(plane) = guard.as_mut() else { return };
    let Some(i) = plane.running.iter().position(|r| r.name == name) else { return };
    let instance = plane.running.remove(i);
    plane.kernel_committed = plane.kernel_committed.saturating_sub(instance.kernel_budget);
    let (event, good) = match (instance.stop_requested, instance.hung) {
        (_, Some(_)) => (Event::Crash, false),
        (true, None) => (Event::Stop, true),
        (false, None) => classify(&ending, plane.jobs_expect),
    };
    // Its memory is not back until scrubbed: a VM's below, a job's on core 0 once its last
    // process is gone.
    plane.unreleased.push(name.to_string());
    if !good {
        ALL_ENDED_WELL.store(false, Ordering::Relaxed);
    }
    // From `hung`, only stop, exit and crash are legal: an LWK failure there ends it as stopped.
    let outcome = apply(plane, name, event).or_else(|_| apply(plane, name, Event::Stop));
    let mut stop_node = false;
    if let Ok(outcome) = &outcome
        && let Some(response) = outcome.response
    {
        let zone = match ending {
            Ending::Job(_) => enclave::Zone::HostUser,
            Ending::Vm(_) => enclave::Zone::GuestKernel,
        };
        let policy = plane.registry.get(name).map_or("?", |r| r.spec.isolation.name());
        let reason = match &ending {
            _ if instance.hung.is_some() => alloc::format!("hang ({})", instance.hung.map_or("", Cause::name)),
            Ending::Job(ExitReason::Signaled(sig)) => alloc::format!("signal {sig}"),
            Ending::Job(ExitReason::Exited(code)) => alloc::format!("exit {code}"),
            Ending::Vm(end) => end.name().to_string(),
        };
        logging::emit("enclave_crash", |e| {
            e.str("enclave", name)
                .u64("zone", zone.number() as u64)
                .str("policy", policy)
                .str("reach", response.reach.name())
                .str("reason", &reason);
        });
        stop_node = response.actions.contains(&Action::StopNode);
        // What it could write may be corrupt: its grants are revoked (its mappings died with
        // it), and the segments stay suspect (no new grant) until cleared.
        let containment = &outcome.containment;
        for segment in &containment.suspect {
            logging::emit("segment_suspect", |e| {
                e.str("segment", segment).str("enclave", name).display("sharers", containment.sharers.join(","));
            });
        }
    }
    drop(guard);
    if let Handle::Vm(vm, _) = instance.handle {
        // The last reference: the VM's memory is scrubbed and freed now (see `LwkHost`).
        let bytes = vm.guest_memory_bytes();
        drop(vm);
        released(name, bytes);
    }
    if stop_node {
        println!("enclave {name} crashed under isolation = node: stopping the node");
        shutdown(ExitStatus::Failure);
    }
    power_off_if_done();
}

/// An ended enclave's memory is scrubbed and back with the kernel.
fn released(name: &str, bytes: u64) {
    logging::emit("enclave_scrubbed", |e| {
        e.str("enclave", name).u64("bytes", bytes);
    });
    if let Some(plane) = PLANE.lock().as_mut() {
        plane.unreleased.retain(|n| n != name);
    }
}

/// An enclave's memory blocks, (physical address, bytes) each, on their way back.
struct Release {
    owner: String,
    blocks: Vec<(u64, u64)>,
}

/// Enclave memory whose last holder let go, waiting for core 0 to scrub and free it.
static RELEASES: IrqMutex<Vec<Release>> = IrqMutex::new(Vec::new());

/// Gives the lower layers the control plane's answers to what they report up: a job's memory
/// is free, a job ended, a VM ended. Before anything is launched.
pub fn install_hooks() {
    crate::mm::job_memory::RELEASE.install(release_later);
    crate::task::process_lifecycle::JOB_ENDED.install(jobs::end_job);
    crate::vmm_host::vms::VM_ENDED.install(|name, end| ended(name, Ending::Vm(end)));
    crate::mm::segment::SEGMENT_FOR.install(segment_for);
    crate::fs::open_files::CONSOLE_WRITE.install(jobs::console_write);
}

/// Hands a job's memory blocks to core 0 for scrubbing ([`housekeeping`]); the holder may be on
/// any core, in any context.
pub fn release_later(owner: String, blocks: Vec<(u64, u64)>) {
    RELEASES.lock().push(Release { owner, blocks });
    if let Some(control) = per_cpu::all().first() {
        local_apic::send_ipi(control.apic_id, RESCHEDULE_VECTOR);
    }
}

/// Whether [`housekeeping`] has work.
pub fn housekeeping_pending() -> bool {
    !RELEASES.lock().is_empty() || vms::console_waiting()
}

/// Core 0's chores between console keystrokes: writes the console lines VMs' UARTs hold (their
/// vCPUs go on meanwhile), scrubs (zeroes) and frees the memory of ended jobs, reporting
/// `enclave_scrubbed`, and powers off when that was the last thing to wait for.
pub fn housekeeping() {
    if vms::take_console_waiting() {
        let vms: Vec<Arc<Vm>> = PLANE
            .lock()
            .as_ref()
            .map(|plane| {
                plane
                    .running
                    .iter()
                    .filter_map(|i| match &i.handle {
                        Handle::Vm(vm, _) => Some(vm.clone()),
                        Handle::Job(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for vm in vms {
            vm.transmit_console();
        }
    }
    let releases = core::mem::take(&mut *RELEASES.lock());
    if releases.is_empty() {
        return;
    }
    for Release { owner, blocks } in releases {
        let mut bytes = 0;
        for (phys, len) in blocks {
            if let Err(e) = kernel_memory::scrub_and_free(phys, len) {
                log::error!(target: "enclaves", "{owner}: freeing {phys:#x}+{len:#x}: {e:?}");
            }
            bytes += len;
        }
        released(&owner, bytes);
    }
    power_off_if_done();
}

/// Core 0, between keystrokes: feeds the health monitor (the heartbeats the VMM counted, the CPU
/// time of jobs' threads), marks whatever missed its deadline hung (`enclave_hung`) and ends it
/// as a crash of its own, then arms core 0's timer for the next look: the next deadline, and
/// half the shortest watched period (nothing watched, no timer: core 0 takes no periodic tick).
pub fn check_health() {
    let now = clock::uptime_ns();
    let mut to_end = Vec::new();
    let next = {
        let mut guard = PLANE.lock();
        let Some(plane) = guard.as_mut() else { return };
        let ControlPlane { running, registry, .. } = plane;
        for instance in running.iter_mut() {
            if !registry.health().is_watched(&instance.name) {
                continue;
            }
            let recovered = match &instance.handle {
                Handle::Vm(vm, _) => {
                    let (beats, last) = vm.heartbeats();
                    if beats == instance.beats_seen {
                        continue;
                    }
                    instance.beats_seen = beats;
                    registry.beat(&instance.name, last)
                }
                Handle::Job(job) => registry.sample(&instance.name, now, &jobs::thread_samples(job)),
            };
            if let Ok(Some(outcome)) = recovered {
                emit_state(&outcome, Event::Heartbeat);
            }
        }
        for event in registry.check_health(now) {
            let HealthEvent::Hung { enclave, cause, silent_ns } = event else { continue };
            logging::emit("enclave_state", |e| {
                e.str("enclave", &enclave).str("from", "running").str("to", "hung").str("cause", "miss");
            });
            logging::emit("enclave_hung", |e| {
                e.str("enclave", &enclave).str("cause", cause.name()).u64("silent_ms", silent_ns / 1_000_000);
            });
            if let Some(instance) = running.iter_mut().find(|i| i.name == enclave) {
                instance.hung = Some(cause);
                to_end.push(instance.handle.clone());
            }
        }
        // Beats and progress reach the monitor only when core 0 looks: it looks at least twice
        // per period of the most frequently watched enclave, and at every deadline.
        let poll = registry
            .records()
            .iter()
            .filter(|r| registry.health().is_watched(&r.spec.name))
            .filter_map(|r| r.spec.heartbeat.map(|h| h.period_ns).or(r.spec.progress_ns))
            .min()
            .map(|period| now + period / 2);
        [registry.health().next_deadline(), poll].into_iter().flatten().min()
    };
    for handle in to_end {
        match handle {
            Handle::Job(job) => jobs::stop(&job),
            Handle::Vm(vm, _) => vm.stop(VmEnd::Stopped),
        }
    }
    clock::arm_timer_at(next, || now);
}

/// With nothing launching or running, powers off (when the node should) with the verdict.
fn power_off_if_done() {
    let power_off = {
        let guard = PLANE.lock();
        let Some(plane) = guard.as_ref() else { return };
        if plane.launching
            || !plane.unreleased.is_empty()
            || plane.registry.records().iter().any(|r| r.state.is_active())
        {
            return;
        }
        plane.power_off_when_done
    };
    if !power_off {
        println!("every enclave has ended; the console takes commands");
        return;
    }
    // Core 0 (after the last scrub) and the core where the last enclave ended may both get
    // here: one reports and powers off, the other goes back to its loop, where it answers the
    // health check's cross-CPU call (two cores each waiting for the other's answer would both
    // time out and report the node unhealthy).
    if POWERING_OFF.swap(true, Ordering::AcqRel) {
        return;
    }
    let healthy = health();
    let ok = healthy && ALL_ENDED_WELL.load(Ordering::Relaxed);
    shutdown(if ok { ExitStatus::Success } else { ExitStatus::Failure })
}

/// The node's health (`node_health`), with what the running enclaves' kernel-memory accounts
/// hold.
pub fn health() -> bool {
    let charged: u64 = {
        let guard = PLANE.lock();
        guard.as_ref().map_or(0, |plane| {
            plane
                .running
                .iter()
                .map(|r| match &r.handle {
                    Handle::Job(job) => job.kernel_memory.used(),
                    Handle::Vm(_, account) => account.used(),
                })
                .sum()
        })
    };
    node_health::report(charged)
}

/// Asks a running enclave to stop: a job's processes are killed, a VM's vCPUs leave the guest.
/// The `stop` transition follows when it has ended.
pub fn stop(name: &str) -> Result<(), String> {
    let mut guard = PLANE.lock();
    let plane = guard.as_mut().ok_or("the control plane is not up")?;
    let state = plane.registry.get(name).ok_or_else(|| alloc::format!("no enclave named `{name}`"))?.state;
    let instance = plane.running.iter_mut().find(|r| r.name == name).ok_or_else(|| {
        alloc::format!("enclave `{name}` is {state}: only a running, paused or hung enclave can be stopped")
    })?;
    instance.stop_requested = true;
    match &instance.handle {
        Handle::Job(job) => jobs::stop(job),
        Handle::Vm(vm, _) => vm.stop(VmEnd::Stopped),
    }
    Ok(())
}

/// How long `pause` waits for a VM's vCPUs to leave the guest, or a job's running threads to
/// stop, before it reports what it sees.
const PAUSE_SETTLE_NS: u64 = 200_000_000;

/// Pauses a running enclave: a VM's vCPUs wait outside the guest, a job's threads stop on their
/// way back to user mode. Reports `enclave_paused` with how many stopped within
/// [`PAUSE_SETTLE_NS`] (a job's threads blocked in the kernel stop when they wake).
pub fn pause(name: &str) -> Result<String, String> {
    let handle = {
        let mut guard = PLANE.lock();
        let plane = guard.as_mut().ok_or("the control plane is not up")?;
        let handle = plane.running.iter().find(|r| r.name == name).map(|r| r.handle.clone());
        apply(plane, name, Event::Pause)?;
        handle.ok_or("the enclave has nothing running")?
    };
    match &handle {
        Handle::Job(job) => jobs::pause(job),
        Handle::Vm(vm, _) => vm.pause(),
    }
    let settled = |h: &Handle| match h {
        Handle::Job(job) => {
            let frozen = job.threads_frozen.load(Ordering::SeqCst);
            (frozen, frozen + jobs::runnable_threads(job))
        }
        Handle::Vm(vm, _) => (vm.vcpus_held(), vm.vcpus()),
    };
    let deadline = clock::uptime_ns() + PAUSE_SETTLE_NS;
    while settled(&handle).0 < settled(&handle).1 && clock::uptime_ns() < deadline {
        clock::spin_ns(1_000_000);
    }
    let (stopped, of) = settled(&handle);
    logging::emit("enclave_paused", |e| {
        e.str("enclave", name).u64("stopped", stopped as u64).u64("of", of as u64).str(
            "what",
            match handle {
                Handle::Job(_) => "threads",
                Handle::Vm(_, _) => "vcpus",
            },
        );
    });
    Ok(alloc::format!("{name} paused ({stopped} of {of} stopped)"))
}

/// Resumes a paused enclave where it stopped.
pub fn resume(name: &str) -> Result<(), String> {
    let mut guard = PLANE.lock();
    let plane = guard.as_mut().ok_or("the control plane is not up")?;
    let handle = plane.running.iter().find(|r| r.name == name).map(|r| r.handle.clone());
    apply(plane, name, Event::Resume)?;
    match handle.ok_or("the enclave has nothing running")? {
        Handle::Job(job) => jobs::resume(&job),
        Handle::Vm(vm, _) => vm.resume(),
    }
    Ok(())
}

/// Removes an ended (or never launched) enclave and frees its partition, once its memory is back.
pub fn destroy(name: &str) -> Result<(), String> {
    let mut guard = PLANE.lock();
    let plane = guard.as_mut().ok_or("the control plane is not up")?;
    if plane.unreleased.iter().any(|n| n == name) {
        return Err(alloc::format!("the memory of `{name}` is still being scrubbed; try again"));
    }
    apply(plane, name, Event::Destroy).map(|_| ())
}

/// Adds an enclave from console words (`kind=vm kernel=/boot/vmlinux cores=3 ...`): they become
/// an `[enclave NAME]` section, parsed and checked as a manifest file's would be, then placed on
/// the free cores and memory.
pub fn create(name: &str, words: &[(String, Option<String>)]) -> Result<(), String> {
    let mut text = alloc::format!("[enclave {name}]\n");
    for (key, value) in words {
        let value = value.as_deref().ok_or_else(|| alloc::format!("`{key}` needs a value (key=value)"))?;
        text.push_str(&alloc::format!("{key} = {value}\n"));
    }
    // The node's segments, after the words (whose line numbers stay as they are), so that its
    // grants name segments the manifest knows.
    if let Some(plane) = PLANE.lock().as_ref() {
        for segment in plane.registry.segments().segments() {
            text.push_str(&SegmentSpec::new(&segment.name, segment.size).holding_files(segment.files).to_section());
        }
    }
    let manifest = NodeManifest::parse(text.as_bytes()).map_err(|e| {
        // Line 1 is the header; line N+1 is the Nth word.
        let messages: Vec<String> = e
            .errors
            .iter()
            .map(|e| match e.line {
                Some(l) if l > 1 => alloc::format!("word {}: {}", l - 1, e.kind),
                _ => e.kind.to_string(),
            })
            .collect();
        messages.join("; ")
    })?;
    let spec = manifest.enclaves.into_iter().next().ok_or("no enclave in the words")?;
    let mut guard = PLANE.lock();
    let plane = guard.as_mut().ok_or("the control plane is not up")?;
    let state = plane.registry.create(spec).map_err(|e| e.to_string())?.state;
    // A segment granted anew (nobody else holds it now) holds none of its earlier holders' data.
    for segment in plane.registry.segments().held_only_by(name) {
        if let Some((_, memory)) = plane.segments.iter().find(|(n, _)| *n == segment) {
            // The segment's block is lendable RAM, the segment's for the node's lifetime; the
            // only enclave granted it was just created and maps nothing yet.
            if lent_memory::zero(memory.phys, memory.bytes as usize).is_err() {
                return Err(alloc::format!("segment {segment}: its memory could not be scrubbed"));
            }
            logging::emit("segment_scrubbed", |e| {
                e.str("segment", &segment).str("enclave", name).u64("bytes", memory.bytes);
            });
        } else if let Some((_, share)) = plane.shares.iter().find(|(n, _)| *n == segment) {
            match share.clear() {
                Ok(bytes) => logging::emit("segment_scrubbed", |e| {
                    e.str("segment", &segment).str("enclave", name).u64("bytes", bytes).bool("files", true);
                }),
                Err(e) => log::error!(target: "enclaves", "segment {segment}: emptying it: {e}"),
            }
        }
    }
    let assignment = plane.registry.partition().get(name);
    logging::emit("enclave_state", |e| {
        e.str("enclave", name).str("from", "").str("to", state.name()).str("cause", "create");
        if let Some(a) = assignment {
            e.display("cores", &a.cores).u64("mem_mib", a.memory_bytes >> 20);
        }
    });
    Ok(())
}

/// One line per enclave: name, kind, state, cores, memory, policy (the `list` command), each
/// also as an `enclave_info` event.
pub fn list() -> Vec<String> {
    let guard = PLANE.lock();
    let Some(plane) = guard.as_ref() else { return Vec::new() };
    plane
        .registry
        .records()
        .iter()
        .map(|r| {
            let a = plane.registry.partition().get(&r.spec.name);
            emit_info(r, a);
            alloc::format!(
                "{:<16} {:<4} {:<10} {:<10} {:>8} MiB  {:<7} launched {}",
                r.spec.name,
                r.spec.kind().name(),
                r.state.name(),
                a.map_or(String::from("-"), |a| a.cores.to_string()),
                a.map_or(0, |a| a.memory_bytes >> 20),
                r.spec.isolation.name(),
                r.launches
            )
        })
        .collect()
}

/// An `enclave_info` event: what `list` and `show` say of one enclave.
fn emit_info(record: &enclave::Record, assignment: Option<&enclave::Assignment>) {
    logging::emit("enclave_info", |e| {
        e.str("enclave", &record.spec.name)
            .str("kind", record.spec.kind().name())
            .str("state", record.state.name())
            .str("isolation", record.spec.isolation.name())
            .u64("launches", record.launches as u64);
        if let Some(a) = assignment {
            e.display("cores", &a.cores).u64("mem_mib", a.memory_bytes >> 20);
        }
    });
}

/// An enclave's manifest section, partition and state (the `show` command), and an
/// `enclave_info` event with the same facts.
pub fn show(name: &str) -> Result<String, String> {
    let guard = PLANE.lock();
    let plane = guard.as_ref().ok_or("the control plane is not up")?;
    let record = plane.registry.get(name).ok_or_else(|| alloc::format!("no enclave named `{name}`"))?;
    let assignment = plane.registry.partition().get(name);
    let mut text = record.spec.to_section();
    text.push_str(&alloc::format!("# state {}, launched {} times\n", record.state, record.launches));
    if let Some(a) = assignment {
        text.push_str(&alloc::format!("# assigned cores {}, {} MiB\n", a.cores, a.memory_bytes >> 20));
    }
    emit_info(record, assignment);
    Ok(text)
}

/// Statistics of the running enclaves as events: `vm_stats` for VMs, `job_stats` for jobs.
/// Returns how many were reported.
pub fn stats(only: Option<&str>) -> usize {
    let handles: Vec<Handle> = {
        let guard = PLANE.lock();
        let Some(plane) = guard.as_ref() else { return 0 };
        plane.running.iter().filter(|r| only.is_none_or(|n| n == r.name)).map(|r| r.handle.clone()).collect()
    };
    for handle in &handles {
        match handle {
            Handle::Job(job) => jobs::report(job),
            Handle::Vm(vm, _) => vms::report(vm),
        }
    }
    handles.len()
}
