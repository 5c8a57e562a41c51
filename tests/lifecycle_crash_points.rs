//! A crash at every step of the publish protocol, for both publish variants.
//!
//! A "crash" is an injected I/O failure (`FailingDirectory`) of the `n`th call of one
//! operation kind during the publish; the writer is then dropped and everything is
//! recovered from what the directory holds (`MemoryDirectory` keeps what was written).
//! For every operation kind and every `n` until the publish runs without hitting the
//! failure, recovery (strict and best-effort) must give exactly the logical state of the
//! entries in the WAL — never fewer than were durable before the publish — starting from
//! the previous checkpoint or the new one, and a resumed writer must continue the ids
//! (and publish again).
//!
//! A second test records the directory calls of successful publishes and checks their
//! order: checkpoint write → sync → (rename → directory sync) → WAL marker write → sync →
//! WAL segment deletes → old checkpoint deletes.

mod support;

use std::sync::Arc;

use durability::core::ReadMode;
use durability::publish::{CheckpointPublisher, PublishResult};
use durability::recover::{recover_latest_state, CheckpointUsed, RecoveryManager, RecoveryReport};
use durability::storage::failing::{FailKind, Op};
use durability::storage::FailingDirectory;
use durability::walog::{WalEntry, WalReader, WalWriter};
use durability::{Directory, PersistenceError, PersistenceResult};
use support::recording::{Event, RecordingDirectory};
use support::*;

const LIMIT: u64 = 160;
const KEEP: usize = 2;
/// A segment header is 48 bytes: a shorter highest segment is a torn creation.
const SEGMENT_HEADER_LEN: usize = 48;

const ALL_OPS: [Op; 9] = [
    Op::Write,
    Op::Sync,
    Op::SyncDir,
    Op::Create,
    Op::CreateDir,
    Op::Delete,
    Op::Rename,
    Op::Read,
    Op::Truncate,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// `CheckpointPublisher::publish` (numbered checkpoints under `checkpoints/`).
    Store { marker: bool },
    /// `CheckpointPublisher::publish_checkpoint` (path-named checkpoint + marker).
    Path { same_path: bool },
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    variant: Variant,
    /// The crashed publish covers up to `lag` entries less than were assigned.
    lag: u64,
    /// Entries appended (and synced) after the second checkpoint.
    extra: u64,
    /// Entries appended after that and not synced before the publish.
    unsynced: u64,
}

/// A deterministic mix of entries of varying size.
fn entry(i: u64) -> WalEntry {
    match i % 4 {
        0 => WalEntry::AddSegment {
            segment_id: (i / 4) % 5,
            doc_count: i as u32,
        },
        1 => WalEntry::DeleteDocuments {
            deletes: vec![(i % 5, i as u32), ((i + 1) % 5, i as u32 + 1)],
        },
        2 => WalEntry::EndMerge {
            transaction_id: i,
            new_segment_id: 5 + i % 3,
            old_segment_ids: vec![i % 5],
            remapped_deletes: vec![(5 + i % 3, i as u32), (i % 5, 1)],
        },
        _ => WalEntry::StartMerge {
            transaction_id: i,
            segment_ids: vec![i % 5, (i + 2) % 5],
        },
    }
}

struct Setup {
    ctl: FailingDirectory,
    inner: Arc<dyn Directory>,
    w: WalWriter<WalEntry>,
    publisher: CheckpointPublisher,
    /// Every entry appended so far (markers included), by id.
    log: Vec<(u64, WalEntry)>,
    /// Ids `1..=synced` were durable before the crashed publish started.
    synced: u64,
    /// The newest checkpoint before the crashed publish.
    prev: CheckpointUsed,
    /// Publishes so far (names path checkpoints).
    publishes: u64,
}

fn path_for(variant: Variant, k: u64) -> String {
    match variant {
        Variant::Path { same_path: true } => "ckpt/current.bin".to_owned(),
        _ => format!("ckpt/{k}.bin"),
    }
}

