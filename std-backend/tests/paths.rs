//! Every path-taking method rejects paths that could leave the root.

use std::sync::Arc;

use durability_std::{
    Directory, DurableDirectory, FsDirectory, MemoryDirectory, PersistenceError, PersistenceResult,
};

const BAD: &[&str] = &[
    "..",
    "../x",
    "a/../../x",
    "a/..",
    "/etc/passwd",
    "/",
    "a\\..\\x",
];

fn assert_invalid<T>(r: PersistenceResult<T>, what: &str, path: &str) {
    match r {
        Err(PersistenceError::InvalidPath(msg)) => {
            assert!(!msg.is_empty(), "{what}({path:?}): empty message");
        }
        Err(e) => panic!("{what}({path:?}): expected InvalidPath, got {e:?}"),
        Ok(_) => panic!("{what}({path:?}): expected InvalidPath, got Ok"),
    }
}

fn check_rejects_everywhere(dir: &dyn Directory) {
    dir.create_dir_all("ok").unwrap();
    dir.create_dir_all("a").unwrap();
    dir.create_file("ok/f").unwrap();
    for &p in BAD {
        assert_invalid(dir.create_file(p), "create_file", p);
        assert_invalid(dir.open_file(p), "open_file", p);
        assert!(!dir.exists(p), "exists({p:?})");
        assert_invalid(dir.delete(p), "delete", p);
        assert_invalid(dir.atomic_rename(p, "ok/g"), "atomic_rename from", p);
        assert_invalid(dir.atomic_rename("ok/f", p), "atomic_rename to", p);
        assert_invalid(dir.create_dir_all(p), "create_dir_all", p);
        assert_invalid(dir.list_dir(p), "list_dir", p);
        assert_invalid(dir.append_file(p), "append_file", p);
        assert_invalid(dir.atomic_write(p, b"x"), "atomic_write", p);
        assert!(dir.file_path(p).is_none(), "file_path({p:?})");
        assert_invalid(dir.open_handle(p, true), "open_handle(create)", p);
        assert_invalid(dir.open_handle(p, false), "open_handle", p);
        assert_invalid(dir.sync_file(p), "sync_file", p);
        assert_invalid(dir.sync_dir(p), "sync_dir", p);
        assert_invalid(dir.atomic_write_durable(p, b"x"), "atomic_write_durable", p);
        assert_invalid(
            dir.atomic_rename_durable("ok/f", p),
            "atomic_rename_durable",
            p,
        );
    }
    // The source file survived every rejected rename.
    assert!(dir.exists("ok/f"));
    assert!(!dir.exists("ok/g"));
    // No temporary file of a rejected durable write was left behind.
    assert_eq!(dir.list_dir("").unwrap(), vec!["a", "ok"]);
    assert_eq!(dir.list_dir("ok").unwrap(), vec!["f"]);
    assert!(dir.list_dir("a").unwrap().is_empty());
}

#[test]
fn fs_rejects_escaping_paths_for_every_method() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = FsDirectory::new(tmp.path().join("root")).unwrap();
    check_rejects_everywhere(&dir);
    // Nothing was created next to (outside) the root.
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("root")]);
}

#[test]
fn memory_rejects_escaping_paths_for_every_method() {
    check_rejects_everywhere(&MemoryDirectory::new());
}

#[test]
fn file_methods_reject_empty_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<Arc<dyn Directory>> = vec![
        Arc::new(FsDirectory::new(tmp.path()).unwrap()),
        Arc::new(MemoryDirectory::new()),
    ];
    for dir in dirs {
        dir.create_dir_all("a").unwrap();
        for p in ["", ".", "a/", "a/."] {
            assert_invalid(dir.create_file(p), "create_file", p);
            assert_invalid(dir.append_file(p), "append_file", p);
            assert_invalid(dir.atomic_write(p, b""), "atomic_write", p);
            assert_invalid(dir.open_handle(p, true), "open_handle", p);
            assert_invalid(dir.delete(p), "delete", p);
        }
        // The root is a valid directory.
        assert!(dir.exists(""));
        dir.sync_dir("").unwrap();
        assert_eq!(dir.list_dir("").unwrap(), vec!["a".to_string()]);
    }
}

#[test]
fn fs_accepts_clean_relative_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = FsDirectory::new(tmp.path()).unwrap();
    dir.create_dir_all("a").unwrap();
    dir.atomic_write("a/b.bin", b"data").unwrap();
    assert!(dir.exists("a/b.bin"));
    assert!(dir.exists("./a//b.bin"));
    assert_eq!(
        dir.file_path("a/b.bin").unwrap(),
        tmp.path().join("a").join("b.bin")
    );
    assert_eq!(std::fs::read(tmp.path().join("a/b.bin")).unwrap(), b"data");
    assert_eq!(dir.file_path("").unwrap(), tmp.path());
}
