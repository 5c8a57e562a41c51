//! Shared pieces of the fuzz targets in `fuzz_targets/`.
//!
//! - [`In`]: a cursor over the fuzz input that never fails (exhausted input reads as
//!   zeros), so every byte string is a valid input.
//! - [`SimStorage`]: a [`Storage`] over [`MemStorage`] that remembers how much of each
//!   segment a completed barrier covered, can inject a failing write or sync, and can
//!   "crash": damage only what no barrier covered, the way the failure model allows.
//! - Builders ([`build_wal`], [`build_recordlog`]) that run the real writers from fuzz
//!   input, and [`damage`] operations (including re-sealing CRCs after an edit), so the
//!   fuzzer reaches deep reader states without having to guess CRC-32C values.
//! - The invariant checks shared by several targets ([`check_wal_replay`],
//!   [`check_wal_writer`], [`check_recordlog`]).
//!
//! Every check panics on a violated invariant: that is how libFuzzer learns of a bug.

use std::collections::BTreeMap;

use arbitrary::Unstructured;
use durability_core::checksum::crc32c;
use durability_core::frame::{
    frame_header, header, FrameForm, FrameHeader, FrameKind, SegmentHeader, SyncMarker, MARKER_ID,
};
use durability_core::mem::{MemError, MemStorage};
use durability_core::recordlog::{ReadReport, RecordLogReader, RecordLogWriter};
use durability_core::wal::{ReplayReport, WalConfig, WalReader, WalWriter};
use durability_core::{Buffer, Error, ErrorType, ReadMode, Storage};

/// The core's error over the in-memory backends used here.
pub type CoreError = Error<MemError>;

// ---------------------------------------------------------------------------------
// Input cursor
// ---------------------------------------------------------------------------------

/// A cursor over fuzz input. Reads past the end give zeros, never errors.
pub struct In<'a>(Unstructured<'a>);

impl<'a> In<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        In(Unstructured::new(data))
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes left.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        self.0.arbitrary().unwrap_or(0)
    }

    /// Two bytes.
    pub fn u16(&mut self) -> u16 {
        self.0.arbitrary().unwrap_or(0)
    }

    /// Eight bytes.
    pub fn u64(&mut self) -> u64 {
        self.0.arbitrary().unwrap_or(0)
    }

    /// A flag.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (`n > 0`), from as few bytes as needed.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        if n <= 256 {
            self.u8() as u64 % n
        } else if n <= 65536 {
            self.u16() as u64 % n
        } else {
            self.u64() % n
        }
    }

    /// A `u64` biased towards the values where arithmetic breaks.
    pub fn edge_u64(&mut self) -> u64 {
        match self.u8() % 12 {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => u64::MAX,
            4 => u64::MAX - 1,
            5 => u64::MAX - 2,
            6 => 1 << 32,
            7 => 1 << 63,
            8 => self.u8() as u64,
            9 => self.u16() as u64,
            10 => u64::MAX - self.u8() as u64,
            _ => self.u64(),
        }
    }

    /// Up to `n` raw bytes (fewer when the input runs out).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        self.0.bytes(n).unwrap_or(&[])
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.0.take_rest()
    }
}

/// A deterministic byte stream (splitmix64): garbage the fuzzer cannot steer byte by
/// byte, so it can never "forge" a valid CRC inside simulated crash damage.
pub fn prng_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A payload length: mostly small, sometimes larger than any writer buffer used here.
pub fn payload_len(inp: &mut In) -> usize {
    match inp.u8() % 8 {
        0 => 0,
        1..=4 => inp.u8() as usize % 64,
        5 | 6 => inp.u8() as usize * 2,
        _ => 512 + inp.u16() as usize % 2048,
    }
}

/// Write sizes the core supports: 1 to 32.
pub fn write_size(inp: &mut In) -> usize {
    1 << (inp.u8() % 6)
}

// ---------------------------------------------------------------------------------
// A storage that can crash
// ---------------------------------------------------------------------------------

/// An injected failure, consumed by the next storage call of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// The next `write` lands only its first `keep` bytes (rounded down to the write
    /// size), then fails.
    Write {
        /// Bytes that land.
        keep: usize,
    },
    /// The next `sync` fails (and makes nothing durable).
    Sync,
}

