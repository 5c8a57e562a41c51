//! Corruption of durable data: damage below a proven watermark of the final segment,
//! and any damage of sealed segments, is an error in both modes, never a wrong record;
//! a failed open changes nothing.

mod common;

use common::*;
use durability_core::error::{Corruption, Location};
use durability_core::mem::MemStorage;
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::{Error, ReadMode};

const LOG_ID: u64 = 0xC0DE_0000_0000_0042;
const OTHER_LOG_ID: u64 = 0xF0E1_0000_0000_0099;

fn corrupt_at(seg: u64, offset: u64, reason: Corruption) -> E {
    Error::Corrupt {
        at: Location {
            segment: seg,
            offset,
        },
        reason,
    }
}

/// Both modes fail with an error satisfying `ok_err`, deliver only a prefix of `all`,
/// and opening a writer fails without changing a byte.
#[track_caller]
fn assert_fails(
    st: &mut MemStorage,
    all: &Entries,
    cfg: WalConfig,
    ctx: &str,
    ok_err: impl Fn(&E) -> bool,
) {
    for mode in MODES {
        let (got, res) = wal_replay(st, mode);
        assert_prefix(&got, all, ctx);
        match res {
            Ok(r) => panic!(
                "{ctx} {mode:?}: replay succeeded with {} entries: {r:?}",
                got.len()
            ),
            Err(e) => assert!(ok_err(&e), "{ctx} {mode:?}: unexpected error {e:?}"),
        }
    }
    let before = st.segments.clone();
    match WalWriter::open(&mut *st, vec![0u8; 64], cfg) {
        Ok(_) => panic!("{ctx}: open succeeded on a corrupt log"),
        Err(e) => assert!(ok_err(&e), "{ctx}: open: unexpected error {e:?}"),
    }
    assert_eq!(st.segments, before, "{ctx}: a failed open changed bytes");
}

fn is_corrupt(e: &E) -> bool {
    matches!(e, Error::Corrupt { .. })
}

// ---------------------------------------------------------------------------------------
// Watermark of the final segment.

