//! The byte formats: segment header, frame, sync marker. Little-endian everywhere.
//!
//! A segment (one WAL segment file, one record-log file, one flash segment) is a header
//! followed by frames, each padded to the segment's alignment:
//!
//! ```text
//!  segment header (48 bytes)
//!  0       4   5   6   7   8               16              24              32              40      44      48
//!  +-------+---+---+---+---+---------------+---------------+---------------+---------------+-------+-------+
//!  | magic |ver|knd|aln|rsv|    log_id     |   segment     |   first_id    |   prev_end    |  rsv  |  crc  |
//!  +-------+---+---+---+---+---------------+---------------+---------------+---------------+-------+-------+
//!   "DURL"  1   1=WAL     0   random id of   this segment's  id of the first  where the      0      CRC-32C of
//!               2=rlog        the log        number          frame in here    previous         bytes 0..44
//!                   log2 of alignment                                         segment ends
//!                                                                             (0: not recorded)
//!
//!  frame (8-byte header, payload, zero padding to the alignment)
//!  0       4       8                        8+len
//!  +-------+-------+------------------------+-----+
//!  |  crc  | word  | payload                | pad |
//!  +-------+-------+------------------------+-----+
//!  word = kind << 28 | len          kind: 1 = entry, 2 = sync marker (0 and 15 never valid)
//!  crc  = CRC-32C(log_id ‖ segment ‖ entry_id ‖ word ‖ payload)     (ids as u64 LE, word as u32 LE)
//!
//!  short frame (segments of format version 2: media that ask for it, flash)
//!  0       4   6                        6+len
//!  +-------+---+------------------------+-----+
//!  |  crc  |wrd| payload                | pad |
//!  +-------+---+------------------------+-----+
//!  wrd  = kind << 14 | len (u16)     same kinds (0 and 3 never valid), len ≤ 16,383
//! ```
//!
//! Why this shape:
//! - The checksum covers the frame's identity (log, segment, entry id) without storing
//!   it: bytes from another log, another segment or another position (stale or
//!   preallocated space, a segment copied under a new number, a dropped frame) fail it.
//!   The entry id is implicit — `first_id` plus the frame's index — and still checked.
//! - An all-zero or all-0xFF word has kind 0 or 15, so neither zeroed nor erased space
//!   ever decodes as a frame, whatever the checksum happens to be.
//! - 8 header bytes, or 6 in the short form a medium with small segments asks for
//!   ([`Storage::short_frames`](crate::Storage::short_frames)): a 50-byte entry on
//!   4-byte flash words programs 56 bytes. The segment header's version says which form
//!   its frames use, so both are read everywhere, and a reader that predates the short
//!   form refuses such a segment (unknown version) instead of misreading it.
//! - A sync marker (kind 2, entry id 0 in the checksum) records a durable watermark;
//!   see `docs/design.md` for the argument and [`crate::segment`] for its use. Its
//!   payload is `watermark u64 ‖ next_id u64 ‖ log_id u64`: carrying the log id lets a
//!   marker be verified even when the segment header that names the log is damaged.
//! - Padding is not covered by the checksum: it carries no data.

use crate::checksum::Crc32c;

/// Segment header magic.
pub const MAGIC: [u8; 4] = *b"DURL";
/// Format version of segments whose frames have the 8-byte header.
pub const VERSION: u8 = 1;
/// Format version of segments whose frames have the 6-byte (short) header.
pub const VERSION_SHORT: u8 = 2;

/// Segment header field offsets.
pub mod header {
    use core::ops::Range;
    /// `magic`: [`MAGIC`](super::MAGIC).
    pub const MAGIC: Range<usize> = 0..4;
    /// `version`: [`VERSION`](super::VERSION).
    pub const VERSION: usize = 4;
    /// `kind`: [`LogKind`](super::LogKind).
    pub const KIND: usize = 5;
    /// `align_log2`: frames are padded to `1 << align_log2` bytes.
    pub const ALIGN_LOG2: usize = 6;
    /// Reserved, zero.
    pub const RESERVED0: usize = 7;
    /// `log_id`: random identity of the log, shared by all its segments.
    pub const LOG_ID: Range<usize> = 8..16;
    /// `segment`: this segment's number.
    pub const SEGMENT: Range<usize> = 16..24;
    /// `first_id`: entry id of the first frame in this segment.
    pub const FIRST_ID: Range<usize> = 24..32;
    /// `prev_end`: end of the valid data of the previous segment; 0 when not recorded.
    pub const PREV_END: Range<usize> = 32..40;
    /// Reserved, zero.
    pub const RESERVED1: Range<usize> = 40..44;
    /// `crc`: CRC-32C of bytes `0..44`.
    pub const CRC: Range<usize> = 44..48;
    /// Header length.
    pub const LEN: usize = 48;
}

