//! Shared helpers for the lifecycle tests: reference models of the two recovery views,
//! directory constructors, recovery wrappers that also record what was applied, and a
//! recording `Directory` wrapper (`recording.rs`).
#![allow(dead_code)]

pub mod recording;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use durability::checkpointing::{CheckpointSegment, CheckpointState};
use durability::core::wal::WalConfig;
use durability::core::ReadMode;
use durability::recover::{recover_latest_state, RecoveredState, Recovery};
use durability::storage::{FailingDirectory, MemoryDirectory};
use durability::walog::{WalEntry, WalReader, WAL_DIR};
use durability::{Directory, PersistenceResult};
use serde::{Deserialize, Serialize};

pub const MODES: [ReadMode; 2] = [ReadMode::Strict, ReadMode::BestEffort];

/// A fresh in-memory directory as `Arc<dyn Directory>`.
pub fn mem_dir() -> Arc<dyn Directory> {
    Arc::new(MemoryDirectory::new())
}

/// A failing wrapper over a fresh memory directory: `(control, failing view, inner view)`.
/// Both views see the same files.
pub fn failing_dir() -> (FailingDirectory, Arc<dyn Directory>, Arc<dyn Directory>) {
    let inner: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let failing = FailingDirectory::new(inner.clone());
    let view: Arc<dyn Directory> = Arc::new(failing.clone());
    (failing, view, inner)
}

/// A WAL config with a fixed log id and the given segment limit.
pub fn wal_config(segment_limit: u64) -> WalConfig {
    WalConfig {
        segment_limit,
        log_id: 0x5eed_cafe_f00d_0001,
        first_id: 1,
        covered_through: 0,
    }
}

/// Sorted names of the files directly in `sub` (empty if it does not exist).
pub fn list(dir: &Arc<dyn Directory>, sub: &str) -> Vec<String> {
    dir.list_dir(sub).unwrap_or_default()
}

/// The whole content of a file.
pub fn read_all(dir: &Arc<dyn Directory>, path: &str) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    dir.open_file(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"))
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Replaces the content of a file (not durable; memory does not care).
pub fn write_all(dir: &Arc<dyn Directory>, path: &str, bytes: &[u8]) {
    use std::io::Write;
    let mut w = dir.create_file(path).unwrap();
    w.write_all(bytes).unwrap();
    w.flush().unwrap();
}

// ---------------------------------------------------------------------------------------
// The key-value model for the generic (store) lifecycle.

/// A small entry type. `Add` and `Delete` are order-sensitive on purpose; `Note` only
/// takes space (it varies frame sizes, so segments rotate at many offsets); `Marker` is
/// the publish marker and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ev {
    Add(u64, u32),
    Delete(u64, u32),
    Note(Vec<u8>),
    Marker(u64),
}

/// The key-value state.
pub type Kv = BTreeMap<u64, u32>;

/// The reference fold.
pub fn kv_apply(state: &mut Kv, e: &Ev) {
    match e {
        Ev::Add(k, v) => {
            let old = state.get(k).copied().unwrap_or(0);
            state.insert(*k, old.wrapping_mul(3).wrapping_add(*v));
        }
        Ev::Delete(k, v) => {
            if state.get(k).is_some_and(|cur| cur >= v) {
                state.remove(k);
            }
        }
        Ev::Note(_) | Ev::Marker(_) => {}
    }
}

/// The model of entries `(id, entry)` with `id <= through`.
pub fn kv_model<'a>(log: impl IntoIterator<Item = &'a (u64, Ev)>, through: u64) -> Kv {
    let mut s = Kv::new();
    for (id, e) in log {
        if *id <= through {
            kv_apply(&mut s, e);
        }
    }
    s
}

/// What a generic recovery applied, besides the state.
pub struct KvRecovery {
    pub state: Kv,
    /// The entries handed to `apply`, in order.
    pub applied: Vec<(u64, Ev)>,
    /// The checkpoint's state, if one was used.
    pub from_checkpoint: Option<Kv>,
    pub recovery: Recovery<()>,
}

