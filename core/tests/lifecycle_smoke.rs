use durability_core::checkpoint::CheckpointStore;
use durability_core::lifecycle::{publish, recover};
use durability_core::mem::MemStorage;
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::{Error, ReadMode};

fn sum_state(
    ck: &mut CheckpointStore<MemStorage>,
    wal: &mut MemStorage,
    mode: ReadMode,
) -> (u64, u64) {
    let (sum, report) = recover(
        &mut *wal,
        ck,
        &mut vec![0u8; 64],
        mode,
        |c| Ok(c.map_or(0, |(_, p)| u64::from_le_bytes(p.try_into().unwrap()))),
        |s: &mut u64, _, p| {
            *s += p[0] as u64;
            Ok(())
        },
    )
    .unwrap();
    (sum, report.next_id)
}

#[test]
fn publish_truncate_recover() {
    let mut wal = MemStorage::new();
    let mut ck = CheckpointStore::new(MemStorage::new());
    let mut cfg = WalConfig::new(9);
    cfg.segment_limit = 128;
    let mut w = WalWriter::new(&mut wal, vec![0u8; 64], cfg);
    let mut sum = 0u64;
    for i in 1..=40u8 {
        w.append(&[i; 20]).unwrap();
        sum += i as u64;
    }
    // Refuses a checkpoint beyond what was assigned.
    assert!(matches!(
        publish(
            &mut w,
            &mut ck,
            41,
            &0u64.to_le_bytes(),
            None,
            2,
            &mut Vec::new()
        ),
        Err(Error::CheckpointAhead { .. })
    ));
    let r = publish(
        &mut w,
        &mut ck,
        40,
        &sum.to_le_bytes(),
        None,
        2,
        &mut Vec::new(),
    )
    .unwrap();
    assert!(r.wal_segments_removed > 0, "{r:?}");
    for i in 41..=45u8 {
        w.append(&[i; 20]).unwrap();
        sum += i as u64;
    }
    w.sync().unwrap();
    drop(w);
    assert_eq!(sum_state(&mut ck, &mut wal, ReadMode::Strict), (sum, 46));
    // Without the checkpoint the truncated WAL cannot be recovered: an error, not a wrong sum.
    let mut empty = CheckpointStore::new(MemStorage::new());
    for mode in [ReadMode::Strict, ReadMode::BestEffort] {
        let r = recover(
            &mut wal,
            &mut empty,
            &mut vec![0u8; 64],
            mode,
            |_| Ok(0u64),
            |_, _, _| Ok(()),
        );
        assert!(matches!(r, Err(Error::WalGap { .. })), "{r:?}");
    }
}

#[test]
fn torn_checkpoints_do_not_count_toward_keep() {
    use durability_core::Storage;
    let mut ck = CheckpointStore::new(MemStorage::new());
    ck.write(1, 10, b"ten").unwrap();
    ck.write(1, 20, b"twenty").unwrap();
    // A publish that crashed mid-write left checkpoint 3 torn.
    let mut torn = vec![0u8; 40];
    torn[..4].copy_from_slice(b"DURC");
    ck.storage().create(3).unwrap();
    ck.storage().write(3, 0, &torn).unwrap();
    ck.write(1, 30, b"thirty").unwrap();
    let removed = ck.retain_newest(2, &mut vec![0u8; 16]).unwrap();
    assert_eq!(removed, 2, "seq 1 (beyond keep) and torn seq 3");
    let seqs: Vec<u64> = ck.storage().segments.keys().copied().collect();
    assert_eq!(seqs, vec![2, 4]);
    let latest = ck.latest(&mut vec![0u8; 16]).unwrap().unwrap();
    assert_eq!((latest.seq, latest.header.last_id), (4, 30));
}

#[test]
fn a_torn_checkpoint_larger_than_the_buffer_does_not_block_the_fallback() {
    let mut ck = CheckpointStore::new(MemStorage::new());
    ck.write(1, 10, b"older").unwrap();
    ck.write(1, 20, &[7u8; 100]).unwrap();
    *ck.storage()
        .segments
        .get_mut(&2)
        .unwrap()
        .last_mut()
        .unwrap() ^= 1;
    let mut small = [0u8; 64];
    let found = ck.latest(&mut small).unwrap().unwrap();
    assert_eq!((found.seq, found.header.last_id, found.skipped), (1, 10, 1));
    assert_eq!(&small[..5], b"older");
    // A valid checkpoint too large for the buffer is still an error, not skipped.
    ck.write(1, 30, &[9u8; 100]).unwrap();
    assert!(matches!(
        ck.latest(&mut small),
        Err(Error::BufferTooSmall { needed: 100 })
    ));
}
