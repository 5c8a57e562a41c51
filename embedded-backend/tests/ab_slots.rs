//! Checkpoints in two alternating units (A/B): a `CheckpointStore` over a 2-unit
//! partition with `keep = 1`. Each write goes to the free unit, then the older one is
//! erased. Power is cut at every program and erase of a run of writes (both kinds of
//! torn erase); after each cut, the remounted partition must still hold a valid
//! checkpoint — the last acknowledged one or the one being written — and later writes
//! must keep succeeding.

use durability_core::checkpoint::CheckpointStore;
use durability_embedded::sim::{PowerCut, SimFlash, TornErase};
use durability_embedded::FlashStorage;

const ERASE: usize = 256;
const UNITS: usize = 2;
const LOG_ID: u64 = 0xAB51_0075;
const WRITES: u64 = 12;

type Flash<'a> = SimFlash<'a, 4, 4, ERASE>;
type Fs<'a> = FlashStorage<Flash<'a>, UNITS>;

/// The state checkpointed after entry `id`: 20 to 119 bytes, never 0xFF.
fn state(id: u64) -> Vec<u8> {
    let len = 20 + (id * 37 % 100) as usize;
    (0..len)
        .map(|k| ((id as usize * 11 + k) % 241) as u8)
        .collect()
}

/// Writes checkpoints `from..=to` (keep 1), stopping at the first error; returns the
/// last one acknowledged (write and retention both returned `Ok`).
fn run<S: durability_core::Storage>(
    fs: S,
    from: u64,
    to: u64,
    acked: &mut u64,
) -> Result<(), String> {
    let mut store = CheckpointStore::new(fs);
    let mut scratch = [0u8; 128];
    for id in from..=to {
        store
            .write(LOG_ID, id, &state(id))
            .map_err(|e| format!("write {id}: {e:?}"))?;
        store
            .retain_newest(1, &mut scratch)
            .map_err(|e| format!("retain after {id}: {e:?}"))?;
        *acked = id;
    }
    Ok(())
}

/// The newest valid checkpoint after a remount, checked against `state`.
fn latest(mem: &mut [u8]) -> Option<u64> {
    let fs: Fs<'_> = FlashStorage::new(Flash::new(mem), 0, UNITS).expect("mount");
    let mut store = CheckpointStore::new(fs);
    let mut buf = [0u8; 128];
    let c = store.latest(&mut buf).expect("latest")?;
    let id = c.header.last_id;
    assert_eq!(
        &buf[..c.header.len as usize],
        &state(id)[..],
        "payload of {id}"
    );
    Some(id)
}

#[test]
fn two_units_alternate_and_survive_a_cut_anywhere() {
    let total = {
        let mut mem = vec![0xFFu8; UNITS * ERASE];
        let mut flash = Flash::new(&mut mem);
        flash.set_power_cut(PowerCut::AtOp(u64::MAX), 0);
        let mut fs: Fs<'_> = FlashStorage::new(flash, 0, UNITS).unwrap();
        let mut acked = 0;
        run(&mut fs, 1, WRITES, &mut acked).unwrap();
        fs.flash().ops()
    };
    let mut cuts = 0;
    for mode in [TornErase::Any, TornErase::HeaderLost] {
        for seed in 0..4u64 {
            for op in 0..total {
                let mut mem = vec![0xFFu8; UNITS * ERASE];
                let mut acked = 0;
                {
                    let mut flash = Flash::new(&mut mem);
                    flash.set_torn_erase(mode);
                    flash.set_power_cut(PowerCut::AtOp(op), seed * 1_000 + op);
                    let fs: Fs<'_> = FlashStorage::new(flash, 0, UNITS).unwrap();
                    assert!(
                        run(fs, 1, WRITES, &mut acked).is_err(),
                        "cut at {op} hit nothing"
                    );
                }
                cuts += 1;
                let ctx = format!("{mode:?} seed {seed} cut at op {op}, acknowledged {acked}");
                let found = latest(&mut mem);
                match found {
                    None => assert_eq!(acked, 0, "{ctx}: every checkpoint lost"),
                    Some(id) => assert!(
                        id == acked || id == acked + 1,
                        "{ctx}: found checkpoint {id}"
                    ),
                }
                // Writing goes on after the cut, still in two units.
                let next = found.unwrap_or(0) + 1;
                let mut acked2 = 0;
                {
                    let fs: Fs<'_> = FlashStorage::new(Flash::new(&mut mem), 0, UNITS).unwrap();
                    run(fs, next, next + 3, &mut acked2).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                }
                assert_eq!(latest(&mut mem), Some(next + 3), "{ctx}: after continuing");
            }
        }
    }
    println!("A/B checkpoint slots: {cuts} power cuts explored ({total} operations per run)");
}
