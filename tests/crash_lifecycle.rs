//! Exhaustive crash points for the lifecycle: appends, rotations, checkpoint publishing
//! (path model: `CheckpointPublisher::publish_checkpoint` with `WalEntry`, recovered by
//! `RecoveryManager`; store model: the generic `publish`, recovered by
//! `recover_latest_state`) and the WAL truncation behind them, on `CrashDirectory`.
//!
//! For every prefix of the recorded call log and a bounded set of drop / keep / tear /
//! garble choices, the post-crash state must recover (best effort) without error to a
//! state equal to the model folded up to the recovered last id — which reaches at least
//! every acknowledged entry — from the old or the new checkpoint; the WAL replay must be
//! a contiguous run of exactly the appended entries; and resuming, appending, syncing and
//! publishing again must work. For a subset of states that recovery run is crashed at
//! every point and checked again. Injected sync failures during publishing never lead
//! to an acknowledged-but-lost entry or a wrong state.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use durability::core::wal::WalConfig;
use durability::core::ReadMode;
use durability::publish::CheckpointPublisher;
use durability::recover::{recover_latest_state, CheckpointState, RecoveryManager};
use durability::walog::{WalEntry, WalReader, WalWriter};
use durability::{Directory, PersistenceError};
mod crash_common;
use crash_common::{recreated_over_old_content, Scope};
use durability_std::crash::{Choice, CrashDirectory, CrashPlan, PendingKind};
use durability_std::failing::{FailKind, Op};
use serde::{Deserialize, Serialize};

static TOTAL: AtomicU64 = AtomicU64::new(0);

