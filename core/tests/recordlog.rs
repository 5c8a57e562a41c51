//! The record log: round trip, reopen after a torn tail, strict versus best effort.

mod common;

use common::*;
use durability_core::error::{Corruption, Location};
use durability_core::mem::MemStorage;
use durability_core::recordlog::{RecordLogReader, RecordLogWriter, RECORD_LOG_SEGMENT};
use durability_core::{Error, ReadMode};

const LOG_ID: u64 = 0x4EC0_0000_0000_0008;

fn write_records(st: &mut MemStorage, records: &[Vec<u8>], sync_every: usize) -> u64 {
    let mut w = RecordLogWriter::new(st, vec![0u8; 64], LOG_ID);
    let first = w.next_index().unwrap();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(w.append(r).unwrap(), first + i as u64);
        if sync_every > 0 && (i + 1) % sync_every == 0 {
            w.sync().unwrap();
        }
    }
    w.flush().unwrap();
    first
}

#[test]
fn round_trip() {
    for ws in [1, 2, 4, 8, 16, 32] {
        let mut st = MemStorage::with_write_size(ws);
        let records: Vec<Vec<u8>> = (1..=50)
            .map(|i| payload(i, (i as usize * 13) % 150))
            .collect();
        assert_eq!(write_records(&mut st, &records, 7), 1);
        let want: Entries = records
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, r))
            .collect();
        for mode in MODES {
            let (got, res) = rl_read(&mut st, mode);
            let r = res.unwrap();
            assert_eq!(got, want, "ws {ws}");
            assert_eq!(r.records, 50);
            assert_eq!(
                r.payload_bytes,
                records.iter().map(|r| r.len() as u64).sum::<u64>()
            );
            assert_eq!(r.torn_at, None);
        }
        // Reading through a fixed buffer that holds the largest frame.
        let (got, res) = rl_read_with(&mut st, [0u8; 256], ReadMode::Strict);
        res.unwrap();
        assert_eq!(got, want);
        // Every segment write was aligned; the file holds only the header and frames.
        assert_eq!(
            st.segments.keys().copied().collect::<Vec<_>>(),
            vec![RECORD_LOG_SEGMENT]
        );
        assert_eq!(st.segments[&0].len() % ws, 0);
        // Reopen and continue.
        let more: Vec<Vec<u8>> = vec![b"more".to_vec(), vec![]];
        assert_eq!(write_records(&mut st, &more, 0), 51);
        let got = rl_strict(&mut st);
        assert_eq!(got.len(), 52);
        assert_eq!(got[50], (51, b"more".to_vec()));
        assert_eq!(got[51], (52, vec![]));
    }
}

#[test]
fn fixed_buffer_too_small_for_a_record() {
    let mut st = MemStorage::new();
    write_records(&mut st, &[vec![7u8; 10], vec![9u8; 200]], 0);
    let (got, res) = rl_read_with(&mut st, [0u8; 64], ReadMode::BestEffort);
    assert_eq!(got, vec![(1, vec![7u8; 10])]);
    assert_eq!(res.unwrap_err(), Error::BufferTooSmall { needed: 208 });
}

#[test]
fn reopen_after_torn_tail_truncates_and_continues() {
    for ws in [1, 4] {
        let mut st = MemStorage::with_write_size(ws);
        let records: Vec<Vec<u8>> = (1..=6).map(|i| payload(i, 10 + i as usize)).collect();
        write_records(&mut st, &records, 3);
        let (_, frames) = walk(&st.segments[&0], LOG_ID, 0);
        let last = *frames.last().unwrap();
        // Tear the last record.
        let seg = st.segments.get_mut(&0).unwrap();
        seg.truncate(last.start + 5);
        let at = Location {
            segment: RECORD_LOG_SEGMENT,
            offset: last.start as u64,
        };
        let (got, res) = rl_read(&mut st, ReadMode::Strict);
        assert_eq!(got.len(), 5);
        assert_eq!(res.unwrap_err(), Error::TornTail { at });
        let (got, res) = rl_read(&mut st, ReadMode::BestEffort);
        assert_eq!(got.len(), 5);
        let r = res.unwrap();
        assert_eq!((r.records, r.torn_at), (5, Some(at)));
        // Reopen: the tail is cut before anything is appended.
        let w = RecordLogWriter::open(&mut st, vec![0u8; 64], 1).unwrap();
        drop(w);
        assert_eq!(
            st.segments[&0].len(),
            last.start,
            "ws {ws}: torn tail truncated"
        );
        assert_eq!(rl_strict(&mut st).len(), 5);
        let mut w = RecordLogWriter::open(&mut st, vec![0u8; 64], 1).unwrap();
        assert_eq!(w.next_index().unwrap(), 6);
        assert_eq!(w.append(b"six").unwrap(), 6);
        assert_eq!(w.append(b"seven").unwrap(), 7);
        w.sync().unwrap();
        drop(w);
        let got = rl_strict(&mut st);
        assert_eq!(got.len(), 7);
        assert_contiguous(&got, "after reopen");
        assert_eq!(got[5], (6, b"six".to_vec()));
        assert_eq!(got[6], (7, b"seven".to_vec()));
        assert_eq!(&got[..5], &expected_records(&records[..5])[..]);
    }
}

