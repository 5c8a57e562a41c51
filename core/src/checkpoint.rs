//! Checkpoints: a checksummed snapshot of the state after entry `last_id`.
//!
//! ```text
//!  checkpoint header (64 bytes), then the payload, then zero padding to the alignment
//!  0       4   5   6       8               16              24              32      36          60      64
//!  +-------+---+---+-------+---------------+---------------+---------------+-------+-----------+-------+---------+
//!  | magic |ver|knd|  rsv  |    log_id     |      seq      |    last_id    |  len  |    rsv    |  crc  | payload |
//!  +-------+---+---+-------+---------------+---------------+---------------+-------+-----------+-------+---------+
//!   "DURC"  1   1     0      WAL identity    number in its   last applied    bytes       0       CRC-32C of bytes
//!                            (0: unbound)    store (0: file) entry id                            0..60 and payload
//! ```
//!
//! `seq` sits at the same offset as a segment header's number, so media that name
//! segments by their content (flash) can tell which checkpoint a unit holds
//! ([`crate::storage::identify_segment`]).
//!
//! One codec serves two homes. [`CheckpointStore`] keeps checkpoints as numbered
//! segments of any [`Storage`] (files, memory, flash): each is written once and made
//! durable, the newest valid one wins, so a torn write simply leaves the previous one in
//! charge and no rename is needed. The std facade's `CheckpointFile` writes the same
//! bytes to a path with an atomic, durable rename.

use crate::buffer::Buffer;
use crate::checksum::Crc32c;
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::frame::{align_up, le_u32, le_u64, MAX_ALIGN};
use crate::storage::{segment_span, ErrorType, Storage};

type Res<T, S> = Result<T, Error<<S as ErrorType>::Error>>;

/// Checkpoint magic.
pub const MAGIC: [u8; 4] = *b"DURC";
/// Checkpoint format version.
pub const VERSION: u8 = 1;
/// Largest payload: 1 GiB. A reader never allocates more than this, nor more than the
/// bytes actually present.
pub const MAX_CHECKPOINT_LEN: u32 = 1 << 30;

/// Checkpoint header field offsets.
pub mod field {
    use core::ops::Range;
    /// `magic`: [`MAGIC`](super::MAGIC).
    pub const MAGIC: Range<usize> = 0..4;
    /// `version`.
    pub const VERSION: usize = 4;
    /// `kind`: 1.
    pub const KIND: usize = 5;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 6..8;
    /// `log_id`: identity of the WAL this checkpoint belongs to, 0 if unbound.
    pub const LOG_ID: Range<usize> = 8..16;
    /// `seq`: the checkpoint's number in its store (0 for a checkpoint file).
    pub const SEQ: Range<usize> = 16..24;
    /// `last_id`: last entry id applied to the state.
    pub const LAST_ID: Range<usize> = 24..32;
    /// `len`: payload length.
    pub const LEN: Range<usize> = 32..36;
    /// Reserved, zero.
    pub const RESERVED2: Range<usize> = 36..60;
    /// `crc`: CRC-32C of bytes `0..60` followed by the payload.
    pub const CRC: Range<usize> = 60..64;
    /// Header length (a multiple of the largest write size).
    pub const HEADER_LEN: usize = 64;
}

const _: () = assert!(field::CRC.end == field::HEADER_LEN);
const _: () = assert!(field::SEQ.start == crate::frame::header::SEGMENT.start);
const _: () = assert!(field::HEADER_LEN.is_multiple_of(MAX_ALIGN));

/// Why bytes are not a valid checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CheckpointError {
    /// Fewer bytes than a header.
    Short,
    /// Wrong magic, kind or reserved bytes.
    BadHeader,
    /// A version this build does not read.
    Version(u8),
    /// The length field exceeds [`MAX_CHECKPOINT_LEN`].
    TooLarge(u32),
    /// Fewer payload bytes than the length field says. (`u32`: both are below
    /// [`MAX_CHECKPOINT_LEN`], which keeps the core's `Error` small.)
    Truncated {
        /// Bytes the header announces.
        expected: u32,
        /// Bytes present.
        actual: u32,
    },
    /// Bytes after the payload.
    Trailing(u64),
    /// The checksum does not match.
    Checksum {
        /// Stored.
        expected: u32,
        /// Computed.
        actual: u32,
    },
}

