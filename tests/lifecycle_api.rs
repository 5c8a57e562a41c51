//! The original-API flows of the lifecycle: the checkpoint manager, deterministic bytes,
//! publish refusing a checkpoint ahead of the WAL, `keep(n)`, truncating everything and
//! resuming, record-log replay helpers, and the single-writer lock.

mod support;

use std::sync::Arc;

use durability::checkpoint::CheckpointFile;
use durability::checkpointing::{CheckpointManager, CheckpointSegment, CheckpointState};
use durability::core::ReadMode;
use durability::publish::CheckpointPublisher;
use durability::recordlog::RecordLogWriter;
use durability::recover::RecoveryManager;
use durability::replay::{replay_postcard, replay_postcard_since};
use durability::storage::FsDirectory;
use durability::walog::{WalEntry, WalWriter};
use durability::{Directory, PersistenceError};
use support::*;

fn seg(segment_id: u64, doc_count: u32, deleted_docs: Vec<u32>) -> CheckpointSegment {
    CheckpointSegment {
        segment_id,
        doc_count,
        deleted_docs,
    }
}

fn state() -> CheckpointState {
    CheckpointState {
        segments: vec![
            seg(2, 50, vec![1, 4, 9]),
            seg(5, 7, vec![]),
            seg(8, 100, vec![0]),
        ],
    }
}

/// The same state as [`state`], listed in another order, with a duplicate delete.
fn state_scrambled() -> CheckpointState {
    CheckpointState {
        segments: vec![
            seg(8, 100, vec![0]),
            seg(5, 7, vec![]),
            seg(2, 50, vec![9, 1, 4, 1]),
        ],
    }
}

fn fs_dir() -> (tempfile::TempDir, Arc<dyn Directory>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    (tmp, dir)
}

#[test]
fn checkpoint_manager_round_trip() {
    let (_tmp, fs) = fs_dir();
    for dir in [mem_dir(), fs] {
        let m = CheckpointManager::new(dir.clone());
        m.write_checkpoint(&state_scrambled(), 42, "ckpt.bin")
            .unwrap();
        assert_eq!(m.read_checkpoint("ckpt.bin").unwrap(), (state(), 42));
        m.write_checkpoint_durable(&state(), 43, "durable.bin")
            .unwrap();
        assert_eq!(m.read_checkpoint("durable.bin").unwrap(), (state(), 43));
        // Overwriting replaces the whole checkpoint.
        m.write_checkpoint_durable(&CheckpointState::default(), 44, "ckpt.bin")
            .unwrap();
        assert_eq!(
            m.read_checkpoint("ckpt.bin").unwrap(),
            (CheckpointState::default(), 44)
        );
        let missing = m.read_checkpoint("missing.bin").unwrap_err();
        assert!(missing.is_not_found(), "{missing:?}");
        // No temporary files are left behind.
        let mut names = dir.list_dir("").unwrap();
        names.retain(|n| n.ends_with(".tmp"));
        assert_eq!(names, Vec::<String>::new());
    }
}

