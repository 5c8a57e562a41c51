//! One segment: reading its frames and judging its end, and appending frames to it.
//!
//! Both logs (the multi-segment WAL and the single-segment record log) are built from
//! the two halves of this file: `scan` walks a segment's frames and classifies how it
//! ends, `Appender` stages frames in the caller's buffer and hands them to storage.
//!
//! # How a segment's end is judged
//!
//! | bound              | first undecodable frame at `p` is followed by            | verdict                     |
//! |--------------------|----------------------------------------------------------|-----------------------------|
//! | sealed at `e`      | anything, `p < e`                                        | corrupt                     |
//! | sealed at `e`      | frames run past `e`                                      | corrupt (seal mismatch)     |
//! | open (final)       | only unwritten bytes (zeros / erased) up to the extent   | clean end at `p`            |
//! | open (final)       | a valid sync marker whose watermark is `> p`             | corrupt (below watermark)   |
//! | open, ordered media| a valid frame (entry `id` or `id + 1`, or a marker)      | corrupt (before valid frame)|
//! | open (final)       | anything else                                            | torn tail at `p`            |
//!
//! A sync marker is written only after a barrier covering bytes `0..watermark` has
//! returned, so a legal crash can never damage bytes below any marker's watermark. On
//! media whose writes land in order ([`Storage::ordered_writes`], flash) a cut leaves
//! nothing valid after the damage, so any valid frame after it proves corruption and
//! no markers are written.

use crate::buffer::Buffer;
use crate::checksum::Crc32c;
use crate::error::{Corruption, Error};
use crate::frame::{
    align_up, FrameForm, FrameHeader, FrameKind, FrameSeal, SegmentHeader, SyncMarker, MARKER_ID,
    MAX_ALIGN,
};
use crate::storage::Storage;

type Res<T, S> = Result<T, Error<<S as crate::storage::ErrorType>::Error>>;

/// The per-entry callback of a scan, behind `dyn` so that the scan is compiled once per
/// storage type, not once per closure (firmware size).
pub(crate) type OnEntry<'a, S> = dyn FnMut(u64, &[u8]) -> Res<(), S> + 'a;

/// Smallest buffer a writer accepts: a segment header padded to the largest alignment.
pub const MIN_WRITE_BUFFER: usize = 64;

/// How far a segment's valid data may extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// A non-final segment: its successor's header says where its data ends.
    Sealed(u64),
    /// The final segment: its end is found by reading.
    Open,
}

/// How a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// At the end of the extent, at the seal, or before space that was never written.
    Clean,
    /// In a torn or garbage write that no completed barrier covered.
    Torn,
}

/// Result of scanning one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEnd {
    /// Offset just past the last valid frame (the segment fits the address space: see
    /// [`Window::new`]).
    pub end: usize,
    /// How the segment ends.
    pub tail: Tail,
    /// Entry id the next entry frame would carry.
    pub next_id: u64,
}

/// A read window over one segment, kept in the caller's buffer.
///
/// Its reads return plain values (`None` / `false` when they fail) and keep the first
/// error in the caller's result slot [`out`](Self::out): a `Result` of the error's size
/// returned through every level was most of the scan's stack frame on 32-bit targets,
/// and an error slot of the window's own was most of the rest. After an error no
/// further storage call is made; callers check [`failed`](Self::failed) before they act
/// on a value.
///
/// Offsets inside the segment are `usize`: on 32-bit targets `u64` positions cost two
/// registers each in every loop here. A segment larger than the address space is
/// refused when the window opens (see [`Window::new`]).
struct Window<'a, S: Storage, B: Buffer, T> {
    st: &'a mut S,
    buf: &'a mut B,
    seg: u64,
    extent: usize,
    off: usize,
    len: usize,
    /// The caller's result slot: `Ok` until a read fails, then the first storage or
    /// buffer error.
    out: &'a mut Res<T, S>,
}

impl<'a, S: Storage, B: Buffer, T> Window<'a, S, B, T> {
    /// A window over segment `seg` keeping its errors in `out` (which is `Ok`); `None`,
    /// with the error in `out`, if the segment's length cannot be read or it is larger
    /// than this target can address (`InvalidConfig`; only possible for files on 32-bit
    /// targets: 4 GiB).
    fn new(st: &'a mut S, buf: &'a mut B, seg: u64, out: &'a mut Res<T, S>) -> Option<Self> {
        let extent = st
            .len(seg)
            .map_err(Error::Storage)
            .and_then(|n| usize::try_from(n).map_err(|_| Error::InvalidConfig(TOO_LARGE)));
        match extent {
            Ok(extent) => Some(Window {
                st,
                buf,
                seg,
                extent,
                off: 0,
                len: 0,
                out,
            }),
            Err(e) => {
                *out = Err(e);
                None
            }
        }
    }

