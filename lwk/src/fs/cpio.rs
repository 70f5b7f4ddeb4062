//! The initrd: a parser of cpio archives in the "newc" (`070701`) and "crc" (`070702`) formats,
//! as the Linux kernel reads them for its initramfs.
//!
//! The archive comes from outside the kernel and is untrusted: every field is checked, every
//! offset computed with checked arithmetic, and every problem comes back as a [`CpioError`] that
//! names the byte offset and, once it is known, the entry. Nothing here panics on any input.
//!
//! Layout of one entry: a 110-byte header of ASCII text (the magic, then thirteen 8-digit
//! hexadecimal fields), the NUL-terminated name padded with zeros so that header and name fill a
//! multiple of 4 bytes, then the data padded to a multiple of 4. The entry named `TRAILER!!!`
//! ends an archive. Like Linux, [`parse`] accepts runs of zero bytes between entries and several
//! archives one after the other; the input must end right after a trailer (and its padding).
//!
//! What [`parse`] returns is ready for the file system: names are normalised (no leading `./` or
//! `/`, no trailing `/`, the root is `""`), hard-linked files all carry their data, symbolic links
//! carry their target as checked text, and the file types the kernel does not take from an
//! archive (devices, FIFOs, sockets) are errors. This module owns the archive format only; the
//! file tree built from the entries is `ram_fs`'s.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// File type bits of a mode (`st_mode & S_IFMT`), with the values Linux and cpio use.
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFSOCK: u32 = 0o140_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFBLK: u32 = 0o060_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFCHR: u32 = 0o020_000;
pub const S_IFIFO: u32 = 0o010_000;

/// The longest path in bytes (Linux's `PATH_MAX` less the NUL), for entry names and link targets.
pub const MAX_PATH_LEN: usize = 4095;
/// The longest path component in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

const HEADER_LEN: usize = 110;
const MAGIC_NEWC: &[u8; 6] = b"070701";
const MAGIC_CRC: &[u8; 6] = b"070702";
/// The header's fields after the magic, in order, as the error messages name them.
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];

/// One file, directory or symbolic link of the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The path relative to the root, normalised: no leading `./` or `/`, no trailing `/`, no
    /// empty, `.` or `..` component. The root itself (`.` in the archive) is `""`.
    pub name: &'a str,
    /// The whole mode: file type bits ([`S_IFMT`]) and permission bits, as in the archive.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// The inode number in the archive (only meaningful to group hard links).
    pub ino: u32,
    pub nlink: u32,
    /// The contents of a file (for hard links, the data of the group, whichever entry carried
    /// it); a symbolic link's target; empty for a directory.
    pub data: &'a [u8],
    /// The file type, decoded from `mode`.
    pub kind: EntryKind<'a>,
    /// Byte offset of the entry's header in the input, for error messages.
    pub offset: usize,
}

/// The file types an archive may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind<'a> {
    File,
    Directory,
    /// A symbolic link and its target (non-empty UTF-8 without NUL, at most [`MAX_PATH_LEN`]).
    Symlink(&'a str),
}

/// What is wrong with an archive, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpioError {
    /// Byte offset in the input of the faulty part (header, field, name or data).
    pub offset: usize,
    /// The entry's name as the archive spells it, once it has been read.
    pub name: Option<String>,
    pub kind: CpioErrorKind,
}

