//! The checkpoint store's decisions as a table: which checkpoint `latest` picks,
//! what `retain_newest` and a write on a full medium remove, and which bytes make a
//! stored checkpoint invalid. Each store is laid out directly in a `MemStorage`.

use durability_core::checkpoint::{field, CheckpointError, CheckpointHeader, CheckpointStore};
use durability_core::error::{StorageError, StorageErrorKind};
use durability_core::mem::{MemError, MemStorage};
use durability_core::storage::{ErrorType, Storage};
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::{lifecycle, Error};

const LOG: u64 = 0x10C;

/// The bytes the store writes for checkpoint `seq` (write size 1: no padding).
fn image(seq: u64, last_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = CheckpointHeader::new(LOG, seq, last_id, payload)
        .unwrap()
        .emit()
        .to_vec();
    v.extend_from_slice(payload);
    v
}

/// What each stored segment is.
#[derive(Clone, Copy)]
enum Seg {
    /// A valid checkpoint whose `last_id` is 10 times its number.
    Valid,
    /// A write cut in the payload.
    Torn,
    /// Not a checkpoint at all.
    Garbage,
    /// A valid checkpoint followed by written bytes.
    Trailing,
    /// A valid checkpoint of another number (copied).
    Renumbered,
    /// A valid checkpoint with one payload bit flipped.
    Flipped,
}

/// A store's contents: segment numbers and what each holds.
type Layout = &'static [(u64, Seg)];

fn store_of(segs: &[(u64, Seg)]) -> MemStorage {
    let mut m = MemStorage::new();
    for &(seq, kind) in segs {
        let payload = [seq as u8; 12];
        let mut img = image(seq, seq * 10, &payload);
        match kind {
            Seg::Valid => {}
            Seg::Torn => img.truncate(field::HEADER_LEN + 5),
            Seg::Garbage => img = vec![0xA5; 80],
            Seg::Trailing => img.extend_from_slice(&[0, 0, 7]),
            Seg::Renumbered => img = image(seq + 100, seq * 10, &payload),
            Seg::Flipped => *img.last_mut().unwrap() ^= 1,
        }
        m.segments.insert(seq, img);
    }
    m
}

fn numbers(m: &MemStorage) -> Vec<u64> {
    m.segments.keys().copied().collect()
}