fn store_path(seq: u64) -> String {
    format!("checkpoints/{seq:020}.seg")
}

fn store_seq(path: &str) -> u64 {
    path.trim_start_matches("checkpoints/")
        .trim_end_matches(".seg")
        .parse()
        .unwrap()
}

/// The marker entry a publish of `variant` appends, if any.
fn marker_for(variant: Variant, path: &str, last: u64) -> Option<WalEntry> {
    match variant {
        Variant::Store { marker: false } => None,
        Variant::Store { marker: true } => Some(WalEntry::Checkpoint {
            checkpoint_path: "checkpoints".to_owned(),
            last_entry_id: last,
        }),
        Variant::Path { .. } => Some(WalEntry::Checkpoint {
            checkpoint_path: path.to_owned(),
            last_entry_id: last,
        }),
    }
}

/// Publishes the model state after `last` with `variant`. Does not touch `log`.
fn publish(
    publisher: &CheckpointPublisher,
    w: &mut WalWriter<WalEntry>,
    log: &[(u64, WalEntry)],
    variant: Variant,
    last: u64,
    path: &str,
) -> PersistenceResult<PublishResult> {
    let state = SegModel::of(log, last).to_checkpoint_state();
    match variant {
        Variant::Store { .. } => {
            let m = marker_for(variant, path, last);
            publisher.publish(w, &state, last, m.as_ref())
        }
        Variant::Path { .. } => publisher.publish_checkpoint(w, &state, last, path),
    }
}

/// Publishes successfully and records the marker in `log`.
fn publish_ok(s: &mut Setup, variant: Variant, last: u64) -> CheckpointUsed {
    s.publishes += 1;
    let path = path_for(variant, s.publishes);
    let assigned = s.log.len() as u64;
    let r = publish(&s.publisher, &mut s.w, &s.log, variant, last, &path).unwrap();
    if let Some(m) = marker_for(variant, &path, last) {
        assert_eq!(r.wal_checkpoint_entry_id, assigned + 1);
        s.log.push((assigned + 1, m));
    }
    CheckpointUsed {
        path: r.checkpoint_path,
        last_entry_id: last,
    }
}

fn append(s: &mut Setup, n: u64) {
    for _ in 0..n {
        let id = s.log.len() as u64 + 1;
        let e = entry(id);
        assert_eq!(s.w.append(&e).unwrap(), id);
        s.log.push((id, e));
    }
}

/// Two published checkpoints, then `extra` synced and `unsynced` unsynced entries.
fn setup(sc: Scenario) -> Setup {
    let (ctl, view, inner) = failing_dir();
    inner.create_dir_all("ckpt").unwrap();
    let w = WalWriter::<WalEntry>::with_config(view.clone(), wal_config(LIMIT));
    let mut s = Setup {
        ctl,
        inner,
        w,
        publisher: CheckpointPublisher::new(view).keep(KEEP),
        log: Vec::new(),
        synced: 0,
        prev: CheckpointUsed {
            path: String::new(),
            last_entry_id: 0,
        },
        publishes: 0,
    };
    append(&mut s, 12);
    publish_ok(&mut s, sc.variant, 12);
    append(&mut s, 9);
    let last = s.log.len() as u64 - 2;
    s.prev = publish_ok(&mut s, sc.variant, last);
    append(&mut s, sc.extra);
    s.w.flush_and_sync().unwrap();
    s.synced = s.log.len() as u64;
    append(&mut s, sc.unsynced);
    s
}

/// What one recovery gave, in terms comparable across the two views.
struct Recovered {
    model: SegModel,
    report: RecoveryReport,
}

fn recover_store(dir: &Arc<dyn Directory>, mode: ReadMode) -> PersistenceResult<Recovered> {
    let r = recover_latest_state::<durability::checkpointing::CheckpointState, WalEntry, _>(
        dir,
        mode,
        |c| {
            c.map(|c| SegModel::from_checkpoint_state(&c))
                .unwrap_or_default()
        },
        |m, _, e| m.apply(&e),
    )?;
    assert_eq!(r.last_entry_id + 1, r.report.next_entry_id);
    Ok(Recovered {
        model: r.state,
        report: r.report,
    })
}

