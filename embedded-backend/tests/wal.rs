//! The core WAL over `FlashStorage<SimFlash>`: round trips across many units, re-mounts,
//! resume, torn tails. Every program goes through `SimFlash`, which refuses to program a
//! word twice, so every test here also checks that the core never does.
// `drop(storage)` ends the borrow of the flash bytes: a power-off before a re-mount.
#![allow(clippy::drop_non_drop)]

use durability_core::frame::{FrameForm, FrameKind, FrameSeal};

/// Units of up to 16 KiB (these are 512 B) use the short frame form: 6-byte headers.
fn frame_len(len: usize, word: usize) -> u64 {
    FrameForm::Short.frame_len(len, word)
}
use durability_core::wal::{ReplayReport, WalConfig, WalReader, WalWriter};
use durability_core::{Error, ErrorKind, ErrorType, Location, ReadMode, Storage, StorageErrorKind};
use durability_embedded::sim::SimFlash;
use durability_embedded::FlashStorage;

const ERASE: usize = 512;
const UNITS: usize = 48;
const N: usize = 64;
const LOG_ID: u64 = 0x5EED_F1A5;

type Fs<'a, const R: usize, const W: usize> = FlashStorage<SimFlash<'a, R, W, ERASE>, N>;

fn mount<const R: usize, const W: usize>(mem: &mut [u8]) -> Fs<'_, R, W> {
    FlashStorage::new(SimFlash::new(mem), 0, UNITS).unwrap()
}

fn cfg() -> WalConfig {
    WalConfig {
        segment_limit: u64::MAX,
        log_id: LOG_ID,
        first_id: 1,
        covered_through: 0,
    }
}

/// Entry sizes, cycled. The largest frame (8 + 248) fits the writers' 256-byte buffer:
/// `WalWriter::open` needs to hold every frame of the log (see
/// `core_reopen_with_entry_larger_than_buffer`).
const SIZES: [usize; 16] = [
    0, 1, 7, 31, 33, 64, 100, 150, 200, 248, 240, 17, 3, 96, 180, 5,
];

/// Payload of entry `id`: never contains 0xFF (so the data end is found by scanning).
fn payload(id: u64) -> Vec<u8> {
    let len = SIZES[id as usize % SIZES.len()];
    (0..len)
        .map(|k| ((id as usize * 31 + k * 7) % 251) as u8)
        .collect()
}

type Entries = Vec<(u64, Vec<u8>)>;

fn replay<S: Storage>(st: S, mode: ReadMode) -> Result<(Entries, ReplayReport), Error<S::Error>> {
    let mut out = Vec::new();
    let report = WalReader::new(st, [0u8; 512]).replay(mode, |id, p| {
        out.push((id, p.to_vec()));
        Ok(())
    })?;
    Ok((out, report))
}

fn expected(ids: std::ops::RangeInclusive<u64>) -> Entries {
    ids.map(|id| (id, payload(id))).collect()
}