/// The problems [`parse`] (and `ram_fs`'s initrd loading) report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpioErrorKind {
    /// Neither `070701` nor `070702` where a header must start (the up to 6 bytes found).
    BadMagic(Vec<u8>),
    /// A header field (named) is not 8 hexadecimal digits.
    BadField(&'static str),
    /// Zero padding ended at an offset that is not a multiple of 4.
    BadPadding,
    /// A part of an entry (`"header"`, `"name"`, `"data"`) of `len` bytes runs past the end of
    /// the input, which has `left` bytes from its start.
    Truncated {
        part: &'static str,
        len: usize,
        left: usize,
    },
    /// The name is not terminated by a NUL at `namesize`, or holds one before.
    NameNotTerminated,
    NameNotUtf8,
    /// The name (without its NUL) is longer than [`MAX_PATH_LEN`].
    NameTooLong(usize),
    /// A path component is longer than [`MAX_COMPONENT_LEN`].
    ComponentTooLong(usize),
    EmptyName,
    /// A path component is `..`.
    DotDot,
    /// A path component in the middle of the name is empty (`a//b`) or `.`.
    EmptyComponent,
    /// A file type other than regular file, directory and symbolic link (the type bits).
    UnsupportedType(u32),
    /// The root (`.`) is given as something other than a directory.
    RootNotDirectory,
    /// A directory with data (its size).
    DirectoryWithData(u32),
    /// A symbolic link's target is empty, too long, not UTF-8 or holds a NUL.
    BadLinkTarget,
    /// The "crc" format's checksum (sum of the data bytes) does not match.
    BadChecksum {
        expected: u32,
        actual: u32,
    },
    /// The input ends without a `TRAILER!!!` entry closing the last archive.
    MissingTrailer,
    /// Loading: the entry would replace one of the file system's own nodes (`/dev/null`, ...).
    ReplacesBuiltin,
    /// Loading: a directory of the entry's path exists as something else.
    ParentNotDirectory,
    /// Loading: the entry would replace a directory that is not empty.
    ReplacesNonEmptyDirectory,
    /// Loading: the file system's memory (its account or the allocator) cannot hold the entry.
    NoSpace,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "initrd byte {}", self.offset)?;
        if let Some(name) = &self.name {
            write!(f, ", entry {name:?}")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            CpioErrorKind::BadMagic(found) => {
                f.write_str("bad magic \"")?;
                for &b in found {
                    write!(f, "{}", core::ascii::escape_default(b))?;
                }
                f.write_str("\" (expected 070701 or 070702")?;
                if found.starts_with(&[0x1f, 0x8b]) {
                    f.write_str("; gzip-compressed? the kernel takes uncompressed archives")?;
                }
                f.write_str(")")
            }
            CpioErrorKind::BadField(field) => write!(f, "header field {field} is not 8 hexadecimal digits"),
            CpioErrorKind::BadPadding => f.write_str("zero padding does not end on a multiple of 4"),
            CpioErrorKind::Truncated { part, len, left } => {
                write!(f, "{part} of {len} bytes runs past the end of the input ({left} bytes left)")
            }
            CpioErrorKind::NameNotTerminated => f.write_str("name is not NUL-terminated at namesize"),
            CpioErrorKind::NameNotUtf8 => f.write_str("name is not UTF-8"),
            CpioErrorKind::NameTooLong(len) => write!(f, "name of {len} bytes is longer than {MAX_PATH_LEN}"),
            CpioErrorKind::ComponentTooLong(len) => {
                write!(f, "path component of {len} bytes is longer than {MAX_COMPONENT_LEN}")
            }
            CpioErrorKind::EmptyName => f.write_str("empty name"),
            CpioErrorKind::DotDot => f.write_str("path component \"..\""),
            CpioErrorKind::EmptyComponent => f.write_str("empty or \".\" path component"),
            CpioErrorKind::UnsupportedType(bits) => {
                write!(f, "unsupported file type: {} (the kernel provides its own /dev)", type_name(*bits))
            }
            CpioErrorKind::RootNotDirectory => f.write_str("the root is not a directory"),
            CpioErrorKind::DirectoryWithData(size) => write!(f, "directory with {size} bytes of data"),
            CpioErrorKind::BadLinkTarget => {
                f.write_str("symbolic link target is empty, too long, not UTF-8 or has a NUL")
            }
            CpioErrorKind::BadChecksum { expected, actual } => {
                write!(f, "data checksum {actual:#010x} does not match the header's {expected:#010x}")
            }
            CpioErrorKind::MissingTrailer => write!(f, "input ends without {TRAILER}"),
            CpioErrorKind::ReplacesBuiltin => f.write_str("would replace a node the kernel provides"),
            CpioErrorKind::ParentNotDirectory => f.write_str("a parent of the entry is not a directory"),
            CpioErrorKind::ReplacesNonEmptyDirectory => f.write_str("would replace a directory that is not empty"),
            CpioErrorKind::NoSpace => f.write_str("the file system has no memory left to hold it"),
        }
    }
}

/// A readable name for file type bits, for error messages.
fn type_name(bits: u32) -> &'static str {
    match bits {
        S_IFCHR => "character device",
        S_IFBLK => "block device",
        S_IFIFO => "FIFO",
        S_IFSOCK => "socket",
        _ => "unknown",
    }
}

/// The fixed-size header of one entry, decoded (the rdev fields are not kept: device nodes are
/// refused).
struct Header {
    crc: bool,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    devmajor: u32,
    devminor: u32,
    namesize: u32,
    check: u32,
}

/// What identifies the members of a hard-link group within one archive (as Linux: inode and
/// device numbers).
type LinkKey = (u32, u32, u32);

