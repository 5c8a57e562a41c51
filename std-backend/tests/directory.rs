//! Round trips of every Directory method on the file system and in memory, the
//! durable helpers, and a user-written directory that predates the 0.3 methods.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use durability_std::{
    sync_file, sync_parent_dir, Directory, DurableDirectory, FsDirectory, MemoryDirectory,
    PersistenceError, PersistenceResult,
};

fn read_all(dir: &dyn Directory, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    dir.open_file(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn write_file(dir: &dyn Directory, path: &str, data: &[u8]) {
    let mut w = dir.create_file(path).unwrap();
    w.write_all(data).unwrap();
    w.flush().unwrap();
}

fn round_trip(dir: &dyn Directory) {
    // Directories and listing.
    assert!(dir.exists(""));
    assert!(dir.list_dir("").unwrap().is_empty());
    dir.create_dir_all("a/b").unwrap();
    dir.create_dir_all("a/b").unwrap(); // idempotent
    assert!(dir.exists("a") && dir.exists("a/b"));
    assert_eq!(dir.list_dir("").unwrap(), vec!["a"]);
    assert_eq!(dir.list_dir("a").unwrap(), vec!["b"]);
    assert!(dir.list_dir("a/b").unwrap().is_empty());
    assert!(dir.list_dir("missing").unwrap_err().is_not_found());

    // create / read / truncate on create / append.
    write_file(dir, "a/b/f.bin", b"hello");
    assert!(dir.exists("a/b/f.bin"));
    assert_eq!(read_all(dir, "a/b/f.bin"), b"hello");
    let mut w = dir.append_file("a/b/f.bin").unwrap();
    w.write_all(b" world").unwrap();
    w.flush().unwrap();
    drop(w);
    assert_eq!(read_all(dir, "a/b/f.bin"), b"hello world");
    write_file(dir, "a/b/f.bin", b"xy");
    assert_eq!(read_all(dir, "a/b/f.bin"), b"xy");
    let mut w = dir.append_file("a/b/new.log").unwrap();
    w.write_all(b"1").unwrap();
    drop(w);
    let mut w = dir.append_file("a/b/new.log").unwrap();
    w.write_all(b"2").unwrap();
    drop(w);
    assert_eq!(read_all(dir, "a/b/new.log"), b"12");
    assert_eq!(dir.list_dir("a/b").unwrap(), vec!["f.bin", "new.log"]);
    assert_eq!(dir.list_dir("a").unwrap(), vec!["b"]);

    // rename, replacing the target.
    write_file(dir, "a/g.bin", b"old");
    dir.atomic_rename("a/b/f.bin", "a/g.bin").unwrap();
    assert!(!dir.exists("a/b/f.bin"));
    assert_eq!(read_all(dir, "a/g.bin"), b"xy");
    assert!(dir
        .atomic_rename("a/b/f.bin", "a/h.bin")
        .unwrap_err()
        .is_not_found());

    // atomic_write creates and replaces, and leaves no temporary file.
    dir.atomic_write("a/g.bin", b"replaced").unwrap();
    assert_eq!(read_all(dir, "a/g.bin"), b"replaced");
    dir.atomic_write("top.bin", b"t").unwrap();
    assert_eq!(read_all(dir, "top.bin"), b"t");
    assert_eq!(dir.list_dir("a").unwrap(), vec!["b", "g.bin"]);
    assert_eq!(dir.list_dir("").unwrap(), vec!["a", "top.bin"]);

    // delete.
    dir.delete("a/g.bin").unwrap();
    assert!(!dir.exists("a/g.bin"));
    assert!(dir.delete("a/g.bin").unwrap_err().is_not_found());
    assert!(dir.open_file("a/g.bin").err().unwrap().is_not_found());
    dir.delete("a/b/new.log").unwrap();
    dir.delete("a/b").unwrap(); // an empty directory
    assert!(!dir.exists("a/b"));
    assert!(dir.exists("a"));

    // Barriers on existing targets.
    dir.sync_file("top.bin").unwrap();
    dir.sync_dir("").unwrap();
    dir.sync_dir("a").unwrap();
    sync_file(dir, "top.bin").unwrap();
    sync_parent_dir(dir, "top.bin").unwrap();
    assert!(dir.sync_file("nope").unwrap_err().is_not_found());
    assert!(dir.sync_dir("nope").unwrap_err().is_not_found());
}

fn handles(dir: &dyn Directory) {
    assert!(dir
        .open_handle("h.bin", false)
        .err()
        .unwrap()
        .is_not_found());
    let mut h = dir.open_handle("h.bin", true).unwrap();
    assert_eq!(h.len().unwrap(), 0);
    h.write_at(0, b"abc").unwrap();
    h.write_at(5, b"z").unwrap();
    assert_eq!(h.len().unwrap(), 6);
    let mut buf = [9u8; 8];
    assert_eq!(h.read_at(0, &mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"abc\0\0z");
    assert_eq!(h.read_at(4, &mut buf[..1]).unwrap(), 1);
    assert_eq!(buf[0], 0);
    assert_eq!(h.read_at(6, &mut buf).unwrap(), 0);
    assert_eq!(h.read_at(100, &mut buf).unwrap(), 0);
    h.sync_data().unwrap();

    // A second handle and a reader see the same bytes.
    let mut h2 = dir.open_handle("h.bin", false).unwrap();
    h2.write_at(1, b"B").unwrap();
    let mut two = [0u8; 2];
    assert_eq!(h.read_at(0, &mut two).unwrap(), 2);
    assert_eq!(&two, b"aB");
    assert_eq!(read_all(dir, "h.bin"), b"aBc\0\0z");

    // Opening with create keeps existing content; set_len shrinks and extends.
    let mut h3 = dir.open_handle("h.bin", true).unwrap();
    assert_eq!(h3.len().unwrap(), 6);
    h3.set_len(2).unwrap();
    assert_eq!(h.len().unwrap(), 2);
    h3.set_len(4).unwrap();
    assert_eq!(read_all(dir, "h.bin"), b"aB\0\0");
    h3.sync_data().unwrap();
}

fn durable(dir: &dyn Directory) {
    dir.create_dir_all("d").unwrap();
    dir.atomic_write_durable("d/x.json", b"v1").unwrap();
    assert_eq!(read_all(dir, "d/x.json"), b"v1");
    dir.atomic_write_durable("d/x.json", b"v2").unwrap();
    assert_eq!(read_all(dir, "d/x.json"), b"v2");
    assert_eq!(dir.list_dir("d").unwrap(), vec!["x.json"]);
    dir.atomic_write_durable("root.json", b"r").unwrap();
    assert_eq!(read_all(dir, "root.json"), b"r");

    write_file(dir, "d/staged", b"s");
    dir.atomic_rename_durable("d/staged", "d/x.json").unwrap();
    assert_eq!(read_all(dir, "d/x.json"), b"s");
    assert!(!dir.exists("d/staged"));
    dir.create_dir_all("e").unwrap();
    dir.atomic_rename_durable("d/x.json", "e/y.json").unwrap();
    assert_eq!(read_all(dir, "e/y.json"), b"s");
    assert!(!dir.exists("d/x.json"));
    assert!(dir
        .atomic_rename_durable("d/missing", "e/z")
        .unwrap_err()
        .is_not_found());
    assert!(!dir.exists("e/z"));
    // A missing parent fails without leaving anything behind.
    assert!(dir
        .atomic_write_durable("nodir/x", b"v")
        .unwrap_err()
        .is_not_found());
    assert!(!dir.exists("nodir"));
}

#[test]
fn fs_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    round_trip(&FsDirectory::new(tmp.path()).unwrap());
}

#[test]
fn memory_round_trip() {
    round_trip(&MemoryDirectory::new());
}

#[test]
fn fs_handles() {
    let tmp = tempfile::tempdir().unwrap();
    handles(&FsDirectory::new(tmp.path()).unwrap());
}

#[test]
fn memory_handles() {
    handles(&MemoryDirectory::new());
}

#[test]
fn fs_durable() {
    let tmp = tempfile::tempdir().unwrap();
    durable(&FsDirectory::new(tmp.path()).unwrap());
}

#[test]
fn memory_durable() {
    durable(&MemoryDirectory::new());
}

#[test]
fn through_arc_dyn() {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    round_trip(&fs);
    let mem: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    durable(&mem);
    // The forwarding impl keeps the backend's own barriers and handles.
    let boxed: Box<dyn Directory> = Box::new(MemoryDirectory::new());
    handles(&boxed);
    mem.atomic_write_durable("via_arc", b"1").unwrap();
}

#[test]
fn fs_new_creates_root_and_reports_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("x").join("y");
    let dir = FsDirectory::new(&root).unwrap();
    assert!(root.is_dir());
    assert_eq!(dir.root(), root.as_path());
    write_file(&dir, "f", b"1");
    assert_eq!(std::fs::read(root.join("f")).unwrap(), b"1");
    assert_eq!(dir.file_path("f"), Some(root.join("f")));
}

#[test]
fn memory_clones_share_state_and_dirs_are_implicit() {
    let a = MemoryDirectory::new();
    let b = a.clone();
    write_file(&a, "x/y/z.bin", b"1");
    assert!(b.exists("x") && b.exists("x/y"));
    assert_eq!(b.list_dir("").unwrap(), vec!["x"]);
    assert_eq!(b.list_dir("x").unwrap(), vec!["y"]);
    assert_eq!(b.list_dir("x/y").unwrap(), vec!["z.bin"]);
    assert!(b.file_path("x/y/z.bin").is_none());
    // A directory with content cannot be deleted; a file cannot be a directory.
    assert!(b.delete("x").is_err());
    assert!(b.create_file("x/y/z.bin/w").is_err());
    assert!(b.create_file("x/y").is_err());
    assert!(b.create_dir_all("x/y/z.bin").is_err());
    assert!(b.list_dir("x/y/z.bin").is_err());
    // Removing the only file removes the implicit directories, not explicit ones.
    b.create_dir_all("kept").unwrap();
    b.delete("x/y/z.bin").unwrap();
    assert!(!a.exists("x"));
    assert!(a.exists("kept"));
    assert_eq!(a.list_dir("").unwrap(), vec!["kept"]);
}

#[test]
fn memory_writers_and_handles_share_bytes() {
    let dir = MemoryDirectory::new();
    let mut w = dir.create_file("f").unwrap();
    let mut h = dir.open_handle("f", false).unwrap();
    w.write_all(b"abc").unwrap();
    assert_eq!(h.len().unwrap(), 3);
    h.write_at(3, b"d").unwrap();
    let mut r = dir.open_file("f").unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"abcd");
    // Replacing the file leaves the old bytes to handles opened before.
    dir.atomic_write("f", b"new").unwrap();
    assert_eq!(h.len().unwrap(), 4);
    assert_eq!(read_all(&dir, "f"), b"new");
    // Deleting it too (like unlink).
    let mut h2 = dir.open_handle("f", false).unwrap();
    dir.delete("f").unwrap();
    assert_eq!(h2.len().unwrap(), 3);
    assert!(!dir.exists("f"));
}

