//! Debian's Linux kernel as a guest of the embedded VMM. The image package that
//! `linux-image-amd64` depends on (about 70 MB) is downloaded once; of its files only the
//! bzImage and a few modules are kept, as `target/manul/cache/linux-image-amd64/vmlinuz` and
//! `modules/NAME.ko`: the guest-panic modules (Debian builds pvpanic as modules; the guest's
//! `/init` loads them so that a guest kernel panic reaches the VMM) and KVM for AMD with what
//! it needs (the benchmarks' KVM peer), next to `package`
//! (its name and version, written last: the cache is complete when all exist). Nothing asks apt
//! again while the cache is complete; deleting that directory fetches the current kernel.
//!
//! The uncompressed kernel, `target/manul/guest/vmlinux`, is the payload of the bzImage: an XZ
//! stream (Debian's 6.1 kernels are built with `CONFIG_KERNEL_XZ`) holding an ELF64 file, which
//! the VMM boots through its Xen PVH entry note.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::artifacts::debian_package;
use crate::host::process;
use crate::host::workspace::Workspace;

/// The metapackage that names Debian's current kernel image package.
const METAPACKAGE: &str = "linux-image-amd64";
/// What the names of the kernel image packages start with.
const IMAGE_PACKAGE_PREFIX: &str = "linux-image-";
/// The start of every XZ stream.
const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];
const ELF_MAGIC: [u8; 4] = [0x7F, b'E', b'L', b'F'];
/// The guest-panic modules kept from the package, in loading order (the second needs the first).
pub const PANIC_MODULES: [&str; 2] = ["pvpanic.ko", "pvpanic-mmio.ko"];
/// KVM for AMD and the modules it needs, in loading order.
pub const KVM_MODULES: [&str; 4] = ["irqbypass.ko", "ccp.ko", "kvm.ko", "kvm-amd.ko"];
/// Every module kept, and where it is in the package, below `lib/modules/VERSION/kernel/`.
const KEPT_MODULES: [(&str, &str); 6] = [
    ("drivers/misc/pvpanic", PANIC_MODULES[0]),
    ("drivers/misc/pvpanic", PANIC_MODULES[1]),
    ("virt/lib", KVM_MODULES[0]),
    ("drivers/crypto/ccp", KVM_MODULES[1]),
    ("arch/x86/kvm", KVM_MODULES[2]),
    ("arch/x86/kvm", KVM_MODULES[3]),
];
/// The Xen ELF note that gives a kernel's 32-bit PVH entry point.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The kernel, ready for the initrd.
pub struct DebianKernel {
    /// The package it came from: `NAME VERSION`.
    pub package: String,
    pub bzimage: PathBuf,
    /// [`PANIC_MODULES`], in that order.
    pub panic_modules: Vec<PathBuf>,
    /// [`KVM_MODULES`], in that order.
    pub kvm_modules: Vec<PathBuf>,
    pub vmlinux: PathBuf,
    /// The physical address of the PVH entry, when `vmlinux` has one.
    pub pvh_entry: Option<u32>,
    /// What is wrong without stopping the build, for the user.
    pub notes: Vec<String>,
}