impl core::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CheckpointError::Short => f.write_str("checkpoint shorter than its header"),
            CheckpointError::BadHeader => f.write_str("invalid checkpoint magic or header"),
            CheckpointError::Version(v) => write!(f, "unsupported checkpoint version {v}"),
            CheckpointError::TooLarge(n) => {
                write!(
                    f,
                    "checkpoint payload of {n} bytes exceeds the limit of {MAX_CHECKPOINT_LEN}"
                )
            }
            CheckpointError::Truncated { expected, actual } => {
                write!(
                    f,
                    "checkpoint truncated: {actual} of {expected} payload bytes"
                )
            }
            CheckpointError::Trailing(n) => write!(f, "{n} trailing bytes after the checkpoint"),
            CheckpointError::Checksum { expected, actual } => {
                write!(
                    f,
                    "checkpoint crc mismatch (expected {expected:#010x}, got {actual:#010x})"
                )
            }
        }
    }
}

/// A parsed checkpoint header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CheckpointHeader {
    /// WAL identity, 0 if unbound.
    pub log_id: u64,
    /// Number in its store, 0 for a checkpoint file.
    pub seq: u64,
    /// Last entry id applied to the state.
    pub last_id: u64,
    /// Payload length.
    pub len: u32,
    crc: u32,
}

impl CheckpointHeader {
    /// A header for `payload`.
    pub fn new(
        log_id: u64,
        seq: u64,
        last_id: u64,
        payload: &[u8],
    ) -> Result<Self, CheckpointError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_CHECKPOINT_LEN)
            .ok_or(CheckpointError::TooLarge(u32::MAX))?;
        let mut h = CheckpointHeader {
            log_id,
            seq,
            last_id,
            len,
            crc: 0,
        };
        let mut crc = Crc32c::new();
        crc.update(&h.prefix());
        crc.update(payload);
        h.crc = crc.finalize();
        Ok(h)
    }

    fn prefix(&self) -> [u8; field::CRC.start] {
        let mut b = [0u8; field::CRC.start];
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
        b[field::KIND] = 1;
        b[field::LOG_ID].copy_from_slice(&self.log_id.to_le_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_le_bytes());
        b[field::LAST_ID].copy_from_slice(&self.last_id.to_le_bytes());
        b[field::LEN].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// The 32 header bytes.
    pub fn emit(&self) -> [u8; field::HEADER_LEN] {
        let mut b = [0u8; field::HEADER_LEN];
        b[..field::CRC.start].copy_from_slice(&self.prefix());
        b[field::CRC].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Parses a header (the checksum is checked with the payload by [`verify`](Self::verify)).
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let b = bytes
            .get(..field::HEADER_LEN)
            .ok_or(CheckpointError::Short)?;
        if b[field::MAGIC] != MAGIC
            || b[field::KIND] != 1
            || b[field::RESERVED] != [0, 0]
            || b[field::RESERVED2].iter().any(|&x| x != 0)
        {
            return Err(CheckpointError::BadHeader);
        }
        if b[field::VERSION] != VERSION {
            return Err(CheckpointError::Version(b[field::VERSION]));
        }
        let len = le_u32(&b[field::LEN]);
        if len > MAX_CHECKPOINT_LEN {
            return Err(CheckpointError::TooLarge(len));
        }
        Ok(CheckpointHeader {
            log_id: le_u64(&b[field::LOG_ID]),
            seq: le_u64(&b[field::SEQ]),
            last_id: le_u64(&b[field::LAST_ID]),
            len,
            crc: le_u32(&b[field::CRC]),
        })
    }

    /// Checks `payload` against the stored checksum.
    pub fn verify(&self, payload: &[u8]) -> Result<(), CheckpointError> {
        let mut crc = Crc32c::new();
        crc.update(&self.prefix());
        crc.update(payload);
        self.check_crc(crc.finalize())
    }

    /// Compares the checksum `actual` of the prefix and payload with the stored one.
    fn check_crc(&self, actual: u32) -> Result<(), CheckpointError> {
        if actual != self.crc {
            return Err(CheckpointError::Checksum {
                expected: self.crc,
                actual,
            });
        }
        Ok(())
    }
}