#[test]
fn memory_renames_directories() {
    let dir = MemoryDirectory::new();
    dir.create_dir_all("src/empty").unwrap();
    write_file(&dir, "src/a", b"a");
    write_file(&dir, "src/sub/b", b"b");
    dir.atomic_rename("src", "dst").unwrap();
    assert!(!dir.exists("src"));
    assert_eq!(dir.list_dir("dst").unwrap(), vec!["a", "empty", "sub"]);
    assert_eq!(read_all(&dir, "dst/sub/b"), b"b");
    assert!(dir.atomic_rename("dst", "dst/inner").is_err());
}

/// A directory written against the 0.2 interface: only the ten original methods.
struct OldDir {
    inner: MemoryDirectory,
    os: Option<FsDirectory>,
}

impl OldDir {
    fn d(&self) -> &dyn Directory {
        match &self.os {
            Some(fs) => fs,
            None => &self.inner,
        }
    }
}

impl Directory for OldDir {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.d().create_file(path)
    }
    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        self.d().open_file(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.d().exists(path)
    }
    fn delete(&self, path: &str) -> PersistenceResult<()> {
        self.d().delete(path)
    }
    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        self.d().atomic_rename(from, to)
    }
    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        self.d().create_dir_all(path)
    }
    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        self.d().list_dir(path)
    }
    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.d().append_file(path)
    }
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        self.d().atomic_write(path, data)
    }
    fn file_path(&self, path: &str) -> Option<PathBuf> {
        self.os.as_ref().and_then(|fs| fs.file_path(path))
    }
}