#[test]
fn equal_states_give_equal_bytes() {
    let dir = mem_dir();
    let m = CheckpointManager::new(dir.clone());
    m.write_checkpoint(&state(), 9, "a.bin").unwrap();
    m.write_checkpoint(&state_scrambled(), 9, "b.bin").unwrap();
    m.write_checkpoint_durable(&state_scrambled(), 9, "c.bin")
        .unwrap();
    let a = read_all(&dir, "a.bin");
    assert_eq!(a, read_all(&dir, "b.bin"));
    assert_eq!(a, read_all(&dir, "c.bin"));
    // Writing the same state again gives the same bytes.
    m.write_checkpoint(&state(), 9, "a.bin").unwrap();
    assert_eq!(a, read_all(&dir, "a.bin"));
    // A different id or state gives different bytes.
    m.write_checkpoint(&state(), 10, "d.bin").unwrap();
    assert_ne!(a, read_all(&dir, "d.bin"));

    // Serde states with ordered maps: insertion order does not matter.
    let file = CheckpointFile::new(dir.clone());
    let fwd: Kv = (0..20).map(|k| (k, k as u32 * 3)).collect();
    let rev: Kv = (0..20).rev().map(|k| (k, k as u32 * 3)).collect();
    file.write_postcard("f.bin", 1, &fwd).unwrap();
    file.write_postcard("r.bin", 1, &rev).unwrap();
    assert_eq!(read_all(&dir, "f.bin"), read_all(&dir, "r.bin"));

    // Recovered states (hash sets inside) normalize to equal checkpoint states.
    let recovered = |order: &[(u64, u32)]| {
        let dir = mem_dir();
        let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(1 << 20));
        for s in [3, 1, 2] {
            w.append(&WalEntry::AddSegment {
                segment_id: s,
                doc_count: 64,
            })
            .unwrap();
        }
        for &d in order {
            w.append(&WalEntry::DeleteDocuments { deletes: vec![d] })
                .unwrap();
        }
        drop(w);
        RecoveryManager::to_checkpoint_state(&RecoveryManager::new(dir).recover(None).unwrap())
    };
    let deletes: Vec<(u64, u32)> = (0..40).map(|i| (1 + i % 3, (i * 7 % 64) as u32)).collect();
    let mut reversed = deletes.clone();
    reversed.reverse();
    let (x, y) = (recovered(&deletes), recovered(&reversed));
    assert_eq!(x, y);
    m.write_checkpoint(&x, 5, "x.bin").unwrap();
    m.write_checkpoint(&y, 5, "y.bin").unwrap();
    assert_eq!(read_all(&dir, "x.bin"), read_all(&dir, "y.bin"));

    // Published checkpoints of equal states (same log) are byte-identical too.
    // `publish_checkpoint` normalizes a `CheckpointState`; the generic `publish` encodes
    // any serde state as given, so it gets states that are equal as values.
    let publish_to = |st: CheckpointState, kv: Kv| {
        let dir = mem_dir();
        let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(1 << 20));
        w.append(&WalEntry::AddSegment {
            segment_id: 1,
            doc_count: 1,
        })
        .unwrap();
        CheckpointPublisher::new(dir.clone())
            .publish_checkpoint(&mut w, &st, 1, "p.bin")
            .unwrap();
        let r = CheckpointPublisher::new(dir.clone())
            .publish(&mut w, &kv, 1, None)
            .unwrap();
        let r2 = CheckpointPublisher::new(dir.clone())
            .publish(
                &mut w,
                &RecoveryManager::to_checkpoint_state(
                    &RecoveryManager::new(dir.clone()).recover_latest().unwrap(),
                ),
                2,
                None,
            )
            .unwrap();
        (
            read_all(&dir, "p.bin"),
            read_all(&dir, &r.checkpoint_path),
            read_all(&dir, &r2.checkpoint_path),
        )
    };
    assert_eq!(
        publish_to(state(), fwd.clone()),
        publish_to(state_scrambled(), rev.clone())
    );
}