/// The cached kernel (downloading it the first time) and its `vmlinux`, made again when the
/// bzImage changed; progress goes to `log`.
pub fn fetch(workspace: &Workspace, log: &mut dyn Write) -> Result<DebianKernel> {
    let dir = workspace.cache_dir().join(METAPACKAGE);
    let bzimage = dir.join("vmlinuz");
    let record = dir.join("package");
    let kept = |names: &[&str]| -> Vec<PathBuf> { names.iter().map(|m| dir.join("modules").join(m)).collect() };
    let (panic_modules, kvm_modules) = (kept(&PANIC_MODULES), kept(&KVM_MODULES));
    let cached = bzimage.is_file() && record.is_file() && panic_modules.iter().chain(&kvm_modules).all(|m| m.is_file());
    if !cached && let Err(error) = download(&dir, &bzimage, &record, log) {
        // Not to leave the 400 MB of an unpacked package behind.
        for leftover in ["download", "root", "root.partial", "modules"] {
            let _ = debian_package::remove_dir_if_present(&dir.join(leftover));
        }
        return Err(error);
    }
    let package = fs::read_to_string(&record).with_context(|| format!("cannot read {}", record.display()))?;
    let package = package.trim().to_owned();

    let vmlinux = workspace.guest_dir().join("vmlinux");
    // Made from this very bzImage: the stamp next to it records the bzImage's size and time.
    let stamp = vmlinux.with_extension("source");
    let source = describe_file(&bzimage)?;
    if !(vmlinux.is_file() && fs::read_to_string(&stamp).is_ok_and(|recorded| recorded == source)) {
        let started = Instant::now();
        extract_vmlinux(&bzimage, &vmlinux)?;
        fs::write(&stamp, &source).with_context(|| format!("cannot write {}", stamp.display()))?;
        writeln!(
            log,
            "extracted {} ({} bytes) from the bzImage of {package} in {:.1} s",
            vmlinux.display(),
            file_size(&vmlinux)?,
            started.elapsed().as_secs_f64()
        )?;
    }
    let elf = fs::read(&vmlinux).with_context(|| format!("cannot read {}", vmlinux.display()))?;
    let mut notes = Vec::new();
    let pvh_entry = match pvh_entry(&elf) {
        Ok(entry) => Some(entry),
        Err(error) => {
            notes.push(format!(
                "{} (from {package}) cannot be booted through PVH: {error:#}; /boot/vmlinuz (the bzImage) is its only \
                 bootable form",
                vmlinux.display()
            ));
            None
        }
    };
    Ok(DebianKernel { package, bzimage, panic_modules, kvm_modules, vmlinux, pvh_entry, notes })
}

