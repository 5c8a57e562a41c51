//! Power-cut sweeps: the core WAL and checkpoint lifecycle over `FlashStorage<SimFlash>`
//! with a simulated power cut at every program and erase of a scenario in turn.
//!
//! Every run ("session") starts from the flash bytes alone: a fresh `SimFlash` over the
//! image, fresh mounts of the two partitions (WAL and checkpoints, on the same simulated
//! chip, so one cut hits both), a recovery checked against the model, a fresh writer,
//! then the session's steps. A cut ends the session; the next one starts from the image.
//!
//! Checked after every recovery: every acknowledged entry (appended before a `sync` or
//! `publish` that returned `Ok`) is present, in order, with contiguous ids and the
//! payload appended under that id; nothing beyond what was appended appears; the
//! checkpoint the state starts from equals the model's state at its `last_id`; and what
//! one recovery returned is never lost by a later one.
// Sessions return the ops they ran; every failure panics with the cut that caused it.
#![allow(clippy::type_complexity)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use durability_core::checkpoint::CheckpointStore;
use durability_core::lifecycle::{publish, recover};
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::{ReadMode, Storage};
use durability_embedded::sim::{PowerCut, SimError, SimFlash, TornErase};
use durability_embedded::FlashStorage;
use embedded_storage::nor_flash::{ErrorType as NorErrorType, NorFlash, ReadNorFlash};
use proptest::prelude::*;

const ERASE: usize = 256;
const WAL_UNITS: usize = 12;
const CP_UNITS: usize = 12;
const N: usize = 12;
const MEM: usize = (WAL_UNITS + CP_UNITS) * ERASE;
const LOG_ID: u64 = 0xC0FF_EE00_1234_5678;
const CP_LEN: usize = 40;
const KEEP: usize = 2;

thread_local! {
    /// Debug aid: set it in a test to print every program and erase, and the
    /// partitions' occupancy at each mount.
    static TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    /// What cut erases leave: `Any` (the old header may survive over a half-erased body).
    static TORN_ERASE: std::cell::Cell<TornErase> = const { std::cell::Cell::new(TornErase::Any) };
}

static TOTAL: AtomicU64 = AtomicU64::new(0);

fn report(test: &str, cuts: u64) {
    let total = TOTAL.fetch_add(cuts, Ordering::Relaxed) + cuts;
    println!("power_cut: {test}: {cuts} power cuts explored (running total in this file: {total})");
}

type Sim<'a, const W: usize> = SimFlash<'a, W, W, ERASE>;

/// One simulated chip shared by two partitions.
struct Shared<'r, 'a, const W: usize>(&'r RefCell<Sim<'a, W>>);

impl<const W: usize> NorErrorType for Shared<'_, '_, W> {
    type Error = SimError;
}

impl<const W: usize> ReadNorFlash for Shared<'_, '_, W> {
    const READ_SIZE: usize = W;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.0.borrow_mut().read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl<const W: usize> NorFlash for Shared<'_, '_, W> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = ERASE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        let r = self.0.borrow_mut().erase(from, to);
        if TRACE.with(|t| t.get()) {
            println!("  erase unit {} -> {r:?}", from as usize / ERASE);
        }
        r
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let r = self.0.borrow_mut().write(offset, bytes);
        if TRACE.with(|t| t.get()) {
            println!(
                "  write unit {} off {} len {} -> {r:?}",
                offset as usize / ERASE,
                offset as usize % ERASE,
                bytes.len()
            );
        }
        r
    }
}

type Fs<'r, 'a, const W: usize> = FlashStorage<Shared<'r, 'a, W>, N>;