    /// Records a storage error (out of line: no error temporary in [`get`](Self::get)).
    #[cold]
    #[inline(never)]
    fn fail_storage(&mut self, e: <S as crate::storage::ErrorType>::Error) {
        *self.out = Err(Error::Storage(e));
    }

    /// Whether a read failed.
    fn failed(&self) -> bool {
        self.out.is_err()
    }

    /// Bytes `pos..pos + n`, or `None` if they run past the extent or the read failed
    /// (then [`out`](Self::out) says why: `BufferTooSmall` if the buffer cannot hold
    /// `n` bytes).
    fn get(&mut self, pos: usize, n: usize) -> Option<&[u8]> {
        if self.failed() || pos.checked_add(n).is_none_or(|end| end > self.extent) {
            return None;
        }
        let cached = pos >= self.off && pos + n <= self.off + self.len;
        if !cached {
            if !self.buf.grow_to(n) {
                *self.out = Err(Error::BufferTooSmall { needed: n as u64 });
                return None;
            }
            let want = self.buf.bytes().len().min(self.extent - pos);
            let into = self.buf.bytes_mut().get_mut(..want)?;
            match self.st.read(self.seg, pos as u64, into) {
                Ok(got) => {
                    self.off = pos;
                    self.len = got;
                    if got < n {
                        // The backend returned less than its own extent: treat the rest
                        // as absent.
                        return None;
                    }
                }
                Err(e) => {
                    self.fail_storage(e);
                    return None;
                }
            }
        }
        let start = pos - self.off;
        self.buf.bytes().get(start..start + n)
    }

    /// Whether every byte in `pos..extent` is `value` (check [`failed`](Self::failed)).
    fn rest_is(&mut self, mut pos: usize, value: u8) -> bool {
        while pos < self.extent {
            let n = (self.extent - pos).min(self.buf.bytes().len().max(1));
            match self.get(pos, n) {
                Some(bytes) if bytes.iter().all(|&b| b == value) => pos += n,
                Some(_) => return false,
                None => return true,
            }
        }
        true
    }

    /// Verifies a frame too large for the buffer by streaming its payload through the
    /// CRC (check [`failed`](Self::failed)).
    fn verify_streaming(&mut self, pos: usize, h: &FrameHeader, seal: &FrameSeal, id: u64) -> bool {
        let mut crc = seal.begin(id, h.word());
        let mut at = pos + h.head_len();
        let end = at + h.len as usize;
        while at < end {
            let n = (end - at).min(self.buf.bytes().len());
            match self.get(at, n) {
                Some(bytes) => crc.update(bytes),
                None => return false,
            }
            at += n;
        }
        crc.finalize() == h.crc
    }

    /// Whether a valid entry frame carrying `id` or `id + 1` starts at an aligned offset
    /// after `pos` (check [`failed`](Self::failed)). For ordered media, which carry no markers.
    fn frame_beyond(&mut self, pos: usize, seal: &FrameSeal, id: u64, align: usize) -> bool {
        let form = seal.form();
        let hl = form.head_len();
        let mut at = pos + align;
        while at + hl <= self.extent && !self.failed() {
            // Used in place, by reference: no second header slot on the scan's stack.
            let header = self.get(at, hl).and_then(|b| FrameHeader::parse(b, form));
            if let Some(h) = &header {
                if h.kind == FrameKind::Entry
                    && at
                        .checked_add(h.span(align))
                        .is_some_and(|end| end <= self.extent)
                {
                    // Streamed through the window whatever the frame's size (a frame
                    // that fits the buffer is one read either way): one verification
                    // path. Ids `id` and `id + 1` (a range, not an array: no id pair on
                    // the stack).
                    for step in 0..2 {
                        if self.verify_streaming(at, h, seal, id.saturating_add(step)) {
                            return true;
                        }
                    }
                }
            }
            at += align;
        }
        false
    }