/// Appends entries `ids` (checking the ids handed out), syncing every few.
fn append_all<S: Storage>(w: &mut WalWriter<S, [u8; 256]>, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        assert_eq!(w.append(&payload(id)).unwrap(), id);
        if id % 5 == 0 {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
}

/// Offset just past the last byte that is not 0xFF in `unit`, rounded up to `word`.
fn data_end(mem: &[u8], unit: usize, word: usize) -> usize {
    let u = &mem[unit * ERASE..(unit + 1) * ERASE];
    let last = u.iter().rposition(|&b| b != 0xFF).map_or(0, |p| p + 1);
    last.div_ceil(word) * word
}

fn round_trip<const R: usize, const W: usize>() {
    let word = R.max(W);
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let n1 = 70;

    // Session 1: a fresh log; no reads after open.
    let last_seg = {
        let mut w = WalWriter::open(mount::<R, W>(&mut mem), [0u8; 256], cfg()).unwrap();
        let reads = w.storage().flash().stats().reads;
        append_all(&mut w, 1..=n1);
        assert_eq!(
            w.storage().flash().stats().reads,
            reads,
            "appends must not read"
        );
        let seg = w.current_segment().unwrap();
        assert!(seg >= 8, "word {word}: only {seg} segments");
        seg
    };

    // Re-mount from the same bytes: one read per unit, then a strict replay.
    let st = mount::<R, W>(&mut mem);
    assert_eq!(st.flash().stats().reads, UNITS as u64);
    assert_eq!(st.units() - st.free_units(), last_seg as usize);
    let (got, report) = replay(st, ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=n1), "word {word}");
    assert_eq!(report.segments, last_seg);
    assert_eq!(report.next_id, n1 + 1);
    assert_eq!(report.torn_at, None);

    // Session 2: resume. Flash cannot append in place, so a new segment starts.
    let n2 = n1 + 40;
    let last_seg2 = {
        let mut w = WalWriter::open(mount::<R, W>(&mut mem), [0u8; 256], cfg()).unwrap();
        assert_eq!(w.next_id().unwrap(), n1 + 1);
        assert_eq!(w.current_segment(), Some(last_seg + 1));
        assert_eq!(w.log_id(), LOG_ID);
        append_all(&mut w, n1 + 1..=n2);
        w.current_segment().unwrap()
    };
    let (got, report) = replay(mount::<R, W>(&mut mem), ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=n2), "word {word}");
    assert_eq!(report.segments, last_seg2);

    // Session 3: reopen without appending anything, then once more with appends.
    drop(WalWriter::open(mount::<R, W>(&mut mem), [0u8; 256], cfg()).unwrap());
    {
        let mut w = WalWriter::open(mount::<R, W>(&mut mem), [0u8; 256], cfg()).unwrap();
        append_all(&mut w, n2 + 1..=n2 + 3);
    }
    let (got, _) = replay(mount::<R, W>(&mut mem), ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=n2 + 3), "word {word}");
}

#[test]
fn round_trip_word_1() {
    round_trip::<1, 1>();
}

#[test]
fn round_trip_word_4_read_size_dominates() {
    round_trip::<4, 1>();
}

#[test]
fn round_trip_word_8() {
    round_trip::<1, 8>();
}

#[test]
fn round_trip_word_32() {
    round_trip::<32, 32>();
}

#[test]
fn round_trip_word_16_mixed() {
    round_trip::<16, 4>();
}

#[test]
fn entry_too_large_for_a_unit_is_refused() {
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let mut w = WalWriter::open(mount::<1, 4>(&mut mem), [0u8; 512], cfg()).unwrap();
    // 512 - 48 header - 6 frame header = 458 bytes fit exactly.
    assert_eq!(w.append(&[1u8; 456]).unwrap(), 1);
    assert_eq!(w.append(&[1u8; 458]).unwrap(), 2);
    let err = w.append(&[1u8; 459]).unwrap_err();
    assert!(
        matches!(err, Error::EntryTooLarge { len: 459, max: 458 }),
        "{err:?}"
    );
    assert_eq!(w.append(&[2u8; 10]).unwrap(), 3);
    w.sync().unwrap();
    drop(w);
    let (got, _) = replay(mount::<1, 4>(&mut mem), ReadMode::Strict).unwrap();
    assert_eq!(
        got,
        vec![(1, vec![1u8; 456]), (2, vec![1u8; 458]), (3, vec![2u8; 10])]
    );
}

/// Writes `n` entries, returns (last segment, its unit).
fn write_log<const R: usize, const W: usize>(mem: &mut [u8], n: u64) -> (u64, usize) {
    let mut w = WalWriter::open(mount::<R, W>(mem), [0u8; 256], cfg()).unwrap();
    append_all(&mut w, 1..=n);
    let seg = w.current_segment().unwrap();
    let unit = w.storage().unit_of(seg).unwrap();
    (seg, unit)
}

