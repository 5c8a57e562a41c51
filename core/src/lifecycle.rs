//! The lifecycle: publish a checkpoint and truncate the WAL behind it; recover from the
//! newest checkpoint plus the WAL suffix, in one streaming pass.
//!
//! # Publish protocol
//!
//! 1. Refuse a checkpoint beyond the last id the writer assigned, or older than what the
//!    WAL still holds (the entries between would be lost).
//! 2. Barrier on the WAL: every entry the checkpoint covers is durable in the WAL.
//! 3. Write the checkpoint and make it durable.
//! 4. Optionally append a marker entry recording it, and make that durable.
//! 5. Remove the WAL segments wholly covered (oldest first, each removal durable).
//! 6. Remove checkpoints older than the newest `keep`.
//!
//! A crash between any two steps leaves either the old state (the new checkpoint torn
//! or absent: the previous one wins, the WAL is whole) or the new one (the checkpoint
//! durable, the WAL a contiguous suffix that still starts at or before its `last_id + 1`).
//! See `docs/design.md` for the case analysis.

use crate::buffer::Buffer;
use crate::checkpoint::{CheckpointHeader, CheckpointStore, StoredCheckpoint};
use crate::error::Error;
use crate::storage::{ErrorType, Storage};
use crate::wal::{first_segment_header_into, ReplayReport, WalConfig, WalReader, WalWriter};
use crate::ReadMode;

type Res<T, S> = Result<T, Error<<S as ErrorType>::Error>>;

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PublishReport {
    /// Sequence number of the new checkpoint in its store.
    pub checkpoint_seq: u64,
    /// The last entry id it covers.
    pub last_id: u64,
    /// Entry id of the marker appended to the WAL, if one was.
    pub marker_id: Option<u64>,
    /// WAL segments removed.
    pub wal_segments_removed: u64,
    /// Older checkpoints removed.
    pub checkpoints_removed: u64,
}

/// Publishes a checkpoint of the state after entry `last_id` (see the module docs).
/// `marker`: payload of an entry recording the checkpoint in the WAL, if wanted.
/// `scratch` holds older checkpoints while they are verified for garbage collection.
pub fn publish<W, C, B, X>(
    writer: &mut WalWriter<W, B>,
    checkpoints: &mut CheckpointStore<C>,
    last_id: u64,
    payload: &[u8],
    marker: Option<&[u8]>,
    keep: usize,
    scratch: &mut X,
) -> Res<PublishReport, W>
where
    W: Storage,
    C: Storage<Error = W::Error>,
    B: Buffer,
    X: Buffer,
{
    writer.check_checkpoint(last_id)?;
    writer.sync()?;
    let checkpoint_seq = checkpoints.write_in(writer.log_id(), last_id, payload, Some(scratch))?;
    let marker_id = match marker {
        Some(m) => {
            let id = writer.append(m)?;
            writer.sync()?;
            Some(id)
        }
        None => None,
    };
    let wal_segments_removed = writer.truncate_through(last_id)?;
    let checkpoints_removed = checkpoints.retain_newest(keep, scratch)?;
    Ok(PublishReport {
        checkpoint_seq,
        last_id,
        marker_id,
        wal_segments_removed,
        checkpoints_removed,
    })
}

/// What a recovery found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecoveryReport {
    /// The checkpoint the state started from, if any.
    pub checkpoint: Option<StoredCheckpoint>,
    /// The WAL pass: segments read, entries applied, bytes, where a torn tail was cut.
    pub replay: ReplayReport,
    /// The id a writer must assign next.
    pub next_id: u64,
}

impl RecoveryReport {
    /// Nothing recovered yet.
    const EMPTY: RecoveryReport = RecoveryReport {
        checkpoint: None,
        replay: ReplayReport {
            segments: 0,
            entries: 0,
            payload_bytes: 0,
            first_id: None,
            next_id: 0,
            torn_at: None,
            dropped_oldest: false,
        },
        next_id: 0,
    };

    /// The settings for the writer that continues after this recovery: ids continue at
    /// [`next_id`](Self::next_id) (for a log that has no segment left) and segments the
    /// checkpoint covers are not read again ([`WalConfig::covered_through`]: on flash an
    /// interrupted truncation may have left one half-erased).
    pub fn writer_config(&self, base: WalConfig) -> WalConfig {
        WalConfig {
            first_id: self.next_id,
            covered_through: self.checkpoint.map_or(0, |c| c.header.last_id),
            ..base
        }
    }
}

