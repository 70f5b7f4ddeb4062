//! Virtual machines named on the kernel command line:
//!
//! ```text
//! vm=NAME vm.kernel=/boot/vmlinux vm.initrd=/boot/initrd vm.cmdline="console=ttyS0 ..."
//! vm.cores=2-3 vm.mem=512M            (one vCPU per listed core)
//! vm.isolation=strict|shared|node vm.heartbeat=5s
//! vm.NAME2.kernel=... vm.NAME2.cores=4 ...   (more VMs)
//! ```
//!
//! Each VM is an `[enclave NAME]` section with `kind = vm` whose values the manifest's parser
//! reads (`boot_manifest`): this module reads only the options' names.

use alloc::string::{String, ToString};

/// `vm.SETTING=` and `vm.NAME.SETTING=`: (SETTING, the manifest key it sets).
const SETTINGS: [(&str, &str); 8] = [
    ("kernel", "kernel"),
    ("initrd", "initrd"),
    ("cmdline", "cmdline"),
    ("cores", "cores"),
    ("mem", "memory"),
    ("isolation", "isolation"),
    ("heartbeat", "heartbeat"),
    ("kernel_memory", "kernel_memory"),
];
/// The name of the VM `vm.SETTING=` describes until `vm=NAME` names it.
pub const DEFAULT_NAME: &str = "vm";

/// What a `vm...` option does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmKey<'a> {
    /// `vm=NAME`: names the VM `vm.SETTING=` describes.
    Name,
    /// Sets a manifest key of the VM `vm.SETTING=` describes (`vm: None`) or of VM NAME
    /// (`vm.NAME.SETTING=`).
    Set { vm: Option<&'a str>, key: &'static str },
}

/// What a `vm...` option does; `Ok(None)`: not a VM option.
pub fn parse_key(option: &str) -> Result<Option<VmKey<'_>>, String> {
    let rest = match option.strip_prefix("vm") {
        Some("") => return Ok(Some(VmKey::Name)),
        Some(r) if r.starts_with('.') => &r[1..],
        _ => return Ok(None),
    };
    let (vm, word) = match rest.split_once('.') {
        Some((name, word)) => (Some(name), word),
        None => (None, rest),
    };
    if vm.is_some_and(|name| !enclave::valid_name(name)) {
        return Err(NAME_RULE.to_string());
    }
    let key = SETTINGS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, key)| *key)
        .ok_or_else(|| alloc::format!("unknown VM setting \"{word}\""))?;
    Ok(Some(VmKey::Set { vm, key }))
}

/// `vm=NAME`'s value: the VM's name.
pub fn parse_name(value: &str) -> Result<&str, String> {
    if enclave::valid_name(value) { Ok(value) } else { Err(NAME_RULE.to_string()) }
}

const NAME_RULE: &str = "a VM name uses 1 to 64 letters, digits, '-' and '_'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_a_vm_and_a_key() {
        assert_eq!(parse_key("vm"), Ok(Some(VmKey::Name)));
        assert_eq!(parse_key("vm.kernel"), Ok(Some(VmKey::Set { vm: None, key: "kernel" })));
        assert_eq!(parse_key("vm.mem"), Ok(Some(VmKey::Set { vm: None, key: "memory" })));
        assert_eq!(parse_key("vm.b.cores"), Ok(Some(VmKey::Set { vm: Some("b"), key: "cores" })));
        assert_eq!(parse_key("vmx"), Ok(None));
        assert_eq!(parse_name("linux"), Ok("linux"));
    }

    #[test]
    fn errors() {
        assert!(parse_name("bad name").is_err());
        assert!(parse_name("").is_err());
        assert!(parse_key("vm.disk").unwrap_err().contains("unknown VM setting"));
        assert!(parse_key("vm.b@d.kernel").unwrap_err().contains("VM name"));
        assert!(parse_key("vm.a.b.c").unwrap_err().contains("unknown VM setting \"b.c\""));
    }
}
