//! Damaged checkpoints are never read as a wrong state.
//!
//! - `CheckpointFile`: every single-bit flip, every truncation, trailing bytes, and a
//!   length field over `MAX_CHECKPOINT_LEN` are errors.
//! - Store model (`checkpoints/`): a damaged newest checkpoint makes recovery fall back to
//!   the previous one when the WAL still reaches back to it (and the result equals the
//!   model), and fail with `WalGap` when the WAL was truncated past it.
//! - Path model: a named checkpoint deleted or damaged after the WAL was truncated behind
//!   it is an error in every recovery flavour; best-effort never replays an incomplete WAL
//!   onto empty state.

mod support;

use std::sync::Arc;

use durability::checkpoint::{CheckpointFile, MAX_CHECKPOINT_LEN};
use durability::checkpointing::{CheckpointManager, CheckpointSegment, CheckpointState};
use durability::core::checkpoint::field;
use durability::core::ReadMode;
use durability::publish::CheckpointPublisher;
use durability::recover::RecoveryManager;
use durability::walog::{WalEntry, WalReader, WalWriter};
use durability::{Directory, PersistenceError};
use support::*;

fn sample_state() -> CheckpointState {
    CheckpointState {
        segments: vec![
            CheckpointSegment {
                segment_id: 3,
                doc_count: 1000,
                deleted_docs: vec![1, 7, 300],
            },
            CheckpointSegment {
                segment_id: 9,
                doc_count: 12,
                deleted_docs: vec![],
            },
        ],
    }
}

/// A damaged image must be refused as such: a checksum or format error, never a state.
fn assert_rejected(r: Result<(u64, CheckpointState), PersistenceError>, what: &str) {
    match r {
        Err(PersistenceError::CrcMismatch { .. } | PersistenceError::Format(_)) => {}
        Err(e) => panic!("{what}: unexpected kind of error {e:?}"),
        Ok(v) => panic!("{what}: a damaged checkpoint was read as {v:?}"),
    }
}

#[test]
fn every_bit_flip_of_a_checkpoint_file_is_an_error() {
    let dir = mem_dir();
    let file = CheckpointFile::new(dir.clone());
    file.write_postcard("c.bin", 17, &sample_state()).unwrap();
    let good = read_all(&dir, "c.bin");
    assert_eq!(
        file.read_postcard::<CheckpointState>("c.bin").unwrap(),
        (17, sample_state())
    );
    let mut flips = 0;
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            write_all(&dir, "flip.bin", &bad);
            assert_rejected(
                file.read_postcard::<CheckpointState>("flip.bin"),
                &format!("bit {bit} of byte {i}"),
            );
            assert!(file.read_bytes("flip.bin").is_err());
            flips += 1;
        }
    }
    assert_eq!(flips, good.len() * 8);
    // The manager reads through the same checks.
    write_all(&dir, "flip.bin", &{
        let mut b = good.clone();
        b[good.len() - 1] ^= 0x80;
        b
    });
    assert!(CheckpointManager::new(dir.clone())
        .read_checkpoint("flip.bin")
        .is_err());
}

#[test]
fn every_truncation_and_any_trailing_bytes_are_errors() {
    let dir = mem_dir();
    let file = CheckpointFile::new(dir.clone());
    file.write_postcard("c.bin", 5, &sample_state()).unwrap();
    let good = read_all(&dir, "c.bin");
    for len in 0..good.len() {
        write_all(&dir, "t.bin", &good[..len]);
        assert_rejected(
            file.read_postcard::<CheckpointState>("t.bin"),
            &format!("truncated to {len}"),
        );
    }
    for tail in [&[0u8][..], &[0; 7], &[1], &[0xff; 3], &[0xab; 100]] {
        let mut long = good.clone();
        long.extend_from_slice(tail);
        write_all(&dir, "t.bin", &long);
        assert_rejected(
            file.read_postcard::<CheckpointState>("t.bin"),
            &format!("{} trailing bytes", tail.len()),
        );
    }
}

