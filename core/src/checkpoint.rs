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
// The header as eight little-endian `u64` words (how `CheckpointHeader::seal` builds
// it): magic, version and kind in word 0, `log_id`, `seq`, `last_id` in words 1 to 3,
// `len` in the low half of word 4 and `crc` in the high half of word 7; every other
// byte is reserved, zero.
const _: () = assert!(
    field::MAGIC.start == 0
        && field::VERSION == 4
        && field::KIND == 5
        && field::LOG_ID.start == 8
        && field::SEQ.start == 16
        && field::LAST_ID.start == 24
        && field::LEN.start == 32
        && field::CRC.start == 60
        && field::HEADER_LEN == 64
);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
        let mut h = CheckpointHeader {
            log_id,
            seq,
            last_id,
            len: payload_len(payload)?,
            crc: 0,
        };
        let mut b = [0u8; field::HEADER_LEN];
        h.crc = h.seal(&mut b, payload);
        Ok(h)
    }

    /// Writes the header for `payload` into `b`: bytes `0..60` from the fields, then
    /// the checksum of those and `payload`, which it returns. In place: no
    /// header-sized value is returned or copied.
    fn seal(&self, b: &mut [u8; field::HEADER_LEN], payload: &[u8]) -> u32 {
        // The header as eight little-endian words (the layout is asserted at compile
        // time next to `field`): one store loop instead of a copy per field.
        for (i, dst) in b.chunks_exact_mut(8).enumerate() {
            let w = match i {
                0 => {
                    u64::from(u32::from_le_bytes(MAGIC))
                        | u64::from(VERSION) << (8 * field::VERSION)
                        | 1 << (8 * field::KIND)
                }
                1 => self.log_id,
                2 => self.seq,
                3 => self.last_id,
                4 => u64::from(self.len),
                _ => 0,
            };
            dst.copy_from_slice(&w.to_le_bytes());
        }
        let mut crc = Crc32c::new();
        crc.update(&b[..field::CRC.start]);
        crc.update(payload);
        let crc = crc.finalize();
        b[field::CRC].copy_from_slice(&crc.to_le_bytes());
        crc
    }

    /// The 64 header bytes.
    pub fn emit(&self) -> [u8; field::HEADER_LEN] {
        let mut b = [0u8; field::HEADER_LEN];
        self.seal(&mut b, &[]);
        b[field::CRC].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    /// Parses a header (the checksum is checked with the payload by [`verify`](Self::verify)).
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let mut h = CheckpointHeader::default();
        h.parse_into(bytes)?;
        Ok(h)
    }

    /// [`parse`](Self::parse) into `self` (unchanged on error): no header-sized
    /// result to copy.
    fn parse_into(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let (b, len) = Self::check(bytes)?;
        *self = CheckpointHeader {
            log_id: le_u64(&b[field::LOG_ID]),
            seq: le_u64(&b[field::SEQ]),
            last_id: le_u64(&b[field::LAST_ID]),
            len,
            crc: le_u32(&b[field::CRC]),
        };
        Ok(())
    }

    /// The sequence number of a header that parses, checked in place (no header value
    /// built).
    pub(crate) fn seq_of(bytes: &[u8]) -> Result<u64, CheckpointError> {
        Self::check(bytes).map(|(b, _)| le_u64(&b[field::SEQ]))
    }

    /// Validates a header in place; returns its bytes and payload length.
    fn check(bytes: &[u8]) -> Result<(&[u8; field::HEADER_LEN], u32), CheckpointError> {
        let b: &[u8; field::HEADER_LEN] = bytes.first_chunk().ok_or(CheckpointError::Short)?;
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
        Ok((b, len))
    }

    /// Checks `payload` against the stored checksum.
    pub fn verify(&self, payload: &[u8]) -> Result<(), CheckpointError> {
        let mut b = [0u8; field::HEADER_LEN];
        self.check_crc(self.seal(&mut b, payload))
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

/// The length field for `payload`, if it is within [`MAX_CHECKPOINT_LEN`].
fn payload_len(payload: &[u8]) -> Result<u32, CheckpointError> {
    u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= MAX_CHECKPOINT_LEN)
        .ok_or(CheckpointError::TooLarge(u32::MAX))
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
        self.write_in(log_id, last_id, payload, None)
    }

    /// [`write`](Self::write) that, on a full medium, verifies the checkpoints it may
    /// remove in `scratch` (a publish's retention buffer) instead of in the header's
    /// room, so that the room and the walk's slot are not both on the caller's stack.
    pub(crate) fn write_in(
        &mut self,
        log_id: u64,
        last_id: u64,
        payload: &[u8],
        scratch: Option<&mut dyn Buffer>,
    ) -> Res<u64, S> {
        let seq = segment_span(&mut self.st)
            .map_err(Error::Storage)?
            .map_or(1, |(_, hi, _)| hi + 1);
        // Checks the payload length before anything is written.
        let len = payload_len(payload).map_err(Error::Checkpoint)?;
        let ws = self.st.write_size();
        if !ws.is_power_of_two() || ws > MAX_ALIGN {
            return Err(Error::InvalidConfig(
                "write size must be a power of two up to 32",
            ));
        }
        let total = align_up((field::HEADER_LEN + payload.len()) as u64, ws);
        if let Some(max) = self.st.max_segment_len() {
            if total > max {
                return Err(Error::EntryTooLarge {
                    len: payload.len() as u64,
                    max: max.saturating_sub(field::HEADER_LEN as u64),
                });
            }
        }
        match self.st.create(seq) {
            Ok(()) => {}
            // A full medium may be holding torn leftovers of interrupted writes (they
            // only go at the next successful publish), or an old checkpoint whose
            // retention was cut: make room and retry once.
            Err(e) if e.kind() == StorageErrorKind::NoSpace && self.make_room(scratch)? => {
                // Numbers stay monotonic: the torn ones are not reused.
                self.st.create(seq).map_err(Error::Storage)?;
            }
            Err(e) => return Err(Error::Storage(e)),
        }
        let header = CheckpointHeader {
            log_id,
            seq,
            last_id,
            len,
            crc: 0,
        };
        let mut head = [0u8; field::HEADER_LEN];
        header.seal(&mut head, payload);
        let st = &mut self.st;
        st.write(seq, 0, &head).map_err(Error::Storage)?;
        let body = payload.len() & !(ws - 1);
        if body > 0 {
            st.write(seq, field::HEADER_LEN as u64, &payload[..body])
                .map_err(Error::Storage)?;
        }
        if body < payload.len() {
            // The header's bytes are written: its room holds the padded tail.
            let rest = &payload[body..];
            head = [0; field::HEADER_LEN];
            head[..rest.len()].copy_from_slice(rest);
            st.write(seq, (field::HEADER_LEN + body) as u64, &head[..ws])
                .map_err(Error::Storage)?;
        }
        st.sync(seq).map_err(Error::Storage)?;
        Ok(seq)
    }

    /// The newest checkpoint that verifies, with its payload in `buf[..len]`.
    ///
    /// The rest of `buf` is scratch: each header is read into it, and what does not fit
    /// is streamed through it (a `Vec` grows only as far as the bytes stored). A valid
    /// checkpoint whose payload does not fit is refused with [`Error::BufferTooSmall`].
    pub fn latest<B: Buffer>(&mut self, buf: &mut B) -> Res<Option<StoredCheckpoint>, S> {
        // Filled in the returned value itself: no checkpoint-sized copy on the way out.
        let mut r = Ok(None);
        if let Ok(out) = &mut r {
            if let Err(e) = self.walk_in(buf, Walk::Latest, out) {
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
        self.walk_in(buf, Walk::Latest, out).map(drop)
    }

    /// Reads checkpoint `seq` into `buf`; the inner result says whether it verifies.
    /// `buf` is used as in [`latest`](Self::latest).
    pub fn load<B: Buffer>(
        &mut self,
        seq: u64,
        buf: &mut B,
    ) -> Res<Result<CheckpointHeader, CheckpointError>, S> {
        let mut h = CheckpointHeader::default();
        let extent = self.st.len(seq).map_err(Error::Storage)?;
        let r = if holds_header(buf) {
            self.verify(seq, extent, buf, &mut h)
        } else {
            let mut p = Padded::new(buf);
            let r = self.verify(seq, extent, &mut p, &mut h);
            if r.is_ok() && p.grow_to(h.len as usize) {
                p.give_back(h.len);
            }
            r
        };
        match r {
            Ok(()) if !buf.grow_to(h.len as usize) => Err(Error::BufferTooSmall {
                needed: u64::from(h.len),
            }),
            Ok(()) => Ok(Ok(h)),
            Err(Error::Checkpoint(e)) => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// Verifies checkpoint `seq`, whose readable extent is `extent`: its header, its
    /// payload's checksum, and that only never-written bytes follow the payload's
    /// padding. `buf` holds at least a header (its callers grow it first): the header is
    /// read into it, then the bytes past the padding are streamed through it, then the
    /// payload is read into it if it fits ([`Buffer::grow_to`]), else streamed through
    /// it. Whether a payload that does not fit is refused is the caller's decision.
    /// Why the checkpoint is invalid comes back as [`Error::Checkpoint`], in
    /// [`decode`]'s order: header, truncation, trailing bytes, checksum. The header
    /// goes to `h` (the caller's slot: no header-sized result is returned).
    ///
    /// One copy, whatever the caller's buffer type; no header-sized array of its own.
    fn verify(
        &mut self,
        seq: u64,
        extent: u64,
        buf: &mut dyn Buffer,
        h: &mut CheckpointHeader,
    ) -> Res<(), S> {
        let mut crc = Crc32c::new();
        {
            // A growing buffer grows only to the bytes present (a shorter image is a
            // short checkpoint). (A fixed buffer shorter than a header, which the
            // callers never pass, reads as a short checkpoint.)
            let want =
                usize::try_from(extent).map_or(field::HEADER_LEN, |e| e.min(field::HEADER_LEN));
            buf.grow_to(want);
            let Some(head) = buf.bytes_mut().get_mut(..want) else {
                return Err(Error::Checkpoint(CheckpointError::Short));
            };
            let n = self.st.read(seq, 0, head).map_err(Error::Storage)?;
            h.parse_into(head.get(..n).unwrap_or_default())
                .map_err(Error::Checkpoint)?;
            // The checksum starts over the header bytes just read: a header that parses
            // has every byte before its CRC field fixed by a field, so they are its
            // prefix.
            crc.update(head.get(..field::CRC.start).unwrap_or_default());
        }
        // A checkpoint stored under another number (copied, or stale) is not this one.
        if h.seq != seq {
            return Err(Error::Checkpoint(CheckpointError::BadHeader));
        }
        // Offsets as `usize`: a payload is at most `MAX_CHECKPOINT_LEN`, so `end` fits
        // on every target.
        let len = h.len as usize;
        let start = field::HEADER_LEN;
        let end = start + len;
        // More bytes than the address space (a file over 4 GiB on a 32-bit target):
        // more than any checkpoint and its padding.
        let Ok(extent) = usize::try_from(extent) else {
            return Err(Error::Checkpoint(CheckpointError::Trailing(
                extent - end as u64,
            )));
        };
        if end > extent {
            return Err(Error::Checkpoint(CheckpointError::Truncated {
                expected: h.len,
                // Below `expected` here, so it fits.
                actual: extent.saturating_sub(start) as u32,
            }));
        }
        // One read loop, two passes: the bytes past the payload's padding, which must
        // never have been written (read first, while the whole buffer is free: as in
        // `decode`, written bytes there are named before a checksum mismatch); then
        // the payload, hashed.
        let unwritten = self.st.unwritten_byte();
        let mut at =
            (align_up(end as u64, self.st.write_size().clamp(1, MAX_ALIGN)) as usize).min(extent);
        let mut hashing = false;
        let mut chunk: &mut [u8] = buf.bytes_mut();
        loop {
            let to = if hashing { end } else { extent };
            while at < to {
                let want = chunk.len().min(to - at);
                let Some(part) = chunk.get_mut(..want) else {
                    break;
                };
                let got = self.st.read(seq, at as u64, part).map_err(Error::Storage)?;
                // A read of nothing (or, from a broken backend, of more than asked)
                // ends the pass; the checks below judge what was read.
                let Some(bytes) = part.get(..got).filter(|_| got > 0) else {
                    break;
                };
                at += got;
                if hashing {
                    crc.update(bytes);
                } else if bytes.iter().any(|&b| b != unwritten) {
                    return Err(Error::Checkpoint(CheckpointError::Trailing(
                        (extent - end) as u64,
                    )));
                }
            }
            if hashing {
                break;
            }
            hashing = true;
            at = start;
            // The whole payload in one read, straight into the caller's buffer.
            chunk = if buf.grow_to(len) {
                buf.bytes_mut().get_mut(..len).unwrap_or_default()
            } else {
                buf.bytes_mut()
            };
        }
        if at < end {
            return Err(Error::Checkpoint(CheckpointError::Truncated {
                expected: h.len,
                actual: (at - start) as u32,
            }));
        }
        h.check_crc(crc.finalize()).map_err(Error::Checkpoint)?;
        Ok(())
    }

    /// Frees a unit of a full medium: torn leftovers above the newest valid checkpoint,
    /// else the oldest checkpoint if a newer one is valid (never the newest valid one).
    /// A 2-unit A/B partition needs the second: a cut during `retain_newest` leaves
    /// both units holding checkpoints. Each header is read into `scratch` if it can
    /// hold one, else into a header-sized room; payloads are streamed, never refused.
    fn make_room(&mut self, scratch: Option<&mut dyn Buffer>) -> Res<bool, S> {
        let mut own = [0u8; field::HEADER_LEN];
        let room: &mut dyn Buffer = match scratch {
            Some(b) => {
                if b.grow_to(field::HEADER_LEN) {
                    b
                } else {
                    &mut own
                }
            }
            None => &mut own,
        };
        Ok(self.walk(room, Walk::MakeRoom, &mut None)? > 0)
    }

    /// Keeps the newest `keep` checkpoints that verify (at least one) and removes every
    /// other one: older ones, and torn leftovers of interrupted writes, which must not
    /// count toward `keep`. Returns how many were removed; each removal is durable when
    /// it returns. `buf` holds each header and payload while it is verified, as in
    /// [`latest`](Self::latest).
    pub fn retain_newest<B: Buffer>(&mut self, keep: usize, buf: &mut B) -> Res<u64, S> {
        self.walk_in(buf, Walk::Retain(keep.max(1)), &mut None)
    }

    /// [`walk`](Self::walk) in the caller's buffer, which also holds each header and
    /// streams what does not fit it: no header-sized array on the walk's stack. A fixed
    /// buffer smaller than a header is lent one, out of line. Inlined: for a fixed
    /// buffer the choice is made at compile time, and no frame is added to the walk's.
    #[inline(always)]
    fn walk_in<B: Buffer>(
        &mut self,
        buf: &mut B,
        walk: Walk,
        out: &mut Option<StoredCheckpoint>,
    ) -> Res<u64, S> {
        if holds_header(buf) {
            self.walk(buf, walk, out)
        } else {
            self.walk_padded(buf, walk, out)
        }
    }

    /// [`walk`](Self::walk) for a buffer smaller than a header: in a [`Padded`] one,
    /// the found checkpoint's payload copied back.
    #[inline(never)]
    fn walk_padded(
        &mut self,
        buf: &mut dyn Buffer,
        walk: Walk,
        out: &mut Option<StoredCheckpoint>,
    ) -> Res<u64, S> {
        let mut p = Padded::new(buf);
        let removed = self.walk(&mut p, walk, out)?;
        if let Some(c) = out {
            p.give_back(c.header.len);
        }
        Ok(removed)
    }

    /// Visits the checkpoints newest first, verifying each until `walk` has what it
    /// keeps. Returns how many were removed. `out` holds the header being verified
    /// (in the caller's frame, not this one's); after a [`Walk::Latest`] it is the
    /// newest valid checkpoint, or `None`.
    fn walk(
        &mut self,
        buf: &mut dyn Buffer,
        walk: Walk,
        out: &mut Option<StoredCheckpoint>,
    ) -> Res<u64, S> {
        let keep = match walk {
            Walk::Retain(keep) => keep,
            _ => 1,
        };
        let slot = out.insert(StoredCheckpoint {
            seq: 0,
            header: CheckpointHeader::default(),
            skipped: 0,
        });
        // Both count segments the storage holds at once, which a `usize` can count (and
        // a 32-bit core keeps in one register).
        let (mut kept, mut removed) = (0, 0usize);
        // The lowest number held: a running minimum over the listings (a walk removes
        // only numbers above it before it is used, so it stays the lowest at the start).
        let (mut lo, mut limit) = (u64::MAX, u64::MAX);
        // The next checkpoint present, newest first: one listing per step, never a count
        // through the gap (a damaged or foreign number may be near `u64::MAX`).
        while let Some(seq) = highest_at_or_below(&mut self.st, limit, &mut lo)? {
            slot.seq = seq;
            if let Ok(extent) = self.st.len(seq) {
                let valid = kept < keep
                    && match self.verify(seq, extent, buf, &mut slot.header) {
                        Ok(()) => true,
                        Err(Error::Checkpoint(_)) => false,
                        Err(e) => return Err(e),
                    };
                if valid {
                    // Valid, but its payload does not fit: refused, not passed over (a
                    // torn one that announces a large payload was skipped: not valid).
                    // Making room only streams.
                    let len = slot.header.len;
                    if !matches!(walk, Walk::MakeRoom) && !buf.grow_to(len as usize) {
                        return Err(Error::BufferTooSmall {
                            needed: u64::from(len),
                        });
                    }
                    kept += 1;
                    match walk {
                        Walk::Retain(_) => {}
                        Walk::Latest => return Ok(0),
                        // Nothing was torn above it: the oldest goes instead, unless
                        // it is this one.
                        Walk::MakeRoom => {
                            if removed == 0 && seq != lo {
                                self.remove(lo)?;
                                removed = 1;
                            }
                            return Ok(removed as u64);
                        }
                    }
                } else if kept == 0 && !matches!(walk, Walk::MakeRoom) {
                    // Newer than every valid checkpoint found so far: leave it, so
                    // that a store without any valid checkpoint loses nothing.
                    slot.skipped += 1;
                } else {
                    self.remove(seq)?;
                    removed += 1;
                }
            }
            let Some(below) = seq.checked_sub(1) else {
                break;
            };
            limit = below;
        }
        *out = None;
        Ok(removed as u64)
    }

    /// Removes checkpoint `seq`: one copy of the call and its error conversion for
    /// the walk's two call sites.
    #[inline(never)]
    fn remove(&mut self, seq: u64) -> Res<(), S> {
        self.st.remove(seq).map_err(Error::Storage)
    }

    /// Gives back the storage.
    pub fn into_inner(self) -> S {
        self.st
    }
}

/// The highest segment number at or below `limit` that `st` holds, if any; lowers `lo`
/// to the lowest number it holds. One listing with a shallow callback.
fn highest_at_or_below<S: Storage>(st: &mut S, limit: u64, lo: &mut u64) -> Res<Option<u64>, S> {
    let mut best = None;
    st.list(&mut |n| {
        *lo = (*lo).min(n);
        if n <= limit && best.is_none_or(|b| n > b) {
            best = Some(n);
        }
    })
    .map_err(Error::Storage)?;
    Ok(best)
}

/// Whether `buf` can hold a checkpoint header when one is read: a fixed buffer at least
/// that long, or one that grows (only as far as the bytes read need, see `verify`).
/// Known at compile time for a fixed-size buffer.
fn holds_header<B: Buffer + ?Sized>(buf: &B) -> bool {
    buf.can_grow() || buf.bytes().len() >= field::HEADER_LEN
}

/// A fixed buffer smaller than a checkpoint header, lent a header's room: headers are
/// read and bytes streamed through `room`; a payload that fits the caller's buffer
/// lands in `room` and [`give_back`](Self::give_back) copies it there.
struct Padded<'a> {
    buf: &'a mut dyn Buffer,
    room: [u8; field::HEADER_LEN],
}

impl<'a> Padded<'a> {
    fn new(buf: &'a mut dyn Buffer) -> Self {
        Padded {
            buf,
            room: [0; field::HEADER_LEN],
        }
    }

    /// Copies the first `len` bytes of the room to the caller's buffer.
    fn give_back(self, len: u32) {
        let src = self.room.iter().take(len as usize);
        for (d, s) in self.buf.bytes_mut().iter_mut().zip(src) {
            *d = *s;
        }
    }
}

impl Buffer for Padded<'_> {
    fn bytes(&self) -> &[u8] {
        &self.room
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.room
    }
    fn grow_to(&mut self, len: usize) -> bool {
        len <= self.room.len() && self.buf.grow_to(len)
    }
}

/// What [`CheckpointStore::walk`] is for.
#[derive(Clone, Copy)]
enum Walk {
    /// Find the newest valid checkpoint; touch nothing.
    Latest,
    /// Keep the newest `n` valid ones, remove the rest below the newest valid one.
    Retain(usize),
    /// Remove every checkpoint above the newest valid one (torn leftovers); if there
    /// is none, remove the oldest checkpoint unless it is the newest valid one.
    MakeRoom,
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::mem::MemStorage;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A store holding checkpoints 1..=n, checkpoint `s` with a payload of `s + 10`
    /// bytes of value `s`.
    fn store(n: u64) -> CheckpointStore<MemStorage> {
        let mut s = CheckpointStore::new(MemStorage::new());
        for seq in 1..=n {
            assert_eq!(
                s.write(7, seq * 10, &vec![seq as u8; seq as usize + 10])
                    .unwrap(),
                seq
            );
        }
        s
    }

    #[test]
    fn a_buffer_smaller_than_a_header_still_receives_the_payload() {
        // 12 payload bytes into 12-, 16- and 63-byte buffers (the lent room's path).
        let mut s = store(2);
        let mut b12 = [0u8; 12];
        let c = s.latest(&mut b12).unwrap().unwrap();
        assert_eq!((c.seq, c.header.len, c.skipped), (2, 12, 0));
        assert_eq!(b12, [2u8; 12]);
        let mut b63 = [0u8; 63];
        assert_eq!(s.latest(&mut b63).unwrap().unwrap().seq, 2);
        assert_eq!(&b63[..12], &[2u8; 12]);
        assert!(
            b63[12..].iter().all(|&b| b == 0),
            "nothing past the payload"
        );
        let mut slice_buf = [0u8; 16];
        let mut sb: &mut [u8] = &mut slice_buf;
        assert_eq!(s.load(2, &mut sb).unwrap().unwrap().len, 12);
        assert_eq!(&slice_buf[..12], &[2u8; 12]);
        // Too small for the newest valid one: refused, nothing removed.
        let mut b11 = [0u8; 11];
        assert!(matches!(
            s.latest(&mut b11),
            Err(Error::BufferTooSmall { needed: 12 })
        ));
        assert!(matches!(
            s.retain_newest(1, &mut b11),
            Err(Error::BufferTooSmall { needed: 12 })
        ));
        assert!(matches!(
            s.load(1, &mut [0u8; 10]),
            Err(Error::BufferTooSmall { needed: 11 })
        ));
        assert_eq!(s.load(1, &mut b11).unwrap().unwrap().last_id, 10);
        assert_eq!(b11, [1u8; 11]);
        assert_eq!(s.storage().segments.len(), 2);
        // Large enough for both: the older one goes.
        assert_eq!(s.retain_newest(1, &mut b12).unwrap(), 1);
        assert_eq!(
            s.storage().segments.keys().copied().collect::<Vec<_>>(),
            [2]
        );
    }

    #[test]
    fn a_vec_grows_to_hold_the_header_and_the_payload() {
        let mut s = store(3);
        s.write(7, 40, &[4u8; 200]).unwrap();
        let mut v = Vec::new();
        let c = s.latest(&mut v).unwrap().unwrap();
        assert_eq!((c.seq, c.header.len), (4, 200));
        assert_eq!(&v[..200], &[4u8; 200][..]);
        assert_eq!(s.retain_newest(2, &mut Vec::new()).unwrap(), 2);
    }

    #[test]
    fn a_payload_larger_than_the_buffer_is_streamed_through_it() {
        // A payload of 300 bytes does not fit a 64-byte buffer: it is still verified
        // (a torn newer one is skipped, the valid one refused), and making room on a
        // full medium never refuses.
        let mut s = CheckpointStore::new(MemStorage::new());
        s.write(7, 10, &[1u8; 300]).unwrap();
        let mut b64 = [0u8; 64];
        assert!(matches!(
            s.latest(&mut b64),
            Err(Error::BufferTooSmall { needed: 300 })
        ));
        s.storage().segments.get_mut(&1).unwrap().push(0x42);
        assert_eq!(
            s.load(1, &mut b64).unwrap(),
            Err(CheckpointError::Trailing(1))
        );
        assert!(s.latest(&mut b64).unwrap().is_none());
    }

    #[test]
    fn the_store_names_a_damaged_checkpoint_as_decode_does() {
        // A flipped payload byte and written bytes after the payload: `decode` and the
        // store both name the trailing bytes first; without them, the checksum.
        let mut s = store(1);
        let img = s.storage().segments.get_mut(&1).unwrap();
        img[field::HEADER_LEN] ^= 1;
        let flipped = img.clone();
        img.extend_from_slice(&[0, 3]);
        let both = img.clone();
        let mut buf = [0u8; 64];
        assert_eq!(decode(&both).unwrap_err(), CheckpointError::Trailing(2));
        assert_eq!(
            s.load(1, &mut buf).unwrap(),
            Err(CheckpointError::Trailing(2))
        );
        s.storage().segments.insert(1, flipped.clone());
        assert!(matches!(
            decode(&flipped),
            Err(CheckpointError::Checksum { .. })
        ));
        assert!(matches!(
            s.load(1, &mut buf).unwrap(),
            Err(CheckpointError::Checksum { .. })
        ));
    }
}
