//! The segment-index checkpoint state of the original API and its manager.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointFile;
use crate::error::PersistenceResult;
use crate::storage::Directory;

/// The durable index state stored in a checkpoint. Segments sorted by id and delete
/// lists sorted, so equal states encode to equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Known segments and their delete sets.
    pub segments: Vec<CheckpointSegment>,
}

/// One segment in a [`CheckpointState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSegment {
    /// Segment id.
    pub segment_id: u64,
    /// Documents in it.
    pub doc_count: u32,
    /// Deleted document ids.
    pub deleted_docs: Vec<u32>,
}

impl CheckpointState {
    /// A sorted copy (see [`normalize`](Self::normalize)).
    pub fn normalized(&self) -> Self {
        let mut s = self.clone();
        s.normalize();
        s
    }

    /// Sorts segments and delete lists, so equal states encode identically.
    pub fn normalize(&mut self) {
        self.segments.sort_by_key(|s| s.segment_id);
        for s in &mut self.segments {
            s.deleted_docs.sort_unstable();
            s.deleted_docs.dedup();
        }
    }
}

/// Reads and writes [`CheckpointState`] checkpoints.
pub struct CheckpointManager {
    file: CheckpointFile,
}

impl CheckpointManager {
    /// A manager over `dir`.
    pub fn new(dir: impl Into<Arc<dyn Directory>>) -> Self {
        CheckpointManager {
            file: CheckpointFile::new(dir),
        }
    }

    /// Writes a checkpoint (atomic, not durable).
    pub fn write_checkpoint(
        &self,
        state: &CheckpointState,
        last_entry_id: u64,
        checkpoint_path: &str,
    ) -> PersistenceResult<()> {
        let mut state = state.clone();
        state.normalize();
        self.file
            .write_postcard(checkpoint_path, last_entry_id, &state)
    }

    /// Writes a checkpoint atomically and durably.
    pub fn write_checkpoint_durable(
        &self,
        state: &CheckpointState,
        last_entry_id: u64,
        checkpoint_path: &str,
    ) -> PersistenceResult<()> {
        let mut state = state.clone();
        state.normalize();
        self.file
            .write_postcard_durable(checkpoint_path, last_entry_id, &state)
    }

    /// Reads a checkpoint: `(state, last_entry_id)`.
    pub fn read_checkpoint(
        &self,
        checkpoint_path: &str,
    ) -> PersistenceResult<(CheckpointState, u64)> {
        let (last, state) = self.file.read_postcard(checkpoint_path)?;
        Ok((state, last))
    }
}