/// Regression: a checkpoint written to a `FlashStorage` partition must be found after a
/// remount (it was not while `FlashStorage` recognised units by a WAL segment header
/// only; fixed in the working tree by the checkpoint header's `seq` field).
#[test]
fn checkpoint_store_on_flash_survives_remount() {
    let mut mem = vec![0xFF; CP_UNITS * ERASE];
    {
        let fs: FlashStorage<SimFlash<'_, 4, 4, ERASE>, N> =
            FlashStorage::new(SimFlash::new(&mut mem), 0, CP_UNITS).unwrap();
        let mut store = CheckpointStore::new(fs);
        assert_eq!(store.write(LOG_ID, 7, b"state after 7").unwrap(), 1);
        let mut buf = [0u8; 64];
        assert_eq!(store.latest(&mut buf).unwrap().unwrap().header.last_id, 7);
    }
    let fs: FlashStorage<SimFlash<'_, 4, 4, ERASE>, N> =
        FlashStorage::new(SimFlash::new(&mut mem), 0, CP_UNITS).unwrap();
    let mut store = CheckpointStore::new(fs);
    let mut buf = [0u8; 64];
    let latest = store.latest(&mut buf).unwrap();
    assert_eq!(
        latest.map(|c| c.header.last_id),
        Some(7),
        "checkpoint lost at remount"
    );
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Append(usize),
    Sync,
    Publish { marker: bool },
}

use Step::*;

/// What the test appended: `entries[id - 1]` is the payload under `id` (entries past
/// `acked` may or may not be on flash).
#[derive(Debug, Clone, Default)]
struct Model {
    entries: Vec<Vec<u8>>,
    acked: u64,
    /// Bumped per session so an id reused after a lost tail gets a different payload.
    generation: u64,
}

fn fold(mut h: u64, id: u64, p: &[u8]) -> u64 {
    const P: u64 = 0x0000_0100_0000_01B3;
    h = (h ^ id).wrapping_mul(P);
    for &b in p {
        h = (h ^ b as u64).wrapping_mul(P);
    }
    (h ^ p.len() as u64).wrapping_mul(P)
}

const FOLD_INIT: u64 = 0xCBF2_9CE4_8422_2325;

impl Model {
    fn hash(&self, upto: u64) -> u64 {
        self.entries[..upto as usize]
            .iter()
            .enumerate()
            .fold(FOLD_INIT, |h, (i, p)| fold(h, i as u64 + 1, p))
    }
    fn next_payload(&self, len: usize) -> Vec<u8> {
        let id = self.entries.len() as u64 + 1;
        (0..len)
            .map(|k| ((id * 31 + k as u64 * 7 + self.generation * 13) % 256) as u8)
            .collect()
    }
    fn checkpoint(&self, last: u64) -> Vec<u8> {
        let mut p = Vec::with_capacity(CP_LEN);
        p.extend_from_slice(&last.to_le_bytes());
        p.extend_from_slice(&self.hash(last).to_le_bytes());
        p.extend((16..CP_LEN).map(|k| (k as u64 ^ last) as u8));
        p
    }
}

/// Recovered state: last id applied and the fold of everything up to it.
#[derive(Debug, Clone, Copy)]
struct St {
    last: u64,
    hash: u64,
}

/// A session failed: lost power (expected) at step `k`, or any other error (a bug).
enum Stop {
    Lost(usize),
}

/// One boot: mount, recover and check, open a writer, run `steps`. Returns the program
/// and erase calls made and whether all steps ran (else the step power was lost in;
/// power lost during recovery or open counts as step 0).
fn session<const W: usize>(
    mem: &mut [u8],
    cut: Option<(PowerCut, u64)>,
    model: &mut Model,
    steps: &[Step],
    ctx: &dyn Fn() -> String,
) -> (Result<(), usize>, u64) {
    let flash = RefCell::new(Sim::<W>::new(mem));
    if let Some((c, seed)) = cut {
        flash.borrow_mut().set_power_cut(c, seed);
    }
    flash
        .borrow_mut()
        .set_torn_erase(TORN_ERASE.with(|t| t.get()));
    let r = session_inner(&flash, model, steps, ctx);
    let ops = flash.borrow().ops();
    match r {
        Ok(()) => (Ok(()), ops),
        Err(Stop::Lost(k)) => (Err(k), ops),
    }
}