/// Decodes a whole checkpoint image (exactly header + payload); returns the header and
/// the payload slice.
pub fn decode(bytes: &[u8]) -> Result<(CheckpointHeader, &[u8]), CheckpointError> {
    let h = CheckpointHeader::parse(bytes)?;
    let body = &bytes[field::HEADER_LEN..];
    let len = h.len as usize;
    if body.len() < len {
        return Err(CheckpointError::Truncated {
            expected: h.len,
            actual: body.len() as u32,
        });
    }
    if body.len() > len {
        return Err(CheckpointError::Trailing((body.len() - len) as u64));
    }
    h.verify(body)?;
    Ok((h, body))
}

/// A checkpoint found in a [`CheckpointStore`]; its payload is in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoredCheckpoint {
    /// Its sequence number (segment number) in the store.
    pub seq: u64,
    /// Its header.
    pub header: CheckpointHeader,
    /// Newer checkpoints that were skipped because they did not verify (torn writes).
    pub skipped: u64,
}

/// Checkpoints as numbered segments of a [`Storage`]; the newest valid one wins.
pub struct CheckpointStore<S> {
    st: S,
}

impl<S: Storage> CheckpointStore<S> {
    /// A store over `storage` (which holds nothing but checkpoints).
    pub fn new(storage: S) -> Self {
        CheckpointStore { st: storage }
    }

    /// The storage.
    pub fn storage(&mut self) -> &mut S {
        &mut self.st
    }

    /// Writes a checkpoint under the next sequence number and makes it durable; returns
    /// the sequence number. A crash before this returns leaves at most a torn checkpoint
    /// that readers skip.
    pub fn write(&mut self, log_id: u64, last_id: u64, payload: &[u8]) -> Res<u64, S> {
        let seq = segment_span(&mut self.st)
            .map_err(Error::Storage)?
            .map_or(1, |(_, hi, _)| hi + 1);
        // Checks the payload length before anything is written.
        CheckpointHeader::new(log_id, seq, last_id, payload).map_err(Error::Checkpoint)?;
        let ws = self.st.write_size();
        if !ws.is_power_of_two() || ws > MAX_ALIGN {
            return Err(Error::InvalidConfig(
                "write size must be a power of two up to 32",
            ));
        }
        let total = align_up((field::HEADER_LEN + payload.len()) as u64, ws);
        if self.st.max_segment_len().is_some_and(|m| total > m) {
            return Err(Error::EntryTooLarge {
                len: payload.len() as u64,
                max: self
                    .st
                    .max_segment_len()
                    .unwrap_or(0)
                    .saturating_sub(field::HEADER_LEN as u64),
            });
        }
        let seq = match self.st.create(seq) {
            Ok(()) => seq,
            // A full medium may be holding torn leftovers of interrupted writes (they
            // only go at the next successful publish), or an old checkpoint whose
            // retention was cut: make room and retry once.
            Err(e) if e.kind() == StorageErrorKind::NoSpace && self.make_room()? => {
                // Numbers stay monotonic: the torn ones are not reused.
                self.st.create(seq).map_err(Error::Storage)?;
                seq
            }
            Err(e) => return Err(Error::Storage(e)),
        };
        let header =
            CheckpointHeader::new(log_id, seq, last_id, payload).map_err(Error::Checkpoint)?;
        let st = &mut self.st;
        st.write(seq, 0, &header.emit()).map_err(Error::Storage)?;
        let body = payload.len() & !(ws.max(1) - 1);
        if body > 0 {
            st.write(seq, field::HEADER_LEN as u64, &payload[..body])
                .map_err(Error::Storage)?;
        }
        if body < payload.len() {
            let mut tail = [0u8; MAX_ALIGN];
            let rest = &payload[body..];
            tail[..rest.len()].copy_from_slice(rest);
            st.write(seq, (field::HEADER_LEN + body) as u64, &tail[..ws])
                .map_err(Error::Storage)?;
        }
        st.sync(seq).map_err(Error::Storage)?;
        Ok(seq)
    }

    /// The newest checkpoint that verifies, with its payload in `buf[..len]`.
    pub fn latest<B: Buffer>(&mut self, buf: &mut B) -> Res<Option<StoredCheckpoint>, S> {
        // Filled in the returned value itself: no checkpoint-sized copy on the way out.
        let mut r = Ok(None);
        if let Ok(out) = &mut r {
            if let Err(e) = self.latest_into(buf, out) {
                r = Err(e);
            }
        }
        r
    }

