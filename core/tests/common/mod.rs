//! Shared helpers for the integration tests: replay wrappers, a deterministic RNG, a
//! reference CRC-32C and format encoder written from the spec in `src/frame.rs`, a frame
//! walker, and an oracle that predicts how a damaged final segment must read back.
#![allow(dead_code)]

use durability_core::error::{Corruption, Location};
use durability_core::mem::{MemError, MemStorage};
use durability_core::recordlog::{ReadReport, RecordLogReader};
use durability_core::storage::{ErrorType, Storage};
use durability_core::wal::{ReplayReport, WalConfig, WalReader, WalWriter};
use durability_core::{Buffer, Error, ReadMode};

/// The core error over the in-memory storage.
pub type E = Error<MemError>;
/// `(id, payload)` pairs as delivered by a reader.
pub type Entries = Vec<(u64, Vec<u8>)>;

pub const MODES: [ReadMode; 2] = [ReadMode::Strict, ReadMode::BestEffort];

// ---------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers (splitmix64).

pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Deterministic payload of entry `id` with `len` bytes (contains some zero bytes).
pub fn payload(id: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(id.wrapping_mul(0x1234_5678_9ABC_DEF1) ^ len as u64);
    (0..len).map(|_| r.byte()).collect()
}

/// Payload lengths used by the tests: a mix of odd/even, empty, one byte and larger.
pub const LENS: [usize; 16] = [5, 0, 17, 1, 30, 8, 12, 3, 21, 2, 26, 9, 14, 7, 0, 19];

pub fn len_of(id: u64) -> usize {
    LENS[(id as usize - 1) % LENS.len()]
}

/// The payload the tests append as entry `id`.
pub fn entry(id: u64) -> Vec<u8> {
    payload(id, len_of(id))
}

/// The expected `(id, payload)` list for ids `1..=n`.
pub fn expected(n: u64) -> Entries {
    (1..=n).map(|id| (id, entry(id))).collect()
}

// ---------------------------------------------------------------------------------------
// Readers.

pub fn wal_replay_with<B: Buffer>(
    st: &mut MemStorage,
    buf: B,
    mode: ReadMode,
) -> (Entries, Result<ReplayReport, E>) {
    let mut got = Vec::new();
    let res = WalReader::new(st, buf).replay(mode, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    (got, res)
}

pub fn wal_replay(st: &mut MemStorage, mode: ReadMode) -> (Entries, Result<ReplayReport, E>) {
    wal_replay_with(st, Vec::new(), mode)
}

/// Replays in strict mode and requires success.
pub fn wal_strict(st: &mut MemStorage) -> Entries {
    let (got, res) = wal_replay(st, ReadMode::Strict);
    res.unwrap_or_else(|e| panic!("strict replay failed: {e:?}"));
    got
}

pub fn rl_read_with<B: Buffer>(
    st: &mut MemStorage,
    buf: B,
    mode: ReadMode,
) -> (Entries, Result<ReadReport, E>) {
    let mut got = Vec::new();
    let res = RecordLogReader::new(st, buf).read(mode, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    (got, res)
}

pub fn rl_read(st: &mut MemStorage, mode: ReadMode) -> (Entries, Result<ReadReport, E>) {
    rl_read_with(st, Vec::new(), mode)
}

pub fn rl_strict(st: &mut MemStorage) -> Entries {
    let (got, res) = rl_read(st, ReadMode::Strict);
    res.unwrap_or_else(|e| panic!("strict read failed: {e:?}"));
    got
}

/// Asserts that `got` is a prefix of `all` (same ids, same payloads).
#[track_caller]
pub fn assert_prefix(got: &Entries, all: &Entries, ctx: &str) {
    assert!(
        got.len() <= all.len(),
        "{ctx}: {} entries, only {} appended",
        got.len(),
        all.len()
    );
    for (i, (g, a)) in got.iter().zip(all).enumerate() {
        assert_eq!(g, a, "{ctx}: entry #{i} differs from what was appended");
    }
}

/// Asserts ids are exactly `1..=got.len()`.
#[track_caller]
pub fn assert_contiguous(got: &Entries, ctx: &str) {
    for (i, (id, _)) in got.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1, "{ctx}: ids not contiguous from 1");
    }
}

// ---------------------------------------------------------------------------------------
// Reference CRC-32C and format encoder, written from the spec (not from the crate).

/// Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
pub fn ref_crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn align_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

pub const HEADER_LEN: usize = 48;
pub const KIND_ENTRY: u32 = 1;
pub const KIND_MARKER: u32 = 2;