/// Parses a whole initrd: one or more archives, each closed by a trailer. The entries come in
/// input order; the caller applies them in that order (a later entry of the same path wins).
pub fn parse(archive: &[u8]) -> Result<Vec<Entry<'_>>, CpioError> {
    let mut entries = Vec::new();
    // Regular files of the current archive with nlink > 1: (index in `entries`, group).
    let mut links: Vec<(usize, LinkKey)> = Vec::new();
    let mut closed = false;
    let mut pos = 0;
    loop {
        pos = skip_zeros(archive, pos);
        if pos >= archive.len() {
            if closed {
                return Ok(entries);
            }
            return Err(CpioError { offset: archive.len(), name: None, kind: CpioErrorKind::MissingTrailer });
        }
        if pos % 4 != 0 {
            return Err(CpioError { offset: pos, name: None, kind: CpioErrorKind::BadPadding });
        }
        let at = pos;
        let header = read_header(archive, at).map_err(|(offset, kind)| CpioError { offset, name: None, kind })?;
        // In bounds: the whole header was read.
        let name_at = at.saturating_add(HEADER_LEN);
        let raw_name = read_name(archive, name_at, header.namesize).map_err(|kind| CpioError {
            offset: name_at,
            name: None,
            kind,
        })?;
        let err = |offset: usize, kind| CpioError { offset, name: Some(raw_name.to_string()), kind };
        // Header, name and NUL fill a multiple of 4 (headers start on one).
        let data_at = name_at.saturating_add(raw_name.len()).saturating_add(1).checked_next_multiple_of(4);
        let data_at = data_at.unwrap_or(usize::MAX);
        let data = match header.filesize {
            0 => &[][..],
            size => span(archive, data_at, to_usize(size), "data").map_err(|kind| err(data_at, kind))?,
        };
        // The next header follows the data's padding. An empty entry's padding may be cut at the
        // end of the input: `pos` is then past the end and the loop stops.
        pos = data_at.saturating_add(data.len()).checked_next_multiple_of(4).unwrap_or(usize::MAX);
        if raw_name == TRAILER {
            share_link_data(&mut entries, &links);
            links.clear();
            closed = true;
            continue;
        }
        closed = false;
        let name = normalise(raw_name).map_err(|kind| err(name_at, kind))?;
        let kind = match header.mode & S_IFMT {
            S_IFREG => {
                let actual = data.iter().fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)));
                if header.crc && actual != header.check {
                    let kind = CpioErrorKind::BadChecksum { expected: header.check, actual };
                    return Err(err(data_at, kind));
                }
                EntryKind::File
            }
            S_IFDIR if !data.is_empty() => return Err(err(data_at, CpioErrorKind::DirectoryWithData(header.filesize))),
            S_IFDIR => EntryKind::Directory,
            S_IFLNK => EntryKind::Symlink(link_target(data).ok_or_else(|| err(data_at, CpioErrorKind::BadLinkTarget))?),
            bits => return Err(err(at, CpioErrorKind::UnsupportedType(bits))),
        };
        if name.is_empty() && kind != EntryKind::Directory {
            return Err(err(at, CpioErrorKind::RootNotDirectory));
        }
        if header.nlink > 1 && kind == EntryKind::File {
            links.push((entries.len(), (header.ino, header.devmajor, header.devminor)));
        }
        entries.push(Entry {
            name,
            mode: header.mode,
            uid: header.uid,
            gid: header.gid,
            mtime: u64::from(header.mtime),
            ino: header.ino,
            nlink: header.nlink,
            data,
            kind,
            offset: at,
        });
    }
}

/// `archive[start..start + len]`, or the error saying that `part` runs past the end.
fn span<'a>(archive: &'a [u8], start: usize, len: usize, part: &'static str) -> Result<&'a [u8], CpioErrorKind> {
    start.checked_add(len).and_then(|end| archive.get(start..end)).ok_or(CpioErrorKind::Truncated {
        part,
        len,
        left: archive.len().saturating_sub(start),
    })
}

/// A header field as a size (saturating where `usize` is narrower: the span check then fails).
fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The offset of the first non-zero byte at or after `pos` (or the end).
fn skip_zeros(archive: &[u8], pos: usize) -> usize {
    let rest = archive.get(pos..).unwrap_or_default();
    pos.saturating_add(rest.iter().take_while(|&&b| b == 0).count())
}