    /// [`latest`](Self::latest) into the caller's `out` (left `None` when there is no
    /// valid checkpoint): no result-sized copy on the caller's stack.
    pub(crate) fn latest_into<B: Buffer>(
        &mut self,
        buf: &mut B,
        out: &mut Option<StoredCheckpoint>,
    ) -> Res<(), S> {
        let mut seqs_visited = 0u64;
        let Some((lo, hi, _)) = segment_span(&mut self.st).map_err(Error::Storage)? else {
            return Ok(());
        };
        let mut seq = hi;
        loop {
            if self.st.len(seq).is_ok() {
                match self.load(seq, buf)? {
                    Ok(header) => {
                        *out = Some(StoredCheckpoint {
                            seq,
                            header,
                            skipped: seqs_visited,
                        });
                        return Ok(());
                    }
                    Err(_) => seqs_visited += 1,
                }
            }
            if seq == lo {
                return Ok(());
            }
            seq -= 1;
        }
    }

    /// Reads checkpoint `seq` into `buf`; the inner result says whether it verifies.
    pub fn load<B: Buffer>(
        &mut self,
        seq: u64,
        buf: &mut B,
    ) -> Res<Result<CheckpointHeader, CheckpointError>, S> {
        self.load_dyn(seq, buf)
    }

