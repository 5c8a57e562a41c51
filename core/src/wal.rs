//! The multi-segment write-ahead log: writer, reader, resume.
//!
//! Segments are numbered from 1 and strictly contiguous; each names the entry id of
//! its first frame and (from the second on) where its predecessor's data ends, so
//! that a missing, duplicated, foreign or truncated segment is detected, and a
//! predecessor whose torn tail was cut by [`WalWriter::open`] is sealed exactly there.
//!
//! # Rules for the final segment
//!
//! The final segment alone may end in damage that no completed barrier covered: a torn
//! header (the crash hit its creation), a short, zeroed or garbage tail, or a hole
//! followed by frames that were never made durable either. Best-effort replay stops
//! there; strict replay reports [`Error::TornTail`]; [`WalWriter::open`] cuts it by
//! starting a new segment after it. Damage below a watermark proven by a sync marker,
//! or anywhere in a non-final segment, is [`Error::Corrupt`] in every mode.
//!
//! # Buffering
//!
//! [`WalWriter::append`] stages the frame in the writer's buffer. [`WalWriter::flush`]
//! hands staged frames to storage (not durable on files). [`WalWriter::sync`] flushes
//! and runs a barrier: when it returns `Ok`, every entry appended before it is durable.
//! Dropping a writer discards what is still staged.

use crate::buffer::Buffer;
use crate::error::StorageError;
use crate::error::{Corruption, Error, Location};
use crate::frame::{FrameForm, LogKind, SegmentHeader, MAX_ENTRY_LEN};
use crate::segment::{self, Appender, Bound, Tail, MIN_WRITE_BUFFER, NO_HEADER};
use crate::storage::{segment_span, ErrorType, Storage};
use crate::ReadMode;
use crate::StorageErrorKind;

type Res<T, S> = Result<T, Error<<S as ErrorType>::Error>>;

/// Default hard size limit of a segment: 64 MiB.
pub const DEFAULT_SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;

/// Number of the first segment of a new WAL.
pub const FIRST_SEGMENT: u64 = 1;

/// Writer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// Hard size limit of a segment in bytes. An entry that does not fit in the rest of
    /// the current segment starts a new one; an entry larger than the limit gets a
    /// segment of its own.
    pub segment_limit: u64,
    /// Identity written into every segment of a NEW log, so segments of another log are
    /// recognised. Pick it at random (the std facade does); an existing log keeps its own.
    pub log_id: u64,
    /// Entry id of the first entry of a NEW log (1 unless a checkpoint already covers
    /// earlier ids).
    pub first_id: u64,
    /// The last entry id a durable checkpoint covers (0: none). Opening does not read
    /// segments holding only entries up to it (their headers are still checked), so
    /// damage there cannot block the writer: on flash, a power cut while
    /// [`WalWriter::truncate_through`] erased such a segment can leave its old header
    /// over a half-erased body; the next `truncate_through` removes it again.
    pub covered_through: u64,
}

impl WalConfig {
    /// Default limit, the given identity, ids from 1.
    pub const fn new(log_id: u64) -> Self {
        WalConfig {
            segment_limit: DEFAULT_SEGMENT_LIMIT,
            log_id,
            first_id: 1,
            covered_through: 0,
        }
    }
}

/// What a replay found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReplayReport {
    /// Segments read.
    pub segments: u64,
    /// Entries delivered to the callback.
    pub entries: u64,
    /// Payload bytes delivered.
    pub payload_bytes: u64,
    /// Id of the first entry stored in the log (delivered or not), if any segment exists.
    pub first_id: Option<u64>,
    /// Id the next appended entry will get.
    pub next_id: u64,
    /// Where the best-effort prefix was cut, if the final segment ends in a torn write
    /// or its header is torn.
    pub torn_at: Option<Location>,
    /// Ring logs only (`WalReader::set_overwrite_oldest`, feature `ring`): the oldest segment was
    /// damaged — the overwrite of a full ring was cut — and its entries were dropped;
    /// the log starts at [`first_id`](Self::first_id).
    pub dropped_oldest: bool,
}

/// How an existing log ends, as found by a scan; the header of its last segment with a
/// valid header (`last`) is in the scan's `last` slot. Its log id is `last.log_id` (every
/// segment carries the same one).
struct Layout {
    /// The id the next appended entry gets.
    next_id: u64,
    /// Offset just past the last valid frame of `last`.
    end: usize,
    /// How `last` ends.
    tail: Tail,
    /// Segment `last.segment + 1` exists with a torn header.
    torn_header: bool,
}

/// What a scan found: all the writer's open needs, small enough to come back in the
/// scan's `Result` (the reader's [`ReplayReport`] is filled on the way, when given).
enum Found {
    /// No segment.
    Empty,
    /// The only segment, this one, is a torn creation.
    TornOnly(u64),
    /// A log with a valid segment.
    Log(Layout),
}

/// What a scan delivers and what it may skip.
#[derive(Clone, Copy)]
struct ScanRules {
    /// Entries with ids `>= from_id` are delivered.
    from_id: u64,
    /// Segments whose entries all have ids `<= covered` (known from the successor's
    /// header) are not read; 0 reads and verifies every segment.
    covered: u64,
    /// How the pass ends and what it forgives.
    modes: Modes,
}