/// [`MemStorage`] plus what a crash may take away: for each segment, the length a
/// completed barrier covered. Bytes past it may be torn, zeroed, garbled or dropped
/// by [`SimStorage::crash`]; a segment never synced may vanish.
#[derive(Debug, Clone)]
pub struct SimStorage {
    /// The bytes, as the live system sees them.
    pub mem: MemStorage,
    /// Per segment: bytes `0..n` are durable.
    pub synced: BTreeMap<u64, usize>,
    /// Byte value of never-written space (0x00 files, 0xFF flash).
    pub unwritten: u8,
    /// Whether appends may continue after the last valid frame on reopen.
    pub in_place: bool,
    /// A pending injected failure.
    pub fail: Option<Fail>,
    /// Injected failures that fired.
    pub failures: u64,
}

impl SimStorage {
    /// Empty storage.
    pub fn new(write_size: usize, unwritten: u8, in_place: bool) -> Self {
        SimStorage {
            mem: MemStorage::with_write_size(write_size),
            synced: BTreeMap::new(),
            unwritten,
            in_place,
            fail: None,
            failures: 0,
        }
    }

    /// A power cut: every segment keeps its durable prefix; what lies past it is
    /// damaged as `inp` says, within the failure model (cut anywhere, ranges zeroed or
    /// left unwritten, garbage that is never a forged frame, a never-synced segment
    /// vanishing). Returns whether anything changed.
    pub fn crash(&mut self, inp: &mut In) -> bool {
        self.fail = None;
        let mut changed = false;
        let segs: Vec<u64> = self.mem.segments.keys().copied().collect();
        for seg in segs {
            let durable = self.synced.get(&seg).copied().unwrap_or(0);
            let bytes = self.mem.segments.get_mut(&seg).expect("listed");
            assert!(
                durable <= bytes.len(),
                "durable prefix longer than the segment"
            );
            if durable >= bytes.len() {
                continue;
            }
            let actions = inp.u8() % 4;
            for _ in 0..actions {
                let len = bytes.len();
                if durable >= len {
                    break;
                }
                let span = (len - durable) as u64;
                let a = durable + inp.below(span + 1) as usize;
                let b = (a + inp.below(span + 1) as usize).min(len);
                match inp.u8() % 5 {
                    // Torn: only a prefix of the unsynced writes landed.
                    0 | 1 => bytes.truncate(a),
                    // A range whose data never landed: zeros (or erased flash).
                    2 => bytes[a..b].fill(if inp.bool() { 0 } else { self.unwritten }),
                    // Garbage.
                    3 => {
                        let g = prng_bytes(inp.u64(), b - a);
                        bytes[a..b].copy_from_slice(&g);
                    }
                    // The file was extended but its data never landed.
                    _ => {
                        let n = inp.u8() as usize;
                        bytes.resize(len + n, self.unwritten);
                    }
                }
                changed = true;
            }
            if durable == 0 && !self.synced.contains_key(&seg) && inp.u8().is_multiple_of(8) {
                // Created but never synced: the name may not have survived.
                self.mem.segments.remove(&seg);
                changed = true;
            }
        }
        changed
    }

    fn take_fail(&mut self, write: bool) -> Option<Fail> {
        match (self.fail, write) {
            (Some(f @ Fail::Write { .. }), true) | (Some(f @ Fail::Sync), false) => {
                self.fail = None;
                self.failures += 1;
                Some(f)
            }
            _ => None,
        }
    }
}

impl ErrorType for SimStorage {
    type Error = MemError;
}

impl Storage for SimStorage {
    fn write_size(&self) -> usize {
        self.mem.write_size()
    }
    fn unwritten_byte(&self) -> u8 {
        self.unwritten
    }
    fn resume_in_place(&self) -> bool {
        self.in_place
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), MemError> {
        self.mem.list(visit)
    }
    fn create(&mut self, segment: u64) -> Result<(), MemError> {
        self.synced.remove(&segment);
        self.mem.create(segment)
    }
    fn len(&mut self, segment: u64) -> Result<u64, MemError> {
        self.mem.len(segment)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        self.mem.read(segment, offset, buf)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), MemError> {
        // The core never writes a byte twice: below the durable length it may only
        // write over space that was never written (a clean tail a crash left, such as
        // zeros of a file extended whose data never landed). What it writes there is
        // not durable until the next barrier.
        if let Some(d) = self.synced.get_mut(&segment) {
            let at = offset as usize;
            if at < *d {
                let bytes = self.mem.segments.get(&segment).ok_or(MemError::NotFound)?;
                let end = (*d).min(bytes.len());
                assert!(
                    bytes[at.min(end)..end].iter().all(|&b| b == self.unwritten),
                    "write at {at} over durable written bytes (up to {d}) of segment {segment}"
                );
                *d = at;
            }
        }
        if let Some(Fail::Write { keep }) = self.take_fail(true) {
            // Never the whole write: a failed write that fully landed would make the
            // outcome of the failed call unknown, which the model does not track.
            let ws = self.mem.write_size();
            let keep = keep.min(data.len().saturating_sub(1));
            let keep = keep - keep % ws;
            if keep > 0 {
                self.mem.write(segment, offset, &data[..keep])?;
            }
            return Err(MemError::BadWrite);
        }
        self.mem.write(segment, offset, data)
    }
    fn sync(&mut self, segment: u64) -> Result<(), MemError> {
        if self.take_fail(false).is_some() {
            return Err(MemError::BadWrite);
        }
        let len = self.mem.len(segment)? as usize;
        self.mem.sync(segment)?;
        self.synced.insert(segment, len);
        Ok(())
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), MemError> {
        self.mem.truncate(segment, len)?;
        if let Some(d) = self.synced.get_mut(&segment) {
            *d = (*d).min(len as usize);
        }
        Ok(())
    }
    fn remove(&mut self, segment: u64) -> Result<(), MemError> {
        self.synced.remove(&segment);
        self.mem.remove(segment)
    }
}

