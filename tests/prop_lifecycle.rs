//! Property tests of the lifecycle: for random entry streams, random checkpoint cadences
//! and small segment limits (so segments rotate and get truncated), recovering from the
//! newest checkpoint plus the WAL suffix gives exactly the state a reference fold of the
//! whole stream gives, and the same as a WAL that never saw a checkpoint; ids continue
//! after recovery.

mod support;

use std::sync::Arc;

use durability::checkpointing::CheckpointState;
use durability::publish::CheckpointPublisher;
use durability::recover::{CheckpointUsed, RecoveryManager};
use durability::walog::{WalEntry, WalWriter};
use durability::Directory;
use proptest::prelude::*;
use support::*;

// ---------------------------------------------------------------------------------------
// Generic store model: any serde state, numbered checkpoints under `checkpoints/`.

#[derive(Debug, Clone)]
enum Step {
    Entry(Ev),
    /// Publish a checkpoint `lag` entries behind the last assigned id (never behind the
    /// previous checkpoint), with or without a marker entry.
    Publish {
        lag: u64,
        marker: bool,
    },
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => (0u64..8, any::<u32>()).prop_map(|(k, v)| Ev::Add(k, v)),
        2 => (0u64..8, any::<u32>()).prop_map(|(k, v)| Ev::Delete(k, v)),
        1 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Ev::Note),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            8 => ev().prop_map(Step::Entry),
            1 => (0u64..4, any::<bool>()).prop_map(|(lag, marker)| Step::Publish { lag, marker }),
        ],
        0..60,
    )
}

/// Appends `log`'s entries (markers included, as plain entries) to a fresh WAL that never
/// sees a checkpoint, and recovers it.
fn recover_without_checkpoints(log: &[(u64, Ev)], limit: u64) -> KvRecovery {
    let dir = mem_dir();
    let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(limit));
    for (id, e) in log {
        assert_eq!(w.append(e).unwrap(), *id);
    }
    w.flush_and_sync().unwrap();
    drop(w);
    recover_kv(&dir, durability::core::ReadMode::Strict).unwrap()
}

fn check_store_model(
    steps: Vec<Step>,
    limit: u64,
    keep: usize,
    sync_at_end: bool,
) -> Result<(), TestCaseError> {
    let dir = mem_dir();
    let mut w = WalWriter::<Ev>::with_config(dir.clone(), wal_config(limit));
    let publisher = CheckpointPublisher::new(dir.clone()).keep(keep);
    let mut log: Vec<(u64, Ev)> = Vec::new();
    let mut last_ckpt: Option<u64> = None;
    for step in steps {
        match step {
            Step::Entry(e) => {
                let id = w.append(&e).unwrap();
                prop_assert_eq!(id, log.len() as u64 + 1);
                log.push((id, e));
            }
            Step::Publish { lag, marker } => {
                let assigned = log.len() as u64;
                let last = assigned.saturating_sub(lag).max(last_ckpt.unwrap_or(0));
                let state = kv_model(&log, last);
                let m = Ev::Marker(last);
                let r = publisher
                    .publish(&mut w, &state, last, marker.then_some(&m))
                    .unwrap();
                prop_assert_eq!(r.checkpoint_last_entry_id, last);
                if marker {
                    prop_assert_eq!(r.wal_checkpoint_entry_id, assigned + 1);
                    log.push((assigned + 1, m));
                } else {
                    prop_assert_eq!(r.wal_checkpoint_entry_id, 0);
                }
                prop_assert!(r.checkpoint_path.starts_with("checkpoints/"));
                last_ckpt = Some(last);
                prop_assert!(list(&dir, "checkpoints").len() <= keep);
            }
        }
    }
    if sync_at_end {
        w.flush_and_sync().unwrap();
    }
    drop(w); // flushes (memory keeps everything written)

    let last = log.len() as u64;
    let full = kv_model(&log, last);
    let reference = recover_without_checkpoints(&log, limit);
    prop_assert_eq!(&reference.state, &full);
    prop_assert_eq!(&reference.applied, &log);
    prop_assert_eq!(reference.recovery.report.next_entry_id, last + 1);

    for mode in MODES {
        let r = recover_kv(&dir, mode).unwrap();
        let report = &r.recovery.report;
        prop_assert_eq!(&r.state, &full, "{:?}", mode);
        prop_assert_eq!(&r.state, &reference.state);
        prop_assert_eq!(r.recovery.last_entry_id, last);
        prop_assert_eq!(report.next_entry_id, last + 1);
        prop_assert_eq!(
            report.checkpoint.as_ref().map(|c| c.last_entry_id),
            last_ckpt
        );
        prop_assert_eq!(report.checkpoints_skipped, 0);
        prop_assert_eq!(report.torn_tail, None);
        let from = last_ckpt.unwrap_or(0);
        prop_assert_eq!(&r.from_checkpoint, &last_ckpt.map(|l| kv_model(&log, l)));
        // Exactly the suffix after the checkpoint, each entry with the id it was given.
        prop_assert_eq!(&r.applied[..], &log[from as usize..]);
        prop_assert_eq!(report.records_applied, last - from);
    }

    // A resumed writer continues the ids, and a further publish works on it.
    let mut w = WalWriter::<Ev>::resume(dir.clone()).unwrap();
    prop_assert_eq!(w.next_entry_id().unwrap(), last + 1);
    let extra = Ev::Add(3, 77);
    prop_assert_eq!(w.append(&extra).unwrap(), last + 1);
    log.push((last + 1, extra));
    w.flush_and_sync().unwrap();
    let r = recover_kv(&dir, durability::core::ReadMode::Strict).unwrap();
    prop_assert_eq!(&r.state, &kv_model(&log, last + 1));
    prop_assert_eq!(r.recovery.report.next_entry_id, last + 2);
    let state = kv_model(&log, last + 1);
    CheckpointPublisher::new(dir.clone())
        .keep(keep)
        .publish(&mut w, &state, last + 1, None)
        .unwrap();
    drop(w);
    let r = recover_kv(&dir, durability::core::ReadMode::Strict).unwrap();
    prop_assert_eq!(&r.state, &state);
    prop_assert_eq!(r.applied.len(), 0);
    prop_assert_eq!(
        r.recovery.report.checkpoint.map(|c| c.last_entry_id),
        Some(last + 1)
    );
    prop_assert_eq!(r.recovery.report.next_entry_id, last + 2);
    Ok(())
}

