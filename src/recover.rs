//! Recovery: a checkpoint plus the WAL suffix after it.
//!
//! - [`recover_latest_state`]: any state, any entry type. Loads the newest valid
//!   checkpoint from `checkpoints/` and folds in the WAL entries after it, in ONE
//!   streaming pass over the WAL.
//! - [`RecoveryManager`]: the original segments-and-deletes view over path-named
//!   checkpoints recorded by `WalEntry::Checkpoint` markers.
//!
//! Every recovery checks that the WAL still reaches back to the checkpoint: if segments
//! were truncated behind a checkpoint that is now missing or unusable, that is an error
//! in every mode — never an incomplete WAL silently replayed onto empty state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durability_core::lifecycle::replay_suffix;
use durability_core::{Location, ReadMode};
use serde::de::DeserializeOwned;

use crate::checkpoint::{checkpoints, CheckpointFile};
pub use crate::checkpointing::{CheckpointSegment, CheckpointState};
use crate::error::{PersistenceError, PersistenceResult};
use crate::storage::{DirStorage, Directory};
use crate::walog::{WalEntry, WalReader, WAL_DIR};

const READ_BUFFER: usize = 256 * 1024;

/// Where a recovery started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointUsed {
    /// The checkpoint's path.
    pub path: String,
    /// The last entry id it covers.
    pub last_entry_id: u64,
}

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint used, if any.
    pub checkpoint: Option<CheckpointUsed>,
    /// Newer checkpoints skipped because they did not verify (torn writes).
    pub checkpoints_skipped: u64,
    /// WAL segments read.
    pub segments_scanned: u64,
    /// WAL entries applied.
    pub records_applied: u64,
    /// Payload bytes applied.
    pub bytes_applied: u64,
    /// Where a torn tail of the final segment was cut (best-effort), if one was.
    pub torn_tail: Option<Location>,
    /// The id the next appended entry gets.
    pub next_entry_id: u64,
    /// Wall time taken.
    pub elapsed: Duration,
}

impl RecoveryReport {
    fn new(
        checkpoint: Option<CheckpointUsed>,
        checkpoints_skipped: u64,
        replay: &durability_core::wal::ReplayReport,
        next_entry_id: u64,
        started: Instant,
    ) -> Self {
        let report = RecoveryReport {
            checkpoint,
            checkpoints_skipped,
            segments_scanned: replay.segments,
            records_applied: replay.entries,
            bytes_applied: replay.payload_bytes,
            torn_tail: replay.torn_at,
            next_entry_id,
            elapsed: started.elapsed(),
        };
        report.log();
        report
    }

    /// Applied records per second of wall time (0 when nothing was timed).
    pub fn records_per_sec(&self) -> f64 {
        per_sec(self.records_applied, self.elapsed)
    }

    /// Applied payload bytes per second of wall time (0 when nothing was timed).
    pub fn bytes_per_sec(&self) -> f64 {
        per_sec(self.bytes_applied, self.elapsed)
    }

