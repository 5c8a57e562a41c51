//! One conformance suite for every [`Storage`] backend (feature `conformance`, for
//! tests only).
//!
//! The checks are written once, over a [`Medium`]: something that holds a WAL area and
//! a checkpoint area and can *mount* them as fresh storage objects, built from what
//! the medium holds and nothing cached (a file directory, an in-memory directory, a
//! flash image, or simply a `MemStorage` lent out again). Each backend's test crate
//! implements `Medium` in a few lines and calls [`run_all`] with a factory of empty
//! media; every check gets a fresh one.
//!
//! What is checked (one public function each, so a failing check can be run alone):
//!
//! | check                      | what                                                                   |
//! |----------------------------|------------------------------------------------------------------------|
//! | [`storage_contract`]       | create/list/len/read/write alignment/sync/truncate/remove; unwritten space reads as `unwritten_byte`; the segment size limit |
//! | [`storage_remount`]        | a segment carrying a core header survives a remount, and its removal too |
//! | [`wal_append_replay`]      | entries of many sizes, synced in groups, replay exactly after a remount |
//! | [`wal_resume`]             | reopen with and without appends: ids continue, nothing lost            |
//! | [`wal_rotate`]             | a small segment limit: contiguous segments, none over the limit        |
//! | [`wal_truncate_through`]   | removal of covered segments, the suffix replays, appends continue      |
//! | [`wal_torn_tail`]          | a write torn at every write of a workload (prefix, or prefix plus a garbage word): every synced entry survives, no phantom, ids contiguous after resume |
//! | [`checkpoint_store`]       | write/latest/retain across remounts; a checkpoint cut at any call is skipped |
//! | [`record_log`]             | the single-segment record log: round trip, reopen (or its clean refusal where the medium cannot resume in place), a cut at every call |
//! | [`lifecycle_publish_recover`] | appends, syncs and publishes with a cut at every mutating call of both areas: recovery keeps every acknowledged entry, no phantom, and a resumed writer publishes again |
//!
//! Failures panic with the check's name and the detail: this module is test support,
//! not library code.
//!
//! Writes are torn by the [`Tear`] wrapper, which needs nothing from the backend: on
//! the chosen write it hands the backend only a word-aligned prefix of the data (and
//! optionally one garbage word after it), then "loses power": every later mutating
//! call is dropped. The bytes the backend received stay as they are, which is what a
//! crash leaves on every medium (on files: the live state a process crash leaves).

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use crate::checkpoint::CheckpointStore;
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::frame::{header, LogKind, SegmentHeader};
use crate::storage::{ErrorType, Storage};
use crate::wal::{ReplayReport, WalConfig, WalReader, WalWriter};
use crate::ReadMode;

/// A medium the suite can mount again and again.
pub trait Medium {
    /// The storage a mount gives.
    type Storage<'a>: Storage
    where
        Self: 'a;

    /// Mounts the WAL area and the checkpoint area (two independent storages) as they
    /// are now, as fresh objects.
    fn mount(&mut self) -> (Self::Storage<'_>, Self::Storage<'_>);
}

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: [&str; 10] = [
    "storage_contract",
    "storage_remount",
    "wal_append_replay",
    "wal_resume",
    "wal_rotate",
    "wal_truncate_through",
    "wal_torn_tail",
    "checkpoint_store",
    "record_log",
    "lifecycle_publish_recover",
];

/// Runs every check, each on a fresh medium from `fresh` (which must give an empty
/// one). Returns the number of checks run.
pub fn run_all<M: Medium>(mut fresh: impl FnMut() -> M) -> usize {
    let checks: [fn(&mut M); 10] = [
        storage_contract,
        storage_remount,
        wal_append_replay,
        wal_resume,
        wal_rotate,
        wal_truncate_through,
        wal_torn_tail,
        checkpoint_store,
        record_log,
        lifecycle_publish_recover,
    ];
    for check in checks {
        check(&mut fresh());
    }
    checks.len()
}

fn wal<M: Medium>(m: &mut M) -> M::Storage<'_> {
    m.mount().0
}

fn listed<S: Storage>(st: &mut S) -> Vec<u64> {
    let mut v = Vec::new();
    st.list(&mut |n| v.push(n)).expect("list");
    v.sort_unstable();
    v
}

/// The whole readable extent of a segment.
fn read_all<S: Storage>(st: &mut S, segment: u64) -> Vec<u8> {
    let len = st.len(segment).expect("len") as usize;
    let mut buf = vec![0u8; len + 7];
    let n = st.read(segment, 0, &mut buf).expect("read");
    assert_eq!(
        n, len,
        "read of the whole extent returns exactly len() bytes"
    );
    buf.truncate(n);
    buf
}

/// `n` bytes that are never the unwritten byte and differ per `seed`.
fn pattern(seed: u8, n: usize, unwritten: u8) -> Vec<u8> {
    (0..n)
        .map(|k| {
            let b = seed.wrapping_mul(31).wrapping_add((k * 7) as u8);
            if b == unwritten {
                b ^ 0x55
            } else {
                b
            }
        })
        .collect()
}

fn assert_not_found<T: core::fmt::Debug, E: StorageError>(r: Result<T, E>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), StorageErrorKind::NotFound, "{what}: {e:?}"),
        Ok(v) => panic!("{what}: expected NotFound, got Ok({v:?})"),
    }
}