/// A segment header per the layout diagram.
pub fn spec_header(
    kind: u8,
    align_log2: u8,
    log_id: u64,
    seg: u64,
    first_id: u64,
    prev_end: u64,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"DURL");
    h[4] = 1;
    h[5] = kind;
    h[6] = align_log2;
    h[8..16].copy_from_slice(&log_id.to_le_bytes());
    h[16..24].copy_from_slice(&seg.to_le_bytes());
    h[24..32].copy_from_slice(&first_id.to_le_bytes());
    h[32..40].copy_from_slice(&prev_end.to_le_bytes());
    let crc = ref_crc32c(&h[..44]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The checksum of a frame per the spec.
pub fn spec_frame_crc(log_id: u64, seg: u64, id: u64, word: u32, payload: &[u8]) -> u32 {
    let mut v = Vec::new();
    v.extend_from_slice(&log_id.to_le_bytes());
    v.extend_from_slice(&seg.to_le_bytes());
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&word.to_le_bytes());
    v.extend_from_slice(payload);
    ref_crc32c(&v)
}

/// A whole frame (header, payload, zero padding to `align`).
pub fn spec_frame(
    log_id: u64,
    seg: u64,
    id: u64,
    kind: u32,
    payload: &[u8],
    align: usize,
) -> Vec<u8> {
    let word = kind << 28 | payload.len() as u32;
    let mut f = Vec::new();
    f.extend_from_slice(&spec_frame_crc(log_id, seg, id, word, payload).to_le_bytes());
    f.extend_from_slice(&word.to_le_bytes());
    f.extend_from_slice(payload);
    f.resize(align_up(f.len(), align), 0);
    f
}

/// A segment header of format version 2 (short frames), per the spec.
pub fn spec_header_short(
    kind: u8,
    align_log2: u8,
    log_id: u64,
    seg: u64,
    first_id: u64,
    prev_end: u64,
) -> [u8; HEADER_LEN] {
    let mut h = spec_header(kind, align_log2, log_id, seg, first_id, prev_end);
    h[4] = 2;
    let crc = ref_crc32c(&h[..44]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A whole short frame (6-byte header: crc, u16 word; payload; zero padding to `align`).
/// The checksum covers the word as a `u32`, like the long form's.
pub fn spec_frame_short(
    log_id: u64,
    seg: u64,
    id: u64,
    kind: u32,
    payload: &[u8],
    align: usize,
) -> Vec<u8> {
    assert!(payload.len() < 1 << 14);
    let word = kind << 14 | payload.len() as u32;
    let mut f = Vec::new();
    f.extend_from_slice(&spec_frame_crc(log_id, seg, id, word, payload).to_le_bytes());
    f.extend_from_slice(&(word as u16).to_le_bytes());
    f.extend_from_slice(payload);
    f.resize(align_up(f.len(), align), 0);
    f
}

pub fn spec_entry(log_id: u64, seg: u64, id: u64, payload: &[u8], align: usize) -> Vec<u8> {
    spec_frame(log_id, seg, id, KIND_ENTRY, payload, align)
}

pub fn spec_marker(log_id: u64, seg: u64, watermark: u64, next_id: u64, align: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&watermark.to_le_bytes());
    p.extend_from_slice(&next_id.to_le_bytes());
    p.extend_from_slice(&log_id.to_le_bytes());
    spec_frame(log_id, seg, 0, KIND_MARKER, &p, align)
}

/// Parses hex, ignoring whitespace and `_`.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|c| u8::from_str_radix(core::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Frame walker and damage oracle.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fk {
    Entry(u64),
    /// A sync marker and its watermark.
    Marker(u64),
}

/// One frame of a segment as laid out by the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub kind: Fk,
    pub start: usize,
    /// `start + 8 + len`: the checksummed part ends here.
    pub body_end: usize,
    /// Padded end.
    pub end: usize,
}

