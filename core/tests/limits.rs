//! Size limits: entries over `MAX_ENTRY_LEN` are refused without side effects; entries
//! larger than the segment limit or the write buffer still round-trip.

mod common;

use common::*;
use durability_core::frame::MAX_ENTRY_LEN;
use durability_core::mem::MemStorage;
use durability_core::recordlog::RecordLogWriter;
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::{Error, ErrorKind, ReadMode};

const LOG_ID: u64 = 0x1A46_0000_0000_0009;

fn too_large() -> E {
    Error::EntryTooLarge {
        len: MAX_ENTRY_LEN as u64 + 1,
        max: MAX_ENTRY_LEN as u64,
    }
}

#[test]
fn wal_entry_too_large_changes_nothing() {
    let big = vec![0x5Au8; MAX_ENTRY_LEN as usize + 1];
    let mut st = MemStorage::new();
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
    // Before the log is even opened: no I/O at all.
    let e = w.append(&big).unwrap_err();
    assert_eq!(e, too_large());
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    assert!(!w.is_poisoned());
    drop(w);
    assert!(st.segments.is_empty());

    let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
    assert_eq!(w.append(b"one").unwrap(), 1);
    w.sync().unwrap();
    assert_eq!(w.append(b"two").unwrap(), 2); // stages the marker too
    w.flush().unwrap();
    let before = w.storage().segments.clone();
    assert_eq!(w.append(&big).unwrap_err(), too_large());
    w.flush().unwrap();
    assert_eq!(
        w.storage().segments,
        before,
        "a refused entry writes nothing"
    );
    assert!(!w.is_poisoned());
    assert_eq!(w.next_id().unwrap(), 3, "no id consumed");
    assert_eq!(w.append(b"three").unwrap(), 3);
    w.sync().unwrap();
    drop(w);
    assert_eq!(
        wal_strict(&mut st),
        vec![
            (1, b"one".to_vec()),
            (2, b"two".to_vec()),
            (3, b"three".to_vec())
        ]
    );
}

#[test]
fn record_log_entry_too_large_changes_nothing() {
    let big = vec![0u8; MAX_ENTRY_LEN as usize + 1];
    let mut st = MemStorage::new();
    let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
    assert_eq!(w.append(&big).unwrap_err(), too_large());
    assert_eq!(w.append(b"a").unwrap(), 1);
    w.flush().unwrap();
    assert_eq!(w.append(&big).unwrap_err(), too_large());
    assert!(!w.is_poisoned());
    assert_eq!(w.next_index().unwrap(), 2);
    assert_eq!(w.append(b"b").unwrap(), 2);
    w.sync().unwrap();
    drop(w);
    assert_eq!(
        rl_strict(&mut st),
        vec![(1, b"a".to_vec()), (2, b"b".to_vec())]
    );
}

#[test]
fn entries_larger_than_buffer_and_segment_limit() {
    for ws in [1, 4, 32] {
        let mut st = MemStorage::with_write_size(ws);
        let mut c = WalConfig::new(LOG_ID);
        c.segment_limit = 256;
        let mut w = WalWriter::new(&mut st, vec![0u8; 64], c);
        let sizes = [10usize, 1000, 3, 300, 0, 257, 64, 56, 57, 63, 65];
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(w.append(&payload(i as u64 + 1, n)).unwrap(), i as u64 + 1);
            if i % 4 == 3 {
                w.sync().unwrap();
            }
        }
        w.sync().unwrap();
        drop(w);
        let want: Entries = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as u64 + 1, payload(i as u64 + 1, n)))
            .collect();
        assert_eq!(wal_strict(&mut st), want, "ws {ws}");
        // An entry over the limit sits alone (with at most a marker) in its segment.
        for (n, seg) in &st.segments {
            assert_eq!(seg.len() % ws, 0);
            let (_, frames) = walk(seg, LOG_ID, *n);
            let entries = frames
                .iter()
                .filter(|f| matches!(f.kind, Fk::Entry(_)))
                .count();
            if seg.len() > 256 {
                assert_eq!(entries, 1, "ws {ws} segment {n} over the limit");
            }
        }
        let (got, res) = wal_replay_with(&mut st, [0u8; 64], ReadMode::BestEffort);
        assert!(
            matches!(res, Err(Error::BufferTooSmall { .. })),
            "ws {ws}: {res:?}"
        );
        assert_prefix(&got, &want, "fixed buffer");
    }
}