/// Decodes the header at `at`; an error comes with its own offset (that of the bad field).
fn read_header(archive: &[u8], at: usize) -> Result<Header, (usize, CpioErrorKind)> {
    let rest = archive.get(at..).unwrap_or_default();
    let found = rest.get(..MAGIC_NEWC.len()).unwrap_or(rest);
    if !MAGIC_NEWC.starts_with(found) && !MAGIC_CRC.starts_with(found) {
        return Err((at, CpioErrorKind::BadMagic(found.to_vec())));
    }
    let header = span(archive, at, HEADER_LEN, "header").map_err(|kind| (at, kind))?;
    let (magic, digits) = header.split_at(MAGIC_NEWC.len());
    let mut values = [0u32; FIELDS.len()];
    let fields = FIELDS.iter().zip(digits.chunks_exact(8));
    for (i, (value, (field, text))) in values.iter_mut().zip(fields).enumerate() {
        let parsed = text.iter().try_fold(0u32, |acc, &b| Some((acc << 4) | char::from(b).to_digit(16)?));
        let field_at = at.saturating_add(MAGIC_NEWC.len()).saturating_add(i * 8);
        *value = parsed.ok_or((field_at, CpioErrorKind::BadField(field)))?;
    }
    let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, _rdevmajor, _rdevminor, namesize, check] =
        values;
    Ok(Header {
        crc: magic == MAGIC_CRC,
        ino,
        mode,
        uid,
        gid,
        nlink,
        mtime,
        filesize,
        devmajor,
        devminor,
        namesize,
        check,
    })
}

/// The name at `at`, `namesize` bytes including its NUL, as the archive spells it.
fn read_name(archive: &[u8], at: usize, namesize: u32) -> Result<&str, CpioErrorKind> {
    let len = to_usize(namesize);
    if len == 0 {
        return Err(CpioErrorKind::NameNotTerminated);
    }
    if len - 1 > MAX_PATH_LEN {
        return Err(CpioErrorKind::NameTooLong(len - 1));
    }
    let bytes = span(archive, at, len, "name")?;
    match bytes.split_last() {
        Some((0, text)) if !text.contains(&0) => core::str::from_utf8(text).map_err(|_| CpioErrorKind::NameNotUtf8),
        _ => Err(CpioErrorKind::NameNotTerminated),
    }
}

/// Strips leading `./` and `/` and trailing `/`, maps `.` to the root (`""`) and checks the
/// components.
fn normalise(raw: &str) -> Result<&str, CpioErrorKind> {
    if raw.is_empty() {
        return Err(CpioErrorKind::EmptyName);
    }
    let mut name = raw;
    while let Some(rest) = name.strip_prefix("./").or_else(|| name.strip_prefix('/')) {
        name = rest;
    }
    let name = name.trim_end_matches('/');
    if name.is_empty() || name == "." {
        return Ok("");
    }
    for component in name.split('/') {
        match component {
            ".." => return Err(CpioErrorKind::DotDot),
            "" | "." => return Err(CpioErrorKind::EmptyComponent),
            c if c.len() > MAX_COMPONENT_LEN => return Err(CpioErrorKind::ComponentTooLong(c.len())),
            _ => {}
        }
    }
    Ok(name)
}

/// A symbolic link's data as a target, if it is a valid one.
fn link_target(data: &[u8]) -> Option<&str> {
    if data.is_empty() || data.len() > MAX_PATH_LEN || data.contains(&0) {
        return None;
    }
    core::str::from_utf8(data).ok()
}