/// Walks the valid frames of an undamaged segment using only the spec and the reference
/// CRC. Panics if the segment does not consist of valid frames up to its end.
pub fn walk(seg_bytes: &[u8], log_id: u64, seg: u64) -> (usize, Vec<Frame>) {
    let align = 1usize << seg_bytes[6];
    let data_start = align_up(HEADER_LEN, align);
    let mut pos = data_start;
    let mut id = u64::from_le_bytes(seg_bytes[24..32].try_into().unwrap());
    let mut frames = Vec::new();
    // Version 2: the short form (6-byte header, `u16` word).
    let short = seg_bytes[4] == 2;
    let head = if short { 6 } else { 8 };
    while pos < seg_bytes.len() {
        let (word, kind, len) = if short {
            let w = u16::from_le_bytes(seg_bytes[pos + 4..pos + 6].try_into().unwrap()) as u32;
            (w, w >> 14, (w & 0x3FFF) as usize)
        } else {
            let w = u32::from_le_bytes(seg_bytes[pos + 4..pos + 8].try_into().unwrap());
            (w, w >> 28, (w & 0x0FFF_FFFF) as usize)
        };
        let crc = u32::from_le_bytes(seg_bytes[pos..pos + 4].try_into().unwrap());
        let body_end = pos + head + len;
        let end = align_up(body_end, align);
        assert!(
            end <= seg_bytes.len(),
            "frame at {pos} runs past the segment"
        );
        let payload = &seg_bytes[pos + head..body_end];
        assert!(
            seg_bytes[body_end..end].iter().all(|&b| b == 0),
            "padding not zero at {pos}"
        );
        let k = match kind {
            KIND_ENTRY => {
                assert_eq!(
                    crc,
                    spec_frame_crc(log_id, seg, id, word, payload),
                    "entry crc at {pos}"
                );
                id += 1;
                Fk::Entry(id - 1)
            }
            KIND_MARKER => {
                assert_eq!(len, 24);
                assert_eq!(
                    crc,
                    spec_frame_crc(log_id, seg, 0, word, payload),
                    "marker crc at {pos}"
                );
                let wm = u64::from_le_bytes(payload[..8].try_into().unwrap());
                let next = u64::from_le_bytes(payload[8..16].try_into().unwrap());
                let marker_log = u64::from_le_bytes(payload[16..24].try_into().unwrap());
                assert_eq!(next, id, "marker next_id at {pos}");
                assert_eq!(marker_log, log_id, "marker log_id at {pos}");
                assert!(wm <= pos as u64, "marker watermark beyond itself at {pos}");
                Fk::Marker(wm)
            }
            k => panic!("bad kind {k} at {pos}"),
        };
        frames.push(Frame {
            kind: k,
            start: pos,
            body_end,
            end,
        });
        pos = end;
    }
    (data_start, frames)
}

/// What reading a damaged final segment must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ends cleanly (only unwritten bytes follow the last valid frame).
    Clean,
    /// Torn tail at this offset.
    Torn(u64),
    /// Damage at this offset below a watermark a later intact marker proves.
    Corrupt(u64),
}

/// Predicts the outcome for the final segment: `original` is the undamaged segment,
/// `damaged` what is on the medium now. Returns the ids of entries that must be
/// delivered and the verdict.
pub fn oracle(
    original: &[u8],
    damaged: &[u8],
    data_start: usize,
    frames: &[Frame],
) -> (Vec<u64>, Verdict) {
    let intact = |f: &Frame| {
        damaged.len() >= f.body_end && damaged[f.start..f.body_end] == original[f.start..f.body_end]
    };
    let mut cut = data_start;
    let mut ids = Vec::new();
    let mut first_bad = frames.len();
    for (i, f) in frames.iter().enumerate() {
        if intact(f) && damaged.len() >= f.end {
            cut = f.end;
            if let Fk::Entry(id) = f.kind {
                ids.push(id);
            }
        } else {
            first_bad = i;
            break;
        }
    }
    if damaged.len() <= cut || damaged[cut..].iter().all(|&b| b == 0) {
        return (ids, Verdict::Clean);
    }
    let proven = frames[first_bad..]
        .iter()
        .any(|f| f.start > cut && intact(f) && matches!(f.kind, Fk::Marker(wm) if wm > cut as u64));
    if proven {
        (ids, Verdict::Corrupt(cut as u64))
    } else {
        (ids, Verdict::Torn(cut as u64))
    }
}

