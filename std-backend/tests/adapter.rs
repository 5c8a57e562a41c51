//! DirStorage: the core Storage trait over directories, and the core logs through it.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use durability_core::recordlog::{RecordLogReader, RecordLogWriter};
use durability_core::wal::{WalConfig, WalReader, WalWriter};
use durability_core::{ReadMode, Storage, StorageError, StorageErrorKind};
use durability_std::failing::{FailKind, Op};
use durability_std::{
    DirStorage, Directory, FailingDirectory, FileHandle, FsDirectory, MemoryDirectory,
    PersistenceError, PersistenceResult,
};

fn backends() -> (tempfile::TempDir, Vec<Arc<dyn Directory>>) {
    let tmp = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    let mem: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    (tmp, vec![fs, mem])
}

fn listed(st: &mut DirStorage) -> Vec<u64> {
    let mut v = Vec::new();
    st.list(&mut |n| v.push(n)).unwrap();
    v.sort();
    v
}

fn read_vec(st: &mut DirStorage, n: u64) -> Vec<u8> {
    let len = st.len(n).unwrap();
    let mut buf = vec![0u8; len as usize + 3];
    let got = st.read(n, 0, &mut buf).unwrap();
    buf.truncate(got);
    buf
}

#[test]
fn segment_operations() {
    let (_tmp, dirs) = backends();
    for dir in dirs {
        let mut st = DirStorage::segments(dir.clone(), "wal");
        assert_eq!(st.write_size(), 1);
        assert_eq!(st.unwritten_byte(), 0);
        assert!(st.resume_in_place());
        assert_eq!(st.max_segment_len(), None);
        // A missing subdirectory is an empty log, not an error.
        assert!(listed(&mut st).is_empty());
        let e = st.len(1).unwrap_err();
        assert_eq!(e.kind(), StorageErrorKind::NotFound);

        st.create(1).unwrap();
        assert!(dir.exists("wal/00000000000000000001.seg"));
        assert_eq!(st.len(1).unwrap(), 0);
        st.write(1, 0, b"hello").unwrap();
        st.write(1, 5, b" world").unwrap();
        assert_eq!(st.len(1).unwrap(), 11);
        assert_eq!(read_vec(&mut st, 1), b"hello world");
        let mut buf = [0u8; 4];
        assert_eq!(st.read(1, 9, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ld");
        assert_eq!(st.read(1, 11, &mut buf).unwrap(), 0);
        st.sync(1).unwrap();
        st.sync(1).unwrap();

        st.create(2).unwrap();
        st.write(2, 0, b"two").unwrap();
        st.sync(2).unwrap();
        assert_eq!(listed(&mut st), vec![1, 2]);

        st.truncate(1, 5).unwrap();
        assert_eq!(read_vec(&mut st, 1), b"hello");

        // Creating an existing segment empties it.
        st.create(2).unwrap();
        assert_eq!(st.len(2).unwrap(), 0);

        st.remove(1).unwrap();
        assert!(!dir.exists("wal/00000000000000000001.seg"));
        assert_eq!(listed(&mut st), vec![2]);
        assert_eq!(st.len(1).unwrap_err().kind(), StorageErrorKind::NotFound);
        assert_eq!(
            st.read(1, 0, &mut buf).unwrap_err().kind(),
            StorageErrorKind::NotFound
        );
        assert!(st.remove(1).unwrap_err().is_not_found());

        // A second storage over the same directory sees the same segments.
        let mut other = DirStorage::segments(dir.clone(), "wal/");
        assert_eq!(listed(&mut other), vec![2]);
        assert_eq!(other.segment_path(2), "wal/00000000000000000002.seg");
        assert!(Arc::ptr_eq(other.directory(), &dir));
    }
}

#[test]
fn list_ignores_foreign_files() {
    let (_tmp, dirs) = backends();
    for dir in dirs {
        let mut st = DirStorage::segments(dir.clone(), "wal");
        st.create(3).unwrap();
        st.create(10).unwrap();
        for foreign in [
            "wal/notes.txt",
            "wal/1.seg",
            "wal/00000000000000000004.seg.tmp",
            "wal/.00000000000000000005.seg.1.2.tmp",
            "wal/0000000000000000000x.seg",
            "wal/000000000000000000006.seg",
            "wal/99999999999999999999.seg", // 20 digits, but beyond u64
        ] {
            dir.atomic_write(foreign, b"junk").unwrap();
        }
        dir.create_dir_all("wal/00000000000000000007.dir").unwrap();
        dir.atomic_write("00000000000000000008.seg", b"outside the subdir")
            .unwrap();
        assert_eq!(listed(&mut st), vec![3, 10]);
    }
}

#[test]
fn segments_at_the_root() {
    let (_tmp, dirs) = backends();
    for dir in dirs {
        let mut st = DirStorage::segments(dir.clone(), "");
        st.create(1).unwrap();
        st.write(1, 0, b"x").unwrap();
        st.sync(1).unwrap();
        dir.atomic_write("other.txt", b"-").unwrap();
        assert_eq!(listed(&mut st), vec![1]);
        assert!(dir.exists("00000000000000000001.seg"));
    }
}

#[test]
fn single_file_storage() {
    let (_tmp, dirs) = backends();
    for dir in dirs {
        let mut st = DirStorage::single(dir.clone(), "logs/app.log");
        assert!(listed(&mut st).is_empty());
        assert_eq!(st.len(0).unwrap_err().kind(), StorageErrorKind::NotFound);
        st.create(0).unwrap();
        assert!(dir.exists("logs/app.log"));
        assert_eq!(listed(&mut st), vec![0]);
        st.write(0, 0, b"rec").unwrap();
        st.sync(0).unwrap();
        assert_eq!(read_vec(&mut st, 0), b"rec");
        // Only segment 0 exists.
        assert_eq!(st.create(1).unwrap_err().kind(), StorageErrorKind::NotFound);
        assert_eq!(st.len(1).unwrap_err().kind(), StorageErrorKind::NotFound);
        assert!(!dir.exists("logs/00000000000000000001.seg"));
        st.truncate(0, 1).unwrap();
        assert_eq!(read_vec(&mut st, 0), b"r");
        st.remove(0).unwrap();
        assert!(listed(&mut st).is_empty());
        assert!(dir.exists("logs"));
    }
}

#[test]
fn storage_over_directory_without_handles_is_unsupported() {
    struct NoHandles(MemoryDirectory);
    impl Directory for NoHandles {
        fn create_file(&self, p: &str) -> PersistenceResult<Box<dyn Write + Send>> {
            self.0.create_file(p)
        }
        fn open_file(&self, p: &str) -> PersistenceResult<Box<dyn Read + Send>> {
            self.0.open_file(p)
        }
        fn exists(&self, p: &str) -> bool {
            self.0.exists(p)
        }
        fn delete(&self, p: &str) -> PersistenceResult<()> {
            self.0.delete(p)
        }
        fn atomic_rename(&self, f: &str, t: &str) -> PersistenceResult<()> {
            self.0.atomic_rename(f, t)
        }
        fn create_dir_all(&self, p: &str) -> PersistenceResult<()> {
            self.0.create_dir_all(p)
        }
        fn list_dir(&self, p: &str) -> PersistenceResult<Vec<String>> {
            self.0.list_dir(p)
        }
        fn append_file(&self, p: &str) -> PersistenceResult<Box<dyn Write + Send>> {
            self.0.append_file(p)
        }
        fn atomic_write(&self, p: &str, d: &[u8]) -> PersistenceResult<()> {
            self.0.atomic_write(p, d)
        }
        fn file_path(&self, _: &str) -> Option<PathBuf> {
            None
        }
    }
    let mut st = DirStorage::segments(Arc::new(NoHandles(MemoryDirectory::new())), "wal");
    let e = st.create(1).unwrap_err();
    assert!(matches!(e, PersistenceError::NotSupported(_)));
    assert_eq!(e.kind(), StorageErrorKind::Unsupported);
}

fn wal_round_trip(dir: Arc<dyn Directory>) -> PersistenceResult<()> {
    let mut cfg = WalConfig::new(7);
    cfg.segment_limit = 256;
    let mut w = WalWriter::new(
        DirStorage::segments(dir.clone(), "wal"),
        vec![0u8; 4096],
        cfg,
    );
    let payload = |i: u64| format!("entry number {i}").into_bytes();
    for i in 1..=40 {
        assert_eq!(w.append(&payload(i))?, i);
        if i % 7 == 0 {
            w.sync()?;
        }
    }
    w.sync()?;
    drop(w);
    let segs = dir.list_dir("wal")?;
    assert!(segs.len() > 2, "small limit should rotate: {segs:?}");

    let replay = |dir: &Arc<dyn Directory>| -> PersistenceResult<Vec<(u64, Vec<u8>)>> {
        let mut got = Vec::new();
        let report = WalReader::new(DirStorage::segments(dir.clone(), "wal"), vec![0u8; 4096])
            .replay(ReadMode::Strict, |id, p| {
                got.push((id, p.to_vec()));
                Ok(())
            })?;
        assert_eq!(report.entries, got.len() as u64);
        assert_eq!(report.torn_at, None);
        Ok(got)
    };
    let got = replay(&dir)?;
    assert_eq!(got.len(), 40);
    for (i, (id, p)) in got.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(*p, payload(*id));
    }

    // Reopen and continue.
    let mut w = WalWriter::open(
        DirStorage::segments(dir.clone(), "wal"),
        vec![0u8; 64],
        WalConfig::new(99),
    )?;
    assert_eq!(w.log_id(), 7);
    assert_eq!(w.next_id()?, 41);
    w.append(b"after reopen")?;
    w.sync()?;
    drop(w);
    let got = replay(&dir)?;
    assert_eq!(got.len(), 41);
    assert_eq!(got[40], (41, b"after reopen".to_vec()));
    Ok(())
}

#[test]
fn wal_round_trip_on_fs() -> PersistenceResult<()> {
    let tmp = tempfile::tempdir().unwrap();
    wal_round_trip(Arc::new(FsDirectory::new(tmp.path())?))?;
    // The files are where the layout says.
    assert!(tmp
        .path()
        .join("wal")
        .join("00000000000000000001.seg")
        .is_file());
    Ok(())
}

#[test]
fn wal_round_trip_in_memory() -> PersistenceResult<()> {
    wal_round_trip(Arc::new(MemoryDirectory::new()))
}

#[test]
fn wal_simple_example() -> PersistenceResult<()> {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut w = WalWriter::new(
        DirStorage::segments(dir.clone(), "wal"),
        vec![0u8; 4096],
        WalConfig::new(7),
    );
    w.append(b"a")?;
    w.append(b"bc")?;
    w.sync()?;
    let mut seen = Vec::new();
    WalReader::new(DirStorage::segments(dir, "wal"), vec![0u8; 4096]).replay(
        ReadMode::Strict,
        |id, p| {
            seen.push((id, p.to_vec()));
            Ok(())
        },
    )?;
    assert_eq!(seen, vec![(1, b"a".to_vec()), (2, b"bc".to_vec())]);
    Ok(())
}

#[test]
fn wal_torn_tail_is_reported_through_the_adapter() -> PersistenceResult<()> {
    let (_tmp, dirs) = backends();
    for dir in dirs {
        let mut w = WalWriter::new(
            DirStorage::segments(dir.clone(), "wal"),
            vec![0u8; 4096],
            WalConfig::new(1),
        );
        w.append(b"first entry")?;
        w.append(b"second entry")?;
        w.sync()?;
        drop(w);
        // Tear the end of the final segment.
        let mut h = dir.open_handle("wal/00000000000000000001.seg", false)?;
        let len = h.len()?;
        h.set_len(len - 3)?;
        drop(h);
        let mut r = WalReader::new(DirStorage::segments(dir.clone(), "wal"), vec![0u8; 4096]);
        let e: PersistenceError = r
            .replay(ReadMode::Strict, |_, _| Ok(()))
            .unwrap_err()
            .into();
        assert!(
            matches!(e, PersistenceError::TornTail { segment: 1, .. }),
            "{e:?}"
        );
        let mut n = 0;
        let report = r.replay(ReadMode::BestEffort, |_, _| {
            n += 1;
            Ok(())
        })?;
        assert_eq!(n, 1);
        assert!(report.torn_at.is_some());
    }
    Ok(())
}

#[test]
fn record_log_round_trip_through_single() -> PersistenceResult<()> {
    let (_tmp, dirs) = backends();
    for dir in dirs {
        let mut w = RecordLogWriter::new(
            DirStorage::single(dir.clone(), "state/records.log"),
            vec![0u8; 1024],
            5,
        );
        w.append(b"one")?;
        w.append(b"two")?;
        w.sync()?;
        drop(w);
        let mut w = RecordLogWriter::open(
            DirStorage::single(dir.clone(), "state/records.log"),
            vec![0u8; 1024],
            5,
        )?;
        assert_eq!(w.next_index()?, 3);
        w.append(b"three")?;
        w.sync()?;
        let mut got = Vec::new();
        RecordLogReader::new(
            DirStorage::single(dir.clone(), "state/records.log"),
            vec![0u8; 1024],
        )
        .read(ReadMode::Strict, |i, p| {
            got.push((i, p.to_vec()));
            Ok(())
        })?;
        assert_eq!(
            got,
            vec![
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (3, b"three".to_vec())
            ]
        );
    }
    Ok(())
}

#[test]
fn first_sync_makes_names_durable_once() {
    let inner: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let fail = FailingDirectory::new(inner);
    let mut st = DirStorage::segments(Arc::new(fail.clone()), "a/wal");
    st.create(1).unwrap();
    st.write(1, 0, b"x").unwrap();
    assert_eq!(fail.counts(Op::SyncDir), 0);
    st.sync(1).unwrap();
    // "a/wal" holds the file; "a" and "" hold the two newly created directories.
    assert_eq!(fail.counts(Op::Sync), 1);
    assert_eq!(fail.counts(Op::SyncDir), 3);
    st.sync(1).unwrap();
    assert_eq!(fail.counts(Op::Sync), 2);
    assert_eq!(fail.counts(Op::SyncDir), 3);
    // A segment in an existing directory: only that directory.
    st.create(2).unwrap();
    st.sync(2).unwrap();
    assert_eq!(fail.counts(Op::SyncDir), 4);
    // Removal syncs the parent.
    st.remove(1).unwrap();
    assert_eq!(fail.counts(Op::Delete), 1);
    assert_eq!(fail.counts(Op::SyncDir), 5);
}

#[test]
fn failed_directory_sync_fails_the_segment_sync() {
    let fail = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let mut st = DirStorage::segments(Arc::new(fail.clone()), "wal");
    st.create(1).unwrap();
    fail.fail_next(Op::SyncDir, FailKind::Other);
    let e = st.sync(1).unwrap_err();
    assert_eq!(e.kind(), StorageErrorKind::Other);
    // The name is still not known durable, so the next sync syncs the directories.
    let before = fail.counts(Op::SyncDir);
    st.sync(1).unwrap();
    assert!(fail.counts(Op::SyncDir) > before);
}

#[test]
fn wal_writer_is_poisoned_by_a_failed_sync() -> PersistenceResult<()> {
    let fail = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let mut w = WalWriter::new(
        DirStorage::segments(Arc::new(fail.clone()), "wal"),
        vec![0u8; 4096],
        WalConfig::new(3),
    );
    w.append(b"durable")?;
    w.sync()?;
    w.append(b"lost")?;
    fail.fail_next(Op::Sync, FailKind::StorageFull);
    let e: PersistenceError = w.sync().unwrap_err().into();
    match &e {
        PersistenceError::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::StorageFull),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(e.kind(), StorageErrorKind::NoSpace);
    assert!(w.is_poisoned());
    let e: PersistenceError = w.append(b"more").unwrap_err().into();
    assert!(matches!(e, PersistenceError::Poisoned));
    Ok(())
}

/// Counts `open_handle` calls to show that the adapter keeps handles open.
struct CountingDir {
    inner: MemoryDirectory,
    opens: AtomicU64,
}

impl Directory for CountingDir {
    fn create_file(&self, p: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.inner.create_file(p)
    }
    fn open_file(&self, p: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        self.inner.open_file(p)
    }
    fn exists(&self, p: &str) -> bool {
        self.inner.exists(p)
    }
    fn delete(&self, p: &str) -> PersistenceResult<()> {
        self.inner.delete(p)
    }
    fn atomic_rename(&self, f: &str, t: &str) -> PersistenceResult<()> {
        self.inner.atomic_rename(f, t)
    }
    fn create_dir_all(&self, p: &str) -> PersistenceResult<()> {
        self.inner.create_dir_all(p)
    }
    fn list_dir(&self, p: &str) -> PersistenceResult<Vec<String>> {
        self.inner.list_dir(p)
    }
    fn append_file(&self, p: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.inner.append_file(p)
    }
    fn atomic_write(&self, p: &str, d: &[u8]) -> PersistenceResult<()> {
        self.inner.atomic_write(p, d)
    }
    fn file_path(&self, _: &str) -> Option<PathBuf> {
        None
    }
    fn open_handle(&self, p: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.inner.open_handle(p, create)
    }
    fn sync_file(&self, p: &str) -> PersistenceResult<()> {
        self.inner.sync_file(p)
    }
    fn sync_dir(&self, p: &str) -> PersistenceResult<()> {
        self.inner.sync_dir(p)
    }
}

#[test]
fn handles_are_cached() {
    let dir = Arc::new(CountingDir {
        inner: MemoryDirectory::new(),
        opens: AtomicU64::new(0),
    });
    let mut st = DirStorage::segments(dir.clone(), "wal");
    st.create(1).unwrap();
    st.create(2).unwrap();
    assert_eq!(dir.opens.load(Ordering::Relaxed), 2);
    let mut buf = [0u8; 1];
    for i in 0..100u64 {
        let seg = 1 + i % 2;
        st.write(seg, i / 2, b"z").unwrap();
        st.read(seg, 0, &mut buf).unwrap();
        st.len(seg).unwrap();
        st.sync(seg).unwrap();
    }
    assert_eq!(dir.opens.load(Ordering::Relaxed), 2);
    // A fresh storage opens on first use, then reuses.
    let mut st2 = DirStorage::segments(dir.clone(), "wal");
    st2.len(1).unwrap();
    st2.len(1).unwrap();
    assert_eq!(dir.opens.load(Ordering::Relaxed), 3);
}

#[test]
fn storage_is_send() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut w = WalWriter::new(
        DirStorage::segments(dir.clone(), "wal"),
        vec![0u8; 4096],
        WalConfig::new(7),
    );
    let handle = std::thread::spawn(move || {
        w.append(b"from a thread").unwrap();
        w.sync().unwrap();
    });
    handle.join().unwrap();
    assert_eq!(
        dir.list_dir("wal").unwrap(),
        vec!["00000000000000000001.seg"]
    );
}
