//! The tail matrix: every byte offset of the final segment's frames is damaged (truncated,
//! zero-filled, garbage-filled from there to the end) and the result is compared with an
//! oracle derived from the spec, in both read modes, with growing and fixed read
//! buffers; then the log is resumed and must continue with contiguous ids.

mod common;

use common::*;
use durability_core::error::{Corruption, Location};
use durability_core::mem::MemStorage;
use durability_core::recordlog::{RecordLogWriter, RECORD_LOG_SEGMENT};
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::{Buffer, Error, ReadMode};

const LOG_ID: u64 = 0x5EED_0000_0000_0001;
const WRITE_SIZES: [usize; 3] = [1, 4, 32];

/// A log as built for the matrix.
struct Built {
    st: MemStorage,
    cfg: WalConfig,
    /// Entries appended, ids `1..=n`.
    n: u64,
    /// The segment that is damaged.
    seg: u64,
    /// Entries before that segment (all in sealed segments).
    before: u64,
    data_start: usize,
    frames: Vec<Frame>,
}

impl Built {
    fn original(&self) -> &Vec<u8> {
        &self.st.segments[&self.seg]
    }
}

/// Checks the frame layout of the damaged segment: entries `first..=synced`, one marker
/// recording exactly the bytes before it, entries `synced + 1..=n`, nothing after.
fn check_layout(b: &Built, log_id: u64, synced: u64) {
    let (ds, frames) = walk(b.original(), log_id, b.seg);
    assert_eq!(ds, b.data_start);
    let mut want = Vec::new();
    for id in b.before + 1..=b.n {
        want.push(Fk::Entry(id));
        if id == synced {
            want.push(Fk::Marker(u64::MAX));
        }
    }
    let got: Vec<Fk> = frames
        .iter()
        .map(|f| match f.kind {
            Fk::Marker(wm) => {
                assert_eq!(
                    wm, f.start as u64,
                    "the marker records everything before it"
                );
                Fk::Marker(u64::MAX)
            }
            k => k,
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(frames.last().unwrap().end, b.original().len());
    assert_eq!(frames, b.frames);
}

/// `multi`: the damaged segment is segment 2, after a sealed segment 1 (which ends with
/// a sync marker); otherwise a single segment.
fn build_wal(ws: usize, multi: bool, short: bool) -> Built {
    let mut st = MemStorage::with_write_size(ws).with_short_frames(short);
    let mut cfg = WalConfig::new(LOG_ID);
    if multi {
        cfg.segment_limit = 150;
    }
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], cfg);
    let mut id = 0u64;
    let mut before = 0;
    if multi {
        for _ in 0..2 {
            id += 1;
            assert_eq!(w.append(&entry(id)).unwrap(), id);
        }
        w.sync().unwrap();
        loop {
            id += 1;
            assert_eq!(w.append(&entry(id)).unwrap(), id);
            if w.current_segment() == Some(2) {
                break;
            }
        }
        before = id - 1;
        w.set_segment_limit(1 << 20);
    }
    while id < before + 4 {
        id += 1;
        assert_eq!(w.append(&entry(id)).unwrap(), id);
    }
    w.sync().unwrap();
    let synced = id;
    for _ in 0..3 {
        id += 1;
        assert_eq!(w.append(&entry(id)).unwrap(), id);
    }
    w.flush().unwrap();
    let seg = w.current_segment().unwrap();
    assert_eq!(seg, if multi { 2 } else { 1 });
    drop(w);
    assert_eq!(st.segments.len() as u64, seg);
    let (data_start, frames) = walk(&st.segments[&seg], LOG_ID, seg);
    // Resumes run with the limit the final segment was filled under.
    cfg.segment_limit = 1 << 20;
    let b = Built {
        st,
        cfg,
        n: id,
        seg,
        before,
        data_start,
        frames,
    };
    check_layout(&b, LOG_ID, synced);
    assert_eq!(wal_strict(&mut b.st.clone()), expected(id));
    b
}