#[test]
fn latest_picks_the_newest_valid_and_counts_what_it_skipped() {
    use Seg::*;
    let rows: &[(Layout, Option<(u64, u64)>)] = &[
        (&[], None),
        (&[(1, Valid)], Some((1, 0))),
        (&[(1, Valid), (2, Valid)], Some((2, 0))),
        (&[(1, Valid), (2, Torn)], Some((1, 1))),
        (&[(1, Valid), (2, Garbage), (3, Torn)], Some((1, 2))),
        (&[(1, Valid), (2, Trailing)], Some((1, 1))),
        (&[(1, Valid), (2, Renumbered)], Some((1, 1))),
        (&[(1, Valid), (2, Flipped)], Some((1, 1))),
        // Gaps in the numbering are not counted as skipped.
        (&[(3, Valid), (7, Torn)], Some((3, 1))),
        (&[(1, Torn), (2, Garbage)], None),
    ];
    for (segs, want) in rows {
        let mut store = CheckpointStore::new(store_of(segs));
        let mut buf = [0u8; 64];
        let got = store.latest(&mut buf).unwrap();
        assert_eq!(
            got.map(|c| (c.seq, c.skipped)),
            *want,
            "{:?}",
            numbers(store.storage())
        );
        if let Some(c) = got {
            assert_eq!(c.header.last_id, c.seq * 10);
            assert_eq!(c.header.log_id, LOG);
            assert_eq!(&buf[..c.header.len as usize], &[c.seq as u8; 12]);
        }
        // Reading changes nothing.
        assert_eq!(
            numbers(store.storage()),
            segs.iter().map(|s| s.0).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_small_buffer_refuses_only_a_valid_checkpoint() {
    // The newest is valid but does not fit: an error, not a fallback.
    let mut store = CheckpointStore::new(store_of(&[(1, Seg::Valid), (2, Seg::Valid)]));
    let mut small = [0u8; 4];
    assert!(matches!(
        store.latest(&mut small),
        Err(Error::BufferTooSmall { needed: 12 })
    ));
    // A torn newest one that announces a large payload does not block the fallback.
    let mut m = store_of(&[(1, Seg::Valid)]);
    let mut big = image(2, 20, &[9u8; 200]);
    big.truncate(field::HEADER_LEN + 150);
    m.segments.insert(2, big);
    let mut store = CheckpointStore::new(m);
    let mut buf = [0u8; 16];
    let c = store.latest(&mut buf).unwrap().unwrap();
    assert_eq!((c.seq, c.skipped), (1, 1));
}

#[test]
fn load_reports_why_a_checkpoint_is_invalid() {
    let mut m = store_of(&[(1, Seg::Valid), (2, Seg::Torn), (3, Seg::Garbage)]);
    let valid = image(4, 40, &[4u8; 12]);
    let mut trailing = valid.clone();
    trailing.extend_from_slice(&[0, 9, 0]);
    m.segments.insert(4, trailing);
    let mut flipped = image(5, 50, &[5u8; 12]);
    *flipped.last_mut().unwrap() ^= 0x80;
    m.segments.insert(5, flipped);
    m.segments.insert(6, image(60, 60, b""));
    m.segments.insert(7, valid[..40].to_vec());
    // Padding of never-written bytes after the payload is fine.
    let mut padded = image(8, 80, &[8u8; 12]);
    padded.extend_from_slice(&[0; 7]);
    m.segments.insert(8, padded);
    let mut store = CheckpointStore::new(m);
    let mut buf = vec![0u8; 64];
    let h = store.load(1, &mut buf).unwrap().unwrap();
    assert_eq!((h.seq, h.last_id, h.len), (1, 10, 12));
    assert_eq!(
        store.load(2, &mut buf).unwrap(),
        Err(CheckpointError::Truncated {
            expected: 12,
            actual: 5
        })
    );
    assert_eq!(
        store.load(3, &mut buf).unwrap(),
        Err(CheckpointError::BadHeader)
    );
    assert_eq!(
        store.load(4, &mut buf).unwrap(),
        Err(CheckpointError::Trailing(3))
    );
    assert!(matches!(
        store.load(5, &mut buf).unwrap(),
        Err(CheckpointError::Checksum { .. })
    ));
    assert_eq!(
        store.load(6, &mut buf).unwrap(),
        Err(CheckpointError::BadHeader)
    );
    assert_eq!(
        store.load(7, &mut buf).unwrap(),
        Err(CheckpointError::Short)
    );
    assert_eq!(store.load(8, &mut buf).unwrap().unwrap().last_id, 80);
    assert!(matches!(
        store.load(9, &mut buf),
        Err(Error::Storage(MemError::NotFound))
    ));
    // A valid checkpoint too large for the buffer is verified, then refused.
    assert!(matches!(
        store.load(1, &mut [0u8; 0]),
        Err(Error::BufferTooSmall { needed: 12 })
    ));
    // An invalid one is reported as such, whatever the buffer.
    assert!(matches!(
        store.load(5, &mut [0u8; 0]),
        Ok(Err(CheckpointError::Checksum { .. }))
    ));
}

#[test]
fn retain_keeps_the_newest_valid_and_leaves_newer_torn_ones() {
    use Seg::*;
    let rows: &[(usize, Layout, &[u64], u64)] = &[
        (1, &[], &[], 0),
        (1, &[(1, Valid), (2, Valid), (3, Valid)], &[3], 2),
        (2, &[(1, Valid), (2, Valid), (3, Valid)], &[2, 3], 1),
        // keep 0 keeps one.
        (0, &[(1, Valid), (2, Valid)], &[2], 1),
        // Torn ones never count toward `keep`; above the newest valid one they stay.
        (
            2,
            &[(1, Valid), (2, Torn), (3, Valid), (4, Valid), (5, Torn)],
            &[3, 4, 5],
            2,
        ),
        (
            1,
            &[(1, Valid), (2, Garbage), (4, Valid), (6, Flipped)],
            &[4, 6],
            2,
        ),
        // Without any valid checkpoint, nothing is lost.
        (1, &[(1, Torn), (2, Garbage)], &[1, 2], 0),
    ];
    for &(keep, segs, left, removed) in rows {
        let mut store = CheckpointStore::new(store_of(segs));
        let mut buf = [0u8; 64];
        assert_eq!(store.retain_newest(keep, &mut buf).unwrap(), removed);
        assert_eq!(numbers(store.storage()), left);
    }
}

/// A `MemStorage` that holds at most `units` segments: `create` beyond says `NoSpace`.
struct Full {
    mem: MemStorage,
    units: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FullError {
    Mem(MemError),
    NoSpace,
}

impl StorageError for FullError {
    fn kind(&self) -> StorageErrorKind {
        match self {
            FullError::Mem(e) => e.kind(),
            FullError::NoSpace => StorageErrorKind::NoSpace,
        }
    }
}

impl ErrorType for Full {
    type Error = FullError;
}

impl Storage for Full {
    fn write_size(&self) -> usize {
        self.mem.write_size()
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), FullError> {
        self.mem.list(visit).map_err(FullError::Mem)
    }
    fn create(&mut self, segment: u64) -> Result<(), FullError> {
        if self.mem.segments.len() >= self.units {
            return Err(FullError::NoSpace);
        }
        self.mem.create(segment).map_err(FullError::Mem)
    }
    fn len(&mut self, segment: u64) -> Result<u64, FullError> {
        self.mem.len(segment).map_err(FullError::Mem)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, FullError> {
        self.mem.read(segment, offset, buf).map_err(FullError::Mem)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), FullError> {
        self.mem
            .write(segment, offset, data)
            .map_err(FullError::Mem)
    }
    fn sync(&mut self, segment: u64) -> Result<(), FullError> {
        self.mem.sync(segment).map_err(FullError::Mem)
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), FullError> {
        self.mem.truncate(segment, len).map_err(FullError::Mem)
    }
    fn remove(&mut self, segment: u64) -> Result<(), FullError> {
        self.mem.remove(segment).map_err(FullError::Mem)
    }
}

#[test]
fn a_write_on_a_full_medium_makes_room_but_never_drops_the_newest_valid() {
    use Seg::*;
    // (units, stored, numbers after the write, or None: the write fails with NoSpace)
    let rows: &[(usize, Layout, Option<&[u64]>)] = &[
        // Torn leftovers above the newest valid one go; numbers stay monotonic.
        (2, &[(1, Valid), (2, Torn)], Some(&[1, 3])),
        (3, &[(1, Valid), (2, Torn), (3, Garbage)], Some(&[1, 4])),
        // The A/B pair whose retention was cut: the older goes.
        (2, &[(1, Valid), (2, Valid)], Some(&[2, 3])),
        (2, &[(1, Torn), (2, Valid)], Some(&[2, 3])),
        (3, &[(1, Valid), (2, Valid), (3, Valid)], Some(&[2, 3, 4])),
        // Nothing valid at all: every leftover goes.
        (2, &[(1, Torn), (2, Garbage)], Some(&[3])),
        // The only checkpoint is the newest valid one: it stays, the write fails.
        (1, &[(1, Valid)], None),
    ];
    for &(units, segs, after) in rows {
        let mut store = CheckpointStore::new(Full {
            mem: store_of(segs),
            units,
        });
        let res = store.write(LOG, 99, b"new state");
        match after {
            Some(left) => {
                let seq = res.unwrap();
                assert_eq!(seq, segs.last().unwrap().0 + 1);
                assert_eq!(numbers(&store.storage().mem), left);
                let mut buf = [0u8; 64];
                let c = store.latest(&mut buf).unwrap().unwrap();
                assert_eq!((c.seq, c.header.last_id, c.skipped), (seq, 99, 0));
                assert_eq!(&buf[..c.header.len as usize], b"new state");
            }
            None => {
                assert!(matches!(res, Err(Error::Storage(FullError::NoSpace))));
                assert_eq!(numbers(&store.storage().mem), [1]);
            }
        }
    }
}

#[test]
fn publish_makes_room_through_its_scratch_buffer_or_a_room_of_its_own() {
    // A full A/B pair whose retention was cut (both valid, the newer one larger than any
    // scratch: streamed, never refused), later a torn leftover above the newest valid
    // one: publish's write makes room through its scratch buffer when that holds a
    // header (64, 512) and through a header-sized room of its own otherwise (8); which
    // one goes is the table above (`write` without a scratch). Retention (`keep = 1`)
    // then leaves the new checkpoint alone.
    for size in [8usize, 64, 512] {
        let mut wal = Full {
            mem: MemStorage::new(),
            units: usize::MAX,
        };
        let mut w = WalWriter::new(&mut wal, vec![0u8; 256], WalConfig::new(LOG));
        for _ in 0..50 {
            w.append(b"e").unwrap();
        }
        let mut store = CheckpointStore::new(Full {
            mem: MemStorage::new(),
            units: 2,
        });
        store.write(LOG, 10, &[1u8; 5]).unwrap();
        store.write(LOG, 20, &[2u8; 600]).unwrap();
        let mut scratch = vec![0u8; size];
        for (last_id, seq) in [(30, 3), (50, 5)] {
            if seq == 5 {
                store.storage().mem.segments.insert(4, vec![0xA5; 70]);
            }
            let mut fixed: &mut [u8] = &mut scratch;
            let rep =
                lifecycle::publish(&mut w, &mut store, last_id, b"state", None, 1, &mut fixed)
                    .unwrap();
            assert_eq!(rep.checkpoint_seq, seq, "scratch {size}");
            assert_eq!(numbers(&store.storage().mem), [seq], "scratch {size}");
        }
    }
}

#[test]
fn the_store_writes_the_payload_padded_to_the_write_size() {
    for ws in [1usize, 2, 4, 8, 16, 32] {
        for len in [0usize, 1, 3, 7, 31, 32, 33, 100] {
            let payload: Vec<u8> = (0..len as u8).map(|b| b ^ 0x5A).collect();
            let mut store = CheckpointStore::new(MemStorage::with_write_size(ws));
            let seq = store.write(LOG, 5, &payload).unwrap();
            let stored = store.storage().segments[&seq].clone();
            let mut want = image(seq, 5, &payload);
            want.resize(want.len().div_ceil(ws) * ws, 0);
            assert_eq!(stored, want, "write size {ws}, {len} bytes");
            let mut buf = vec![0u8; 128];
            let h = store.load(seq, &mut buf).unwrap().unwrap();
            assert_eq!(&buf[..h.len as usize], &payload[..]);
        }
    }
    // A write size the store cannot pad to is refused before anything is written.
    let mut store = CheckpointStore::new(MemStorage::with_write_size(3));
    assert!(matches!(
        store.write(LOG, 1, b"x"),
        Err(Error::InvalidConfig(_))
    ));
    assert!(store.storage().segments.is_empty());
}