// ---------------------------------------------------------------------------------
// Builders: valid logs from fuzz input
// ---------------------------------------------------------------------------------

/// Runs the real WAL writer over fresh storage as `inp` says (appends, flushes, syncs,
/// segment limit, alignment, identity) and returns the storage. `one_segment`: keep
/// everything in segment 1.
pub fn build_wal(inp: &mut In, one_segment: bool) -> MemStorage {
    let ws = write_size(inp);
    let first_id = match inp.edge_u64() {
        0 => 1,
        id => id,
    };
    let cfg = WalConfig {
        segment_limit: if one_segment {
            u64::MAX
        } else {
            64 + inp.below(1024)
        },
        log_id: inp.edge_u64(),
        first_id,
        covered_through: 0,
    };
    let buf = vec![0u8; 64 + inp.below(512) as usize];
    // Payloads stay under 2.6 KiB, within the short form's limit.
    let st = MemStorage::with_write_size(ws).with_short_frames(inp.u8() % 4 == 0);
    let mut w = WalWriter::open(st, buf, cfg).expect("new WAL");
    // Ids must not run past u64::MAX: that is a configuration error, not input damage.
    let room = u64::MAX - first_id;
    let ops = inp.below(24);
    let mut appended = 0u64;
    for _ in 0..ops {
        match inp.u8() % 6 {
            0..=2 if appended < room => {
                let p = prng_bytes(inp.u64(), payload_len(inp));
                w.append(&p).expect("append to a healthy WAL");
                appended += 1;
            }
            3 => w.flush().expect("flush"),
            4 => w.sync().expect("sync"),
            _ => {}
        }
    }
    if !inp.u8().is_multiple_of(4) {
        w.flush().expect("flush");
    }
    w.into_parts().0
}

/// Runs the real record-log writer over fresh storage; returns segment 0's bytes and
/// the write size.
pub fn build_recordlog(inp: &mut In) -> (Vec<u8>, usize) {
    let ws = write_size(inp);
    let buf = vec![0u8; 64 + inp.below(512) as usize];
    let mut w =
        RecordLogWriter::open(MemStorage::with_write_size(ws), buf, inp.edge_u64()).expect("new");
    for _ in 0..inp.below(24) {
        match inp.u8() % 6 {
            0..=2 => {
                let p = prng_bytes(inp.u64(), payload_len(inp));
                w.append(&p).expect("append");
            }
            3 => w.flush().expect("flush"),
            4 => w.sync().expect("sync"),
            _ => {}
        }
    }
    if !inp.u8().is_multiple_of(4) {
        w.flush().expect("flush");
    }
    let mut st = w.into_parts().0;
    (st.segments.remove(&0).unwrap_or_default(), ws)
}

// ---------------------------------------------------------------------------------
// Damage: arbitrary edits, with CRCs re-sealed on request
// ---------------------------------------------------------------------------------

/// Recomputes a segment header's CRC over its (possibly edited) fields.
pub fn reseal_header(b: &mut [u8]) {
    if b.len() >= header::LEN {
        let c = crc32c(&b[..header::CRC.start]);
        b[header::CRC].copy_from_slice(&c.to_le_bytes());
    }
}

/// A frame found by [`walk_frames`]: offset, id used in its checksum, header.
pub type FrameAt = (usize, u64, FrameHeader);