/// Recovers a state: `init` builds it from the newest valid checkpoint (or from nothing),
/// then `apply` folds in every WAL entry after the checkpoint's `last_id`, in one pass
/// over the WAL, streaming.
///
/// Errors in every mode: the WAL no longer reaches back to the checkpoint
/// ([`Error::WalGap`] — e.g. segments truncated behind a checkpoint that is now missing),
/// a checkpoint ahead of the durable WAL, or a checkpoint of another WAL.
pub fn recover<W, C, B, T, I, A>(
    wal: W,
    checkpoints: &mut CheckpointStore<C>,
    buf: &mut B,
    mode: ReadMode,
    init: I,
    apply: A,
) -> Res<(T, RecoveryReport), W>
where
    W: Storage,
    C: Storage<Error = W::Error>,
    B: Buffer,
    I: FnOnce(Option<(&CheckpointHeader, &[u8])>) -> Res<T, W>,
    A: FnMut(&mut T, u64, &[u8]) -> Res<(), W>,
{
    let mut report = RecoveryReport::EMPTY;
    let state = recover_into(wal, checkpoints, buf, mode, &mut report, init, apply)?;
    Ok((state, report))
}

/// [`recover`] filling the caller's `report` in place (its previous content is
/// replaced): no report-sized temporaries on the stack, for firmware. `report` is only
/// meaningful when this returns `Ok`.
pub fn recover_into<W, C, B, T, I, A>(
    wal: W,
    checkpoints: &mut CheckpointStore<C>,
    buf: &mut B,
    mode: ReadMode,
    report: &mut RecoveryReport,
    init: I,
    mut apply: A,
) -> Res<T, W>
where
    W: Storage,
    C: Storage<Error = W::Error>,
    B: Buffer,
    I: FnOnce(Option<(&CheckpointHeader, &[u8])>) -> Res<T, W>,
    A: FnMut(&mut T, u64, &[u8]) -> Res<(), W>,
{
    *report = RecoveryReport::EMPTY;
    checkpoints.latest_into(buf, &mut report.checkpoint)?;
    let (mut state, from, log_id) = match &report.checkpoint {
        Some(c) => (
            init(Some((&c.header, &buf.bytes()[..c.header.len as usize])))?,
            c.header.last_id + 1,
            Some(c.header.log_id),
        ),
        None => (init(None)?, 1, None),
    };
    report.next_id =
        replay_suffix_into(wal, buf, mode, from, log_id, &mut report.replay, |id, p| {
            apply(&mut state, id, p)
        })?;
    Ok(state)
}

/// Replays the WAL entries with ids `>= from` (the suffix after a checkpoint whose
/// `last_id` is `from - 1`; `from = 1` without one) in one streaming pass, after
/// checking that the WAL still reaches back to `from` and belongs to the checkpoint's
/// log (`checkpoint_log_id`, 0 = unbound). Returns the replay report and the next id.
pub fn replay_suffix<W, B, A>(
    wal: W,
    buf: &mut B,
    mode: ReadMode,
    from: u64,
    checkpoint_log_id: Option<u64>,
    apply: A,
) -> Res<(ReplayReport, u64), W>
where
    W: Storage,
    B: Buffer,
    A: FnMut(u64, &[u8]) -> Res<(), W>,
{
    let mut replay = ReplayReport::default();
    let next_id = replay_suffix_into(wal, buf, mode, from, checkpoint_log_id, &mut replay, apply)?;
    Ok((replay, next_id))
}

/// [`replay_suffix`] filling the caller's `replay` (which starts as
/// [`ReplayReport::default`]) in place; returns the next id.
fn replay_suffix_into<W, B, A>(
    wal: W,
    buf: &mut B,
    mode: ReadMode,
    from: u64,
    checkpoint_log_id: Option<u64>,
    replay: &mut ReplayReport,
    apply: A,
) -> Res<u64, W>
where
    W: Storage,
    B: Buffer,
    A: FnMut(u64, &[u8]) -> Res<(), W>,
{
    let mut wal = wal;
    // The first header is needed only for these checks: its slot is free again during
    // the replay below.
    let first = {
        let mut h = crate::segment::NO_HEADER;
        let first = first_segment_header_into(&mut wal, &mut h)?;
        if first {
            if h.first_id > from {
                return Err(Error::WalGap {
                    needed: from,
                    first_available: h.first_id,
                });
            }
            if checkpoint_log_id.is_some_and(|id| id != 0 && id != h.log_id) {
                return Err(Error::ForeignCheckpoint);
            }
        }
        first
    };
    let mut reader = WalReader::new(wal, buf);
    reader.replay_into(mode, from, from - 1, replay, apply)?;
    if first && replay.next_id < from {
        return Err(Error::CheckpointAhead {
            checkpoint_last_id: from - 1,
            wal_next_id: replay.next_id,
        });
    }
    Ok(replay.next_id.max(from))
}