    fn log(&self) {
        #[cfg(feature = "log")]
        log::info!(
            "durability: recovered from {:?}; {} segments, {} records, {} bytes, torn tail {:?}, next id {}, in {:?} ({:.0} records/s, {:.1} MB/s)",
            self.checkpoint,
            self.segments_scanned,
            self.records_applied,
            self.bytes_applied,
            self.torn_tail,
            self.next_entry_id,
            self.elapsed,
            self.records_per_sec(),
            self.bytes_per_sec() / 1e6
        );
    }
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// A recovered state.
#[derive(Debug, Clone)]
pub struct Recovery<S> {
    /// The state.
    pub state: S,
    /// The last entry id reflected in it (0 if none).
    pub last_entry_id: u64,
    /// What happened.
    pub report: RecoveryReport,
}

/// Decodes postcard bytes; `what` names them in the error and is formatted only then
/// (recovery decodes millions of entries: a label string per entry cost 13 % of it).
fn decode<T: DeserializeOwned>(what: impl std::fmt::Display, bytes: &[u8]) -> PersistenceResult<T> {
    postcard::from_bytes(bytes).map_err(|e| PersistenceError::Decode(format!("{what}: {e}")))
}

/// Recovers any state from the newest valid checkpoint in `checkpoints/` plus the WAL
/// suffix, in one streaming pass. `init` gets the checkpoint's state (`None` without
/// one); `apply` folds each later entry in order.
pub fn recover_latest_state<C, E, S>(
    dir: &Arc<dyn Directory>,
    mode: ReadMode,
    init: impl FnOnce(Option<C>) -> S,
    mut apply: impl FnMut(&mut S, u64, E),
) -> PersistenceResult<Recovery<S>>
where
    C: DeserializeOwned,
    E: DeserializeOwned,
{
    let started = Instant::now();
    let mut store = checkpoints(dir.clone());
    let mut trap = crate::Trap::new();
    let mut init_trap = crate::Trap::new();
    let r = durability_core::lifecycle::recover(
        DirStorage::segments(dir.clone(), WAL_DIR),
        &mut store,
        &mut vec![0u8; READ_BUFFER],
        mode,
        |ckpt| match ckpt {
            None => Ok(init(None)),
            Some((_, payload)) => {
                let c = decode::<C>("checkpoint", payload);
                match c {
                    Ok(c) => Ok(init(Some(c))),
                    Err(e) => init_trap
                        .hold(Err(e))
                        .map(|_| unreachable!("held an error")),
                }
            }
        },
        |state, id, bytes| {
            let r = decode::<E>(format_args!("entry {id}"), bytes).map(|e| apply(state, id, e));
            trap.hold(r)
        },
    );
    if let Some(e) = trap.0 {
        return Err(e);
    }
    let (state, core) = init_trap.merge(r)?;
    let used = core.checkpoint.map(|c| CheckpointUsed {
        path: store.storage().segment_path(c.seq),
        last_entry_id: c.header.last_id,
    });
    let skipped = core.checkpoint.map_or(0, |c| c.skipped);
    let report = RecoveryReport::new(used, skipped, &core.replay, core.next_id, started);
    Ok(Recovery {
        state,
        last_entry_id: core.next_id - 1,
        report,
    })
}

/// Recovers from an optional path-named checkpoint plus the WAL suffix after it.
/// `strict_checkpoint`: a missing or invalid named checkpoint is an error; otherwise it is
/// ignored, and recovery starts from scratch — which the WAL must then still allow.
pub fn recover_with_checkpoint_file<C, E, S>(
    dir: &Arc<dyn Directory>,
    checkpoint_path: Option<&str>,
    mode: ReadMode,
    strict_checkpoint: bool,
    init: impl FnOnce(Option<C>) -> S,
    mut apply: impl FnMut(&mut S, u64, E),
) -> PersistenceResult<Recovery<S>>
where
    C: DeserializeOwned,
    E: DeserializeOwned,
{
    let started = Instant::now();
    let loaded = match checkpoint_path {
        None => None,
        Some(path) => match CheckpointFile::new(dir.clone()).read_bytes(path) {
            Ok((header, payload)) => Some((path, header, decode::<C>("checkpoint", &payload))),
            Err(e) if strict_checkpoint => return Err(e),
            Err(_) => None,
        },
    };
    let (mut state, from, log_id, used) = match loaded {
        Some((path, header, Ok(c))) => (
            init(Some(c)),
            header.last_id + 1,
            Some(header.log_id),
            Some(CheckpointUsed {
                path: path.to_owned(),
                last_entry_id: header.last_id,
            }),
        ),
        Some((_, _, Err(e))) if strict_checkpoint => return Err(e),
        _ => (init(None), 1, None, None),
    };
    let mut trap = crate::Trap::new();
    let r = replay_suffix(
        DirStorage::segments(dir.clone(), WAL_DIR),
        &mut vec![0u8; READ_BUFFER],
        mode,
        from,
        log_id,
        |id, bytes| {
            let r =
                decode::<E>(format_args!("entry {id}"), bytes).map(|e| apply(&mut state, id, e));
            trap.hold(r)
        },
    );
    let (replay, next_id) = trap.merge(r)?;
    let report = RecoveryReport::new(used, 0, &replay, next_id, started);
    Ok(Recovery {
        state,
        last_entry_id: next_id - 1,
        report,
    })
}

/// State recovered from checkpoint + WAL (the segments-and-deletes view).
#[derive(Debug, Clone)]
pub struct RecoveredState {
    /// Active segments, sorted by id.
    pub segments: Vec<RecoveredSegment>,
    /// Last entry id applied.
    pub last_entry_id: u64,
    /// What the recovery did.
    pub report: RecoveryReport,
}

/// One recovered segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSegment {
    /// Segment id.
    pub segment_id: u64,
    /// Documents in it (0 if unknown, e.g. produced by a merge).
    pub doc_count: u32,
    /// Deleted document ids.
    pub deleted_docs: HashSet<u32>,
}

/// Recovery for the segments-and-deletes view over `WalEntry`.
pub struct RecoveryManager {
    dir: Arc<dyn Directory>,
}

impl RecoveryManager {
    /// A manager over `dir`.
    pub fn new(dir: impl Into<Arc<dyn Directory>>) -> Self {
        RecoveryManager { dir: dir.into() }
    }

    /// Strict recovery from an optional checkpoint: a named checkpoint that is missing or
    /// corrupt, a torn WAL tail, or any corruption is an error.
    pub fn recover(&self, checkpoint_path: Option<&str>) -> PersistenceResult<RecoveredState> {
        self.run(checkpoint_path, ReadMode::Strict, true)
    }

    /// Best-effort recovery: an unusable checkpoint is ignored (if the WAL still holds
    /// everything), a torn WAL tail is cut. Corruption of durable data, or a WAL truncated
    /// behind an unusable checkpoint, is still an error.
    pub fn recover_best_effort(
        &self,
        checkpoint_path: Option<&str>,
    ) -> PersistenceResult<RecoveredState> {
        self.run(checkpoint_path, ReadMode::BestEffort, false)
    }

