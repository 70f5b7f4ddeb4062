//! Named ways to boot with `cargo xtask run --scenario NAME`: each adds its options to the kernel
//! command line, before those of `--cmdline` and `--job`. Adding one is adding a row to
//! [`RUN_SCENARIOS`] (and a line to the README).

use clap::builder::{PossibleValue, PossibleValuesParser};

pub struct RunScenario {
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    pub cmdline: &'static str,
}

/// What `cargo xtask run` boots when given nothing to run.
pub const DEFAULT: &str = "compose";

pub const RUN_SCENARIOS: &[RunScenario] = &[
    RunScenario {
        name: "compose",
        about: "the default: a simulation as a native job on core 1 writes steps into a shared segment while \
                a Debian Linux VM on core 2 reads and checks them (tests/manifests/compose.conf)",
        cmdline: "manifest=/etc/manul/tests/compose.conf",
    },
    RunScenario {
        name: "linux-vm",
        about: "Debian's Linux (/boot/vmlinux, through PVH) as VM `linux` on core 1 with 512 MiB and \
            /boot/guest-initrd.cpio, whose /init reports and powers the guest off",
        cmdline: "vm=linux vm.kernel=/boot/vmlinux vm.initrd=/boot/guest-initrd.cpio \
              vm.cmdline=\"console=ttyS0 earlyprintk=serial,ttyS0 manul.action=poweroff\" vm.cores=1 vm.mem=512M",
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static RunScenario> {
    RUN_SCENARIOS.iter().find(|scenario| scenario.name == name)
}

/// Accepts the scenario names only, listing them (with what they do) in `--help` and errors.
pub fn parser() -> PossibleValuesParser {
    PossibleValuesParser::new(
        RUN_SCENARIOS.iter().map(|scenario| PossibleValue::new(scenario.name).help(scenario.about)),
    )
}

/// The kernel command line made of the non-empty `parts`, in order.
pub fn join_cmdline(parts: &[&str]) -> String {
    parts.iter().map(|part| part.trim()).filter(|part| !part.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::artifacts::linux_guest;

    #[test]
    fn names_are_unique_and_found() {
        let mut names = HashSet::new();
        for scenario in RUN_SCENARIOS {
            assert!(names.insert(scenario.name), "{} appears twice", scenario.name);
            assert!(scenario.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            assert_eq!(find(scenario.name).map(|found| found.cmdline), Some(scenario.cmdline));
            assert!(!scenario.cmdline.contains("  "), "{}: the line continuation left spaces", scenario.name);
        }
        assert!(find("nothing").is_none());
    }

    #[test]
    fn the_linux_vm_boots_the_files_of_the_linux_guest() {
        let cmdline = find("linux-vm").unwrap().cmdline;
        let value = |key: &str| {
            cmdline.split(' ').find_map(|option| option.strip_prefix(key)).unwrap_or_else(|| panic!("no {key}"))
        };
        let boot_files: Vec<String> = linux_guest::BOOT_FILES.iter().map(|name| format!("/{name}")).collect();
        assert!(boot_files.iter().any(|file| file == value("vm.kernel=")), "{cmdline}");
        assert!(boot_files.iter().any(|file| file == value("vm.initrd=")), "{cmdline}");
        assert!(cmdline.contains("vm.cmdline=\"console=ttyS0 earlyprintk=serial,ttyS0 manul.action=poweroff\""));
    }

    #[test]
    fn command_lines_join_with_single_spaces() {
        assert_eq!(join_cmdline(&["a=1 b=2", "", " log=debug ", "job=/bin/hello"]), "a=1 b=2 log=debug job=/bin/hello");
        assert_eq!(join_cmdline(&["", " "]), "");
    }
}
