//! Publishing a checkpoint and truncating the WAL behind it, in the only safe order.
//!
//! 1. Refuse a checkpoint beyond the last id the writer assigned, or older than the
//!    first entry the WAL still holds (the entries between would be in neither).
//! 2. `flush_and_sync` the WAL: everything the checkpoint covers is durable there too.
//! 3. Write the checkpoint durably (temp file, fsync, rename, directory fsync).
//! 4. Append a marker entry recording it and make that durable.
//! 5. Delete the WAL segments wholly covered, oldest first, each deletion durable.
//! 6. Delete checkpoints older than the newest `keep` (default 2).
//!
//! A crash at any point recovers to the state before the publish or after it, never a
//! mix and never with entries lost: see `docs/design.md` for the case analysis.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::checkpoint::{checkpoints, encode_postcard, CheckpointFile};
use crate::checkpointing::CheckpointState;
use crate::error::{PersistenceError, PersistenceResult};
use crate::storage::{sync_parent_dir, Directory};
use crate::walog::{WalEntry, WalWriter};

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishResult {
    /// Where the checkpoint was written.
    pub checkpoint_path: String,
    /// The last entry id it covers: recovery replays entries after it.
    pub checkpoint_last_entry_id: u64,
    /// Entry id of the marker recording it in the WAL (0 if no marker was written).
    pub wal_checkpoint_entry_id: u64,
    /// WAL segment files deleted.
    pub deleted_wal_segments: usize,
    /// Older checkpoints deleted.
    pub deleted_checkpoints: usize,
}

/// Publishes checkpoints for the WAL in a directory.
pub struct CheckpointPublisher {
    dir: Arc<dyn Directory>,
    keep: usize,
    /// Path-named checkpoints published by this publisher, oldest first (for `keep`).
    published: Mutex<VecDeque<String>>,
}

impl CheckpointPublisher {
    /// A publisher over `dir` that keeps the newest 2 checkpoints.
    pub fn new(dir: impl Into<Arc<dyn Directory>>) -> Self {
        CheckpointPublisher {
            dir: dir.into(),
            keep: 2,
            published: Mutex::new(VecDeque::new()),
        }
    }

    /// How many checkpoints to keep (at least 1).
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// Publishes a [`CheckpointState`] (normalized: equal states, equal bytes) at
    /// `checkpoint_path`, records it with a `WalEntry::Checkpoint` marker, truncates the
    /// covered WAL segments, and deletes the checkpoints this publisher wrote before the
    /// newest `keep`. Checkpoints written by an earlier publisher (before a restart) are
    /// not tracked and are left for the caller to delete.
    pub fn publish_checkpoint(
        &self,
        wal: &mut WalWriter<WalEntry>,
        state: &CheckpointState,
        checkpoint_last_entry_id: u64,
        checkpoint_path: &str,
    ) -> PersistenceResult<PublishResult> {
        wal.core()?.check_checkpoint(checkpoint_last_entry_id)?;
        wal.flush_and_sync()?;
        let image = encode_postcard(wal.log_id()?, checkpoint_last_entry_id, &state.normalized())?;
        CheckpointFile::new(self.dir.clone()).write_bytes_durable(checkpoint_path, &image)?;
        let marker = wal.append(&WalEntry::Checkpoint {
            checkpoint_path: checkpoint_path.to_owned(),
            last_entry_id: checkpoint_last_entry_id,
        })?;
        wal.flush_and_sync()?;
        let deleted_wal_segments = wal.truncate_through(checkpoint_last_entry_id)? as usize;
        let deleted_checkpoints = self.collect_garbage(checkpoint_path)?;
        Ok(PublishResult {
            checkpoint_path: checkpoint_path.to_owned(),
            checkpoint_last_entry_id,
            wal_checkpoint_entry_id: marker,
            deleted_wal_segments,
            deleted_checkpoints,
        })
    }

    fn collect_garbage(&self, newest: &str) -> PersistenceResult<usize> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published.retain(|p| p != newest);
        published.push_back(newest.to_owned());
        let mut deleted = 0;
        while published.len() > self.keep {
            let old = published.pop_front().expect("longer than keep >= 1");
            match self.dir.delete(&old) {
                Ok(()) => {
                    sync_parent_dir(&*self.dir, &old)?;
                    deleted += 1;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Publishes any serde state as a numbered checkpoint under `checkpoints/` (the
    /// newest valid one wins at recovery, see
    /// [`recover_latest_state`](crate::recover::recover_latest_state)), optionally
    /// recording it with `marker` in the WAL, then truncates the covered WAL segments
    /// and keeps the newest `keep` checkpoints.
    pub fn publish<E: Serialize, C: Serialize>(
        &self,
        wal: &mut WalWriter<E>,
        state: &C,
        checkpoint_last_entry_id: u64,
        marker: Option<&E>,
    ) -> PersistenceResult<PublishResult> {
        let payload =
            postcard::to_allocvec(state).map_err(|e| PersistenceError::Encode(e.to_string()))?;
        let marker = marker
            .map(|m| postcard::to_allocvec(m).map_err(|e| PersistenceError::Encode(e.to_string())))
            .transpose()?;
        let mut store = checkpoints(self.dir.clone());
        let report = durability_core::lifecycle::publish(
            wal.core()?,
            &mut store,
            checkpoint_last_entry_id,
            &payload,
            marker.as_deref(),
            self.keep,
            &mut Vec::new(),
        )?;
        Ok(PublishResult {
            checkpoint_path: store.storage().segment_path(report.checkpoint_seq),
            checkpoint_last_entry_id,
            wal_checkpoint_entry_id: report.marker_id.unwrap_or(0),
            deleted_wal_segments: report.wal_segments_removed as usize,
            deleted_checkpoints: report.checkpoints_removed as usize,
        })
    }
}