fn recover_path(dir: &Arc<dyn Directory>, mode: ReadMode) -> PersistenceResult<Recovered> {
    let mgr = RecoveryManager::new(dir.clone());
    let r = match mode {
        ReadMode::Strict => mgr.recover_latest()?,
        ReadMode::BestEffort => mgr.recover_latest_best_effort()?,
    };
    assert_eq!(r.last_entry_id + 1, r.report.next_entry_id);
    Ok(Recovered {
        model: SegModel::from_recovered(&r),
        report: r.report,
    })
}

fn recover(
    variant: Variant,
    dir: &Arc<dyn Directory>,
    mode: ReadMode,
) -> PersistenceResult<Recovered> {
    match variant {
        Variant::Store { .. } => recover_store(dir, mode),
        Variant::Path { .. } => recover_path(dir, mode),
    }
}

/// The highest WAL segment is a torn creation (shorter than a header).
fn torn_creation(dir: &Arc<dyn Directory>) -> Option<u64> {
    let last = wal_segments(dir).pop()?;
    let len = read_all(dir, &format!("wal/{last}")).len();
    (len < SEGMENT_HEADER_LEN).then(|| last.trim_end_matches(".seg").parse().unwrap())
}

/// What the crash runs recovered to.
#[derive(Debug, Default)]
struct Stats {
    /// Recoveries that started from the checkpoint before the crashed publish.
    old_checkpoint: u64,
    /// ... from the checkpoint the crashed publish wrote.
    new_checkpoint: u64,
    /// Crashes that left a torn WAL segment creation (strict: `TornTail`).
    torn_creations: u64,
    /// Crashes that lost the unsynced tail (the publish's WAL barrier failed).
    tail_lost: u64,
}

