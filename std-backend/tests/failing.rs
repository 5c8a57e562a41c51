//! FailingDirectory: the chosen call fails with the chosen kind; counts are exact.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use durability_std::failing::{FailKind, Op};
use durability_std::{
    Directory, DurableDirectory, FailingDirectory, MemoryDirectory, PersistenceError,
};

fn io_kind(e: &PersistenceError) -> ErrorKind {
    match e {
        PersistenceError::Io(io) => io.kind(),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

fn new() -> (MemoryDirectory, FailingDirectory) {
    let mem = MemoryDirectory::new();
    let fail = FailingDirectory::new(Arc::new(mem.clone()));
    (mem, fail)
}

#[test]
fn nth_handle_write_fails_once_with_the_chosen_kind() {
    let (mem, dir) = new();
    let mut h = dir.open_handle("f", true).unwrap();
    dir.fail_nth(Op::Write, 3, FailKind::StorageFull);
    h.write_at(0, b"a").unwrap();
    h.write_at(1, b"b").unwrap();
    let e = h.write_at(2, b"c").unwrap_err();
    assert_eq!(io_kind(&e), ErrorKind::StorageFull);
    h.write_at(2, b"d").unwrap();
    assert_eq!(dir.counts(Op::Write), 4);
    // The failed write changed nothing.
    let mut out = Vec::new();
    mem.open_file("f").unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, b"abd");
}

#[test]
fn rule_counts_from_when_it_is_set() {
    let (_mem, dir) = new();
    let mut w = dir.create_file("f").unwrap();
    for _ in 0..5 {
        w.write_all(b"x").unwrap();
    }
    assert_eq!(dir.counts(Op::Write), 5);
    dir.fail_nth(Op::Write, 2, FailKind::Other);
    w.write_all(b"6").unwrap();
    let e = w.write_all(b"7").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other);
    w.write_all(b"8").unwrap();
    assert_eq!(dir.counts(Op::Write), 8);
}

#[test]
fn sync_counts_handle_and_path_barriers() {
    let (_mem, dir) = new();
    let mut h = dir.open_handle("f", true).unwrap();
    dir.fail_nth(Op::Sync, 3, FailKind::Other);
    h.sync_data().unwrap();
    dir.sync_file("f").unwrap();
    let e = h.sync_data().unwrap_err();
    assert_eq!(io_kind(&e), ErrorKind::Other);
    dir.sync_file("f").unwrap();
    assert_eq!(dir.counts(Op::Sync), 4);
    assert_eq!(dir.counts(Op::SyncDir), 0);

    dir.fail_next(Op::SyncDir, FailKind::StorageFull);
    assert_eq!(
        io_kind(&dir.sync_dir("").unwrap_err()),
        ErrorKind::StorageFull
    );
    dir.sync_dir("").unwrap();
    assert_eq!(dir.counts(Op::SyncDir), 2);
}

#[test]
fn fail_all_until_clear() {
    let (mem, dir) = new();
    dir.atomic_write("a", b"1").unwrap();
    dir.fail_all(Op::Rename);
    for _ in 0..3 {
        assert_eq!(
            io_kind(&dir.atomic_rename("a", "b").unwrap_err()),
            ErrorKind::Other
        );
    }
    assert!(mem.exists("a") && !mem.exists("b"));
    dir.clear();
    dir.atomic_rename("a", "b").unwrap();
    assert!(mem.exists("b"));
    // atomic_write counts one write and one rename.
    assert_eq!(dir.counts(Op::Rename), 5);
    assert_eq!(dir.counts(Op::Write), 1);
    dir.reset_counts();
    assert_eq!(dir.counts(Op::Rename), 0);

    dir.fail_all_with(Op::Delete, FailKind::StorageFull);
    assert_eq!(
        io_kind(&dir.delete("b").unwrap_err()),
        ErrorKind::StorageFull
    );
    assert!(mem.exists("b"));
    assert_eq!(dir.counts(Op::Delete), 1);
}

#[test]
fn create_and_create_dir() {
    let (mem, dir) = new();
    dir.fail_next(Op::Create, FailKind::Other);
    assert!(dir.create_file("x").is_err());
    assert!(!mem.exists("x"));
    dir.create_file("x").unwrap();
    dir.append_file("y").unwrap();
    dir.open_handle("z", true).unwrap();
    dir.open_handle("z", false).unwrap(); // not a creation
    assert_eq!(dir.counts(Op::Create), 4);

    dir.fail_next(Op::CreateDir, FailKind::StorageFull);
    assert_eq!(
        io_kind(&dir.create_dir_all("d").unwrap_err()),
        ErrorKind::StorageFull
    );
    assert!(!mem.exists("d"));
    dir.create_dir_all("d").unwrap();
    assert_eq!(dir.counts(Op::CreateDir), 2);
}

#[test]
fn reads_and_truncates() {
    let (_mem, dir) = new();
    dir.atomic_write("f", b"abc").unwrap();
    dir.fail_next(Op::Read, FailKind::Other);
    let mut r = dir.open_file("f").unwrap();
    let mut buf = [0u8; 3];
    assert!(r.read(&mut buf).is_err());
    assert_eq!(r.read(&mut buf).unwrap(), 3);
    let mut h = dir.open_handle("f", false).unwrap();
    dir.fail_next(Op::Truncate, FailKind::Other);
    assert!(h.set_len(1).is_err());
    assert_eq!(h.len().unwrap(), 3);
    h.set_len(1).unwrap();
    assert_eq!(h.len().unwrap(), 1);
    assert_eq!(dir.counts(Op::Read), 2);
    assert_eq!(dir.counts(Op::Truncate), 2);
}

#[test]
fn clones_share_rules_and_counts() {
    let (_mem, dir) = new();
    let given_away: Arc<dyn Directory> = Arc::new(dir.clone());
    dir.fail_next(Op::SyncDir, FailKind::Other);
    assert!(given_away.sync_dir("").is_err());
    assert_eq!(dir.counts(Op::SyncDir), 1);
    // Durable operations go through the counted primitives.
    given_away.atomic_write_durable("x", b"1").unwrap();
    assert_eq!(dir.counts(Op::SyncDir), 3);
    assert_eq!(dir.counts(Op::Sync), 1);
    assert_eq!(dir.counts(Op::Rename), 1);
}

#[test]
fn failed_durable_write_leaves_old_content() {
    let (mem, dir) = new();
    dir.atomic_write_durable("cfg", b"old").unwrap();
    dir.fail_next(Op::Sync, FailKind::Other);
    assert!(dir.atomic_write_durable("cfg", b"new").is_err());
    let mut out = Vec::new();
    mem.open_file("cfg").unwrap().read_to_end(&mut out).unwrap();
    assert_eq!(out, b"old");
    // The temporary file was removed.
    assert_eq!(mem.list_dir("").unwrap(), vec!["cfg"]);
}
