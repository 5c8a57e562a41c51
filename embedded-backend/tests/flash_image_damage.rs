//! Damaged flash images: a real image (WAL partition written by `WalWriter`, checkpoint
//! partition by `lifecycle::publish`, optionally cut by a simulated power failure) is
//! damaged — bits cleared or flipped, bytes overwritten, words set to 0xFF/0x00, unit
//! tails erased, whole units garbled, erased, copied over others or swapped — and then
//! everything is rebuilt from the bytes alone: mount, replay (strict and best-effort,
//! growable and fixed buffers), `WalWriter::open` + append + sync + remount, lifecycle
//! recovery (both modes) + a writer continuing after it + recovery again.
//!
//! Asserted (see `flash_image_damage/scenario.rs`): no panic; every delivered entry has
//! exactly the payload written under its id (payloads are a function of the id), ids
//! strictly increasing and contiguous, none beyond what was ever assigned; checkpoints
//! hold the payload written for their `last_id`; the modes agree except for how a torn
//! tail ends them; a reader's growable buffer never exceeds an erase unit; a writer
//! opens wherever replay works (or the partition is full), never reuses a delivered
//! id, and its appended entry reads back last after a remount; an undamaged image
//! (power cut or not) recovers every acknowledged entry.
//!
//! The same scenario is the cargo-fuzz target `fuzz_flash_image` (which includes the
//! module by path).

#[path = "flash_image_damage/scenario.rs"]
mod scenario;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use scenario::{Cut, Damage, Op, Spec, Stats, Target};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..7).prop_map(Op::Append),
        2 => Just(Op::Sync),
        1 => any::<bool>().prop_map(|marker| Op::Publish { marker }),
        1 => Just(Op::Reboot),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    (any::<u8>(), any::<u16>()).prop_map(|(unit, off)| Target { unit, off })
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => (target(), 1u8..).prop_map(|(at, mask)| Damage::ClearBits { at, mask }),
        3 => (target(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        2 => (target(), any::<u8>()).prop_map(|(at, value)| Damage::Byte { at, value }),
        2 => (target(), any::<bool>()).prop_map(|(at, erased)| Damage::Word { at, erased }),
        1 => target().prop_map(|at| Damage::EraseTail { at }),
        1 => (any::<u8>(), any::<u64>()).prop_map(|(unit, seed)| Damage::Garbage { unit, seed }),
        1 => any::<u8>().prop_map(|unit| Damage::EraseUnit { unit }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(from, to)| Damage::CopyUnit { from, to }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Damage::SwapUnits { a, b }),
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    (0u8..3, any::<bool>(), 0u16..48, any::<u64>()).prop_map(
        |(session, checkpoint_partition, op, seed)| Cut {
            session,
            checkpoint_partition,
            op,
            seed,
        },
    )
}

fn spec(damage_ops: std::ops::Range<usize>, cut_odds: f64) -> impl Strategy<Value = Spec> {
    (
        0u8..3,
        prop_oneof![Just(8u8), Just(40), Just(160)],
        any::<u64>(),
        prop::collection::vec(op(), 0..28),
        prop::option::weighted(cut_odds, cut()),
        prop::collection::vec(damage(), damage_ops),
    )
        .prop_map(|(word, max_len, len_seed, ops, cut, damage)| Spec {
            word,
            max_len,
            len_seed,
            ops,
            cut,
            damage,
        })
}

/// Seconds a case may take before it counts as a hang (a case takes milliseconds).
const HANG_SECS: u64 = 20;

/// Runs one case on its own thread; a case that does not finish in [`HANG_SECS`] is an
/// infinite loop: what it was (`shown`) is printed and the process aborts (a hung thread
/// cannot be stopped, and shrinking hangs would take forever).
fn watchdog(shown: String, case: impl FnOnce() -> Stats + Send + 'static) -> Stats {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(case());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(HANG_SECS)) {
        Ok(st) => {
            handle.join().expect("case thread");
            st
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            eprintln!("flash_image_damage: HANG (over {HANG_SECS} s): {shown}");
            std::process::abort();
        }
        // The case panicked: re-raise it here so proptest sees and shrinks it.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(()) => unreachable!("a case that finished sent its stats"),
            Err(p) => std::panic::resume_unwind(p),
        },
    }
}