/// The two flags of a scan, passed together in one register.
#[derive(Clone, Copy)]
struct Modes {
    /// A ring log: a damaged oldest segment is dropped instead of reported.
    ring: bool,
    /// Strict replay: a torn tail (recorded in the report, so only with one) is
    /// [`Error::TornTail`] once every entry before it has been delivered.
    strict: bool,
}

/// Scans the whole log once (see [`ScanRules`]), filling `report` if given (it starts as
/// [`ReplayReport::default`]) and delivering entries to `on_entry` (without a report,
/// as in the writer's open, nothing is delivered, whatever `rules.from_id`); leaves what
/// it found in `out` (which is `Ok(Found::Empty)` on entry), with the header of the
/// log's last valid segment in `slots[0]` if it has one; `slots[1]` holds its
/// successor's header while the pass runs. (The slots are the caller's: a header held in
/// the scan's own frame would be spilled field by field around every call; one pointer
/// for both.)
#[allow(clippy::too_many_arguments)] // pointers and a small value, no struct copy
fn scan_log<S, B, F>(
    out: &mut Res<Found, S>,
    st: &mut S,
    buf: &mut B,
    rules: ScanRules,
    report: Option<&mut ReplayReport>,
    slots: &mut [SegmentHeader; 2],
    mut on_entry: F,
) where
    S: Storage,
    B: Buffer,
    F: FnMut(u64, &[u8]) -> Res<(), S>,
{
    let ScanRules {
        from_id,
        covered,
        modes,
    } = rules;
    let mut deliver;
    let deliver = match report {
        Some(report) => {
            deliver = Deliver {
                from_id,
                report,
                on_entry: &mut on_entry,
            };
            Some(&mut deliver)
        }
        None => None,
    };
    scan_log_dyn(out, st, buf, modes, covered, deliver, slots)
}

/// A replay's first delivered id, report and callback, passed to the log pass as one
/// pointer: the writer's open, which delivers nothing, passes none (five argument
/// words less on its stack, beside the two header slots).
struct Deliver<'a, 'f, S: Storage> {
    /// [`ScanRules::from_id`].
    from_id: u64,
    report: &'a mut ReplayReport,
    on_entry: &'a mut segment::OnEntry<'f, S>,
}

/// Records in `report` that the replay's prefix was cut at `segment`, `offset`; strict
/// mode refuses it (after every entry before it was delivered).
fn torn_end<E>(
    modes: Modes,
    report: &mut ReplayReport,
    segment: u64,
    offset: u64,
) -> Result<(), Error<E>> {
    let at = Location { segment, offset };
    report.torn_at = Some(at);
    match modes.strict {
        true => Err(Error::TornTail { at }),
        false => Ok(()),
    }
}

/// Empty header slots for [`scan_log`], filled in one place for every caller.
#[inline(never)]
fn no_slots() -> [SegmentHeader; 2] {
    [NO_HEADER; 2]
}

/// `r`'s value, or `None` with its error left in `out`.
fn keep<T, U, E>(out: &mut Result<U, Error<E>>, r: Result<T, Error<E>>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            *out = Err(e);
            None
        }
    }
}

/// The body of [`scan_log`]: one copy per storage type. Leaves its result in `out`
/// (which is `Ok(Found::Empty)` on entry), the caller's slot: each segment's scan keeps
/// its errors there too, so that no frame below holds an error slot for it.
#[allow(clippy::too_many_arguments)] // scalars, not a struct copy on the caller's stack
fn scan_log_dyn<S, B>(
    out: &mut Res<Found, S>,
    st: &mut S,
    buf: &mut B,
    modes: Modes,
    covered: u64,
    mut deliver: Option<&mut Deliver<'_, '_, S>>,
    slots: &mut [SegmentHeader; 2],
) where
    S: Storage,
    B: Buffer,
{
    let [cur, succ] = slots;
    let Some(start) = keep(
        out,
        scan_start(st, buf, modes.ring, deliver.as_deref_mut(), cur, succ),
    ) else {
        return;
    };
    let (last_seg, torn_header) = match start {
        Start::Run(last_seg, torn_header) => (last_seg, torn_header),
        Start::Empty => return,
        Start::TornOnly(seg) => {
            if let Some(d) = deliver {
                if keep(out, torn_end(modes, d.report, seg, 0)).is_none() {
                    return;
                }
            }
            *out = Ok(Found::TornOnly(seg));
            return;
        }
    };
    if let Some(d) = deliver.as_deref_mut() {
        d.report.first_id = Some(cur.first_id);
    }
    // `scan_start` checked the first segment; each successor is checked against its
    // predecessor before the pass moves to it (the same log, ids continuing), so
    // nothing but the two header slots is kept across the loop.
    loop {
        let n = cur.segment;
        let sealed = n < last_seg;
        let skip = if sealed {
            match keep(out, segment::read_header_into(st, n + 1, succ)) {
                Some(true) => {}
                Some(false) => {
                    *out = Err(Error::corrupt(n + 1, 0, Corruption::BadSegmentHeader));
                    return;
                }
                None => return,
            }
            if succ.segment != n + 1 {
                *out = Err(Error::corrupt(n + 1, 0, Corruption::SegmentNumberMismatch));
                return;
            }
            // `first_id - 1 <= covered`: the same as `first_id <= covered + 1` (also at
            // 0 and `u64::MAX`), without a sum kept live across the loop.
            covered > 0
                && succ.first_id.saturating_sub(1) <= covered
                && succ.first_id >= cur.first_id
        } else {
            false
        };
        let next_id = if skip {
            // Wholly covered by a checkpoint: the successor's header says where the ids
            // continue; the body is never needed again.
            succ.first_id
        } else {
            let bound = match sealed {
                true => Bound::Sealed(succ.prev_end),
                false => Bound::Open,
            };
            let end = segment::scan_into(
                out,
                st,
                buf,
                cur,
                bound,
                deliver.as_deref().map_or(u64::MAX, |d| d.from_id),
                |id, payload| match deliver.as_deref_mut() {
                    Some(d) => {
                        d.report.entries += 1;
                        d.report.payload_bytes += payload.len() as u64;
                        (d.on_entry)(id, payload)
                    }
                    None => Ok(()),
                },
            );
            if out.is_err() {
                return;
            }
            if let Some(d) = deliver.as_deref_mut() {
                let r = &mut *d.report;
                r.segments += 1;
                if !sealed {
                    r.next_id = end.next_id;
                    let torn = if end.tail == Tail::Torn {
                        torn_end(modes, r, n, end.end as u64)
                    } else if torn_header {
                        torn_end(modes, r, n + 1, 0)
                    } else {
                        Ok(())
                    };
                    if keep(out, torn).is_none() {
                        return;
                    }
                }
            }
            if !sealed {
                *out = Ok(Found::Log(Layout {
                    next_id: end.next_id,
                    end: end.end,
                    tail: end.tail,
                    torn_header,
                }));
                return;
            }
            end.next_id
        };
        if succ.kind != LogKind::Wal || succ.log_id != cur.log_id {
            *out = Err(Error::corrupt(n + 1, 0, Corruption::ForeignSegment));
            return;
        }
        if succ.first_id != next_id {
            *out = Err(Error::corrupt(n + 1, 0, Corruption::EntryIdGap));
            return;
        }
        *cur = *succ;
    }
}