fn session_inner<const W: usize>(
    flash: &RefCell<Sim<'_, W>>,
    model: &mut Model,
    steps: &[Step],
    ctx: &dyn Fn() -> String,
) -> Result<(), Stop> {
    // Any error is fine only once the power is gone.
    let lost = |k: usize, what: &dyn core::fmt::Debug| {
        assert!(
            flash.borrow().power_lost(),
            "{}: unexpected error at step {k}: {what:?}",
            ctx()
        );
        Stop::Lost(k)
    };
    let wal: Fs<'_, '_, W> =
        FlashStorage::new(Shared(flash), 0, WAL_UNITS).map_err(|e| lost(0, &e))?;
    let cp_fs: Fs<'_, '_, W> =
        FlashStorage::new(Shared(flash), (WAL_UNITS * ERASE) as u32, CP_UNITS)
            .map_err(|e| lost(0, &e))?;
    if TRACE.with(|t| t.get()) {
        let mut segs = Vec::new();
        let mut cp_fs = cp_fs;
        cp_fs.list(&mut |n| segs.push(n)).unwrap();
        println!(
            "session: wal free units {}, checkpoint segments {segs:?}",
            wal.free_units()
        );
        return session_cps(flash, model, steps, ctx, wal, cp_fs);
    }
    session_cps(flash, model, steps, ctx, wal, cp_fs)
}

fn session_cps<'r, 'a, const W: usize>(
    flash: &'r RefCell<Sim<'a, W>>,
    model: &mut Model,
    steps: &[Step],
    ctx: &dyn Fn() -> String,
    mut wal: Fs<'r, 'a, W>,
    cp_fs: Fs<'r, 'a, W>,
) -> Result<(), Stop> {
    let lost = |k: usize, what: &dyn core::fmt::Debug| {
        assert!(
            flash.borrow().power_lost(),
            "{}: unexpected error at step {k}: {what:?}",
            ctx()
        );
        Stop::Lost(k)
    };
    let mut cps = CheckpointStore::new(cp_fs);
    let mut buf = [0u8; 256];

    let m: &Model = model;
    let (st, rep) = recover(
        &mut wal,
        &mut cps,
        &mut buf,
        ReadMode::BestEffort,
        |cp| {
            Ok(match cp {
                None => St {
                    last: 0,
                    hash: FOLD_INIT,
                },
                Some((h, p)) => {
                    let last = h.last_id;
                    assert!(
                        last <= m.entries.len() as u64,
                        "{}: checkpoint of a phantom entry {last} (appended: {})",
                        ctx(),
                        m.entries.len()
                    );
                    assert_eq!(
                        p,
                        &m.checkpoint(last)[..],
                        "{}: checkpoint {last} differs from the model",
                        ctx()
                    );
                    St {
                        last,
                        hash: m.hash(last),
                    }
                }
            })
        },
        |st, id, p| {
            assert_eq!(id, st.last + 1, "{}: ids not contiguous", ctx());
            assert!(
                id <= m.entries.len() as u64,
                "{}: phantom entry {id} (appended: {})",
                ctx(),
                m.entries.len()
            );
            assert_eq!(
                p,
                &m.entries[id as usize - 1][..],
                "{}: entry {id} has the wrong payload",
                ctx()
            );
            st.last = id;
            st.hash = fold(st.hash, id, p);
            Ok(())
        },
    )
    .map_err(|e| lost(0, &e))?;
    assert!(
        st.last >= model.acked,
        "{}: acknowledged entries lost: recovered up to {}, acknowledged {}",
        ctx(),
        st.last,
        model.acked
    );
    assert_eq!(rep.next_id, st.last + 1, "{}: next id", ctx());
    assert_eq!(st.hash, model.hash(st.last));
    // What a recovery returned must stay: the writer continues after it.
    model.entries.truncate(st.last as usize);
    model.acked = st.last;
    model.generation += 1;

    // Ids continue after the recovery; the segments its checkpoint covers are not read
    // again (an interrupted erase may have left one half-erased).
    let cfg = rep.writer_config(WalConfig::new(LOG_ID));
    let mut w = WalWriter::open(&mut wal, [0u8; 256], cfg).map_err(|e| lost(0, &e))?;
    let mut scratch = [0u8; 256];
    for (k, step) in steps.iter().enumerate() {
        match *step {
            Append(len) => {
                let p = model.next_payload(len);
                model.entries.push(p.clone());
                let id = w.append(&p).map_err(|e| lost(k, &e))?;
                assert_eq!(id, model.entries.len() as u64, "{}: id handed out", ctx());
            }
            Sync => {
                w.sync().map_err(|e| lost(k, &e))?;
                model.acked = model.entries.len() as u64;
            }
            Publish { marker } => {
                let Some(last) = w.last_id().map_err(|e| lost(k, &e))? else {
                    continue;
                };
                let cp = model.checkpoint(last);
                let mp = [b'M', last as u8, (last >> 8) as u8];
                if marker {
                    model.entries.push(mp.to_vec());
                }
                let r = publish(
                    &mut w,
                    &mut cps,
                    last,
                    &cp,
                    marker.then_some(&mp[..]),
                    KEEP,
                    &mut scratch,
                )
                .map_err(|e| lost(k, &e))?;
                if marker {
                    assert_eq!(r.marker_id, Some(model.entries.len() as u64));
                }
                model.acked = model.entries.len() as u64;
            }
        }
    }
    Ok(())
}