/// `recover_latest_state` over the key-value model, recording every applied entry.
pub fn recover_kv(dir: &Arc<dyn Directory>, mode: ReadMode) -> PersistenceResult<KvRecovery> {
    let r = recover_latest_state::<Kv, Ev, _>(
        dir,
        mode,
        |c| (c.clone().unwrap_or_default(), c, Vec::new()),
        |(s, _, applied), id, e| {
            kv_apply(s, &e);
            applied.push((id, e));
        },
    )?;
    let (state, from_checkpoint, applied) = r.state;
    Ok(KvRecovery {
        state,
        applied,
        from_checkpoint,
        recovery: Recovery {
            state: (),
            last_entry_id: r.last_entry_id,
            report: r.report,
        },
    })
}

/// Every entry in the WAL (best-effort), decoded.
pub fn wal_entries<E: serde::de::DeserializeOwned>(dir: &Arc<dyn Directory>) -> Vec<(u64, E)> {
    WalReader::<E>::new(dir.clone())
        .replay_best_effort()
        .unwrap()
        .into_iter()
        .map(|r| (r.entry_id, r.payload))
        .collect()
}

/// Number of WAL segment files.
pub fn wal_segments(dir: &Arc<dyn Directory>) -> Vec<String> {
    list(dir, WAL_DIR)
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The segments-and-deletes model for `WalEntry` (the path-named checkpoint view).

/// segment id -> (doc count, deleted docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegModel(pub BTreeMap<u64, (u32, BTreeSet<u32>)>);

impl SegModel {
    /// The documented semantics: `AddSegment` inserts (replacing), `DeleteDocuments`
    /// adds deletes to segments that exist, `EndMerge` removes the old segments and
    /// inserts the new one (doc count 0) with the remapped deletes that name it; the
    /// other entries change nothing.
    pub fn apply(&mut self, e: &WalEntry) {
        match e {
            WalEntry::AddSegment {
                segment_id,
                doc_count,
            } => {
                self.0.insert(*segment_id, (*doc_count, BTreeSet::new()));
            }
            WalEntry::DeleteDocuments { deletes } => {
                for (seg, doc) in deletes {
                    if let Some((_, del)) = self.0.get_mut(seg) {
                        del.insert(*doc);
                    }
                }
            }
            WalEntry::EndMerge {
                new_segment_id,
                old_segment_ids,
                remapped_deletes,
                ..
            } => {
                for old in old_segment_ids {
                    self.0.remove(old);
                }
                let del = remapped_deletes
                    .iter()
                    .filter(|(s, _)| s == new_segment_id)
                    .map(|(_, d)| *d)
                    .collect();
                self.0.insert(*new_segment_id, (0, del));
            }
            _ => {}
        }
    }

    pub fn of<'a>(log: impl IntoIterator<Item = &'a (u64, WalEntry)>, through: u64) -> Self {
        let mut m = SegModel::default();
        for (id, e) in log {
            if *id <= through {
                m.apply(e);
            }
        }
        m
    }

    /// The checkpoint payload for this state, deliberately in a scrambled order (the
    /// publisher must normalize it).
    pub fn to_checkpoint_state(&self) -> CheckpointState {
        let mut segments: Vec<CheckpointSegment> = self
            .0
            .iter()
            .map(|(id, (count, del))| CheckpointSegment {
                segment_id: *id,
                doc_count: *count,
                deleted_docs: del.iter().rev().copied().collect(),
            })
            .collect();
        segments.reverse();
        CheckpointState { segments }
    }

    pub fn from_checkpoint_state(c: &CheckpointState) -> Self {
        let mut m = SegModel::default();
        for s in &c.segments {
            m.0.insert(
                s.segment_id,
                (s.doc_count, s.deleted_docs.iter().copied().collect()),
            );
        }
        m
    }

    pub fn from_recovered(r: &RecoveredState) -> Self {
        let mut m = SegModel::default();
        for s in &r.segments {
            let prev = m.0.insert(
                s.segment_id,
                (s.doc_count, s.deleted_docs.iter().copied().collect()),
            );
            assert!(prev.is_none(), "segment {} recovered twice", s.segment_id);
        }
        assert!(
            r.segments
                .windows(2)
                .all(|w| w[0].segment_id < w[1].segment_id),
            "recovered segments not sorted by id"
        );
        m
    }
}
