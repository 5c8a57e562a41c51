//! The one error type of the core, generic over the storage backend's error.

use core::fmt;

/// What a storage backend's error means to the core, independent of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The segment does not exist.
    NotFound,
    /// The medium is full.
    NoSpace,
    /// The backend cannot do this operation (for example truncation on flash).
    Unsupported,
    /// Any other I/O failure.
    Other,
}

/// Implemented by every backend error so generic code can react to it.
pub trait StorageError: fmt::Debug {
    /// Classifies the error.
    fn kind(&self) -> StorageErrorKind;
}

/// Where in a log something was found: segment number and byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Location {
    /// Segment number (0 for a record log).
    pub segment: u64,
    /// Byte offset inside the segment.
    pub offset: u64,
}

/// Why bytes were judged corrupt rather than a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Corruption {
    /// A segment header fails its magic, version or checksum where it must be valid.
    BadSegmentHeader,
    /// A segment's header names a different segment number than its name.
    SegmentNumberMismatch,
    /// A segment's header names a different log than the other segments.
    ForeignSegment,
    /// Segment numbers are not contiguous: one in the middle is missing.
    MissingSegment,
    /// A segment's first entry id does not follow the previous segment's last one.
    EntryIdGap,
    /// A frame fails to decode inside a sealed (non-final) segment.
    BadFrameInSealedSegment,
    /// A frame fails to decode below a durable watermark that a later sync marker proves.
    BadFrameBelowWatermark,
    /// A sync marker claims a watermark beyond its own position.
    BadSyncMarker,
    /// On a medium that programs in order ([`Storage::ordered_writes`]), a frame fails to
    /// decode although a later valid frame follows it: a cut could not have left that.
    ///
    /// [`Storage::ordered_writes`]: crate::Storage::ordered_writes
    BadFrameBeforeValidFrame,
    /// A sealed segment does not end exactly where its successor says it does.
    SealMismatch,
}

/// Errors of the core. `E` is the storage backend's error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The storage backend failed.
    Storage(E),
    /// Bytes that a completed barrier covered, or a sealed segment, are damaged.
    Corrupt {
        /// Where the damage starts.
        at: Location,
        /// What is wrong.
        reason: Corruption,
    },
    /// Strict mode only: the final segment ends in a torn write at `at`.
    TornTail {
        /// Where the valid prefix ends.
        at: Location,
    },
    /// An entry is larger than [`MAX_ENTRY_LEN`](crate::frame::MAX_ENTRY_LEN).
    EntryTooLarge {
        /// The entry's length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A caller-provided buffer cannot hold a frame or the smallest write.
    BufferTooSmall {
        /// Bytes needed.
        needed: u64,
    },
    /// An earlier I/O or sync failure poisoned this writer.
    Poisoned,
    /// An entry could not be encoded.
    Encode,
    /// A frame passed its checksum but its payload does not decode as the entry type.
    Decode {
        /// The entry id whose payload failed to decode.
        entry_id: u64,
    },
    /// Configuration or geometry the core cannot work with.
    InvalidConfig(&'static str),
    /// The log was created with a format version this build does not read.
    UnsupportedVersion(u8),
    /// A checkpoint that must be valid is not.
    Checkpoint(crate::checkpoint::CheckpointError),
    /// The WAL no longer holds entry `needed` (truncated behind a checkpoint that is
    /// missing, unusable or older): recovering would silently lose entries.
    WalGap {
        /// The first entry id recovery needs.
        needed: u64,
        /// The first entry id the WAL still holds.
        first_available: u64,
    },
    /// A checkpoint covers entries the WAL never made durable.
    CheckpointAhead {
        /// The checkpoint's last entry id.
        checkpoint_last_id: u64,
        /// The id the WAL would assign next.
        wal_next_id: u64,
    },
    /// A checkpoint belongs to a different WAL.
    ForeignCheckpoint,
}

/// Coarse classification of [`Error`] for code that does not know `E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorKind {
    /// Backend I/O failure.
    Storage(StorageErrorKind),
    /// Corruption of durable data.
    Corrupt,
    /// A torn tail in strict mode.
    TornTail,
    /// An entry over the size limit or a buffer too small for it.
    TooLarge,
    /// The writer is poisoned.
    Poisoned,
    /// Encoding or decoding of an entry failed.
    Codec,
    /// Bad configuration or unsupported format version.
    Invalid,
}

impl<E: StorageError> Error<E> {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(e) => ErrorKind::Storage(e.kind()),
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::TornTail { .. } => ErrorKind::TornTail,
            Error::EntryTooLarge { .. } | Error::BufferTooSmall { .. } => ErrorKind::TooLarge,
            Error::Poisoned => ErrorKind::Poisoned,
            Error::Encode | Error::Decode { .. } => ErrorKind::Codec,
            Error::InvalidConfig(_) | Error::UnsupportedVersion(_) => ErrorKind::Invalid,
            Error::Checkpoint(_)
            | Error::WalGap { .. }
            | Error::CheckpointAhead { .. }
            | Error::ForeignCheckpoint => ErrorKind::Corrupt,
        }
    }
}

impl<E> Error<E> {
    pub(crate) fn corrupt(segment: u64, offset: u64, reason: Corruption) -> Self {
        Error::Corrupt {
            at: Location { segment, offset },
            reason,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Storage(e) => write!(f, "storage error: {e}"),
            Error::Corrupt { at, reason } => write!(
                f,
                "corruption in segment {} at byte {}: {:?}",
                at.segment, at.offset, reason
            ),
            Error::TornTail { at } => write!(
                f,
                "torn tail in final segment {} at byte {} (strict mode)",
                at.segment, at.offset
            ),
            Error::EntryTooLarge { len, max } => {
                write!(f, "entry of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
            Error::Poisoned => f.write_str("writer poisoned by an earlier I/O or sync failure"),
            Error::Encode => f.write_str("entry could not be encoded"),
            Error::Decode { entry_id } => write!(f, "entry {entry_id} does not decode"),
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            Error::Checkpoint(e) => write!(f, "{e}"),
            Error::WalGap {
                needed,
                first_available,
            } => write!(
                f,
                "the WAL starts at entry {first_available} but recovery needs entry {needed}: \
                 it was truncated behind a checkpoint that is missing or unusable"
            ),
            Error::CheckpointAhead {
                checkpoint_last_id,
                wal_next_id,
            } => write!(
                f,
                "checkpoint covers entries up to {checkpoint_last_id} but the WAL ends before {wal_next_id}"
            ),
            Error::ForeignCheckpoint => f.write_str("checkpoint belongs to a different WAL"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}