/// Frame header field offsets.
pub mod frame_header {
    use core::ops::Range;
    /// `crc`: CRC-32C of identity, word and payload.
    pub const CRC: Range<usize> = 0..4;
    /// `word`: kind (bits 28..32) and payload length (bits 0..28).
    pub const WORD: Range<usize> = 4..8;
    /// Header length; the payload follows.
    pub const HEADER_LEN: usize = 8;
    /// Shift of the kind inside `word`.
    pub const KIND_SHIFT: u32 = 28;
    /// Mask of the length inside `word`.
    pub const LEN_MASK: u32 = (1 << KIND_SHIFT) - 1;
    /// Short form: `word` is a `u16`.
    pub const SHORT_WORD: Range<usize> = 4..6;
    /// Short form: header length.
    pub const SHORT_HEADER_LEN: usize = 6;
    /// Short form: shift of the kind inside the `u16` word.
    pub const SHORT_KIND_SHIFT: u32 = 14;
    /// Short form: mask of the length inside the `u16` word.
    pub const SHORT_LEN_MASK: u32 = (1 << SHORT_KIND_SHIFT) - 1;
}

/// Sync marker payload field offsets.
pub mod marker {
    use core::ops::Range;
    /// `watermark`: bytes `0..watermark` of this segment were durable when it was written.
    pub const WATERMARK: Range<usize> = 0..8;
    /// `next_id`: entry id the next entry frame after the watermark carries.
    pub const NEXT_ID: Range<usize> = 8..16;
    /// `log_id`: the log's identity, so a marker can be verified without the header.
    pub const LOG_ID: Range<usize> = 16..24;
    /// Payload length.
    pub const LEN: usize = 24;
}

const _: () = assert!(header::CRC.end == header::LEN);
const _: () = assert!(frame_header::HEADER_LEN == frame_header::WORD.end);
const _: () = assert!(MAX_ENTRY_LEN <= frame_header::LEN_MASK);
// A frame header is `crc ‖ word` from byte 0, and a short form's word (the largest kind
// and length) fits its 16 bits: `FrameSeal::seal` builds both forms as one `u64`.
const _: () = assert!(
    frame_header::CRC.start == 0
        && frame_header::HEADER_LEN == 8
        && (FrameKind::SyncMarker as u32) << frame_header::SHORT_KIND_SHIFT
            | frame_header::SHORT_LEN_MASK
            <= u16::MAX as u32
);

/// Largest entry payload, for writer and reader alike: 64 MiB.
pub const MAX_ENTRY_LEN: u32 = 64 * 1024 * 1024;

/// Largest entry payload of a segment with short frames: 16,383 bytes.
pub const SHORT_MAX_ENTRY_LEN: u32 = frame_header::SHORT_LEN_MASK;

/// Which frame header a segment's frames carry (its header's version says which).
///
/// The discriminant is the header length (never written to a medium: the segment
/// header's version byte is), so [`head_len`](Self::head_len) costs no code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameForm {
    /// 8-byte header: `crc u32 ‖ word u32`, entries up to [`MAX_ENTRY_LEN`].
    Long = frame_header::HEADER_LEN as u8,
    /// 6-byte header: `crc u32 ‖ word u16`, entries up to [`SHORT_MAX_ENTRY_LEN`].
    Short = frame_header::SHORT_HEADER_LEN as u8,
}

impl FrameForm {
    /// Header length of a frame.
    pub fn head_len(self) -> usize {
        self as usize
    }

    /// Largest entry payload.
    pub fn max_entry_len(self) -> u32 {
        match self {
            FrameForm::Long => MAX_ENTRY_LEN,
            FrameForm::Short => SHORT_MAX_ENTRY_LEN,
        }
    }

    /// Length of a frame with a `len`-byte payload, padded to `align`.
    pub fn frame_len(self, len: usize, align: usize) -> u64 {
        // In `usize`: on 32-bit targets `u64` masks cost registers in every loop that
        // pads frames. Exact for every length up to `usize::MAX - 40`.
        let mask = align.wrapping_sub(1);
        (len.wrapping_add(self.head_len() + mask) & !mask) as u64
    }

    /// The `word` of a frame (the value the checksum covers, as a `u32`).
    fn word(self, kind: FrameKind, len: usize) -> u32 {
        let shift = match self {
            FrameForm::Long => frame_header::KIND_SHIFT,
            FrameForm::Short => frame_header::SHORT_KIND_SHIFT,
        };
        (kind as u32) << shift | len as u32
    }