    /// A valid sync marker after `pos` whose watermark lies beyond `pos`, if any
    /// (check [`failed`](Self::failed)). `log_id`: the log the marker must belong to; `None`
    /// accepts the log id the marker names (its checksum covers it), for segments whose
    /// header is unreadable.
    fn marker_beyond(
        &mut self,
        pos: usize,
        log_id: Option<u64>,
        align: usize,
        form: FrameForm,
    ) -> Option<usize> {
        let marker_len = form.head_len() + crate::frame::marker::LEN;
        let seg = self.seg;
        let mut at = pos + align;
        while at + marker_len <= self.extent && !self.failed() {
            if let Some(bytes) = self.get(at, marker_len) {
                if let Some(m) = parse_marker(bytes, log_id, seg, form) {
                    if m.watermark > pos as u64 {
                        return Some(at);
                    }
                }
            }
            at += align;
        }
        None
    }
}

/// The id after `id`; a log that would need more than `u64::MAX` ids is not one we wrote.
fn next_entry_id<E>(id: u64, seg: u64, pos: u64) -> Result<u64, Error<E>> {
    id.checked_add(1)
        .ok_or(Error::corrupt(seg, pos, Corruption::EntryIdGap))
}

fn parse_marker(
    bytes: &[u8],
    log_id: Option<u64>,
    seg: u64,
    form: FrameForm,
) -> Option<SyncMarker> {
    let h = FrameHeader::parse(bytes, form)?;
    if h.kind != FrameKind::SyncMarker {
        return None;
    }
    let payload = bytes.get(h.head_len()..h.head_len() + h.len as usize)?;
    let m = SyncMarker::parse(payload.try_into().ok()?);
    if log_id.is_some_and(|id| id != m.log_id) {
        return None;
    }
    h.verify(&FrameSeal::new(m.log_id, seg, form), MARKER_ID, payload)
        .then_some(m)
}

/// Walks the frames of one segment, calling `on_entry(id, payload)` for each entry with
/// `id >= deliver_from`, and classifies its end (see the module docs). Entries below
/// `deliver_from` are verified but never need to fit the buffer: a frame larger than
/// it has its checksum streamed.
///
/// `out` is `Ok` on entry; an error is left in it (then the returned end means
/// nothing). It is the caller's result slot, so that no error slot of the scan's own is
/// on its stack.
pub(crate) fn scan_into<S, B, T, F>(
    out: &mut Res<T, S>,
    st: &mut S,
    buf: &mut B,
    hdr: &SegmentHeader,
    bound: Bound,
    deliver_from: u64,
    mut on_entry: F,
) -> SegmentEnd
where
    S: Storage,
    B: Buffer,
    F: FnMut(u64, &[u8]) -> Res<(), S>,
{
    let (sealed, seal_end) = match bound {
        Bound::Sealed(e) => (true, e),
        Bound::Open => (false, 0),
    };
    scan_dyn(
        out,
        st,
        buf,
        hdr,
        sealed,
        seal_end,
        deliver_from,
        &mut on_entry,
    )
}

/// [`scan_into`] with its result returned (for callers that hold no result slot of
/// their own).
pub(crate) fn scan<S, B, F>(
    st: &mut S,
    buf: &mut B,
    hdr: &SegmentHeader,
    bound: Bound,
    deliver_from: u64,
    on_entry: F,
) -> Res<SegmentEnd, S>
where
    S: Storage,
    B: Buffer,
    F: FnMut(u64, &[u8]) -> Res<(), S>,
{
    let mut out = Ok(());
    let end = scan_into(&mut out, st, buf, hdr, bound, deliver_from, on_entry);
    out.map(|()| end)
}