/// Resolves, downloads and unpacks the image package, keeps its bzImage at `bzimage`, writes
/// `record` and removes the rest.
fn download(dir: &Path, bzimage: &Path, record: &Path, log: &mut dyn Write) -> Result<()> {
    let started = Instant::now();
    let package = debian_package::resolve_dependency(METAPACKAGE, IMAGE_PACKAGE_PREFIX, log)
        .context("cannot find out which package holds Debian's kernel")?;
    let unpacked = debian_package::fetch(&package, dir, log)?;
    let description = debian_package::describe(&unpacked.deb)?;
    let boot = unpacked.root.join("boot");
    let images = files_starting_with(&boot, "vmlinuz-")?;
    let [image] = &images[..] else {
        bail!("expected one boot/vmlinuz-* file in {package}, found {}: {images:?}", images.len());
    };
    fs::rename(image, bzimage).with_context(|| format!("cannot move {} to {}", image.display(), bzimage.display()))?;
    let module_dirs = files_starting_with(&unpacked.root.join("lib/modules"), "")?;
    let [module_dir] = &module_dirs[..] else {
        bail!("expected one lib/modules/VERSION directory in {package}, found {}: {module_dirs:?}", module_dirs.len());
    };
    let kept = dir.join("modules");
    fs::create_dir_all(&kept).with_context(|| format!("cannot create {}", kept.display()))?;
    for (subdir, module) in KEPT_MODULES {
        let from = module_dir.join("kernel").join(subdir).join(module);
        fs::rename(&from, kept.join(module))
            .with_context(|| format!("cannot keep {} (is it still a module of {package}?)", from.display()))?;
    }
    // Only these are needed: the modules alone take some 400 MB.
    debian_package::remove_dir_if_present(&unpacked.root)?;
    debian_package::remove_dir_if_present(&dir.join("download"))?;
    fs::write(record, format!("{description}\n")).with_context(|| format!("cannot write {}", record.display()))?;
    writeln!(
        log,
        "kept the bzImage of {description} at {} ({} bytes); download and unpacking took {:.1} s",
        bzimage.display(),
        file_size(bzimage)?,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// The files of `dir` whose names start with `prefix`, sorted.
fn files_starting_with(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Decompresses the bzImage's payload into `vmlinux` (through `vmlinux.partial`): the first XZ
/// stream of [`xz_stream_offsets`] that decompresses to an ELF file, of the size the bzImage
/// records when it records one.
fn extract_vmlinux(bzimage: &Path, vmlinux: &Path) -> Result<()> {
    let image = fs::read(bzimage).with_context(|| format!("cannot read {}", bzimage.display()))?;
    let offsets = xz_stream_offsets(&image);
    ensure!(
        !offsets.is_empty(),
        "{} holds no XZ stream (magic FD 37 7A 58 5A 00): it is not an XZ-compressed bzImage",
        bzimage.display()
    );
    if let Some(dir) = vmlinux.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = vmlinux.with_extension("partial");
    let expected_size = payload_size(&image);
    let mut failures = Vec::new();
    for offset in offsets {
        let failure = match xz_decompress(&image[offset..], &partial) {
            Err(error) => format!("{error:#}"),
            Ok(()) => {
                let size = file_size(&partial)?;
                if !starts_with(&partial, &ELF_MAGIC)? {
                    format!("it decompresses to {size} bytes that are not an ELF file")
                } else if expected_size.is_some_and(|expected| expected != size) {
                    format!("it decompresses to {size} bytes, but the bzImage records {}", expected_size.unwrap_or(0))
                } else {
                    return fs::rename(&partial, vmlinux)
                        .with_context(|| format!("cannot rename {} to {}", partial.display(), vmlinux.display()));
                }
            }
        };
        failures.push(format!("the XZ stream at byte {offset:#x}: {failure}"));
    }
    let _ = fs::remove_file(&partial);
    bail!("cannot extract vmlinux from {}:\n    {}", bzimage.display(), failures.join("\n    "))
}

/// Where XZ streams may start in a bzImage: first the payload the setup header points at (when
/// it is an XZ stream), then every other place the XZ magic appears, in order.
fn xz_stream_offsets(image: &[u8]) -> Vec<usize> {
    let mut offsets: Vec<usize> = setup_payload(image)
        .map(|payload| payload.start)
        .filter(|&start| image[start..].starts_with(&XZ_MAGIC))
        .into_iter()
        .collect();
    let found = image.windows(XZ_MAGIC.len()).enumerate().filter(|(_, window)| *window == XZ_MAGIC).map(|(at, _)| at);
    for offset in found {
        if !offsets.contains(&offset) {
            offsets.push(offset);
        }
    }
    offsets
}

/// The compressed kernel of a bzImage, from its setup header (boot protocol 2.08 and later):
/// `payload_offset` and `payload_length` from the start of the protected-mode code, which follows
/// the `setup_sects` sectors of setup code and the boot sector.
fn setup_payload(image: &[u8]) -> Option<Range<usize>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(image.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?));
    if image.get(0x202..0x206)? != b"HdrS" || u16_at(0x206)? < 0x208 {
        return None;
    }
    // Zero setup sectors means four, for old boot loaders.
    let setup_sects = match *image.get(0x1F1)? {
        0 => 4,
        sectors => usize::from(sectors),
    };
    let start = (setup_sects + 1) * 512 + usize::try_from(u32_at(0x248)?).ok()?;
    let end = start.checked_add(usize::try_from(u32_at(0x24C)?).ok()?)?;
    (end <= image.len() && start < end).then_some(start..end)
}

/// The size of the uncompressed kernel, which the build appends to the compressed payload as 4
/// little-endian bytes.
fn payload_size(image: &[u8]) -> Option<u64> {
    let payload = setup_payload(image)?;
    let size = image.get(payload.end.checked_sub(4)?..payload.end)?;
    Some(u64::from(u32::from_le_bytes(size.try_into().ok()?)))
}

/// `xz --decompress --single-stream` of `input` (which may go on after the stream) into `output`.
fn xz_decompress(input: &[u8], output: &Path) -> Result<()> {
    let file = File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    let mut command = Command::new("xz");
    command.args(["--decompress", "--stdout", "--single-stream"]);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", process::describe(&command)))?;
    let mut stdin = child.stdin.take().context("xz has no input pipe")?;
    // xz stops reading at the end of the stream: a broken pipe after that is expected.
    let written = stdin.write_all(input);
    drop(stdin);
    let result =
        child.wait_with_output().with_context(|| format!("cannot wait for `{}`", process::describe(&command)))?;
    if !result.status.success() {
        bail!("{}", process::failure_report(&command, &result));
    }
    match written {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(error).with_context(|| format!("cannot write to `{}`", process::describe(&command)))
        }
        _ => Ok(()),
    }
}