/// Entry sizes cycled by the scenarios.
const SIZES: [usize; 8] = [0, 1, 13, 31, 7, 60, 24, 3];

fn appends(from: usize, n: usize, sync_every: usize) -> Vec<Step> {
    let mut v = Vec::new();
    for k in 0..n {
        v.push(Append(SIZES[(from + k) % SIZES.len()]));
        if (k + 1) % sync_every == 0 {
            v.push(Sync);
        }
    }
    v.push(Sync);
    v
}

/// Appends across several units (segments rotate as units fill).
fn fill() -> Vec<Step> {
    appends(0, 30, 4)
}

/// Many small synced appends: rotation with a sync marker after every entry.
fn rotate() -> Vec<Step> {
    appends(3, 20, 1)
}

/// Appends, then a publish with a marker, more appends, a second publish.
fn publish_cp() -> Vec<Step> {
    let mut v = appends(0, 8, 3);
    v.push(Publish { marker: true });
    v.extend(appends(2, 5, 2));
    v.push(Publish { marker: false });
    v.extend(appends(5, 2, 1));
    v
}

/// Fill several units, then publish: the covered segments are erased.
fn reclaim() -> Vec<Step> {
    let mut v = appends(1, 28, 5);
    v.push(Publish { marker: false });
    v.extend(appends(4, 3, 1));
    v.push(Publish { marker: true });
    v
}

/// Keep appending and publishing until unit numbers wrap the partition several times.
/// Rounds of the wrap scenario: enough to go round the WAL partition three times with
/// 1-byte words (the scenario that programs the fewest bytes).
const WRAP_ROUNDS: usize = 21;

fn wrap(rounds: usize) -> Vec<Step> {
    let mut v = Vec::new();
    for r in 0..rounds {
        v.extend(appends(r, 14, 3));
        v.push(Publish { marker: r % 2 == 0 });
    }
    v
}

/// What every session after a cut does: continue writing, publish, write more.
fn continuation() -> Vec<Step> {
    let mut v = vec![Publish { marker: true }];
    v.extend(appends(2, 3, 2));
    v.push(Publish { marker: false });
    v.extend(appends(6, 2, 1));
    v
}