fn build_record_log(ws: usize) -> Built {
    let mut st = MemStorage::with_write_size(ws);
    let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
    for id in 1..=4 {
        assert_eq!(w.append(&entry(id)).unwrap(), id);
    }
    w.sync().unwrap();
    for id in 5..=7 {
        assert_eq!(w.append(&entry(id)).unwrap(), id);
    }
    w.flush().unwrap();
    drop(w);
    let (data_start, frames) = walk(
        &st.segments[&RECORD_LOG_SEGMENT],
        LOG_ID,
        RECORD_LOG_SEGMENT,
    );
    let b = Built {
        st,
        cfg: WalConfig::new(LOG_ID),
        n: 7,
        seg: RECORD_LOG_SEGMENT,
        before: 0,
        data_start,
        frames,
    };
    check_layout(&b, LOG_ID, 4);
    assert_eq!(rl_strict(&mut b.st.clone()), expected(7));
    b
}

/// The number of entries that must be delivered: everything before the segment plus the
/// surviving entries of it, which must be a contiguous run.
fn delivered(b: &Built, survivors: &[u64]) -> u64 {
    for (i, id) in survivors.iter().enumerate() {
        assert_eq!(*id, b.before + 1 + i as u64);
    }
    b.before + survivors.len() as u64
}

fn wal_matrix(multi: bool, short: bool) {
    for ws in WRITE_SIZES {
        let b = build_wal(ws, multi, short);
        assert_eq!(b.original()[4], if short { 2 } else { 1 }, "frame form");
        let original = b.original().clone();
        let (mut clean, mut torn) = (0, 0);
        // From the end of the header: for write size 32 the header's padding comes first.
        for p in HEADER_LEN..=original.len() {
            for damage in DAMAGES {
                if damage == Damage::Truncate && p < b.data_start {
                    // See `resume_after_truncated_header_padding`.
                    continue;
                }
                let ctx = format!(
                    "ws {ws} multi {multi} short {short} {damage:?} at {p} of {}",
                    original.len()
                );
                let mut st = b.st.clone();
                let seg = st.segments.get_mut(&b.seg).unwrap();
                apply(seg, p, damage, 0xDA4A6E ^ ws as u64);
                let (survivors, verdict) = oracle(&original, seg, b.data_start, &b.frames);
                assert!(
                    !matches!(verdict, Verdict::Corrupt(_)),
                    "{ctx}: damage to the end never proves anything"
                );
                let k = delivered(&b, &survivors);
                if damage != Damage::Garbage {
                    // Exactly the frames wholly before the damage survive.
                    let whole = b
                        .frames
                        .iter()
                        .filter(|f| f.end <= p && matches!(f.kind, Fk::Entry(_)))
                        .count();
                    if damage == Damage::Truncate {
                        assert_eq!(survivors.len(), whole, "{ctx}");
                    } else {
                        assert!(survivors.len() >= whole, "{ctx}");
                    }
                }
                match verdict {
                    Verdict::Clean => clean += 1,
                    _ => torn += 1,
                }
                check_wal_reads(&mut st, Vec::new(), b.seg, k, verdict, &ctx);
                check_wal_reads(
                    &mut st,
                    [0u8; 64],
                    b.seg,
                    k,
                    verdict,
                    &format!("{ctx} fixed64"),
                );
                check_wal_resume(&st, b.seg, b.cfg, k, verdict, &ctx);
            }
        }
        // Every frame boundary zero-filled or truncated is clean; most offsets are torn.
        assert!(clean >= 2 * b.frames.len(), "ws {ws}: {clean} clean cases");
        assert!(torn > original.len(), "ws {ws}: {torn} torn cases");
    }
}

#[test]
fn wal_single_segment_tail_matrix() {
    wal_matrix(false, false);
}

#[test]
fn wal_single_segment_tail_matrix_short_frames() {
    wal_matrix(false, true);
}