/// The [`Storage`] contract on one mount: see the [module docs](self).
pub fn storage_contract<M: Medium>(m: &mut M) {
    let mut st = wal(m);
    let ws = st.write_size();
    let un = st.unwritten_byte();
    assert!(
        ws.is_power_of_two() && ws <= 32,
        "storage_contract: write size {ws}"
    );
    assert!(listed(&mut st).is_empty(), "storage_contract: fresh medium");
    assert_not_found(st.len(3), "storage_contract: len of a missing segment");
    assert_not_found(
        st.read(3, 0, &mut [0u8; 4]),
        "storage_contract: read of a missing segment",
    );
    assert!(st.write(3, 0, &vec![0; ws]).is_err(), "write to missing");
    assert!(
        st.sync(3).is_err(),
        "storage_contract: sync of a missing segment"
    );

    // Create two, write in pieces, read back at any offset.
    st.create(1).unwrap();
    st.create(5).unwrap();
    assert_eq!(listed(&mut st), [1, 5], "storage_contract: list");
    let empty = read_all(&mut st, 1);
    assert!(
        empty.iter().all(|&b| b == un),
        "storage_contract: a new segment reads as unwritten bytes"
    );
    let a = pattern(1, 3 * ws.max(8), un);
    let b = pattern(2, 5 * ws.max(8), un);
    st.write(1, 0, &a).unwrap();
    st.write(1, a.len() as u64, &b).unwrap();
    st.write(5, 0, &b).unwrap();
    st.sync(1).unwrap();
    st.sync(5).unwrap();
    let data: Vec<u8> = a.iter().chain(&b).copied().collect();
    let all = read_all(&mut st, 1);
    assert!(
        all.len() >= data.len(),
        "storage_contract: len covers writes"
    );
    assert_eq!(&all[..data.len()], &data[..], "storage_contract: read back");
    assert!(
        all[data.len()..].iter().all(|&b| b == un),
        "storage_contract: space after the data reads as {un:#04x}"
    );
    for (off, len) in [(1usize, 5usize), (3, 1), (ws + 1, 2 * ws + 3), (0, 1)] {
        let mut buf = vec![0u8; len];
        assert_eq!(st.read(1, off as u64, &mut buf).unwrap(), len);
        assert_eq!(buf, data[off..off + len], "storage_contract: read at {off}");
    }
    let len1 = st.len(1).unwrap();
    assert_eq!(
        st.read(1, len1, &mut [0u8; 4]).unwrap(),
        0,
        "storage_contract: read at the end of the extent"
    );
    assert_eq!(&read_all(&mut st, 5)[..b.len()], &b[..]);

    // Alignment is checked, and a refused write changes nothing.
    let end = data.len() as u64;
    if ws > 1 {
        assert!(
            st.write(1, end, &vec![0u8; ws + 1]).is_err(),
            "storage_contract: a write of a length not a multiple of {ws} is refused"
        );
        assert!(
            st.write(1, end + 1, &vec![0u8; ws]).is_err(),
            "storage_contract: a write at an offset not a multiple of {ws} is refused"
        );
    }
    let c = pattern(3, ws, un);
    st.write(1, end, &c).unwrap();
    assert_eq!(
        &read_all(&mut st, 1)[..data.len() + ws],
        &[&data[..], &c[..]].concat()[..],
        "storage_contract: after refused writes"
    );

    // Truncation: either supported (shrinks) or Unsupported.
    match st.truncate(5, ws as u64) {
        Ok(()) => {
            st.sync(5).unwrap();
            assert_eq!(st.len(5).unwrap(), ws as u64, "storage_contract: truncate");
            st.write(5, ws as u64, &c).unwrap();
            assert_eq!(
                &read_all(&mut st, 5)[..2 * ws],
                &[&b[..ws], &c[..]].concat()[..]
            );
        }
        Err(e) => assert_eq!(e.kind(), StorageErrorKind::Unsupported, "truncate: {e:?}"),
    }

    // Create replaces; remove removes.
    st.create(1).unwrap();
    assert!(
        read_all(&mut st, 1).iter().all(|&b| b == un),
        "storage_contract: create replaces the old content"
    );
    st.remove(5).unwrap();
    assert_eq!(listed(&mut st), [1], "storage_contract: remove");
    assert_not_found(st.len(5), "storage_contract: len after remove");
    assert!(st.remove(5).is_err(), "storage_contract: remove twice");
    st.create(5).unwrap();
    assert_eq!(listed(&mut st), [1, 5]);

    // The segment size limit, if the medium has one: reachable exactly, not beyond.
    if let Some(max) = st.max_segment_len() {
        st.create(9).unwrap();
        let chunk = pattern(9, 64usize.max(ws), un);
        let mut off = 0u64;
        while off < max {
            let n = (chunk.len() as u64).min(max - off) as usize;
            st.write(9, off, &chunk[..n]).unwrap();
            off += n as u64;
        }
        assert!(
            st.write(9, max, &chunk[..ws]).is_err(),
            "storage_contract: a write past max_segment_len is refused"
        );
        assert!(st.len(9).unwrap() <= max);
    }
}

