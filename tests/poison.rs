//! Failures poison writers: nothing later is acknowledged, no id is handed out twice,
//! a failed sync is never retried into a success.

use std::sync::Arc;

use durability::core::ReadMode;
use durability::recordlog::RecordLogWriter;
use durability::storage::failing::{FailKind, Op};
use durability::storage::{FailingDirectory, MemoryDirectory};
use durability::walog::{WalReader, WalWriter};
use durability::{Directory, PersistenceError};

fn setup() -> (FailingDirectory, Arc<dyn Directory>) {
    let failing = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let dir: Arc<dyn Directory> = Arc::new(failing.clone());
    (failing, dir)
}

fn ids_on_disk(dir: &Arc<dyn Directory>) -> Vec<u64> {
    let mut ids = Vec::new();
    WalReader::<()>::new(dir.clone())
        .replay_bytes(ReadMode::BestEffort, |id, _| {
            ids.push(id);
            Ok(())
        })
        .unwrap();
    ids
}

fn assert_poisoned<T: std::fmt::Debug>(r: Result<T, PersistenceError>) {
    assert!(
        matches!(r, Err(PersistenceError::Poisoned)),
        "expected Poisoned, got {r:?}"
    );
}

#[test]
fn failed_write_poisons_the_wal_writer() {
    for kind in [FailKind::Other, FailKind::StorageFull] {
        let (failing, dir) = setup();
        let mut w = WalWriter::<u32>::new(dir.clone());
        for i in 1..=3 {
            assert_eq!(w.append(&i).unwrap(), i as u64);
        }
        w.flush_and_sync().unwrap();
        w.append(&4).unwrap();
        failing.fail_next(Op::Write, kind);
        assert!(matches!(w.flush(), Err(PersistenceError::Io(_))));
        assert!(w.is_poisoned());
        failing.clear();
        assert_poisoned(w.append(&5));
        assert_poisoned(w.flush());
        assert_poisoned(w.flush_and_sync());
        drop(w);
        // A new writer continues after what is on disk; the failed writer never
        // handed out an id after its failure.
        assert_eq!(ids_on_disk(&dir), vec![1, 2, 3]);
        let mut w = WalWriter::<u32>::resume(dir.clone()).unwrap();
        assert_eq!(w.append(&4).unwrap(), 4);
        w.flush_and_sync().unwrap();
        assert_eq!(ids_on_disk(&dir), vec![1, 2, 3, 4]);
    }
}

#[test]
fn failed_sync_is_never_retried_into_success() {
    let (failing, dir) = setup();
    let mut w = WalWriter::<u32>::new(dir.clone());
    w.append(&1).unwrap();
    w.flush_and_sync().unwrap();
    w.append(&2).unwrap();
    failing.fail_next(Op::Sync, FailKind::Other);
    assert!(matches!(w.flush_and_sync(), Err(PersistenceError::Io(_))));
    failing.clear();
    let syncs = failing.counts(Op::Sync);
    // The barrier failed: a later call must not report the same data durable.
    assert_poisoned(w.flush_and_sync());
    assert_poisoned(w.append(&3));
    assert_eq!(
        failing.counts(Op::Sync),
        syncs,
        "no second fsync was attempted"
    );
}

#[test]
fn failed_rotation_poisons() {
    let (failing, dir) = setup();
    let mut w = WalWriter::<Vec<u8>>::new(dir.clone());
    w.set_segment_size_limit_bytes(200);
    w.append(&vec![0u8; 100]).unwrap();
    failing.fail_next(Op::Create, FailKind::StorageFull);
    assert!(w.append(&vec![1u8; 100]).is_err());
    assert!(w.is_poisoned());
    failing.clear();
    assert_poisoned(w.append(&vec![2u8; 1]));
}

#[test]
fn failed_write_poisons_the_record_log_writer() {
    let (failing, dir) = setup();
    let mut w = RecordLogWriter::new(dir.clone(), "events.log");
    w.append_bytes(b"a").unwrap();
    failing.fail_next(Op::Write, FailKind::Other);
    assert!(w.flush().is_err());
    failing.clear();
    assert_poisoned(w.append_bytes(b"b"));
    assert_poisoned(w.flush_and_sync());
}

#[test]
fn replay_reads_in_large_chunks() {
    let (failing, dir) = setup();
    let mut w = WalWriter::<u64>::new(dir.clone());
    for i in 0..20_000u64 {
        w.append(&i).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    failing.reset_counts();
    assert_eq!(ids_on_disk(&dir).len(), 20_000);
    let reads = failing.counts(Op::Read);
    assert!(reads > 0, "reads are counted");
    assert!(reads < 20, "{reads} reads for 20,000 records");
}