/// After damage at the end of the final segment: best effort returns `prefix` entries,
/// strict reports the tear at `at`, open seals it and continues in a new unit, and
/// everything appended later survives a re-mount.
fn check_recovery<const R: usize, const W: usize>(
    mem: &mut [u8],
    seg: u64,
    unit: usize,
    prefix: u64,
    at: u64,
) {
    let err = replay(mount::<R, W>(mem), ReadMode::Strict).unwrap_err();
    assert_eq!(
        err,
        Error::TornTail {
            at: Location {
                segment: seg,
                offset: at
            }
        }
    );
    let (got, report) = replay(mount::<R, W>(mem), ReadMode::BestEffort).unwrap();
    assert_eq!(got, expected(1..=prefix));
    assert_eq!(
        report.torn_at,
        Some(Location {
            segment: seg,
            offset: at
        })
    );

    let more = prefix + 12;
    {
        let mut w = WalWriter::open(mount::<R, W>(mem), [0u8; 256], cfg()).unwrap();
        assert_eq!(w.next_id().unwrap(), prefix + 1);
        assert_eq!(w.current_segment(), Some(seg + 1));
        assert_ne!(w.storage().unit_of(seg + 1), Some(unit));
        // The damaged unit is still mapped (it holds the sealed prefix).
        assert_eq!(w.storage().unit_of(seg), Some(unit));
        append_all(&mut w, prefix + 1..=more);
    }
    let (got, report) = replay(mount::<R, W>(mem), ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=more));
    assert_eq!(report.torn_at, None);
    // And it keeps going.
    {
        let mut w = WalWriter::open(mount::<R, W>(mem), [0u8; 256], cfg()).unwrap();
        append_all(&mut w, more + 1..=more + 2);
    }
    let (got, _) = replay(mount::<R, W>(mem), ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=more + 2));
}

/// A power cut while programming a frame: its first words landed, one word is
/// half-programmed, the rest is still erased.
fn torn_program<const R: usize, const W: usize>() {
    let word = R.max(W);
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let n = 23;
    let (seg, unit) = write_log::<R, W>(&mut mem, n);
    let end = data_end(&mem, unit, word);
    let p: Vec<u8> = (0..40u8).collect();
    let flen = frame_len(p.len(), word) as usize;
    assert!(end + flen <= ERASE, "test needs room for the torn frame");
    let mut frame = vec![0u8; flen];
    frame[..6].copy_from_slice(
        &FrameSeal::new(LOG_ID, seg, FrameForm::Short).seal(FrameKind::Entry, n + 1, &p)[..6],
    );
    frame[6..46].copy_from_slice(&p);
    let landed = (flen / 2) / word * word;
    let base = unit * ERASE + end;
    mem[base..base + landed].copy_from_slice(&frame[..landed]);
    // The interrupted word: some bits of the intended value cleared, others not yet.
    for (i, b) in mem[base + landed..base + landed + word]
        .iter_mut()
        .enumerate()
    {
        *b &= frame[landed + i] | 0x5A;
    }
    mem[base + landed] &= 0x7F;
    check_recovery::<R, W>(&mut mem, seg, unit, n, end as u64);
}

/// Bits cleared inside the last complete frame (no sync marker covers it).
fn damaged_last_frame<const R: usize, const W: usize>() {
    let word = R.max(W);
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let n = 26;
    let (seg, unit) = write_log::<R, W>(&mut mem, n);
    let end = data_end(&mem, unit, word);
    let start = end - frame_len(payload(n).len(), word) as usize;
    let frame = &mut mem[unit * ERASE + start..unit * ERASE + end];
    let b = frame.iter_mut().rev().find(|b| **b != 0).unwrap();
    *b &= *b - 1; // clear the lowest set bit
    check_recovery::<R, W>(&mut mem, seg, unit, n - 1, start as u64);
}

#[test]
fn torn_program_word_1() {
    torn_program::<1, 1>();
}

#[test]
fn torn_program_word_4() {
    torn_program::<1, 4>();
}

#[test]
fn torn_program_word_32() {
    torn_program::<32, 8>();
}

#[test]
fn damaged_last_frame_word_1() {
    damaged_last_frame::<1, 1>();
}

#[test]
fn damaged_last_frame_word_8() {
    damaged_last_frame::<8, 8>();
}

#[test]
fn damaged_last_frame_word_32() {
    damaged_last_frame::<4, 32>();
}