/// The frames of a segment with a valid header whose frame headers parse and fit,
/// CRCs not checked.
pub fn walk_frames(b: &[u8]) -> Option<(SegmentHeader, Vec<FrameAt>)> {
    let h = SegmentHeader::parse(b).ok()?;
    let align = h.align();
    let mut pos = h.data_start() as usize;
    let mut id = h.first_id;
    let mut out = Vec::new();
    while pos + h.form.head_len() <= b.len() {
        let Some(fh) = FrameHeader::parse(&b[pos..], h.form) else {
            break;
        };
        let end = pos + fh.frame_len(align) as usize;
        if end > b.len() {
            break;
        }
        let cid = if fh.kind == FrameKind::Entry {
            id
        } else {
            MARKER_ID
        };
        out.push((pos, cid, fh));
        if fh.kind == FrameKind::Entry {
            id = id.wrapping_add(1);
        }
        pos = end;
    }
    Some((h, out))
}

/// Recomputes the CRC of the frame at `pos` (header parsed as `h`) with id `id`.
fn reseal_frame_at(b: &mut [u8], sh: &SegmentHeader, pos: usize, id: u64) {
    let Some(fh) = FrameHeader::parse(&b[pos..], sh.form) else {
        return;
    };
    let start = pos + fh.head_len();
    let len = fh.len as usize;
    if start + len > b.len() {
        return;
    }
    let crc = sh.seal().checksum(id, fh.word(), &b[start..start + len]);
    b[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Re-seals every frame that parses (after a header edit changed log, segment or ids).
pub fn reseal_all(b: &mut [u8]) {
    if let Some((sh, frames)) = walk_frames(b) {
        for (pos, id, _) in frames {
            reseal_frame_at(b, &sh, pos, id);
        }
    }
}

fn edit_header(b: &mut [u8], inp: &mut In) {
    if b.len() < header::LEN {
        return;
    }
    let put = |b: &mut [u8], r: std::ops::Range<usize>, v: u64| {
        b[r].copy_from_slice(&v.to_le_bytes());
    };
    match inp.u8() % 9 {
        0 => b[header::VERSION] = inp.u8() % 4,
        1 => b[header::KIND] = inp.u8() % 4,
        2 => b[header::ALIGN_LOG2] = inp.u8() % 8,
        3 => put(b, header::LOG_ID, inp.edge_u64()),
        4 => put(b, header::SEGMENT, inp.edge_u64()),
        5 => put(b, header::FIRST_ID, inp.edge_u64()),
        6 => {
            let v = if inp.bool() {
                inp.u16() as u64
            } else {
                inp.edge_u64()
            };
            put(b, header::PREV_END, v)
        }
        7 => b[header::RESERVED0] = inp.u8(),
        _ => b[header::RESERVED1.start] = inp.u8(),
    }
    reseal_header(b);
}

fn edit_frame(b: &mut [u8], inp: &mut In) {
    let Some((sh, frames)) = walk_frames(b) else {
        return;
    };
    if frames.is_empty() {
        return;
    }
    // The edits below write the 8-byte header's word; short frames get the other ones
    // (headers, bytes, truncation).
    if sh.form != FrameForm::Long {
        return;
    }
    let (pos, id, fh) = frames[inp.below(frames.len() as u64) as usize];
    let start = pos + frame_header::HEADER_LEN;
    match inp.u8() % 6 {
        // A payload byte, still sealed: a valid frame with other content.
        0 if fh.len > 0 => {
            let i = start + inp.below(fh.len as u64) as usize;
            b[i] ^= inp.u8() | 1;
        }
        // Another length (kind kept), sealed over whatever bytes it now covers.
        1 => {
            let len = match inp.u8() % 4 {
                0 => inp.u8() as u32,
                1 => fh.len.wrapping_add(inp.u8() as u32 % 16),
                2 => fh.len.saturating_sub(inp.u8() as u32 % 16),
                _ => inp.u64() as u32 & frame_header::LEN_MASK,
            };
            let word = (fh.word() & !frame_header::LEN_MASK) | (len & frame_header::LEN_MASK);
            b[pos + 4..pos + 8].copy_from_slice(&word.to_le_bytes());
        }
        // A marker with other fields: watermark, next id, log id.
        2 if fh.kind == FrameKind::SyncMarker => {
            let mut m = SyncMarker::parse(
                b[start..start + 24]
                    .try_into()
                    .expect("24-byte marker payload"),
            );
            match inp.u8() % 3 {
                0 => m.watermark = (pos as u64 + inp.u8() as u64).saturating_sub(128),
                1 => m.next_id = inp.edge_u64(),
                _ => m.log_id = inp.edge_u64(),
            }
            b[start..start + 24].copy_from_slice(&m.emit());
        }
        // Flip the kind between entry and marker where the length allows.
        3 => {
            let kind = inp.u8() as u32 % 16;
            let word = (kind << frame_header::KIND_SHIFT) | fh.len;
            b[pos + 4..pos + 8].copy_from_slice(&word.to_le_bytes());
        }
        // Frame copied over the next one (a duplicated frame).
        4 => {
            let total = fh.frame_len(sh.align()) as usize;
            if pos + 2 * total <= b.len() {
                b.copy_within(pos..pos + total, pos + total);
            }
            return;
        }
        _ => {}
    }
    // Re-seal with the id this frame's position implies.
    let word = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().expect("4"));
    let cid = if word >> frame_header::KIND_SHIFT == FrameKind::SyncMarker as u32 {
        MARKER_ID
    } else if id == MARKER_ID && fh.kind == FrameKind::SyncMarker {
        // A marker turned into an entry takes the id of the next entry.
        (frames[..]
            .iter()
            .filter(|f| f.0 < pos && f.2.kind == FrameKind::Entry)
            .count() as u64)
            .wrapping_add(sh.first_id)
    } else {
        id
    };
    reseal_frame_at(b, &sh, pos, cid);
}

/// Applies up to `max_ops` edits from `inp` to one segment's bytes: bit flips,
/// truncation, zeroed or erased ranges, appended or inserted bytes, removed ranges,
/// header field edits and frame edits re-sealed with valid CRCs.
pub fn damage(b: &mut Vec<u8>, inp: &mut In, max_ops: u64) {
    for _ in 0..inp.below(max_ops + 1) {
        let len = b.len() as u64;
        let at = inp.below(len + 1) as usize;
        match inp.u8() % 12 {
            0 if at < b.len() => b[at] ^= 1 << (inp.u8() % 8),
            1 if at < b.len() => b[at] = inp.u8(),
            2 => b.truncate(at),
            3 => {
                let end = (at + inp.u8() as usize).min(b.len());
                b[at..end].fill(0);
            }
            4 => {
                let end = (at + inp.u8() as usize).min(b.len());
                b[at..end].fill(0xFF);
            }
            5 => {
                let n = inp.u8() as usize % 64;
                let extra = inp.bytes(n).to_vec();
                b.extend_from_slice(&extra);
            }
            6 => {
                let n = inp.u8() as usize % 16;
                let extra = inp.bytes(n).to_vec();
                b.splice(at..at, extra);
            }
            7 => {
                let end = (at + inp.u8() as usize % 64).min(b.len());
                b.drain(at..end);
            }
            8 => edit_header(b, inp),
            9 | 10 => edit_frame(b, inp),
            _ => reseal_all(b),
        }
    }
}

// ---------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------

/// What one replay delivered and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay<R> {
    /// `(id, payload)` in delivery order, also when the replay then failed.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The replay's result.
    pub result: Result<R, Error<MemError>>,
}