/// A prepared image: the first session run clean up to (not including) `steps`.
fn fresh() -> Vec<u8> {
    vec![0xFF; MEM]
}

fn final_check<const W: usize>(mem: &mut [u8], model: &mut Model, ctx: &dyn Fn() -> String) {
    let (r, _) = session::<W>(mem, None, model, &continuation(), ctx);
    assert!(r.is_ok());
    let before = model.entries.len() as u64;
    let (r, _) = session::<W>(mem, None, model, &[], ctx);
    assert!(r.is_ok());
    assert_eq!(
        model.entries.len() as u64,
        before,
        "{}: the final recovery lost or gained entries",
        ctx()
    );
}

/// Ops of a clean run of `steps` from `image`/`model`.
fn dry_ops<const W: usize>(image: &[u8], model: &Model, steps: &[Step]) -> u64 {
    let mut mem = image.to_vec();
    let mut m = model.clone();
    let (r, ops) = session::<W>(&mut mem, None, &mut m, steps, &|| "dry run".into());
    assert!(r.is_ok());
    ops
}

/// Linear sweep: a cut at every op of `steps` (each with `seeds` seeds), then recovery,
/// continuation, final recovery. With `second_every > 0`, for every `second_every`-th
/// first cut, a second cut at every op of the session after it. Returns cuts made.
fn sweep<const W: usize>(name: &str, steps: &[Step], seeds: u64, second_every: u64) -> u64 {
    let image = fresh();
    let model = Model::default();
    let ops = dry_ops::<W>(&image, &model, steps);
    let mut cuts = 0;
    for op in 0..ops {
        for seed in 0..seeds {
            let ctx = || format!("{name} W={W}: cut at op {op} seed {seed}");
            let mut mem = image.clone();
            let mut m = model.clone();
            let (r, _) = session::<W>(
                &mut mem,
                Some((PowerCut::AtOp(op), seed)),
                &mut m,
                steps,
                &ctx,
            );
            assert!(r.is_err(), "{}: the cut did not hit", ctx());
            cuts += 1;
            let after_first = mem.clone();
            let m1 = m.clone();
            final_check::<W>(&mut mem, &mut m, &ctx);

            if second_every > 0 && op % second_every == 0 {
                let cont = continuation();
                let ops2 = dry_ops::<W>(&after_first, &m1, &cont);
                for op2 in 0..ops2 {
                    let ctx2 = || {
                        format!("{name} W={W}: cut at op {op} seed {seed}, then at op {op2} of the next session")
                    };
                    let mut mem = after_first.clone();
                    let mut m = m1.clone();
                    let (r, _) = session::<W>(
                        &mut mem,
                        Some((PowerCut::AtOp(op2), op2 ^ 0x55)),
                        &mut m,
                        &cont,
                        &ctx2,
                    );
                    assert!(r.is_err(), "{}: the second cut did not hit", ctx2());
                    cuts += 1;
                    final_check::<W>(&mut mem, &mut m, &ctx2);
                }
            }
        }
    }
    cuts
}

fn sweep_all_words(name: &str, steps: fn() -> Vec<Step>, seeds: u64, second_every: u64) {
    let s = steps();
    let cuts = sweep::<1>(name, &s, seeds, second_every)
        + sweep::<4>(name, &s, seeds, second_every)
        + sweep::<8>(name, &s, seeds, second_every)
        + sweep::<32>(name, &s, seeds, second_every);
    report(name, cuts);
}

#[test]
fn cut_during_fill() {
    sweep_all_words("fill", fill, 4, 1);
}

#[test]
fn cut_during_rotate() {
    sweep_all_words("rotate", rotate, 4, 1);
}

#[test]
fn cut_during_publish() {
    sweep_all_words("publish", publish_cp, 4, 1);
}

#[test]
fn cut_during_reclaim() {
    sweep_all_words("reclaim", reclaim, 3, 1);
}

