//! Single-writer locking at the `Directory` level, through the facade crate and
//! `Arc<dyn Directory>`, as a WAL writer would use it.

use std::sync::Arc;

use durability::storage::{FsDirectory, MemoryDirectory};
use durability::{Directory, PersistenceError};

const LOCK: &str = "wal/LOCK";

fn is_locked<T>(r: Result<T, PersistenceError>) -> bool {
    matches!(r, Err(PersistenceError::Locked { .. }))
}

/// `first` and `second` are two writers opened on the same data.
fn one_writer_at_a_time(first: Arc<dyn Directory>, second: Arc<dyn Directory>) {
    let held = first
        .lock_exclusive(LOCK)
        .unwrap()
        .expect("backend has a lock");
    assert!(first.exists(LOCK));

    let err = second.lock_exclusive(LOCK).unwrap_err();
    assert!(
        matches!(&err, PersistenceError::Locked { path } if path.ends_with("LOCK")),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("locked by another writer"),
        "{err}"
    );
    assert!(is_locked(first.lock_exclusive(LOCK)));

    // A lock in another log directory is independent.
    let other = second.lock_exclusive("other/LOCK").unwrap().unwrap();

    drop(held);
    let again = second.lock_exclusive(LOCK).unwrap().unwrap();
    assert!(is_locked(first.lock_exclusive(LOCK)));
    drop((again, other));
    assert!(first.exists(LOCK), "the lock file stays");
}

#[test]
fn fs_directories_on_one_root_exclude_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let a: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    let b: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    one_writer_at_a_time(a.clone(), b.clone());
    one_writer_at_a_time(a.clone(), a);
    assert!(tmp.path().join("wal").join("LOCK").is_file());
}

#[test]
fn memory_clones_exclude_each_other() {
    let mem = MemoryDirectory::new();
    let a: Arc<dyn Directory> = Arc::new(mem.clone());
    let b: Arc<dyn Directory> = Arc::new(mem);
    one_writer_at_a_time(a, b);

    // Separate memory directories are separate data: no conflict.
    let x: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let y: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let _lx = x.lock_exclusive(LOCK).unwrap().unwrap();
    let _ly = y.lock_exclusive(LOCK).unwrap().unwrap();
}

#[test]
fn lock_is_released_when_its_thread_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    let d = dir.clone();
    let (taken_tx, taken_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let _lock = d.lock_exclusive(LOCK).unwrap().unwrap();
        taken_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    taken_rx.recv().unwrap();
    assert!(is_locked(dir.lock_exclusive(LOCK)));
    drop(release_tx);
    writer.join().unwrap();
    assert!(dir.lock_exclusive(LOCK).unwrap().is_some());
}