    /// The body of `load`: one copy, whatever the caller's buffer type.
    fn load_dyn(
        &mut self,
        seq: u64,
        buf: &mut dyn Buffer,
    ) -> Res<Result<CheckpointHeader, CheckpointError>, S> {
        let mut head = [0u8; field::HEADER_LEN];
        let extent = self.st.len(seq).map_err(Error::Storage)?;
        let n = self.st.read(seq, 0, &mut head).map_err(Error::Storage)?;
        let h = match CheckpointHeader::parse(&head[..n]) {
            // A checkpoint stored under another number (copied, or stale) is not this one.
            Ok(h) if h.seq != seq => return Ok(Err(CheckpointError::BadHeader)),
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        // The checksum starts over the header bytes just read: a header that parses has
        // every byte before its CRC field fixed by a field, so they are its prefix.
        let mut crc = Crc32c::new();
        crc.update(&head[..field::CRC.start]);
        let len = h.len as usize;
        let end = (field::HEADER_LEN + len) as u64;
        if end > extent {
            return Ok(Err(CheckpointError::Truncated {
                expected: h.len,
                // Below `expected` here, so it fits.
                actual: extent.saturating_sub(field::HEADER_LEN as u64) as u32,
            }));
        }
        // A payload too large for the buffer is verified by streaming; only a
        // checkpoint that is valid is then refused (a torn one must not block the
        // fallback to an older one).
        let fits = buf.grow_to(len);
        let verified = if fits {
            let got = self
                .st
                .read(seq, field::HEADER_LEN as u64, &mut buf.bytes_mut()[..len])
                .map_err(Error::Storage)?;
            if got < len {
                Err(CheckpointError::Truncated {
                    expected: h.len,
                    actual: got as u32,
                })
            } else {
                crc.update(&buf.bytes()[..len]);
                h.check_crc(crc.finalize())
            }
        } else {
            self.verify_streaming(seq, &h, crc, &mut head)?
        };
        if let Err(e) = verified {
            return Ok(Err(e));
        }
        if let Err(e) = self.check_trailing(seq, end, extent, &mut head)? {
            return Ok(Err(e));
        }
        if !fits {
            return Err(Error::BufferTooSmall { needed: len as u64 });
        }
        Ok(Ok(h))
    }

    /// Past the payload's padding, only never-written bytes may follow. `chunk`: room
    /// to read through (the header's, free once it is parsed: no second one on the stack).
    fn check_trailing(
        &mut self,
        seq: u64,
        end: u64,
        extent: u64,
        chunk: &mut [u8; field::HEADER_LEN],
    ) -> Res<Result<(), CheckpointError>, S> {
        let padded = align_up(end, self.st.write_size().clamp(1, MAX_ALIGN));
        let unwritten = self.st.unwritten_byte();
        let mut clean = true;
        self.read_chunks(seq, padded.min(extent), extent, chunk, |bytes| {
            clean = bytes.iter().all(|&b| b == unwritten);
            clean
        })?;
        Ok(if clean {
            Ok(())
        } else {
            Err(CheckpointError::Trailing(extent - end))
        })
    }

    /// Removes the checkpoints newer than the newest one that verifies (torn writes);
    /// returns how many. Streams payloads, so needs no buffer.
    /// Frees a unit of a full medium: torn leftovers above the newest valid checkpoint,
    /// else the oldest checkpoint if a newer one is valid (never the newest valid one).
    /// A 2-unit A/B partition needs the second: a cut during `retain_newest` leaves
    /// both units holding checkpoints.
    fn make_room(&mut self) -> Res<bool, S> {
        if self.remove_torn_leftovers()? > 0 {
            return Ok(true);
        }
        let Some((lo, hi, _)) = segment_span(&mut self.st).map_err(Error::Storage)? else {
            return Ok(false);
        };
        for seq in (lo + 1..=hi).rev() {
            if self.is_valid(seq)? {
                self.st.remove(lo).map_err(Error::Storage)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether checkpoint `seq` exists and verifies (payload streamed, not kept).
    fn is_valid(&mut self, seq: u64) -> Res<bool, S> {
        if self.st.len(seq).is_err() {
            return Ok(false);
        }
        let mut none: [u8; 0] = [];
        match self.load(seq, &mut &mut none[..]) {
            // With no buffer, a valid non-empty one reports BufferTooSmall.
            Ok(Ok(_)) | Err(Error::BufferTooSmall { .. }) => Ok(true),
            Ok(Err(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn remove_torn_leftovers(&mut self) -> Res<u64, S> {
        let Some((lo, hi, _)) = segment_span(&mut self.st).map_err(Error::Storage)? else {
            return Ok(0);
        };
        let mut removed = 0;
        for seq in (lo..=hi).rev() {
            if self.st.len(seq).is_err() {
                continue;
            }
            if self.is_valid(seq)? {
                break;
            }
            self.st.remove(seq).map_err(Error::Storage)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Feeds bytes `from..to` of checkpoint `seq` to `f` in chunks read through `chunk`
    /// until `f` returns false or the segment ends; returns how many bytes were read.
    fn read_chunks(
        &mut self,
        seq: u64,
        from: u64,
        to: u64,
        chunk: &mut [u8; field::HEADER_LEN],
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> Res<u64, S> {
        let mut at = from;
        while at < to {
            let want = ((to - at) as usize).min(chunk.len());
            let got = self
                .st
                .read(seq, at, &mut chunk[..want])
                .map_err(Error::Storage)?;
            if got == 0 {
                break;
            }
            at += got as u64;
            if !f(&chunk[..got]) {
                break;
            }
        }
        Ok(at - from)
    }

    /// Checks a checkpoint's payload against its header without holding it, reading
    /// through `chunk`; `crc` has covered the header's prefix.
    fn verify_streaming(
        &mut self,
        seq: u64,
        h: &CheckpointHeader,
        mut crc: Crc32c,
        chunk: &mut [u8; field::HEADER_LEN],
    ) -> Res<Result<(), CheckpointError>, S> {
        let start = field::HEADER_LEN as u64;
        let read = self.read_chunks(seq, start, start + h.len as u64, chunk, |bytes| {
            crc.update(bytes);
            true
        })?;
        if read < h.len as u64 {
            return Ok(Err(CheckpointError::Truncated {
                expected: h.len,
                actual: read as u32,
            }));
        }
        Ok(h.check_crc(crc.finalize()))
    }

    /// Keeps the newest `keep` checkpoints that verify (at least one) and removes every
    /// other one: older ones, and torn leftovers of interrupted writes, which must not
    /// count toward `keep`. Returns how many were removed; each removal is durable when
    /// it returns. `buf` holds a payload while it is verified.
    pub fn retain_newest<B: Buffer>(&mut self, keep: usize, buf: &mut B) -> Res<u64, S> {
        let keep = keep.max(1);
        let Some((lo, hi, _)) = segment_span(&mut self.st).map_err(Error::Storage)? else {
            return Ok(0);
        };
        let (mut kept, mut removed) = (0, 0);
        for seq in (lo..=hi).rev() {
            if self.st.len(seq).is_err() {
                continue;
            }
            if kept < keep && self.load(seq, buf)?.is_ok() {
                kept += 1;
                continue;
            }
            // Newer than every valid checkpoint found so far: leave it, so that a store
            // without any valid checkpoint loses nothing.
            if kept == 0 {
                continue;
            }
            self.st.remove(seq).map_err(Error::Storage)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Gives back the storage.
    pub fn into_inner(self) -> S {
        self.st
    }
}