/// Runs `cases` cases of `strategy`, failing on the first panic (shrunk by proptest);
/// prints how far the cases got.
fn sweep(name: &str, cases: u32, strategy: impl Strategy<Value = Spec>) -> Stats {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let total = std::cell::RefCell::new(Stats::default());
    let result = runner.run(&strategy, |spec| {
        let st = watchdog(format!("{spec:?}"), move || scenario::run(&spec));
        total.borrow_mut().add(&st);
        Ok::<(), TestCaseError>(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let st = total.into_inner();
    println!("flash_image_damage: {name}: {st:?}");
    st
}

#[test]
fn damaged_images_never_panic_or_lie() {
    let st = sweep("damaged", 8000, spec(1..6, 0.3));
    // The suite must reach every stage often enough to mean something.
    assert!(st.replay_ok + st.replay_torn > st.cases / 10, "{st:?}");
    assert!(st.replay_err > 0, "{st:?}");
    assert!(st.writer_appended > st.cases / 10, "{st:?}");
    assert!(st.recovered_writer_appended > st.cases / 10, "{st:?}");
    assert!(st.entries_delivered > st.cases, "{st:?}");
}

#[test]
fn undamaged_images_recover_everything_acknowledged() {
    let st = sweep("undamaged", 2000, spec(0..1, 0.6));
    assert!(st.built_cut > 0, "{st:?}");
    // Both recoveries ran on every image (both partitions always mount).
    assert_eq!(st.recovered + st.recovery_err, st.cases * 2, "{st:?}");
}

#[test]
fn raw_images_never_panic() {
    let mut runner = TestRunner::new(Config {
        cases: 500,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0u8..3,
        prop::collection::vec(any::<u8>(), 0..scenario::CHIP),
    );
    runner
        .run(&strategy, |(word, bytes)| {
            let shown = format!("raw image, word {word}: {bytes:02x?}");
            watchdog(shown, move || scenario::run_raw(word, &bytes));
            Ok(())
        })
        .unwrap();
}

/// Byte-decoded cases (the fuzz target's decoder) run too, so it cannot rot.
#[test]
fn fuzz_decoder_cases() {
    let mut runner = TestRunner::new(Config {
        cases: 500,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..96), |bytes| {
            let spec = scenario::spec_from_bytes(&bytes);
            watchdog(format!("{spec:?}"), move || scenario::run(&spec));
            Ok(())
        })
        .unwrap();
}

/// Regression (found by `damaged_images_never_panic_or_lie`: one `Byte` damage in the
/// checkpoint partition). Two valid checkpoints (seq 1 and 2); then the top byte of
/// checkpoint 2's `seq` field is set to 0x01 (seq = 2^56 + 2). Mount accepts that unit
/// as segment 2^56 + 2 (the checkpoint CRC covers the payload and is not checked at
/// mount). `CheckpointStore::latest` used to count down every number from there to 1,
/// one `len` call each, and never returned (so did `lifecycle::recover`,
/// `retain_newest` and `publish`). Now the walk steps to the next segment present:
/// `latest` answers `Some(seq 1)` (the damaged one no longer verifies).
#[test]
fn checkpoint_seq_damage_does_not_hang_latest() {
    use durability_core::checkpoint::{field, CheckpointStore};
    use durability_embedded::sim::SimFlash;
    use durability_embedded::FlashStorage;
    const UNITS: usize = 4;
    let mut mem = vec![0xFF; UNITS * scenario::ERASE];
    let unit_of_2 = {
        let fs: FlashStorage<SimFlash<'_, 4, 4, { scenario::ERASE }>, UNITS> =
            FlashStorage::new(SimFlash::new(&mut mem), 0, UNITS).unwrap();
        let mut store = CheckpointStore::new(fs);
        assert_eq!(store.write(7, 3, b"state after 3").unwrap(), 1);
        assert_eq!(store.write(7, 5, b"state after 5").unwrap(), 2);
        let fs = store.into_inner();
        fs.unit_addr(fs.unit_of(2).unwrap()) as usize
    };
    mem[unit_of_2 + field::SEQ.end - 1] = 0x01;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fs: FlashStorage<SimFlash<'_, 4, 4, { scenario::ERASE }>, UNITS> =
            FlashStorage::new(SimFlash::new(&mut mem), 0, UNITS).unwrap();
        let mut store = CheckpointStore::new(fs);
        let mut buf = [0u8; 64];
        let r = store.latest(&mut buf).map(|c| c.map(|c| c.seq));
        let _ = tx.send(format!("{r:?}"));
    });
    // A hang detector, not a timing assertion: the call does a handful of reads.
    let r = rx.recv_timeout(std::time::Duration::from_secs(HANG_SECS));
    // Checkpoint 2's header now names seq 2^56 + 2, whose payload CRC fails: the
    // newest valid one is checkpoint 1.
    assert_eq!(
        r.expect("CheckpointStore::latest did not return"),
        "Ok(Some(1))"
    );
}

/// Writes seed inputs for the fuzz target into `fuzz/corpus/fuzz_flash_image/` (which is
/// git-ignored): raw images built by the real writer, and a few built-mode cases.
/// `cargo test -p durability-embedded --test flash_image_damage write_fuzz_seeds -- --ignored`
#[test]
#[ignore = "tool: writes the fuzz seed corpus"]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fuzz_flash_image");
    std::fs::create_dir_all(&dir).unwrap();
    let mut runner = TestRunner::deterministic();
    let strategy = spec(0..1, 0.01);
    for k in 0..12 {
        let spec = strategy.new_tree(&mut runner).unwrap().current();
        std::fs::write(dir.join(format!("raw-{k}")), scenario::raw_seed(&spec)).unwrap();
    }
    let built: [&[u8]; 4] = [
        &[1, 40, 7, 6, 8, 8, 4, 6, 7, 16, 0, 0],
        &[
            0, 160, 3, 9, 16, 16, 4, 134, 7, 24, 4, 6, 0, 2, 1, 9, 0x40, 0, 0x55,
        ],
        &[
            2, 8, 1, 12, 40, 4, 6, 7, 40, 4, 134, 7, 8, 4, 6, 7, 3, 5, 0, 3, 1, 3, 1, 2, 0, 0, 0,
        ],
        &[1, 100, 2, 5, 32, 4, 32, 4, 6, 1, 2, 1, 10, 0, 1, 3],
    ];
    for (k, b) in built.iter().enumerate() {
        std::fs::write(dir.join(format!("built-{k}")), b).unwrap();
    }
}