#[test]
fn publish_refuses_a_checkpoint_beyond_the_assigned_ids() {
    let dir = mem_dir();
    let publisher = CheckpointPublisher::new(dir.clone());
    let mut w = WalWriter::<WalEntry>::new(dir.clone());
    let ahead = |r: Result<_, PersistenceError>, last: u64, next: u64| {
        assert!(
            matches!(
                r,
                Err(PersistenceError::CheckpointAhead {
                    checkpoint_last_id,
                    wal_next_id,
                }) if checkpoint_last_id == last && wal_next_id == next
            ),
            "{r:?}"
        );
    };
    // Nothing assigned yet.
    ahead(
        publisher.publish_checkpoint(&mut w, &state(), 1, "c.bin"),
        1,
        1,
    );
    ahead(publisher.publish(&mut w, &state(), 1, None), 1, 1);
    for i in 1..=3 {
        w.append(&WalEntry::AddSegment {
            segment_id: i,
            doc_count: 1,
        })
        .unwrap();
    }
    ahead(
        publisher.publish_checkpoint(&mut w, &state(), 4, "c.bin"),
        4,
        4,
    );
    let marker = WalEntry::StartMerge {
        transaction_id: 0,
        segment_ids: vec![],
    };
    ahead(publisher.publish(&mut w, &state(), 9, Some(&marker)), 9, 4);
    // Nothing was written: no checkpoint, no marker, ids unchanged.
    assert!(!dir.exists("c.bin"));
    assert!(list(&dir, "checkpoints").is_empty());
    assert_eq!(w.next_entry_id().unwrap(), 4);
    assert!(!w.is_poisoned());
    // A resumed writer knows what it holds.
    drop(w);
    let mut w = WalWriter::<WalEntry>::resume(dir.clone()).unwrap();
    ahead(
        publisher.publish_checkpoint(&mut w, &state(), 4, "c.bin"),
        4,
        4,
    );
    publisher
        .publish_checkpoint(&mut w, &state(), 3, "c.bin")
        .unwrap();
    drop(w);
    assert_eq!(wal_entries::<WalEntry>(&dir).len(), 4);
}

/// Invariant: whatever `publish` returns, the directory stays recoverable to the state
/// of every appended entry. A checkpoint older than what the WAL still holds (its
/// suffix already truncated by a newer checkpoint) must not be accepted as the newest,
/// nor may its `keep` pass delete the checkpoint that recovery needs.
#[test]
fn publish_of_a_checkpoint_the_wal_no_longer_reaches_keeps_the_store_recoverable() {
    // Store model.
    let dir = mem_dir();
    let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(100));
    let mut log = Vec::new();
    for i in 1..=30u64 {
        let e = Ev::Add(i % 4, i as u32);
        w.append(&e).unwrap();
        log.push((i, e));
    }
    let publisher = CheckpointPublisher::new(dir.clone()).keep(1);
    let r = publisher
        .publish(&mut w, &kv_model(&log, 30), 30, None)
        .unwrap();
    assert!(r.deleted_wal_segments > 0);
    let refused = publisher.publish(&mut w, &kv_model(&log, 5), 5, None);
    assert!(
        matches!(
            refused,
            Err(durability::PersistenceError::WalGap { needed: 6, .. })
        ),
        "{refused:?}"
    );
    drop(w);
    for mode in MODES {
        let r = recover_kv(&dir, mode)
            .unwrap_or_else(|e| panic!("store model, {mode:?}: unrecoverable after publish: {e}"));
        assert_eq!(r.state, kv_model(&log, 30));
    }

    // Path model.
    let dir = mem_dir();
    let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(100));
    let mut log = Vec::new();
    for i in 1..=30u64 {
        let e = WalEntry::AddSegment {
            segment_id: i,
            doc_count: 1,
        };
        w.append(&e).unwrap();
        log.push((i, e));
    }
    let publisher = CheckpointPublisher::new(dir.clone()).keep(1);
    let st = |last| SegModel::of(&log, last).to_checkpoint_state();
    publisher
        .publish_checkpoint(&mut w, &st(30), 30, "a.bin")
        .unwrap();
    let refused = publisher.publish_checkpoint(&mut w, &st(5), 5, "b.bin");
    assert!(
        matches!(
            refused,
            Err(durability::PersistenceError::WalGap { needed: 6, .. })
        ),
        "{refused:?}"
    );
    drop(w);
    let mgr = RecoveryManager::new(dir);
    for r in [mgr.recover_latest(), mgr.recover_latest_best_effort()] {
        let r = r.unwrap_or_else(|e| panic!("path model: unrecoverable after publish: {e}"));
        assert_eq!(SegModel::from_recovered(&r), SegModel::of(&log, 30));
    }
}