/// A segment whose first bytes are a core header is found again by a fresh mount.
pub fn storage_remount<M: Medium>(m: &mut M) {
    let ws;
    let mut head = Vec::new();
    {
        let mut st = wal(m);
        ws = st.write_size();
        let mut h = [0u8; header::LEN];
        SegmentHeader {
            kind: LogKind::Wal,
            align_log2: ws.trailing_zeros() as u8,
            log_id: 0xC0FF_EE00,
            segment: 7,
            first_id: 1,
            prev_end: 0,
            form: crate::wal::new_log_form(&st),
        }
        .emit(&mut h);
        head.extend_from_slice(&h);
        head.resize(header::LEN.div_ceil(ws) * ws, 0);
        st.create(7).unwrap();
        st.write(7, 0, &head).unwrap();
        st.sync(7).unwrap();
    }
    let mut st = wal(m);
    assert_eq!(
        listed(&mut st),
        [7],
        "storage_remount: listed after remount"
    );
    assert_eq!(&read_all(&mut st, 7)[..head.len()], &head[..]);
    st.remove(7).unwrap();
    drop(st);
    let mut st = wal(m);
    assert!(
        listed(&mut st).is_empty(),
        "storage_remount: a removal survives a remount"
    );
}

// ---------------------------------------------------------------------------------------
// WAL checks.

const LOG_ID: u64 = 0x5EED_C0DE;

/// Entry sizes, cycled; the largest frame (8 + 200) fits a 256-byte buffer and a
/// 512-byte flash unit with 32-byte words.
const SIZES: [usize; 12] = [0, 1, 7, 31, 33, 64, 100, 150, 200, 17, 3, 96];

/// Payload of entry `id`.
pub fn payload(id: u64) -> Vec<u8> {
    let len = SIZES[id as usize % SIZES.len()];
    (0..len)
        .map(|k| ((id as usize * 31 + k * 7) % 251) as u8)
        .collect()
}

type Entries = Vec<(u64, Vec<u8>)>;

fn expected(ids: core::ops::RangeInclusive<u64>) -> Entries {
    ids.map(|id| (id, payload(id))).collect()
}

fn cfg(limit: u64) -> WalConfig {
    WalConfig {
        segment_limit: limit,
        ..WalConfig::new(LOG_ID)
    }
}

type Res<T, S> = Result<T, Error<<S as ErrorType>::Error>>;

fn replay<S: Storage>(st: S, mode: ReadMode) -> Res<(Entries, ReplayReport), S> {
    let mut out = Vec::new();
    let report = WalReader::new(st, vec![0u8; 512]).replay(mode, |id, p| {
        out.push((id, p.to_vec()));
        Ok(())
    })?;
    Ok((out, report))
}

fn replay_ok<S: Storage>(st: S, what: &str) -> (Entries, ReplayReport) {
    match replay(st, ReadMode::Strict) {
        Ok(r) => r,
        Err(e) => panic!("{what}: strict replay failed: {e:?}"),
    }
}