    /// Strict recovery from the checkpoint recorded by the newest `WalEntry::Checkpoint`
    /// marker in the WAL (which must be valid), or from scratch if there is none.
    pub fn recover_latest(&self) -> PersistenceResult<RecoveredState> {
        let path = self.latest_checkpoint(ReadMode::Strict)?;
        self.recover(path.as_deref())
    }

    /// Best-effort variant of [`recover_latest`](Self::recover_latest): falls back to
    /// older recorded checkpoints that still verify.
    pub fn recover_latest_best_effort(&self) -> PersistenceResult<RecoveredState> {
        let path = self.latest_checkpoint(ReadMode::BestEffort)?;
        self.recover_best_effort(path.as_deref())
    }

    /// The newest recorded checkpoint that verifies (strict: the newest must).
    fn latest_checkpoint(&self, mode: ReadMode) -> PersistenceResult<Option<String>> {
        let mut recorded = Vec::new();
        WalReader::<WalEntry>::new(self.dir.clone()).replay_with(mode, 0, |r| {
            if let WalEntry::Checkpoint {
                checkpoint_path, ..
            } = r.payload
            {
                recorded.push(checkpoint_path);
            }
            Ok(())
        })?;
        let file = CheckpointFile::new(self.dir.clone());
        for (i, path) in recorded.iter().enumerate().rev() {
            match file.read_bytes(path) {
                Ok(_) => return Ok(Some(path.clone())),
                Err(e) if mode == ReadMode::Strict && i + 1 == recorded.len() => return Err(e),
                Err(_) => continue,
            }
        }
        Ok(None)
    }

    fn run(
        &self,
        checkpoint_path: Option<&str>,
        mode: ReadMode,
        strict: bool,
    ) -> PersistenceResult<RecoveredState> {
        let r = recover_with_checkpoint_file::<CheckpointState, WalEntry, _>(
            &self.dir,
            checkpoint_path,
            mode,
            strict,
            |ckpt| {
                let mut map = HashMap::new();
                for s in ckpt.map(|c| c.segments).unwrap_or_default() {
                    map.insert(
                        s.segment_id,
                        RecoveredSegment {
                            segment_id: s.segment_id,
                            doc_count: s.doc_count,
                            deleted_docs: s.deleted_docs.into_iter().collect(),
                        },
                    );
                }
                map
            },
            |map, _, entry| apply_entry(map, entry),
        )?;
        let mut segments: Vec<RecoveredSegment> = r.state.into_values().collect();
        segments.sort_by_key(|s| s.segment_id);
        Ok(RecoveredState {
            segments,
            last_entry_id: r.last_entry_id,
            report: r.report,
        })
    }

    /// The checkpoint payload for a recovered state (sorted: equal states, equal bytes).
    pub fn to_checkpoint_state(state: &RecoveredState) -> CheckpointState {
        let mut out = CheckpointState {
            segments: state
                .segments
                .iter()
                .map(|s| CheckpointSegment {
                    segment_id: s.segment_id,
                    doc_count: s.doc_count,
                    deleted_docs: s.deleted_docs.iter().copied().collect(),
                })
                .collect(),
        };
        out.normalize();
        out
    }
}

/// Applies one entry to the segments-and-deletes view.
fn apply_entry(map: &mut HashMap<u64, RecoveredSegment>, entry: WalEntry) {
    match entry {
        WalEntry::AddSegment {
            segment_id,
            doc_count,
        } => {
            map.insert(
                segment_id,
                RecoveredSegment {
                    segment_id,
                    doc_count,
                    deleted_docs: HashSet::new(),
                },
            );
        }
        WalEntry::DeleteDocuments { deletes } => {
            for (segment_id, doc_id) in deletes {
                if let Some(seg) = map.get_mut(&segment_id) {
                    seg.deleted_docs.insert(doc_id);
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
                map.remove(&old);
            }
            let deleted_docs = remapped_deletes
                .into_iter()
                .filter(|&(seg, _)| seg == new_segment_id)
                .map(|(_, doc)| doc)
                .collect();
            map.insert(
                new_segment_id,
                RecoveredSegment {
                    segment_id: new_segment_id,
                    doc_count: 0,
                    deleted_docs,
                },
            );
        }
        WalEntry::StartMerge { .. }
        | WalEntry::CancelMerge { .. }
        | WalEntry::Checkpoint { .. } => {}
    }
}

#[cfg(test)]
mod throughput_tests {
    use super::*;

    #[test]
    fn rates_divide_by_wall_time_and_never_by_zero() {
        assert_eq!(per_sec(10, Duration::from_secs(2)), 5.0);
        assert_eq!(per_sec(3, Duration::from_millis(500)), 6.0);
        assert_eq!(per_sec(10, Duration::ZERO), 0.0);
    }
}