fn not_supported<T>(r: PersistenceResult<T>) -> bool {
    matches!(r, Err(PersistenceError::NotSupported(_)))
}

#[test]
fn old_directory_without_barriers_fails_durable_ops_without_mutating() {
    let dir = OldDir {
        inner: MemoryDirectory::new(),
        os: None,
    };
    dir.create_dir_all("d").unwrap();
    write_file(&dir, "d/x", b"old");

    assert!(not_supported(dir.open_handle("d/x", false)));
    assert!(not_supported(dir.open_handle("d/new", true)));
    assert!(not_supported(dir.sync_file("d/x")));
    assert!(not_supported(dir.sync_dir("d")));
    assert!(not_supported(sync_file(&dir, "d/x")));
    assert!(not_supported(sync_parent_dir(&dir, "d/x")));

    assert!(not_supported(dir.atomic_write_durable("d/x", b"new")));
    assert!(not_supported(dir.atomic_write_durable("d/fresh", b"new")));
    assert!(not_supported(dir.atomic_rename_durable("d/x", "d/y")));
    // Nothing changed: no new file, no temporary file, old content intact.
    assert_eq!(read_all(&dir, "d/x"), b"old");
    assert_eq!(dir.list_dir("d").unwrap(), vec!["x"]);
    assert!(!dir.exists("d/fresh") && !dir.exists("d/y"));
    assert!(!dir.exists("d/new"));

    // As a trait object the same holds.
    let dyn_dir: Arc<dyn Directory> = Arc::new(dir);
    assert!(not_supported(dyn_dir.atomic_write_durable("d/x", b"new")));
    assert_eq!(read_all(&dyn_dir, "d/x"), b"old");
}