/// Runs one scenario with an optional injected failure; returns whether the failure
/// fired (a crash point was explored).
fn run(sc: Scenario, fail: Option<(Op, u64, FailKind)>, stats: &mut Stats) -> bool {
    let mut s = setup(sc);
    let ctx = format!("{sc:?} fail={fail:?}");
    let assigned = s.log.len() as u64;
    let last = assigned - sc.lag;
    assert!(last >= s.prev.last_entry_id);
    let path = path_for(sc.variant, s.publishes + 1);
    let new = CheckpointUsed {
        path: match sc.variant {
            Variant::Store { .. } => store_path(store_seq(&s.prev.path) + 1),
            Variant::Path { .. } => path.clone(),
        },
        last_entry_id: last,
    };
    let marker = marker_for(sc.variant, &path, last);

    s.ctl.reset_counts();
    if let Some((op, n, kind)) = fail {
        s.ctl.fail_nth(op, n, kind);
    }
    let result = publish(&s.publisher, &mut s.w, &s.log, sc.variant, last, &path);
    let fired = fail.is_some_and(|(op, n, _)| s.ctl.counts(op) >= n);
    s.ctl.clear();
    if fired {
        assert!(
            result.is_err(),
            "{ctx}: an injected failure was swallowed: {result:?}"
        );
    } else {
        let r = result.as_ref().unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(r.checkpoint_path, new.path, "{ctx}");
        assert_eq!(r.checkpoint_last_entry_id, last, "{ctx}");
        assert_eq!(
            r.wal_checkpoint_entry_id,
            if marker.is_some() { assigned + 1 } else { 0 },
            "{ctx}"
        );
    }
    let publish_ok = result.is_ok();
    drop(s.w); // the crash (Drop flushes what is buffered, if not poisoned)
    drop(s.publisher);

    // Every entry the publish may have produced, by id.
    let mut full = s.log.clone();
    if let Some(m) = marker {
        full.push((assigned + 1, m));
    }
    let dir = s.inner.clone();

    // What the WAL holds: a contiguous run of `full`, reaching at least `synced`.
    let mut on_disk = Vec::new();
    let wal_report = WalReader::<WalEntry>::new(dir.clone())
        .replay_with(ReadMode::BestEffort, 0, |r| {
            on_disk.push((r.entry_id, r.payload));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{ctx}: best-effort WAL replay: {e}"));
    let l = wal_report.next_id - 1;
    assert!(
        s.synced <= l && l <= full.len() as u64,
        "{ctx}: the WAL ends at {l}, durable before the publish: {}, produced: {}",
        s.synced,
        full.len()
    );
    if publish_ok {
        assert_eq!(
            l,
            full.len() as u64,
            "{ctx}: a successful publish lost entries"
        );
    }
    for (k, (id, e)) in on_disk.iter().enumerate() {
        assert_eq!(*id, on_disk[0].0 + k as u64, "{ctx}: ids not contiguous");
        assert_eq!(e, &full[*id as usize - 1].1, "{ctx}: entry {id} differs");
    }
    let expected = SegModel::of(&full, l);
    let torn = torn_creation(&dir);
    if fired {
        stats.torn_creations += u64::from(torn.is_some());
        stats.tail_lost += u64::from(l < assigned);
    }
    let mut max_ck_last = 0;

    for mode in MODES {
        match recover(sc.variant, &dir, mode) {
            Ok(r) => {
                let ck = r
                    .report
                    .checkpoint
                    .clone()
                    .unwrap_or_else(|| panic!("{ctx} {mode:?}: no checkpoint used"));
                assert!(
                    ck == s.prev || ck == new,
                    "{ctx} {mode:?}: used {ck:?}, neither the old {:?} nor the new {new:?}",
                    s.prev
                );
                if publish_ok {
                    assert_eq!(ck, new, "{ctx} {mode:?}");
                }
                max_ck_last = max_ck_last.max(ck.last_entry_id);
                if fired && mode == ReadMode::BestEffort {
                    if ck == new {
                        stats.new_checkpoint += 1;
                    } else {
                        stats.old_checkpoint += 1;
                    }
                }
                assert_eq!(r.model, expected, "{ctx} {mode:?}: wrong state");
                assert_eq!(r.report.next_entry_id, l + 1, "{ctx} {mode:?}");
                assert_eq!(
                    r.report.records_applied,
                    l - ck.last_entry_id,
                    "{ctx} {mode:?}"
                );
                match torn {
                    None => assert_eq!(r.report.torn_tail, None, "{ctx} {mode:?}"),
                    Some(seg) => {
                        assert_eq!(
                            mode,
                            ReadMode::BestEffort,
                            "{ctx}: strict accepted a torn creation"
                        );
                        assert_eq!(
                            r.report.torn_tail,
                            Some(durability::core::Location {
                                segment: seg,
                                offset: 0
                            }),
                            "{ctx}"
                        );
                    }
                }
            }
            // A crash while the marker append rotated to a new segment leaves that
            // segment's creation torn: strict recovery reports exactly that.
            Err(PersistenceError::TornTail { segment, offset: 0 })
                if mode == ReadMode::Strict && torn == Some(segment) => {}
            Err(e) => panic!("{ctx} {mode:?}: recovery failed: {e:?}"),
        }
    }

    // Restart: a resumed writer continues after what is there, and publishing works.
    let mut w =
        WalWriter::<WalEntry>::resume(dir.clone()).unwrap_or_else(|e| panic!("{ctx}: resume: {e}"));
    assert_eq!(w.next_entry_id().unwrap(), l + 1, "{ctx}: resumed id");
    assert!(
        l + 1 > max_ck_last,
        "{ctx}: resumed id {} reuses a checkpointed id",
        l + 1
    );
    let mut after: Vec<(u64, WalEntry)> = full[..l as usize].to_vec();
    let e = entry(1000);
    assert_eq!(w.append(&e).unwrap(), l + 1, "{ctx}");
    after.push((l + 1, e));
    w.flush_and_sync().unwrap();
    let publisher = CheckpointPublisher::new(dir.clone()).keep(KEEP);
    let path2 = match sc.variant {
        Variant::Path { same_path: true } => path.clone(),
        _ => "ckpt/after.bin".to_owned(),
    };
    let r = publish(&publisher, &mut w, &after, sc.variant, l + 1, &path2)
        .unwrap_or_else(|e| panic!("{ctx}: publish after the crash: {e}"));
    let next = if marker_for(sc.variant, &path2, l + 1).is_some() {
        assert_eq!(r.wal_checkpoint_entry_id, l + 2);
        l + 3
    } else {
        l + 2
    };
    drop(w);
    let r = recover(sc.variant, &dir, ReadMode::Strict)
        .unwrap_or_else(|e| panic!("{ctx}: recovery after the restart: {e}"));
    assert_eq!(r.model, SegModel::of(&after, l + 1), "{ctx}");
    assert_eq!(
        r.report.checkpoint.map(|c| c.last_entry_id),
        Some(l + 1),
        "{ctx}"
    );
    assert_eq!(r.report.next_entry_id, next, "{ctx}");
    fired
}

/// Whether a successful publish of `sc` rotates the WAL while appending its marker.
fn marker_rotates(sc: Scenario) -> bool {
    let mut s = setup(sc);
    let before = s.w.current_segment();
    let last = s.log.len() as u64 - sc.lag;
    let path = path_for(sc.variant, s.publishes + 1);
    publish(&s.publisher, &mut s.w, &s.log, sc.variant, last, &path).unwrap();
    s.w.current_segment() != before
}

fn scenarios() -> Vec<Scenario> {
    let variants = [
        Variant::Store { marker: false },
        Variant::Store { marker: true },
        Variant::Path { same_path: false },
        Variant::Path { same_path: true },
    ];
    let mut out = Vec::new();
    for variant in variants {
        for lag in [0, 3] {
            for unsynced in [0, 2] {
                out.push(Scenario {
                    variant,
                    lag,
                    extra: 5,
                    unsynced,
                });
            }
        }
        if variant != (Variant::Store { marker: false }) {
            // Also crash while the marker append rotates to a new segment.
            let rot = (0..40)
                .map(|extra| Scenario {
                    variant,
                    lag: 0,
                    extra,
                    unsynced: 0,
                })
                .find(|&sc| marker_rotates(sc))
                .unwrap_or_else(|| panic!("{variant:?}: no setup rotates at the marker"));
            out.push(rot);
        }
    }
    out
}

#[test]
fn crash_at_every_step_of_publish_recovers_old_or_new_state() {
    let mut crash_points = 0u64;
    let mut stats = Stats::default();
    let mut per_op = std::collections::BTreeMap::new();
    for sc in scenarios() {
        for op in ALL_OPS {
            let mut n = 1;
            loop {
                let kind = if n % 2 == 0 {
                    FailKind::StorageFull
                } else {
                    FailKind::Other
                };
                if !run(sc, Some((op, n, kind)), &mut stats) {
                    break;
                }
                crash_points += 1;
                *per_op.entry(format!("{op:?}")).or_insert(0u64) += 1;
                n += 1;
                assert!(n < 500, "{sc:?} {op:?}: publish never completes");
            }
        }
        // And without any failure.
        assert!(!run(sc, None, &mut Stats::default()));
    }
    println!("publish crash points explored: {crash_points} ({per_op:?}); {stats:?}");
    assert!(
        stats.old_checkpoint > 0 && stats.new_checkpoint > 0,
        "{stats:?}"
    );
    assert!(stats.torn_creations > 0 && stats.tail_lost > 0, "{stats:?}");
    for op in [
        "Write",
        "Sync",
        "SyncDir",
        "Create",
        "CreateDir",
        "Delete",
        "Rename",
        "Read",
        "Truncate",
    ] {
        assert!(
            per_op.get(op).copied().unwrap_or(0) > 0,
            "no crash point explored for {op}: {per_op:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The order of operations of a successful publish.

fn position(ev: &[Event], from: usize, what: &str, pred: impl Fn(&Event) -> bool) -> usize {
    ev.iter()
        .skip(from)
        .position(pred)
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("no {what} after event {from}: {ev:#?}"))
}

fn is_wal(p: &str) -> bool {
    p.starts_with("wal/") && p.ends_with(".seg")
}

/// Common checks after the checkpoint is durable at event `durable`: marker write and
/// sync, then WAL deletes (each made durable, oldest first), then old checkpoints.
fn check_tail(ev: &[Event], durable: usize, ckpt_dir: &str, marker: bool, gc: bool) {
    let mut at = durable;
    if marker {
        let write = position(
            ev,
            durable,
            "marker write",
            |e| matches!(e, Event::Write(p) if is_wal(p)),
        );
        let sync = position(
            ev,
            write,
            "marker sync",
            |e| matches!(e, Event::Sync(p) if is_wal(p)),
        );
        at = sync;
    } else {
        assert!(
            !ev[durable..]
                .iter()
                .any(|e| matches!(e, Event::Write(p) if is_wal(p))),
            "a WAL write without a marker: {ev:#?}"
        );
    }
    let wal_deletes: Vec<usize> = ev
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Delete(p) if is_wal(p)))
        .map(|(i, _)| i)
        .collect();
    assert!(!wal_deletes.is_empty(), "no WAL segment deleted: {ev:#?}");
    assert!(
        wal_deletes[0] > at,
        "WAL deleted before the marker is durable: {ev:#?}"
    );
    let mut prev_name = String::new();
    for &i in &wal_deletes {
        assert_eq!(
            ev[i + 1],
            Event::SyncDir("wal".into()),
            "WAL delete not made durable at once: {ev:#?}"
        );
        let name = ev[i].path().to_owned();
        assert!(name > prev_name, "WAL segments not deleted oldest first");
        prev_name = name;
    }
    let ck_deletes: Vec<usize> = ev
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Delete(p) if p.starts_with(&format!("{ckpt_dir}/"))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        !ck_deletes.is_empty(),
        gc,
        "old checkpoint deletes: {ev:#?}"
    );
    for &i in &ck_deletes {
        assert!(
            i > *wal_deletes.last().unwrap(),
            "checkpoint GC before WAL truncation"
        );
        assert_eq!(ev[i + 1], Event::SyncDir(ckpt_dir.into()), "{ev:#?}");
    }
}

/// A writer with two checkpoints behind it and an unsynced tail, over a recording view.
fn recorded_setup(variant: Variant) -> (RecordingDirectory, Setup) {
    let sc = Scenario {
        variant,
        lag: 0,
        extra: 6,
        unsynced: 3,
    };
    let mut s = setup(sc);
    let rec = RecordingDirectory::new(s.inner.clone());
    // Swap in a writer and a publisher over the recording view of the same files.
    s.w.flush_and_sync().unwrap();
    s.synced = s.log.len() as u64;
    drop(std::mem::replace(
        &mut s.w,
        WalWriter::with_config(mem_dir(), wal_config(LIMIT)),
    ));
    let view: Arc<dyn Directory> = Arc::new(rec.clone());
    s.w = WalWriter::<WalEntry>::resume(view.clone()).unwrap();
    s.w.set_segment_size_limit_bytes(LIMIT);
    // The old publisher's GC list is lost with it: prime the new one by publishing
    // twice more before recording (path model GC only knows its own checkpoints).
    s.publisher = CheckpointPublisher::new(view).keep(1);
    let last = s.log.len() as u64;
    s.prev = publish_ok(&mut s, variant, last);
    append(&mut s, 25);
    // An unsynced tail: the publish must make it durable before the checkpoint.
    rec.clear();
    (rec, s)
}

#[test]
fn successful_publish_runs_the_protocol_in_order() {
    // Path model: temp file write → sync → rename → dir sync → marker → deletes.
    for same_path in [false, true] {
        let variant = Variant::Path { same_path };
        let (rec, mut s) = recorded_setup(variant);
        let last = s.log.len() as u64;
        s.publishes += 1;
        let path = path_for(variant, s.publishes);
        let r = publish(&s.publisher, &mut s.w, &s.log, variant, last, &path).unwrap();
        assert!(r.deleted_wal_segments > 0, "{r:?}");
        let ev = rec.events();
        // The WAL tail is made durable first.
        let barrier = position(
            &ev,
            0,
            "WAL barrier",
            |e| matches!(e, Event::Sync(p) if is_wal(p)),
        );
        assert!(
            ev[..barrier]
                .iter()
                .any(|e| matches!(e, Event::Write(p) if is_wal(p))),
            "{ev:#?}"
        );
        let rename = position(
            &ev,
            0,
            "rename",
            |e| matches!(e, Event::Rename(_, to) if *to == path),
        );
        let Event::Rename(tmp, _) = ev[rename].clone() else {
            unreachable!()
        };
        let create = position(&ev, 0, "temp create", |e| *e == Event::Create(tmp.clone()));
        let write = position(&ev, create, "temp write", |e| {
            *e == Event::Write(tmp.clone())
        });
        let sync = position(&ev, write, "temp sync", |e| *e == Event::Sync(tmp.clone()));
        let dir_sync = position(&ev, rename, "dir sync", |e| {
            *e == Event::SyncDir("ckpt".into())
        });
        assert!(barrier < create && create < write && write < sync && sync < rename);
        assert!(
            ev[barrier..dir_sync]
                .iter()
                .all(|e| !matches!(e, Event::Write(p) if is_wal(p))),
            "the WAL was written while the checkpoint was not durable: {ev:#?}"
        );
        // Replacing the same path deletes no checkpoint.
        check_tail(&ev, dir_sync, "ckpt", true, !same_path);
        println!(
            "path publish (same_path = {same_path}): {} events",
            ev.len()
        );
    }
    // Store model: create → write → sync → dir sync → marker → deletes; no rename.
    for marker in [false, true] {
        let variant = Variant::Store { marker };
        let (rec, mut s) = recorded_setup(variant);
        let last = s.log.len() as u64;
        let r = publish(&s.publisher, &mut s.w, &s.log, variant, last, "").unwrap();
        assert!(r.deleted_wal_segments > 0, "{r:?}");
        assert!(r.deleted_checkpoints > 0, "{r:?}");
        let ev = rec.events();
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Rename(..))),
            "the store needs no rename: {ev:#?}"
        );
        let ck = r.checkpoint_path.clone();
        let barrier = position(
            &ev,
            0,
            "WAL barrier",
            |e| matches!(e, Event::Sync(p) if is_wal(p)),
        );
        let create = position(&ev, 0, "checkpoint create", |e| {
            *e == Event::Create(ck.clone())
        });
        let last_write = ev
            .iter()
            .rposition(|e| *e == Event::Write(ck.clone()))
            .expect("checkpoint written");
        let sync = position(&ev, last_write, "checkpoint sync", |e| {
            *e == Event::Sync(ck.clone())
        });
        let dir_sync = position(&ev, sync, "checkpoint dir sync", |e| {
            *e == Event::SyncDir("checkpoints".into())
        });
        assert!(barrier < create && create < last_write && last_write < sync && sync < dir_sync);
        assert!(
            ev[barrier..dir_sync]
                .iter()
                .all(|e| !matches!(e, Event::Write(p) if is_wal(p))),
            "{ev:#?}"
        );
        check_tail(&ev, dir_sync, "checkpoints", marker, true);
        println!("store publish (marker = {marker}): {} events", ev.len());
    }
}