/// A garbage byte: never zero and never equal to `orig`.
pub fn garbage_byte(r: &mut Rng, orig: u8) -> u8 {
    let g = r.byte() | 1;
    if g == orig {
        g ^ 2
    } else {
        g
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    Truncate,
    Zero,
    Garbage,
}

pub const DAMAGES: [Damage; 3] = [Damage::Truncate, Damage::Zero, Damage::Garbage];

/// Applies `damage` to `bytes` from offset `p` to the end.
pub fn apply(bytes: &mut Vec<u8>, p: usize, damage: Damage, seed: u64) {
    match damage {
        Damage::Truncate => bytes.truncate(p),
        Damage::Zero => bytes[p..].fill(0),
        Damage::Garbage => {
            let mut r = Rng(seed ^ p as u64);
            for b in &mut bytes[p..] {
                *b = garbage_byte(&mut r, *b);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checks of a damaged WAL.

/// Checks both read modes of a WAL whose final segment `seg` was damaged: entries
/// `1..=k` are delivered and the outcome matches `verdict`.
pub fn check_wal_reads<B: Buffer + Clone>(
    st: &mut MemStorage,
    buf: B,
    seg: u64,
    k: u64,
    verdict: Verdict,
    ctx: &str,
) {
    let want = expected(k);
    let loc = |offset| Location {
        segment: seg,
        offset,
    };
    for mode in MODES {
        let ctx = format!("{ctx} {mode:?}");
        let (got, res) = wal_replay_with(st, buf.clone(), mode);
        assert_eq!(got, want, "{ctx}: delivered entries");
        match (verdict, mode) {
            (Verdict::Clean, _) | (Verdict::Torn(_), ReadMode::BestEffort) => {
                let r = res.unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                assert_eq!(r.entries, k, "{ctx}");
                assert_eq!(r.next_id, k + 1, "{ctx}");
                assert_eq!(r.first_id, Some(1), "{ctx}");
                let torn = match verdict {
                    Verdict::Torn(at) => Some(loc(at)),
                    _ => None,
                };
                assert_eq!(r.torn_at, torn, "{ctx}");
            }
            (Verdict::Torn(at), ReadMode::Strict) => {
                assert_eq!(res.unwrap_err(), Error::TornTail { at: loc(at) }, "{ctx}");
            }
            (Verdict::Corrupt(at), _) => assert_eq!(
                res.unwrap_err(),
                Error::Corrupt {
                    at: loc(at),
                    reason: Corruption::BadFrameBelowWatermark
                },
                "{ctx}"
            ),
        }
    }
}

/// Resumes a copy of `st`: a corrupt log must refuse to open and stay unchanged; a clean
/// one continues in segment `seg`, a torn one in `seg + 1`, with id `k + 1`.
pub fn check_wal_resume(
    st: &MemStorage,
    seg: u64,
    cfg: WalConfig,
    k: u64,
    verdict: Verdict,
    ctx: &str,
) {
    let mut st2 = st.clone();
    match verdict {
        Verdict::Corrupt(_) => {
            let e = WalWriter::open(&mut st2, vec![0u8; 64], cfg)
                .err()
                .expect("open must fail");
            assert!(matches!(e, Error::Corrupt { .. }), "{ctx}: {e:?}");
            assert_eq!(
                st2.segments, st.segments,
                "{ctx}: a failed open changed bytes"
            );
        }
        Verdict::Clean | Verdict::Torn(_) => {
            let mut w = WalWriter::open(&mut st2, vec![0u8; 64], cfg)
                .unwrap_or_else(|e| panic!("{ctx}: open {e:?}"));
            assert_eq!(w.next_id().unwrap(), k + 1, "{ctx}");
            let cur = w.current_segment().unwrap();
            match verdict {
                Verdict::Clean => assert_eq!(cur, seg, "{ctx}: a clean tail continues in place"),
                _ => assert_eq!(cur, seg + 1, "{ctx}: a torn tail is cut by a new segment"),
            }
            assert_eq!(w.append(b"resumed").unwrap(), k + 1, "{ctx}");
            w.sync()
                .unwrap_or_else(|e| panic!("{ctx}: sync after resume: {e:?}"));
            drop(w);
            let mut want = expected(k);
            want.push((k + 1, b"resumed".to_vec()));
            let (got, res) = wal_replay(&mut st2, ReadMode::Strict);
            res.unwrap_or_else(|e| panic!("{ctx}: strict replay after resume: {e:?}"));
            assert_eq!(got, want, "{ctx}: after resume");
        }
    }
}

// ---------------------------------------------------------------------------------------
// A configurable medium over `MemStorage`.

/// `MemStorage` with a different unwritten byte, optional segment size cap and
/// optional refusal to resume in place (flash-like).
pub struct Medium {
    pub inner: MemStorage,
    pub unwritten: u8,
    pub resume: bool,
    pub max: Option<u64>,
}

impl Medium {
    pub fn erased(inner: MemStorage) -> Self {
        Medium {
            inner,
            unwritten: 0xFF,
            resume: true,
            max: None,
        }
    }
}

impl ErrorType for Medium {
    type Error = MemError;
}

impl Storage for Medium {
    fn write_size(&self) -> usize {
        self.inner.write_size()
    }
    fn unwritten_byte(&self) -> u8 {
        self.unwritten
    }
    fn max_segment_len(&self) -> Option<u64> {
        self.max
    }
    fn resume_in_place(&self) -> bool {
        self.resume
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), MemError> {
        self.inner.list(visit)
    }
    fn create(&mut self, segment: u64) -> Result<(), MemError> {
        self.inner.create(segment)
    }
    fn len(&mut self, segment: u64) -> Result<u64, MemError> {
        self.inner.len(segment)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        self.inner.read(segment, offset, buf)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), MemError> {
        if let Some(max) = self.max {
            assert!(
                offset + data.len() as u64 <= max,
                "write past the medium's segment size"
            );
        }
        self.inner.write(segment, offset, data)
    }
    fn sync(&mut self, segment: u64) -> Result<(), MemError> {
        self.inner.sync(segment)
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), MemError> {
        self.inner.truncate(segment, len)
    }
    fn remove(&mut self, segment: u64) -> Result<(), MemError> {
        self.inner.remove(segment)
    }
}