    /// The segment header version of this form.
    fn version(self) -> u8 {
        match self {
            FrameForm::Long => VERSION,
            FrameForm::Short => VERSION_SHORT,
        }
    }
}

/// Largest supported alignment (flash words up to 32 bytes).
pub const MAX_ALIGN: usize = 32;

/// What a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// A WAL segment.
    Wal = 1,
    /// A record log (a single segment).
    RecordLog = 2,
}

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A log entry or record.
    Entry = 1,
    /// A durable-watermark marker.
    SyncMarker = 2,
}

impl FrameKind {
    fn from_bits(bits: u32) -> Option<Self> {
        match bits {
            1 => Some(FrameKind::Entry),
            2 => Some(FrameKind::SyncMarker),
            _ => None,
        }
    }
}

/// Owned form of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// WAL segment or record log.
    pub kind: LogKind,
    /// log2 of the frame alignment.
    pub align_log2: u8,
    /// Identity of the log.
    pub log_id: u64,
    /// This segment's number.
    pub segment: u64,
    /// Entry id of the first frame.
    pub first_id: u64,
    /// End of the previous segment's valid data, 0 when not recorded.
    pub prev_end: u64,
    /// The frame header form (stored as the format version).
    pub form: FrameForm,
}

/// Why a header does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`header::LEN`] bytes.
    Short,
    /// Wrong magic, checksum, kind or reserved bytes: not a header (or a torn one).
    Invalid,
    /// A valid header of a version this build does not read.
    Version(u8),
}

impl SegmentHeader {
    /// Frame alignment in bytes.
    pub fn align(&self) -> usize {
        1 << self.align_log2
    }

    /// Offset of the first frame.
    pub fn data_start(&self) -> u64 {
        data_start(self.align())
    }

    /// The checksum seal of this segment's frames.
    pub fn seal(&self) -> FrameSeal {
        FrameSeal::new(self.log_id, self.segment, self.form)
    }

    /// Writes the header into `out[..header::LEN]`.
    pub fn emit(&self, out: &mut [u8; header::LEN]) {
        // Whole little-endian words (see `HEADER_WORDS`): at opt-level `z` a copy into
        // each field's range is an outlined, bounds-checked call.
        let lead = u32::from_le_bytes(MAGIC) as u64
            | (self.form.version() as u64) << (8 * header::VERSION)
            | (self.kind as u64) << (8 * header::KIND)
            | (self.align_log2 as u64) << (8 * header::ALIGN_LOG2);
        let mut words = [
            lead,
            self.log_id,
            self.segment,
            self.first_id,
            self.prev_end,
            0,
        ];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let crc = crate::checksum::crc32c(&out[..header::CRC.start]);
        words[HEADER_WORDS - 1] = (crc as u64) << (8 * (header::CRC.start % 8));
        if let Some(last) = out.last_chunk_mut::<8>() {
            *last = words[HEADER_WORDS - 1].to_le_bytes();
        }
    }

    /// Parses and validates a header.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let mut h = crate::segment::NO_HEADER;
        h.parse_into(bytes).map(|()| h)
    }

    /// [`parse`](Self::parse) into `self` (no header-sized temporary on the caller's
    /// stack); `self` is unchanged on error.
    pub fn parse_into(&mut self, bytes: &[u8]) -> Result<(), HeaderError> {
        let (b, kind, form) = Self::check(bytes)?;
        self.kind = kind;
        self.align_log2 = b[header::ALIGN_LOG2];
        self.log_id = le_u64(&b[header::LOG_ID]);
        self.segment = le_u64(&b[header::SEGMENT]);
        self.first_id = le_u64(&b[header::FIRST_ID]);
        self.prev_end = le_u64(&b[header::PREV_END]);
        self.form = form;
        Ok(())
    }

    /// The segment number of a valid header, checked in place (no header value built).
    pub(crate) fn segment_of(bytes: &[u8]) -> Result<u64, HeaderError> {
        Self::check(bytes).map(|(b, _, _)| le_u64(&b[header::SEGMENT]))
    }

    /// Validates a header in place: its bytes, kind and frame form.
    fn check(bytes: &[u8]) -> Result<(&[u8; header::LEN], LogKind, FrameForm), HeaderError> {
        let b: &[u8; header::LEN] = bytes.first_chunk().ok_or(HeaderError::Short)?;
        if b[header::MAGIC] != MAGIC {
            return Err(HeaderError::Invalid);
        }
        if crate::checksum::crc32c(&b[..header::CRC.start]) != le_u32(&b[header::CRC]) {
            return Err(HeaderError::Invalid);
        }
        let form = match b[header::VERSION] {
            VERSION => FrameForm::Long,
            VERSION_SHORT => FrameForm::Short,
            v => return Err(HeaderError::Version(v)),
        };
        let kind = match b[header::KIND] {
            1 => LogKind::Wal,
            2 => LogKind::RecordLog,
            _ => return Err(HeaderError::Invalid),
        };
        if (1usize << b[header::ALIGN_LOG2].min(31)) > MAX_ALIGN
            || b[header::RESERVED0] != 0
            || b[header::RESERVED1] != [0; 4]
        {
            return Err(HeaderError::Invalid);
        }
        Ok((b, kind, form))
    }
}

