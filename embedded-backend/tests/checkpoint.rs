//! Checkpoints on flash: a checkpoint store over its own partition survives a remount,
//! and the lifecycle (publish, reclaim, recover) works from the flash bytes alone.

use durability_core::checkpoint::CheckpointStore;
use durability_core::lifecycle::{publish, recover};
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::ReadMode;
use durability_embedded::sim::SimFlash;
use durability_embedded::FlashStorage;

const ERASE: usize = 512;
type Fs<'a> = FlashStorage<SimFlash<'a, 4, 4, ERASE>, 16>;

fn mount(mem: &mut [u8], units: usize) -> Fs<'_> {
    FlashStorage::new(SimFlash::<4, 4, ERASE>::new(mem), 0, units).unwrap()
}

#[test]
fn checkpoints_survive_a_remount() {
    let mut mem = vec![0xFFu8; 4 * ERASE];
    let mut store = CheckpointStore::new(mount(&mut mem, 4));
    store.write(7, 10, b"ten").unwrap();
    store.write(7, 20, b"twenty").unwrap();
    let _ = store.into_inner();
    // Fresh mount from the bytes alone: both checkpoints are found, the newest wins.
    let mut store = CheckpointStore::new(mount(&mut mem, 4));
    let mut buf = [0u8; 64];
    let c = store
        .latest(&mut buf)
        .unwrap()
        .expect("a checkpoint after remount");
    assert_eq!((c.seq, c.header.last_id), (2, 20));
    assert_eq!(&buf[..6], b"twenty");
    // A/B slots: keep 2, and numbering continues (no erase of a live checkpoint).
    store.write(7, 30, b"thirty").unwrap();
    assert_eq!(store.retain_newest(2, &mut buf).unwrap(), 1);
    let _ = store.into_inner();
    let mut store = CheckpointStore::new(mount(&mut mem, 4));
    let c = store.latest(&mut buf).unwrap().unwrap();
    assert_eq!((c.seq, c.header.last_id), (3, 30));
}

#[test]
fn lifecycle_from_flash_bytes_alone() {
    let mut wal_mem = vec![0xFFu8; 12 * ERASE];
    let mut ck_mem = vec![0xFFu8; 4 * ERASE];
    let mut sum = 0u64;
    {
        let mut ck = CheckpointStore::new(mount(&mut ck_mem, 4));
        let mut w =
            WalWriter::open(mount(&mut wal_mem, 12), [0u8; 128], WalConfig::new(9)).unwrap();
        for i in 1..=60u64 {
            w.append(&[i as u8; 40]).unwrap();
            sum += i;
            if i % 20 == 0 {
                let r = publish(
                    &mut w,
                    &mut ck,
                    i,
                    &sum.to_le_bytes(),
                    None,
                    2,
                    &mut [0u8; 64],
                )
                .unwrap();
                assert!(r.wal_segments_removed > 0, "reclaimed units at {i}: {r:?}");
            }
        }
        for i in 61..=65u64 {
            w.append(&[i as u8; 40]).unwrap();
            sum += i;
        }
        w.sync().unwrap();
    }
    let mut ck = CheckpointStore::new(mount(&mut ck_mem, 4));
    let (got, report) = recover(
        mount(&mut wal_mem, 12),
        &mut ck,
        &mut [0u8; 128],
        ReadMode::Strict,
        |c| Ok(c.map_or(0, |(_, p)| u64::from_le_bytes(p.try_into().unwrap()))),
        |s: &mut u64, id, p| {
            assert_eq!(p, &[id as u8; 40][..]);
            *s += id;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(got, sum);
    assert_eq!(report.checkpoint.map(|c| c.header.last_id), Some(60));
    assert_eq!(report.next_id, 66);
}
