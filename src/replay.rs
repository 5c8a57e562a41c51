//! Replay helpers over record logs: the "checkpoint + log suffix" pattern.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{PersistenceError, PersistenceResult};
use crate::recordlog::{RecordLogReadMode, RecordLogReader};
use crate::storage::Directory;

/// Applies every postcard record of the log at `log_path` (best-effort: a torn tail ends
/// the log; corruption is an error). A missing log is empty. Returns the records applied.
pub fn replay_postcard<T: DeserializeOwned>(
    dir: Arc<dyn Directory>,
    log_path: &str,
    apply: impl FnMut(T) -> PersistenceResult<()>,
) -> PersistenceResult<u64> {
    replay_postcard_since(dir, log_path, 0, apply)
}

/// Like [`replay_postcard`], skipping the first `skip` records (a checkpoint that
/// covers records `1..=skip`). Streams: the log is never held in memory.
pub fn replay_postcard_since<T: DeserializeOwned>(
    dir: Arc<dyn Directory>,
    log_path: &str,
    skip: u64,
    mut apply: impl FnMut(T) -> PersistenceResult<()>,
) -> PersistenceResult<u64> {
    if !dir.exists(log_path) {
        return Ok(0);
    }
    let mut index = 0u64;
    let mut applied = 0u64;
    RecordLogReader::new(dir, log_path).read_with(RecordLogReadMode::BestEffort, |bytes| {
        index += 1;
        if index <= skip {
            return Ok(());
        }
        let value = postcard::from_bytes(bytes)
            .map_err(|e| PersistenceError::Decode(format!("record {index}: {e}")))?;
        applied += 1;
        apply(value)
    })?;
    Ok(applied)
}
