//! A firmware-style sensor logger on simulated NOR flash, runnable on the host.
//!
//! ```text
//! cargo run --example flash_logger                        # random power cut
//! cargo run --example flash_logger -- --seed 7            # a reproducible one
//! cargo run --example flash_logger -- --save flash.img    # keep the flash image
//! ```
//!
//! Boot 1 logs readings (each `sync` is the acknowledgement point) until the power is
//! cut at a random flash program or erase. Boot 2 starts from the flash bytes alone:
//! it mounts, recovers (checkpoint + WAL suffix), checks that every acknowledged
//! reading survived, logs more, and publishes a checkpoint, which frees WAL units.
//! Same core code as on a microcontroller: no allocator is needed by the log itself
//! (this host demo uses `Vec` only for its own bookkeeping).

use durability_core::checkpoint::CheckpointStore;
use durability_core::lifecycle::{publish, recover};
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::ReadMode;
use durability_embedded::sim::{PowerCut, SimFlash};
use durability_embedded::FlashStorage;

/// 4-byte words, 4 KiB erase units: a typical internal flash.
type Flash<'a> = SimFlash<'a, 4, 4, 4096>;
type Store<'a> = FlashStorage<Flash<'a>, 16>;

const WAL_UNITS: usize = 12;
const CK_UNITS: usize = 4;
const UNIT: usize = 4096;
const LOG_ID: u64 = 0x5E45_0001;

/// One sensor reading, 8 bytes on flash: sequence number, temperature in 0.01 °C.
fn reading(seq: u32) -> [u8; 8] {
    let centi = 2_000 + ((seq * 37) % 900) as i32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&seq.to_le_bytes());
    out[4..].copy_from_slice(&centi.to_le_bytes());
    out
}

/// What the application keeps in RAM and checkpoints: readings seen, their sum.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Stats {
    count: u64,
    sum_centi: i64,
}

impl Stats {
    fn apply(&mut self, rec: &[u8]) {
        self.count += 1;
        self.sum_centi += i64::from(i32::from_le_bytes(rec[4..8].try_into().unwrap()));
    }
    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..].copy_from_slice(&self.sum_centi.to_le_bytes());
        out
    }
    fn decode(b: &[u8]) -> Self {
        Stats {
            count: u64::from_le_bytes(b[..8].try_into().unwrap()),
            sum_centi: i64::from_le_bytes(b[8..16].try_into().unwrap()),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let seed = arg("--seed").map_or_else(
        || {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.map_or(1, |d| d.subsec_nanos() as u64)
        },
        |s| s.parse().expect("--seed takes a number"),
    );
    // The chip: one erased flash, a WAL partition and a checkpoint partition.
    let mut chip = vec![0xFFu8; (WAL_UNITS + CK_UNITS) * UNIT];
    let (wal_mem, ck_mem) = chip.split_at_mut(WAL_UNITS * UNIT);

    // Boot 1: log until the power fails somewhere in the first 150 flash operations.
    let cut_at = seed % 150;
    println!("boot 1: logging; power cut at flash operation {cut_at} (seed {seed})");
    let mut acked = 0u32;
    {
        let mut flash = Flash::new(wal_mem);
        flash.set_power_cut(PowerCut::AtOp(cut_at), seed);
        let wal = Store::new(flash, 0, WAL_UNITS).expect("mount");
        // Opening a new log erases a unit and writes its header: the cut may hit there.
        let mut w = WalWriter::open(wal, [0u8; 256], WalConfig::new(LOG_ID));
        for seq in 1.. {
            let Ok(w) = w.as_mut() else { break };
            if w.append(&reading(seq)).is_err() {
                break;
            }
            if seq % 8 == 0 {
                if w.sync().is_err() {
                    break;
                }
                acked = seq; // durable: safe to report upstream
            }
        }
        println!("  power lost; {acked} readings were acknowledged");
    }

    // Boot 2: everything is rebuilt from the flash bytes.
    let mut ck = CheckpointStore::new(Store::new(Flash::new(ck_mem), 0, CK_UNITS).expect("mount"));
    let wal = Store::new(Flash::new(wal_mem), 0, WAL_UNITS).expect("mount");
    let mut last_seq = 0u32;
    let (mut stats, report) = recover(
        wal,
        &mut ck,
        &mut [0u8; 256],
        ReadMode::BestEffort,
        |c| Ok(c.map_or_else(Stats::default, |(_, p)| Stats::decode(p))),
        |s: &mut Stats, _id, rec| {
            last_seq = u32::from_le_bytes(rec[..4].try_into().unwrap());
            s.apply(rec);
            Ok(())
        },
    )
    .expect("recovery");
    println!(
        "boot 2: recovered {} readings (last #{last_seq}); torn tail cut: {}",
        stats.count,
        report.replay.torn_at.is_some()
    );
    assert!(
        stats.count >= u64::from(acked),
        "an acknowledged reading was lost"
    );

    // Ids continue after the recovery; units its checkpoint covers are not read again.
    let cfg = report.writer_config(WalConfig::new(LOG_ID));
    let wal = Store::new(Flash::new(wal_mem), 0, WAL_UNITS).expect("mount");
    let mut w = WalWriter::open(wal, [0u8; 256], cfg).expect("open");
    for seq in last_seq + 1..=last_seq + 400 {
        w.append(&reading(seq)).expect("append");
        stats.apply(&reading(seq));
    }
    w.sync().expect("sync");
    let used = WAL_UNITS - w.storage().free_units();
    let last_id = w.last_id().expect("last id").expect("entries");
    let r = publish(
        &mut w,
        &mut ck,
        last_id,
        &stats.encode(),
        None,
        2,
        &mut [0u8; 64],
    )
    .expect("publish");
    println!(
        "  logged 400 more; checkpoint #{} covers entry {last_id}: {} readings, mean {:.2} °C",
        r.checkpoint_seq,
        stats.count,
        stats.sum_centi as f64 / stats.count as f64 / 100.0
    );
    println!(
        "  WAL units in use: {used} before the checkpoint, {} after ({} erased)",
        WAL_UNITS - w.storage().free_units(),
        r.wal_segments_removed
    );
    let io = w.storage().flash().stats();
    println!(
        "  flash since this mount: {} programs ({} bytes), {} erases, {} reads",
        io.writes, io.bytes_programmed, io.erases, io.reads
    );

    if let Some(path) = arg("--save") {
        Flash::new(&mut chip).save_image(&path).expect("save image");
        println!("flash image saved to {path}");
    }
}