fn report(test: &str, states: u64, extra: &str, started: Instant) {
    let total = TOTAL.fetch_add(states, Ordering::Relaxed) + states;
    println!(
        "crash states: {test}: {states} {extra}in {:.1?} (crash_lifecycle total so far: {total})",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------
// The two entry types and their models
// ---------------------------------------------------------------------------------

/// Generic entries: the state is the list of `Add` ids applied, in order, so any lost,
/// repeated or reordered entry changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Ev {
    Add(u64, Vec<u8>),
    Mark(u64),
}

/// Which API a workload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `WalEntry`, `publish_checkpoint` to `checkpoint-<n>.bin`, `RecoveryManager`.
    Path,
    /// `Ev`, `publish` into `checkpoints/` (marker on odd publishes), `recover_latest_state`.
    Store,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum E {
    W(WalEntry),
    G(Ev),
}

fn new_entry(flavor: Flavor, id: u64, len: usize) -> E {
    let body: Vec<u8> = (0..len).map(|i| (id as usize * 13 + i) as u8).collect();
    match flavor {
        Flavor::Store => E::G(Ev::Add(id, body)),
        Flavor::Path if id.is_multiple_of(3) => E::W(WalEntry::DeleteDocuments {
            deletes: (0..len as u32 / 8).map(|d| (id - 1, d)).collect(),
        }),
        Flavor::Path if id.is_multiple_of(7) => E::W(WalEntry::EndMerge {
            transaction_id: id,
            new_segment_id: 1000 + id,
            old_segment_ids: vec![id - 1, id - 2],
            remapped_deletes: (0..len as u32 / 8).map(|d| (1000 + id, d)).collect(),
        }),
        Flavor::Path => E::W(WalEntry::AddSegment {
            segment_id: id,
            doc_count: len as u32,
        }),
    }
}

/// The segments-and-deletes view after the first `last` entries (as `RecoveryManager`
/// applies them).
type SegView = BTreeMap<u64, (u32, BTreeSet<u32>)>;

fn seg_view(model: &[E], last: u64) -> SegView {
    let mut m = SegView::new();
    for e in &model[..last as usize] {
        let E::W(e) = e else { unreachable!() };
        match e {
            WalEntry::AddSegment {
                segment_id,
                doc_count,
            } => {
                m.insert(*segment_id, (*doc_count, BTreeSet::new()));
            }
            WalEntry::DeleteDocuments { deletes } => {
                for (s, d) in deletes {
                    if let Some(seg) = m.get_mut(s) {
                        seg.1.insert(*d);
                    }
                }
            }
            WalEntry::EndMerge {
                new_segment_id,
                old_segment_ids,
                remapped_deletes,
                ..
            } => {
                for o in old_segment_ids {
                    m.remove(o);
                }
                let dels = remapped_deletes
                    .iter()
                    .filter(|(s, _)| s == new_segment_id)
                    .map(|(_, d)| *d)
                    .collect();
                m.insert(*new_segment_id, (0, dels));
            }
            _ => {}
        }
    }
    m
}

fn checkpoint_state(view: &SegView) -> CheckpointState {
    let mut s = CheckpointState::default();
    for (&id, (docs, dels)) in view {
        s.segments.push(durability::recover::CheckpointSegment {
            segment_id: id,
            doc_count: *docs,
            deleted_docs: dels.iter().copied().collect(),
        });
    }
    s
}

/// The generic state after the first `last` entries.
fn add_ids(model: &[E], last: u64) -> Vec<u64> {
    model[..last as usize]
        .iter()
        .filter_map(|e| match e {
            E::G(Ev::Add(id, _)) => Some(*id),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Step {
    Append(usize),
    Flush,
    Sync,
    Limit(u64),
    /// Sync, then publish a checkpoint of everything appended so far.
    Publish,
    /// Like `Publish`, with a chosen slot: path model `checkpoint-<tag>-<slot>.bin` (a
    /// slot may be reused), store model a marker iff the slot is odd.
    PublishSlot(u64),
    /// Replace the publisher by one that keeps this many checkpoints.
    Keep(usize),
    /// Drop the writer and resume a new one.
    Reopen,
}
use Step::*;

/// A checkpoint a publish wrote (or was writing).
#[derive(Debug, Clone)]
struct Published {
    /// Calls done when the publish started / returned (`usize::MAX`: it failed).
    started: usize,
    done: usize,
    last_id: u64,
}

struct Run {
    sim: CrashDirectory,
    flavor: Flavor,
    model: Vec<E>,
    acks: Vec<(usize, u64)>,
    published: Vec<Published>,
}

impl Run {
    fn acked(&self, k: usize) -> u64 {
        self.acks
            .iter()
            .filter(|(at, _)| *at <= k)
            .map(|(_, id)| *id)
            .max()
            .unwrap_or(0)
    }

    /// The checkpoints a recovery at cut `k` may use (their last ids), and the lowest
    /// last id it must reach (the newest publish that returned).
    fn allowed(&self, k: usize) -> (BTreeSet<u64>, u64) {
        let started = self
            .published
            .iter()
            .filter(|p| p.started < k || p.done <= k)
            .map(|p| p.last_id)
            .collect();
        let floor = self
            .published
            .iter()
            .filter(|p| p.done <= k)
            .map(|p| p.last_id)
            .max()
            .unwrap_or(0);
        (started, floor)
    }
}

/// The writer, either entry type.
enum Writer {
    W(WalWriter<WalEntry>),
    G(WalWriter<Ev>),
}

impl Writer {
    /// A writer with a fixed log id, so the explored states are reproducible.
    fn new(flavor: Flavor, dir: &Arc<dyn Directory>) -> Self {
        let cfg = WalConfig::new(0xC4A5_11D1_0000_0002);
        match flavor {
            Flavor::Path => Writer::W(WalWriter::with_config(dir.clone(), cfg)),
            Flavor::Store => Writer::G(WalWriter::with_config(dir.clone(), cfg)),
        }
    }

    fn resume(flavor: Flavor, dir: &Arc<dyn Directory>) -> Result<Self, PersistenceError> {
        Ok(match flavor {
            Flavor::Path => Writer::W(WalWriter::resume(dir.clone())?),
            Flavor::Store => Writer::G(WalWriter::resume(dir.clone())?),
        })
    }

    fn append(&mut self, e: &E) -> Result<u64, PersistenceError> {
        match (self, e) {
            (Writer::W(w), E::W(e)) => w.append(e),
            (Writer::G(w), E::G(e)) => w.append(e),
            _ => unreachable!(),
        }
    }

    fn flush(&mut self) -> Result<(), PersistenceError> {
        match self {
            Writer::W(w) => w.flush(),
            Writer::G(w) => w.flush(),
        }
    }

    fn sync(&mut self) -> Result<(), PersistenceError> {
        match self {
            Writer::W(w) => w.flush_and_sync(),
            Writer::G(w) => w.flush_and_sync(),
        }
    }

    fn limit(&mut self, l: u64) {
        match self {
            Writer::W(w) => w.set_segment_size_limit_bytes(l),
            Writer::G(w) => w.set_segment_size_limit_bytes(l),
        }
    }

    fn next_id(&mut self) -> Result<u64, PersistenceError> {
        match self {
            Writer::W(w) => w.next_entry_id(),
            Writer::G(w) => w.next_entry_id(),
        }
    }

    fn is_poisoned(&self) -> bool {
        match self {
            Writer::W(w) => w.is_poisoned(),
            Writer::G(w) => w.is_poisoned(),
        }
    }
}

/// Appends, syncs and publishes per `steps`; failures are allowed (then `failed` is
/// set, and everything after must be refused or be a publish that cannot poison).
struct Runner<'a> {
    sim: &'a CrashDirectory,
    dir: Arc<dyn Directory>,
    flavor: Flavor,
    w: Writer,
    publisher: CheckpointPublisher,
    model: Vec<E>,
    acks: Vec<(usize, u64)>,
    published: Vec<Published>,
    limit: Option<u64>,
    /// Publishes done by this runner (names checkpoints, alternates markers).
    publishes: u64,
    tag: &'a str,
    /// Whether a WAL call failed (the writer is poisoned).
    poisoned: bool,
}

impl<'a> Runner<'a> {
    fn new(
        sim: &'a CrashDirectory,
        flavor: Flavor,
        model: Vec<E>,
        w: Writer,
        tag: &'a str,
    ) -> Self {
        let dir: Arc<dyn Directory> = Arc::new(sim.clone());
        Runner {
            sim,
            dir: dir.clone(),
            flavor,
            w,
            publisher: CheckpointPublisher::new(dir),
            model,
            acks: Vec::new(),
            published: Vec::new(),
            limit: None,
            publishes: 0,
            tag,
            poisoned: false,
        }
    }

    /// Checks the outcome of a WAL call: after a failure everything is refused.
    fn wal<T>(&mut self, r: Result<T, PersistenceError>) -> Option<T> {
        match r {
            Ok(v) => {
                assert!(!self.poisoned, "a call succeeded on a poisoned writer");
                Some(v)
            }
            Err(PersistenceError::Poisoned) => {
                assert!(self.poisoned, "poisoned without a failure");
                None
            }
            Err(PersistenceError::Io(_)) if !self.poisoned => {
                assert!(
                    self.w.is_poisoned(),
                    "an I/O failure must poison the writer"
                );
                self.poisoned = true;
                None
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn step(&mut self, s: Step) {
        match s {
            Append(len) => {
                let id = self.model.len() as u64 + 1;
                let e = new_entry(self.flavor, id, len);
                let r = self.w.append(&e);
                if let Some(got) = self.wal(r) {
                    assert_eq!(got, id);
                    self.model.push(e);
                }
            }
            Flush => {
                let r = self.w.flush();
                self.wal(r);
            }
            Sync => {
                let r = self.w.sync();
                if self.wal(r).is_some() {
                    self.acks
                        .push((self.sim.op_count(), self.model.len() as u64));
                }
            }
            Limit(l) => {
                self.limit = Some(l);
                self.w.limit(l);
            }
            Reopen => {
                let flavor = self.flavor;
                let old = std::mem::replace(&mut self.w, Writer::new(flavor, &self.dir));
                drop(old);
                self.w = Writer::resume(flavor, &self.dir).unwrap();
                if let Some(l) = self.limit {
                    self.w.limit(l);
                }
                assert_eq!(self.w.next_id().unwrap(), self.model.len() as u64 + 1);
            }
            Publish => {
                let slot = self.publishes + 1;
                self.publish(slot)
            }
            PublishSlot(slot) => self.publish(slot),
            Keep(k) => self.publisher = CheckpointPublisher::new(self.dir.clone()).keep(k),
        }
    }

    fn publish(&mut self, n: u64) {
        self.step(Sync);
        if self.poisoned {
            return;
        }
        self.publishes += 1;
        let last = self.model.len() as u64;
        let started = self.sim.op_count();
        let marker_id = last + 1;
        let (r, marker) = match (&mut self.w, self.flavor) {
            (Writer::W(w), Flavor::Path) => {
                let path = format!("checkpoint-{}-{n}.bin", self.tag);
                let marker = WalEntry::Checkpoint {
                    checkpoint_path: path.clone(),
                    last_entry_id: last,
                };
                let state = checkpoint_state(&seg_view(&self.model, last));
                let r = self.publisher.publish_checkpoint(w, &state, last, &path);
                (r, Some(E::W(marker)))
            }
            (Writer::G(w), Flavor::Store) => {
                let state = add_ids(&self.model, last);
                let marker = (n % 2 == 1).then_some(Ev::Mark(last));
                let r = self.publisher.publish(w, &state, last, marker.as_ref());
                (r, marker.map(E::G))
            }
            _ => unreachable!(),
        };
        let done = self.sim.op_count();
        match r {
            Ok(res) => {
                assert!(!self.poisoned);
                assert_eq!(res.checkpoint_last_entry_id, last);
                if let Some(m) = marker {
                    assert_eq!(res.wal_checkpoint_entry_id, marker_id);
                    self.model.push(m);
                }
                self.acks.push((done, self.model.len() as u64));
                self.published.push(Published {
                    started,
                    done,
                    last_id: last,
                });
            }
            Err(e) => {
                // The checkpoint may or may not exist; the marker may or may not have
                // been appended (only if the writer is poisoned can we not tell).
                self.published.push(Published {
                    started,
                    done: usize::MAX,
                    last_id: last,
                });
                if self.w.is_poisoned() {
                    self.poisoned = true;
                    if let Some(m) = marker {
                        self.model.push(m);
                    }
                } else {
                    assert!(matches!(e, PersistenceError::Io(_)), "{e}");
                    let next = self.w.next_id().unwrap();
                    if next == marker_id + 1 {
                        self.model.push(marker.expect("a marker was appended"));
                    }
                }
            }
        }
    }

    fn finish(self) -> Run {
        let Runner {
            sim,
            flavor,
            w,
            model,
            acks,
            published,
            ..
        } = self;
        drop(w);
        Run {
            sim: sim.clone(),
            flavor,
            model,
            acks,
            published,
        }
    }
}

fn run_workload(flavor: Flavor, steps: &[Step]) -> Run {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut r = Runner::new(&sim, flavor, Vec::new(), Writer::new(flavor, &dir), "a");
    for &s in steps {
        r.step(s);
    }
    assert!(!r.poisoned);
    r.finish()
}

// ---------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Expect<'a> {
    flavor: Flavor,
    model: &'a [E],
    acked: u64,
    /// Last ids of the checkpoints recovery may start from.
    allowed: BTreeSet<u64>,
    /// The checkpoint recovery uses covers at least this (0: any, or none).
    floor: u64,
}

struct Recovered {
    last: u64,
    checkpoint: Option<u64>,
}

/// The WAL replay: contiguous, exactly the model, starting at or before the
/// checkpoint's `last + 1`, ending where recovery ended.
fn verify_wal(dir: &Arc<dyn Directory>, exp: &Expect, rec: &Recovered) -> Result<(), String> {
    let got: Vec<(u64, E)> = match exp.flavor {
        Flavor::Path => WalReader::<WalEntry>::new(dir.clone())
            .replay_best_effort()
            .map(|v| {
                v.into_iter()
                    .map(|r| (r.entry_id, E::W(r.payload)))
                    .collect()
            }),
        Flavor::Store => WalReader::<Ev>::new(dir.clone())
            .replay_best_effort()
            .map(|v| {
                v.into_iter()
                    .map(|r| (r.entry_id, E::G(r.payload)))
                    .collect()
            }),
    }
    .map_err(|e| format!("best-effort WAL replay failed: {e}"))?;
    let Some(first) = got.first().map(|r| r.0) else {
        return if rec.last == rec.checkpoint.unwrap_or(0) {
            Ok(())
        } else {
            Err(format!("empty WAL, but recovery reached {}", rec.last))
        };
    };
    if first > rec.checkpoint.unwrap_or(0) + 1 {
        return Err(format!(
            "the WAL starts at {first}, after the checkpoint {:?}",
            rec.checkpoint
        ));
    }
    for (i, (id, e)) in got.iter().enumerate() {
        if *id != first + i as u64 {
            return Err(format!("WAL record {i} has id {id}"));
        }
        if exp.model.get(*id as usize - 1) != Some(e) {
            return Err(format!("WAL record {id} is not the entry appended as {id}"));
        }
    }
    let last = got.last().unwrap().0;
    if last != rec.last {
        return Err(format!("the WAL ends at {last}, recovery at {}", rec.last));
    }
    Ok(())
}

fn verify_recovery(dir: &Arc<dyn Directory>, exp: &Expect) -> Result<Recovered, String> {
    let rec = match exp.flavor {
        Flavor::Path => {
            let st = RecoveryManager::new(dir.clone())
                .recover_latest_best_effort()
                .map_err(|e| format!("recover_latest_best_effort failed: {e}"))?;
            let last = st.last_entry_id;
            if last as usize > exp.model.len() {
                return Err(format!("recovered up to {last}: never appended"));
            }
            let got: SegView = st
                .segments
                .iter()
                .map(|s| {
                    (
                        s.segment_id,
                        (s.doc_count, s.deleted_docs.iter().copied().collect()),
                    )
                })
                .collect();
            if got != seg_view(exp.model, last) {
                return Err(format!("recovered state differs from the model at {last}"));
            }
            Recovered {
                last,
                checkpoint: st.report.checkpoint.map(|c| c.last_entry_id),
            }
        }
        Flavor::Store => {
            let r = recover_latest_state::<Vec<u64>, Ev, Vec<u64>>(
                dir,
                ReadMode::BestEffort,
                |c| c.unwrap_or_default(),
                |s, id, e| {
                    if let Ev::Add(n, _) = e {
                        assert_eq!(n, id, "entry payloads carry their id");
                        s.push(n);
                    }
                },
            )
            .map_err(|e| format!("recover_latest_state failed: {e}"))?;
            let last = r.last_entry_id;
            if last as usize > exp.model.len() {
                return Err(format!("recovered up to {last}: never appended"));
            }
            if r.state != add_ids(exp.model, last) {
                return Err(format!(
                    "recovered state {:?} differs from the model at {last}",
                    r.state
                ));
            }
            Recovered {
                last,
                checkpoint: r.report.checkpoint.map(|c| c.last_entry_id),
            }
        }
    };
    if rec.last < exp.acked {
        return Err(format!(
            "recovered up to {}, but {} were acknowledged",
            rec.last, exp.acked
        ));
    }
    match rec.checkpoint {
        Some(c) if !exp.allowed.contains(&c) => {
            return Err(format!(
                "recovered from a checkpoint at {c}, allowed {:?}",
                exp.allowed
            ))
        }
        Some(c) if c < exp.floor => {
            return Err(format!(
                "recovered from the checkpoint at {c}, older than the published one at {}",
                exp.floor
            ))
        }
        None if exp.floor > 0 => {
            return Err(format!(
                "recovered without a checkpoint after one at {} was published",
                exp.floor
            ))
        }
        _ => {}
    }
    verify_wal(dir, exp, &rec)?;
    Ok(rec)
}

/// The recovery run: resume, append, sync, publish, append, flush.
const CONTINUE: &[Step] = &[Append(30), Append(400), Publish, Append(7), Flush];

/// Checks a post-crash state, then continues on it; returns the continuation run.
fn verify_state(post: &CrashDirectory, exp: &Expect) -> Result<Run, String> {
    let dir: Arc<dyn Directory> = Arc::new(post.clone());
    let rec = verify_recovery(&dir, exp)?;
    let mut w = Writer::resume(exp.flavor, &dir).map_err(|e| format!("resume failed: {e}"))?;
    let next = w.next_id().map_err(|e| format!("next id: {e}"))?;
    if next != rec.last + 1 {
        return Err(format!("resume continues at {next} after {}", rec.last));
    }
    let mut r = Runner::new(
        post,
        exp.flavor,
        exp.model[..rec.last as usize].to_vec(),
        w,
        "r",
    );
    for &s in CONTINUE {
        r.step(s);
    }
    let mut cont = r.finish();
    cont.acks.insert(0, (0, rec.last));
    if let Some(c) = rec.checkpoint {
        cont.published.insert(
            0,
            Published {
                started: 0,
                done: 0,
                last_id: c,
            },
        );
    }
    // No crash: everything is there.
    let (allowed, floor) = cont.allowed(cont.sim.op_count());
    let exp2 = Expect {
        flavor: exp.flavor,
        model: &cont.model,
        acked: cont.model.len() as u64,
        allowed,
        floor,
    };
    let again = verify_recovery(&dir, &exp2)?;
    if again.last != cont.model.len() as u64 {
        return Err("the continuation was not recovered".into());
    }
    Ok(cont)
}

fn expect_at<'a>(run: &'a Run, k: usize) -> Expect<'a> {
    let (allowed, floor) = run.allowed(k);
    Expect {
        flavor: run.flavor,
        model: &run.model,
        acked: run.acked(k),
        allowed,
        floor,
    }
}

fn state_key(sim: &CrashDirectory, exp: &Expect) -> u64 {
    let mut h = DefaultHasher::new();
    sim.files().hash(&mut h);
    exp.acked.hash(&mut h);
    exp.floor.hash(&mut h);
    exp.allowed.hash(&mut h);
    h.finish()
}

#[derive(Clone, Copy)]
struct Cfg {
    random: u64,
    tears_per_op: u64,
    second_stride: u64,
    second_random: u64,
}

fn plans(at: &CrashDirectory, cfg: Cfg, salt: u64) -> Vec<CrashPlan> {
    let mut p = at.crash_plans();
    p.extend((0..cfg.random).map(|s| at.random_plan(s.wrapping_mul(0x2545_F491) ^ salt)));
    if cfg.tears_per_op > 0 {
        let pending = at.pending();
        let n = pending.len();
        for (i, op) in pending.iter().enumerate() {
            let PendingKind::Write { len, .. } = op.kind else {
                continue;
            };
            let step = len.div_ceil(cfg.tears_per_op).max(1) as usize;
            for cut in (1..len).step_by(step) {
                let mut files = vec![Choice::Keep; i];
                files.push(Choice::TearAt(cut));
                files.resize(n, Choice::Drop);
                p.push(CrashPlan {
                    files,
                    names: Vec::new(),
                });
            }
        }
    }
    p
}

struct Explored {
    states: u64,
    second: u64,
}

fn explore(name: &str, run: &Run, cfg: Cfg, scope: Scope) -> Explored {
    let mut seen = HashSet::new();
    let mut out = Explored {
        states: 0,
        second: 0,
    };
    for (k, at) in run.sim.snapshots().enumerate() {
        let exp = expect_at(run, k);
        for plan in plans(&at, cfg, k as u64) {
            let post = at.crash_with_plan(&plan);
            if !seen.insert(state_key(&post, &exp)) {
                continue;
            }
            out.states += 1;
            let cont = verify_state(&post, &exp).unwrap_or_else(|e| {
                panic!(
                    "{name}: cut after call {k} of {}, plan {plan:?}: {e}\ncalls: {:#?}\npost-crash files: {post:?}",
                    run.sim.op_count(),
                    &run.sim.ops()[..k]
                )
            });
            if cfg.second_stride > 0 && out.states.is_multiple_of(cfg.second_stride) {
                let n = explore_second(name, k, &plan, &cont, cfg.second_random, scope);
                out.second += n;
            }
        }
    }
    out
}

/// Crashes a recovery run at every point.
fn explore_second(
    name: &str,
    k1: usize,
    plan1: &CrashPlan,
    cont: &Run,
    random: u64,
    scope: Scope,
) -> u64 {
    let mut seen = HashSet::new();
    for (k, at) in cont.sim.snapshots().enumerate() {
        let exp = expect_at(cont, k);
        let mut ps = vec![CrashPlan::default()];
        ps.extend((0..random).map(|s| at.random_plan(s ^ ((k as u64) << 32))));
        let n = at.pending_ops();
        for i in 0..n {
            let mut files = vec![Choice::Keep; i];
            files.push(Choice::TearAt(5));
            files.resize(n, Choice::Drop);
            ps.push(CrashPlan {
                files,
                names: Vec::new(),
            });
        }
        for plan in ps {
            if scope == Scope::KnownBug && !recreated_over_old_content(&at, &plan) {
                continue;
            }
            let post = at.crash_with_plan(&plan);
            if !seen.insert(state_key(&post, &exp)) {
                continue;
            }
            let dir: Arc<dyn Directory> = Arc::new(post.clone());
            let check = verify_recovery(&dir, &exp).and_then(|rec| {
                let mut w =
                    Writer::resume(exp.flavor, &dir).map_err(|e| format!("resume failed: {e}"))?;
                let next = w.next_id().map_err(|e| e.to_string())?;
                if next != rec.last + 1 {
                    return Err(format!("resume continues at {next} after {}", rec.last));
                }
                Ok(())
            });
            if let Err(e) = check {
                panic!(
                    "{name}: first cut after call {k1} with {plan1:?}; recovery cut after call {k}, plan {plan:?}: {e}\nrecovery calls: {:#?}\nstate: {post:?}",
                    &cont.sim.ops()[..k]
                );
            }
        }
    }
    seen.len() as u64
}

fn explore_workload(name: &str, flavor: Flavor, steps: &[Step], cfg: Cfg) {
    explore_workload_in(name, flavor, steps, cfg, Scope::Main);
}

fn explore_workload_in(name: &str, flavor: Flavor, steps: &[Step], cfg: Cfg, scope: Scope) {
    let started = Instant::now();
    let run = run_workload(flavor, steps);
    let e = explore(name, &run, cfg, scope);
    report(
        name,
        e.states + e.second,
        &(format!(
            "({} calls, {} entries, {} publishes; {} first-crash + {} crash-during-recovery) ",
            run.sim.op_count(),
            run.model.len(),
            run.published.len(),
            e.states,
            e.second
        )),
        started,
    );
}

const CFG: Cfg = Cfg {
    random: 40,
    tears_per_op: 2000,
    second_stride: 3,
    second_random: 4,
};

/// Path model: two publishes with truncation of tiny segments, the third deletes the
/// first checkpoint (keep = 2).
const PATH_STEPS: &[Step] = &[
    Limit(260),
    Append(40),
    Append(100),
    Append(60),
    Sync,
    Append(90),
    Flush,
    Publish,
    Append(120),
    Append(30),
    Flush,
    Append(200),
    Publish,
    Append(20),
    Flush,
    Publish,
    Append(50),
    Flush,
];

/// Store model: publishes with and without a marker, truncation, a reopen.
const STORE_STEPS: &[Step] = &[
    Limit(300),
    Append(50),
    Append(150),
    Sync,
    Append(100),
    Publish,
    Append(80),
    Append(300),
    Flush,
    Publish,
    Append(10),
    // Synced before the reopen: a segment created by the old writer and not yet synced
    // is never named durably by the new one (see
    // `crash_wal::a_resumed_writer_makes_an_inherited_segment_name_durable`).
    Sync,
    Append(20),
    Flush,
    Reopen,
    Append(60),
    Publish,
    Append(5),
    Flush,
];

#[test]
fn publish_checkpoint_path_model() {
    explore_workload(
        "publish_checkpoint_path_model",
        Flavor::Path,
        PATH_STEPS,
        CFG,
    );
}

#[test]
fn publish_generic_store_model() {
    explore_workload(
        "publish_generic_store_model",
        Flavor::Store,
        STORE_STEPS,
        CFG,
    );
}

/// Path model: a reopen, `keep(1)`, and a checkpoint path published twice.
const PUBLISH_CHECKPOINT_REUSED_PATH_KEEP_ONE: &[Step] = &[
    Limit(300),
    Append(80),
    Append(150),
    PublishSlot(1),
    Append(60),
    Sync,
    Reopen,
    Keep(1),
    Append(200),
    PublishSlot(2),
    Append(30),
    Flush,
    PublishSlot(1),
    Append(9),
    Flush,
];

#[test]
fn publish_checkpoint_reused_path_keep_one() {
    explore_workload(
        "publish_checkpoint_reused_path_keep_one",
        Flavor::Path,
        PUBLISH_CHECKPOINT_REUSED_PATH_KEEP_ONE,
        CFG,
    );
}

/// Store model: `keep(1)`, no markers, every publish truncating.
const PUBLISH_GENERIC_KEEP_ONE_WITHOUT_MARKERS: &[Step] = &[
    Keep(1),
    Limit(250),
    Append(100),
    Append(120),
    PublishSlot(2),
    Append(90),
    Append(10),
    Flush,
    PublishSlot(2),
    Append(200),
    Flush,
    PublishSlot(2),
    Append(4),
    Flush,
];

#[test]
fn publish_generic_keep_one_without_markers() {
    explore_workload(
        "publish_generic_keep_one_without_markers",
        Flavor::Store,
        PUBLISH_GENERIC_KEEP_ONE_WITHOUT_MARKERS,
        CFG,
    );
}

/// The states [`Scope::Main`] leaves out of the workloads above (a crash of the
/// recovery run that re-creates a torn segment over its old content).
#[test]
fn recreated_segment_states_of_the_workloads() {
    for (name, flavor, steps) in [
        ("publish_checkpoint_path_model", Flavor::Path, PATH_STEPS),
        ("publish_generic_store_model", Flavor::Store, STORE_STEPS),
        (
            "publish_checkpoint_reused_path_keep_one",
            Flavor::Path,
            PUBLISH_CHECKPOINT_REUSED_PATH_KEEP_ONE,
        ),
        (
            "publish_generic_keep_one_without_markers",
            Flavor::Store,
            PUBLISH_GENERIC_KEEP_ONE_WITHOUT_MARKERS,
        ),
    ] {
        explore_workload_in(name, flavor, steps, CFG, Scope::KnownBug);
    }
}

/// Whether the injected failure hit a barrier of the checkpoint store while the
/// creation of `checkpoints/` was not yet durable: the case of
/// [`a_failed_first_checkpoint_leaves_the_store_directory_named`].
fn hits_unnamed_store_dir(sim: &CrashDirectory) -> bool {
    use durability_std::crash::Operation as O;
    let ops = sim.ops();
    let Some(created) = ops
        .iter()
        .position(|r| matches!(&r.op, O::CreateDir { path } if path == "checkpoints"))
    else {
        return false;
    };
    let named = ops[created..]
        .iter()
        .position(|r| !r.failed && matches!(&r.op, O::SyncDir { path } if path.is_empty()))
        .map_or(usize::MAX, |i| created + i);
    ops.iter()
        .position(|r| r.failed)
        .is_some_and(|f| f > created && f < named)
}

/// Runs the failure matrix; `known_bug` selects the runs [`hits_unnamed_store_dir`]
/// (true) or the others (false). Returns (states, runs, runs left out).
fn failure_matrix(known_bug: bool) -> (u64, u64, u64) {
    let mut states = 0;
    let mut runs = 0;
    let mut left_out = 0;
    for flavor in [Flavor::Path, Flavor::Store] {
        let steps = match flavor {
            Flavor::Path => PATH_STEPS,
            Flavor::Store => STORE_STEPS,
        };
        // How many barriers the workload runs.
        let clean = run_workload(flavor, steps);
        let count = |op: Op| {
            clean
                .sim
                .ops()
                .iter()
                .filter(|r| {
                    matches!(
                        (op, &r.op),
                        (Op::Sync, durability_std::crash::Operation::Sync { .. })
                            | (
                                Op::SyncDir,
                                durability_std::crash::Operation::SyncDir { .. }
                            )
                    )
                })
                .count() as u64
        };
        for op in [Op::Sync, Op::SyncDir] {
            for n in 1..=count(op) {
                for gate in [false, true] {
                    let sim = CrashDirectory::new();
                    sim.set_fsyncgate(gate);
                    sim.fail_nth(op, n, FailKind::Other);
                    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
                    let mut r =
                        Runner::new(&sim, flavor, Vec::new(), Writer::new(flavor, &dir), "a");
                    for &s in steps {
                        if matches!(s, Reopen) && r.poisoned {
                            continue;
                        }
                        r.step(s);
                    }
                    sim.clear_failures();
                    let run = r.finish();
                    if known_bug && !hits_unnamed_store_dir(&sim) {
                        left_out += 1;
                        continue;
                    }
                    runs += 1;
                    let name = format!("{flavor:?}: {op:?} #{n} fails, fsyncgate={gate}");
                    let e = explore(
                        &name,
                        &run,
                        Cfg {
                            random: 3,
                            tears_per_op: 0,
                            second_stride: 0,
                            second_random: 0,
                        },
                        Scope::Main,
                    );
                    states += e.states;
                }
            }
        }
    }
    (states, runs, left_out)
}

/// An injected failure at every barrier of a publishing workload, with and without
/// fsyncgate: the WAL writer is poisoned by a WAL failure and acknowledges nothing
/// after it; a checkpoint failure fails the publish; every crash afterwards recovers
/// every acknowledged entry to the model's state. (The runs that hit the known bug of
/// [`a_failed_first_checkpoint_leaves_the_store_directory_named`] are in
/// [`failures_while_publishing_first_checkpoint`].)
#[test]
fn failures_while_publishing() {
    let started = Instant::now();
    let (states, runs, left_out) = failure_matrix(false);
    report(
        "failures_while_publishing",
        states,
        &format!("({runs} runs; {left_out} runs hitting a known bug left to an ignored test) "),
        started,
    );
}

/// The failure runs left out of [`failures_while_publishing`].
#[test]
fn failures_while_publishing_first_checkpoint() {
    let started = Instant::now();
    let (states, runs, _) = failure_matrix(true);
    assert!(runs > 0);
    report(
        "failures_while_publishing_first_checkpoint",
        states,
        &format!("({runs} runs) "),
        started,
    );
}

/// A first checkpoint whose barrier fails does not poison the WAL writer, so the
/// application publishes again. That publish returns `Ok` and truncates the WAL, so the
/// `checkpoints/` directory must be durably named by then.
#[test]
fn a_failed_first_checkpoint_leaves_the_store_directory_named() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut w = WalWriter::<Ev>::new(dir.clone());
    w.set_segment_size_limit_bytes(100);
    let publisher = CheckpointPublisher::new(dir.clone());
    for i in 1..=3 {
        w.append(&Ev::Add(i, vec![0; 60])).unwrap();
    }
    w.flush_and_sync().unwrap();
    sim.fail_next(Op::Sync, FailKind::Other);
    assert!(publisher
        .publish(&mut w, &vec![1u64, 2, 3], 3, None)
        .is_err());
    assert!(
        !w.is_poisoned(),
        "a checkpoint failure does not poison the WAL"
    );
    w.append(&Ev::Add(4, vec![0; 60])).unwrap();
    w.flush_and_sync().unwrap();
    let r = publisher
        .publish(&mut w, &vec![1u64, 2, 3, 4], 4, None)
        .unwrap();
    assert!(r.deleted_wal_segments > 0, "the WAL was truncated");
    drop(w);
    let mut states = 0;
    for plan in sim.crash_plans() {
        let post: Arc<dyn Directory> = Arc::new(sim.crash_with_plan(&plan));
        states += 1;
        let r = recover_latest_state::<Vec<u64>, Ev, Vec<u64>>(
            &post,
            ReadMode::BestEffort,
            |c| c.unwrap_or_default(),
            |s, _, e| {
                if let Ev::Add(n, _) = e {
                    s.push(n)
                }
            },
        );
        match r {
            Ok(r) => assert_eq!(r.state, vec![1, 2, 3, 4], "{plan:?}"),
            Err(e) => panic!(
                "{plan:?}: {e}; names still pending: {:?}",
                sim.pending_names()
            ),
        }
    }
    TOTAL.fetch_add(states, Ordering::Relaxed);
}