#[test]
fn cut_during_wrap() {
    sweep_all_words("wrap", || wrap(WRAP_ROUNDS), 3, 5);
}

/// Cut by bytes programmed: the torn word walks through every word of the scenario.
#[test]
fn cut_at_every_programmed_word() {
    fn run<const W: usize>(steps: &[Step]) -> u64 {
        let image = fresh();
        let mut m0 = Model::default();
        let mut mem = image.clone();
        let flash_bytes = {
            let flash = RefCell::new(Sim::<W>::new(&mut mem));
            let r = session_inner(&flash, &mut m0, steps, &|| "dry".into());
            assert!(r.is_ok());
            let b = flash.borrow().bytes_since_armed();
            b
        };
        let mut cuts = 0;
        for byte in (0..flash_bytes).step_by(W) {
            let ctx = || format!("{steps:?} W={W}: cut at programmed byte {byte}");
            let mut mem = image.clone();
            let mut m = Model::default();
            let (r, _) = session::<W>(
                &mut mem,
                Some((PowerCut::AtByte(byte), byte)),
                &mut m,
                steps,
                &ctx,
            );
            assert!(r.is_err(), "{}: the cut did not hit", ctx());
            cuts += 1;
            final_check::<W>(&mut mem, &mut m, &ctx);
        }
        cuts
    }
    let mut cuts = 0;
    for steps in [publish_cp(), reclaim(), fill()] {
        cuts += run::<1>(&steps) + run::<4>(&steps) + run::<8>(&steps) + run::<32>(&steps);
    }
    report("every programmed word", cuts);
}

/// Two torn appends in a row: cut during append 1, recover and reopen, cut during
/// append 2, recover and reopen, then clean appends: all of them must survive.
#[test]
fn two_torn_appends_in_a_row() {
    fn run<const W: usize>() -> u64 {
        let mut image = fresh();
        let mut model = Model::default();
        let (r, _) = session::<W>(&mut image, None, &mut model, &appends(0, 6, 2), &|| {
            "setup".into()
        });
        assert!(r.is_ok());
        let one = [Append(31), Sync];
        let ops1 = dry_ops::<W>(&image, &model, &one);
        let mut cuts = 0;
        for op1 in 0..ops1 {
            for seed1 in 0..8 {
                let mut mem1 = image.clone();
                let mut m1 = model.clone();
                let ctx1 = || format!("torn appends W={W}: first cut at op {op1} seed {seed1}");
                let (r, _) = session::<W>(
                    &mut mem1,
                    Some((PowerCut::AtOp(op1), seed1)),
                    &mut m1,
                    &one,
                    &ctx1,
                );
                assert!(r.is_err());
                cuts += 1;
                let ops2 = dry_ops::<W>(&mem1, &m1, &one);
                for op2 in 0..ops2 {
                    let ctx = || {
                        format!("torn appends W={W}: first cut at op {op1} seed {seed1}, second at op {op2}")
                    };
                    let mut mem = mem1.clone();
                    let mut m = m1.clone();
                    let (r, _) = session::<W>(
                        &mut mem,
                        Some((PowerCut::AtOp(op2), op2 + 7)),
                        &mut m,
                        &one,
                        &ctx,
                    );
                    assert!(r.is_err());
                    cuts += 1;
                    let clean = appends(1, 5, 5);
                    let (r, _) = session::<W>(&mut mem, None, &mut m, &clean, &ctx);
                    assert!(r.is_ok());
                    let want = m.entries.len() as u64;
                    assert_eq!(m.acked, want);
                    // Rebuild from the image: every clean append is there.
                    let (r, _) = session::<W>(&mut mem, None, &mut m, &[], &ctx);
                    assert!(r.is_ok());
                    assert_eq!(
                        m.entries.len() as u64,
                        want,
                        "{}: clean appends lost",
                        ctx()
                    );
                }
            }
        }
        cuts
    }
    report(
        "two torn appends in a row",
        run::<1>() + run::<4>() + run::<8>() + run::<32>(),
    );
}