/// The body of [`scan_into`]: one copy per storage type (and result slot type).
#[inline(never)]
#[allow(clippy::too_many_arguments)] // pointers and scalars, no struct copy on the caller's stack
fn scan_dyn<S, B, T>(
    out: &mut Res<T, S>,
    st: &mut S,
    buf: &mut B,
    hdr: &SegmentHeader,
    sealed: bool,
    seal_end: u64,
    deliver_from: u64,
    on_entry: &mut OnEntry<'_, S>,
) -> SegmentEnd
where
    S: Storage,
    B: Buffer,
{
    let unwritten = st.unwritten_byte();
    let ordered = st.ordered_writes();
    let seal = hdr.seal();
    let form = hdr.form;
    let hl = form.head_len();
    let align = hdr.align();
    let done = |end: usize, tail: Tail, next_id: u64| SegmentEnd { end, tail, next_id };
    let Some(mut w) = Window::new(st, buf, hdr.segment, out) else {
        return done(0, Tail::Clean, 0);
    };
    let data_start = hdr.data_start() as usize;
    let corrupt = |seg: u64, pos: usize, why: Corruption| Error::corrupt(seg, pos as u64, why);
    let mut pos = data_start;
    let mut id = hdr.first_id;
    // Every `break` happens while the window holds no error (each read's failure is
    // checked first), with the scan's error; a read error is already in the slot.
    let err = 'scan: {
        let limit = match sealed {
            true if seal_end > w.extent as u64 || seal_end < data_start as u64 => {
                break 'scan Error::corrupt(w.seg, seal_end, Corruption::SealMismatch);
            }
            true => seal_end as usize,
            false => w.extent,
        };
        loop {
            if pos == limit && sealed {
                return done(pos, Tail::Clean, id);
            }
            // Ordered media carry no sync markers (the core writes none there): a marker
            // is not a frame there, which also folds the marker checks out of their builds.
            let header = w
                .get(pos, hl)
                .and_then(|b| FrameHeader::parse(b, form))
                .filter(|h| {
                    pos.checked_add(h.span(align))
                        .is_some_and(|end| end <= limit)
                })
                .filter(|h| !ordered || h.kind == FrameKind::Entry);
            if w.failed() {
                return done(pos, Tail::Clean, id);
            }
            let verified = match header {
                None => None,
                Some(h) => {
                    let entry = h.kind == FrameKind::Entry;
                    let frame_id = if entry { id } else { MARKER_ID };
                    let total = hl + h.len as usize;
                    let ok = if !w.buf.grow_to(total) {
                        // Larger than the buffer: its checksum is streamed, and only an
                        // entry that is not delivered may be that large.
                        let ok = w.verify_streaming(pos, &h, &seal, frame_id);
                        if w.failed() {
                            return done(pos, Tail::Clean, id);
                        }
                        if ok && !(entry && id < deliver_from) {
                            break 'scan Error::BufferTooSmall {
                                needed: total as u64,
                            };
                        }
                        ok
                    } else if let Some(bytes) = w.get(pos, total) {
                        // `get`, not a range slice (an outlined, bounds-checked call at
                        // opt-level `z`): `bytes` is the whole frame, longer than `hl`.
                        let payload = bytes.get(hl..).unwrap_or_default();
                        let ok = h.verify(&seal, frame_id, payload);
                        if ok && entry && id >= deliver_from {
                            if let Err(e) = on_entry(id, payload) {
                                break 'scan e;
                            }
                        } else if ok && !entry {
                            let sound =
                                payload
                                    .first_chunk()
                                    .map(SyncMarker::parse)
                                    .is_some_and(|m| {
                                        m.watermark <= pos as u64
                                            && m.next_id == id
                                            && m.log_id == hdr.log_id
                                    });
                            if !sound {
                                break 'scan corrupt(w.seg, pos, Corruption::BadSyncMarker);
                            }
                        }
                        ok
                    } else {
                        if w.failed() {
                            return done(pos, Tail::Clean, id);
                        }
                        false
                    };
                    if ok && entry {
                        match next_entry_id(id, w.seg, pos as u64) {
                            Ok(next) => id = next,
                            Err(e) => break 'scan e,
                        }
                    }
                    ok.then_some(h)
                }
            };
            match verified {
                // Fits below `limit` (checked above), so in `usize`.
                Some(h) => pos += h.span(align),
                None => {
                    // The first undecodable frame: decide what it is.
                    if sealed {
                        break 'scan corrupt(w.seg, pos, Corruption::BadFrameInSealedSegment);
                    }
                    // One error check for the three looks: after a failed read the
                    // window makes no further storage call and each look finds nothing.
                    let clean = w.rest_is(pos, unwritten);
                    // Ordered media carry no sync markers (the core writes none there);
                    // on them `frame_beyond` finds any valid entry frame after the damage.
                    let below_watermark = !clean
                        && !ordered
                        && w.marker_beyond(pos, Some(hdr.log_id), align, form)
                            .is_some();
                    let before_valid = !clean && ordered && w.frame_beyond(pos, &seal, id, align);
                    if w.failed() || clean {
                        return done(pos, Tail::Clean, id);
                    }
                    if below_watermark {
                        break 'scan corrupt(w.seg, pos, Corruption::BadFrameBelowWatermark);
                    }
                    if before_valid {
                        break 'scan corrupt(w.seg, pos, Corruption::BadFrameBeforeValidFrame);
                    }
                    return done(pos, Tail::Torn, id);
                }
            }
            if sealed && pos > limit {
                break 'scan corrupt(w.seg, pos, Corruption::SealMismatch);
            }
        }
    };
    *w.out = Err(err);
    done(pos, Tail::Clean, id)
}

