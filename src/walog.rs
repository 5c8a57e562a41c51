//! The write-ahead log over a [`Directory`]: segments under `wal/`.
//!
//! [`WalWriter<E>`] appends serde entries (postcard-encoded) or raw bytes and assigns
//! each a contiguous entry id; [`WalReader<E>`] replays them, strictly or best-effort.
//! The format, the end-of-log rules and the sync-marker argument live in the core crate
//! (`durability_core::wal`, `durability_core::segment`) and `docs/design.md`.
//!
//! # Durability
//!
//! - `append` buffers; `flush` hands bytes to the directory (not durable on a power cut);
//!   `flush_and_sync` is the barrier: on `Ok`, every entry appended before it survives.
//! - Any I/O or sync error poisons the writer: every later call fails, and ids handed
//!   out after the last successful barrier may be lost. A new writer resumes after what
//!   is actually on disk.
//! - Dropping a writer flushes what it buffered (like `BufWriter`, ignoring errors) but
//!   does not sync.
//! - `WalWriter::new` never destroys an existing WAL: it resumes it on first use.

use std::marker::PhantomData;
use std::sync::Arc;

use durability_core::wal::{self as core_wal, WalConfig};
use durability_core::ReadMode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::group::SharedWalWriter;
pub use durability_core::wal::ReplayReport;

use crate::error::{PersistenceError, PersistenceResult};
use crate::storage::{DirStorage, Directory, FlushPolicy, FlushSchedule};

/// Subdirectory holding the segments.
pub const WAL_DIR: &str = "wal";
/// Largest entry payload in bytes, shared by writer and reader.
pub const MAX_ENTRY_BYTES: u32 = durability_core::frame::MAX_ENTRY_LEN;

const WRITE_BUFFER: usize = 64 * 1024;
const READ_BUFFER: usize = 256 * 1024;

/// Segment-index WAL operations (the original entry type; any serde type works too).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalEntry {
    /// A segment became visible.
    AddSegment {
        /// The segment.
        segment_id: u64,
        /// Documents in it.
        doc_count: u32,
    },
    /// A merge started.
    StartMerge {
        /// Merge transaction.
        transaction_id: u64,
        /// Segments being merged.
        segment_ids: Vec<u64>,
    },
    /// A merge was abandoned.
    CancelMerge {
        /// Merge transaction.
        transaction_id: u64,
        /// Segments that were being merged.
        segment_ids: Vec<u64>,
    },
    /// A merge finished.
    EndMerge {
        /// Merge transaction.
        transaction_id: u64,
        /// The merged segment.
        new_segment_id: u64,
        /// Segments it replaces.
        old_segment_ids: Vec<u64>,
        /// Deletes remapped into the new segment, as (segment_id, doc_id).
        remapped_deletes: Vec<(u64, u32)>,
    },
    /// Documents deleted, as (segment_id, doc_id).
    DeleteDocuments {
        /// The deletes.
        deletes: Vec<(u64, u32)>,
    },
    /// A checkpoint covering entries up to `last_entry_id` is durable.
    Checkpoint {
        /// Where the checkpoint is.
        checkpoint_path: String,
        /// Last entry id it covers.
        last_entry_id: u64,
    },
}

/// An entry with the id the writer assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord<E> {
    /// The entry id (contiguous, from 1 unless a checkpoint covers earlier ones).
    pub entry_id: u64,
    /// The entry.
    pub payload: E,
}

pub(crate) type CoreWriter = core_wal::WalWriter<DirStorage, Vec<u8>>;

/// Lock file that makes a writer the only one on its directory.
pub const LOCK_FILE: &str = "wal.lock";

/// Appends entries to the WAL in a directory. `Send`.
///
/// One writer per directory: on first use the writer takes the directory's exclusive
/// lock on [`LOCK_FILE`] (an OS file lock on `FsDirectory`, so also against other
/// processes; an in-process lock on `MemoryDirectory`), and a second writer gets
/// `PersistenceError::Locked` instead of corrupting the WAL. The lock is released when
/// the writer is dropped or the process exits.
pub struct WalWriter<E> {
    inner: CoreWriter,
    dir: Arc<dyn Directory>,
    lock: Option<crate::storage::DirLock>,
    locked: bool,
    schedule: FlushSchedule,
    /// The configured segment limit (what preallocation fills new segments to).
    segment_limit: u64,
    preallocate: bool,
    _entry: PhantomData<fn(&E)>,
}

impl<E> WalWriter<E> {
    /// A writer for the WAL under `wal/` in `dir`. No I/O happens here: on first use an
    /// existing WAL is resumed (ids continue, a torn tail is cut, nothing valid is ever
    /// truncated), an absent one created.
    pub fn new(dir: Arc<dyn Directory>) -> Self {
        Self::with_config(dir, WalConfig::new(crate::new_log_id()))
    }