/// Random multi-cut schedules over the long scenarios: each cut ends a session, the
/// next one recovers from the image and resumes the workload at the step it lost.
fn multi_cut<const W: usize>(steps: &[Step], schedule: &[(u64, u64)]) -> u64 {
    let mut mem = fresh();
    let mut model = Model::default();
    let mut at = 0usize;
    let mut cuts = 0;
    for (i, &(frac, seed)) in schedule.iter().enumerate() {
        let rest = if at < steps.len() {
            steps[at..].to_vec()
        } else {
            continuation()
        };
        // Cut somewhere in this session: `frac` scaled to its op count.
        let ops = dry_ops::<W>(&mem, &model, &rest);
        let op = frac % ops.max(1);
        let ctx = || {
            format!("multi-cut W={W}: schedule {schedule:?}, cut #{i} at op {op} (workload at step {at})")
        };
        let (r, _) = session::<W>(
            &mut mem,
            Some((PowerCut::AtOp(op), seed)),
            &mut model,
            &rest,
            &ctx,
        );
        match r {
            Ok(()) => at = steps.len().max(at + rest.len()),
            Err(k) => {
                cuts += 1;
                if at < steps.len() {
                    at += k;
                }
            }
        }
    }
    let ctx = || format!("multi-cut W={W}: schedule {schedule:?}, final");
    if at < steps.len() {
        let rest = steps[at..].to_vec();
        let (r, _) = session::<W>(&mut mem, None, &mut model, &rest, &ctx);
        assert!(r.is_ok());
    }
    final_check::<W>(&mut mem, &mut model, &ctx);
    cuts
}

fn random_multi_cuts(name: &str, steps: fn() -> Vec<Step>, cases: u32) {
    use proptest::test_runner::{Config, TestRunner};
    let cuts = std::cell::Cell::new(0u64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec((0u64..u64::MAX, any::<u64>()), 1..8),
        0usize..4,
    );
    let steps = steps();
    runner
        .run(&strategy, |(schedule, word)| {
            let n = match word {
                0 => multi_cut::<1>(&steps, &schedule),
                1 => multi_cut::<4>(&steps, &schedule),
                2 => multi_cut::<8>(&steps, &schedule),
                _ => multi_cut::<32>(&steps, &schedule),
            };
            cuts.set(cuts.get() + n);
            Ok(())
        })
        .unwrap();
    report(name, cuts.get());
}

#[test]
fn random_multi_cuts_wrap() {
    random_multi_cuts("random multi-cut schedules, wrap", || wrap(10), 512);
}

#[test]
fn random_multi_cuts_reclaim() {
    random_multi_cuts("random multi-cut schedules, reclaim", reclaim, 512);
}

/// The image round trip: save, load, mount, same contents.
#[test]
fn image_save_and_load() {
    let mut mem = fresh();
    let mut model = Model::default();
    let (r, _) = session::<4>(&mut mem, None, &mut model, &publish_cp(), &|| {
        "image".into()
    });
    assert!(r.is_ok());
    let flash = Sim::<4>::new(&mut mem);
    let path = std::env::temp_dir().join(format!("durability-sim-{}.img", std::process::id()));
    flash.save_image(&path).unwrap();
    let header = flash.image_header();
    let mut back = Sim::<4>::load_image(&path).unwrap();
    assert_eq!(&back[..], flash.memory());
    assert!(
        SimFlash::<1, 1, ERASE>::load_image(&path).is_err(),
        "geometry is checked"
    );
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(&raw[..32], &header[..]);
    std::fs::remove_file(&path).unwrap();
    let (r, _) = session::<4>(&mut back, None, &mut model, &[], &|| "image reload".into());
    assert!(r.is_ok());
}