/// A placeholder for a header slot that a read fills.
pub(crate) const NO_HEADER: SegmentHeader = SegmentHeader {
    kind: crate::frame::LogKind::Wal,
    align_log2: 0,
    log_id: 0,
    segment: 0,
    first_id: 0,
    prev_end: 0,
    form: FrameForm::Long,
};

/// Reads and parses the header of segment `seg`; `Ok(None)` when it is not a valid header.
pub(crate) fn read_header<S: Storage>(st: &mut S, seg: u64) -> Res<Option<SegmentHeader>, S> {
    let mut h = NO_HEADER;
    Ok(read_header_into(st, seg, &mut h)?.then_some(h))
}

/// [`read_header`] into a slot the caller owns (kept off the reader's frame); returns
/// whether `out` now holds a valid header (its content is unspecified otherwise).
pub(crate) fn read_header_into<S: Storage>(
    st: &mut S,
    seg: u64,
    out: &mut SegmentHeader,
) -> Res<bool, S> {
    let mut bytes = [0u8; crate::frame::header::LEN];
    let n = st.read(seg, 0, &mut bytes).map_err(Error::Storage)?;
    if n < bytes.len() {
        return Ok(false);
    }
    match out.parse_into(&bytes) {
        // A header whose padding never landed is a torn creation too.
        Ok(()) => Ok(st.len(seg).map_err(Error::Storage)? >= out.data_start()),
        Err(crate::frame::HeaderError::Version(v)) => Err(Error::UnsupportedVersion(v)),
        Err(_) => Ok(false),
    }
}

/// Decides whether a segment whose header does not parse may be a torn creation
/// (`Ok`), or must be reported as corrupt (`Err`).
///
/// A torn creation never holds a valid sync marker: a marker is written only after a
/// barrier made the header durable. Markers carry the log id, so this holds even when
/// the damage hit the header's `log_id`. `named_ours`: the segment's name already marks
/// it as ours (a WAL segment file); otherwise (a record log at a user's path) the first
/// bytes must be our magic, or a prefix of it followed by unwritten bytes, or nothing —
/// a file with foreign content is never ours to repair or overwrite.
pub(crate) fn check_torn_header<S: Storage, B: Buffer>(
    st: &mut S,
    buf: &mut B,
    seg: u64,
    named_ours: bool,
) -> Res<(), S> {
    // The first bytes decide only for a segment not named ours: a WAL segment's are not
    // read (a read that could only fail, and whose buffer and result would sit in
    // every caller's frame).
    let mut raw = [0u8; crate::frame::header::MAGIC.end];
    let n = match named_ours {
        true => 0,
        false => st.read(seg, 0, &mut raw).map_err(Error::Storage)?,
    };
    let unwritten = st.unwritten_byte();
    let align = st.write_size();
    // Every marker's watermark lies beyond the header, so "beyond offset 0" finds all.
    // Ordered media carry no markers (the core writes none there): nothing to find.
    if !st.ordered_writes() {
        // The header is unreadable, so the frame form is this medium's (markers of
        // the other form, from an older build, are not looked for).
        let form = if st.short_frames() {
            FrameForm::Short
        } else {
            FrameForm::Long
        };
        let mut out = Ok(());
        let found = Window::new(st, buf, seg, &mut out)
            .is_some_and(|mut w| w.marker_beyond(0, None, align, form).is_some());
        out?;
        if found {
            return Err(Error::corrupt(seg, 0, Corruption::BadSegmentHeader));
        }
    }
    // Ours if the bytes read are a prefix of the magic followed by unwritten bytes (the
    // whole magic, a torn one, or nothing): the longest common prefix with the magic is
    // the best split, since "unwritten from `k` on" only gets easier as `k` grows.
    let read = raw.get(..n).unwrap_or(&[]);
    let common = read
        .iter()
        .zip(crate::frame::MAGIC)
        .take_while(|&(&b, m)| b == m)
        .count();
    let torn_magic = read.iter().skip(common).all(|&b| b == unwritten);
    if named_ours || torn_magic {
        Ok(())
    } else {
        Err(Error::corrupt(seg, 0, Corruption::BadSegmentHeader))
    }
}