/// Entries `1..=n` with a sync after each id in `syncs`, then a flush.
fn wal_with_syncs(ws: usize, n: u64, syncs: &[u64]) -> MemStorage {
    let mut st = MemStorage::with_write_size(ws);
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
    for id in 1..=n {
        assert_eq!(w.append(&entry(id)).unwrap(), id);
        if syncs.contains(&id) {
            w.sync().unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    st
}

#[test]
fn bit_flips_below_the_watermark_are_corrupt() {
    for ws in [1, 4, 32] {
        let st = wal_with_syncs(ws, 8, &[5]);
        let original = st.segments[&1].clone();
        let (_, frames) = walk(&original, LOG_ID, 1);
        let marker = frames
            .iter()
            .find(|f| matches!(f.kind, Fk::Marker(_)))
            .unwrap();
        let Fk::Marker(wm) = marker.kind else {
            unreachable!()
        };
        let all = expected(8);
        let mut padding_flips_ok = 0;
        for f in frames.iter().filter(|f| (f.end as u64) <= wm) {
            let before = match f.kind {
                Fk::Entry(id) => id - 1,
                Fk::Marker(_) => unreachable!(),
            };
            for byte in f.start..f.end {
                for bit in 0..8 {
                    let ctx = format!("ws {ws} byte {byte} bit {bit}");
                    let mut st = st.clone();
                    st.segments.get_mut(&1).unwrap()[byte] ^= 1 << bit;
                    if byte >= f.body_end {
                        // Padding is outside the checksum: it may go unnoticed, but must
                        // never change what is read.
                        for mode in MODES {
                            let (got, res) = wal_replay(&mut st, mode);
                            assert_prefix(&got, &all, &ctx);
                            match res {
                                Ok(_) => assert_eq!(got, all, "{ctx}"),
                                Err(e) => assert!(is_corrupt(&e), "{ctx}: {e:?}"),
                            }
                        }
                        padding_flips_ok += 1;
                        continue;
                    }
                    let want = corrupt_at(1, f.start as u64, Corruption::BadFrameBelowWatermark);
                    for mode in MODES {
                        let (got, res) = wal_replay(&mut st, mode);
                        assert_eq!(got, expected(before), "{ctx} {mode:?}");
                        assert_eq!(res.unwrap_err(), want, "{ctx} {mode:?}");
                    }
                    assert_fails(&mut st, &all, WalConfig::new(LOG_ID), &ctx, |e| *e == want);
                }
            }
        }
        assert_eq!(padding_flips_ok > 0, ws > 1);
    }
}

/// Every single-bit flip anywhere in the frames of a final segment with two markers:
/// the oracle says which are proven corrupt and which are a torn tail.
#[test]
fn bit_flips_with_two_markers_follow_the_oracle() {
    for ws in [1, 4] {
        let st = wal_with_syncs(ws, 7, &[2, 4]);
        let original = st.segments[&1].clone();
        let (ds, frames) = walk(&original, LOG_ID, 1);
        assert_eq!(
            frames
                .iter()
                .filter(|f| matches!(f.kind, Fk::Marker(_)))
                .count(),
            2
        );
        let (mut corrupt, mut torn) = (0, 0);
        for byte in ds..original.len() {
            if frames.iter().any(|f| byte >= f.body_end && byte < f.end) {
                continue; // padding
            }
            for bit in 0..8 {
                let ctx = format!("ws {ws} byte {byte} bit {bit}");
                let mut st = st.clone();
                let seg = st.segments.get_mut(&1).unwrap();
                seg[byte] ^= 1 << bit;
                let (survivors, verdict) = oracle(&original, seg, ds, &frames);
                match verdict {
                    Verdict::Corrupt(_) => corrupt += 1,
                    Verdict::Torn(_) => torn += 1,
                    Verdict::Clean => panic!("{ctx}: a flipped bit reads as a clean end"),
                }
                let k = survivors.len() as u64;
                check_wal_reads(&mut st, Vec::new(), 1, k, verdict, &ctx);
                check_wal_resume(&st, 1, WalConfig::new(LOG_ID), k, verdict, &ctx);
            }
        }
        assert!(corrupt > 0 && torn > 0);
    }
}

#[test]
fn holes_follow_the_oracle() {
    // A zeroed hole anywhere: in the synced region it is corrupt (a later marker proves
    // it), in the unsynced region a torn tail even though intact frames follow it.
    for ws in [1, 4, 32] {
        let st = wal_with_syncs(ws, 8, &[5]);
        let original = st.segments[&1].clone();
        let (ds, frames) = walk(&original, LOG_ID, 1);
        let mut r = Rng(ws as u64);
        let mut holes: Vec<(usize, usize)> = frames.iter().map(|f| (f.start, f.end)).collect();
        for _ in 0..200 {
            let a = ds + r.below((original.len() - ds) as u64) as usize;
            let b = a + 1 + r.below(20) as usize;
            holes.push((a, b.min(original.len())));
        }
        for (a, b) in holes {
            let ctx = format!("ws {ws} hole {a}..{b}");
            let mut st = st.clone();
            let seg = st.segments.get_mut(&1).unwrap();
            seg[a..b].fill(0);
            let (survivors, verdict) = oracle(&original, seg, ds, &frames);
            let k = survivors.len() as u64;
            check_wal_reads(&mut st, Vec::new(), 1, k, verdict, &ctx);
            check_wal_reads(&mut st, [0u8; 64], 1, k, verdict, &ctx);
            check_wal_resume(&st, 1, WalConfig::new(LOG_ID), k, verdict, &ctx);
        }
    }
}

#[test]
fn zeroed_hole_in_unsynced_region_is_a_torn_tail() {
    let st = wal_with_syncs(1, 8, &[5]);
    let (_, frames) = walk(&st.segments[&1], LOG_ID, 1);
    // Frames: e1..e5, marker, e6, e7, e8. Zero e6: e7 and e8 are intact after the hole.
    let e6 = frames[6];
    assert_eq!(e6.kind, Fk::Entry(6));
    let mut st = st.clone();
    st.segments.get_mut(&1).unwrap()[e6.start..e6.end].fill(0);
    let at = Location {
        segment: 1,
        offset: e6.start as u64,
    };
    let (got, res) = wal_replay(&mut st, ReadMode::BestEffort);
    assert_eq!(got, expected(5));
    assert_eq!(res.unwrap().torn_at, Some(at));
    let (got, res) = wal_replay(&mut st, ReadMode::Strict);
    assert_eq!(got, expected(5));
    assert_eq!(res.unwrap_err(), Error::TornTail { at });
    // The same hole in the synced region (e3) is proven corrupt by the marker.
    let mut st2 = wal_with_syncs(1, 8, &[5]);
    let e3 = frames[2];
    st2.segments.get_mut(&1).unwrap()[e3.start..e3.end].fill(0);
    let want = corrupt_at(1, e3.start as u64, Corruption::BadFrameBelowWatermark);
    for mode in MODES {
        let (got, res) = wal_replay(&mut st2, mode);
        assert_eq!(got, expected(2));
        assert_eq!(res.unwrap_err(), want);
    }
}

/// A single-segment WAL and a record log whose only segment holds a durable marker:
/// flipping any bit of the header must not make the segment look like a torn creation
/// (which `open` would replace, destroying durable entries).
#[test]
fn final_header_bit_flips_with_marker_are_corrupt_multi_segment() {
    let mut st = MemStorage::new();
    let mut cfg = WalConfig::new(LOG_ID);
    cfg.segment_limit = 200;
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], cfg);
    let mut id = 0;
    while w.current_segment() != Some(3) {
        id += 1;
        w.append(&entry(id)).unwrap();
    }
    w.sync().unwrap();
    id += 1;
    w.append(&entry(id)).unwrap(); // writes the marker into segment 3
    w.flush().unwrap();
    drop(w);
    assert_eq!(st.segments.len(), 3);
    let all = expected(id);
    for bit in 0..48 * 8 {
        let ctx = format!("final header bit {bit}");
        let mut st = st.clone();
        st.segments.get_mut(&3).unwrap()[bit / 8] ^= 1 << (bit % 8);
        assert_fails(&mut st, &all, cfg, &ctx, |e| {
            *e == corrupt_at(3, 0, Corruption::BadSegmentHeader)
        });
    }
}