#[test]
fn wal_final_segment_after_sealed_tail_matrix_short_frames() {
    wal_matrix(true, true);
}

#[test]
fn wal_final_segment_after_sealed_tail_matrix() {
    wal_matrix(true, false);
}

fn check_rl_reads<B: Buffer + Clone>(
    st: &mut MemStorage,
    buf: B,
    k: u64,
    verdict: Verdict,
    ctx: &str,
) {
    let want = expected(k);
    let loc = |offset| Location {
        segment: RECORD_LOG_SEGMENT,
        offset,
    };
    for mode in MODES {
        let ctx = format!("{ctx} {mode:?}");
        let (got, res) = rl_read_with(st, buf.clone(), mode);
        assert_eq!(got, want, "{ctx}: delivered records");
        match (verdict, mode) {
            (Verdict::Clean, _) | (Verdict::Torn(_), ReadMode::BestEffort) => {
                let r = res.unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                assert_eq!(r.records, k, "{ctx}");
                assert_eq!(
                    r.payload_bytes,
                    want.iter().map(|e| e.1.len() as u64).sum::<u64>(),
                    "{ctx}"
                );
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

fn check_rl_resume(st: &MemStorage, k: u64, verdict: Verdict, ctx: &str) {
    let mut st2 = st.clone();
    match verdict {
        Verdict::Corrupt(_) => {
            let e = RecordLogWriter::open(&mut st2, vec![0u8; 64], 9)
                .err()
                .expect("open must fail");
            assert!(matches!(e, Error::Corrupt { .. }), "{ctx}: {e:?}");
            assert_eq!(
                st2.segments, st.segments,
                "{ctx}: a failed open changed bytes"
            );
        }
        Verdict::Clean | Verdict::Torn(_) => {
            let w = RecordLogWriter::open(&mut st2, vec![0u8; 64], 9)
                .unwrap_or_else(|e| panic!("{ctx}: open {e:?}"));
            let (s, buf) = w.into_parts();
            if let Verdict::Torn(at) = verdict {
                assert_eq!(
                    s.segments[&RECORD_LOG_SEGMENT].len() as u64,
                    at,
                    "{ctx}: torn tail truncated"
                );
            }
            let mut w = RecordLogWriter::new(s, buf, 9);
            assert_eq!(w.next_index().unwrap(), k + 1, "{ctx}");
            assert_eq!(w.append(b"resumed").unwrap(), k + 1, "{ctx}");
            w.sync()
                .unwrap_or_else(|e| panic!("{ctx}: sync after resume: {e:?}"));
            drop(w);
            let mut want = expected(k);
            want.push((k + 1, b"resumed".to_vec()));
            let (got, res) = rl_read(&mut st2, ReadMode::Strict);
            res.unwrap_or_else(|e| panic!("{ctx}: strict read after reopen: {e:?}"));
            assert_eq!(got, want, "{ctx}: after reopen");
            assert_eq!(&st2.segments[&RECORD_LOG_SEGMENT][..6], b"DURL\x01\x02");
            let log_id =
                u64::from_le_bytes(st2.segments[&RECORD_LOG_SEGMENT][8..16].try_into().unwrap());
            assert_eq!(log_id, LOG_ID, "{ctx}: reopen keeps the log's identity");
        }
    }
}

#[test]
fn record_log_tail_matrix() {
    for ws in WRITE_SIZES {
        let b = build_record_log(ws);
        let original = b.original().clone();
        // From the end of the header: for write size 32 the header's padding comes first.
        for p in HEADER_LEN..=original.len() {
            for damage in DAMAGES {
                if damage == Damage::Truncate && p < b.data_start {
                    // See `resume_after_truncated_header_padding`.
                    continue;
                }
                let ctx = format!("record log ws {ws} {damage:?} at {p} of {}", original.len());
                let mut st = b.st.clone();
                let seg = st.segments.get_mut(&RECORD_LOG_SEGMENT).unwrap();
                apply(seg, p, damage, 0x12EC ^ ws as u64);
                let (survivors, verdict) = oracle(&original, seg, b.data_start, &b.frames);
                assert!(!matches!(verdict, Verdict::Corrupt(_)), "{ctx}");
                let k = delivered(&b, &survivors);
                check_rl_reads(&mut st, Vec::new(), k, verdict, &ctx);
                check_rl_reads(&mut st, [0u8; 64], k, verdict, &format!("{ctx} fixed64"));
                check_rl_resume(&st, k, verdict, &ctx);
            }
        }
    }
}

/// Damage inside the final segment's header (a torn creation): tolerated as a torn
/// header when it could be one, i.e. the magic survives or the bytes are unwritten.
#[test]
fn wal_final_header_tail_damage() {
    for ws in WRITE_SIZES {
        for multi in [false, true] {
            let b = build_wal(ws, multi, false);
            let hdr_end = HEADER_LEN;
            // Damaging the header alone, from p to the end of the segment, also destroys
            // the marker, so nothing proves the segment durable.
            for p in 0..hdr_end {
                for damage in DAMAGES {
                    if damage == Damage::Zero && (1..4).contains(&p) {
                        // A partial magic followed by zeros: see
                        // `torn_header_with_partial_magic_is_a_torn_creation`.
                        continue;
                    }
                    let ctx = format!("ws {ws} multi {multi} {damage:?} header at {p}");
                    let mut st = b.st.clone();
                    apply(st.segments.get_mut(&b.seg).unwrap(), p, damage, 77);
                    // A WAL segment file is ours by its name: garbage in its magic is a
                    // torn creation too (see regressions.rs).
                    for mode in MODES {
                        let (got, res) = wal_replay(&mut st, mode);
                        assert_eq!(got, expected(b.before), "{ctx} {mode:?}");
                        let torn = Location {
                            segment: b.seg,
                            offset: 0,
                        };
                        match mode {
                            ReadMode::Strict => {
                                assert_eq!(res, Err(Error::TornTail { at: torn }), "{ctx}")
                            }
                            ReadMode::BestEffort => {
                                let r = res.unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                                assert_eq!(r.torn_at, Some(torn), "{ctx}");
                                assert_eq!(r.entries, b.before, "{ctx}");
                            }
                        }
                    }
                    // Resume: replaces the torn creation and continues ids.
                    let mut w = WalWriter::open(&mut st, vec![0u8; 64], b.cfg)
                        .unwrap_or_else(|e| panic!("{ctx}: open failed: {e:?}"));
                    assert_eq!(w.current_segment(), Some(b.seg), "{ctx}");
                    assert_eq!(w.append(b"new").unwrap(), b.before + 1, "{ctx}");
                    w.sync().unwrap();
                    drop(w);
                    let mut want = expected(b.before);
                    want.push((b.before + 1, b"new".to_vec()));
                    assert_eq!(wal_strict(&mut st), want, "{ctx}");
                }
            }
        }
    }
}

/// A crash while the header is written may leave a prefix of it followed by zeros
/// (a torn write whose length reached the medium but whose data did not). A header
/// torn inside the magic (`"D"`, `"DU"`, `"DUR"` then zeros) is such a state and must be
/// treated as a torn creation like `"DURL"` + zeros or an all-zero header, not as
/// foreign content; otherwise the log cannot be opened after a legal crash.
#[test]
fn torn_header_with_partial_magic_is_a_torn_creation() {
    for ws in WRITE_SIZES {
        for multi in [false, true] {
            let b = build_wal(ws, multi, false);
            for p in 1..4 {
                let ctx = format!("ws {ws} multi {multi} zeros from {p}");
                let mut st = b.st.clone();
                apply(st.segments.get_mut(&b.seg).unwrap(), p, Damage::Zero, 0);
                let torn = Location {
                    segment: b.seg,
                    offset: 0,
                };
                let (got, res) = wal_replay(&mut st, ReadMode::Strict);
                assert_eq!(got, expected(b.before), "{ctx}");
                assert_eq!(res.unwrap_err(), Error::TornTail { at: torn }, "{ctx}");
                let (got, res) = wal_replay(&mut st, ReadMode::BestEffort);
                assert_eq!(got, expected(b.before), "{ctx}");
                assert_eq!(
                    res.unwrap_or_else(|e| panic!("{ctx}: {e:?}")).torn_at,
                    Some(torn),
                    "{ctx}"
                );
                let mut w = WalWriter::open(&mut st, vec![0u8; 64], b.cfg)
                    .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                assert_eq!(w.append(b"new").unwrap(), b.before + 1);
                w.sync().unwrap();
                drop(w);
                let mut want = expected(b.before);
                want.push((b.before + 1, b"new".to_vec()));
                assert_eq!(wal_strict(&mut st), want, "{ctx}");
            }
        }
    }
    // The record log has the same rule.
    for p in 1..4 {
        let b = build_record_log(1);
        let mut st = b.st.clone();
        apply(
            st.segments.get_mut(&RECORD_LOG_SEGMENT).unwrap(),
            p,
            Damage::Zero,
            0,
        );
        let (_, res) = rl_read(&mut st, ReadMode::BestEffort);
        assert!(res.is_ok(), "record log zeros from {p}: {res:?}");
        RecordLogWriter::open(&mut st, vec![0u8; 64], 1)
            .unwrap_or_else(|e| panic!("record log zeros from {p}: {e:?}"));
    }
}

/// With write size 32 the header is written as one 64-byte block (48 header bytes and 16
/// bytes of padding). A crash may leave the file cut inside that padding (legal: a torn
/// write). The header parses, the segment reads as clean and empty, but resuming in
/// place must not then write at offset 64 of a shorter segment (the storage contract:
/// every write starts at the segment's current write end).
#[test]
fn resume_after_truncated_header_padding() {
    for p in HEADER_LEN..64 {
        for multi in [false, true] {
            let b = build_wal(32, multi, false);
            let mut st = b.st.clone();
            st.segments.get_mut(&b.seg).unwrap().truncate(p);
            let ctx = format!("multi {multi} cut at {p}");
            // The header and its padding are one write: cut inside it, the segment is a
            // torn creation, not an empty segment to append to in place.
            let torn = Location {
                segment: b.seg,
                offset: 0,
            };
            for mode in MODES {
                let (got, res) = wal_replay(&mut st, mode);
                assert_eq!(got, expected(b.before), "{ctx} {mode:?}");
                match mode {
                    ReadMode::Strict => assert_eq!(res, Err(Error::TornTail { at: torn }), "{ctx}"),
                    ReadMode::BestEffort => assert_eq!(res.unwrap().torn_at, Some(torn), "{ctx}"),
                }
            }
            let mut w = WalWriter::open(&mut st, vec![0u8; 64], b.cfg).unwrap();
            assert_eq!(w.append(b"resumed").unwrap(), b.before + 1, "{ctx}");
            w.sync()
                .unwrap_or_else(|e| panic!("{ctx}: sync after resume: {e:?}"));
            drop(w);
            let mut want = expected(b.before);
            want.push((b.before + 1, b"resumed".to_vec()));
            assert_eq!(wal_strict(&mut st), want, "{ctx}");
        }
        let b = build_record_log(32);
        let mut st = b.st.clone();
        st.segments
            .get_mut(&RECORD_LOG_SEGMENT)
            .unwrap()
            .truncate(p);
        let mut w = RecordLogWriter::open(&mut st, vec![0u8; 64], 1).unwrap();
        assert_eq!(w.append(b"resumed").unwrap(), 1);
        w.sync()
            .unwrap_or_else(|e| panic!("record log cut at {p}: sync after reopen: {e:?}"));
        drop(w);
        assert_eq!(rl_strict(&mut st), vec![(1, b"resumed".to_vec())]);
    }
}