/// Replays a WAL.
pub fn replay_wal<S, B>(st: S, buf: B, mode: ReadMode) -> (Replay<ReplayReport>, B)
where
    S: Storage + ErrorType<Error = MemError>,
    B: Buffer,
{
    let mut entries = Vec::new();
    let mut r = WalReader::new(st, buf);
    let result = r.replay(mode, |id, p| {
        entries.push((id, p.to_vec()));
        Ok(())
    });
    (Replay { entries, result }, r.into_parts().1)
}

/// Reads a record log.
pub fn read_recordlog<S, B>(st: S, buf: B, mode: ReadMode) -> (Replay<ReadReport>, B)
where
    S: Storage + ErrorType<Error = MemError>,
    B: Buffer,
{
    let mut entries = Vec::new();
    let mut r = RecordLogReader::new(st, buf);
    let result = r.read(mode, |id, p| {
        entries.push((id, p.to_vec()));
        Ok(())
    });
    (Replay { entries, result }, r.into_parts().1)
}

/// Ids strictly contiguous.
pub fn assert_contiguous(entries: &[(u64, Vec<u8>)]) {
    for w in entries.windows(2) {
        assert_eq!(
            Some(w[1].0),
            w[0].0.checked_add(1),
            "entry ids not contiguous"
        );
    }
}

fn is_prefix(a: &[(u64, Vec<u8>)], b: &[(u64, Vec<u8>)]) -> bool {
    a.len() <= b.len() && a == &b[..a.len()]
}

fn largest_segment<S: Storage>(st: &mut S) -> usize {
    let mut segs = Vec::new();
    st.list(&mut |n| segs.push(n)).expect("list");
    segs.into_iter()
        .map(|n| st.len(n).expect("len") as usize)
        .max()
        .unwrap_or(0)
}