fn expected_records(records: &[Vec<u8>]) -> Entries {
    records
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| (i as u64 + 1, r))
        .collect()
}

#[test]
fn strict_and_best_effort_differ_only_on_torn_tails() {
    let mut st = MemStorage::new();
    let records: Vec<Vec<u8>> = (1..=8).map(|i| payload(i, 12)).collect();
    write_records(&mut st, &records, 4);
    let (_, frames) = walk(&st.segments[&0], LOG_ID, 0);
    // A garbage tail after the marker: torn.
    let e6 = frames
        .iter()
        .find(|f| f.kind == Fk::Entry(6))
        .copied()
        .unwrap();
    let mut torn = st.clone();
    torn.segments.get_mut(&0).unwrap()[e6.start + 3] ^= 0x40;
    let at = Location {
        segment: 0,
        offset: e6.start as u64,
    };
    assert_eq!(
        rl_read(&mut torn, ReadMode::Strict).1.unwrap_err(),
        Error::TornTail { at }
    );
    let (got, res) = rl_read(&mut torn, ReadMode::BestEffort);
    assert_eq!(got, expected_records(&records[..5]));
    assert_eq!(res.unwrap().torn_at, Some(at));
    // Damage before the marker's watermark: corrupt in both modes; reopen refuses.
    let e2 = frames
        .iter()
        .find(|f| f.kind == Fk::Entry(2))
        .copied()
        .unwrap();
    let mut bad = st.clone();
    bad.segments.get_mut(&0).unwrap()[e2.start + 9] ^= 1;
    let want = Error::Corrupt {
        at: Location {
            segment: 0,
            offset: e2.start as u64,
        },
        reason: Corruption::BadFrameBelowWatermark,
    };
    for mode in MODES {
        let (got, res) = rl_read(&mut bad, mode);
        assert_eq!(got, expected_records(&records[..1]));
        assert_eq!(res.unwrap_err(), want);
    }
    let before = bad.segments.clone();
    let r = RecordLogWriter::open(&mut bad, vec![0u8; 64], 1);
    assert_eq!(r.err().unwrap(), want);
    assert_eq!(bad.segments, before, "a failed reopen changes nothing");
}

#[test]
fn torn_header_of_a_new_record_log_is_recreated() {
    for len in [0usize, 3, 30] {
        let mut st = MemStorage::new();
        st.segments
            .insert(0, spec_header(2, 0, LOG_ID, 0, 1, 0)[..len].to_vec());
        let at = Location {
            segment: 0,
            offset: 0,
        };
        assert_eq!(
            rl_read(&mut st, ReadMode::Strict).1.unwrap_err(),
            Error::TornTail { at }
        );
        assert_eq!(
            rl_read(&mut st, ReadMode::BestEffort).1.unwrap().torn_at,
            Some(at)
        );
        let mut w = RecordLogWriter::open(&mut st, vec![0u8; 64], 5).unwrap();
        assert_eq!(w.append(b"first").unwrap(), 1);
        w.sync().unwrap();
        drop(w);
        assert_eq!(rl_strict(&mut st), vec![(1, b"first".to_vec())]);
        assert_eq!(
            u64::from_le_bytes(st.segments[&0][8..16].try_into().unwrap()),
            5
        );
    }
}

#[test]
fn append_with_encodes_in_place() {
    let mut st = MemStorage::with_write_size(4);
    let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
    assert_eq!(
        w.append_with(|b| {
            b[..3].copy_from_slice(b"abc");
            Some(3)
        })
        .unwrap(),
        Some(1)
    );
    // Does not fit even an empty 64-byte buffer: nothing happens.
    assert_eq!(
        w.append_with(|b| (b.len() >= 100).then_some(100)).unwrap(),
        None
    );
    assert_eq!(w.append(b"d").unwrap(), 2);
    w.sync().unwrap();
    drop(w);
    assert_eq!(
        rl_strict(&mut st),
        vec![(1, b"abc".to_vec()), (2, b"d".to_vec())]
    );
    let r = RecordLogReader::new(&mut st, Vec::new())
        .read(ReadMode::Strict, |_, _| Ok(()))
        .unwrap();
    assert_eq!(r.records, 2);
}