/// The segment header as little-endian `u64` words: the first holds magic, version,
/// kind, alignment and a reserved byte; then `log_id`, `segment`, `first_id`,
/// `prev_end`; the last holds the reserved bytes and the checksum.
const HEADER_WORDS: usize = header::LEN / 8;
const _: () = assert!(
    header::LEN.is_multiple_of(8)
        && header::MAGIC.start == 0
        && header::VERSION < 8
        && header::KIND < 8
        && header::ALIGN_LOG2 < 8
        && header::RESERVED0 < 8
        && header::LOG_ID.start == 8
        && header::SEGMENT.start == 16
        && header::FIRST_ID.start == 24
        && header::PREV_END.start == 32
        && header::RESERVED1.start == 40
        && header::RESERVED1.end == header::CRC.start
        && header::CRC.end == header::LEN
);

/// The checksum state after the identity prefix of a segment's frames; cloned per frame.
#[derive(Clone)]
pub struct FrameSeal {
    prefix: Crc32c,
    form: FrameForm,
}

impl FrameSeal {
    /// The seal for frames of form `form` in segment `segment` of log `log_id`.
    pub fn new(log_id: u64, segment: u64, form: FrameForm) -> Self {
        // Two updates (once per segment): no assembled identity array, whose
        // slice-and-copy is an outlined, bounds-checked call at opt-level `z`.
        let mut prefix = Crc32c::new();
        prefix.update(&log_id.to_le_bytes());
        prefix.update(&segment.to_le_bytes());
        FrameSeal { prefix, form }
    }

    /// The frame form this seal writes and reads.
    pub fn form(&self) -> FrameForm {
        self.form
    }

    /// The seal's checksum prefix and frame form, for a holder that keeps them apart
    /// (the appender: its form byte then packs beside its other small fields).
    pub(crate) fn into_parts(self) -> (Crc32c, FrameForm) {
        (self.prefix, self.form)
    }

    /// The seal from the parts [`into_parts`](Self::into_parts) gave.
    pub(crate) fn from_parts(prefix: Crc32c, form: FrameForm) -> Self {
        FrameSeal { prefix, form }
    }

    /// Checksum of a frame with implicit `entry_id` (0 for markers), `word` and `payload`.
    pub fn checksum(&self, entry_id: u64, word: u32, payload: &[u8]) -> u32 {
        let mut crc = self.begin(entry_id, word);
        crc.update(payload);
        crc.finalize()
    }

    /// The checksum state before the payload, for payloads read in pieces.
    pub fn begin(&self, entry_id: u64, word: u32) -> Crc32c {
        // One update over both fields, 8-aligned: each call has a fixed cost (feature
        // check, unaligned head and tail), which dominated the CRC of small frames.
        #[repr(align(8))]
        struct Implicit([u8; 12]);
        let mut implicit = Implicit([0u8; 12]);
        // Fixed-size chunks: no range slicing (an outlined, bounds-checked call at `z`).
        if let Some((id, rest)) = implicit.0.split_first_chunk_mut::<8>() {
            *id = entry_id.to_le_bytes();
            if let Some(w) = rest.first_chunk_mut::<4>() {
                *w = word.to_le_bytes();
            }
        }
        let mut crc = self.prefix.clone();
        crc.update(&implicit.0);
        crc
    }

    /// The header of a frame with this payload: its first
    /// [`head_len`](FrameForm::head_len) bytes (the rest is zero).
    pub fn seal(
        &self,
        kind: FrameKind,
        entry_id: u64,
        payload: &[u8],
    ) -> [u8; frame_header::HEADER_LEN] {
        let word = self.form.word(kind, payload.len());
        let crc = self.checksum(entry_id, word, payload);
        // `crc ‖ word` little-endian in one value: a short form's word fits 16 bits, so
        // its bytes 6..8 are zero.
        (crc as u64 | (word as u64) << (8 * frame_header::CRC.end)).to_le_bytes()
    }
}