    /// Like [`new`](Self::new) with explicit settings (segment limit, first id of a new
    /// log, identity of a new log).
    pub fn with_config(dir: Arc<dyn Directory>, config: WalConfig) -> Self {
        let segment_limit = config.segment_limit;
        WalWriter {
            inner: CoreWriter::new(
                DirStorage::segments(dir.clone(), WAL_DIR),
                vec![0u8; WRITE_BUFFER],
                config,
            ),
            dir,
            lock: None,
            locked: false,
            schedule: FlushSchedule::new(),
            segment_limit,
            preallocate: false,
            _entry: PhantomData,
        }
    }

    /// Takes the single-writer lock before the first operation.
    fn claim(&mut self) -> PersistenceResult<&mut CoreWriter> {
        if !self.locked {
            self.lock = self.dir.lock_exclusive(LOCK_FILE)?;
            self.locked = true;
        }
        Ok(&mut self.inner)
    }

    /// Opens the WAL now, repairing a torn tail of its final segment, and continues its
    /// ids. Corruption is an error and changes nothing.
    pub fn resume(dir: Arc<dyn Directory>) -> PersistenceResult<Self> {
        let mut w = Self::new(dir);
        w.claim()?.next_id()?;
        Ok(w)
    }

    /// Appends raw bytes as one entry; returns its id.
    pub fn append_bytes(&mut self, payload: &[u8]) -> PersistenceResult<u64> {
        let id = self.claim()?.append(payload)?;
        self.after_append()?;
        Ok(id)
    }