/// Stages frames of one open segment in the caller's buffer and writes them out.
///
/// Invariant: the buffer's first `fill` bytes hold segment bytes `written..written + fill`,
/// always a whole number of frames (or the header), so always a multiple of `align`.
///
/// Offsets are `usize` (two registers less each on 32-bit targets): the WAL caps its
/// segments at the address space ([`Window::new`] refuses to read larger ones), and a
/// resumed segment's end comes from a scan, which fits it too.
#[derive(Clone)]
pub(crate) struct Appender {
    pub seg: u64,
    /// The seal's checksum prefix and frame form, kept apart (see [`seal`](Self::seal)):
    /// a whole [`FrameSeal`] carries padding after its form byte, which made the
    /// appender (and the writer holding one) a word larger on 32-bit targets.
    prefix: Crc32c,
    form: FrameForm,
    /// Write alignment (a power of two up to [`MAX_ALIGN`]), as a byte: it is read
    /// through [`align`](Self::align), and the byte keeps the appender (and the
    /// writer that holds one) a word smaller on 32-bit targets.
    align: u8,
    /// Bytes handed to storage.
    pub written: usize,
    /// Bytes staged in the buffer.
    pub fill: usize,
    /// Bytes covered by a completed barrier.
    pub durable: usize,
    /// A barrier completed and no marker recording it was staged yet.
    pub marker_due: bool,
    /// The segment holds an entry frame.
    pub has_entries: bool,
}

// Every alignment fits the appender's byte.
const _: () = assert!(MAX_ALIGN <= u8::MAX as usize);

impl Appender {
    /// An appender continuing a segment whose valid data ends at `end`.
    pub fn resume(hdr: &SegmentHeader, end: usize) -> Self {
        let (prefix, form) = hdr.seal().into_parts();
        Appender {
            seg: hdr.segment,
            prefix,
            form,
            align: hdr.align() as u8,
            written: end,
            fill: 0,
            durable: 0,
            marker_due: false,
            has_entries: false,
        }
    }

    /// Creates segment `hdr.segment` and writes its header (one write, not synced).
    pub fn create<S: Storage>(st: &mut S, hdr: &SegmentHeader) -> Res<Self, S> {
        st.create(hdr.segment).map_err(Error::Storage)?;
        let mut block = [0u8; MIN_WRITE_BUFFER];
        if let Some(head) = block.first_chunk_mut() {
            hdr.emit(head);
        }
        let start = hdr.data_start() as usize;
        st.write(hdr.segment, 0, &block[..start])
            .map_err(Error::Storage)?;
        Ok(Appender::resume(hdr, start))
    }

    /// Write alignment of this segment.
    pub fn align(&self) -> usize {
        usize::from(self.align)
    }

    /// Offset where the next frame lands.
    pub fn end(&self) -> usize {
        self.written + self.fill
    }

    /// Writes the staged bytes to storage.
    pub fn flush<S: Storage, B: Buffer>(&mut self, st: &mut S, buf: &mut B) -> Res<(), S> {
        if self.fill > 0 {
            let written = past(self.written, self.fill)?;
            st.write(self.seg, self.written as u64, &buf.bytes()[..self.fill])
                .map_err(Error::Storage)?;
            self.written = written;
            self.fill = 0;
        }
        Ok(())
    }

    /// Flushes, then makes everything written durable. Returns whether a barrier ran.
    pub fn sync<S: Storage, B: Buffer>(&mut self, st: &mut S, buf: &mut B) -> Res<bool, S> {
        self.flush(st, buf)?;
        if self.written == self.durable {
            return Ok(false);
        }
        st.sync(self.seg).map_err(Error::Storage)?;
        self.durable = self.written;
        // In-order media need no marker: a valid frame after damage proves it.
        self.marker_due = !st.ordered_writes();
        Ok(true)
    }

    /// Room for `total` staged bytes, flushing first if needed.
    fn make_room<S: Storage, B: Buffer>(
        &mut self,
        st: &mut S,
        buf: &mut B,
        total: usize,
    ) -> Res<(), S> {
        if self.fill + total > buf.bytes().len() {
            self.flush(st, buf)?;
        }
        Ok(())
    }

    /// The frame form of this segment.
    pub fn form(&self) -> FrameForm {
        self.form
    }

    /// The seal of this segment's frames.
    pub fn seal(&self) -> FrameSeal {
        FrameSeal::from_parts(self.prefix.clone(), self.form)
    }

    /// Length of an entry frame with a `len`-byte payload in this segment.
    pub fn frame_len(&self, len: usize) -> u64 {
        self.form().frame_len(len, self.align())
    }