/// A frame header read from bytes: kind and length are plausible, checksum not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame kind.
    pub kind: FrameKind,
    /// Payload length (at most [`MAX_ENTRY_LEN`]).
    pub len: u32,
    /// Stored checksum.
    pub crc: u32,
    word: u32,
    form: FrameForm,
}

impl FrameHeader {
    /// Parses the first [`head_len`](FrameForm::head_len) bytes of `bytes` as a frame
    /// header of form `form`; `None` if they are too few, the kind is invalid or the
    /// length over the limit.
    pub fn parse(bytes: &[u8], form: FrameForm) -> Option<Self> {
        let head = bytes.get(..form.head_len())?;
        let (word, kind_bits, len) = match form {
            FrameForm::Long => {
                let word = le_u32(&head[frame_header::WORD]);
                (
                    word,
                    word >> frame_header::KIND_SHIFT,
                    word & frame_header::LEN_MASK,
                )
            }
            FrameForm::Short => {
                let w = &head[frame_header::SHORT_WORD];
                let word = u16::from_le_bytes([w[0], w[1]]) as u32;
                (
                    word,
                    word >> frame_header::SHORT_KIND_SHIFT,
                    word & frame_header::SHORT_LEN_MASK,
                )
            }
        };
        let kind = FrameKind::from_bits(kind_bits)?;
        if len > MAX_ENTRY_LEN || (kind == FrameKind::SyncMarker && len as usize != marker::LEN) {
            return None;
        }
        Some(FrameHeader {
            kind,
            len,
            crc: le_u32(&head[frame_header::CRC]),
            word,
            form,
        })
    }

    /// Header length of this frame.
    pub fn head_len(&self) -> usize {
        self.form.head_len()
    }

    /// The `word` field as stored.
    pub fn word(&self) -> u32 {
        self.word
    }

    /// Whether `payload` with implicit `entry_id` matches the stored checksum.
    pub fn verify(&self, seal: &FrameSeal, entry_id: u64, payload: &[u8]) -> bool {
        seal.checksum(entry_id, self.word, payload) == self.crc
    }

    /// Total frame length including padding to `align`.
    pub fn frame_len(&self, align: usize) -> u64 {
        self.form.frame_len(self.len as usize, align)
    }

    /// [`frame_len`](Self::frame_len) as a `usize`: exact, since a parsed length is at
    /// most [`MAX_ENTRY_LEN`] (no `u64` arithmetic in the scan on 32-bit targets).
    pub(crate) fn span(&self, align: usize) -> usize {
        self.form.frame_len(self.len as usize, align) as usize
    }
}

/// A sync marker's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncMarker {
    /// Bytes `0..watermark` of the segment are durable.
    pub watermark: u64,
    /// Entry id of the next entry frame.
    pub next_id: u64,
    /// The log's identity (also in the checksum); lets a marker prove a damaged header
    /// was once durable.
    pub log_id: u64,
}

impl SyncMarker {
    /// Encodes the payload.
    pub fn emit(&self) -> [u8; marker::LEN] {
        let mut out = [0u8; marker::LEN];
        out[marker::WATERMARK].copy_from_slice(&self.watermark.to_le_bytes());
        out[marker::NEXT_ID].copy_from_slice(&self.next_id.to_le_bytes());
        out[marker::LOG_ID].copy_from_slice(&self.log_id.to_le_bytes());
        out
    }

    /// Decodes the payload.
    pub fn parse(p: &[u8; marker::LEN]) -> Self {
        SyncMarker {
            watermark: le_u64(&p[marker::WATERMARK]),
            next_id: le_u64(&p[marker::NEXT_ID]),
            log_id: le_u64(&p[marker::LOG_ID]),
        }
    }
}

/// Entry id used in the checksum of sync markers (entry ids start at 1).
pub const MARKER_ID: u64 = 0;

/// Offset of the first frame of a segment whose frames are aligned to `align`: the
/// header padded. In `usize`, like [`frame_len`]: no `u64` mask on 32-bit targets.
pub(crate) fn data_start(align: usize) -> u64 {
    let mask = align.wrapping_sub(1);
    ((header::LEN + mask) & !mask) as u64
}

/// Length of a frame with the 8-byte header and a `len`-byte payload, padded to `align`
/// ([`FrameForm::frame_len`] for either form).
pub fn frame_len(len: usize, align: usize) -> u64 {
    FrameForm::Long.frame_len(len, align)
}

/// Rounds `n` up to a multiple of the power of two `align`.
pub fn align_up(n: u64, align: usize) -> u64 {
    let a = align as u64;
    (n + a - 1) & !(a - 1)
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