    fn after_append(&mut self) -> PersistenceResult<()> {
        if self.schedule.on_append() {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands buffered entries to the directory. Not a stable-storage barrier.
    pub fn flush(&mut self) -> PersistenceResult<()> {
        self.claim()?.flush()?;
        self.schedule.on_flush();
        Ok(())
    }

    /// Flushes, then makes every appended entry durable (fdatasync, plus a directory
    /// sync for a segment created since the last one).
    pub fn flush_and_sync(&mut self) -> PersistenceResult<()> {
        self.claim()?.sync()?;
        self.schedule.on_flush();
        Ok(())
    }

    /// Hard size limit of a segment; an entry larger than it gets a segment of its own.
    pub fn set_segment_size_limit_bytes(&mut self, bytes: u64) {
        self.inner.set_segment_limit(bytes);
        self.segment_limit = bytes;
        if self.preallocate {
            self.inner.storage().set_preallocate(bytes);
        }
    }

    /// Preallocates segments (default off): each segment created from now on is
    /// zero-filled to the segment size limit and synced before its first byte is
    /// written, so a later [`flush_and_sync`](Self::flush_and_sync) is a data-only
    /// `fdatasync` that changes neither the file's size nor its extents. The zero-fill
    /// runs ahead of use: once a segment's first barrier has made its name durable, a
    /// background thread fills the next one's file under a non-segment name, and the
    /// append that rotates only renames it (waiting for it if it is not finished yet;
    /// a writer that never syncs between rotations gets no head start). Costs a write of the whole
    /// segment per rotation, one spare segment file on disk, and, on open, a read of the
    /// zeros after the last entry of the final segment. The segment the writer resumes
    /// keeps its size. See `docs/design.md` (Preallocated segments).
    pub fn set_preallocate(&mut self, on: bool) {
        self.preallocate = on;
        let bytes = if on { self.segment_limit } else { 0 };
        self.inner.storage().set_preallocate(bytes);
    }

    /// Whether preallocation fills the next segment on a background thread (`true`,
    /// the default) or on the appending thread, inside the barrier that would start the
    /// thread (`false`: a reproducible order of operations, for crash tests over a
    /// simulated directory).
    pub fn set_background_preallocation(&mut self, on: bool) {
        self.inner.storage().set_background_preparation(on);
    }

    /// When to flush automatically (default: [`FlushPolicy::Manual`]).
    pub fn set_flush_policy(&mut self, policy: FlushPolicy) {
        self.schedule.policy = policy;
    }

    /// Id the next entry gets (opens the WAL if needed).
    pub fn next_entry_id(&mut self) -> PersistenceResult<u64> {
        Ok(self.claim()?.next_id()?)
    }

    /// Id of the last entry in the WAL, appended by this writer or found on open; `None`
    /// for an empty WAL (opens the WAL if needed).
    pub fn last_entry_id(&mut self) -> PersistenceResult<Option<u64>> {
        Ok(self.claim()?.last_id()?)
    }

    /// Whether an I/O or sync failure poisoned this writer.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Number of the segment appends currently go to (once open).
    pub fn current_segment(&self) -> Option<u64> {
        self.inner.current_segment()
    }

    /// Removes the WAL segments whose entries all have ids `<= last_entry_id` (never the
    /// segment being appended to); returns how many. Only safe once a durable checkpoint
    /// covers `last_entry_id` — [`CheckpointPublisher`](crate::publish::CheckpointPublisher)
    /// does this in the right order.
    pub fn truncate_through(&mut self, last_entry_id: u64) -> PersistenceResult<u64> {
        Ok(self.claim()?.truncate_through(last_entry_id)?)
    }

    /// The WAL's identity (opens the WAL if needed).
    pub fn log_id(&mut self) -> PersistenceResult<u64> {
        let inner = self.claim()?;
        inner.next_id()?;
        Ok(inner.log_id())
    }

    pub(crate) fn core(&mut self) -> PersistenceResult<&mut CoreWriter> {
        self.claim()
    }
}

impl<E: Serialize> WalWriter<E> {
    /// Appends one entry; returns the id assigned to it. Buffered: see the module docs.
    pub fn append(&mut self, entry: &E) -> PersistenceResult<u64> {
        // Serialize straight into the write buffer; fall back to a temporary only for
        // entries larger than the buffer.
        let staged = self
            .claim()?
            .append_with(|buf| postcard::to_slice(entry, buf).ok().map(|s| s.len()))?;
        let id = match staged {
            Some(id) => id,
            None => {
                let bytes = postcard::to_allocvec(entry)
                    .map_err(|e| PersistenceError::Encode(e.to_string()))?;
                self.inner.append(&bytes)?
            }
        };
        self.after_append()?;
        Ok(id)
    }
}

impl<E> Drop for WalWriter<E> {
    fn drop(&mut self) {
        // Only a writer that holds the lock (and so has opened the log) has anything to
        // flush; an unused or refused one must not touch the WAL.
        if self.locked && !self.inner.is_poisoned() {
            let _ = self.inner.flush();
        }
    }
}

/// Replays the WAL in a directory.
pub struct WalReader<E> {
    dir: Arc<dyn Directory>,
    _entry: PhantomData<fn() -> E>,
}

impl<E> WalReader<E> {
    /// A reader for the WAL under `wal/` in `dir`.
    pub fn new(dir: Arc<dyn Directory>) -> Self {
        WalReader {
            dir,
            _entry: PhantomData,
        }
    }

    /// Streams raw entries with id `>= from_id` to `f`, without materialising the WAL.
    pub fn replay_bytes_from<F>(
        &self,
        mode: ReadMode,
        from_id: u64,
        mut f: F,
    ) -> PersistenceResult<ReplayReport>
    where
        F: FnMut(u64, &[u8]) -> PersistenceResult<()>,
    {
        let mut trap = crate::Trap::new();
        let storage = DirStorage::segments(self.dir.clone(), WAL_DIR);
        let mut reader = core_wal::WalReader::new(storage, vec![0u8; READ_BUFFER]);
        let r = reader.replay_from(mode, from_id, |id, bytes| trap.hold(f(id, bytes)));
        trap.merge(r)
    }

    /// Streams every raw entry to `f`.
    pub fn replay_bytes<F>(&self, mode: ReadMode, f: F) -> PersistenceResult<ReplayReport>
    where
        F: FnMut(u64, &[u8]) -> PersistenceResult<()>,
    {
        self.replay_bytes_from(mode, 0, f)
    }
}

impl<E: DeserializeOwned> WalReader<E> {
    /// Streams decoded entries with id `>= from_id` to `f`.
    pub fn replay_with<F>(
        &self,
        mode: ReadMode,
        from_id: u64,
        mut f: F,
    ) -> PersistenceResult<ReplayReport>
    where
        F: FnMut(WalRecord<E>) -> PersistenceResult<()>,
    {
        self.replay_bytes_from(mode, from_id, |entry_id, bytes| {
            let payload = postcard::from_bytes(bytes)
                .map_err(|e| PersistenceError::Decode(format!("entry {entry_id}: {e}")))?;
            f(WalRecord { entry_id, payload })
        })
    }

    fn collect(&self, mode: ReadMode) -> PersistenceResult<Vec<WalRecord<E>>> {
        let mut out = Vec::new();
        self.replay_with(mode, 0, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every entry, strictly: a torn tail or any corruption is an error.
    pub fn replay(&self) -> PersistenceResult<Vec<WalRecord<E>>> {
        self.collect(ReadMode::Strict)
    }

    /// Every entry up to a torn tail of the final segment (a crash mid-write).
    /// Corruption of durable data is still an error.
    pub fn replay_best_effort(&self) -> PersistenceResult<Vec<WalRecord<E>>> {
        self.collect(ReadMode::BestEffort)
    }
}