/// Appends `ids`, syncing after every `every`-th and at the end.
fn append_ids<S: Storage>(
    w: &mut WalWriter<S, Vec<u8>>,
    ids: core::ops::RangeInclusive<u64>,
    every: u64,
) {
    for id in ids {
        assert_eq!(w.append(&payload(id)).unwrap(), id, "append id");
        if id % every == 0 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
}

fn open<S: Storage>(st: S, limit: u64) -> WalWriter<S, Vec<u8>> {
    match WalWriter::open(st, vec![0u8; 256], cfg(limit)) {
        Ok(w) => w,
        Err(e) => panic!("open failed: {e:?}"),
    }
}

/// Entries of many sizes, synced in groups, replay exactly after a remount.
pub fn wal_append_replay<M: Medium>(m: &mut M) {
    let (got, report) = replay_ok(wal(m), "wal_append_replay: empty");
    assert!(got.is_empty());
    assert_eq!(
        (report.segments, report.entries, report.first_id),
        (0, 0, None)
    );
    {
        let mut w = open(wal(m), u64::MAX);
        assert_eq!(w.next_id().unwrap(), 1);
        append_ids(&mut w, 1..=50, 4);
        assert_eq!(w.last_id().unwrap(), Some(50));
    }
    let (got, report) = replay_ok(wal(m), "wal_append_replay");
    assert_eq!(got, expected(1..=50), "wal_append_replay: entries");
    assert_eq!(report.entries, 50);
    assert_eq!(report.first_id, Some(1));
    assert_eq!(report.next_id, 51);
    assert_eq!(report.torn_at, None);
    assert_eq!(
        report.payload_bytes,
        (1..=50).map(|id| payload(id).len() as u64).sum::<u64>()
    );
    // Best effort agrees on a clean log; replay_from skips delivery only.
    assert_eq!(replay(wal(m), ReadMode::BestEffort).unwrap().0, got);
    let mut from = Vec::new();
    WalReader::new(wal(m), vec![0u8; 512])
        .replay_from(ReadMode::Strict, 31, |id, _| {
            from.push(id);
            Ok(())
        })
        .unwrap();
    assert_eq!(from, (31..=50).collect::<Vec<_>>());
}

/// Reopen with and without appends: ids continue and nothing is lost.
pub fn wal_resume<M: Medium>(m: &mut M) {
    {
        let mut w = open(wal(m), u64::MAX);
        append_ids(&mut w, 1..=20, 3);
    }
    // Reopen without appending, twice.
    for _ in 0..2 {
        let mut w = open(wal(m), u64::MAX);
        assert_eq!(w.next_id().unwrap(), 21, "wal_resume: next id");
        assert_eq!(w.log_id(), LOG_ID, "wal_resume: the log keeps its id");
    }
    for round in 0..3u64 {
        let first = 21 + round * 10;
        let mut w = open(wal(m), u64::MAX);
        assert_eq!(w.next_id().unwrap(), first);
        append_ids(&mut w, first..=first + 9, 4);
    }
    let (got, report) = replay_ok(wal(m), "wal_resume");
    assert_eq!(got, expected(1..=50), "wal_resume: entries");
    assert_eq!(report.next_id, 51);
    // A reopened writer over a different configured id keeps the log's own.
    let w = WalWriter::open(wal(m), vec![0u8; 256], WalConfig::new(LOG_ID ^ 1)).unwrap();
    assert_eq!(w.log_id(), LOG_ID);
}

/// A small segment limit: several contiguous segments, none over the limit.
pub fn wal_rotate<M: Medium>(m: &mut M) {
    let limit = 400;
    let last_seg = {
        let mut w = open(wal(m), limit);
        append_ids(&mut w, 1..=60, 5);
        w.current_segment().unwrap()
    };
    let mut st = wal(m);
    let segs = listed(&mut st);
    assert!(segs.len() >= 8, "wal_rotate: only {} segments", segs.len());
    assert_eq!(
        segs,
        (1..=last_seg).collect::<Vec<_>>(),
        "wal_rotate: contiguous segments"
    );
    let un = st.unwritten_byte();
    for &s in &segs {
        let bytes = read_all(&mut st, s);
        let used = bytes.iter().rposition(|&b| b != un).map_or(0, |p| p + 1);
        assert!(
            used as u64 <= limit,
            "wal_rotate: segment {s} holds {used} bytes, limit {limit}"
        );
    }
    let (got, report) = replay_ok(st, "wal_rotate");
    assert_eq!(got, expected(1..=60));
    assert_eq!(report.segments, last_seg);
    // Resume rotates on.
    {
        let mut w = open(wal(m), limit);
        append_ids(&mut w, 61..=80, 5);
    }
    assert_eq!(replay_ok(wal(m), "wal_rotate: resumed").0, expected(1..=80));
}

/// Removal of covered segments: the rest replays, appends continue, ids stay.
pub fn wal_truncate_through<M: Medium>(m: &mut M) {
    let limit = 400;
    {
        let mut w = open(wal(m), limit);
        append_ids(&mut w, 1..=60, 5);
        assert_eq!(w.truncate_through(0).unwrap(), 0, "nothing is covered by 0");
        let removed = w.truncate_through(30).unwrap();
        assert!(removed > 0, "wal_truncate_through: nothing removed");
        // Idempotent, and never the segment being appended to.
        assert_eq!(w.truncate_through(30).unwrap(), 0);
        let all = w.truncate_through(u64::MAX).unwrap();
        assert!(all > 0);
        let mut segs = Vec::new();
        w.storage().list(&mut |n| segs.push(n)).unwrap();
        assert_eq!(
            segs,
            [w.current_segment().unwrap()],
            "only the current segment"
        );
        append_ids(&mut w, 61..=70, 5);
    }
    let (got, report) = replay_ok(wal(m), "wal_truncate_through");
    let first = report.first_id.expect("a first id");
    assert!((2..=61).contains(&first), "first id {first}");
    assert_eq!(got, expected(first..=70), "wal_truncate_through: a suffix");
    // Resume after truncation keeps the ids.
    {
        let mut w = open(wal(m), limit);
        assert_eq!(w.next_id().unwrap(), 71);
        append_ids(&mut w, 71..=75, 5);
        let removed = w.truncate_through(70).unwrap();
        assert!(removed > 0);
    }
    let (got, report) = replay_ok(wal(m), "wal_truncate_through: again");
    let first = report.first_id.unwrap();
    assert_eq!(got, expected(first..=75));
    assert!(first <= 71);
}

/// What [`Tear`] leaves at the torn write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearMode {
    /// A word-aligned prefix of the data (possibly empty).
    Prefix,
    /// The prefix, then one word of garbage where the data would go on.
    PrefixGarbage,
}

/// The power supply shared by the [`Tear`] wrappers of one "device": the mutating
/// calls (create, write, truncate, remove) of all of them are counted together, and
/// call number `at` is the cut.
#[derive(Debug)]
pub struct Power {
    at: Option<u64>,
    mode: TearMode,
    ops: Cell<u64>,
    fired: Cell<bool>,
}

impl Power {
    /// Cuts at mutating call number `at` (0-based; `None`: never).
    pub fn new(at: Option<u64>, mode: TearMode) -> Rc<Self> {
        Rc::new(Power {
            at,
            mode,
            ops: Cell::new(0),
            fired: Cell::new(false),
        })
    }

    /// Whether the cut happened (every later mutating call is dropped).
    pub fn fired(&self) -> bool {
        self.fired.get()
    }

    /// Mutating calls seen, the cut one included.
    pub fn ops(&self) -> u64 {
        self.ops.get()
    }

    /// Counts one mutating call: `None` if power is off (drop it), else whether this
    /// is the cut.
    fn step(&self) -> Option<bool> {
        if self.fired.get() {
            return None;
        }
        let n = self.ops.get();
        self.ops.set(n + 1);
        let cut = self.at == Some(n);
        self.fired.set(cut);
        Some(cut)
    }
}

