//! Writing cpio "newc" archives, the format of Linux initramfs images and of Manul's initrd.
//!
//! Each entry is a 110-byte ASCII header (the magic `070701` and thirteen 8-digit hexadecimal
//! fields), the entry's NUL-terminated name padded with zeros to a multiple of 4 bytes, then its
//! data (a file's content, a symbolic link's target) padded likewise. An entry named
//! `TRAILER!!!` ends the archive. Names are relative (`bin/sh`); every directory comes before
//! what it contains; every entry belongs to root (uid 0, gid 0). Besides directories, regular
//! files and symbolic links, an archive may hold character devices (a Linux initramfs needs
//! `dev/console`).

use std::collections::HashSet;
use std::io::{self, Read, Write};

use anyhow::{Context, Result, bail, ensure};

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;
/// The permission bits an entry may carry: rwx for all three classes, set-user-id,
/// set-group-id and sticky.
pub const PERMISSION_BITS: u32 = 0o7777;

/// What an entry carries besides its name, type and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// Permission bits (at most [`PERMISSION_BITS`]).
    pub permissions: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u32,
}

/// The header fields that vary between entries.
struct Header<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    /// The device number of a device node, (major, minor).
    rdev: (u32, u32),
}

/// Writes an archive entry by entry; [`CpioWriter::finish`] adds the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    /// Bytes written so far: every header starts at a multiple of 4.
    offset: u64,
    next_inode: u32,
    directories: HashSet<String>,
    names: HashSet<String>,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, offset: 0, next_inode: 1, directories: HashSet::new(), names: HashSet::new() }
    }

    pub fn directory(&mut self, name: &str, attributes: Attributes) -> Result<()> {
        let mode = self.admit(name, S_IFDIR, attributes.permissions)?;
        self.write_entry(
            Header { name, mode, nlink: 2, mtime: attributes.mtime, size: 0, rdev: (0, 0) },
            &mut io::empty(),
        )
        .with_context(|| format!("cannot write directory {name} to the archive"))?;
        self.directories.insert(name.to_owned());
        Ok(())
    }

    /// A regular file of `size` bytes read from `content` (which must hold at least that many).
    pub fn file(&mut self, name: &str, attributes: Attributes, size: u64, content: &mut dyn Read) -> Result<()> {
        let mode = self.admit(name, S_IFREG, attributes.permissions)?;
        let size = u32::try_from(size)
            .map_err(|_| anyhow::anyhow!("{name} has {size} bytes: a cpio newc entry holds at most 4 GiB - 1"))?;
        self.write_entry(Header { name, mode, nlink: 1, mtime: attributes.mtime, size, rdev: (0, 0) }, content)
            .with_context(|| format!("cannot write file {name} to the archive"))
    }

    /// A symbolic link to `target`, with permissions 0777 as on Linux.
    pub fn symlink(&mut self, name: &str, target: &str, mtime: u32) -> Result<()> {
        let mode = self.admit(name, S_IFLNK, 0o777)?;
        ensure!(
            !target.is_empty() && !target.contains('\0'),
            "symbolic link {name}: its target must be non-empty text without NUL"
        );
        let size =
            u32::try_from(target.len()).with_context(|| format!("symbolic link {name}: its target is too long"))?;
        self.write_entry(Header { name, mode, nlink: 1, mtime, size, rdev: (0, 0) }, &mut target.as_bytes())
            .with_context(|| format!("cannot write symbolic link {name} to the archive"))
    }

    /// A character device node with the device number `major:minor` (`dev/console` is 5:1).
    pub fn char_device(&mut self, name: &str, attributes: Attributes, major: u32, minor: u32) -> Result<()> {
        let mode = self.admit(name, S_IFCHR, attributes.permissions)?;
        let header = Header { name, mode, nlink: 1, mtime: attributes.mtime, size: 0, rdev: (major, minor) };
        self.write_entry(header, &mut io::empty()).with_context(|| format!("cannot write device {name} to the archive"))
    }

    /// Writes the trailer and returns the output, flushed.
    pub fn finish(mut self) -> Result<W> {
        self.write_entry(
            Header { name: TRAILER, mode: 0, nlink: 1, mtime: 0, size: 0, rdev: (0, 0) },
            &mut io::empty(),
        )
        .and_then(|()| Ok(self.out.flush()?))
        .context("cannot write the end of the archive")?;
        Ok(self.out)
    }

    /// Checks that `name` may be added now and returns the mode for `file_type`.
    fn admit(&mut self, name: &str, file_type: u32, permissions: u32) -> Result<u32> {
        check_name(name)?;
        ensure!(
            permissions & !PERMISSION_BITS == 0,
            "{name}: permissions {permissions:#o} have bits outside {PERMISSION_BITS:#o}"
        );
        if let Some((parent, _)) = name.rsplit_once('/') {
            ensure!(
                self.directories.contains(parent),
                "{name}: its directory {parent} must be in the archive before it"
            );
        }
        ensure!(!self.names.contains(name), "{name} is already in the archive");
        self.names.insert(name.to_owned());
        Ok(file_type | permissions)
    }

    fn write_entry(&mut self, header: Header<'_>, content: &mut dyn Read) -> Result<()> {
        let name_size = u32::try_from(header.name.len() + 1).context("the name is too long")?;
        let inode = if header.name == TRAILER { 0 } else { self.take_inode()? };
        let fields = [
            inode,
            header.mode,
            0, // uid
            0, // gid
            header.nlink,
            header.mtime,
            header.size,
            0, // dev major
            0, // dev minor
            header.rdev.0,
            header.rdev.1,
            name_size,
            0, // check: only the "070702" format has a checksum
        ];
        let mut text = Vec::with_capacity(110 + header.name.len() + 4);
        text.extend_from_slice(MAGIC);
        for field in fields {
            text.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        text.extend_from_slice(header.name.as_bytes());
        text.push(0);
        self.emit(&text)?;
        self.pad()?;
        let expected = u64::from(header.size);
        let copied = io::copy(&mut content.take(expected), &mut self.out)?;
        self.offset += copied;
        ensure!(copied == expected, "its content ended after {copied} of {expected} bytes");
        self.pad()
    }

    fn take_inode(&mut self) -> Result<u32> {
        let inode = self.next_inode;
        self.next_inode = inode.checked_add(1).context("too many entries for 32-bit inode numbers")?;
        Ok(inode)
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Zeros up to the next multiple of 4 bytes.
    fn pad(&mut self) -> Result<()> {
        let padding = (4 - self.offset % 4) % 4;
        self.emit(&[0; 3][..padding as usize])?;
        Ok(())
    }
}

/// A name must be a relative path of normal components, other than the trailer's name.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('/') {
        bail!("entry name {name:?}: it must be a non-empty relative path (\"bin/sh\", not \"/bin/sh\")");
    }
    if name.contains('\0') {
        bail!("entry name {name:?}: it contains a NUL byte");
    }
    if name.split('/').any(|component| matches!(component, "" | "." | "..")) {
        bail!("entry name {name:?}: empty, \".\" and \"..\" components are not allowed");
    }
    ensure!(name != TRAILER, "entry name {name:?} is reserved for the end of the archive");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry read back from an archive.
    #[derive(Debug)]
    struct Parsed {
        offset: usize,
        name: String,
        /// The thirteen header fields after the magic, in order.
        fields: [u32; 13],
        data: Vec<u8>,
    }

    const INODE: usize = 0;
    const MODE: usize = 1;
    const UID: usize = 2;
    const GID: usize = 3;
    const NLINK: usize = 4;
    const MTIME: usize = 5;
    const FILESIZE: usize = 6;
    const RDEV_MAJOR: usize = 9;
    const RDEV_MINOR: usize = 10;
    const NAMESIZE: usize = 11;

    fn padded(length: usize) -> usize {
        length.div_ceil(4) * 4
    }

    /// Reads every entry up to and including the trailer, checking the magic, the paddings
    /// (zero bytes, 4-byte alignment) and that nothing follows the trailer.
    fn parse(archive: &[u8]) -> Vec<Parsed> {
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            assert_eq!(offset % 4, 0, "entry at {offset} is not 4-byte aligned");
            let header = &archive[offset..offset + 110];
            assert_eq!(&header[..6], MAGIC, "bad magic at {offset}");
            let mut fields = [0; 13];
            for (index, field) in fields.iter_mut().enumerate() {
                let digits = std::str::from_utf8(&header[6 + 8 * index..14 + 8 * index]).unwrap();
                assert!(digits.chars().all(|c| c.is_ascii_hexdigit()), "{digits:?}");
                *field = u32::from_str_radix(digits, 16).unwrap();
            }
            let name_size = fields[NAMESIZE] as usize;
            let name_end = offset + 110 + name_size;
            assert_eq!(archive[name_end - 1], 0, "the name is not NUL-terminated");
            let name = String::from_utf8(archive[offset + 110..name_end - 1].to_vec()).unwrap();
            let data_start = offset + padded(110 + name_size);
            assert!(archive[name_end..data_start].iter().all(|&b| b == 0), "non-zero name padding");
            let data_end = data_start + fields[FILESIZE] as usize;
            let next = offset + padded(data_end - offset);
            assert!(archive[data_end..next].iter().all(|&b| b == 0), "non-zero data padding");
            let data = archive[data_start..data_end].to_vec();
            let done = name == TRAILER;
            entries.push(Parsed { offset, name, fields, data });
            offset = next;
            if done {
                assert_eq!(offset, archive.len(), "bytes after the trailer");
                return entries;
            }
        }
    }

    fn attributes(permissions: u32) -> Attributes {
        Attributes { permissions, mtime: 1_700_000_000 }
    }

    fn add_file(writer: &mut CpioWriter<Vec<u8>>, name: &str, content: &[u8]) -> Result<()> {
        writer.file(name, attributes(0o644), content.len() as u64, &mut &content[..])
    }

    #[test]
    fn a_one_file_archive_is_byte_exact() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.file("a", Attributes { permissions: 0o755, mtime: 0x10 }, 2, &mut &b"xy"[..]).unwrap();
        let archive = writer.finish().unwrap();
        // magic, inode, mode (0o100755), uid, gid, nlink, mtime, size, dev and rdev major and
        // minor, name size, check; then "a\0" (110 + 2 bytes: aligned) and "xy" padded to 4.
        let file = concat!(
            "070701", "00000001", "000081ED", "00000000", "00000000", "00000001", "00000010", "00000002", "00000000",
            "00000000", "00000000", "00000000", "00000002", "00000000", "a\0", "xy\0\0",
        );
        // The trailer: 110 + 11 bytes of name, padded to 124.
        let trailer = concat!(
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000B",
            "00000000",
            "TRAILER!!!\0",
            "\0\0\0",
        );
        let expected = format!("{file}{trailer}").into_bytes();
        assert_eq!(String::from_utf8_lossy(&archive), String::from_utf8_lossy(&expected));
        assert_eq!(archive.len(), 116 + 124);
    }

    #[test]
    fn header_fields_describe_each_entry() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.directory("bin", attributes(0o755)).unwrap();
        writer.file("bin/tool", attributes(0o4755), 5, &mut &b"12345"[..]).unwrap();
        writer.symlink("bin/sh", "tool", 7).unwrap();
        let entries = parse(&writer.finish().unwrap());
        let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/tool", "bin/sh", TRAILER]);

        let [directory, file, link, trailer] = &entries[..] else { unreachable!() };
        assert_eq!(directory.fields[MODE], 0o040755);
        assert_eq!(directory.fields[NLINK], 2);
        assert_eq!(directory.fields[FILESIZE], 0);
        assert_eq!(file.fields[MODE], 0o104755);
        assert_eq!(file.fields[NLINK], 1);
        assert_eq!(file.fields[MTIME], 1_700_000_000);
        assert_eq!(file.data, b"12345");
        assert_eq!(link.fields[MODE], 0o120777);
        assert_eq!(link.fields[MTIME], 7);
        assert_eq!(link.data, b"tool");
        for entry in &entries {
            assert_eq!((entry.fields[UID], entry.fields[GID]), (0, 0), "{}", entry.name);
            assert_eq!(entry.fields[NAMESIZE] as usize, entry.name.len() + 1);
            assert_eq!(entry.fields[12], 0, "check field");
        }
        let inodes: Vec<u32> = entries.iter().map(|entry| entry.fields[INODE]).collect();
        assert_eq!(inodes, [1, 2, 3, 0]);
        assert_eq!((trailer.fields[MODE], trailer.fields[NLINK], trailer.fields[FILESIZE]), (0, 1, 0));
    }

    #[test]
    fn a_device_node_carries_its_device_number() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.directory("dev", attributes(0o755)).unwrap();
        writer.char_device("dev/console", attributes(0o600), 5, 1).unwrap();
        assert!(writer.char_device("dev/console", attributes(0o600), 5, 1).is_err(), "twice");
        assert!(writer.char_device("tty/null", attributes(0o666), 1, 3).is_err(), "no directory");
        let entries = parse(&writer.finish().unwrap());
        let console = &entries[1];
        assert_eq!(console.name, "dev/console");
        assert_eq!(console.fields[MODE], 0o020600);
        assert_eq!((console.fields[RDEV_MAJOR], console.fields[RDEV_MINOR]), (5, 1));
        assert_eq!((console.fields[FILESIZE], console.fields[NLINK]), (0, 1));
        assert_eq!((entries[0].fields[RDEV_MAJOR], entries[0].fields[RDEV_MINOR]), (0, 0));
    }

    #[test]
    fn names_and_data_of_every_length_are_padded_to_4_bytes() {
        let mut writer = CpioWriter::new(Vec::new());
        for name_length in 1..=8 {
            for data_length in 0..=5 {
                let name = format!("{}{data_length}", "n".repeat(name_length));
                add_file(&mut writer, &name, &vec![b'd'; data_length]).unwrap();
            }
        }
        let archive = writer.finish().unwrap();
        assert_eq!(archive.len() % 4, 0);
        let entries = parse(&archive);
        assert_eq!(entries.len(), 8 * 6 + 1);
        for entry in &entries[..entries.len() - 1] {
            let data_length: usize = entry.name[entry.name.len() - 1..].parse().unwrap();
            assert_eq!(entry.data, vec![b'd'; data_length], "{}", entry.name);
            assert_eq!(entry.offset % 4, 0);
        }
    }

    #[test]
    fn directories_come_before_their_contents() {
        let mut writer = CpioWriter::new(Vec::new());
        let error = add_file(&mut writer, "data/known.txt", b"x").unwrap_err();
        assert_eq!(error.to_string(), "data/known.txt: its directory data must be in the archive before it");
        let error = writer.directory("a/b", attributes(0o755)).unwrap_err();
        assert!(error.to_string().contains("its directory a must be"), "{error}");
        // A file is not a directory.
        add_file(&mut writer, "a", b"").unwrap();
        assert!(writer.symlink("a/link", "x", 0).is_err());

        writer.directory("data", attributes(0o755)).unwrap();
        writer.directory("data/deep", attributes(0o700)).unwrap();
        add_file(&mut writer, "data/deep/known.txt", b"x").unwrap();
        let names: Vec<String> = parse(&writer.finish().unwrap()).into_iter().map(|entry| entry.name).collect();
        assert_eq!(names, ["a", "data", "data/deep", "data/deep/known.txt", TRAILER]);
    }

    #[test]
    fn bad_names_and_permissions_are_rejected() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.directory("bin", attributes(0o755)).unwrap();
        for name in ["", "/bin/sh", "bin//sh", "bin/", "./bin", "bin/../etc", "bin/.", "a\0b", TRAILER] {
            let error = add_file(&mut writer, name, b"").expect_err(name);
            assert!(error.to_string().starts_with("entry name"), "{error}");
        }
        let error = writer.directory("bin", attributes(0o755)).unwrap_err();
        assert_eq!(error.to_string(), "bin is already in the archive");
        let error = writer.file("bin/x", attributes(0o10644), 0, &mut io::empty()).unwrap_err();
        assert!(error.to_string().contains("bits outside 0o7777"), "{error}");
        assert!(writer.symlink("bin/empty", "", 0).is_err());
        // Nothing was written for the rejected entries.
        assert_eq!(parse(&writer.finish().unwrap()).len(), 2);
    }

    #[test]
    fn short_content_is_an_error() {
        let mut writer = CpioWriter::new(Vec::new());
        let error = writer.file("f", attributes(0o644), 10, &mut &b"abc"[..]).unwrap_err();
        assert_eq!(format!("{error:#}"), "cannot write file f to the archive: its content ended after 3 of 10 bytes");
        let error = writer.file("g", attributes(0o644), 1 << 32, &mut io::empty()).unwrap_err();
        assert!(error.to_string().contains("at most 4 GiB - 1"), "{error}");
    }

    #[test]
    fn an_empty_archive_is_just_the_trailer() {
        let archive = CpioWriter::new(Vec::new()).finish().unwrap();
        assert_eq!(archive.len(), 124);
        assert_eq!(parse(&archive)[0].name, TRAILER);
    }
}