    /// Bytes the due sync marker takes, 0 if none is due.
    pub fn marker_len(&self) -> u64 {
        if self.marker_due {
            self.frame_len(crate::frame::marker::LEN)
        } else {
            0
        }
    }

    /// [`marker_len`](Self::marker_len), known to be 0 at compile time on media with
    /// ordered writes (no marker is ever due there), so their builds drop the marker code.
    pub fn due_marker_len<S: Storage>(&self, st: &S) -> u64 {
        if st.ordered_writes() {
            0
        } else {
            self.marker_len()
        }
    }

    /// Stages the sync marker of log `log_id` if one is due.
    pub fn stage_marker<S: Storage, B: Buffer>(
        &mut self,
        st: &mut S,
        buf: &mut B,
        next_id: u64,
        log_id: u64,
    ) -> Res<(), S> {
        // Never due on ordered media (see `sync`): a compile-time `false` there.
        if self.marker_due && !st.ordered_writes() {
            self.make_room(st, buf, self.marker_len() as usize)?;
            self.put_marker(buf.bytes_mut(), next_id, log_id);
        }
        Ok(())
    }

    /// Writes the due marker at `fill` (the caller made room).
    fn put_marker(&mut self, buf: &mut [u8], next_id: u64, log_id: u64) {
        let payload = SyncMarker {
            watermark: self.durable as u64,
            next_id,
            log_id,
        }
        .emit();
        let total = self.marker_len() as usize;
        let head = self.seal().seal(FrameKind::SyncMarker, MARKER_ID, &payload);
        let hl = self.form().head_len();
        put_frame(
            &mut buf[self.fill..self.fill + total],
            &head[..hl],
            &payload,
        );
        self.fill += total;
        self.marker_due = false;
    }

    /// Places an entry frame with a known payload, staging it if it fits the buffer and
    /// writing it through otherwise. The caller has checked length and rotation.
    pub fn append<S: Storage, B: Buffer>(
        &mut self,
        st: &mut S,
        buf: &mut B,
        id: u64,
        payload: &[u8],
    ) -> Res<(), S> {
        let head = self.seal().seal(FrameKind::Entry, id, payload);
        let hl = self.form().head_len();
        let head = &head[..hl];
        let total = self.frame_len(payload.len()) as usize;
        self.make_room(st, buf, total)?;
        let cap = buf.bytes().len();
        if let Some(out) = buf.bytes_mut().get_mut(self.fill..self.fill + total) {
            put_frame(out, head, payload);
            self.fill += total;
        } else {
            // Larger than the whole buffer: header and a first aligned piece through the
            // buffer, the aligned middle straight from the caller, the rest staged.
            // (Splits, not range slices: `first` < payload length, since the frame is
            // longer than the aligned buffer.)
            let first = (cap & !(self.align() - 1)) - hl;
            let (lead, rest) = payload.split_at_checked(first).unwrap_or((payload, &[]));
            if let Some(out) = buf.bytes_mut().get_mut(..hl + first) {
                put_frame(out, head, lead);
            }
            self.fill = hl + first;
            self.flush(st, buf)?;
            let (middle, tail) = rest
                .split_at_checked(rest.len() & !(self.align() - 1))
                .unwrap_or((rest, &[]));
            let written = past(self.written, middle.len())?;
            st.write(self.seg, self.written as u64, middle)
                .map_err(Error::Storage)?;
            self.written = written;
            let staged = align_up(tail.len() as u64, self.align()) as usize;
            if let Some(out) = buf.bytes_mut().get_mut(..staged) {
                put_frame(out, &[], tail);
            }
            self.fill = staged;
        }
        self.has_entries = true;
        Ok(())
    }

