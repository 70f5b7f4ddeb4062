//! Virtual machines named on the kernel command line:
//!
//! ```text
//! vm=NAME vm.kernel=/boot/vmlinux vm.initrd=/boot/initrd vm.cmdline="console=ttyS0 ..."
//! vm.cores=2-3 vm.mem=512M            (one vCPU per listed core)
//! vm.isolation=strict|shared|node vm.heartbeat=5s
//! vm.NAME2.kernel=... vm.NAME2.cores=4 ...   (more VMs)
//! ```

use crate::job_options::{parse_cores, parse_size};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

const SETTINGS: [&str; 8] = ["kernel", "initrd", "cmdline", "cores", "mem", "isolation", "heartbeat", "kernel_memory"];
/// The slot `vm=` names and `vm.SETTING` refers to.
const DEFAULT_SLOT: &str = "";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmSpec {
    /// Internal key: "" for the VM `vm=` names, else its name.
    slot: String,
    pub name: String,
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: String,
    /// One vCPU per core; `None`: one free core.
    pub cores: Option<Vec<usize>>,
    /// `None`: 256 MiB.
    pub mem: Option<u64>,
    /// Its isolation policy; `None`: `strict`.
    pub isolation: Option<enclave::Policy>,
    /// Longest time between two heartbeats, ns; `None`: not watched.
    pub heartbeat_ns: Option<u64>,
    /// Its kernel-memory budget; `None`: the default share.
    pub kernel_memory: Option<u64>,
}

/// Applies one `vm...` option. `Ok(false)`: not a VM option.
pub fn apply(vms: &mut Vec<VmSpec>, key: &str, value: Option<&str>) -> Result<bool, String> {
    let rest = match key.strip_prefix("vm") {
        Some("") => None,
        Some(r) if r.starts_with('.') => Some(&r[1..]),
        _ => return Ok(false),
    };
    let value = value.ok_or("needs a value")?;
    let valid_name = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let (slot, setting) = match rest {
        None => {
            if !valid_name(value) {
                return Err("a VM name uses letters, digits, '-' and '_'".to_string());
            }
            let vm = slot_mut(vms, DEFAULT_SLOT);
            vm.name = value.to_string();
            return Ok(true);
        }
        Some(r) => match r.split_once('.') {
            Some((name, setting)) if valid_name(name) => (name, setting),
            Some(_) => return Err("a VM name uses letters, digits, '-' and '_'".to_string()),
            None => (DEFAULT_SLOT, r),
        },
    };
    if !SETTINGS.contains(&setting) {
        return Err(alloc::format!("unknown VM setting \"{setting}\""));
    }
    let vm = slot_mut(vms, slot);
    match setting {
        "kernel" | "initrd" => {
            if !value.starts_with('/') {
                return Err("the file must be an absolute path in the initrd".to_string());
            }
            if setting == "kernel" {
                vm.kernel = value.to_string();
            } else {
                vm.initrd = Some(value.to_string());
            }
        }
        "cmdline" => vm.cmdline = value.to_string(),
        "cores" => vm.cores = Some(parse_cores(value)?),
        "isolation" => vm.isolation = Some(enclave::Policy::parse(value).map_err(|e| e.to_string())?),
        "heartbeat" => vm.heartbeat_ns = Some(enclave::health::parse_duration(value).map_err(|e| e.to_string())?),
        "kernel_memory" => vm.kernel_memory = Some(parse_size(value)?),
        _ => vm.mem = Some(parse_size(value)?),
    }
    Ok(true)
}

fn slot_mut<'a>(vms: &'a mut Vec<VmSpec>, slot: &str) -> &'a mut VmSpec {
    match vms.iter().position(|v| v.slot == slot) {
        Some(i) => &mut vms[i],
        None => {
            let name = if slot.is_empty() { "vm".to_string() } else { slot.to_string() };
            vms.push(VmSpec { slot: slot.to_string(), name, ..VmSpec::default() });
            vms.last_mut().expect("just pushed")
        }
    }
}

/// What only the whole line shows: every VM has a kernel, names are not shared. (Cores named
/// twice are the manifest's check, which the shorthands go through: `boot_manifest`.)
pub fn validate(vms: &[VmSpec]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for (i, v) in vms.iter().enumerate() {
        if v.kernel.is_empty() {
            errors.push((v.name.clone(), "no kernel (vm.kernel=/path)".to_string()));
        }
        if vms[..i].iter().any(|o| o.name == v.name) {
            errors.push((v.name.clone(), "two VMs have this name".to_string()));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[(&str, &str)]) -> Result<Vec<VmSpec>, String> {
        let mut vms = Vec::new();
        for (k, v) in words {
            assert!(apply(&mut vms, k, Some(v))?);
        }
        Ok(vms)
    }

    #[test]
    fn the_single_vm_form() {
        let vms = parse(&[
            ("vm", "linux"),
            ("vm.kernel", "/boot/vmlinux"),
            ("vm.initrd", "/boot/initrd"),
            ("vm.cmdline", "console=ttyS0 quiet"),
            ("vm.cores", "2-3"),
            ("vm.mem", "512M"),
        ])
        .unwrap();
        assert_eq!(vms.len(), 1);
        let v = &vms[0];
        assert_eq!(
            (v.name.as_str(), v.kernel.as_str(), v.cmdline.as_str()),
            ("linux", "/boot/vmlinux", "console=ttyS0 quiet")
        );
        assert_eq!(
            (v.initrd.as_deref(), v.cores.clone(), v.mem),
            (Some("/boot/initrd"), Some(vec![2, 3]), Some(512 << 20))
        );
        assert!(validate(&vms).is_empty());
    }

    #[test]
    fn settings_before_the_name_and_named_vms() {
        let vms = parse(&[("vm.kernel", "/k"), ("vm", "a"), ("vm.b.kernel", "/k2"), ("vm.b.cores", "4")]).unwrap();
        assert_eq!(vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(vms[1].cores, Some(vec![4]));
    }

    #[test]
    fn errors() {
        assert!(parse(&[("vm", "bad name")]).is_err());
        assert!(parse(&[("vm.kernel", "relative")]).unwrap_err().contains("absolute"));
        assert!(parse(&[("vm.disk", "/x")]).unwrap_err().contains("unknown VM setting"));
        assert!(parse(&[("vm.cores", "x")]).is_err());
        let vms = parse(&[("vm.a.kernel", "/k"), ("vm.a.cores", "1"), ("vm.b.cores", "1")]).unwrap();
        let e = validate(&vms);
        assert!(e.iter().any(|(n, r)| n == "b" && r.contains("no kernel")));
        let mut vms = Vec::new();
        assert_eq!(apply(&mut vms, "vmx", Some("1")), Ok(false));
    }
}
