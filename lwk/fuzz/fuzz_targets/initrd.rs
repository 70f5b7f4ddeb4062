//! The initrd path on arbitrary bytes: `cpio::parse`, loading into a fresh file system, then
//! resolving and inspecting paths in whatever tree came out. Besides "no panic", it checks that
//! loading fails exactly when parsing does or on a conflict, and that after a successful load
//! every entry's path leads to what its last entry says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwk::fs::cpio::{self, CpioErrorKind, Entry, EntryKind};
use lwk::fs::ram_fs::{FileSystem, Ino, Lookup, NodeKind, ROOT};

const PATHS: [&str; 8] = ["/", "/init", "/bin/sh", "/proc/self/exe", "/tmp/../etc/passwd", "../../..", "/dev/", "lib/"];

fuzz_target!(|data: &[u8]| {
    let parsed = cpio::parse(data);
    let mut fs = FileSystem::new();
    let loaded = fs.load_initrd(data);
    match (&parsed, &loaded) {
        (Err(parse_error), load) => {
            assert_eq!(load.as_ref().err(), Some(parse_error));
            assert!(!parse_error.to_string().contains('\n'));
        }
        (Ok(entries), Ok(count)) => {
            assert_eq!(*count, entries.len());
            check_entries(&fs, entries);
        }
        (Ok(_), Err(load_error)) => assert!(matches!(
            load_error.kind,
            CpioErrorKind::ReplacesBuiltin
                | CpioErrorKind::ParentNotDirectory
                | CpioErrorKind::ReplacesNonEmptyDirectory
                | CpioErrorKind::NoSpace
        )),
    }
    let at = Lookup { cwd: ROOT, exe: "/bin/prog" };
    let names = parsed.iter().flatten().flat_map(|entry| [entry.name, link_target(entry).unwrap_or("")]);
    for path in PATHS.into_iter().chain(names) {
        for follow in [false, true] {
            if let Ok(ino) = fs.resolve(&at, path, follow) {
                inspect(&fs, &at, ino);
            }
        }
        if let Ok((dir, name)) = fs.resolve_parent(&at, path) {
            assert!(!name.is_empty() && !name.contains('/'));
            assert_eq!(fs.kind(dir), Ok(NodeKind::Directory));
        }
    }
});

fn link_target<'a>(entry: &Entry<'a>) -> Option<&'a str> {
    match entry.kind {
        EntryKind::Symlink(target) => Some(target),
        _ => None,
    }
}

/// After a successful load, each path holds what the last entry of that path describes.
fn check_entries(fs: &FileSystem, entries: &[Entry]) {
    let at = Lookup { cwd: ROOT, exe: "" };
    for (i, entry) in entries.iter().enumerate() {
        if entry.name.is_empty() || entries[i + 1..].iter().any(|later| later.name == entry.name) {
            continue;
        }
        let ino = fs.resolve(&at, entry.name, false).expect("a loaded entry resolves");
        match entry.kind {
            EntryKind::File => {
                let mut bytes = vec![0; entry.data.len() + 1];
                assert_eq!(fs.read(ino, 0, &mut bytes), Ok(entry.data.len()));
                assert_eq!(&bytes[..entry.data.len()], entry.data);
            }
            EntryKind::Directory => assert_eq!(fs.kind(ino), Ok(NodeKind::Directory)),
            EntryKind::Symlink(target) => assert_eq!(fs.readlink(ino, &at).as_deref(), Ok(target)),
        }
    }
}

fn inspect(fs: &FileSystem, at: &Lookup, ino: Ino) {
    let _ = fs.stat(ino);
    let _ = fs.readlink(ino, at);
    let mut buf = [0; 64];
    let _ = fs.read(ino, 1, &mut buf);
    // (An absolute path may be one byte longer than the longest name, and too long to resolve.)
    if let Ok(path) = fs.path_of(ino)
        && path.len() <= cpio::MAX_PATH_LEN
    {
        assert_eq!(fs.resolve(at, &path, false), Ok(ino));
    }
    let mut cursor = 0;
    while let Ok(Some(entry)) = fs.read_dir(ino, cursor) {
        assert!(entry.next > cursor);
        cursor = entry.next;
    }
}