/// The PVH entry of a kernel: `elf` must be an x86-64 ELF64 file with a Xen note of type 18
/// (`XEN_ELFNOTE_PHYS32_ENTRY`) in a `PT_NOTE` segment, whose 4- or 8-byte value is the 32-bit
/// physical address where a PVH loader starts it (the check of the VMM's PVH loader).
pub fn pvh_entry(elf: &[u8]) -> Result<u32> {
    ensure!(elf.starts_with(&ELF_MAGIC), "not an ELF file");
    let parsed = goblin::elf::Elf::parse(elf).context("not a valid ELF file")?;
    ensure!(parsed.is_64, "an ELF32 file, not ELF64");
    let machine = parsed.header.e_machine;
    ensure!(
        machine == goblin::elf::header::EM_X86_64,
        "an ELF64 file for machine {machine} ({}), not x86-64",
        goblin::elf::header::machine_to_str(machine)
    );
    for note in parsed.iter_note_headers(elf).into_iter().flatten() {
        let note = note.context("a malformed ELF note")?;
        if note.name == "Xen" && note.n_type == XEN_ELFNOTE_PHYS32_ENTRY {
            let entry = match *note.desc {
                [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
                [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                _ => bail!("its Xen PVH entry note holds {} bytes, not 4 or 8", note.desc.len()),
            };
            return u32::try_from(entry)
                .with_context(|| format!("its PVH entry {entry:#x} is above 4 GiB: not a 32-bit physical address"));
        }
    }
    bail!("an x86-64 ELF64 file without a Xen PVH entry note (name \"Xen\", type {XEN_ELFNOTE_PHYS32_ENTRY})")
}

/// A file's size and modification time to the nanosecond (a package's files keep the times of
/// its build, which a wrong clock may see in the future: comparing times would not do).
fn describe_file(path: &Path) -> Result<String> {
    let metadata = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{} {}.{:09}\n", metadata.len(), metadata.mtime(), metadata.mtime_nsec()))
}

fn starts_with(path: &Path, prefix: &[u8]) -> Result<bool> {
    let mut start = Vec::with_capacity(prefix.len());
    File::open(path)
        .and_then(|file| file.take(prefix.len() as u64).read_to_end(&mut start))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(start == prefix)
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).with_context(|| format!("cannot read the size of {}", path.display()))?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::temp_dir;

    /// A bzImage-like file: a boot sector and `setup_sects` sectors whose setup header points at
    /// `payload` (with its 4-byte size appended), then `trailer`.
    fn bzimage(setup_sects: u8, decoy: bool, payload: &[u8], size: u32, trailer: &[u8]) -> Vec<u8> {
        let mut image = vec![0u8; (usize::from(setup_sects) + 1) * 512];
        image[0x1F1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        if decoy {
            // The magic inside the setup code, before the payload.
            image[0x300..0x306].copy_from_slice(&XZ_MAGIC);
        }
        // The payload starts 0x40 bytes into the protected-mode code.
        let payload_offset = 0x40u32;
        image[0x248..0x24C].copy_from_slice(&payload_offset.to_le_bytes());
        image[0x24C..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        image.extend_from_slice(&[0x90; 0x40]);
        image.extend_from_slice(payload);
        image.extend_from_slice(&size.to_le_bytes());
        image.extend_from_slice(trailer);
        image
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let dir = temp_dir("xz");
        fs::write(dir.join("data"), data).unwrap();
        process::run_captured(Command::new("xz").arg("--keep").arg(dir.join("data"))).unwrap();
        let compressed = fs::read(dir.join("data.xz")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        compressed
    }

    #[test]
    fn the_xz_stream_of_the_setup_header_comes_first() {
        let payload = [&XZ_MAGIC[..], b"compressed"].concat();
        let image = bzimage(2, true, &payload, 1000, &XZ_MAGIC);
        let start = 3 * 512 + 0x40;
        assert_eq!(setup_payload(&image), Some(start..start + payload.len() + 4));
        assert_eq!(payload_size(&image), Some(1000));
        // The header's payload, then the decoy in the setup code and the magic after the payload.
        assert_eq!(xz_stream_offsets(&image), [start, 0x300, image.len() - XZ_MAGIC.len()]);

        // Without a setup header, every occurrence in order.
        let mut headerless = image.clone();
        headerless[0x202] = b'X';
        assert_eq!(setup_payload(&headerless), None);
        assert_eq!(payload_size(&headerless), None);
        assert_eq!(xz_stream_offsets(&headerless), [0x300, start, image.len() - XZ_MAGIC.len()]);

        // A header whose payload is not XZ: only the occurrences of the magic.
        let gzip = bzimage(1, false, &[0x1F, 0x8B, 8, 0], 1000, b"");
        assert_eq!(xz_stream_offsets(&gzip), Vec::<usize>::new());
        // Too old a boot protocol (2.07) has no payload fields.
        let mut old = bzimage(1, false, &payload, 1000, b"");
        old[0x206..0x208].copy_from_slice(&0x0207u16.to_le_bytes());
        assert_eq!(setup_payload(&old), None);
        assert_eq!(xz_stream_offsets(&old), [2 * 512 + 0x40]);
        // Zero setup sectors mean four.
        let mut zero = bzimage(4, false, &payload, 1000, b"");
        zero[0x1F1] = 0;
        assert_eq!(setup_payload(&zero).map(|payload| payload.start), Some(5 * 512 + 0x40));
        // A payload beyond the end of the file is no payload.
        let mut truncated = bzimage(1, false, &payload, 1000, b"");
        truncated.truncate(truncated.len() - 1);
        assert_eq!(setup_payload(&truncated), None);
        assert!(xz_stream_offsets(&[0u8; 100]).is_empty());
    }

    #[test]
    fn vmlinux_is_the_xz_stream_that_decompresses_to_an_elf_file() {
        let dir = temp_dir("extract");
        let kernel: Vec<u8> = ELF_MAGIC.iter().copied().chain((0..100_000u32).map(|i| (i * 7 % 251) as u8)).collect();
        let compressed = xz(&kernel);
        // A decoy stream of something else in the setup code is skipped.
        let bzimage_path = dir.join("vmlinuz");
        let mut image = bzimage(2, false, &compressed, kernel.len() as u32, b"trailing bytes after the payload");
        let decoy = xz(b"not a kernel");
        image[0x300..0x300 + decoy.len()].copy_from_slice(&decoy);
        fs::write(&bzimage_path, &image).unwrap();
        let vmlinux = dir.join("guest").join("vmlinux");
        extract_vmlinux(&bzimage_path, &vmlinux).unwrap();
        assert_eq!(fs::read(&vmlinux).unwrap(), kernel);
        assert!(!dir.join("guest").join("vmlinux.partial").exists());

        // Without the setup header the decoy comes first, and fails; then the payload.
        image[0x202] = b'X';
        fs::write(&bzimage_path, &image).unwrap();
        extract_vmlinux(&bzimage_path, &vmlinux).unwrap();
        assert_eq!(fs::read(&vmlinux).unwrap(), kernel);

        // A size that does not match the header's is refused, as is a file with no stream.
        let image = bzimage(2, false, &compressed, 12, b"");
        fs::write(&bzimage_path, &image).unwrap();
        let error = format!("{:#}", extract_vmlinux(&bzimage_path, &vmlinux).unwrap_err());
        assert!(error.contains("decompresses to 100004 bytes, but the bzImage records 12"), "{error}");
        fs::write(&bzimage_path, [0u8; 4096]).unwrap();
        let error = extract_vmlinux(&bzimage_path, &vmlinux).unwrap_err().to_string();
        assert!(error.ends_with("it is not an XZ-compressed bzImage"), "{error}");
        // A corrupt stream: xz's complaint is reported.
        let mut corrupt = compressed.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xFF;
        fs::write(&bzimage_path, bzimage(2, false, &corrupt, kernel.len() as u32, b"")).unwrap();
        let error = format!("{:#}", extract_vmlinux(&bzimage_path, &vmlinux).unwrap_err());
        assert!(error.contains("the XZ stream at byte 0x640: `xz --decompress"), "{error}");
        assert!(!dir.join("guest").join("vmlinux.partial").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Links an x86-64 ELF64 executable from assembly with gcc.
    fn link(dir: &Path, name: &str, assembly: &str, flags: &[&str]) -> Vec<u8> {
        let source = dir.join(format!("{name}.S"));
        let binary = dir.join(name);
        fs::write(&source, assembly).unwrap();
        let mut command = Command::new("gcc");
        command.args(["-nostdlib", "-static", "-Wl,--build-id=none"]).args(flags).arg("-o").arg(&binary).arg(&source);
        process::run_captured(&mut command).unwrap();
        fs::read(&binary).unwrap()
    }

    const START: &str = ".globl _start\n.text\n_start:\n    hlt\n";

    fn xen_note(kind: u32, descriptor: &str) -> String {
        format!(
            ".pushsection .note.Xen, \"a\", @note\n.balign 4\n.long 4\n.long 2f - 1f\n.long {kind}\n.asciz \"Xen\"\n\
             .balign 4\n1:\n{descriptor}\n2:\n.balign 4\n.popsection\n"
        )
    }

    #[test]
    fn the_pvh_note_of_a_linked_elf_is_found() {
        let dir = temp_dir("pvh");
        // As Linux declares it: other Xen notes first, then an 8-byte entry.
        let notes = [xen_note(6, ".asciz \"linux\""), xen_note(18, ".quad 0x1000370")].concat();
        let elf = link(&dir, "pvh64", &format!("{START}{notes}"), &[]);
        assert_eq!(pvh_entry(&elf).unwrap(), 0x100_0370);
        let elf = link(&dir, "pvh32", &format!("{START}{}", xen_note(18, ".long 0x100000")), &[]);
        assert_eq!(pvh_entry(&elf).unwrap(), 0x10_0000);

        let elf = link(&dir, "other-notes", &format!("{START}{}", xen_note(6, ".asciz \"linux\"")), &[]);
        let error = pvh_entry(&elf).unwrap_err().to_string();
        assert_eq!(error, "an x86-64 ELF64 file without a Xen PVH entry note (name \"Xen\", type 18)");
        let elf = link(&dir, "no-notes", START, &[]);
        assert!(pvh_entry(&elf).unwrap_err().to_string().contains("without a Xen PVH entry note"));
        let elf = link(&dir, "high", &format!("{START}{}", xen_note(18, ".quad 0x100000000")), &[]);
        assert!(pvh_entry(&elf).unwrap_err().to_string().contains("above 4 GiB"));
        let elf = link(&dir, "odd", &format!("{START}{}", xen_note(18, ".short 1")), &[]);
        assert!(pvh_entry(&elf).unwrap_err().to_string().contains("holds 2 bytes"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_x86_64_elf64_files_pass_the_pvh_check() {
        assert_eq!(pvh_entry(b"MZ not an ELF").unwrap_err().to_string(), "not an ELF file");
        assert_eq!(pvh_entry(&ELF_MAGIC).unwrap_err().to_string(), "not a valid ELF file");
        // The smallest ELF32 header: class 1, little-endian, version 1, i386.
        let mut elf32 = vec![0u8; 52];
        elf32[..4].copy_from_slice(&ELF_MAGIC);
        elf32[4..7].copy_from_slice(&[1, 1, 1]);
        elf32[16..18].copy_from_slice(&2u16.to_le_bytes());
        elf32[18..20].copy_from_slice(&3u16.to_le_bytes());
        elf32[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf32[40..42].copy_from_slice(&52u16.to_le_bytes());
        assert_eq!(pvh_entry(&elf32).unwrap_err().to_string(), "an ELF32 file, not ELF64");
        // An ELF64 header for AArch64 (183).
        let mut arm = vec![0u8; 64];
        arm[..4].copy_from_slice(&ELF_MAGIC);
        arm[4..7].copy_from_slice(&[2, 1, 1]);
        arm[16..18].copy_from_slice(&2u16.to_le_bytes());
        arm[18..20].copy_from_slice(&183u16.to_le_bytes());
        arm[20..24].copy_from_slice(&1u32.to_le_bytes());
        arm[52..54].copy_from_slice(&64u16.to_le_bytes());
        let error = pvh_entry(&arm).unwrap_err().to_string();
        assert!(error.starts_with("an ELF64 file for machine 183"), "{error}");
    }
}