#[test]
fn old_directory_over_os_files_gets_working_default_barriers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OldDir {
        inner: MemoryDirectory::new(),
        os: Some(FsDirectory::new(tmp.path()).unwrap()),
    };
    write_file(&dir, "x", b"1");
    dir.sync_file("x").unwrap();
    dir.sync_dir("").unwrap();
    assert!(dir.sync_file("missing").unwrap_err().is_not_found());
    dir.atomic_write_durable("x", b"2").unwrap();
    assert_eq!(std::fs::read(tmp.path().join("x")).unwrap(), b"2");
    dir.atomic_rename_durable("x", "y").unwrap();
    assert_eq!(std::fs::read(tmp.path().join("y")).unwrap(), b"2");
    // Positional handles still need the backend's own support.
    assert!(not_supported(dir.open_handle("y", false)));
}

#[test]
fn memory_is_usable_from_many_threads() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut shared = dir.append_file("shared.log").unwrap();
                for i in 0..50 {
                    dir.atomic_write(&format!("t{t}/f{i:02}"), &[t as u8; 3])
                        .unwrap();
                    shared.write_all(b"x").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        dir.list_dir("").unwrap(),
        vec!["shared.log", "t0", "t1", "t2", "t3"]
    );
    assert_eq!(dir.list_dir("t2").unwrap().len(), 50);
    assert_eq!(read_all(&dir, "t3/f49"), vec![3u8; 3]);
    assert_eq!(read_all(&dir, "shared.log").len(), 200);
}