/// A storage wrapper that cuts the power at one mutating call, then drops every later
/// one (see the [module docs](self)). At the cut, a write hands the backend only a
/// word-aligned prefix of its data (plus a garbage word in
/// [`TearMode::PrefixGarbage`]); a create, truncate or remove does not happen.
/// Syncs after the cut are dropped; reads go through.
#[derive(Debug)]
pub struct Tear<S> {
    inner: S,
    power: Rc<Power>,
}

impl<S: Storage> Tear<S> {
    /// Cuts at mutating call number `at` (`None`: never) of this storage alone.
    pub fn new(inner: S, at: Option<u64>, mode: TearMode) -> Self {
        Self::on(inner, &Power::new(at, mode))
    }

    /// A storage on a shared power supply.
    pub fn on(inner: S, power: &Rc<Power>) -> Self {
        Tear {
            inner,
            power: power.clone(),
        }
    }

    /// Whether the cut happened.
    pub fn fired(&self) -> bool {
        self.power.fired()
    }

    /// Mutating calls seen on the power supply, the cut one included.
    pub fn ops(&self) -> u64 {
        self.power.ops()
    }
}

impl<S: Storage> ErrorType for Tear<S> {
    type Error = S::Error;
}

impl<S: Storage> Storage for Tear<S> {
    fn write_size(&self) -> usize {
        self.inner.write_size()
    }
    fn unwritten_byte(&self) -> u8 {
        self.inner.unwritten_byte()
    }
    fn max_segment_len(&self) -> Option<u64> {
        self.inner.max_segment_len()
    }
    fn resume_in_place(&self) -> bool {
        self.inner.resume_in_place()
    }
    fn ordered_writes(&self) -> bool {
        self.inner.ordered_writes()
    }
    fn short_frames(&self) -> bool {
        self.inner.short_frames()
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), Self::Error> {
        self.inner.list(visit)
    }
    fn create(&mut self, segment: u64) -> Result<(), Self::Error> {
        match self.power.step() {
            Some(false) => self.inner.create(segment),
            _ => Ok(()),
        }
    }
    fn len(&mut self, segment: u64) -> Result<u64, Self::Error> {
        self.inner.len(segment)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.inner.read(segment, offset, buf)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), Self::Error> {
        match self.power.step() {
            None => Ok(()),
            Some(false) => self.inner.write(segment, offset, data),
            Some(true) => {
                let ws = self.inner.write_size();
                let keep = data.len() / 2 / ws * ws;
                if keep > 0 {
                    self.inner.write(segment, offset, &data[..keep])?;
                }
                if self.power.mode == TearMode::PrefixGarbage && keep + ws <= data.len() {
                    let garbage: Vec<u8> = data[keep..keep + ws]
                        .iter()
                        .enumerate()
                        .map(|(k, b)| b ^ (0x5A + k as u8) | 1)
                        .collect();
                    self.inner.write(segment, offset + keep as u64, &garbage)?;
                }
                Ok(())
            }
        }
    }
    fn sync(&mut self, segment: u64) -> Result<(), Self::Error> {
        if self.power.fired() {
            return Ok(());
        }
        self.inner.sync(segment)
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), Self::Error> {
        match self.power.step() {
            Some(false) => self.inner.truncate(segment, len),
            _ => Ok(()),
        }
    }
    fn remove(&mut self, segment: u64) -> Result<(), Self::Error> {
        match self.power.step() {
            Some(false) => self.inner.remove(segment),
            _ => Ok(()),
        }
    }
}

/// A write torn at every write of a workload, in both [`TearMode`]s: after a remount
/// every synced entry is there, no phantom appears, strict replay reports the tear (or
/// none if the cut fell between frames), and a resumed writer continues with
/// contiguous ids that all survive.
pub fn wal_torn_tail<M: Medium>(m: &mut M) {
    let limit = 300;
    let total = 24u64;
    // Count the mutating calls of the workload on a clean run first.
    let writes = {
        let mut w = WalWriter::open(
            Tear::new(wal(m), None, TearMode::Prefix),
            vec![0u8; 256],
            cfg(limit),
        )
        .unwrap();
        append_ids(&mut w, 1..=total, 2);
        let n = w.storage().ops();
        drop(w);
        wipe(m);
        n
    };
    assert!(writes > 10, "wal_torn_tail: only {writes} mutating calls");
    let mut torn_seen = 0;
    for mode in [TearMode::Prefix, TearMode::PrefixGarbage] {
        for at in 0..writes {
            let what = alloc::format!("wal_torn_tail {mode:?} at call {at}");
            // Session: append until the tear fires; `acked` = ids synced before it.
            let mut acked = 0;
            {
                let mut w = WalWriter::open(
                    Tear::new(wal(m), Some(at), mode),
                    vec![0u8; 256],
                    cfg(limit),
                )
                .unwrap();
                // After the tear the writer may fail (power is off): stop there.
                for id in 1..=total {
                    match w.append(&payload(id)) {
                        Ok(got) => assert_eq!(got, id, "{what}"),
                        Err(e) => {
                            assert!(w.storage().fired(), "{what}: append: {e:?}");
                            break;
                        }
                    }
                    if id % 2 == 0 {
                        let r = w.sync();
                        if w.storage().fired() {
                            break;
                        }
                        r.unwrap();
                        acked = id;
                    }
                }
                assert!(w.storage().fired(), "{what}: the tear did not fire");
            }
            // Remount: a prefix of the attempted entries, holding every acked one.
            let (got, report) = match replay(wal(m), ReadMode::BestEffort) {
                Ok(r) => r,
                Err(e) => panic!("{what}: best-effort replay failed: {e:?}"),
            };
            let n = got.len() as u64;
            assert!(n >= acked, "{what}: {n} entries, {acked} were synced");
            assert_eq!(got, expected(1..=n), "{what}: not a prefix");
            if n > 0 {
                assert_eq!(report.next_id, n + 1, "{what}");
            }
            match replay(wal(m), ReadMode::Strict) {
                Ok((strict, _)) => {
                    assert_eq!(report.torn_at, None, "{what}");
                    assert_eq!(strict, got, "{what}");
                }
                Err(Error::TornTail { at }) => {
                    assert_eq!(report.torn_at, Some(at), "{what}");
                    torn_seen += 1;
                }
                Err(e) => panic!("{what}: strict replay: {e:?}"),
            }
            // Resume: ids continue after what survived; everything new survives.
            {
                let mut w = open(wal(m), limit);
                assert_eq!(w.next_id().unwrap(), n + 1, "{what}: resume");
                append_ids(&mut w, n + 1..=n + 3, 2);
            }
            let (got, report) = replay_ok(wal(m), &what);
            assert_eq!(got, expected(1..=n + 3), "{what}: after resume");
            assert_eq!(report.torn_at, None);
            wipe(m);
        }
    }
    assert!(
        torn_seen > writes / 2,
        "wal_torn_tail: only {torn_seen} of {} cuts left a torn tail",
        2 * writes
    );
}

