//! Ring-buffer mode on flash (`WalWriter::set_overwrite_oldest`): a full partition makes
//! room by erasing its oldest unit, so a plain logger runs forever. Power is cut at every
//! program and erase of a workload that wraps the partition several times; after each
//! cut the flash is remounted from its bytes alone and read as a ring: the entries form
//! one contiguous run of ids ending at or after the last acknowledged one, every payload
//! is the one written, and a writer continues after it.

use durability_core::wal::{ReplayReport, WalConfig, WalReader, WalWriter};
use durability_core::StorageError;
use durability_core::{Error, ReadMode, StorageErrorKind};
use durability_embedded::sim::{PowerCut, SimFlash};
use durability_embedded::FlashStorage;

const ERASE: usize = 256;
const UNITS: usize = 5;
const LOG_ID: u64 = 0x0412_6B0F;

type Flash<'a> = SimFlash<'a, 4, 4, ERASE>;
type Fs<'a> = FlashStorage<Flash<'a>, UNITS>;

fn cfg() -> WalConfig {
    WalConfig {
        segment_limit: u64::MAX,
        log_id: LOG_ID,
        first_id: 1,
        covered_through: 0,
    }
}

/// Payload of entry `id`: 0 to 40 bytes, never 0xFF.
fn payload(id: u64) -> Vec<u8> {
    let len = (id * 7 % 41) as usize;
    (0..len)
        .map(|k| ((id as usize * 13 + k) % 239) as u8)
        .collect()
}

/// What the workload got acknowledged before the power went.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Ids handed out (the last one may be torn).
    appended: u64,
    /// Ids covered by a sync that returned `Ok`.
    acked: u64,
}

/// Appends ids `from..=to` in ring mode, syncing every second entry, until an error.
fn work<S: durability_core::Storage>(
    fs: S,
    from: u64,
    to: u64,
    p: &mut Progress,
) -> Result<(), String> {
    let mut w = WalWriter::new(
        fs,
        [0u8; 128],
        WalConfig {
            first_id: from,
            ..cfg()
        },
    );
    w.set_overwrite_oldest(true);
    for id in from..=to {
        let got = w.append(&payload(id)).map_err(|e| format!("{e:?}"))?;
        assert_eq!(got, id, "id handed out");
        p.appended = id;
        if id % 2 == 0 || id == to {
            w.sync().map_err(|e| format!("{e:?}"))?;
            p.acked = id;
        }
    }
    Ok(())
}

/// Reads the ring; checks the ids form one contiguous run of correct payloads.
fn read_ring(mem: &mut [u8]) -> (Vec<u64>, ReplayReport) {
    let fs: Fs<'_> = FlashStorage::new(Flash::new(mem), 0, UNITS).expect("mount");
    let mut r = WalReader::new(fs, [0u8; 128]);
    r.set_overwrite_oldest(true);
    let mut ids = Vec::new();
    let report = r
        .replay(ReadMode::BestEffort, |id, p| {
            assert_eq!(p, &payload(id)[..], "payload of entry {id}");
            if let Some(&prev) = ids.last() {
                assert_eq!(id, prev + 1, "ids contiguous");
            }
            ids.push(id);
            Ok(())
        })
        .expect("a ring replays in best-effort mode after any cut");
    (ids, report)
}

/// Entries `1..=LAST` fill the 5 units about four times over.
const LAST: u64 = 150;

#[test]
fn ring_wraps_without_errors_and_keeps_the_newest() {
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let mut p = Progress::default();
    let fs: Fs<'_> = FlashStorage::new(Flash::new(&mut mem), 0, UNITS).unwrap();
    work(fs, 1, LAST, &mut p).unwrap();
    let (ids, report) = read_ring(&mut mem);
    assert_eq!(ids.last(), Some(&LAST));
    assert!(ids[0] > 1, "the oldest entries were overwritten");
    // The units other than the one being overwritten stay readable: at least 5 of
    // these entries (frames of 8 to 48 bytes) fit each 256-byte unit.
    assert!(
        ids.len() >= (UNITS - 1) * 5,
        "ring keeps {} entries",
        ids.len()
    );
    assert!(!report.dropped_oldest);
}

#[test]
fn without_ring_mode_a_full_partition_is_an_error() {
    let mut mem = vec![0xFFu8; UNITS * ERASE];
    let fs: Fs<'_> = FlashStorage::new(Flash::new(&mut mem), 0, UNITS).unwrap();
    let mut w = WalWriter::new(fs, [0u8; 128], cfg());
    let err = (1..=LAST)
        .find_map(|id| w.append(&payload(id)).and_then(|_| w.sync()).err())
        .expect("the partition fills up");
    match err {
        Error::Storage(e) => assert_eq!(e.kind(), StorageErrorKind::NoSpace),
        e => panic!("expected NoSpace, got {e:?} ({:?})", e.kind()),
    }
    assert!(w.is_poisoned());
}

#[test]
fn power_cut_at_every_program_and_erase() {
    // Operations of an uncut run.
    let total = {
        let mut mem = vec![0xFFu8; UNITS * ERASE];
        let mut flash = Flash::new(&mut mem);
        flash.set_power_cut(PowerCut::AtOp(u64::MAX), 0);
        let mut fs: Fs<'_> = FlashStorage::new(flash, 0, UNITS).unwrap();
        let mut p = Progress::default();
        work(&mut fs, 1, LAST, &mut p).unwrap();
        fs.flash().ops()
    };
    let mut cuts = 0u64;
    let mut dropped = 0u64;
    for seed in 0..8u64 {
        for op in 0..total {
            let mut mem = vec![0xFFu8; UNITS * ERASE];
            let mut p = Progress::default();
            {
                let mut flash = Flash::new(&mut mem);
                flash.set_power_cut(PowerCut::AtOp(op), seed * 7919 + op);
                let fs: Fs<'_> = FlashStorage::new(flash, 0, UNITS).unwrap();
                assert!(
                    work(fs, 1, LAST, &mut p).is_err(),
                    "cut at op {op} hit nothing"
                );
            }
            cuts += 1;
            let ctx = format!("cut at op {op} seed {seed}: {p:?}");
            let (ids, report) = read_ring(&mut mem);
            dropped += report.dropped_oldest as u64;
            let last = ids.last().copied().unwrap_or(0);
            assert!(
                last >= p.acked,
                "{ctx}: acknowledged entries lost, ring ends at {last}"
            );
            assert!(last <= p.appended, "{ctx}: phantom entry {last}");
            // An empty ring (nothing acknowledged yet) may have no segment at all.
            let next = report.next_id.max(1);
            assert_eq!(next, last + 1, "{ctx}");

            // A writer continues after whatever survived; nothing it writes is lost.
            let mut p2 = Progress::default();
            {
                let fs: Fs<'_> = FlashStorage::new(Flash::new(&mut mem), 0, UNITS).unwrap();
                work(fs, next, next + 15, &mut p2).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            }
            let (ids, _) = read_ring(&mut mem);
            assert_eq!(ids.last(), Some(&(next + 15)), "{ctx}: continuation");
            assert!(
                ids[0] <= next,
                "{ctx}: the ring lost the continuation's entries"
            );
        }
    }
    println!(
        "ring: {cuts} power cuts explored ({total} operations per run, 8 seeds); \
         damaged oldest segment dropped after {dropped}"
    );
    assert!(cuts >= 1000);
}