#[test]
fn medium_segment_size_caps_entries_and_segments() {
    for ws in [1, 4] {
        let mut m = Medium {
            inner: MemStorage::with_write_size(ws),
            unwritten: 0,
            resume: true,
            max: Some(256),
        };
        let mut w = WalWriter::new(&mut m, vec![0u8; 64], WalConfig::new(LOG_ID));
        // 48 + 8 + 200 = 256 fits exactly; one more byte does not fit any segment.
        assert_eq!(w.append(&[1u8; 200]).unwrap(), 1);
        w.sync().unwrap();
        let e = w.append(&[2u8; 201]).unwrap_err();
        assert_eq!(e, Error::EntryTooLarge { len: 201, max: 200 }, "ws {ws}");
        assert!(!w.is_poisoned());
        assert_eq!(w.next_id().unwrap(), 2);
        let mut want = vec![(1, vec![1u8; 200])];
        for id in 2..=30u64 {
            let p = payload(id, (id as usize * 7) % 60);
            assert_eq!(w.append(&p).unwrap(), id);
            want.push((id, p));
            if id % 5 == 0 {
                w.sync().unwrap();
            }
        }
        w.sync().unwrap();
        drop(w);
        assert!(m.inner.segments.len() > 3);
        for seg in m.inner.segments.values() {
            assert!(seg.len() <= 256);
        }
        let mut got = Vec::new();
        durability_core::wal::WalReader::new(&mut m, Vec::new())
            .replay(ReadMode::Strict, |id, p| {
                got.push((id, p.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(got, want, "ws {ws}");
    }
}

#[test]
fn fixed_small_buffers_open_logs_with_large_entries() {
    for ws in [1, 4] {
        let mut st = MemStorage::with_write_size(ws);
        let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
        let big: Vec<Vec<u8>> = (1..=4)
            .map(|i| payload(i, 300 + i as usize * 100))
            .collect();
        for (i, p) in big.iter().enumerate() {
            assert_eq!(w.append(p).unwrap(), i as u64 + 1);
        }
        w.sync().unwrap();
        drop(w);
        // A writer whose buffer cannot hold these entries still opens and continues.
        let mut w = WalWriter::open(&mut st, [0u8; 64], WalConfig::new(LOG_ID)).unwrap();
        assert_eq!(w.append(b"small").unwrap(), 5);
        w.sync().unwrap();
        // Delivering only the small entry needs no large buffer either.
        let mut got = Vec::new();
        durability_core::wal::WalReader::new(&mut st, [0u8; 64])
            .replay_from(ReadMode::Strict, 5, |id, p| {
                got.push((id, p.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(got, vec![(5, b"small".to_vec())]);
        // A torn large frame is recognised through the small buffer and cut on open.
        let (_, frames) = walk(&st.segments[&1], LOG_ID, 1);
        let e4 = frames
            .iter()
            .find(|f| f.kind == Fk::Entry(4))
            .copied()
            .unwrap();
        let mut torn = st.clone();
        torn.segments.get_mut(&1).unwrap().truncate(e4.start + 200);
        let mut w = WalWriter::open(&mut torn, [0u8; 64], WalConfig::new(LOG_ID)).unwrap();
        assert_eq!(w.next_id().unwrap(), 4);
        assert_eq!(w.append(b"four").unwrap(), 4);
        w.sync().unwrap();
        let mut want: Entries = big[..3]
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, p))
            .collect();
        want.push((4, b"four".to_vec()));
        assert_eq!(wal_strict(&mut torn), want);
        // The record log likewise.
        let mut st = MemStorage::with_write_size(ws);
        let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], LOG_ID);
        for p in &big {
            w.append(p).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let seg = st.segments.get_mut(&0).unwrap();
        let n = seg.len();
        seg.truncate(n - 50);
        let mut w = RecordLogWriter::open(&mut st, [0u8; 64], LOG_ID).unwrap();
        assert_eq!(w.append(b"r").unwrap(), 4);
        w.sync().unwrap();
        let got = rl_strict(&mut st);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], (4, b"r".to_vec()));
    }
}

#[test]
fn invalid_geometry_is_rejected() {
    let mut st = MemStorage::new();
    let r = WalWriter::open(&mut st, [0u8; 32], WalConfig::new(LOG_ID));
    assert!(matches!(r, Err(Error::BufferTooSmall { needed: 64 })));
    drop(r);
    let r = RecordLogWriter::open(&mut st, [0u8; 32], LOG_ID);
    assert!(matches!(r, Err(Error::BufferTooSmall { needed: 64 })));
    drop(r);
    assert!(st.segments.is_empty());
    for ws in [3usize, 6, 64] {
        let mut st = MemStorage::with_write_size(ws);
        let r = WalWriter::open(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
        assert!(matches!(r, Err(Error::InvalidConfig(_))), "ws {ws}");
        drop(r);
        let r = RecordLogWriter::open(&mut st, vec![0u8; 64], LOG_ID);
        assert!(matches!(r, Err(Error::InvalidConfig(_))), "ws {ws}");
        drop(r);
        assert!(st.segments.is_empty());
    }
}