#[test]
fn keep_n_collects_older_checkpoints() {
    // Path model: the publisher deletes the checkpoints it wrote before the newest n.
    for keep in [0usize, 1, 2, 3] {
        let dir = mem_dir();
        dir.create_dir_all("ckpt").unwrap();
        let publisher = CheckpointPublisher::new(dir.clone()).keep(keep);
        let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(128));
        let kept = keep.max(1);
        let mut log = Vec::new();
        for k in 1..=5u64 {
            for _ in 0..4 {
                let e = WalEntry::AddSegment {
                    segment_id: k,
                    doc_count: k as u32,
                };
                let id = w.append(&e).unwrap();
                log.push((id, e));
            }
            let last = log.len() as u64;
            let st = SegModel::of(&log, last).to_checkpoint_state();
            let r = publisher
                .publish_checkpoint(&mut w, &st, last, &format!("ckpt/{k}.bin"))
                .unwrap();
            log.push((
                r.wal_checkpoint_entry_id,
                WalEntry::Checkpoint {
                    checkpoint_path: format!("ckpt/{k}.bin"),
                    last_entry_id: last,
                },
            ));
            assert_eq!(
                r.deleted_checkpoints,
                usize::from(k as usize > kept),
                "keep {keep}"
            );
            let expect: Vec<String> = (1..=k)
                .filter(|&j| j + kept as u64 > k)
                .map(|j| format!("{j}.bin"))
                .collect();
            assert_eq!(list(&dir, "ckpt"), expect, "keep {keep} after {k}");
        }
        drop(w);
        let r = RecoveryManager::new(dir).recover_latest().unwrap();
        assert_eq!(r.report.checkpoint.as_ref().unwrap().path, "ckpt/5.bin");
        assert_eq!(SegModel::from_recovered(&r), SegModel::of(&log, u64::MAX));
    }
    // Store model: the newest n numbered checkpoints stay.
    for keep in [0usize, 1, 2, 3] {
        let dir = mem_dir();
        let publisher = CheckpointPublisher::new(dir.clone()).keep(keep);
        let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(128));
        let kept = keep.max(1) as u64;
        let mut log = Vec::new();
        for k in 1..=5u64 {
            for _ in 0..4 {
                let e = Ev::Add(k, 1);
                let id = w.append(&e).unwrap();
                log.push((id, e));
            }
            let last = log.len() as u64;
            let r = publisher
                .publish(&mut w, &kv_model(&log, last), last, None)
                .unwrap();
            assert_eq!(r.checkpoint_path, format!("checkpoints/{k:020}.seg"));
            assert_eq!(r.deleted_checkpoints, usize::from(k > kept), "keep {keep}");
            let expect: Vec<String> = (1..=k)
                .filter(|&j| j + kept > k)
                .map(|j| format!("{j:020}.seg"))
                .collect();
            assert_eq!(list(&dir, "checkpoints"), expect, "keep {keep} after {k}");
        }
        drop(w);
        let r = recover_kv(&dir, ReadMode::Strict).unwrap();
        assert_eq!(r.state, kv_model(&log, u64::MAX));
        assert_eq!(r.recovery.report.checkpoint.unwrap().last_entry_id, 20);
    }
}