/// Removes every segment of both areas (a fresh medium for the next round).
fn wipe<M: Medium>(m: &mut M) {
    let (mut a, mut b) = m.mount();
    for s in listed(&mut a) {
        a.remove(s).unwrap();
    }
    for s in listed(&mut b) {
        b.remove(s).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Record log.

/// Record `i` of the record-log check: at most 20 bytes, so that a log of 20 records
/// fits one 512-byte flash unit even with 32-byte words.
fn record(i: u64) -> Vec<u8> {
    let mut p = payload(i);
    p.truncate(20);
    p
}

/// Appends records `range` through a record-log writer, syncing every third and at
/// the end; returns the last index acknowledged before a cut (`power`), if any.
fn append_records<S: Storage>(
    w: &mut crate::recordlog::RecordLogWriter<S, Vec<u8>>,
    range: core::ops::RangeInclusive<u64>,
    power: Option<&Power>,
) -> u64 {
    let fired = || power.is_some_and(Power::fired);
    let mut acked = range.start().saturating_sub(1);
    let last = *range.end();
    for i in range {
        match w.append(&record(i)) {
            Ok(got) => assert_eq!(got, i, "record_log: index"),
            Err(_) if fired() => return acked,
            Err(e) => panic!("record_log: append {i}: {e:?}"),
        }
        if i % 3 == 0 || i == last {
            let r = w.sync();
            if fired() {
                return acked;
            }
            r.unwrap();
            acked = i;
        }
    }
    acked
}

/// The single-segment record log: round trip through a remount; reopen and append on
/// media that can resume in place (and a clean refusal on media that cannot, flash);
/// on resumable media, a cut at every mutating call keeps every acknowledged record.
pub fn record_log<M: Medium>(m: &mut M) {
    use crate::recordlog::{RecordLogReader, RecordLogWriter};
    fn read<S: Storage>(st: S, mode: ReadMode) -> Res<Entries, S> {
        let mut out = Vec::new();
        RecordLogReader::new(st, vec![0u8; 256]).read(mode, |i, p| {
            out.push((i, p.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }
    let records =
        |ids: core::ops::RangeInclusive<u64>| -> Entries { ids.map(|i| (i, record(i))).collect() };
    {
        let mut w = RecordLogWriter::new(wal(m), vec![0u8; 256], LOG_ID);
        assert_eq!(append_records(&mut w, 1..=10, None), 10);
    }
    assert_eq!(
        read(wal(m), ReadMode::Strict).unwrap(),
        records(1..=10),
        "record_log: round trip"
    );
    let resumable = wal(m).resume_in_place();
    {
        let mut w = RecordLogWriter::new(wal(m), vec![0u8; 256], LOG_ID);
        if resumable {
            assert_eq!(w.next_index().unwrap(), 11, "record_log: reopen");
            append_records(&mut w, 11..=14, None);
        } else {
            let e = w.next_index().unwrap_err();
            assert!(
                matches!(e, Error::InvalidConfig(_)),
                "record_log: reopen on a medium that cannot resume in place: {e:?}"
            );
        }
    }
    let n = if resumable { 14 } else { 10 };
    assert_eq!(read(wal(m), ReadMode::Strict).unwrap(), records(1..=n));
    if !resumable {
        return;
    }
    wipe(m);
    let ops = {
        let power = Power::new(None, TearMode::Prefix);
        let mut w = RecordLogWriter::new(Tear::on(wal(m), &power), vec![0u8; 256], LOG_ID);
        append_records(&mut w, 1..=10, Some(&power));
        drop(w);
        wipe(m);
        power.ops()
    };
    for mode in [TearMode::Prefix, TearMode::PrefixGarbage] {
        for at in 0..ops {
            let what = alloc::format!("record_log {mode:?} cut at call {at} of {ops}");
            let power = Power::new(Some(at), mode);
            let acked = {
                let mut w = RecordLogWriter::new(Tear::on(wal(m), &power), vec![0u8; 256], LOG_ID);
                append_records(&mut w, 1..=10, Some(&power))
            };
            assert!(power.fired(), "{what}: no cut");
            let got = match read(wal(m), ReadMode::BestEffort) {
                Ok(got) => got,
                // The cut dropped the log's creation: there is no log.
                Err(Error::Storage(e)) if e.kind() == StorageErrorKind::NotFound => Vec::new(),
                Err(e) => panic!("{what}: best-effort read: {e:?}"),
            };
            let k = got.len() as u64;
            assert!(k >= acked, "{what}: {k} records, {acked} acknowledged");
            assert_eq!(got, records(1..=k), "{what}: not a prefix");
            {
                let mut w = RecordLogWriter::new(wal(m), vec![0u8; 256], LOG_ID);
                match w.next_index() {
                    Ok(next) => assert_eq!(next, k + 1, "{what}: reopen"),
                    Err(e) => panic!("{what}: reopen: {e:?}"),
                }
                append_records(&mut w, k + 1..=k + 2, None);
            }
            match read(wal(m), ReadMode::Strict) {
                Ok(got) => assert_eq!(got, records(1..=k + 2), "{what}: after reopen"),
                Err(e) => panic!("{what}: strict read after reopen: {e:?}"),
            }
            wipe(m);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lifecycle: publish and recover, with a cut anywhere.

/// The application state of the lifecycle check: last id applied, sum of ids.
fn state_bytes(last: u64, sum: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&last.to_le_bytes());
    out[8..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Recovers `(last id, sum)` from both areas; checks every applied entry.
fn recover_state<M: Medium>(m: &mut M, what: &str) -> (u64, u64, u64, u64) {
    let (wal, cks) = m.mount();
    let mut store = CheckpointStore::new(cks);
    let r = crate::lifecycle::recover(
        wal,
        &mut store,
        &mut vec![0u8; 512],
        ReadMode::BestEffort,
        |c| {
            Ok(c.map_or((0, 0), |(_, p)| {
                let mut a = [0u8; 8];
                let mut b = [0u8; 8];
                a.copy_from_slice(&p[..8]);
                b.copy_from_slice(&p[8..16]);
                (u64::from_le_bytes(a), u64::from_le_bytes(b))
            }))
        },
        |st: &mut (u64, u64), id, p| {
            assert_eq!(id, st.0 + 1, "{what}: ids not contiguous");
            assert_eq!(p, &payload(id)[..], "{what}: entry {id}");
            *st = (id, st.1 + id);
            Ok(())
        },
    );
    match r {
        Ok(((last, sum), report)) => {
            assert_eq!(sum, (1..=last).sum::<u64>(), "{what}: state");
            assert_eq!(report.next_id, last + 1, "{what}: next id");
            let covered = report.checkpoint.map_or(0, |c| c.header.last_id);
            (last, sum, report.next_id, covered)
        }
        Err(e) => panic!("{what}: recovery failed: {e:?}"),
    }
}

/// Appends, syncs and publishes checkpoints (keep 2, with and without a marker entry)
/// with a cut at every mutating call of the WAL and checkpoint areas together: after a
/// remount, recovery returns a state with every acknowledged entry and no phantom, and
/// a writer resumed from it goes on (append, publish, recover again).
pub fn lifecycle_publish_recover<M: Medium>(m: &mut M) {
    let limit = 300;
    let total = 18u64;
    // The workload over one power supply; returns the last id acknowledged (synced or
    // published) before the cut. Marker entries are not app entries: none here, the
    // marker is `None` so that every id is an app entry.
    let run = |m: &mut M, power: &Rc<Power>| -> u64 {
        let (wal, cks) = m.mount();
        let mut store = CheckpointStore::new(Tear::on(cks, power));
        let Ok(mut w) = WalWriter::open(Tear::on(wal, power), vec![0u8; 256], cfg(limit)) else {
            assert!(power.fired());
            return 0;
        };
        let mut acked = 0;
        let mut sum = 0;
        for id in 1..=total {
            match w.append(&payload(id)) {
                Ok(got) => assert_eq!(got, id),
                Err(_) if power.fired() => break,
                Err(e) => panic!("lifecycle: append: {e:?}"),
            }
            sum += id;
            if id % 6 == 0 {
                let r = publish(&mut w, &mut store, id, &state_bytes(id, sum), 2);
                if power.fired() {
                    break;
                }
                if let Err(e) = r {
                    panic!("lifecycle: publish at {id}: {e:?}");
                }
                acked = id;
            } else if id % 3 == 0 {
                let r = w.sync();
                if power.fired() {
                    break;
                }
                r.unwrap();
                acked = id;
            }
        }
        acked
    };
    let ops = {
        let power = Power::new(None, TearMode::Prefix);
        assert_eq!(run(m, &power), total);
        let (last, _, _, covered) = recover_state(m, "lifecycle: clean run");
        assert_eq!((last, covered), (total, total));
        wipe(m);
        power.ops()
    };
    for mode in [TearMode::Prefix, TearMode::PrefixGarbage] {
        for at in 0..ops {
            let what = alloc::format!("lifecycle {mode:?} cut at call {at} of {ops}");
            let power = Power::new(Some(at), mode);
            let acked = run(m, &power);
            assert!(power.fired(), "{what}: no cut");
            let (last, sum, next, covered) = recover_state(m, &what);
            assert!(
                last >= acked,
                "{what}: recovered {last}, acknowledged {acked}"
            );
            assert!(last <= total, "{what}: phantom entries up to {last}");
            // Resume from the recovered state and publish once more.
            {
                let (wal, cks) = m.mount();
                let mut store = CheckpointStore::new(cks);
                let cfg = WalConfig {
                    first_id: next,
                    covered_through: covered,
                    ..cfg(limit)
                };
                let mut w = match WalWriter::open(wal, vec![0u8; 256], cfg) {
                    Ok(w) => w,
                    Err(e) => panic!("{what}: reopen: {e:?}"),
                };
                assert_eq!(w.next_id().unwrap(), next, "{what}: resumed id");
                let mut sum = sum;
                for id in next..next + 4 {
                    assert_eq!(w.append(&payload(id)).unwrap(), id, "{what}");
                    sum += id;
                }
                let r = publish(&mut w, &mut store, next + 3, &state_bytes(next + 3, sum), 2);
                if let Err(e) = r {
                    panic!("{what}: publish after resume: {e:?}");
                }
            }
            let after = recover_state(m, &what);
            assert_eq!(
                (after.0, after.3),
                (last + 4, last + 4),
                "{what}: after resume"
            );
            wipe(m);
        }
    }
}

/// `lifecycle::publish` with a scratch buffer and no marker.
fn publish<W, C>(
    w: &mut WalWriter<W, Vec<u8>>,
    store: &mut CheckpointStore<C>,
    last_id: u64,
    state: &[u8],
    keep: usize,
) -> Res<crate::lifecycle::PublishReport, W>
where
    W: Storage,
    C: Storage<Error = W::Error>,
{
    crate::lifecycle::publish(w, store, last_id, state, None, keep, &mut vec![0u8; 64])
}

// ---------------------------------------------------------------------------------------
// Checkpoint store.

/// Write/latest/retain across remounts; a torn checkpoint is skipped.
pub fn checkpoint_store<M: Medium>(m: &mut M) {
    let mut buf = vec![0u8; 256];
    {
        let mut store = CheckpointStore::new(m.mount().1);
        assert!(
            store.latest(&mut buf).unwrap().is_none(),
            "checkpoint_store: empty"
        );
        assert_eq!(store.write(7, 10, b"ten").unwrap(), 1);
        assert_eq!(store.write(7, 20, b"twenty").unwrap(), 2);
    }
    {
        let mut store = CheckpointStore::new(m.mount().1);
        let c = store
            .latest(&mut buf)
            .unwrap()
            .expect("checkpoint_store: latest");
        assert_eq!((c.seq, c.header.last_id, c.header.log_id), (2, 20, 7));
        assert_eq!(&buf[..c.header.len as usize], b"twenty");
        assert_eq!(c.skipped, 0);
        assert_eq!(store.write(7, 30, &[3u8; 100]).unwrap(), 3);
        assert_eq!(store.write(7, 40, b"").unwrap(), 4);
        assert_eq!(store.retain_newest(2, &mut buf).unwrap(), 2);
        let mut segs = listed(store.storage());
        segs.sort_unstable();
        assert_eq!(segs, [3, 4], "checkpoint_store: retain keeps the newest");
    }
    {
        let mut store = CheckpointStore::new(m.mount().1);
        let c = store.latest(&mut buf).unwrap().unwrap();
        assert_eq!((c.seq, c.header.last_id, c.header.len), (4, 40, 0));
        let h = store
            .load(3, &mut buf)
            .unwrap()
            .expect("checkpoint 3 verifies");
        assert_eq!((h.last_id, &buf[..h.len as usize]), (30, &[3u8; 100][..]));
    }
    // A checkpoint write cut at any of its mutating calls is skipped.
    let ops = {
        let mut store = CheckpointStore::new(Tear::new(m.mount().1, None, TearMode::Prefix));
        store.write(7, 41, &[4u8; 120]).unwrap();
        store.storage().ops()
    };
    assert!(
        ops >= 2,
        "checkpoint_store: {ops} mutating calls per checkpoint"
    );
    let mut last = 41;
    for mode in [TearMode::Prefix, TearMode::PrefixGarbage] {
        for at in 0..ops {
            {
                let mut store = CheckpointStore::new(Tear::new(m.mount().1, Some(at), mode));
                let _ = store.write(7, last + 5, &[5u8; 120]);
                assert!(store.storage().fired());
            }
            let mut store = CheckpointStore::new(m.mount().1);
            let c = store.latest(&mut buf).unwrap().unwrap();
            assert_eq!(
                c.header.last_id, last,
                "checkpoint_store: cut {mode:?} at call {at} not skipped"
            );
            last += 10;
            let seq = store.write(7, last, b"next").unwrap();
            let c = store.latest(&mut buf).unwrap().unwrap();
            assert_eq!((c.seq, c.header.last_id), (seq, last));
            assert!(store.retain_newest(1, &mut buf).unwrap() > 0);
            assert_eq!(listed(store.storage()), [seq]);
        }
    }
}