/// A power cut while programming the header of a new segment: the unit is free at the
/// next mount and the log continues where it was.
#[test]
fn torn_segment_header_is_free_space() {
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let (seg, _) = write_log::<1, 4>(&mut mem, 30);
    // Fake an interrupted creation of seg + 1 in a free unit: half a header.
    let free = UNITS - 1;
    mem[free * ERASE..free * ERASE + 4].copy_from_slice(b"DURL");
    mem[free * ERASE + 4..free * ERASE + 20].fill(0x11);
    let st = mount::<1, 4>(&mut mem);
    assert_eq!(st.unit_of(seg + 1), None);
    let (got, _) = replay(st, ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=30));
    {
        let mut w = WalWriter::open(mount::<1, 4>(&mut mem), [0u8; 256], cfg()).unwrap();
        append_all(&mut w, 31..=40);
    }
    let (got, _) = replay(mount::<1, 4>(&mut mem), ReadMode::Strict).unwrap();
    assert_eq!(got, expected(1..=40));
}

/// A full partition: the writer gets `NoSpace` when it must rotate, and everything
/// before it is intact.
#[test]
fn full_partition_reports_no_space() {
    let mut mem = vec![0xFFu8; 4 * ERASE];
    let st = FlashStorage::<_, 4>::new(SimFlash::<1, 4, ERASE>::new(&mut mem), 0, 4).unwrap();
    let mut w = WalWriter::open(st, [0u8; 256], cfg()).unwrap();
    let mut last = 0;
    let err = loop {
        match w.append(&[7u8; 100]) {
            Ok(id) => last = id,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Storage(StorageErrorKind::NoSpace));
    assert!(w.is_poisoned());
    assert_eq!(w.storage().free_units(), 0);
    assert_eq!(w.storage().unit_of(4), Some(3));
    drop(w);
    let st = FlashStorage::<_, 4>::new(SimFlash::<1, 4, ERASE>::new(&mut mem), 0, 4).unwrap();
    let (got, _) = replay(st, ReadMode::Strict).unwrap();
    // The rotation flushed every entry staged before it failed.
    assert_eq!(got.len() as u64, last);
    assert!(last >= 12);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (id, p))| *id == i as u64 + 1 && p == &[7u8; 100]));
}

/// A sync that fills a unit up to its limit, then one more append: the due sync marker
/// does not fit, so the core rotates without it.
#[test]
fn sync_marker_at_the_end_of_a_unit() {
    fn run<const R: usize, const W: usize>() {
        let word = R.max(W);
        let mut mem = vec![0xFFu8; UNITS * ERASE];
        let mut w = WalWriter::open(mount::<R, W>(&mut mem), [0u8; 512], cfg()).unwrap();
        let limit = w.storage().max_segment_len().unwrap() as usize;
        let fill = limit - 48usize.div_ceil(word) * word - 8;
        w.append(&vec![3u8; fill]).unwrap();
        w.sync().unwrap();
        w.append(&[4u8; 10]).unwrap();
        w.sync().unwrap();
        assert_eq!(w.current_segment(), Some(2));
        drop(w);
        let (got, _) = replay(mount::<R, W>(&mut mem), ReadMode::Strict).unwrap();
        assert_eq!(got, vec![(1, vec![3u8; fill]), (2, vec![4u8; 10])]);
    }
    run::<1, 1>();
    run::<1, 8>();
    run::<16, 4>();
    run::<32, 32>();
}

/// A storage whose `max_segment_len` is pinned to the unit, whatever the backend says.
struct UnitLimit<S>(S);

impl<S: Storage> ErrorType for UnitLimit<S> {
    type Error = S::Error;
}