#[test]
fn truncating_everything_then_resuming_continues_the_ids() {
    // Store model without a marker: the checkpoint covers every entry.
    let dir = mem_dir();
    let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(100));
    let mut log = Vec::new();
    for i in 1..=20u64 {
        let e = Ev::Add(i % 3, i as u32);
        assert_eq!(w.append(&e).unwrap(), i);
        log.push((i, e));
    }
    let r = CheckpointPublisher::new(dir.clone())
        .publish(&mut w, &kv_model(&log, 20), 20, None)
        .unwrap();
    assert!(r.deleted_wal_segments >= 2, "{r:?}");
    assert_eq!(
        wal_segments(&dir).len(),
        1,
        "only the current segment stays"
    );
    drop(w);
    let mut w = WalWriter::<Ev>::new(dir.clone());
    assert_eq!(
        w.next_entry_id().unwrap(),
        21,
        "restarted instead of continuing"
    );
    drop(w);
    let mut w = WalWriter::<Ev>::resume(dir.clone()).unwrap();
    assert_eq!(
        w.next_entry_id().unwrap(),
        21,
        "restarted instead of continuing"
    );
    drop(w);
    let mut w = WalWriter::<Ev>::new(dir.clone());
    let e = Ev::Add(7, 7);
    assert_eq!(w.append(&e).unwrap(), 21);
    log.push((21, e));
    drop(w);
    let r = recover_kv(&dir, ReadMode::Strict).unwrap();
    assert_eq!(r.state, kv_model(&log, 21));
    assert_eq!(r.applied, vec![log[20].clone()]);
    assert_eq!(r.recovery.report.next_entry_id, 22);

    // Path model: the marker follows the checkpoint.
    let dir = mem_dir();
    let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(100));
    for i in 1..=20u64 {
        w.append(&WalEntry::AddSegment {
            segment_id: i,
            doc_count: 1,
        })
        .unwrap();
    }
    let mut model = SegModel::default();
    for i in 1..=20u64 {
        model.apply(&WalEntry::AddSegment {
            segment_id: i,
            doc_count: 1,
        });
    }
    let r = CheckpointPublisher::new(dir.clone())
        .publish_checkpoint(&mut w, &model.to_checkpoint_state(), 20, "c.bin")
        .unwrap();
    assert_eq!(r.wal_checkpoint_entry_id, 21);
    assert!(r.deleted_wal_segments >= 2, "{r:?}");
    drop(w);
    let mut w = WalWriter::<WalEntry>::resume(dir.clone()).unwrap();
    assert_eq!(w.next_entry_id().unwrap(), 22);
    drop(w);
    let r = RecoveryManager::new(dir).recover_latest().unwrap();
    assert_eq!(SegModel::from_recovered(&r), model);
    assert_eq!(r.report.next_entry_id, 22);
    assert_eq!(r.report.records_applied, 1); // the marker
}

#[test]
fn truncating_everything_behind_a_fresh_segment_keeps_the_ids() {
    // A torn tail makes the resumed writer start a new, empty segment; a checkpoint of
    // everything then removes every segment but that empty one. Its header alone
    // must carry the ids on.
    let (_tmp, dir) = fs_dir();
    let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(100));
    let mut log = Vec::new();
    for i in 1..=12u64 {
        let e = Ev::Add(i, i as u32);
        w.append(&e).unwrap();
        log.push((i, e));
    }
    w.flush_and_sync().unwrap();
    w.append(&Ev::Note(vec![1; 30])).unwrap(); // id 13, never synced
    drop(w);
    let last = wal_segments(&dir).pop().unwrap();
    let path = dir.file_path(&format!("wal/{last}")).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let mut w = WalWriter::<Ev>::resume(dir.clone()).unwrap();
    w.set_segment_size_limit_bytes(100);
    assert_eq!(w.next_entry_id().unwrap(), 13, "the torn entry is gone");
    let r = CheckpointPublisher::new(dir.clone())
        .publish(&mut w, &kv_model(&log, 12), 12, None)
        .unwrap();
    assert!(r.deleted_wal_segments >= 1, "{r:?}");
    assert_eq!(wal_segments(&dir).len(), 1);
    drop(w);
    let mut w = WalWriter::<Ev>::resume(dir.clone()).unwrap();
    assert_eq!(w.next_entry_id().unwrap(), 13);
    let e = Ev::Delete(3, 0);
    assert_eq!(w.append(&e).unwrap(), 13);
    log.push((13, e));
    w.flush_and_sync().unwrap();
    drop(w);
    for mode in MODES {
        let r = recover_kv(&dir, mode).unwrap();
        assert_eq!(r.state, kv_model(&log, 13));
        assert_eq!(r.recovery.report.checkpoint.unwrap().last_entry_id, 12);
        assert_eq!(r.applied, vec![log[12].clone()]);
        assert_eq!(r.recovery.report.next_entry_id, 14);
    }
}

