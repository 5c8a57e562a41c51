//! Checkpoint files: a checksummed, postcard-encoded snapshot of the state after a given
//! entry id.
//!
//! The byte format is the core's (`durability_core::checkpoint`): a 64-byte header —
//! magic, version, log id, store number, last entry id, payload length, CRC-32C over header and
//! payload — then the payload. A short file, trailing bytes, a length over
//! [`MAX_CHECKPOINT_LEN`], or any changed byte is an error; nothing is allocated beyond
//! the bytes actually present.
//!
//! Two homes for the same bytes: [`CheckpointFile`] reads and writes a checkpoint at a
//! path of your choosing (the original API); [`Checkpoints`] keeps numbered checkpoints
//! under `checkpoints/` where the newest valid one wins (used by the generic lifecycle).
//!
//! Determinism: the payload is postcard of your state, so equal states give equal bytes
//! as long as the state serializes its maps and sets in a stable order (`BTreeMap`,
//! sorted `Vec`s; not `HashMap`). For
//! [`CheckpointState`](crate::checkpointing::CheckpointState), `CheckpointManager` and
//! `CheckpointPublisher::publish_checkpoint` sort it first
//! ([`normalized`](crate::checkpointing::CheckpointState::normalized)); the generic
//! `publish` writes your state as it is.

use std::io::Read;
use std::sync::Arc;

use durability_core::checkpoint::{self as core_ckpt, field, CheckpointStore};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use durability_core::checkpoint::{CheckpointError, CheckpointHeader, MAX_CHECKPOINT_LEN};

use crate::error::{PersistenceError, PersistenceResult};
use crate::storage::{DirStorage, Directory, DurableDirectory};

/// Subdirectory of [`Checkpoints`].
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Numbered checkpoints under `checkpoints/`; the newest valid one wins.
pub type Checkpoints = CheckpointStore<DirStorage>;

/// Opens the checkpoint store of a directory.
pub fn checkpoints(dir: Arc<dyn Directory>) -> Checkpoints {
    CheckpointStore::new(DirStorage::segments(dir, CHECKPOINT_DIR))
}

pub(crate) fn checkpoint_error(e: CheckpointError) -> PersistenceError {
    match e {
        CheckpointError::Checksum { expected, actual } => {
            PersistenceError::CrcMismatch { expected, actual }
        }
        other => PersistenceError::Format(other.to_string()),
    }
}

/// Encodes a checkpoint image: header and postcard payload.
pub fn encode_postcard<C: Serialize>(
    log_id: u64,
    last_entry_id: u64,
    state: &C,
) -> PersistenceResult<Vec<u8>> {
    let payload =
        postcard::to_allocvec(state).map_err(|e| PersistenceError::Encode(e.to_string()))?;
    let header =
        CheckpointHeader::new(log_id, 0, last_entry_id, &payload).map_err(checkpoint_error)?;
    let mut out = Vec::with_capacity(field::HEADER_LEN + payload.len());
    out.extend_from_slice(&header.emit());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads and writes checkpoint files at paths in a directory.
#[derive(Clone)]
pub struct CheckpointFile {
    dir: Arc<dyn Directory>,
}

impl CheckpointFile {
    /// A checkpoint reader/writer over `dir`.
    pub fn new(dir: impl Into<Arc<dyn Directory>>) -> Self {
        CheckpointFile { dir: dir.into() }
    }

    /// Writes a checkpoint atomically (temp file + rename). Not durable on a power cut:
    /// use [`write_postcard_durable`](Self::write_postcard_durable) for that.
    pub fn write_postcard<C: Serialize>(
        &self,
        path: &str,
        last_entry_id: u64,
        state: &C,
    ) -> PersistenceResult<()> {
        self.dir
            .atomic_write(path, &encode_postcard(0, last_entry_id, state)?)
    }

    /// Writes a checkpoint atomically and durably: temp file synced, renamed, directory
    /// synced. When it returns `Ok`, the checkpoint survives power loss.
    pub fn write_postcard_durable<C: Serialize>(
        &self,
        path: &str,
        last_entry_id: u64,
        state: &C,
    ) -> PersistenceResult<()> {
        self.write_bytes_durable(path, &encode_postcard(0, last_entry_id, state)?)
    }

    pub(crate) fn write_bytes_durable(&self, path: &str, image: &[u8]) -> PersistenceResult<()> {
        // Directories created here must be durable too: sync each new one's parent.
        let mut created = Vec::new();
        let mut dir = crate::storage::parent_dir(path);
        while !dir.is_empty() && !self.dir.exists(dir) {
            created.push(dir);
            dir = crate::storage::parent_dir(dir);
        }
        if let Some(deepest) = created.first() {
            self.dir.create_dir_all(deepest)?;
            for d in created.iter().rev() {
                self.dir.sync_dir(crate::storage::parent_dir(d))?;
            }
        }
        self.dir.atomic_write_durable(path, image)
    }

    /// Reads and verifies a checkpoint image; returns its header and payload.
    pub fn read_bytes(&self, path: &str) -> PersistenceResult<(CheckpointHeader, Vec<u8>)> {
        let mut image = Vec::new();
        // Bounded: never more than a maximal checkpoint plus one byte (to see trailing bytes).
        let limit = field::HEADER_LEN as u64 + MAX_CHECKPOINT_LEN as u64 + 1;
        self.dir
            .open_file(path)?
            .take(limit)
            .read_to_end(&mut image)?;
        let (header, payload) = core_ckpt::decode(&image).map_err(checkpoint_error)?;
        Ok((header, payload.to_vec()))
    }

    /// Reads a checkpoint; returns `(last_entry_id, state)`.
    pub fn read_postcard<C: DeserializeOwned>(&self, path: &str) -> PersistenceResult<(u64, C)> {
        let (header, payload) = self.read_bytes(path)?;
        let state =
            postcard::from_bytes(&payload).map_err(|e| PersistenceError::Decode(e.to_string()))?;
        Ok((header.last_id, state))
    }
}