/// Gives every member of each hard-link group of one archive the group's data: that of the last
/// member that has any (archivers put it on the last one and leave the others empty).
fn share_link_data<'a>(entries: &mut [Entry<'a>], links: &[(usize, LinkKey)]) {
    let mut group_data: BTreeMap<LinkKey, &'a [u8]> = BTreeMap::new();
    for &(index, key) in links {
        if let Some(entry) = entries.get(index)
            && !entry.data.is_empty()
        {
            group_data.insert(key, entry.data);
        }
    }
    for &(index, key) in links {
        if let (Some(entry), Some(&data)) = (entries.get_mut(index), group_data.get(&key)) {
            entry.data = data;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Header fields for [`Archive::raw`]; `namesize` and `filesize` default to the real sizes.
    #[derive(Clone, Copy, Default)]
    pub(crate) struct Fields {
        pub ino: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub nlink: u32,
        pub mtime: u32,
        pub filesize: Option<u32>,
        pub devmajor: u32,
        pub namesize: Option<u32>,
        pub check: u32,
    }

    /// A cpio writer for tests: newc entries with padding, unless [`Archive::raw`] says otherwise.
    pub(crate) struct Archive {
        pub bytes: Vec<u8>,
        next_ino: u32,
    }

    impl Archive {
        pub(crate) fn new() -> Self {
            Archive { bytes: Vec::new(), next_ino: 100 }
        }
        pub(crate) fn file(self, name: &str, data: &[u8]) -> Self {
            self.entry(name, S_IFREG | 0o644, data)
        }
        pub(crate) fn dir(self, name: &str) -> Self {
            self.entry(name, S_IFDIR | 0o755, b"")
        }
        pub(crate) fn symlink(self, name: &str, target: &str) -> Self {
            self.entry(name, S_IFLNK | 0o777, target.as_bytes())
        }
        /// An entry with a fresh inode number and nlink 1.
        pub(crate) fn entry(mut self, name: &str, mode: u32, data: &[u8]) -> Self {
            self.next_ino += 1;
            let fields = Fields { ino: self.next_ino, mode, nlink: 1, ..Fields::default() };
            self.raw(MAGIC_NEWC, fields, format!("{name}\0").as_bytes(), data)
        }
        pub(crate) fn trailer(self) -> Self {
            self.entry(TRAILER, 0, b"")
        }
        /// Zero bytes up to a multiple of `align` (as archivers pad after the trailer).
        pub(crate) fn pad_to(mut self, align: usize) -> Self {
            self.bytes.resize(self.bytes.len().next_multiple_of(align), 0);
            self
        }
        /// One entry exactly as given: `name` with its NUL (if any), padding after name and data.
        pub(crate) fn raw(mut self, magic: &[u8; 6], f: Fields, name: &[u8], data: &[u8]) -> Self {
            let filesize = f.filesize.unwrap_or(data.len() as u32);
            let namesize = f.namesize.unwrap_or(name.len() as u32);
            let values =
                [f.ino, f.mode, f.uid, f.gid, f.nlink, f.mtime, filesize, f.devmajor, 0, 0, 0, namesize, f.check];
            self.bytes.extend_from_slice(magic);
            for value in values {
                self.bytes.extend_from_slice(format!("{value:08X}").as_bytes());
            }
            self.bytes.extend_from_slice(name);
            self = self.pad_to(4);
            self.bytes.extend_from_slice(data);
            self.pad_to(4)
        }
        pub(crate) fn build(self) -> Vec<u8> {
            self.bytes
        }
    }

    fn error(archive: &[u8]) -> CpioError {
        parse(archive).expect_err("the archive must be refused")
    }

    fn kind(archive: &[u8]) -> CpioErrorKind {
        error(archive).kind
    }

    fn names(archive: &[u8]) -> Vec<String> {
        parse(archive).expect("valid archive").iter().map(|e| e.name.to_string()).collect()
    }

    #[test]
    fn entries_and_fields() {
        let fields = Fields {
            ino: 7,
            mode: S_IFREG | 0o4755,
            uid: 1000,
            gid: 100,
            nlink: 1,
            mtime: 1_700_000_000,
            ..Fields::default()
        };
        let archive = Archive::new()
            .dir(".")
            .dir("bin")
            .raw(MAGIC_NEWC, fields, b"bin/prog\0", b"\x7fELF")
            .symlink("bin/sh", "prog")
            .trailer()
            .build();
        let entries = parse(&archive).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!((entries[0].name, entries[0].kind), ("", EntryKind::Directory));
        assert_eq!((entries[1].name, entries[1].mode), ("bin", S_IFDIR | 0o755));
        let prog = entries[2];
        assert_eq!(prog.name, "bin/prog");
        assert_eq!((prog.mode, prog.uid, prog.gid, prog.mtime), (S_IFREG | 0o4755, 1000, 100, 1_700_000_000));
        assert_eq!((prog.ino, prog.nlink, prog.data, prog.kind), (7, 1, &b"\x7fELF"[..], EntryKind::File));
        assert_eq!(prog.offset, 112 + 116);
        assert_eq!((entries[3].kind, entries[3].data), (EntryKind::Symlink("prog"), &b"prog"[..]));
    }

    #[test]
    fn names_are_normalised() {
        let archive = Archive::new()
            .dir("./")
            .dir("/")
            .dir("./.")
            .dir("./a")
            .dir("/b/")
            .file(".//./c", b"")
            .file("d//", b"")
            .trailer()
            .build();
        assert_eq!(names(&archive), ["", "", "", "a", "b", "c", "d"]);
    }

    #[test]
    fn every_padding() {
        // Names of 1 to 8 bytes with data of 0 to 5 bytes cover every padding of name and data.
        let mut archive = Archive::new();
        let mut expected = Vec::new();
        for name_len in 1..=8 {
            for data_len in 0..=5 {
                let name = format!("{}{}", "n".repeat(name_len), data_len);
                let data: Vec<u8> = (0..data_len as u8).map(|b| b + 1).collect();
                archive = archive.file(&name, &data);
                expected.push((name, data));
            }
        }
        let archive = archive.trailer().build();
        let entries = parse(&archive).unwrap();
        let got: Vec<(String, Vec<u8>)> = entries.iter().map(|e| (e.name.to_string(), e.data.to_vec())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn trailer_padding_may_be_cut() {
        let mut archive = Archive::new().file("a", b"x").trailer().build();
        archive.truncate(archive.len() - 1); // "TRAILER!!!\0" ends 3 bytes before the padding does
        assert_eq!(names(&archive), ["a"]);
    }

    #[test]
    fn crc_format_checks_the_sum() {
        let data = b"\xff\xff\x01";
        let good = Fields { ino: 1, mode: S_IFREG | 0o644, nlink: 1, check: 0x1ff, ..Fields::default() };
        let archive = Archive::new().raw(MAGIC_CRC, good, b"f\0", data).trailer().build();
        assert_eq!(parse(&archive).unwrap()[0].data, data);
        let bad = Fields { check: 0x1fe, ..good };
        let archive = Archive::new().raw(MAGIC_CRC, bad, b"f\0", data).trailer().build();
        let e = error(&archive);
        assert_eq!(e.kind, CpioErrorKind::BadChecksum { expected: 0x1fe, actual: 0x1ff });
        assert_eq!((e.offset, e.name.as_deref()), (112, Some("f")));
        // newc ignores the field.
        let archive = Archive::new().raw(MAGIC_NEWC, bad, b"f\0", data).trailer().build();
        assert!(parse(&archive).is_ok());
    }

    #[test]
    fn hard_links_share_the_data() {
        let link = |ino| Fields { ino, mode: S_IFREG | 0o755, nlink: 3, ..Fields::default() };
        let archive = Archive::new()
            .raw(MAGIC_NEWC, link(5), b"a\0", b"")
            .raw(MAGIC_NEWC, link(6), b"other\0", b"")
            .raw(MAGIC_NEWC, link(5), b"b\0", b"")
            .raw(MAGIC_NEWC, link(5), b"c\0", b"shared")
            .trailer()
            // The next archive reuses inode 5 for an unrelated group: groups end at the trailer.
            .raw(MAGIC_NEWC, link(5), b"d\0", b"")
            .raw(MAGIC_NEWC, link(5), b"e\0", b"new")
            .trailer()
            .build();
        let entries = parse(&archive).unwrap();
        let data: Vec<(&str, &[u8])> = entries.iter().map(|e| (e.name, e.data)).collect();
        let expected: [(&str, &[u8]); 6] =
            [("a", b"shared"), ("other", b""), ("b", b"shared"), ("c", b"shared"), ("d", b"new"), ("e", b"new")];
        assert_eq!(data, expected);
        // nlink 1: same inode numbers are not a group.
        let single = Fields { nlink: 1, ..link(9) };
        let archive =
            Archive::new().raw(MAGIC_NEWC, single, b"x\0", b"").raw(MAGIC_NEWC, single, b"y\0", b"1").trailer().build();
        assert_eq!(parse(&archive).unwrap()[0].data, b"");
    }

    #[test]
    fn concatenated_archives() {
        let mut archive = Archive::new().file("a", b"1").trailer().pad_to(512).build();
        archive.extend(Archive::new().file("b", b"2").trailer().build());
        archive.extend([0; 100]);
        assert_eq!(names(&archive), ["a", "b"]);
        // Leading zeros and zeros between entries are skipped as well (as Linux does).
        let mut archive = vec![0; 8];
        archive.extend(Archive::new().file("a", b"1").pad_to(64).file("b", b"2").trailer().build());
        assert_eq!(names(&archive), ["a", "b"]);
        // A trailer alone is an empty archive.
        assert_eq!(names(&Archive::new().trailer().build()), Vec::<String>::new());
    }

    #[test]
    fn missing_trailer() {
        for archive in [vec![], vec![0; 64], Archive::new().file("a", b"1").build()] {
            let e = error(&archive);
            assert_eq!((e.kind, e.offset), (CpioErrorKind::MissingTrailer, archive.len()));
        }
        // The first archive closed, the second not.
        let mut archive = Archive::new().file("a", b"1").trailer().build();
        archive.extend(Archive::new().dir("d").build());
        assert_eq!(kind(&archive), CpioErrorKind::MissingTrailer);
    }

    #[test]
    fn bad_magic_and_padding() {
        let archive = Archive::new().file("a", b"1").trailer().build();
        let mut junk = archive.clone();
        junk.extend(b"hello, world");
        let e = error(&junk);
        assert_eq!((e.kind, e.offset), (CpioErrorKind::BadMagic(b"hello,".to_vec()), archive.len()));
        let gzip = [0x1f, 0x8b, 8, 0];
        assert_eq!(kind(&gzip), CpioErrorKind::BadMagic(gzip.to_vec()));
        assert!(error(&gzip).to_string().contains("gzip"));
        // Zeros then a header off the 4-byte grid.
        let mut shifted = archive.clone();
        shifted.push(0);
        shifted.extend(&archive);
        let e = error(&shifted);
        assert_eq!((e.kind, e.offset), (CpioErrorKind::BadPadding, archive.len() + 1));
    }

    #[test]
    fn truncated_parts() {
        let archive = Archive::new().file("name", b"0123456789").trailer().build();
        let e = error(&archive[..50]);
        assert_eq!(e.kind, CpioErrorKind::Truncated { part: "header", len: 110, left: 50 });
        // A short tail that could still be a magic is a truncated header too.
        assert_eq!(kind(&archive[..3]), CpioErrorKind::Truncated { part: "header", len: 110, left: 3 });
        let e = error(&archive[..112]);
        assert_eq!((e.kind, e.offset), (CpioErrorKind::Truncated { part: "name", len: 5, left: 2 }, 110));
        let e = error(&archive[..120]);
        assert_eq!(e.kind, CpioErrorKind::Truncated { part: "data", len: 10, left: 4 });
        assert_eq!((e.offset, e.name.as_deref()), (116, Some("name")));
        // A size far past the end.
        let huge = Fields { mode: S_IFREG, filesize: Some(u32::MAX), ..Fields::default() };
        let archive = Archive::new().raw(MAGIC_NEWC, huge, b"f\0", b"").build();
        assert!(
            matches!(kind(&archive), CpioErrorKind::Truncated { part: "data", len, .. } if len == u32::MAX as usize)
        );
    }

    #[test]
    fn bad_header_field() {
        let mut archive = Archive::new().file("a", b"1").trailer().build();
        archive[6 + 6 * 8 + 3] = b'g'; // in filesize
        let e = error(&archive);
        assert_eq!((e.kind, e.offset, e.name), (CpioErrorKind::BadField("filesize"), 54, None));
        archive[6 + 6 * 8 + 3] = b'0';
        archive[6 + 12 * 8] = b' '; // in check
        assert_eq!(kind(&archive), CpioErrorKind::BadField("check"));
        archive[6 + 12 * 8] = b'0';
        archive[7] = b'x'; // in ino
        assert_eq!(kind(&archive), CpioErrorKind::BadField("ino"));
    }

    #[test]
    fn bad_names() {
        let file = Fields { mode: S_IFREG | 0o644, nlink: 1, ..Fields::default() };
        let with_name = |name: &[u8]| Archive::new().raw(MAGIC_NEWC, file, name, b"").trailer().build();
        assert_eq!(kind(&with_name(b"")), CpioErrorKind::NameNotTerminated);
        assert_eq!(kind(&with_name(b"abc")), CpioErrorKind::NameNotTerminated);
        assert_eq!(kind(&with_name(b"a\0b\0")), CpioErrorKind::NameNotTerminated);
        assert_eq!(kind(&with_name(b"\xff\xfe\0")), CpioErrorKind::NameNotUtf8);
        assert_eq!(kind(&with_name(b"\0")), CpioErrorKind::EmptyName);
        for name in ["..", "../etc/passwd", "a/../../b", "./..", "a/.."] {
            let e = error(&with_name(format!("{name}\0").as_bytes()));
            assert_eq!((e.kind, e.offset, e.name.as_deref()), (CpioErrorKind::DotDot, 110, Some(name)));
        }
        for name in ["a//b", "a/./b", "a/."] {
            assert_eq!(kind(&with_name(format!("{name}\0").as_bytes())), CpioErrorKind::EmptyComponent, "{name}");
        }
        let long = format!("{}\0", "a/".repeat(2048));
        assert_eq!(kind(&with_name(long.as_bytes())), CpioErrorKind::NameTooLong(4096));
        let longest = format!("{}\0", "a/".repeat(2047) + "b");
        assert!(parse(&with_name(longest.as_bytes())).is_ok());
        let component = format!("d/{}\0", "c".repeat(256));
        assert_eq!(kind(&with_name(component.as_bytes())), CpioErrorKind::ComponentTooLong(256));
        // namesize larger than the rest of the input, and absurdly large.
        let f = Fields { namesize: Some(4000), ..file };
        let archive = Archive::new().raw(MAGIC_NEWC, f, b"a\0", b"").build();
        assert!(matches!(kind(&archive), CpioErrorKind::Truncated { part: "name", len: 4000, .. }));
        let f = Fields { namesize: Some(u32::MAX), ..file };
        let archive = Archive::new().raw(MAGIC_NEWC, f, b"a\0", b"").build();
        assert_eq!(kind(&archive), CpioErrorKind::NameTooLong(u32::MAX as usize - 1));
    }

    #[test]
    fn file_types() {
        for bits in [S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK, 0, 0o170_000] {
            let archive = Archive::new().dir("dev").entry("dev/thing", bits | 0o600, b"").trailer().build();
            let e = error(&archive);
            assert_eq!(
                (e.kind, e.offset, e.name.as_deref()),
                (CpioErrorKind::UnsupportedType(bits), 116, Some("dev/thing"))
            );
        }
        assert!(
            error(&Archive::new().entry("c", S_IFCHR, b"").trailer().build()).to_string().contains("character device")
        );
        assert_eq!(kind(&Archive::new().file(".", b"").trailer().build()), CpioErrorKind::RootNotDirectory);
        assert_eq!(kind(&Archive::new().symlink("/", "x").trailer().build()), CpioErrorKind::RootNotDirectory);
        let e = error(&Archive::new().entry("d", S_IFDIR | 0o755, b"data").trailer().build());
        assert_eq!((e.kind, e.offset), (CpioErrorKind::DirectoryWithData(4), 112));
        for target in [&b""[..], b"a\0b", b"\xff", &[b'a'; 4096]] {
            let archive = Archive::new().entry("l", S_IFLNK | 0o777, target).trailer().build();
            assert_eq!(kind(&archive), CpioErrorKind::BadLinkTarget);
        }
        let archive = Archive::new().symlink("l", &"t".repeat(4095)).trailer().build();
        assert!(matches!(parse(&archive).unwrap()[0].kind, EntryKind::Symlink(t) if t.len() == 4095));
    }

    #[test]
    fn messages_are_one_line() {
        let e = error(&Archive::new().file("a\nb/..", b"").trailer().build());
        let text = e.to_string();
        assert_eq!(text, "initrd byte 110, entry \"a\\nb/..\": path component \"..\"");
        let kinds = [
            CpioErrorKind::BadMagic(b"07\n".to_vec()),
            CpioErrorKind::BadField("mode"),
            CpioErrorKind::BadPadding,
            CpioErrorKind::Truncated { part: "data", len: 9, left: 1 },
            CpioErrorKind::NameNotTerminated,
            CpioErrorKind::NameNotUtf8,
            CpioErrorKind::NameTooLong(5000),
            CpioErrorKind::ComponentTooLong(300),
            CpioErrorKind::EmptyName,
            CpioErrorKind::DotDot,
            CpioErrorKind::EmptyComponent,
            CpioErrorKind::UnsupportedType(S_IFSOCK),
            CpioErrorKind::RootNotDirectory,
            CpioErrorKind::DirectoryWithData(1),
            CpioErrorKind::BadLinkTarget,
            CpioErrorKind::BadChecksum { expected: 1, actual: 2 },
            CpioErrorKind::MissingTrailer,
            CpioErrorKind::ReplacesBuiltin,
            CpioErrorKind::ParentNotDirectory,
            CpioErrorKind::ReplacesNonEmptyDirectory,
        ];
        for kind in kinds {
            let text = CpioError { offset: 3, name: None, kind: kind.clone() }.to_string();
            assert!(text.starts_with("initrd byte 3: ") && !text.contains('\n'), "{kind:?}: {text}");
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        use rand::{Rng, SeedableRng};
        let archive = Archive::new().dir(".").file("a", b"hello").symlink("l", "a").trailer().build();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        for _ in 0..20_000 {
            let mut bytes = archive.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.r#gen();
            }
            bytes.truncate(rng.gen_range(0..=bytes.len()));
            let _ = parse(&bytes);
        }
    }
}