/// Regression (fixed by `WalConfig::covered_through` / `WalReader::replay_after`): a
/// power cut during the erase of a WAL unit that `truncate_through` removes may leave
/// the unit's old segment header over a partly erased body ("NOR gives no ordering
/// inside an erase"). The segment reappears at mount as the lowest, non-final segment;
/// recovery and the writer used to fail with `Corrupt { BadFrameInSealedSegment }`
/// although a durable checkpoint covers every entry it held. Now neither reads it, and
/// the next `truncate_through` erases it again. Every sweep uses `TornErase::Any` too.
#[test]
fn cut_during_reclaim_any_torn_erase() {
    TORN_ERASE.with(|t| t.set(TornErase::Any));
    let s = reclaim();
    let cuts = sweep::<4>("reclaim (any torn erase)", &s, 8, 0)
        + sweep::<1>("reclaim (any torn erase)", &s, 8, 0);
    report("reclaim, any torn erase", cuts);
}

/// Regression (fixed in core `CheckpointStore::write`): checkpoints torn by power cuts
/// used to be removed only by `retain_newest` after a later write succeeded. Two cuts in
/// a row during checkpoint writes on a 4-unit partition with `keep = 2` left
/// [valid, valid, torn, torn] and every later publish failed with `NoSpace`. A write
/// that finds the medium full now clears torn leftovers first (numbers stay monotonic).
#[test]
fn torn_checkpoints_do_not_exhaust_the_partition() {
    type F<'a> = SimFlash<'a, 4, 4, ERASE>;
    let mut mem = vec![0xFF; 4 * ERASE];
    let open = |mem: &mut [u8], cut: Option<u64>| -> Result<u64, String> {
        let mut flash = F::new(mem);
        if let Some(op) = cut {
            flash.set_power_cut(PowerCut::AtOp(op), op);
        }
        let fs: FlashStorage<F<'_>, N> =
            FlashStorage::new(flash, 0, 4).map_err(|e| format!("{e:?}"))?;
        let mut store = CheckpointStore::new(fs);
        let mut scratch = [0u8; 64];
        let seq = store
            .write(LOG_ID, 9, b"checkpoint")
            .map_err(|e| format!("{e:?}"))?;
        store
            .retain_newest(KEEP, &mut scratch)
            .map_err(|e| format!("{e:?}"))?;
        Ok(seq)
    };
    assert_eq!(open(&mut mem, None), Ok(1));
    assert_eq!(open(&mut mem, None), Ok(2));
    // Ops of a write: erase (0), checkpoint header (1), payload (2).
    assert!(open(&mut mem, Some(2)).is_err(), "cut during checkpoint 3");
    assert!(open(&mut mem, Some(2)).is_err(), "cut during checkpoint 4");
    assert_eq!(
        open(&mut mem, None),
        Ok(5),
        "a clean publish after two cut ones"
    );
}

/// The wrap scenario really wraps: segment numbers (one per unit) go round the WAL
/// partition at least three times.
#[test]
fn wrap_scenario_wraps_the_partition() {
    fn highest<const W: usize>() -> u64 {
        let mut mem = fresh();
        let mut m = Model::default();
        let (r, _) = session::<W>(&mut mem, None, &mut m, &wrap(WRAP_ROUNDS), &|| {
            "wrap".into()
        });
        assert!(r.is_ok());
        let flash = RefCell::new(Sim::<W>::new(&mut mem));
        let mut wal: Fs<'_, '_, W> = FlashStorage::new(Shared(&flash), 0, WAL_UNITS).unwrap();
        let mut hi = 0;
        wal.list(&mut |n| hi = hi.max(n)).unwrap();
        hi
    }
    let his = [
        highest::<1>(),
        highest::<4>(),
        highest::<8>(),
        highest::<32>(),
    ];
    println!("wrap: highest WAL segment per word size 1/4/8/32: {his:?} ({WAL_UNITS} units)");
    assert!(his.iter().all(|&h| h >= 3 * WAL_UNITS as u64), "{his:?}");
}