proptest! {
    #[test]
    fn store_model_recovery_equals_reference_fold(
        steps in steps(),
        limit in 90u64..600,
        keep in 1usize..4,
        sync_at_end in any::<bool>(),
    ) {
        check_store_model(steps, limit, keep, sync_at_end)?;
    }
}

// ---------------------------------------------------------------------------------------
// Path model: `WalEntry` streams, path-named checkpoints recorded by markers.

#[derive(Debug, Clone)]
enum PStep {
    Entry(WalEntry),
    /// Publish `lag` entries behind (never behind the previous checkpoint), at a fixed
    /// path or a fresh one.
    Publish {
        lag: u64,
        same_path: bool,
    },
}

fn wal_entry() -> impl Strategy<Value = WalEntry> {
    let seg = 0u64..6;
    let doc = 0u32..12;
    let deletes = proptest::collection::vec((0u64..7, doc.clone()), 0..5);
    prop_oneof![
        4 => (seg.clone(), 0u32..1000).prop_map(|(segment_id, doc_count)| WalEntry::AddSegment {
            segment_id,
            doc_count,
        }),
        4 => deletes.clone().prop_map(|deletes| WalEntry::DeleteDocuments { deletes }),
        2 => (
            any::<u64>(),
            0u64..7,
            proptest::collection::vec(seg.clone(), 0..3),
            deletes,
        )
            .prop_map(|(transaction_id, new_segment_id, old_segment_ids, remapped_deletes)| {
                WalEntry::EndMerge {
                    transaction_id,
                    new_segment_id,
                    old_segment_ids,
                    remapped_deletes,
                }
            }),
        1 => (any::<u64>(), proptest::collection::vec(seg.clone(), 0..3)).prop_map(
            |(transaction_id, segment_ids)| WalEntry::StartMerge {
                transaction_id,
                segment_ids,
            }
        ),
        1 => (any::<u64>(), proptest::collection::vec(seg, 0..3)).prop_map(
            |(transaction_id, segment_ids)| WalEntry::CancelMerge {
                transaction_id,
                segment_ids,
            }
        ),
    ]
}

fn psteps() -> impl Strategy<Value = Vec<PStep>> {
    proptest::collection::vec(
        prop_oneof![
            8 => wal_entry().prop_map(PStep::Entry),
            1 => (0u64..4, any::<bool>())
                .prop_map(|(lag, same_path)| PStep::Publish { lag, same_path }),
        ],
        0..60,
    )
}

fn normalized(mut s: CheckpointState) -> CheckpointState {
    s.normalize();
    s
}