#[test]
fn a_length_beyond_the_limit_is_an_error() {
    let dir = mem_dir();
    let file = CheckpointFile::new(dir.clone());
    file.write_postcard("c.bin", 5, &sample_state()).unwrap();
    let good = read_all(&dir, "c.bin");
    // The payload length field.
    let len = u32::from_le_bytes(good[field::LEN].try_into().unwrap());
    assert_eq!(len as usize, good.len() - field::HEADER_LEN);
    for huge in [MAX_CHECKPOINT_LEN + 1, u32::MAX, MAX_CHECKPOINT_LEN] {
        let mut bad = good.clone();
        bad[field::LEN].copy_from_slice(&huge.to_le_bytes());
        write_all(&dir, "big.bin", &bad);
        assert_rejected(
            file.read_postcard::<CheckpointState>("big.bin"),
            &format!("length field {huge}"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Store model.

struct Store {
    dir: Arc<dyn Directory>,
    log: Vec<(u64, Ev)>,
    /// `(path, last id)` of the two checkpoints, oldest first.
    checkpoints: Vec<(String, u64)>,
}

/// Two checkpoints (after entries 10 and 20), 25 entries, synced. With a large segment
/// limit the WAL keeps everything; with a small one it is truncated past the first
/// checkpoint.
fn store(limit: u64) -> Store {
    let dir = mem_dir();
    let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(limit));
    let publisher = CheckpointPublisher::new(dir.clone()).keep(3);
    let mut log = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 1..=25u64 {
        let e = if i % 3 == 0 {
            Ev::Delete(i % 4, (i * 7) as u32)
        } else {
            Ev::Add(i % 5, (i * 13) as u32)
        };
        assert_eq!(w.append(&e).unwrap(), i);
        log.push((i, e));
        if i == 10 || i == 20 {
            let r = publisher
                .publish(&mut w, &kv_model(&log, i), i, None)
                .unwrap();
            checkpoints.push((r.checkpoint_path, i));
        }
    }
    w.flush_and_sync().unwrap();
    Store {
        dir,
        log,
        checkpoints,
    }
}

fn first_wal_id(dir: &Arc<dyn Directory>) -> u64 {
    WalReader::<Ev>::new(dir.clone())
        .replay_bytes(ReadMode::Strict, |_, _| Ok(()))
        .unwrap()
        .first_id
        .unwrap()
}

/// Recovery must fall back to the first checkpoint (and equal the model), or report
/// `WalGap` if the WAL no longer reaches back to it.
fn check_fallback(s: &Store, what: &str) {
    let full = kv_model(&s.log, 25);
    let first = first_wal_id(&s.dir);
    for mode in MODES {
        match recover_kv(&s.dir, mode) {
            Ok(r) => {
                assert!(first <= 11, "{what}: recovered across a gap");
                assert_eq!(r.state, full, "{what} {mode:?}: wrong state");
                let used = r.recovery.report.checkpoint.unwrap();
                assert_eq!(
                    (used.path, used.last_entry_id),
                    s.checkpoints[0].clone(),
                    "{what}"
                );
                assert_eq!(r.applied, s.log[10..].to_vec(), "{what}");
                assert_eq!(r.recovery.report.next_entry_id, 26);
            }
            Err(PersistenceError::WalGap {
                needed,
                first_available,
            }) => {
                assert!(
                    first > 11,
                    "{what} {mode:?}: WalGap although the WAL reaches back"
                );
                assert_eq!((needed, first_available), (11, first), "{what}");
            }
            Err(e) => panic!("{what} {mode:?}: {e:?}"),
        }
    }
}

fn with_newest<F: Fn(&mut Vec<u8>)>(s: &Store, damage: F) {
    let path = &s.checkpoints[1].0;
    let good = read_all(&s.dir, path);
    let mut bad = good.clone();
    damage(&mut bad);
    write_all(&s.dir, path, &bad);
    check_fallback(s, &format!("{path} damaged"));
    write_all(&s.dir, path, &good);
}

#[test]
fn damaged_newest_store_checkpoint_falls_back_or_reports_a_gap() {
    for (limit, reaches_back) in [(1 << 20, true), (120, false)] {
        let s = store(limit);
        assert_eq!(first_wal_id(&s.dir) <= 11, reaches_back, "limit {limit}");
        // Intact: the newest wins.
        let r = recover_kv(&s.dir, ReadMode::Strict).unwrap();
        assert_eq!(r.state, kv_model(&s.log, 25));
        assert_eq!(r.recovery.report.checkpoint.unwrap().last_entry_id, 20);
        assert_eq!(r.recovery.report.checkpoints_skipped, 0);

        let len = read_all(&s.dir, &s.checkpoints[1].0).len();
        for i in 0..len {
            for bit in 0..8 {
                with_newest(&s, |b| b[i] ^= 1 << bit);
            }
        }
        for cut in 0..len {
            with_newest(&s, |b| b.truncate(cut));
        }
        for tail in [&[1u8][..], &[0xff, 0xff], &[0, 0, 7]] {
            with_newest(&s, |b| b.extend_from_slice(tail));
        }
        // Zeros after the end are what a crash leaves after a short write: still valid.
        let path = s.checkpoints[1].0.clone();
        let good = read_all(&s.dir, &path);
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 16]);
        write_all(&s.dir, &path, &padded);
        let r = recover_kv(&s.dir, ReadMode::Strict).unwrap();
        assert_eq!(r.recovery.report.checkpoint.unwrap().last_entry_id, 20);
        assert_eq!(r.state, kv_model(&s.log, 25));
        write_all(&s.dir, &path, &good);

        // Deleted: same as damaged.
        s.dir.delete(&path).unwrap();
        check_fallback(&s, "newest deleted");
        write_all(&s.dir, &path, &good);

        // Both damaged: from scratch if the WAL is whole, else a gap from entry 1.
        let old = read_all(&s.dir, &s.checkpoints[0].0);
        for (p, img) in [(&s.checkpoints[0].0, &old), (&path, &good)] {
            let mut bad = img.clone();
            bad[40] ^= 4;
            write_all(&s.dir, p, &bad);
        }
        for mode in MODES {
            match recover_kv(&s.dir, mode) {
                Ok(r) => {
                    assert!(reaches_back && first_wal_id(&s.dir) == 1);
                    assert!(r.recovery.report.checkpoint.is_none());
                    assert_eq!(r.recovery.report.checkpoints_skipped, 0);
                    assert_eq!(r.state, kv_model(&s.log, 25));
                    assert_eq!(r.applied, s.log);
                }
                Err(PersistenceError::WalGap { needed: 1, .. }) => assert!(!reaches_back),
                Err(e) => panic!("{mode:?}: {e:?}"),
            }
        }
    }
}

#[test]
fn huge_length_field_in_a_store_checkpoint_is_skipped_without_allocating() {
    let s = store(1 << 20);
    let path = &s.checkpoints[1].0;
    let good = read_all(&s.dir, path);
    for huge in [MAX_CHECKPOINT_LEN, MAX_CHECKPOINT_LEN + 1, u32::MAX] {
        let mut bad = good.clone();
        bad[field::LEN].copy_from_slice(&huge.to_le_bytes());
        write_all(&s.dir, path, &bad);
        let started = std::time::Instant::now();
        check_fallback(&s, &format!("length {huge}"));
        // A 1 GiB allocation and read would take far longer than this.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------------------------------
// Path model.

/// Two path checkpoints (after 15 and 30 entries), 35 entries, small segments: the WAL is
/// truncated behind the second checkpoint.
fn path_model(limit: u64) -> (Arc<dyn Directory>, Vec<(u64, WalEntry)>) {
    let dir = mem_dir();
    dir.create_dir_all("ckpt").unwrap();
    let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(limit));
    let publisher = CheckpointPublisher::new(dir.clone()).keep(2);
    let mut log = Vec::new();
    for i in 1..=35u64 {
        let e = if i % 2 == 1 {
            WalEntry::AddSegment {
                segment_id: i % 6,
                doc_count: i as u32,
            }
        } else {
            WalEntry::DeleteDocuments {
                deletes: vec![(i % 6, i as u32), ((i + 3) % 6, 1)],
            }
        };
        let id = w.append(&e).unwrap();
        log.push((id, e));
        if i == 15 || i == 30 {
            let last = id;
            let path = if i == 15 { "ckpt/a.bin" } else { "ckpt/b.bin" };
            let state = SegModel::of(&log, last).to_checkpoint_state();
            let r = publisher
                .publish_checkpoint(&mut w, &state, last, path)
                .unwrap();
            log.push((
                r.wal_checkpoint_entry_id,
                WalEntry::Checkpoint {
                    checkpoint_path: path.into(),
                    last_entry_id: last,
                },
            ));
        }
    }
    w.flush_and_sync().unwrap();
    (dir, log)
}

fn assert_gap<T: std::fmt::Debug>(r: Result<T, PersistenceError>, what: &str) {
    assert!(
        matches!(r, Err(PersistenceError::WalGap { .. })),
        "{what}: expected WalGap, got {r:?}"
    );
}

#[test]
fn named_checkpoint_lost_after_truncation_is_an_error_everywhere() {
    let (dir, _log) = path_model(120);
    let first = WalReader::<WalEntry>::new(dir.clone())
        .replay_bytes(ReadMode::Strict, |_, _| Ok(()))
        .unwrap()
        .first_id
        .unwrap();
    assert!(
        first > 16,
        "the WAL was not truncated behind the checkpoints: {first}"
    );
    let mgr = RecoveryManager::new(dir.clone());
    mgr.recover_latest().unwrap();
    let good = read_all(&dir, "ckpt/b.bin");

    // Deleted.
    dir.delete("ckpt/b.bin").unwrap();
    let r = mgr.recover(Some("ckpt/b.bin"));
    assert!(matches!(&r, Err(e) if e.is_not_found()), "{r:?}");
    assert_gap(
        mgr.recover_best_effort(Some("ckpt/b.bin")),
        "best-effort, deleted",
    );
    assert!(matches!(mgr.recover_latest(), Err(e) if e.is_not_found()));
    assert_gap(
        mgr.recover_latest_best_effort(),
        "latest best-effort, deleted",
    );
    assert_gap(mgr.recover(None), "no checkpoint");
    assert_gap(mgr.recover_best_effort(None), "no checkpoint, best-effort");

    // Damaged: every flip of one byte in the header and the payload.
    for i in [0, 9, 17, 25, 29, good.len() - 1] {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            write_all(&dir, "ckpt/b.bin", &bad);
            let what = format!("bit {bit} of byte {i}");
            let r = mgr.recover(Some("ckpt/b.bin"));
            assert!(
                matches!(
                    r,
                    Err(PersistenceError::CrcMismatch { .. } | PersistenceError::Format(_))
                ),
                "{what}: {r:?}"
            );
            assert_gap(mgr.recover_best_effort(Some("ckpt/b.bin")), &what);
            assert!(mgr.recover_latest().is_err(), "{what}");
            assert_gap(mgr.recover_latest_best_effort(), &what);
        }
    }
    write_all(&dir, "ckpt/b.bin", &good);
    mgr.recover_latest().unwrap();
}

#[test]
fn named_checkpoint_lost_with_a_whole_wal_falls_back() {
    let (dir, log) = path_model(1 << 20);
    let mgr = RecoveryManager::new(dir.clone());
    let full = SegModel::of(&log, log.len() as u64);
    let good = read_all(&dir, "ckpt/b.bin");
    let mut bad = good.clone();
    bad[33] ^= 1;
    write_all(&dir, "ckpt/b.bin", &bad);
    // Strict refuses the damaged newest recorded checkpoint ...
    assert!(mgr.recover_latest().is_err());
    assert!(mgr.recover(Some("ckpt/b.bin")).is_err());
    // ... best-effort falls back to the older one, or to nothing: the WAL is whole.
    let r = mgr.recover_latest_best_effort().unwrap();
    assert_eq!(r.report.checkpoint.as_ref().unwrap().path, "ckpt/a.bin");
    assert_eq!(SegModel::from_recovered(&r), full);
    assert_eq!(r.report.next_entry_id, log.len() as u64 + 1);
    let r = mgr.recover_best_effort(Some("ckpt/b.bin")).unwrap();
    assert_eq!(r.report.checkpoint, None);
    assert_eq!(SegModel::from_recovered(&r), full);
    dir.delete("ckpt/a.bin").unwrap();
    let r = mgr.recover_latest_best_effort().unwrap();
    assert_eq!(r.report.checkpoint, None);
    assert_eq!(SegModel::from_recovered(&r), full);
}