/// The checks before the segment-by-segment pass of [`scan_log_dyn`]: the segments form
/// a contiguous run, the highest one may be a torn creation, a ring may drop a damaged
/// oldest one (noted in `report` if given). Writes the first segment's header to
/// `first_out`; returns what the pass has to read. Kept out of line so that its
/// temporaries are not on the stack while the pass scans segments. `scratch`: a header
/// slot of the caller's, free until the pass starts.
#[inline(never)]
fn scan_start<S, B>(
    st: &mut S,
    buf: &mut B,
    ring: bool,
    deliver: Option<&mut Deliver<'_, '_, S>>,
    first_out: &mut SegmentHeader,
    scratch: &mut SegmentHeader,
) -> Res<Start, S>
where
    S: Storage,
    B: Buffer,
{
    let Some((lo, hi, count)) = segment_span(st).map_err(Error::Storage)? else {
        return Ok(Start::Empty);
    };
    if count - 1 != hi - lo {
        let mut missing = lo;
        while missing <= hi && st.len(missing).is_ok() {
            missing += 1;
        }
        return Err(Error::corrupt(missing, 0, Corruption::MissingSegment));
    }
    let mut first = segment::read_header_into(st, lo, first_out)?;
    let mut lo = lo;
    let mut torn_header = false;
    let mut last_seg = hi;
    // The highest segment may be a torn creation; every other header must be valid.
    match segment::read_header_into(st, hi, scratch)? {
        true => {}
        false => {
            if hi > lo && !first && !ring {
                return Err(Error::corrupt(lo, 0, Corruption::BadSegmentHeader));
            }
            segment::check_torn_header(st, buf, hi, true)?;
            torn_header = true;
            if hi == lo {
                return Ok(Start::TornOnly(hi));
            }
            last_seg = hi - 1;
        }
    }
    if ring && lo < last_seg && !oldest_is_sound(st, buf, first.then_some(&*first_out), lo)? {
        // The overwrite of a full ring was cut while erasing its oldest segment.
        if let Some(d) = deliver {
            d.report.dropped_oldest = true;
        }
        lo += 1;
        first = segment::read_header_into(st, lo, first_out)?;
    }
    if !first {
        return Err(Error::corrupt(lo, 0, Corruption::BadSegmentHeader));
    }
    if first_out.kind != LogKind::Wal {
        return Err(Error::corrupt(lo, 0, Corruption::ForeignSegment));
    }
    if first_out.segment != lo {
        return Err(Error::corrupt(lo, 0, Corruption::SegmentNumberMismatch));
    }
    Ok(Start::Run(last_seg, torn_header))
}

/// What [`scan_start`] found.
enum Start {
    /// No segment.
    Empty,
    /// The only segment, this one, is a torn creation.
    TornOnly(u64),
    /// Segments up to this one have valid headers; whether a torn creation follows.
    Run(u64, bool),
}