/// Replays a WAL strict and best-effort, through a growable buffer and through a fixed
/// one of `fixed_len` bytes, and checks that they agree with each other, that ids are
/// contiguous, that the report matches what was delivered, and that the growable
/// buffer never grew beyond the largest segment. Returns the best-effort replay.
///
/// It also replays from an id picked by `inp` (through both buffers) and checks that
/// exactly the entries with ids `>= from` are delivered, with the same verdict.
pub fn check_wal_replay<S>(st: &mut S, fixed_len: usize, inp: &mut In) -> Replay<ReplayReport>
where
    S: Storage + ErrorType<Error = MemError>,
{
    let (be, be_buf) = replay_wal(&mut *st, Vec::new(), ReadMode::BestEffort);
    let (strict, _) = replay_wal(&mut *st, Vec::new(), ReadMode::Strict);
    assert_eq!(
        be.entries, strict.entries,
        "strict and best-effort delivered different entries"
    );
    match (&strict.result, &be.result) {
        (Ok(s), Ok(b)) => {
            assert_eq!(s, b);
            assert_eq!(b.torn_at, None, "strict accepted a torn tail");
        }
        (Err(Error::TornTail { at }), Ok(b)) => assert_eq!(b.torn_at, Some(*at)),
        (Err(s), Err(b)) => assert_eq!(s, b),
        (s, b) => panic!("strict {s:?} vs best-effort {b:?}"),
    }
    assert_contiguous(&be.entries);
    if let Ok(r) = &be.result {
        assert_eq!(r.entries, be.entries.len() as u64, "report.entries");
        let bytes: u64 = be.entries.iter().map(|e| e.1.len() as u64).sum();
        assert_eq!(r.payload_bytes, bytes, "report.payload_bytes");
        if let Some(first) = r.first_id {
            match (be.entries.first(), be.entries.last()) {
                (Some(f), Some(l)) => {
                    assert_eq!(f.0, first, "first delivered id vs report.first_id");
                    assert_eq!(Some(r.next_id), l.0.checked_add(1), "report.next_id");
                }
                _ => assert_eq!(r.next_id, first, "next_id of a log without entries"),
            }
        } else {
            assert!(be.entries.is_empty(), "entries without a first segment");
        }
    }
    let largest = largest_segment(st);
    assert!(
        be_buf.len() <= largest,
        "reader buffer grew to {} bytes for segments of at most {largest}",
        be_buf.len()
    );
    let mut fixed = vec![0u8; fixed_len];
    let (fx, _) = replay_wal(&mut *st, &mut fixed[..], ReadMode::BestEffort);
    match &fx.result {
        Err(Error::BufferTooSmall { .. }) => assert!(
            is_prefix(&fx.entries, &be.entries),
            "fixed buffer delivered other entries"
        ),
        r => {
            assert_eq!(r, &be.result, "fixed vs growable buffer");
            assert_eq!(fx.entries, be.entries, "fixed vs growable buffer entries");
        }
    }

    // Replay from an id: the same verdict, only later entries delivered.
    let from = pick_from(inp, &be);
    let want: Vec<_> = be.entries.iter().filter(|e| e.0 >= from).cloned().collect();
    let same_verdict = |r: &Result<ReplayReport, CoreError>| match (r, &be.result) {
        (Ok(a), Ok(b)) => {
            a.first_id == b.first_id
                && a.next_id == b.next_id
                && a.torn_at == b.torn_at
                && a.segments == b.segments
                && a.entries == want.len() as u64
        }
        (a, b) => a.as_ref().err() == b.as_ref().err(),
    };
    let mut r = WalReader::new(&mut *st, Vec::new());
    let mut got = Vec::new();
    let res = r.replay_from(ReadMode::BestEffort, from, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    assert!(
        same_verdict(&res),
        "replay_from({from}): {res:?} vs {:?}",
        be.result
    );
    assert_eq!(got, want, "replay_from({from}) entries");
    let mut fixed = vec![0u8; fixed_len];
    let mut r = WalReader::new(&mut *st, &mut fixed[..]);
    let mut got = Vec::new();
    let res = r.replay_from(ReadMode::BestEffort, from, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    match &res {
        Err(Error::BufferTooSmall { .. }) => assert!(is_prefix(&got, &want)),
        _ => {
            assert!(same_verdict(&res), "fixed replay_from({from}): {res:?}");
            assert_eq!(got, want, "fixed replay_from({from}) entries");
        }
    }
    be
}

/// An id to replay from: around the ids a replay delivered, or anything.
pub fn pick_from(inp: &mut In, be: &Replay<ReplayReport>) -> u64 {
    match (inp.u8() % 4, be.entries.first()) {
        (0, _) => 0,
        (1 | 2, Some(f)) => f.0.saturating_add(inp.below(be.entries.len() as u64 + 2)),
        _ => inp.edge_u64(),
    }
}

/// Whether a segment's header names a frame alignment smaller than the medium's write
/// size (possible only through damage or a medium other than the one that wrote it).
pub fn misaligned(st: &MemStorage) -> bool {
    let ws = st.write_size();
    st.segments
        .values()
        .any(|b| SegmentHeader::parse(b).is_ok_and(|h| h.align() < ws))
}

/// Whether the highest segment is numbered `u64::MAX` (no successor can be created).
pub fn top_segment_is_max(st: &MemStorage) -> bool {
    st.segments
        .last_key_value()
        .is_some_and(|(&n, _)| n == u64::MAX)
}

/// Payloads for new appends.
fn new_payloads(inp: &mut In) -> Vec<Vec<u8>> {
    (0..1 + inp.below(3))
        .map(|_| prng_bytes(inp.u64(), payload_len(inp)))
        .collect()
}

/// Opens a WAL writer on a copy of `st` and checks the result against the best-effort
/// replay `be`: a log that replay rejects must be refused with nothing changed; one
/// it accepts must open with the next id right after it, lose nothing by opening,
/// and after appends and a barrier replay strictly as `be`'s entries plus the new ones.
pub fn check_wal_writer(st: &MemStorage, be: &Replay<ReplayReport>, inp: &mut In) {
    let mut copy = st.clone();
    let cfg = WalConfig {
        segment_limit: if inp.bool() {
            u64::MAX
        } else {
            64 + inp.below(1024)
        },
        log_id: 0x5EED_F022,
        first_id: 1,
        covered_through: 0,
    };
    let buf = vec![0u8; 64 + inp.below(512) as usize];
    let mut w = match WalWriter::open(&mut copy, buf, cfg) {
        Err(e) => {
            // Refused: a log replay rejects, or one whose next segment number would
            // not fit a u64.
            let exhausted = matches!(e, Error::InvalidConfig(_)) && top_segment_is_max(st);
            assert!(
                be.result.is_err() || exhausted,
                "open failed ({e:?}) on a log best-effort replay reads: {:?}",
                be.result
            );
            assert_eq!(copy.segments, st.segments, "a refused open changed the log");
            return;
        }
        Ok(w) => w,
    };
    let report = match &be.result {
        Ok(r) => *r,
        Err(e) => panic!("open succeeded on a log replay rejects: {e:?}"),
    };
    let next = w.next_id().expect("open writer");
    let expected = if report.first_id.is_some() {
        report.next_id
    } else {
        cfg.first_id
    };
    assert_eq!(next, expected, "next id after open");
    let payloads = new_payloads(inp);
    if next.checked_add(payloads.len() as u64).is_none() {
        // Ids would run out: not what this check is about.
        return;
    }
    // Opening destroys nothing.
    w.flush().expect("flush");
    drop(w);
    let (after_open, _) = replay_wal(&mut copy, Vec::new(), ReadMode::BestEffort);
    assert_eq!(after_open.entries, be.entries, "opening lost entries");
    let mut w = WalWriter::open(&mut copy, vec![0u8; 64 + inp.below(512) as usize], cfg)
        .expect("reopen after open");
    let mut failed = None;
    for (i, p) in payloads.iter().enumerate() {
        match w.append(p) {
            Ok(id) => assert_eq!(id, next + i as u64, "id of appended entry"),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() {
        failed = w.sync().err();
    }
    if let Some(e) = failed {
        // A log whose frames are aligned to less than the medium's write size opens,
        // and its writer then fails on the first misaligned write: a clean error, and
        // nothing already there may be lost.
        // Or a rotation past segment number u64::MAX is refused.
        let poisoned = w.is_poisoned();
        drop(w);
        let misaligned_write =
            misaligned(st) && matches!(e, Error::Storage(MemError::BadWrite)) && poisoned;
        let exhausted = matches!(e, Error::InvalidConfig(_)) && top_segment_is_max(&copy);
        assert!(
            misaligned_write || exhausted,
            "append/sync after open: {e:?}"
        );
        let (after, _) = replay_wal(&mut copy, Vec::new(), ReadMode::BestEffort);
        assert!(after.result.is_ok() && is_prefix(&be.entries, &after.entries));
        return;
    }
    drop(w);
    let (after, _) = replay_wal(&mut copy, Vec::new(), ReadMode::Strict);
    if let Err(e) = &after.result {
        panic!("strict replay after open+append+sync failed: {e:?}");
    }
    let mut want = be.entries.clone();
    want.extend(
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| (next + i as u64, p)),
    );
    assert_eq!(after.entries, want, "replay after appending");
}

/// Reads a record log in both modes and through both buffers (as
/// [`check_wal_replay`]), then opens a writer on a copy and checks it the way
/// [`check_wal_writer`] does.
pub fn check_recordlog(st: &MemStorage, fixed_len: usize, inp: &mut In) {
    let mut st = st.clone();
    let (be, be_buf) = read_recordlog(&mut st, Vec::new(), ReadMode::BestEffort);
    let (strict, _) = read_recordlog(&mut st, Vec::new(), ReadMode::Strict);
    assert_eq!(be.entries, strict.entries, "strict vs best-effort entries");
    match (&strict.result, &be.result) {
        (Ok(s), Ok(b)) => {
            assert_eq!(s, b);
            assert_eq!(b.torn_at, None);
        }
        (Err(Error::TornTail { at }), Ok(b)) => assert_eq!(b.torn_at, Some(*at)),
        (Err(s), Err(b)) => assert_eq!(s, b),
        (s, b) => panic!("strict {s:?} vs best-effort {b:?}"),
    }
    assert_contiguous(&be.entries);
    if let Ok(r) = &be.result {
        assert_eq!(r.records, be.entries.len() as u64);
        let bytes: u64 = be.entries.iter().map(|e| e.1.len() as u64).sum();
        assert_eq!(r.payload_bytes, bytes);
    }
    let largest = largest_segment(&mut st);
    assert!(be_buf.len() <= largest, "reader buffer grew past the log");
    let mut fixed = vec![0u8; fixed_len];
    let (fx, _) = read_recordlog(&mut st, &mut fixed[..], ReadMode::BestEffort);
    match &fx.result {
        Err(Error::BufferTooSmall { .. }) => assert!(is_prefix(&fx.entries, &be.entries)),
        r => {
            assert_eq!(r, &be.result, "fixed vs growable buffer");
            assert_eq!(fx.entries, be.entries);
        }
    }

    // The writer.
    let before = st.segments.clone();
    let buf = vec![0u8; 64 + inp.below(512) as usize];
    let mut w = match RecordLogWriter::open(&mut st, buf, 0x5eed) {
        Err(e) => {
            assert!(
                be.result.is_err(),
                "open failed ({e:?}) on a log best-effort reads"
            );
            assert_eq!(st.segments, before, "a refused open changed the log");
            return;
        }
        Ok(w) => w,
    };
    if let Err(e) = &be.result {
        panic!("record log writer opened a log the reader rejects: {e:?}");
    }
    let next = w.next_index().expect("open writer");
    // A log with a valid header continues after its last record (or at its first id);
    // a torn creation is replaced by a new log numbered from 1.
    let hdr = before.get(&0).and_then(|b| {
        SegmentHeader::parse(b)
            .ok()
            .filter(|h| b.len() as u64 >= h.data_start())
    });
    let expected = match (be.entries.last(), hdr) {
        (Some(l), _) => l.0.wrapping_add(1),
        (None, Some(h)) => h.first_id,
        (None, None) => 1,
    };
    assert_eq!(next, expected, "next index after open");
    let payloads = new_payloads(inp);
    if next.checked_add(payloads.len() as u64).is_none() {
        return;
    }
    let mut failed = None;
    for (i, p) in payloads.iter().enumerate() {
        match w.append(p) {
            Ok(id) => assert_eq!(id, next + i as u64, "index of appended record"),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() {
        failed = w.sync().err();
    }
    if let Some(e) = failed {
        // As for the WAL: a header aligned to less than the write size fails cleanly.
        let poisoned = w.is_poisoned();
        drop(w);
        let mut orig = MemStorage::with_write_size(st.write_size());
        orig.segments = before;
        assert!(
            misaligned(&orig) && matches!(e, Error::Storage(MemError::BadWrite)) && poisoned,
            "append/sync after open: {e:?}"
        );
        let (after, _) = read_recordlog(&mut st, Vec::new(), ReadMode::BestEffort);
        assert!(after.result.is_ok() && is_prefix(&be.entries, &after.entries));
        return;
    }
    drop(w);
    let (after, _) = read_recordlog(&mut st, Vec::new(), ReadMode::Strict);
    if let Err(e) = &after.result {
        panic!("strict read after open+append+sync failed: {e:?}");
    }
    let mut want = be.entries.clone();
    want.extend(
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| (next + i as u64, p)),
    );
    assert_eq!(after.entries, want, "read after appending");
}