    /// Serializes an entry straight into the buffer with `encode`, which returns the
    /// payload length or `None` if it does not fit; `reserve` bytes are left free in front
    /// of the frame for the due marker, unless only dropping the marker makes the entry
    /// fit. Returns the frame's length, the room actually reserved and the payload's
    /// length, or `None` (nothing staged) if it does not fit even an empty buffer. The frame is only
    /// staged tentatively: the caller commits it with [`Appender::commit`].
    pub fn stage_with<S, B, F>(
        &mut self,
        st: &mut S,
        buf: &mut B,
        id: u64,
        reserve: usize,
        mut encode: F,
    ) -> Res<Option<(usize, usize, usize)>, S>
    where
        S: Storage,
        B: Buffer,
        F: FnMut(&mut [u8]) -> Option<usize>,
    {
        // Where the frame goes, in order: after what is staged; at the front of an
        // emptied buffer; at the front without the (optional) marker.
        let staged = self.fill > 0;
        for (flush, with_marker) in [(false, true), (true, true), (true, false)] {
            // Skip an attempt that would ask the encoder the same question again.
            if (flush && with_marker && !staged) || (!with_marker && reserve == 0) {
                continue;
            }
            if flush {
                self.flush(st, buf)?;
            }
            let reserve = if with_marker { reserve } else { 0 };
            let at = self.fill + reserve;
            let hl = self.form().head_len();
            let start = at + hl;
            let b = buf.bytes_mut();
            if start > b.len() {
                continue;
            }
            let Some(len) = encode(&mut b[start..]) else {
                continue;
            };
            let max = self.form().max_entry_len();
            if len > max as usize {
                return Err(Error::EntryTooLarge {
                    len: len as u64,
                    max: max as u64,
                });
            }
            let total = self.form().frame_len(len, self.align()) as usize;
            if at + total > b.len() {
                continue;
            }
            let head = self
                .seal()
                .seal(FrameKind::Entry, id, &b[start..start + len]);
            b[at..start].copy_from_slice(&head[..hl]);
            b[start + len..at + total].fill(0);
            if !with_marker {
                self.marker_due = false;
            }
            return Ok(Some((total, reserve, len)));
        }
        Ok(None)
    }

    /// Accepts a frame staged by [`Appender::stage_with`] with room for the due marker
    /// reserved in front of it. The marker is written there, or dropped (and the frame
    /// moved up) when `keep_marker` is false.
    pub fn commit(
        &mut self,
        buf: &mut [u8],
        reserve: usize,
        total: usize,
        next_id: u64,
        log_id: u64,
        keep_marker: bool,
    ) {
        if reserve > 0 {
            if keep_marker {
                self.put_marker(buf, next_id, log_id);
            } else {
                buf.copy_within(self.fill + reserve..self.fill + reserve + total, self.fill);
                self.marker_due = false;
            }
        }
        self.fill += total;
        self.has_entries = true;
    }

    /// Moves a tentatively staged frame (at `from..from + total` in the buffer, sealed for
    /// the previous segment of the same log, so of the same form) to the front of this
    /// fresh appender's buffer and reseals it.
    pub fn adopt(&mut self, buf: &mut [u8], from: usize, total: usize, id: u64) {
        buf.copy_within(from..from + total, 0);
        let form = self.form();
        let hl = form.head_len();
        // The header was staged by `stage_with`, so it parses.
        let len = FrameHeader::parse(buf, form).map_or(0, |h| h.len as usize);
        let head = self.seal().seal(FrameKind::Entry, id, &buf[hl..hl + len]);
        buf[..hl].copy_from_slice(&head[..hl]);
        self.fill = total;
        self.has_entries = true;
    }
}

/// The offset `n` bytes after `at`; `InvalidConfig` past the address space (a segment
/// this target could not read back: only possible for files on 32-bit targets).
fn past<E>(at: usize, n: usize) -> Result<usize, Error<E>> {
    at.checked_add(n).ok_or(Error::InvalidConfig(TOO_LARGE))
}

/// Why a segment larger than the address space is refused.
const TOO_LARGE: &str = "segment larger than this target's address space";

/// Writes `head ‖ payload ‖ zero padding` into `out` (which the caller sized to the
/// frame; splits, not range slices: no outlined bounds checks).
fn put_frame(out: &mut [u8], head: &[u8], payload: &[u8]) {
    let Some((h, rest)) = out.split_at_mut_checked(head.len()) else {
        return;
    };
    let Some((p, pad)) = rest.split_at_mut_checked(payload.len()) else {
        return;
    };
    // Zipped copies: the lengths match by the splits, and `copy_from_slice`'s check
    // is an outlined call with a panic path at opt-level `z`.
    copy(h, head);
    copy(p, payload);
    // Copied from zeros rather than filled: the padding is shorter than the largest
    // alignment, and a fill is a call into a memset that nothing else in a firmware
    // build needs (copies call the memcpy that is linked anyway).
    for chunk in pad.chunks_mut(MAX_ALIGN) {
        copy(chunk, &ZEROS);
    }
}

/// Copies the common prefix of `src` into `dst`.
fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Source of [`put_frame`]'s padding.
static ZEROS: [u8; MAX_ALIGN] = [0; MAX_ALIGN];
