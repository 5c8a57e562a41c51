//! Regression tests for specific failure modes of crash-consistent logs.

mod common;

use common::*;
use durability_core::error::{Corruption, Location};
use durability_core::mem::MemStorage;
use durability_core::recordlog::{RecordLogWriter, RECORD_LOG_SEGMENT};
use durability_core::wal::{WalConfig, WalReader, WalWriter};
use durability_core::{Error, ReadMode};

const LOG_ID: u64 = 0xBEEF_0000_0000_0007;

fn cfg() -> WalConfig {
    WalConfig::new(LOG_ID)
}

fn corrupt_at(seg: u64, offset: u64, reason: Corruption) -> E {
    Error::Corrupt {
        at: Location {
            segment: seg,
            offset,
        },
        reason,
    }
}

/// Appends `payloads` (ids from 1), syncing after the ids in `syncs`, then flushes.
fn wal_of(ws: usize, payloads: &[&[u8]], syncs: &[u64]) -> MemStorage {
    let mut st = MemStorage::with_write_size(ws);
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], cfg());
    for (i, p) in payloads.iter().enumerate() {
        let id = w.append(p).unwrap();
        assert_eq!(id, i as u64 + 1);
        if syncs.contains(&id) {
            w.sync().unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    st
}

fn as_entries(payloads: &[&[u8]]) -> Entries {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 + 1, p.to_vec()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Zeroed and erased space.

#[test]
fn zero_body_never_decodes_as_empty_records() {
    for ws in [1, 4, 32] {
        for zeros in [1usize, 7, 8, 9, 24, 100, 1000] {
            let ctx = format!("ws {ws} zeros {zeros}");
            // A WAL with a header only, then zeros.
            let mut st = wal_of(ws, &[], &[]);
            assert_eq!(st.segments[&1].len(), align_up(48, ws));
            st.segments.get_mut(&1).unwrap().extend(vec![0u8; zeros]);
            for mode in MODES {
                let (got, res) = wal_replay(&mut st, mode);
                assert!(got.is_empty(), "{ctx}: zeros decoded as {got:?}");
                let r = res.unwrap_or_else(|e| panic!("{ctx} {mode:?}: {e:?}"));
                assert_eq!((r.entries, r.next_id, r.torn_at), (0, 1, None), "{ctx}");
            }
            // Entries, then zeros: exactly the entries.
            let mut st = wal_of(ws, &[b"a", b"", b"ccc"], &[2]);
            st.segments.get_mut(&1).unwrap().extend(vec![0u8; zeros]);
            for mode in MODES {
                let (got, res) = wal_replay(&mut st, mode);
                assert_eq!(got, as_entries(&[b"a", b"", b"ccc"]), "{ctx}");
                assert_eq!(res.unwrap().torn_at, None, "{ctx}");
            }
            // The record log.
            let mut st = MemStorage::with_write_size(ws);
            let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
            w.flush().unwrap();
            drop(w);
            st.segments
                .get_mut(&RECORD_LOG_SEGMENT)
                .unwrap()
                .extend(vec![0u8; zeros]);
            for mode in MODES {
                let (got, res) = rl_read(&mut st, mode);
                assert!(got.is_empty(), "{ctx}");
                assert_eq!(res.unwrap().torn_at, None, "{ctx}");
            }
        }
    }
}

#[test]
fn erased_body_on_a_zero_medium_is_torn_not_records() {
    // 0xFF is not unwritten space on a file-like medium: a torn tail, never records.
    let mut st = wal_of(1, &[b"a"], &[]);
    let end = st.segments[&1].len() as u64;
    st.segments.get_mut(&1).unwrap().extend([0xFFu8; 64]);
    let (got, res) = wal_replay(&mut st, ReadMode::BestEffort);
    assert_eq!(got, as_entries(&[b"a"]));
    assert_eq!(
        res.unwrap().torn_at,
        Some(Location {
            segment: 1,
            offset: end
        })
    );
    let (got, res) = wal_replay(&mut st, ReadMode::Strict);
    assert_eq!(got, as_entries(&[b"a"]));
    assert_eq!(
        res.unwrap_err(),
        Error::TornTail {
            at: Location {
                segment: 1,
                offset: end
            }
        }
    );
}

#[test]
fn erased_space_is_unwritten_on_an_erased_medium() {
    for ws in [1, 4] {
        let mut st = wal_of(ws, &[b"a", b"bb"], &[1]);
        st.segments.get_mut(&1).unwrap().extend([0xFFu8; 100]);
        let mut er = Medium::erased(st);
        for mode in MODES {
            let mut got = Vec::new();
            let r = WalReader::new(&mut er, Vec::new())
                .replay(mode, |id, p| {
                    got.push((id, p.to_vec()));
                    Ok(())
                })
                .unwrap();
            assert_eq!(got, as_entries(&[b"a", b"bb"]));
            assert_eq!(r.torn_at, None);
        }
        // Zeros are not unwritten there: a torn tail.
        let mut st = wal_of(ws, &[b"a"], &[]);
        let end = st.segments[&1].len() as u64;
        st.segments.get_mut(&1).unwrap().extend([0u8; 16]);
        let mut er = Medium::erased(st);
        let r = WalReader::new(&mut er, Vec::new()).replay(ReadMode::Strict, |_, _| Ok(()));
        assert_eq!(
            r.unwrap_err(),
            Error::TornTail {
                at: Location {
                    segment: 1,
                    offset: end
                }
            }
        );
    }
}

#[test]
fn zero_filled_tail_opens_and_continues() {
    for ws in [1, 4, 32] {
        let payloads: [&[u8]; 4] = [b"one", b"two", b"three", b"four"];
        let mut st = wal_of(ws, &payloads, &[2]);
        let len = st.segments[&1].len();
        st.segments.get_mut(&1).unwrap().extend(vec![0u8; 4096]); // preallocated space
        let mut w = WalWriter::open(&mut st, vec![0u8; 64], cfg()).unwrap();
        assert_eq!(w.next_id().unwrap(), 5);
        assert_eq!(w.last_id().unwrap(), Some(4));
        assert_eq!(
            w.current_segment(),
            Some(1),
            "a clean tail continues in place"
        );
        assert_eq!(w.append(b"five").unwrap(), 5);
        w.sync().unwrap();
        assert_eq!(w.append(b"six").unwrap(), 6);
        w.flush().unwrap();
        drop(w);
        assert!(st.segments[&1].len() > len);
        let mut want = as_entries(&payloads);
        want.push((5, b"five".to_vec()));
        want.push((6, b"six".to_vec()));
        assert_eq!(wal_strict(&mut st), want, "ws {ws}");
        // The record log likewise.
        let mut st = MemStorage::with_write_size(ws);
        let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
        w.append(b"r1").unwrap();
        w.sync().unwrap();
        w.append(b"r2").unwrap();
        w.flush().unwrap();
        drop(w);
        st.segments.get_mut(&0).unwrap().extend(vec![0u8; 1000]);
        let mut w = RecordLogWriter::open(&mut st, vec![0u8; 64], 1).unwrap();
        assert_eq!(w.append(b"r3").unwrap(), 3);
        w.sync().unwrap();
        drop(w);
        assert_eq!(rl_strict(&mut st), as_entries(&[b"r1", b"r2", b"r3"]));
    }
}

// ---------------------------------------------------------------------------------------
// Length fields and implicit ids.

fn set_len(seg: &mut [u8], at: usize, len: u32) {
    let word = u32::from_le_bytes(seg[at + 4..at + 8].try_into().unwrap());
    let word = (word & 0xF000_0000) | len;
    seg[at + 4..at + 8].copy_from_slice(&word.to_le_bytes());
}

#[test]
fn inflated_length_below_a_marker_is_corrupt() {
    // e1 e2 M1 e3 e4 M2 e5 e6
    let payloads: [&[u8]; 6] = [b"e1", b"e2", b"e3-", b"e4--", b"e5---", b"e6"];
    for ws in [1, 4] {
        let st = wal_of(ws, &payloads, &[2, 4]);
        let (_, frames) = walk(&st.segments[&1], LOG_ID, 1);
        let e3 = frames[3];
        let e5 = frames[6];
        assert_eq!((e3.kind, e5.kind), (Fk::Entry(3), Fk::Entry(5)));
        let seg_len = st.segments[&1].len() as u32;
        for inflated in [4u32, 5, 24, 40, seg_len, 0x00FF_FFFF, 64 * 1024 * 1024] {
            // e3 is below M2's watermark: a later marker proves it durable.
            let mut s = st.clone();
            set_len(s.segments.get_mut(&1).unwrap(), e3.start, inflated);
            let want = corrupt_at(1, e3.start as u64, Corruption::BadFrameBelowWatermark);
            for mode in MODES {
                let (got, res) = wal_replay(&mut s, mode);
                assert_eq!(got, as_entries(&payloads[..2]), "len {inflated}");
                assert_eq!(res.unwrap_err(), want, "ws {ws} len {inflated} {mode:?}");
            }
            // e5 is after the last marker: a torn tail.
            if inflated == 5 {
                continue; // e5's real length
            }
            let mut s = st.clone();
            set_len(s.segments.get_mut(&1).unwrap(), e5.start, inflated);
            let at = Location {
                segment: 1,
                offset: e5.start as u64,
            };
            let (got, res) = wal_replay(&mut s, ReadMode::BestEffort);
            assert_eq!(got, as_entries(&payloads[..4]));
            assert_eq!(res.unwrap().torn_at, Some(at));
            let (_, res) = wal_replay(&mut s, ReadMode::Strict);
            assert_eq!(res.unwrap_err(), Error::TornTail { at });
        }
    }
}

#[test]
fn inflated_length_in_a_sealed_segment_is_corrupt() {
    let mut st = MemStorage::new();
    let mut c = cfg();
    c.segment_limit = 120;
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], c);
    for id in 1..=12 {
        w.append(&entry(id)).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    assert!(st.segments.len() >= 3);
    let (_, frames) = walk(&st.segments[&1], LOG_ID, 1);
    for f in &frames {
        for inflated in [1u32, 100, 1000] {
            let mut s = st.clone();
            let len = (f.body_end - f.start - 8) as u32;
            set_len(s.segments.get_mut(&1).unwrap(), f.start, len + inflated);
            let want = corrupt_at(1, f.start as u64, Corruption::BadFrameInSealedSegment);
            for mode in MODES {
                assert_eq!(wal_replay(&mut s, mode).1.unwrap_err(), want);
            }
        }
    }
}

#[test]
fn swapped_frames_fail_the_checksum() {
    // Equal-length frames, even equal payloads: the implicit entry id is in the checksum.
    for payloads in [
        [b"aaaa", b"bbbb", b"cccc", b"dddd"],
        [b"same", b"same", b"same", b"same"],
    ] {
        let payloads: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
        // Unsynced: swapping frames 2 and 3 is a torn tail at frame 2.
        let st = wal_of(1, &payloads, &[]);
        let (_, frames) = walk(&st.segments[&1], LOG_ID, 1);
        let (a, b) = (frames[1], frames[2]);
        let swap = |s: &mut MemStorage| {
            let seg = s.segments.get_mut(&1).unwrap();
            let fa = seg[a.start..a.end].to_vec();
            let fb = seg[b.start..b.end].to_vec();
            seg[a.start..a.end].copy_from_slice(&fb);
            seg[b.start..b.end].copy_from_slice(&fa);
        };
        let mut s = st.clone();
        swap(&mut s);
        assert_ne!(s.segments[&1], st.segments[&1]);
        let at = Location {
            segment: 1,
            offset: a.start as u64,
        };
        let (got, res) = wal_replay(&mut s, ReadMode::BestEffort);
        assert_eq!(got, as_entries(&payloads[..1]));
        assert_eq!(res.unwrap().torn_at, Some(at));
        // Synced after 4, with a marker after (a fifth entry writes it): corrupt.
        let mut p5 = payloads.clone();
        p5.push(b"tail");
        let st = wal_of(1, &p5, &[4]);
        let mut s = st.clone();
        swap(&mut s);
        for mode in MODES {
            let (got, res) = wal_replay(&mut s, mode);
            assert_eq!(got, as_entries(&payloads[..1]));
            assert_eq!(
                res.unwrap_err(),
                corrupt_at(1, a.start as u64, Corruption::BadFrameBelowWatermark)
            );
        }
    }
}

#[test]
fn frames_moved_between_segments_or_logs_fail_the_checksum() {
    // Two logs with identical content but different ids and a rotation: a frame copied
    // to the same offset of another segment, or of the other log, does not verify.
    let build = |log_id: u64| {
        let mut st = MemStorage::new();
        let mut c = WalConfig::new(log_id);
        c.segment_limit = 100;
        let mut w = WalWriter::new(&mut st, vec![0u8; 64], c);
        for _ in 0..12 {
            w.append(b"same-payload").unwrap();
        }
        w.flush().unwrap();
        drop(w);
        st
    };
    let ours = build(LOG_ID);
    let theirs = build(LOG_ID ^ 0xFFFF);
    assert!(ours.segments.len() >= 3);
    let (_, f2) = walk(&ours.segments[&2], LOG_ID, 2);
    let (_, f1) = walk(&ours.segments[&1], LOG_ID, 1);
    let f = f2[0];
    // Segment 1's first frame copied over segment 2's first frame: different segment
    // and id in the checksum.
    let mut s = ours.clone();
    let src = ours.segments[&1][f1[0].start..f1[0].end].to_vec();
    s.segments.get_mut(&2).unwrap()[f.start..f.end].copy_from_slice(&src);
    for mode in MODES {
        assert!(matches!(
            wal_replay(&mut s, mode).1,
            Err(Error::Corrupt { .. })
        ));
    }
    // The other log's frame at the same place: different log id.
    let mut s = ours.clone();
    let src = theirs.segments[&2][f.start..f.end].to_vec();
    assert_ne!(src, ours.segments[&2][f.start..f.end]);
    s.segments.get_mut(&2).unwrap()[f.start..f.end].copy_from_slice(&src);
    for mode in MODES {
        assert_eq!(
            wal_replay(&mut s, mode).1.unwrap_err(),
            corrupt_at(2, f.start as u64, Corruption::BadFrameInSealedSegment)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Writers on existing logs.

#[test]
fn new_writer_on_existing_log_continues_and_never_truncates() {
    for torn in [false, true] {
        let payloads: [&[u8]; 3] = [b"alpha", b"beta", b"gamma"];
        let mut st = wal_of(1, &payloads, &[1]);
        if torn {
            let seg = st.segments.get_mut(&1).unwrap();
            let n = seg.len();
            seg.truncate(n - 2);
        }
        let before = st.segments.clone();
        let other = WalConfig {
            segment_limit: 1 << 20,
            log_id: 0x1111,
            first_id: 500,
            covered_through: 0,
        };
        let mut w = WalWriter::new(&mut st, vec![0u8; 64], other);
        // The log's own identity and ids win over the config of a new log.
        let next = if torn { 3 } else { 4 };
        assert_eq!(w.next_id().unwrap(), next);
        assert_eq!(w.log_id(), LOG_ID);
        assert_eq!(w.append(b"delta").unwrap(), next);
        w.sync().unwrap();
        drop(w);
        // Nothing that existed was truncated or overwritten.
        for (n, old) in &before {
            let now = &st.segments[n];
            assert!(now.len() >= old.len(), "torn {torn}: segment {n} shrank");
            assert_eq!(
                &now[..old.len()],
                &old[..],
                "torn {torn}: segment {n} rewritten"
            );
        }
        let mut want = as_entries(&payloads[..next as usize - 1]);
        want.push((next, b"delta".to_vec()));
        assert_eq!(wal_strict(&mut st), want);
        for s in st.segments.keys() {
            let log_id = u64::from_le_bytes(st.segments[s][8..16].try_into().unwrap());
            assert_eq!(log_id, LOG_ID);
        }
    }
}

#[test]
fn lazy_writer_does_no_io_until_used() {
    let mut st = MemStorage::new();
    let w = WalWriter::new(&mut st, vec![0u8; 64], cfg());
    drop(w);
    assert!(st.segments.is_empty());
    let w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
    drop(w);
    assert!(st.segments.is_empty());
}

fn not_ours() -> Vec<u8> {
    let mut v = b"#!/bin/sh\necho this file is not a log, do not overwrite it\n".to_vec();
    v.extend((0..200u32).map(|i| (i * 7) as u8));
    v
}

/// A WAL segment file is ours by its name (`wal/<n>.seg`): an unreadable header in the
/// highest one is a torn creation (a crash can leave a header sector of random bytes),
/// unless a valid sync marker inside proves it was durable (see corruption.rs). What
/// `open` may replace is only that segment; everything else is left as it was.
#[test]
fn garbage_in_the_highest_wal_segment_is_a_torn_creation() {
    // As the only segment.
    let mut st = MemStorage::new();
    st.segments.insert(1, not_ours());
    let (got, r) = wal_replay(&mut st, ReadMode::BestEffort);
    assert!(got.is_empty());
    assert_eq!(
        r.unwrap().torn_at,
        Some(Location {
            segment: 1,
            offset: 0
        })
    );
    assert!(matches!(
        wal_replay(&mut st, ReadMode::Strict).1,
        Err(Error::TornTail { .. })
    ));
    let mut w = WalWriter::open(&mut st, vec![0u8; 64], cfg()).unwrap();
    assert_eq!(w.append(b"x").unwrap(), 1);
    w.sync().unwrap();
    drop(w);
    assert_eq!(wal_strict(&mut st), vec![(1, b"x".to_vec())]);

    // As the highest segment after valid ones: those are untouched, ids continue.
    let mut st = wal_of(1, &[b"a", b"b"], &[1]);
    let seg1 = st.segments[&1].clone();
    st.segments.insert(2, not_ours());
    let mut w = WalWriter::open(&mut st, vec![0u8; 64], cfg()).unwrap();
    assert_eq!(w.append(b"c").unwrap(), 3);
    w.sync().unwrap();
    drop(w);
    assert_eq!(st.segments[&1], seg1);
    assert_eq!(
        wal_strict(&mut st),
        vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]
    );
}

#[test]
fn resume_never_destroys_foreign_content() {
    // A valid record-log file where the WAL expects its segment: not ours either.
    let mut st = MemStorage::new();
    let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
    w.append(b"record").unwrap();
    w.sync().unwrap();
    drop(w);
    let rl = st.segments.remove(&0).unwrap();
    st.segments.insert(1, rl);
    let before = st.segments.clone();
    let e = WalWriter::open(&mut st, vec![0u8; 64], cfg())
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            Error::Corrupt {
                reason: Corruption::ForeignSegment,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(st.segments, before);

    // The record log: foreign bytes, and a WAL segment in its place.
    for bytes in [not_ours(), wal_of(1, &[b"w"], &[]).segments[&1].clone()] {
        let mut st = MemStorage::new();
        st.segments.insert(0, bytes);
        let before = st.segments.clone();
        for mode in MODES {
            assert!(matches!(
                rl_read(&mut st, mode).1,
                Err(Error::Corrupt { .. })
            ));
        }
        let r = RecordLogWriter::open(&mut st, vec![0u8; 64], LOG_ID);
        assert!(matches!(r, Err(Error::Corrupt { .. })));
        drop(r);
        assert_eq!(st.segments, before);
    }
}

#[test]
fn empty_or_short_segment_is_a_torn_creation() {
    // A crash right after creating segment 1 (or while writing its header).
    for len in [0usize, 1, 4, 20, 47] {
        let mut st = MemStorage::new();
        st.segments
            .insert(1, spec_header(1, 0, LOG_ID, 1, 1, 0)[..len].to_vec());
        let (got, res) = wal_replay(&mut st, ReadMode::BestEffort);
        assert!(got.is_empty());
        assert_eq!(
            res.unwrap().torn_at,
            Some(Location {
                segment: 1,
                offset: 0
            })
        );
        let (_, res) = wal_replay(&mut st, ReadMode::Strict);
        assert_eq!(
            res.unwrap_err(),
            Error::TornTail {
                at: Location {
                    segment: 1,
                    offset: 0
                }
            }
        );
        let mut w = WalWriter::open(&mut st, vec![0u8; 64], cfg()).unwrap();
        assert_eq!(w.append(b"first").unwrap(), 1);
        w.sync().unwrap();
        drop(w);
        assert_eq!(wal_strict(&mut st), as_entries(&[b"first"]));
    }
}

#[test]
fn replay_from_delivers_the_suffix() {
    let mut st = MemStorage::new();
    let mut c = cfg();
    c.segment_limit = 150;
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], c);
    for id in 1..=20 {
        w.append(&entry(id)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    for from in [0, 1, 2, 7, 20, 21, 100] {
        let mut got = Vec::new();
        let r = WalReader::new(&mut st, Vec::new())
            .replay_from(ReadMode::Strict, from, |id, p| {
                got.push((id, p.to_vec()));
                Ok(())
            })
            .unwrap();
        let want: Entries = expected(20)
            .into_iter()
            .filter(|(id, _)| *id >= from)
            .collect();
        assert_eq!(got, want, "from {from}");
        assert_eq!(r.entries, want.len() as u64, "from {from}");
        assert_eq!(r.next_id, 21);
        assert_eq!(r.first_id, Some(1));
    }
}

/// `ReplayReport::payload_bytes` is documented as "Payload bytes delivered", like
/// `entries` counts delivered entries; with `replay_from` it must not count the
/// payloads of skipped entries.
#[test]
fn replay_from_payload_bytes_counts_delivered_only() {
    let mut st = wal_of(1, &[b"1111", b"22", b"333"], &[]);
    let mut delivered = 0;
    let r = WalReader::new(&mut st, Vec::new())
        .replay_from(ReadMode::Strict, 2, |_, p| {
            delivered += p.len() as u64;
            Ok(())
        })
        .unwrap();
    assert_eq!(delivered, 5);
    assert_eq!(r.entries, 2);
    assert_eq!(r.payload_bytes, delivered);
}

#[test]
fn callback_errors_stop_the_replay() {
    let mut st = wal_of(1, &[b"a", b"b", b"c"], &[]);
    let mut seen = 0;
    let r = WalReader::new(&mut st, Vec::new()).replay(ReadMode::Strict, |id, _| {
        seen += 1;
        if id == 2 {
            Err(Error::Decode { entry_id: id })
        } else {
            Ok(())
        }
    });
    assert_eq!(r.unwrap_err(), Error::Decode { entry_id: 2 });
    assert_eq!(seen, 2);
}

#[test]
fn medium_without_resume_in_place_starts_a_new_segment() {
    let mut m = Medium::erased(MemStorage::with_write_size(4));
    m.resume = false;
    let mut w = WalWriter::new(&mut m, vec![0u8; 64], cfg());
    w.append(b"a").unwrap();
    w.sync().unwrap();
    drop(w);
    for round in 0..3u64 {
        let mut w = WalWriter::open(&mut m, vec![0u8; 64], cfg()).unwrap();
        assert_eq!(
            w.current_segment(),
            Some(round + 2),
            "never appends after a reopen"
        );
        assert_eq!(w.append(b"b").unwrap(), round + 2);
        w.sync().unwrap();
    }
    let mut got = Vec::new();
    WalReader::new(&mut m, Vec::new())
        .replay(ReadMode::Strict, |id, p| {
            got.push((id, p.to_vec()));
            Ok(())
        })
        .unwrap();
    assert_eq!(got, as_entries(&[b"a", b"b", b"b", b"b"]));
    // A record log needs to append after reopening.
    let mut m = Medium::erased(MemStorage::new());
    let mut w = RecordLogWriter::new(&mut m, vec![0u8; 64], LOG_ID);
    w.append(b"r").unwrap();
    w.sync().unwrap();
    drop(w);
    m.resume = false;
    let r = RecordLogWriter::open(&mut m, vec![0u8; 64], LOG_ID);
    assert!(matches!(r, Err(Error::InvalidConfig(_))));
}

/// A checkpoint store holding a segment with a number near `u64::MAX` (a damaged flash
/// header's seq, or a stray file) next to real checkpoints: the newest-first walk
/// visits the segments present, not every number in the gap (it used to count down
/// through the gap, a hang). `latest`, `retain_newest` and a write on the store all
/// return promptly; the stray segment, not a valid checkpoint, is never chosen.
#[test]
fn checkpoint_walk_skips_gaps_in_segment_numbers() {
    use durability_core::checkpoint::CheckpointStore;
    use durability_core::storage::Storage;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut st = MemStorage::new();
        {
            let mut store = CheckpointStore::new(&mut st);
            assert_eq!(store.write(LOG_ID, 3, b"after 3").unwrap(), 1);
            assert_eq!(store.write(LOG_ID, 5, b"after 5").unwrap(), 2);
        }
        let stray = u64::MAX - 1;
        st.create(stray).unwrap();
        st.write(stray, 0, &[0x5A; 80]).unwrap();
        let mut store = CheckpointStore::new(&mut st);
        let mut buf = vec![0u8; 64];
        let latest = store.latest(&mut buf).unwrap().unwrap();
        assert_eq!((latest.seq, latest.header.last_id), (2, 5));
        assert_eq!(
            latest.skipped, 1,
            "the stray segment is skipped as not valid"
        );
        // Keep one: checkpoint 1 goes, the stray segment (newer than every valid
        // checkpoint) is left alone, as the walk's rule says.
        assert_eq!(store.retain_newest(1, &mut buf).unwrap(), 1);
        let _ = tx.send(st.segments.keys().copied().collect::<Vec<_>>());
    });
    // A hang detector, not a timing assertion: the walk does a handful of steps.
    let left = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the checkpoint walk did not return");
    assert_eq!(left, vec![2, u64::MAX - 1]);
}

/// Found by `fuzz_checkpoint_read`: a growing buffer was grown to a whole checkpoint
/// header before anything was read, past the bytes present when the store is empty or
/// holds a stub shorter than a header. Readers never allocate past what is stored.
#[test]
fn checkpoint_reader_never_grows_a_vec_past_the_stored_bytes() {
    use durability_core::checkpoint::CheckpointStore;
    let mut st = MemStorage::new();
    let mut buf: Vec<u8> = Vec::new();
    let latest = CheckpointStore::new(&mut st).latest(&mut buf).unwrap();
    assert!(latest.is_none());
    assert_eq!(buf.len(), 0, "empty store");

    st.segments.insert(3, vec![0xA5; 10]);
    let mut buf: Vec<u8> = Vec::new();
    let latest = CheckpointStore::new(&mut st).latest(&mut buf).unwrap();
    assert!(latest.is_none());
    assert!(buf.len() <= 10, "grew to {} for a 10-byte stub", buf.len());

    let mut buf: Vec<u8> = Vec::new();
    let loaded = CheckpointStore::new(&mut st).load(3, &mut buf).unwrap();
    assert!(loaded.is_err());
    assert!(
        buf.len() <= 10,
        "load grew to {} for a 10-byte stub",
        buf.len()
    );
}