fn check_path_model(steps: Vec<PStep>, limit: u64, keep: usize) -> Result<(), TestCaseError> {
    let dir = mem_dir();
    // `atomic_write_durable` syncs the parent first: it must exist.
    dir.create_dir_all("ckpt").unwrap();
    let mut w = WalWriter::<WalEntry>::with_config(dir.clone(), wal_config(limit));
    let publisher = CheckpointPublisher::new(dir.clone()).keep(keep);
    let mut log: Vec<(u64, WalEntry)> = Vec::new();
    let mut last_ckpt: Option<CheckpointUsed> = None;
    let mut published = 0;
    for step in steps {
        match step {
            PStep::Entry(e) => {
                let id = w.append(&e).unwrap();
                prop_assert_eq!(id, log.len() as u64 + 1);
                log.push((id, e));
            }
            PStep::Publish { lag, same_path } => {
                let assigned = log.len() as u64;
                let prev = last_ckpt.as_ref().map_or(0, |c| c.last_entry_id);
                let last = assigned.saturating_sub(lag).max(prev);
                published += 1;
                let path = if same_path {
                    "ckpt/current.bin".to_owned()
                } else {
                    format!("ckpt/{published}.bin")
                };
                let state = SegModel::of(&log, last).to_checkpoint_state();
                let r = publisher
                    .publish_checkpoint(&mut w, &state, last, &path)
                    .unwrap();
                prop_assert_eq!(&r.checkpoint_path, &path);
                prop_assert_eq!(r.checkpoint_last_entry_id, last);
                prop_assert_eq!(r.wal_checkpoint_entry_id, assigned + 1);
                log.push((
                    assigned + 1,
                    WalEntry::Checkpoint {
                        checkpoint_path: path.clone(),
                        last_entry_id: last,
                    },
                ));
                last_ckpt = Some(CheckpointUsed {
                    path,
                    last_entry_id: last,
                });
                prop_assert!(list(&dir, "ckpt").len() <= keep);
            }
        }
    }
    drop(w);

    let last = log.len() as u64;
    let full = SegModel::of(&log, last);

    // The same stream in a WAL that never saw a checkpoint.
    let plain = mem_dir();
    let mut pw = WalWriter::<WalEntry>::with_config(plain.clone(), wal_config(limit));
    for (id, e) in &log {
        prop_assert_eq!(pw.append(e).unwrap(), *id);
    }
    drop(pw);
    let reference = RecoveryManager::new(plain).recover(None).unwrap();
    prop_assert_eq!(SegModel::from_recovered(&reference), full.clone());
    prop_assert_eq!(reference.report.next_entry_id, last + 1);

    let mgr = RecoveryManager::new(dir.clone());
    let from = last_ckpt.as_ref().map_or(0, |c| c.last_entry_id);
    let mut runs = vec![
        ("recover_latest", mgr.recover_latest().unwrap()),
        (
            "recover_latest_best_effort",
            mgr.recover_latest_best_effort().unwrap(),
        ),
    ];
    if let Some(c) = &last_ckpt {
        runs.push(("recover(path)", mgr.recover(Some(&c.path)).unwrap()));
        runs.push((
            "recover_best_effort(path)",
            mgr.recover_best_effort(Some(&c.path)).unwrap(),
        ));
    }
    for (what, r) in runs {
        prop_assert_eq!(SegModel::from_recovered(&r), full.clone(), "{}", what);
        prop_assert_eq!(r.last_entry_id, last, "{}", what);
        prop_assert_eq!(r.report.next_entry_id, last + 1, "{}", what);
        prop_assert_eq!(&r.report.checkpoint, &last_ckpt, "{}", what);
        prop_assert_eq!(r.report.records_applied, last - from, "{}", what);
        prop_assert_eq!(r.report.torn_tail, None);
        prop_assert_eq!(
            RecoveryManager::to_checkpoint_state(&r),
            normalized(full.to_checkpoint_state())
        );
    }

    // Resume: ids continue; the new entry is recovered on top.
    let mut w = WalWriter::<WalEntry>::resume(dir.clone()).unwrap();
    prop_assert_eq!(w.next_entry_id().unwrap(), last + 1);
    let extra = WalEntry::AddSegment {
        segment_id: 42,
        doc_count: 1,
    };
    prop_assert_eq!(w.append(&extra).unwrap(), last + 1);
    w.flush_and_sync().unwrap();
    drop(w);
    log.push((last + 1, extra));
    let r = RecoveryManager::new(dir as Arc<dyn Directory>)
        .recover_latest()
        .unwrap();
    prop_assert_eq!(SegModel::from_recovered(&r), SegModel::of(&log, last + 1));
    prop_assert_eq!(r.report.next_entry_id, last + 2);
    Ok(())
}

proptest! {
    #[test]
    fn path_model_recovery_equals_reference_fold(
        steps in psteps(),
        limit in 90u64..600,
        keep in 1usize..4,
    ) {
        check_path_model(steps, limit, keep)?;
    }
}