impl<S: Storage> Storage for UnitLimit<S> {
    fn write_size(&self) -> usize {
        self.0.write_size()
    }
    fn unwritten_byte(&self) -> u8 {
        self.0.unwritten_byte()
    }
    fn max_segment_len(&self) -> Option<u64> {
        Some(ERASE as u64)
    }
    fn resume_in_place(&self) -> bool {
        self.0.resume_in_place()
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), S::Error> {
        self.0.list(visit)
    }
    fn create(&mut self, segment: u64) -> Result<(), S::Error> {
        self.0.create(segment)
    }
    fn len(&mut self, segment: u64) -> Result<u64, S::Error> {
        self.0.len(segment)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, S::Error> {
        self.0.read(segment, offset, buf)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), S::Error> {
        self.0.write(segment, offset, data)
    }
    fn sync(&mut self, segment: u64) -> Result<(), S::Error> {
        self.0.sync(segment)
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), S::Error> {
        self.0.truncate(segment, len)
    }
    fn remove(&mut self, segment: u64) -> Result<(), S::Error> {
        self.0.remove(segment)
    }
}

/// Regression: a sync that leaves less than a marker frame free in the unit used to make
/// the next append stage the marker past the limit (an out-of-bounds write that poisoned
/// the writer). The marker is optional and is now dropped at rotation.
#[test]
fn core_marker_overshoots_segment_limit() {
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let st = UnitLimit(mount::<1, 1>(&mut mem));
    let mut w = WalWriter::open(st, [0u8; 256], cfg()).unwrap();
    // `UnitLimit` keeps the long frame form (it does not forward `short_frames`):
    // header 48 + frame 8 + 448 = 504: 8 bytes left, a marker needs 32.
    w.append(&[3u8; 448]).unwrap();
    w.sync().unwrap();
    w.append(&[4u8; 10]).unwrap();
    w.sync().unwrap();
    drop(w);
    let (got, _) = replay(mount::<1, 1>(&mut mem), ReadMode::Strict).unwrap();
    assert_eq!(got, vec![(1, vec![3u8; 448]), (2, vec![4u8; 10])]);
}

/// Regression: a writer with a fixed buffer appends an entry larger than the buffer
/// (written through); `WalWriter::open` on the same log with the same buffer used to fail
/// with `BufferTooSmall`. Its scan only verifies frames, by streaming when needed.
#[test]
fn core_reopen_with_entry_larger_than_buffer() {
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    {
        let mut w = WalWriter::open(mount::<1, 4>(&mut mem), [0u8; 256], cfg()).unwrap();
        w.append(&[5u8; 300]).unwrap();
        w.sync().unwrap();
    }
    let mut w = WalWriter::open(mount::<1, 4>(&mut mem), [0u8; 256], cfg()).unwrap();
    assert_eq!(w.next_id().unwrap(), 2);
}

/// Bits cleared inside a frame of the final segment that a valid frame follows: flash
/// programs in order, so no cut leaves that (`Storage::ordered_writes`); it is
/// corruption in every mode even though no sync marker is ever written on flash, and
/// the writer refuses to open rather than cut acknowledged entries.
fn damaged_frame_before_valid_one<const R: usize, const W: usize>() {
    let word = R.max(W);
    let data_start = 48usize.div_ceil(word) * word;
    // The first log length whose last two entries share the final unit.
    let (mut mem, seg, unit, start, end) = (20..60u64)
        .find_map(|n| {
            let mut mem = vec![0xFFu8; UNITS * ERASE];
            let (seg, unit) = write_log::<R, W>(&mut mem, n);
            let end = data_end(&mem, unit, word) - frame_len(payload(n).len(), word) as usize;
            let start = end.checked_sub(frame_len(payload(n - 1).len(), word) as usize)?;
            (start >= data_start).then_some((mem, seg, unit, start, end))
        })
        .expect("some log length puts two entries in the final unit");
    // Damage the frame of the second-to-last entry.
    let frame = &mut mem[unit * ERASE + start..unit * ERASE + end];
    let b = frame.iter_mut().rev().find(|b| **b != 0).unwrap();
    *b &= *b - 1;
    let corrupt = Error::Corrupt {
        at: Location {
            segment: seg,
            offset: start as u64,
        },
        reason: durability_core::Corruption::BadFrameBeforeValidFrame,
    };
    for mode in [ReadMode::Strict, ReadMode::BestEffort] {
        assert_eq!(replay(mount::<R, W>(&mut mem), mode).unwrap_err(), corrupt);
    }
    let r = WalWriter::open(mount::<R, W>(&mut mem), [0u8; 256], cfg());
    assert_eq!(r.err(), Some(corrupt));
}

#[test]
fn damaged_frame_before_valid_one_word_1() {
    damaged_frame_before_valid_one::<1, 1>();
}

#[test]
fn damaged_frame_before_valid_one_word_8() {
    damaged_frame_before_valid_one::<8, 8>();
}