#[test]
fn record_log_replay_helpers() {
    let dir = mem_dir();
    let records: Vec<(u32, String)> = (1..=6).map(|i| (i, format!("record {i}"))).collect();
    let mut w = RecordLogWriter::new(dir.clone(), "logs/r.log");
    for r in &records {
        w.append_postcard(r).unwrap();
    }
    w.flush_and_sync().unwrap();
    drop(w);

    let mut all = Vec::new();
    let n = replay_postcard::<(u32, String)>(dir.clone(), "logs/r.log", |r| {
        all.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!((n, &all), (6, &records));

    for skip in [0u64, 1, 4, 6, 10] {
        let mut got = Vec::new();
        let n = replay_postcard_since::<(u32, String)>(dir.clone(), "logs/r.log", skip, |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
        let expect: Vec<_> = records.iter().skip(skip as usize).cloned().collect();
        assert_eq!(n, expect.len() as u64, "skip {skip}");
        assert_eq!(got, expect, "skip {skip}");
    }

    // The checkpoint + log-suffix pattern: a checkpoint of the first 4 records.
    CheckpointFile::new(dir.clone())
        .write_postcard("logs/r.ckpt", 4, &records[..4].to_vec())
        .unwrap();
    let (covered, mut state): (u64, Vec<(u32, String)>) = CheckpointFile::new(dir.clone())
        .read_postcard("logs/r.ckpt")
        .unwrap();
    replay_postcard_since(dir.clone(), "logs/r.log", covered, |r| {
        state.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(state, records);

    // A missing log is empty.
    assert_eq!(
        replay_postcard::<u32>(dir.clone(), "logs/missing.log", |_| panic!("no records")).unwrap(),
        0
    );
    // Callback errors stop the replay and come back unchanged.
    let mut seen = 0;
    let err = replay_postcard::<(u32, String)>(dir.clone(), "logs/r.log", |_| {
        seen += 1;
        if seen == 2 {
            Err(PersistenceError::InvalidState("stop".into()))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(matches!(err, PersistenceError::InvalidState(ref m) if m == "stop"));
    assert_eq!(seen, 2);
    // Records of another type are a decode error.
    let err = replay_postcard::<(String, String, String)>(dir.clone(), "logs/r.log", |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, PersistenceError::Decode(_)), "{err:?}");

    // A torn tail ends the log (best-effort).
    let mut bytes = read_all(&dir, "logs/r.log");
    bytes.truncate(bytes.len() - 2);
    write_all(&dir, "logs/r.log", &bytes);
    let mut got = Vec::new();
    let n = replay_postcard::<(u32, String)>(dir.clone(), "logs/r.log", |r| {
        got.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 5);
    assert_eq!(got, records[..5].to_vec());
}

#[test]
fn a_second_writer_on_the_same_directory_is_locked_out() {
    let (_tmp, fs) = fs_dir();
    for dir in [mem_dir(), fs] {
        let mut first = WalWriter::<u64>::new(dir.clone());
        assert_eq!(first.append(&1).unwrap(), 1);
        first.flush_and_sync().unwrap();

        let mut second = WalWriter::<u64>::new(dir.clone());
        let locked = |r: Result<u64, PersistenceError>| {
            assert!(matches!(r, Err(PersistenceError::Locked { .. })), "{r:?}");
        };
        locked(second.append(&2));
        locked(second.next_entry_id());
        assert!(matches!(
            WalWriter::<u64>::resume(dir.clone()),
            Err(PersistenceError::Locked { .. })
        ));
        // The publisher goes through the writer's lock too.
        let r = CheckpointPublisher::new(dir.clone()).publish(&mut second, &0u64, 0, None);
        assert!(matches!(r, Err(PersistenceError::Locked { .. })), "{r:?}");
        // The locked-out writer changed nothing; the first one carries on.
        assert_eq!(first.append(&2).unwrap(), 2);
        first.flush_and_sync().unwrap();
        drop(first);
        // Once the holder is gone, the same writer value can take over.
        assert_eq!(second.next_entry_id().unwrap(), 3);
        assert_eq!(second.append(&3).unwrap(), 3);
        second.flush_and_sync().unwrap();
        drop(second);
        let ids: Vec<(u64, u64)> = wal_entries(&dir);
        assert_eq!(ids, vec![(1, 1), (2, 2), (3, 3)]);
    }
}
