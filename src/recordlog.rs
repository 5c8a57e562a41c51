//! A single-file, append-only log of checksummed records.
//!
//! Same frames and end rules as the WAL's final segment. Reopening a log whose tail is
//! torn cuts the tail (truncate + sync) before the first append.

use std::sync::Arc;

use durability_core::recordlog as core_log;
use durability_core::ReadMode;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use durability_core::recordlog::ReadReport;

use crate::error::{PersistenceError, PersistenceResult};
use crate::storage::{DirStorage, Directory, FlushPolicy, FlushSchedule};

const WRITE_BUFFER: usize = 64 * 1024;
const READ_BUFFER: usize = 256 * 1024;

/// How a reader treats a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordLogReadMode {
    /// A torn tail is an error.
    Strict,
    /// A torn tail ends the log.
    BestEffort,
}

impl From<RecordLogReadMode> for ReadMode {
    fn from(m: RecordLogReadMode) -> Self {
        match m {
            RecordLogReadMode::Strict => ReadMode::Strict,
            RecordLogReadMode::BestEffort => ReadMode::BestEffort,
        }
    }
}

type CoreWriter = core_log::RecordLogWriter<DirStorage, Vec<u8>>;

/// Appends records to a log file. Opens (and repairs) lazily on first use; dropping it
/// flushes without syncing.
pub struct RecordLogWriter {
    inner: CoreWriter,
    schedule: FlushSchedule,
}

impl RecordLogWriter {
    /// A writer for the log at `path` in `dir`. No I/O here; an existing log is continued.
    pub fn new(dir: Arc<dyn Directory>, path: &str) -> Self {
        RecordLogWriter {
            inner: CoreWriter::new(
                DirStorage::single(dir, path),
                vec![0u8; WRITE_BUFFER],
                crate::new_log_id(),
            ),
            schedule: FlushSchedule::new(),
        }
    }

    /// Appends one record.
    pub fn append_bytes(&mut self, payload: &[u8]) -> PersistenceResult<()> {
        self.inner.append(payload)?;
        if self.schedule.on_append() {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends one postcard-encoded record.
    pub fn append_postcard<T: Serialize>(&mut self, value: &T) -> PersistenceResult<()> {
        let bytes =
            postcard::to_allocvec(value).map_err(|e| PersistenceError::Encode(e.to_string()))?;
        self.append_bytes(&bytes)
    }

    /// Hands buffered records to the directory (not a barrier).
    pub fn flush(&mut self) -> PersistenceResult<()> {
        self.inner.flush()?;
        self.schedule.on_flush();
        Ok(())
    }

    /// Flushes and makes every record durable.
    pub fn flush_and_sync(&mut self) -> PersistenceResult<()> {
        self.inner.sync()?;
        self.schedule.on_flush();
        Ok(())
    }

    /// When to flush automatically.
    pub fn set_flush_policy(&mut self, policy: FlushPolicy) {
        self.schedule.policy = policy;
    }

    /// Whether an I/O or sync failure poisoned this writer.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }
}

impl Drop for RecordLogWriter {
    fn drop(&mut self) {
        if !self.inner.is_poisoned() {
            let _ = self.inner.flush();
        }
    }
}

/// Reads a log file.
pub struct RecordLogReader {
    dir: Arc<dyn Directory>,
    path: String,
}

impl RecordLogReader {
    /// A reader for the log at `path` in `dir`.
    pub fn new(dir: Arc<dyn Directory>, path: &str) -> Self {
        RecordLogReader {
            dir,
            path: path.to_owned(),
        }
    }

    /// Streams records to `f` without materialising the log.
    pub fn read_with<F>(&self, mode: RecordLogReadMode, mut f: F) -> PersistenceResult<ReadReport>
    where
        F: FnMut(&[u8]) -> PersistenceResult<()>,
    {
        let mut trap = crate::Trap::new();
        let storage = DirStorage::single(self.dir.clone(), &self.path);
        let mut reader = core_log::RecordLogReader::new(storage, vec![0u8; READ_BUFFER]);
        let r = reader.read(mode.into(), |_, bytes| trap.hold(f(bytes)));
        trap.merge(r)
    }

    /// Every record.
    pub fn read_all(&self, mode: RecordLogReadMode) -> PersistenceResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.read_with(mode, |b| {
            out.push(b.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    /// Every record, postcard-decoded.
    pub fn read_all_postcard<T: DeserializeOwned>(
        &self,
        mode: RecordLogReadMode,
    ) -> PersistenceResult<Vec<T>> {
        let mut out = Vec::new();
        self.read_with(mode, |b| {
            out.push(postcard::from_bytes(b).map_err(|e| PersistenceError::Decode(e.to_string()))?);
            Ok(())
        })?;
        Ok(out)
    }
}