#[test]
fn final_header_bit_flips_with_marker_are_corrupt_single_segment() {
    let st = wal_with_syncs(1, 4, &[2]);
    let all = expected(4);
    for bit in 0..48 * 8 {
        let ctx = format!("wal header bit {bit}");
        let mut st = st.clone();
        st.segments.get_mut(&1).unwrap()[bit / 8] ^= 1 << (bit % 8);
        assert_fails(&mut st, &all, WalConfig::new(LOG_ID), &ctx, is_corrupt);
    }
    // The record log has the same rule.
    let mut st = MemStorage::new();
    let mut w = durability_core::recordlog::RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
    for id in 1..=4 {
        w.append(&entry(id)).unwrap();
        if id == 2 {
            w.sync().unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    for bit in 0..48 * 8 {
        let ctx = format!("record log header bit {bit}");
        let mut st = st.clone();
        st.segments.get_mut(&0).unwrap()[bit / 8] ^= 1 << (bit % 8);
        for mode in MODES {
            let (got, res) = rl_read(&mut st, mode);
            assert!(got.is_empty(), "{ctx}");
            assert!(
                matches!(res, Err(Error::Corrupt { .. })),
                "{ctx} {mode:?}: {res:?}"
            );
        }
        let before = st.segments.clone();
        let r = durability_core::recordlog::RecordLogWriter::open(&mut st, vec![0u8; 64], LOG_ID);
        assert!(r.is_err(), "{ctx}: open succeeded");
        drop(r);
        assert_eq!(st.segments, before, "{ctx}: open changed bytes");
    }
}

// ---------------------------------------------------------------------------------------
// Sealed segments.

struct Multi {
    st: MemStorage,
    cfg: WalConfig,
    n: u64,
}

/// A WAL of at least five segments (limit 200), entries with syncs sprinkled in so that
/// markers appear inside and at the ends of sealed segments.
fn multi(ws: usize, log_id: u64) -> Multi {
    let mut st = MemStorage::with_write_size(ws);
    let mut cfg = WalConfig::new(log_id);
    cfg.segment_limit = 200;
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], cfg);
    let n = 40;
    for id in 1..=n {
        assert_eq!(w.append(&entry(id)).unwrap(), id);
        if id % 3 == 0 {
            w.sync().unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    assert!(st.segments.len() >= 5, "{} segments", st.segments.len());
    assert_eq!(wal_strict(&mut st.clone()), expected(n));
    Multi { st, cfg, n }
}

fn header_of(st: &MemStorage, seg: u64) -> [u8; 48] {
    st.segments[&seg][..48].try_into().unwrap()
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn sealed_header_raw_bit_flips_are_corrupt() {
    for ws in [1, 4] {
        let m = multi(ws, LOG_ID);
        let all = expected(m.n);
        for seg in [1, 2, 3] {
            for bit in 0..48 * 8 {
                let ctx = format!("ws {ws} segment {seg} header bit {bit}");
                let mut st = m.st.clone();
                st.segments.get_mut(&seg).unwrap()[bit / 8] ^= 1 << (bit % 8);
                let want = corrupt_at(seg, 0, Corruption::BadSegmentHeader);
                assert_fails(&mut st, &all, m.cfg, &ctx, |e| *e == want);
            }
        }
    }
}

/// Header fields changed with a recomputed checksum: the structure checks catch them.
#[test]
fn sealed_header_resealed_field_changes_are_corrupt() {
    for ws in [1, 4] {
        let m = multi(ws, LOG_ID);
        let all = expected(m.n);
        let last = *m.st.segments.keys().last().unwrap();
        for seg in 1..=last {
            for bit in 0..44 * 8 {
                let byte = bit / 8;
                let ctx = format!("ws {ws} segment {seg} resealed header bit {bit}");
                let mut st = m.st.clone();
                let s = st.segments.get_mut(&seg).unwrap();
                s[byte] ^= 1 << (bit % 8);
                let crc = ref_crc32c(&s[..44]);
                s[44..48].copy_from_slice(&crc.to_le_bytes());
                let specific: Option<Corruption> = match byte {
                    8..16 if seg > 1 => Some(Corruption::ForeignSegment),
                    16..24 if seg > 1 => Some(Corruption::SegmentNumberMismatch),
                    24..32 if seg > 1 => Some(Corruption::EntryIdGap),
                    _ => None,
                };
                if byte == 4 {
                    // Another version with a valid checksum: not readable by this build.
                    let v = s[4];
                    assert_fails(&mut st, &all, m.cfg, &ctx, |e| {
                        *e == Error::UnsupportedVersion(v)
                    });
                    continue;
                }
                if seg == 1 && (16..24).contains(&byte) {
                    // See `lowest_segment_number_is_checked`.
                    continue;
                }
                if seg == 1 && (32..40).contains(&byte) {
                    // The lowest segment's prev_end has no predecessor to seal (it is
                    // nonzero after leading segments were removed): unused, harmless.
                    for mode in MODES {
                        let (got, res) = wal_replay(&mut st, mode);
                        assert!(res.is_ok(), "{ctx}: {res:?}");
                        assert_eq!(got, all, "{ctx}");
                    }
                    continue;
                }
                if seg == last && specific.is_none() && !(32..40).contains(&byte) {
                    // The final segment is read under the final segment's rules (a
                    // changed alignment may read as a torn tail): never a wrong record.
                    for mode in MODES {
                        let (got, _) = wal_replay(&mut st, mode);
                        assert_prefix(&got, &all, &ctx);
                    }
                    continue;
                }
                assert_fails(&mut st, &all, m.cfg, &ctx, |e| match specific {
                    Some(reason) => {
                        matches!(e, Error::Corrupt { at, reason: r } if *r == reason && at.segment == seg)
                    }
                    None => is_corrupt(e),
                });
            }
        }
    }
}

#[test]
fn sealed_frame_bit_flips_are_corrupt() {
    for ws in [1, 4] {
        let m = multi(ws, LOG_ID);
        let all = expected(m.n);
        let last = *m.st.segments.keys().last().unwrap();
        let mut r = Rng(99 + ws as u64);
        for seg in 1..last {
            let bytes = &m.st.segments[&seg];
            let log_id = u64_at(bytes, 8);
            // The sealed extent is what the successor's header says.
            let prev_end = u64_at(&header_of(&m.st, seg + 1), 32) as usize;
            assert_eq!(prev_end, bytes.len(), "nothing was written after the seal");
            let (_, frames) = walk(bytes, log_id, seg);
            assert!(frames.iter().any(|f| matches!(f.kind, Fk::Marker(_))));
            for f in &frames {
                // Every bit of each frame header, a sample of payload bits.
                let mut bits: Vec<usize> = (f.start * 8..(f.start + 8) * 8).collect();
                for _ in 0..8 {
                    if f.body_end > f.start + 8 {
                        bits.push(
                            (f.start + 8) * 8
                                + r.below(((f.body_end - f.start - 8) * 8) as u64) as usize,
                        );
                    }
                }
                for bit in bits {
                    let ctx = format!("ws {ws} segment {seg} frame at {} bit {bit}", f.start);
                    let mut st = m.st.clone();
                    st.segments.get_mut(&seg).unwrap()[bit / 8] ^= 1 << (bit % 8);
                    let want = corrupt_at(seg, f.start as u64, Corruption::BadFrameInSealedSegment);
                    assert_fails(&mut st, &all, m.cfg, &ctx, |e| *e == want);
                }
            }
        }
    }
}

#[test]
fn missing_middle_segment() {
    let m = multi(1, LOG_ID);
    let all = expected(m.n);
    let last = *m.st.segments.keys().last().unwrap();
    for gone in 2..last {
        let mut st = m.st.clone();
        st.segments.remove(&gone);
        let want = corrupt_at(gone, 0, Corruption::MissingSegment);
        assert_fails(
            &mut st,
            &all,
            m.cfg,
            &format!("segment {gone} removed"),
            |e| *e == want,
        );
    }
    // Two gone.
    let mut st = m.st.clone();
    st.segments.remove(&2);
    st.segments.remove(&3);
    assert_fails(&mut st, &all, m.cfg, "segments 2, 3 removed", |e| {
        *e == corrupt_at(2, 0, Corruption::MissingSegment)
    });
}

#[test]
fn leading_segments_removed_reads_the_suffix() {
    // Segments below the first present one may be removed (a checkpoint covers them):
    // the rest reads as a suffix starting at that segment's first id.
    let m = multi(1, LOG_ID);
    let mut st = m.st.clone();
    st.segments.remove(&1);
    let first = u64_at(&header_of(&st, 2), 24);
    assert!(first > 1);
    let (got, res) = wal_replay(&mut st, ReadMode::Strict);
    let r = res.unwrap();
    assert_eq!(r.first_id, Some(first));
    assert_eq!(got, expected(m.n)[first as usize - 1..].to_vec());
}

#[test]
fn duplicated_segment_is_corrupt() {
    let m = multi(1, LOG_ID);
    let all = expected(m.n);
    let last = *m.st.segments.keys().last().unwrap();
    for (from, to) in [(2, 3), (3, 2), (1, 2), (2, last), (last - 1, last)] {
        let mut st = m.st.clone();
        let copy = st.segments[&from].clone();
        st.segments.insert(to, copy);
        assert_fails(
            &mut st,
            &all,
            m.cfg,
            &format!("segment {from} copied over {to}"),
            is_corrupt,
        );
    }
}

#[test]
fn foreign_segment_is_corrupt() {
    let ours = multi(1, LOG_ID);
    let theirs = multi(1, OTHER_LOG_ID);
    assert_eq!(ours.st.segments.len(), theirs.st.segments.len());
    let all = expected(ours.n);
    let last = *ours.st.segments.keys().last().unwrap();
    for seg in 2..=last {
        let mut st = ours.st.clone();
        st.segments.insert(seg, theirs.st.segments[&seg].clone());
        let want = corrupt_at(seg, 0, Corruption::ForeignSegment);
        assert_fails(
            &mut st,
            &all,
            ours.cfg,
            &format!("foreign segment {seg}"),
            |e| *e == want,
        );
    }
    // Theirs with our first segment.
    let mut st = theirs.st.clone();
    st.segments.insert(1, ours.st.segments[&1].clone());
    assert_fails(
        &mut st,
        &all,
        ours.cfg,
        "foreign segments after ours",
        is_corrupt,
    );
    // A record-log segment dropped into a WAL.
    let mut st = ours.st.clone();
    let mut rl = MemStorage::new();
    let mut w = durability_core::recordlog::RecordLogWriter::new(&mut rl, vec![0u8; 64], LOG_ID);
    w.append(b"r").unwrap();
    w.flush().unwrap();
    drop(w);
    let mut bytes = rl.segments[&0].clone();
    // Make it claim to be segment 3 of this log, with a valid checksum.
    bytes[16..24].copy_from_slice(&3u64.to_le_bytes());
    let crc = ref_crc32c(&bytes[..44]);
    bytes[44..48].copy_from_slice(&crc.to_le_bytes());
    st.segments.insert(3, bytes);
    assert_fails(
        &mut st,
        &all,
        ours.cfg,
        "record log as segment 3",
        is_corrupt,
    );
}

#[test]
fn stale_bytes_after_a_seal_are_ignored() {
    for ws in [1, 4] {
        let m = multi(ws, LOG_ID);
        let all = expected(m.n);
        let last = *m.st.segments.keys().last().unwrap();
        let mut r = Rng(5);
        for seg in 1..last {
            for tail in 0..4 {
                let mut st = m.st.clone();
                let s = st.segments.get_mut(&seg).unwrap();
                match tail {
                    0 => s.extend((0..100).map(|_| r.byte())),
                    1 => s.extend([0u8; 64]),
                    2 => s.extend([0xFFu8; 64]),
                    _ => {
                        // A valid-looking frame of this segment with the next id.
                        let next = u64_at(&header_of(&m.st, seg + 1), 24);
                        s.extend(spec_entry(LOG_ID, seg, next, b"stale", ws));
                    }
                }
                for mode in MODES {
                    let (got, res) = wal_replay(&mut st, mode);
                    let rep = res.unwrap_or_else(|e| {
                        panic!("ws {ws} seg {seg} tail {tail} {mode:?}: {e:?}")
                    });
                    assert_eq!(got, all);
                    assert_eq!(rep.torn_at, None);
                }
                let mut w = WalWriter::open(&mut st, vec![0u8; 64], m.cfg).unwrap();
                assert_eq!(w.append(b"more").unwrap(), m.n + 1);
                w.sync().unwrap();
                drop(w);
                let mut want = all.clone();
                want.push((m.n + 1, b"more".to_vec()));
                assert_eq!(wal_strict(&mut st), want);
            }
        }
    }
}

#[test]
fn sealed_segment_cut_short_is_corrupt() {
    // Truncating a sealed segment below its successor's prev_end, anywhere.
    let m = multi(1, LOG_ID);
    let all = expected(m.n);
    let len = m.st.segments[&2].len();
    for cut in 0..len {
        let mut st = m.st.clone();
        st.segments.get_mut(&2).unwrap().truncate(cut);
        assert_fails(
            &mut st,
            &all,
            m.cfg,
            &format!("segment 2 cut at {cut}"),
            is_corrupt,
        );
    }
    // Zeroing its tail is corrupt as well (no clean end inside a sealed segment).
    let original = m.st.segments[&2].clone();
    for from in 48..len {
        if original[from..].iter().all(|&b| b == 0) {
            continue; // nothing changes
        }
        let mut st = m.st.clone();
        st.segments.get_mut(&2).unwrap()[from..].fill(0);
        assert_fails(
            &mut st,
            &all,
            m.cfg,
            &format!("segment 2 zeroed from {from}"),
            is_corrupt,
        );
    }
}

/// The lowest segment's header must name the segment it is stored as, like every other
/// one. A copy of segment 3 stored as segment 1 (a restored backup, a copy under the
/// wrong name) or a resealed segment number must be corrupt, not be followed to
/// another segment (skipping segment 2 silently) or to a missing one.
#[test]
fn lowest_segment_number_is_checked() {
    let m = multi(1, LOG_ID);
    let all = expected(m.n);
    let mut st = m.st.clone();
    let copy = st.segments[&3].clone();
    st.segments.insert(1, copy);
    assert_fails(&mut st, &all, m.cfg, "segment 3 copied over 1", |e| {
        *e == corrupt_at(1, 0, Corruption::SegmentNumberMismatch)
    });
    // A record-log file in the WAL's lowest slot: reported where it is stored.
    let mut st = m.st.clone();
    let mut rl = MemStorage::new();
    let mut w = durability_core::recordlog::RecordLogWriter::new(&mut rl, vec![0u8; 64], LOG_ID);
    w.append(b"r").unwrap();
    w.flush().unwrap();
    drop(w);
    st.segments.insert(1, rl.segments[&0].clone());
    assert_fails(
        &mut st,
        &all,
        m.cfg,
        "record log as segment 1",
        |e| matches!(e, Error::Corrupt { at, .. } if at.segment == 1),
    );
    for bit in 16 * 8..24 * 8 {
        let mut st = m.st.clone();
        let s = st.segments.get_mut(&1).unwrap();
        s[bit / 8] ^= 1 << (bit % 8);
        let crc = ref_crc32c(&s[..44]);
        s[44..48].copy_from_slice(&crc.to_le_bytes());
        assert_fails(
            &mut st,
            &all,
            m.cfg,
            &format!("segment 1 number bit {bit}"),
            |e| *e == corrupt_at(1, 0, Corruption::SegmentNumberMismatch),
        );
    }
}