/// Whether the oldest segment `lo` of a ring (not its final segment) has a valid header
/// and verifies up to its successor's seal; read without delivering anything.
fn oldest_is_sound<S: Storage, B: Buffer>(
    st: &mut S,
    buf: &mut B,
    header: Option<&SegmentHeader>,
    lo: u64,
) -> Res<bool, S> {
    let (Some(h), Some(succ)) = (header, segment::read_header(st, lo + 1)?) else {
        return Ok(header.is_some());
    };
    match segment::scan(
        st,
        buf,
        h,
        Bound::Sealed(succ.prev_end),
        u64::MAX,
        |_, _| Ok(()),
    ) {
        Ok(end) => Ok(end.next_id == succ.first_id),
        Err(Error::Corrupt { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a WAL. Streaming: entries are handed to a callback straight from the buffer.
pub struct WalReader<S, B> {
    st: S,
    buf: B,
    ring: bool,
}

impl<S: Storage, B: Buffer> WalReader<S, B> {
    /// A reader over `storage` that reads through `buf` (a larger buffer means fewer reads;
    /// it must hold the largest entry unless it can grow).
    pub fn new(storage: S, buf: B) -> Self {
        WalReader {
            st: storage,
            buf,
            ring: false,
        }
    }

    /// Reads the log as a ring ([`WalWriter::set_overwrite_oldest`]): a damaged oldest
    /// segment (a cut while the writer erased it to make room) is dropped and reported
    /// in [`ReplayReport::dropped_oldest`] instead of failing the replay.
    ///
    /// Needs the `ring` feature: builds without it (firmware that does not log in a
    /// ring) compile the ring paths out.
    #[cfg(feature = "ring")]
    pub fn set_overwrite_oldest(&mut self, on: bool) {
        self.ring = on;
    }

    /// Replays every entry in order, calling `f(entry_id, payload)`.
    ///
    /// Strict mode returns [`Error::TornTail`] if the final segment ends in a torn write,
    /// after delivering every entry before it; best-effort mode stops there and reports
    /// it in [`ReplayReport::torn_at`].
    pub fn replay<F>(&mut self, mode: ReadMode, f: F) -> Res<ReplayReport, S>
    where
        F: FnMut(u64, &[u8]) -> Res<(), S>,
    {
        self.replay_from(mode, 0, f)
    }

    /// Like [`replay`](Self::replay), delivering only entries with id `>= from_id`
    /// (earlier ones are still read and verified).
    pub fn replay_from<F>(&mut self, mode: ReadMode, from_id: u64, f: F) -> Res<ReplayReport, S>
    where
        F: FnMut(u64, &[u8]) -> Res<(), S>,
    {
        self.replay_scan(mode, from_id, 0, f)
    }

    /// Replays the entries after a checkpoint covering ids `..=covered_through`: like
    /// [`replay_from`](Self::replay_from) with `from_id = covered_through + 1`, except
    /// that segments holding only covered entries are not read at all (only their
    /// headers' chain is checked), so their content can neither slow down nor block
    /// recovery.
    pub fn replay_after<F>(
        &mut self,
        mode: ReadMode,
        covered_through: u64,
        f: F,
    ) -> Res<ReplayReport, S>
    where
        F: FnMut(u64, &[u8]) -> Res<(), S>,
    {
        let from = covered_through.saturating_add(1);
        self.replay_scan(mode, from, covered_through, f)
    }

    fn replay_scan<F>(
        &mut self,
        mode: ReadMode,
        from: u64,
        covered: u64,
        f: F,
    ) -> Res<ReplayReport, S>
    where
        F: FnMut(u64, &[u8]) -> Res<(), S>,
    {
        // Filled in the returned value itself: no report-sized copy on the way out.
        let mut r = Ok(ReplayReport::default());
        if let Ok(report) = &mut r {
            if let Err(e) = self.replay_into(mode, from, covered, report, f) {
                r = Err(e);
            }
        }
        r
    }

    /// [`replay_scan`](Self::replay_scan) filling the caller's `report` (which starts as
    /// [`ReplayReport::default`]), so that no copy of it is made on the way out.
    pub(crate) fn replay_into<F>(
        &mut self,
        mode: ReadMode,
        from: u64,
        covered: u64,
        report: &mut ReplayReport,
        f: F,
    ) -> Res<(), S>
    where
        F: FnMut(u64, &[u8]) -> Res<(), S>,
    {
        let rules = ScanRules {
            from_id: from,
            covered,
            modes: Modes {
                ring: ring_mode(self.ring),
                strict: mode == ReadMode::Strict,
            },
        };
        let mut slots = no_slots();
        let mut found = Ok(Found::Empty);
        scan_log(
            &mut found,
            &mut self.st,
            &mut self.buf,
            rules,
            Some(report),
            &mut slots,
            f,
        );
        found.map(|_| ())
    }

    /// Gives back the storage and buffer.
    pub fn into_parts(self) -> (S, B) {
        (self.st, self.buf)
    }
}

enum State {
    /// Constructed, storage not looked at yet; holds [`WalConfig::covered_through`],
    /// which only the open needs (kept beside the appender's niche: no handle space).
    Unopened(u64),
    Open(Appender),
    /// An I/O or sync error happened; nothing more is accepted.
    Poisoned,
}

/// Appends entries to a WAL. See the [module docs](self) for buffering and durability.
pub struct WalWriter<S, B> {
    st: S,
    buf: B,
    /// [`WalConfig::segment_limit`], capped at the address space (as [`limit`](Self::limit)
    /// caps it anyway): a `usize` keeps the handle one word smaller on 32-bit targets.
    segment_limit: usize,
    /// Ring mode: make room by removing the oldest segment when the medium is full.
    ring: bool,
    state: State,
    /// The log's identity: [`WalConfig::log_id`] until an existing log is opened.
    log_id: u64,
    /// The next entry id: [`WalConfig::first_id`] until an existing log is opened.
    next_id: u64,
}

impl<S: Storage, B: Buffer> WalWriter<S, B> {
    /// A writer that opens the log lazily, on its first operation: an existing log is
    /// resumed (never truncated or overwritten), an absent one created. No I/O here.
    pub fn new(storage: S, buf: B, cfg: WalConfig) -> Self {
        WalWriter {
            st: storage,
            buf,
            segment_limit: cap_to_usize(cfg.segment_limit),
            ring: false,
            state: State::Unopened(cfg.covered_through),
            log_id: cfg.log_id,
            next_id: cfg.first_id,
        }
    }

    /// Opens the log now: resumes an existing one (cutting a torn tail of its final
    /// segment by starting a new segment after it, so appends never follow garbage) or
    /// creates a new one. Corruption is an error and nothing is changed.
    pub fn open(storage: S, buf: B, cfg: WalConfig) -> Res<Self, S> {
        // Built in the returned value itself: no writer-sized copy on the stack.
        let mut r = Ok(Self::new(storage, buf, cfg));
        if let Ok(w) = &mut r {
            if let Err(e) = w.ensure_open() {
                r = Err(e);
            }
        }
        r
    }

    /// Id the next appended entry gets. Opens the log if needed.
    pub fn next_id(&mut self) -> Res<u64, S> {
        self.ensure_open()?;
        Ok(self.next_id)
    }

    /// Id of the last appended entry, `None` if none yet. Opens the log if needed.
    pub fn last_id(&mut self) -> Res<Option<u64>, S> {
        let next = self.next_id()?;
        Ok(next.checked_sub(1).filter(|&id| id > 0))
    }

    /// Whether an earlier failure poisoned this writer.
    pub fn is_poisoned(&self) -> bool {
        matches!(self.state, State::Poisoned)
    }

    /// The log's identity (known once open).
    pub fn log_id(&self) -> u64 {
        self.log_id
    }

    /// Number of the segment appends go to, once open.
    pub fn current_segment(&self) -> Option<u64> {
        match &self.state {
            State::Open(a) => Some(a.seg),
            _ => None,
        }
    }

    /// Ring-buffer mode for plain logging (off by default): when a new segment finds the
    /// medium full ([`StorageErrorKind::NoSpace`]), the oldest segment is removed
    /// (durably) to make room, dropping its entries, instead of failing. Without it a
    /// full medium is an error and room comes only from
    /// [`truncate_through`](Self::truncate_through) behind a checkpoint. Opening also
    /// drops a damaged oldest segment as [`WalReader::set_overwrite_oldest`] does; set
    /// this before the first operation.
    ///
    /// Needs the `ring` feature (see [`WalReader::set_overwrite_oldest`]).
    ///
    /// [`StorageErrorKind::NoSpace`]: crate::StorageErrorKind::NoSpace
    #[cfg(feature = "ring")]
    pub fn set_overwrite_oldest(&mut self, on: bool) {
        self.ring = on;
    }

    /// Changes the segment size limit for segments filled from now on.
    pub fn set_segment_limit(&mut self, bytes: u64) {
        self.segment_limit = cap_to_usize(bytes);
    }

    /// The storage, for inspection.
    pub fn storage(&mut self) -> &mut S {
        &mut self.st
    }

    /// Gives back the storage and buffer; staged bytes are discarded (flush first).
    pub fn into_parts(self) -> (S, B) {
        (self.st, self.buf)
    }

    fn ensure_open(&mut self) -> Res<(), S> {
        match self.state {
            State::Open(_) => Ok(()),
            State::Poisoned => Err(Error::Poisoned),
            State::Unopened(covered_through) => {
                // Poisoned unless the open succeeds (`open_log` installs the appender
                // last): its result is then returned as it is, with no copy kept here.
                self.state = State::Poisoned;
                self.open_log(covered_through)
            }
        }
    }

    fn align_log2(&self) -> Res<u8, S> {
        let ws = self.st.write_size();
        if !ws.is_power_of_two() || ws > crate::frame::MAX_ALIGN {
            return Err(Error::InvalidConfig(
                "write size must be a power of two up to 32",
            ));
        }
        Ok(ws.trailing_zeros() as u8)
    }

    /// Opens or creates the log, skipping the reads of segments covered through
    /// `covered_through` ([`WalConfig::covered_through`]); on success the state is
    /// [`State::Open`].
    fn open_log(&mut self, covered_through: u64) -> Res<(), S> {
        let align_log2 = self.align_log2()?;
        if !self.buf.grow_to(MIN_WRITE_BUFFER) {
            return Err(Error::BufferTooSmall {
                needed: MIN_WRITE_BUFFER as u64,
            });
        }
        if self.next_id == 0 {
            return Err(Error::InvalidConfig("entry ids start at 1 or later"));
        }
        let rules = ScanRules {
            from_id: u64::MAX,
            covered: covered_through,
            modes: Modes {
                ring: ring_mode(self.ring),
                strict: false,
            },
        };
        let mut slots = no_slots();
        // The result slot's scope ends here: later results reuse its stack space.
        let found = {
            let mut found = Ok(Found::Empty);
            scan_log(
                &mut found,
                &mut self.st,
                &mut self.buf,
                rules,
                None,
                &mut slots,
                |_, _| Ok(()),
            );
            found?
        };
        let last = &mut slots[0];
        match found {
            Found::Empty | Found::TornOnly(_) => {
                // No valid segment: a new log (or one whose only segment is a torn
                // creation, which `create` replaces). No segment exists then, so
                // `create_segment` is `Appender::create` (ring mode finds nothing to
                // remove), through the one place that installs the appender. Every
                // field of the slot is set (a failed scan leaves it unspecified).
                let seg = match found {
                    Found::TornOnly(seg) => {
                        remove_torn_creation(&mut self.st, seg)?;
                        seg
                    }
                    _ => FIRST_SEGMENT,
                };
                last.kind = LogKind::Wal;
                last.log_id = self.log_id;
                last.segment = seg;
                last.prev_end = 0;
                last.form = new_log_form(&self.st);
            }
            Found::Log(layout) => {
                self.log_id = last.log_id;
                self.next_id = layout.next_id;
                let room = (layout.end as u64) < self.limit(last.data_start());
                if !layout.torn_header
                    && layout.tail == Tail::Clean
                    && self.st.resume_in_place()
                    && room
                {
                    let mut app = Appender::resume(last, layout.end);
                    app.has_entries = layout.next_id > last.first_id;
                    self.state = State::Open(app);
                    return Ok(());
                }
                // Seal the last valid segment where its valid data ends and start the
                // next one (replacing a torn creation). Its prefix must be durable before
                // a successor header claims where it ends.
                self.st.sync(last.segment).map_err(Error::Storage)?;
                if layout.torn_header {
                    remove_torn_creation(&mut self.st, last.segment + 1)?;
                }
                // The successor's header, in the same slot: a WAL segment (the scan
                // checked) of the same log, keeping the frame form it was created with.
                last.segment = next_segment(last.segment)?;
                last.prev_end = layout.end as u64;
            }
        }
        last.align_log2 = align_log2;
        last.first_id = self.next_id;
        self.create_segment(last)
    }

    /// Creates the next segment and appends to it from now on; in ring mode, removes the
    /// oldest ones (never the one before `hdr`) while the medium is full.
    fn create_segment(&mut self, hdr: &SegmentHeader) -> Res<(), S> {
        loop {
            match Appender::create(&mut self.st, hdr) {
                Ok(app) => {
                    self.state = State::Open(app);
                    return Ok(());
                }
                Err(Error::Storage(e))
                    if ring_mode(self.ring) && e.kind() == StorageErrorKind::NoSpace =>
                {
                    let lo = segment_span(&mut self.st).map_err(Error::Storage)?;
                    match lo {
                        Some((lo, _, _)) if lo + 1 < hdr.segment => {
                            self.st.remove(lo).map_err(Error::Storage)?
                        }
                        _ => return Err(Error::Storage(e)),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Effective segment limit: the configured one capped by the medium's and by the
    /// address space (segment offsets are `usize`; a reader refuses larger segments).
    fn limit(&self, data_start: u64) -> u64 {
        let cfg = (self.segment_limit as u64).max(data_start + 1);
        let cfg = cfg.min(usize::MAX as u64);
        self.st.max_segment_len().map_or(cfg, |m| cfg.min(m))
    }

    /// Appends one entry; returns its id. The entry is staged, not yet durable.
    pub fn append(&mut self, payload: &[u8]) -> Res<u64, S> {
        if payload.len() > MAX_ENTRY_LEN as usize {
            return Err(Error::EntryTooLarge {
                len: payload.len() as u64,
                max: MAX_ENTRY_LEN as u64,
            });
        }
        self.ensure_open()?;
        let r = self.append_open(payload);
        self.poison_on_storage_error(r)
    }

    fn append_open(&mut self, payload: &[u8]) -> Res<u64, S> {
        let id = self.claim_id()?;
        let (keep_marker, rotate) = self.placement(payload.len())?;
        if rotate {
            self.rotate()?;
        }
        let State::Open(app) = &mut self.state else {
            return Err(Error::Poisoned);
        };
        if !keep_marker {
            app.marker_due = false;
        }
        app.stage_marker(&mut self.st, &mut self.buf, id, self.log_id)?;
        app.append(&mut self.st, &mut self.buf, id, payload)?;
        self.next_id += 1;
        Ok(id)
    }

    /// The id the next entry gets, refusing the last one `u64` can hold (its successor
    /// could not be represented).
    fn claim_id(&self) -> Res<u64, S> {
        if self.next_id == u64::MAX {
            return Err(Error::InvalidConfig("entry ids exhausted"));
        }
        Ok(self.next_id)
    }

    /// Where an entry frame with a `payload_len`-byte payload goes: whether the due sync
    /// marker stays in front of it, and whether the segment must rotate first. The
    /// marker is optional (the seal of a rotation proves the same), so it never pushes a
    /// segment over its limit. Refuses an entry too large for the log's frame form or
    /// for a segment of the medium.
    fn placement(&self, payload_len: usize) -> Res<(bool, bool), S> {
        let State::Open(app) = &self.state else {
            return Err(Error::Poisoned);
        };
        let form = app.form();
        let too_large = |max: u64| Error::EntryTooLarge {
            len: payload_len as u64,
            max,
        };
        if payload_len > form.max_entry_len() as usize {
            return Err(too_large(form.max_entry_len() as u64));
        }
        let total = app.frame_len(payload_len);
        let data_start = crate::frame::data_start(app.align());
        if let Some(max) = self.st.max_segment_len() {
            if data_start + total > max {
                return Err(too_large(
                    max.saturating_sub(data_start + form.head_len() as u64),
                ));
            }
        }
        // In `usize` (the limit is capped at the address space, see `limit`): the sum
        // is checked instead of carried in `u64` registers on 32-bit targets.
        let limit = self.limit(data_start) as usize;
        let room = app
            .end()
            .checked_add(app.due_marker_len(&self.st) as usize)
            .and_then(|e| e.checked_add(total as usize))
            .is_some_and(|e| e <= limit);
        if room {
            Ok((true, false))
        } else {
            // Rotate unless this would leave a segment without entries; either way
            // the marker goes.
            Ok((false, app.has_entries))
        }
    }

    /// Appends an entry that `encode` serializes straight into the write buffer
    /// (`encode` returns the length written, or `None` if the space is too small).
    /// Returns `Ok(None)` without changing anything if it does not fit an empty buffer.
    pub fn append_with<F>(&mut self, encode: F) -> Res<Option<u64>, S>
    where
        F: FnMut(&mut [u8]) -> Option<usize>,
    {
        self.ensure_open()?;
        let r = self.append_with_open(encode);
        self.poison_on_storage_error(r)
    }

    fn append_with_open<F>(&mut self, encode: F) -> Res<Option<u64>, S>
    where
        F: FnMut(&mut [u8]) -> Option<usize>,
    {
        let id = self.claim_id()?;
        let State::Open(app) = &mut self.state else {
            return Err(Error::Poisoned);
        };
        let want = app.due_marker_len(&self.st) as usize;
        let Some((total, reserve, payload_len)) =
            app.stage_with(&mut self.st, &mut self.buf, id, want, encode)?
        else {
            return Ok(None);
        };
        let from = app.fill + reserve;
        let (keep_marker, rotate) = self.placement(payload_len)?;
        if rotate {
            self.rotate()?;
            let State::Open(app) = &mut self.state else {
                return Err(Error::Poisoned);
            };
            app.flush(&mut self.st, &mut self.buf)?;
            app.adopt(self.buf.bytes_mut(), from, total, id);
        } else {
            let State::Open(app) = &mut self.state else {
                return Err(Error::Poisoned);
            };
            let log_id = self.log_id;
            app.commit(
                self.buf.bytes_mut(),
                reserve,
                total,
                id,
                log_id,
                keep_marker,
            );
        }
        self.next_id += 1;
        Ok(Some(id))
    }

    /// Seals the current segment (durably) and starts the next one.
    fn rotate(&mut self) -> Res<(), S> {
        let State::Open(app) = &mut self.state else {
            return Err(Error::Poisoned);
        };
        app.flush(&mut self.st, &mut self.buf)?;
        if app.written > app.durable {
            self.st.sync(app.seg).map_err(Error::Storage)?;
        }
        let hdr = SegmentHeader {
            kind: LogKind::Wal,
            align_log2: app.align().trailing_zeros() as u8,
            log_id: self.log_id,
            segment: next_segment(app.seg)?,
            first_id: self.next_id,
            prev_end: app.written as u64,
            form: app.form(),
        };
        self.create_segment(&hdr)
    }

    /// Hands every staged entry to storage. Not a barrier: on files the bytes may still
    /// be in the page cache.
    pub fn flush(&mut self) -> Res<(), S> {
        self.ensure_open()?;
        let State::Open(app) = &mut self.state else {
            return Err(Error::Poisoned);
        };
        let r = app.flush(&mut self.st, &mut self.buf);
        self.poison_on_storage_error(r)
    }

    /// Flushes and runs a barrier: on `Ok`, every entry appended so far is durable.
    /// On error the writer is poisoned and nothing after the previous successful
    /// barrier may be assumed durable.
    pub fn sync(&mut self) -> Res<(), S> {
        self.ensure_open()?;
        let State::Open(app) = &mut self.state else {
            return Err(Error::Poisoned);
        };
        let r = app.sync(&mut self.st, &mut self.buf).map(|_| ());
        self.poison_on_storage_error(r)
    }

    fn poison_on_storage_error<T>(&mut self, r: Res<T, S>) -> Res<T, S> {
        if let Err(Error::Storage(_)) = &r {
            self.state = State::Poisoned;
        }
        r
    }
}

impl<S: Storage, B: Buffer> WalWriter<S, B> {
    /// Appends a postcard-encoded entry, serialized straight into the write buffer.
    /// Without `alloc`, an entry larger than the buffer is [`Error::BufferTooSmall`].
    pub fn append_postcard<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Res<u64, S> {
        if let Some(id) =
            self.append_with(|buf| postcard::to_slice(value, buf).ok().map(|s| s.len()))?
        {
            return Ok(id);
        }
        #[cfg(feature = "alloc")]
        {
            let bytes = postcard::to_allocvec(value).map_err(|_| Error::Encode)?;
            self.append(&bytes)
        }
        #[cfg(not(feature = "alloc"))]
        {
            let needed =
                postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
                    .map_err(|_| Error::Encode)?;
            Err(Error::BufferTooSmall {
                needed: (needed + crate::frame::frame_header::HEADER_LEN) as u64,
            })
        }
    }
}

impl<S: Storage, B: Buffer> WalReader<S, B> {
    /// Replays postcard-encoded entries, decoding each into `T`.
    pub fn replay_postcard<T, F>(&mut self, mode: ReadMode, mut f: F) -> Res<ReplayReport, S>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut(u64, T) -> Res<(), S>,
    {
        self.replay(mode, |id, bytes| {
            let value = postcard::from_bytes(bytes).map_err(|_| Error::Decode { entry_id: id })?;
            f(id, value)
        })
    }

    /// Every entry as `(id, bytes)`.
    #[cfg(feature = "alloc")]
    pub fn replay_to_vec(
        &mut self,
        mode: ReadMode,
    ) -> Res<alloc::vec::Vec<(u64, alloc::vec::Vec<u8>)>, S> {
        let mut out = alloc::vec::Vec::new();
        self.replay(mode, |id, bytes| {
            out.push((id, bytes.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }
}

/// Removes a segment whose creation was torn, durably, before its number is used again.
///
/// Recreating it in place is not enough: `create` is not durable, so a crash could keep
/// the old frames under a new header identical to the old one (same log, number, first
/// id and seal), and entries a recovery already reported lost would validate again.
pub(crate) fn remove_torn_creation<S: Storage>(st: &mut S, segment: u64) -> Res<(), S> {
    st.remove(segment).map_err(Error::Storage)
}

/// `n`, or `usize::MAX` if it does not fit.
fn cap_to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Whether ring mode is on: always `false` without the `ring` feature, so that its
/// paths fold away.
fn ring_mode(flag: bool) -> bool {
    cfg!(feature = "ring") && flag
}

/// The frame form of a log created now on `st`.
pub(crate) fn new_log_form<S: Storage>(st: &S) -> FrameForm {
    if st.short_frames() {
        FrameForm::Short
    } else {
        FrameForm::Long
    }
}

fn next_segment<E>(segment: u64) -> Result<u64, Error<E>> {
    segment
        .checked_add(1)
        .ok_or(Error::InvalidConfig("segment numbers exhausted"))
}

/// The header of the lowest segment, if the log has a readable one.
pub fn first_segment_header<S: Storage>(st: &mut S) -> Res<Option<SegmentHeader>, S> {
    let mut h = NO_HEADER;
    Ok(first_segment_header_into(st, &mut h)?.then_some(h))
}

/// [`first_segment_header`] into the caller's slot; returns whether it holds one.
pub(crate) fn first_segment_header_into<S: Storage>(
    st: &mut S,
    out: &mut SegmentHeader,
) -> Res<bool, S> {
    match segment_span(st).map_err(Error::Storage)? {
        None => Ok(false),
        Some((lo, _, _)) => segment::read_header_into(st, lo, out),
    }
}

impl<S: Storage, B: Buffer> WalWriter<S, B> {
    /// Checks that a checkpoint of the state after entry `last_id` fits this log: not
    /// beyond the last id assigned ([`Error::CheckpointAhead`]) and not older than the
    /// first entry the log still holds ([`Error::WalGap`]: the entries between would be
    /// in neither).
    pub fn check_checkpoint(&mut self, last_id: u64) -> Res<(), S> {
        let next = self.next_id()?;
        if last_id >= next {
            return Err(Error::CheckpointAhead {
                checkpoint_last_id: last_id,
                wal_next_id: next,
            });
        }
        let mut first = NO_HEADER;
        if first_segment_header_into(&mut self.st, &mut first)?
            && last_id.saturating_add(1) < first.first_id
        {
            return Err(Error::WalGap {
                needed: last_id + 1,
                first_available: first.first_id,
            });
        }
        Ok(())
    }

    /// Removes, oldest first, every segment whose entries all have ids `<= last_id`,
    /// never the segment appends go to. Returns how many were removed. Each removal is
    /// durable when it returns, and the remaining segments always form a contiguous
    /// suffix of the log, whatever the moment of a crash.
    ///
    /// Only call this once a durable checkpoint covers `last_id`.
    pub fn truncate_through(&mut self, last_id: u64) -> Res<u64, S> {
        self.ensure_open()?;
        let r = self.truncate_open(last_id);
        self.poison_on_storage_error(r)
    }

    fn truncate_open(&mut self, last_id: u64) -> Res<u64, S> {
        let State::Open(app) = &self.state else {
            return Err(Error::Poisoned);
        };
        let current = app.seg;
        let Some((lo, _, _)) = segment_span(&mut self.st).map_err(Error::Storage)? else {
            return Ok(0);
        };
        let mut seg = lo;
        let mut next = NO_HEADER;
        let through = last_id.saturating_add(1);
        // Segment `seg` ends where `seg + 1` begins.
        while seg < current
            && segment::read_header_into(&mut self.st, seg + 1, &mut next)?
            && next.first_id <= through
        {
            self.st.remove(seg).map_err(Error::Storage)?;
            seg += 1;
        }
        // Every segment from `lo` up to `seg` was removed.
        Ok(seg - lo)
    }
}
