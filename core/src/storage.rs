//! The storage trait: the one interface the record log and the WAL are written over.
//!
//! A [`Storage`] is a set of numbered **segments**. A segment is an append-only byte
//! run: it is created empty, written front to back in whole program units, read at any
//! offset, made durable by [`Storage::sync`], and finally removed. That is all the
//! core needs, and it is what every medium we target can do natively:
//!
//! | backend            | segment is                   | write        | sync                    | remove            |
//! |--------------------|------------------------------|--------------|-------------------------|-------------------|
//! | directory of files | a file `wal/<n>.seg`         | `pwrite`     | `fdatasync` (+ dir sync)| `unlink` + dir sync |
//! | memory             | a `Vec<u8>`                  | copy         | no-op                   | drop              |
//! | NOR flash          | one or more erase units      | word program | no-op (program is final)| erase             |
//!
//! Nothing here needs an allocator, paths, rename or in-place rewrite: the core never
//! writes a byte twice, and never relies on truncation except for the optional
//! [`Storage::truncate`] used by the single-segment record log.
//!
//! # Durability contract
//!
//! Each method states what is durable (survives a power cut) after it returns and what
//! a power cut *during* it may leave. "Durable" below always means: after a later crash
//! the bytes read back exactly as written.

use crate::error::StorageError;

/// The backend error type.
pub trait ErrorType {
    /// Error of every storage operation.
    type Error: StorageError;
}

/// A set of numbered append-only segments. See the [module docs](self).
///
/// The core guarantees to implementations: every write starts at the segment's
/// current write end and covers a multiple of [`write_size`](Storage::write_size) bytes
/// at a multiple of it; no byte is written twice between [`create`](Storage::create)
/// and [`remove`](Storage::remove); all calls come from one thread at a time.
pub trait Storage: ErrorType {
    /// Program granularity in bytes (a power of two, 1 to 32): every write offset and
    /// length is a multiple of it. Files and memory use 1; flash its word size.
    fn write_size(&self) -> usize;

    /// The byte value of space that was never written: 0x00 for files (sparse or
    /// preallocated space reads as zeros), 0xFF for erased flash.
    fn unwritten_byte(&self) -> u8 {
        0x00
    }

    /// The largest size a segment can reach, if the medium fixes one (flash: the
    /// segment's erase units). `None`: only the caller's limit applies.
    fn max_segment_len(&self) -> Option<u64> {
        None
    }

    /// Whether appending can continue after the last valid frame of a segment found
    /// at open. Files and memory: yes, the bytes after it are known. Flash: no, a word
    /// that reads as erased may be partially programmed, so the core starts a new
    /// segment instead.
    fn resume_in_place(&self) -> bool {
        true
    }

    /// Whether a power cut can only damage writes in the order they were issued: every
    /// byte written before the cut point is durable, the word at it is undefined and
    /// nothing after it was written. NOR flash: yes (a program is final when it returns,
    /// words are programmed in address order, and a segment found at open is never
    /// written again). Files: no (the page cache writes back in any order).
    ///
    /// On such a medium the core writes no sync markers (a damaged frame followed by a
    /// valid one is corruption by itself) and an entry costs exactly its frame.
    fn ordered_writes(&self) -> bool {
        false
    }

    /// Whether new segments use the short frame header (6 bytes instead of 8; entries
    /// up to [`SHORT_MAX_ENTRY_LEN`](crate::frame::SHORT_MAX_ENTRY_LEN) bytes). For media
    /// whose segments are small and whose every programmed byte counts (flash). Segments
    /// of both forms are read whatever this says: each header records its form.
    fn short_frames(&self) -> bool {
        false
    }

    /// Calls `visit` once for each existing segment number, in any order.
    ///
    /// Durability: reports the live view, which includes segments whose creation or
    /// removal is not yet durable.
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), Self::Error>;

    /// Creates segment `segment` empty, replacing whatever a segment of that number held.
    ///
    /// Durable after return: nothing (the segment may vanish on a crash until the first
    /// [`sync`](Storage::sync) of it returns). A power cut during it or later may leave
    /// the old content, an empty segment, or (flash) a half-erased unit of arbitrary
    /// bytes — so the core removes a segment (durably) before it reuses its number.
    fn create(&mut self, segment: u64) -> Result<(), Self::Error>;

    /// The readable extent of a segment: the file length, or the unit size on flash
    /// (where the end of the data is found by reading, not by metadata).
    fn len(&mut self, segment: u64) -> Result<u64, Self::Error>;

    /// Reads into `buf` from `offset`; returns the bytes read, fewer than `buf.len()`
    /// only at the end of the extent. Durability: reads the live state.
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes `data` at `offset` (the current write end).
    ///
    /// Durable after return: nothing on files (page cache); everything on flash.
    /// A power cut during or after it, before the next `sync`, may leave any subset of
    /// the writes since the last sync, each dropped, torn at any byte, or (files)
    /// replaced by zeros, in any order; on flash only the word being programmed is
    /// undefined.
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), Self::Error>;

    /// A barrier: when it returns `Ok`, every write to `segment` before it and the
    /// segment's existence (its name, for files) are durable.
    ///
    /// A power cut during it leaves any subset of the pending writes, as for `write`.
    /// An error means nothing about what is durable; callers must not retry and
    /// treat a later success as covering the earlier writes.
    fn sync(&mut self, segment: u64) -> Result<(), Self::Error>;

    /// Shrinks a segment to `len` bytes. Durable after the next `sync` of the segment.
    /// Optional: media that cannot shrink (flash) return an `Unsupported` error.
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), Self::Error>;

    /// Removes a segment. Durable after return: the segment is gone or (crash during
    /// it) still whole (files), or partially erased (flash): readers must treat an
    /// unreadable segment header as an absent segment.
    fn remove(&mut self, segment: u64) -> Result<(), Self::Error>;
}

