//! The WAL facade on real files and in memory: round trips, rotation, resume, limits.

use std::sync::Arc;

use durability::storage::{FsDirectory, MemoryDirectory};
use durability::walog::{WalEntry, WalReader, WalWriter};
use durability::{Directory, PersistenceError};

fn fs_dir() -> (tempfile::TempDir, Arc<dyn Directory>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    (tmp, dir)
}

fn entry(i: u64) -> WalEntry {
    match i % 3 {
        0 => WalEntry::AddSegment {
            segment_id: i,
            doc_count: i as u32,
        },
        1 => WalEntry::DeleteDocuments {
            deletes: (0..i % 17).map(|d| (i, d as u32)).collect(),
        },
        _ => WalEntry::Checkpoint {
            checkpoint_path: format!("ckpt/{i}"),
            last_entry_id: i,
        },
    }
}

#[test]
fn round_trip_with_rotation_on_files() {
    let (_tmp, dir) = fs_dir();
    let mut w = WalWriter::<WalEntry>::new(dir.clone());
    w.set_segment_size_limit_bytes(1024);
    for i in 1..=500 {
        assert_eq!(w.append(&entry(i)).unwrap(), i);
        if i % 50 == 0 {
            w.flush_and_sync().unwrap();
        }
    }
    w.flush_and_sync().unwrap();
    let segments = dir.list_dir("wal").unwrap();
    assert!(segments.len() > 10, "expected rotation, got {segments:?}");
    let records = WalReader::<WalEntry>::new(dir.clone()).replay().unwrap();
    assert_eq!(records.len(), 500);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.entry_id, i as u64 + 1);
        assert_eq!(r.payload, entry(i as u64 + 1));
    }
}

#[test]
fn new_on_existing_wal_continues_ids_and_destroys_nothing() {
    let (_tmp, dir) = fs_dir();
    {
        let mut w = WalWriter::<WalEntry>::new(dir.clone());
        for i in 1..=10 {
            w.append(&entry(i)).unwrap();
        }
        w.flush_and_sync().unwrap();
    }
    let mut w = WalWriter::<WalEntry>::new(dir.clone());
    assert_eq!(w.append(&entry(11)).unwrap(), 11);
    w.flush_and_sync().unwrap();
    // One writer at a time: a second one is refused while the first lives.
    assert!(matches!(
        WalWriter::<WalEntry>::resume(dir.clone()),
        Err(PersistenceError::Locked { .. })
    ));
    drop(w);
    let mut w = WalWriter::<WalEntry>::resume(dir.clone()).unwrap();
    assert_eq!(w.last_entry_id().unwrap(), Some(11));
    assert_eq!(w.append(&entry(12)).unwrap(), 12);
    w.flush().unwrap();
    let ids: Vec<u64> = WalReader::<WalEntry>::new(dir)
        .replay()
        .unwrap()
        .iter()
        .map(|r| r.entry_id)
        .collect();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
}

#[test]
fn entry_larger_than_segment_limit_gets_its_own_segment() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut w = WalWriter::<Vec<u8>>::new(dir.clone());
    w.set_segment_size_limit_bytes(256);
    w.append(&vec![1u8; 10]).unwrap();
    w.append(&vec![2u8; 1000]).unwrap();
    w.append(&vec![3u8; 10]).unwrap();
    w.flush().unwrap();
    assert_eq!(dir.list_dir("wal").unwrap().len(), 3);
    let r = WalReader::<Vec<u8>>::new(dir).replay().unwrap();
    assert_eq!(
        r.iter().map(|r| r.payload.len()).collect::<Vec<_>>(),
        vec![10, 1000, 10]
    );
}

#[test]
fn oversized_entry_is_rejected_before_anything_is_written() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut w = WalWriter::<WalEntry>::new(dir.clone());
    w.append_bytes(b"ok").unwrap();
    let huge = vec![0u8; durability::walog::MAX_ENTRY_BYTES as usize + 1];
    match w.append_bytes(&huge) {
        Err(PersistenceError::EntryTooLarge { len, .. }) => assert_eq!(len, huge.len() as u64),
        other => panic!("expected EntryTooLarge, got {other:?}"),
    }
    assert!(!w.is_poisoned());
    assert_eq!(w.append_bytes(b"still fine").unwrap(), 2);
    w.flush().unwrap();
    let mut seen = Vec::new();
    WalReader::<()>::new(dir)
        .replay_bytes(durability::core::ReadMode::Strict, |id, b| {
            seen.push((id, b.to_vec()));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, vec![(1, b"ok".to_vec()), (2, b"still fine".to_vec())]);
}

#[test]
fn writers_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<WalWriter<WalEntry>>();
    assert_send::<durability::recordlog::RecordLogWriter>();
}

#[test]
fn torn_tail_on_disk_strict_errors_best_effort_cuts_resume_continues() {
    let (tmp, dir) = fs_dir();
    let mut w = WalWriter::<WalEntry>::new(dir.clone());
    for i in 1..=5 {
        w.append(&entry(i)).unwrap();
    }
    w.flush_and_sync().unwrap();
    w.append(&entry(6)).unwrap();
    drop(w);
    let seg = dir.list_dir("wal").unwrap().pop().unwrap();
    let path = tmp.path().join("wal").join(seg);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();

    match WalReader::<WalEntry>::new(dir.clone()).replay() {
        Err(PersistenceError::TornTail { .. }) => {}
        other => panic!("expected TornTail, got {other:?}"),
    }
    assert_eq!(
        WalReader::<WalEntry>::new(dir.clone())
            .replay_best_effort()
            .unwrap()
            .len(),
        5
    );
    let mut w = WalWriter::<WalEntry>::resume(dir.clone()).unwrap();
    assert_eq!(w.append(&entry(6)).unwrap(), 6);
    w.flush_and_sync().unwrap();
    let r = WalReader::<WalEntry>::new(dir).replay().unwrap();
    assert_eq!(r.len(), 6);
    assert_eq!(r[5].payload, entry(6));
}

#[test]
fn flipped_bit_in_synced_region_is_corruption_in_both_modes() {
    let (tmp, dir) = fs_dir();
    let mut w = WalWriter::<WalEntry>::new(dir.clone());
    for i in 1..=5 {
        w.append(&entry(i)).unwrap();
    }
    w.flush_and_sync().unwrap();
    w.append(&entry(6)).unwrap(); // lands behind the sync marker
    w.flush().unwrap();
    drop(w);
    let seg = dir.list_dir("wal").unwrap().pop().unwrap();
    let path = tmp.path().join("wal").join(seg);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[60] ^= 0x10; // inside the first frames, below the watermark
    std::fs::write(&path, &bytes).unwrap();
    for best_effort in [false, true] {
        let r = if best_effort {
            WalReader::<WalEntry>::new(dir.clone()).replay_best_effort()
        } else {
            WalReader::<WalEntry>::new(dir.clone()).replay()
        };
        assert!(
            matches!(r, Err(PersistenceError::Corrupt { .. })),
            "best_effort={best_effort}: {r:?}"
        );
    }
    assert!(matches!(
        WalWriter::<WalEntry>::resume(dir.clone()),
        Err(PersistenceError::Corrupt { .. })
    ));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a failed resume changes nothing"
    );
}