/// Forwarding impl so a storage can be lent to a log without giving it away.
impl<S: ErrorType + ?Sized> ErrorType for &mut S {
    type Error = S::Error;
}

impl<S: Storage + ?Sized> Storage for &mut S {
    fn write_size(&self) -> usize {
        (**self).write_size()
    }
    fn unwritten_byte(&self) -> u8 {
        (**self).unwritten_byte()
    }
    fn max_segment_len(&self) -> Option<u64> {
        (**self).max_segment_len()
    }
    fn resume_in_place(&self) -> bool {
        (**self).resume_in_place()
    }
    fn ordered_writes(&self) -> bool {
        (**self).ordered_writes()
    }
    fn short_frames(&self) -> bool {
        (**self).short_frames()
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), Self::Error> {
        (**self).list(visit)
    }
    fn create(&mut self, segment: u64) -> Result<(), Self::Error> {
        (**self).create(segment)
    }
    fn len(&mut self, segment: u64) -> Result<u64, Self::Error> {
        (**self).len(segment)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error> {
        (**self).read(segment, offset, buf)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), Self::Error> {
        (**self).write(segment, offset, data)
    }
    fn sync(&mut self, segment: u64) -> Result<(), Self::Error> {
        (**self).sync(segment)
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), Self::Error> {
        (**self).truncate(segment, len)
    }
    fn remove(&mut self, segment: u64) -> Result<(), Self::Error> {
        (**self).remove(segment)
    }
}

/// Checks a write against the contract every implementation relies on; backends call
/// it first. Returns `false` for a misaligned offset or length.
pub fn write_is_aligned(write_size: usize, offset: u64, len: usize) -> bool {
    // Masks, not `%`: a u64 remainder pulls a software division into small targets.
    let mask = (write_size as u64).wrapping_sub(1);
    write_size.is_power_of_two() && offset & mask == 0 && len as u64 & mask == 0
}

/// Lowest, highest and number of segments present.
pub(crate) fn segment_span<S: Storage>(
    storage: &mut S,
) -> Result<Option<(u64, u64, u64)>, S::Error> {
    let mut span: Option<(u64, u64, u64)> = None;
    storage.list(&mut |n| {
        span = Some(match span {
            None => (n, n, 1),
            Some((lo, hi, count)) => (lo.min(n), hi.max(n), count + 1),
        });
    })?;
    Ok(span)
}

/// What the first bytes of a segment written by the core say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentIdentity {
    /// A WAL or record-log segment header, or a checkpoint header, naming this number.
    Segment(u64),
    /// A header of a format version this build does not read.
    UnsupportedVersion(u8),
    /// Nothing the core wrote (erased, torn, or foreign).
    Unknown,
}

/// Bytes [`identify_segment`] needs: the longest header the core writes.
pub const IDENTIFY_LEN: usize = crate::checkpoint::field::HEADER_LEN;

/// Which segment the first [`IDENTIFY_LEN`] bytes of a segment belong to, for media that
/// name segments by their content (flash partitions have no directory). Reads headers
/// only: a checkpoint's payload is not verified here.
pub fn identify_segment(bytes: &[u8]) -> SegmentIdentity {
    use crate::checkpoint::{CheckpointError, CheckpointHeader};
    use crate::frame::{HeaderError, SegmentHeader};
    // Both headers are checked in place and only the number is read (no header values
    // on the mount's stack); a checkpoint's `seq` sits where a segment's number does.
    match SegmentHeader::segment_of(bytes) {
        Ok(segment) => return SegmentIdentity::Segment(segment),
        Err(HeaderError::Version(v)) => return SegmentIdentity::UnsupportedVersion(v),
        Err(_) => {}
    }
    match CheckpointHeader::seq_of(bytes) {
        Ok(seq) => SegmentIdentity::Segment(seq),
        Err(CheckpointError::Version(v)) => SegmentIdentity::UnsupportedVersion(v),
        Err(_) => SegmentIdentity::Unknown,
    }
}
