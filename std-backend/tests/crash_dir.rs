//! CrashDirectory: barriers protect exactly what they cover, a crash never invents
//! bytes, names need a directory barrier, renames are atomic, fsyncgate drops data,
//! and everything is deterministic per seed.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use durability_std::crash::{
    Choice, CrashDirectory, CrashPlan, Fill, NameChoice, Operation, PendingKind, SECTOR,
};
use durability_std::failing::{FailKind, Op};
use durability_std::{Directory, DurableDirectory, PersistenceError};

fn io_kind(e: &PersistenceError) -> ErrorKind {
    match e {
        PersistenceError::Io(io) => io.kind(),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

/// Every systematic plan plus `seeds` random ones, applied to `sim`.
fn all_crashes(sim: &CrashDirectory, seeds: u64) -> Vec<CrashDirectory> {
    let mut out: Vec<CrashDirectory> = sim
        .crash_plans()
        .iter()
        .map(|p| sim.crash_with_plan(p))
        .collect();
    out.extend((0..seeds).map(|s| sim.crash(s)));
    out
}

fn read(dir: &dyn Directory, path: &str) -> Vec<u8> {
    let mut v = Vec::new();
    dir.open_file(path).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn synced_data_survives_every_crash_at_every_point() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.create_dir_all("d").unwrap();
    dir.sync_dir("").unwrap();
    let mut h = dir.open_handle("d/f", true).unwrap();
    h.write_at(0, &[1u8; 700]).unwrap();
    h.write_at(700, &[2u8; 100]).unwrap();
    h.sync_data().unwrap();
    dir.sync_dir("d").unwrap();
    let durable_at = sim.op_count();
    h.write_at(800, &[3u8; 1200]).unwrap();
    h.write_at(2000, &[4u8; 10]).unwrap();
    h.write_at(100, &[5u8; 3]).unwrap(); // overwrites durable bytes: may land or not
    let mut expect_prefix = vec![1u8; 700];
    expect_prefix.extend([2u8; 100]);
    let mut states = 0;
    for k in 0..=sim.op_count() {
        let at = sim.snapshot_at(k);
        for after in all_crashes(&at, 40) {
            states += 1;
            let got = after.read_file("d/f");
            if k < durable_at {
                continue;
            }
            let got = got.expect("durable name");
            assert!(got.len() >= 800, "k={k}: durable size lost");
            for (i, (&g, &e)) in got.iter().zip(&expect_prefix).enumerate() {
                // Only the pending overwrite at 100..103 may change durable bytes (to
                // its data, zeros or garbage).
                if !(100..103).contains(&i) {
                    assert_eq!(g, e, "k={k}: durable byte {i} changed");
                }
            }
        }
    }
    assert!(states > 200, "{states}");
}

/// Bytes a crash may leave at `i`: the durable byte, a byte of a pending write covering
/// `i`, or zero. With garbage fill, anything inside a pending write.
#[test]
fn a_crash_never_invents_bytes() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut h = dir.open_handle("f", true).unwrap();
    h.write_at(0, b"DURABLE-DATA").unwrap();
    h.sync_data().unwrap();
    dir.sync_dir("").unwrap();
    let durable = sim.read_file("f").unwrap();
    let writes: Vec<(u64, Vec<u8>)> = vec![
        (12, vec![b'a'; 600]),
        (1000, vec![b'b'; 1100]),
        (4, vec![b'c'; 4]),
        (3000, vec![b'd'; 5]),
    ];
    for (off, data) in &writes {
        h.write_at(*off, data).unwrap();
    }
    assert_eq!(sim.pending_ops(), writes.len());
    let pending = sim.pending();
    assert!(matches!(
        pending[1].kind,
        PendingKind::Write {
            offset: 1000,
            len: 1100
        }
    ));
    let max_end = writes
        .iter()
        .map(|(o, d)| o + d.len() as u64)
        .max()
        .unwrap();
    let covering = |i: u64| {
        writes
            .iter()
            .filter(move |(o, d)| (*o..o + d.len() as u64).contains(&i))
    };
    let check = |after: &CrashDirectory, garbage_ok: bool, what: &str| {
        let got = after.read_file("f").expect("durable name");
        assert!(got.len() as u64 <= max_end, "{what}: longer than any write");
        assert!(got.len() >= durable.len(), "{what}: durable size lost");
        for (i, &g) in got.iter().enumerate() {
            let i64 = i as u64;
            let mut ok = g == 0 || durable.get(i) == Some(&g);
            ok |= covering(i64).any(|(o, d)| d[(i64 - o) as usize] == g);
            ok |= garbage_ok && covering(i64).next().is_some();
            assert!(ok, "{what}: invented byte {g:#x} at {i}");
        }
    };
    // Systematic plans, with garbage replaced by zeros: only real bytes or zeros.
    for plan in sim.crash_plans() {
        let zeroed = CrashPlan {
            files: plan
                .files
                .iter()
                .map(|c| match *c {
                    Choice::TearSector { sector, .. } => Choice::TearSector {
                        sector,
                        fill: Fill::Zeros,
                    },
                    Choice::Sectors { seed, .. } => Choice::Sectors {
                        seed,
                        fill: Fill::Zeros,
                    },
                    c => c,
                })
                .collect(),
            names: plan.names.clone(),
        };
        check(&sim.crash_with_plan(&zeroed), false, &format!("{zeroed:?}"));
        check(&sim.crash_with_plan(&plan), true, &format!("{plan:?}"));
    }
    for seed in 0..500 {
        check(&sim.crash(seed), true, &format!("seed {seed}"));
    }
    // Garbage only where a write was: tear the big write at its first sector.
    let after = sim.crash_with(
        &[
            Choice::Drop,
            Choice::TearSector {
                sector: 1,
                fill: Fill::Random(9),
            },
            Choice::Drop,
            Choice::Drop,
        ],
        &[],
    );
    let got = after.read_file("f").unwrap();
    assert_eq!(got.len(), 2100);
    assert_eq!(&got[..12], b"DURABLE-DATA");
    assert!(got[12..1000].iter().all(|&b| b == 0), "a hole reads zeros");
    assert!(
        got[1000..1024].iter().all(|&b| b == b'b'),
        "landed up to the sector"
    );
    assert!(
        got[1024..].iter().any(|&b| b != 0 && b != b'b'),
        "garbage after it"
    );
    // Zeros: the file keeps the larger size with zeros where data never landed.
    let after = sim.crash_with(
        &[Choice::Drop, Choice::Drop, Choice::Drop, Choice::Zeros],
        &[],
    );
    let got = after.read_file("f").unwrap();
    assert_eq!(got.len(), 3005);
    assert!(got[12..].iter().all(|&b| b == 0));
}

#[test]
fn every_choice_does_what_it_says() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut h = dir.open_handle("f", true).unwrap();
    dir.sync_dir("").unwrap();
    let data: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8 + 1).collect();
    h.write_at(100, &data).unwrap();
    let one = |c: Choice| sim.crash_with(&[c], &[]).read_file("f").unwrap();
    assert_eq!(one(Choice::Drop), b"");
    let mut want = vec![0u8; 100];
    want.extend(&data);
    assert_eq!(one(Choice::Keep), want);
    assert_eq!(one(Choice::Zeros), vec![0u8; 1600]);
    assert_eq!(one(Choice::TearAt(0)), b"");
    assert_eq!(one(Choice::TearAt(10)), want[..110]);
    assert_eq!(one(Choice::TearAt(5000)), want);
    // Boundaries strictly inside 100..1600: 512, 1024, 1536.
    for (sector, cut) in [(0u64, 100usize), (1, 512), (2, 1024), (3, 1536), (4, 1600)] {
        let got = one(Choice::TearSector {
            sector,
            fill: Fill::Zeros,
        });
        assert_eq!(got.len(), 1600);
        assert_eq!(got[..cut], want[..cut], "sector {sector}");
        assert!(got[cut..].iter().all(|&b| b == 0), "sector {sector}");
    }
    let g1 = one(Choice::TearSector {
        sector: 1,
        fill: Fill::Random(1),
    });
    let g2 = one(Choice::TearSector {
        sector: 1,
        fill: Fill::Random(1),
    });
    let g3 = one(Choice::TearSector {
        sector: 1,
        fill: Fill::Random(2),
    });
    assert_eq!(g1, g2, "garbage is deterministic");
    assert_ne!(g1, g3, "and depends on the seed");
    // Random sectors: each piece is either all data or all fill.
    let mut saw_later_without_earlier = false;
    for seed in 0..64 {
        let got = one(Choice::Sectors {
            seed,
            fill: Fill::Zeros,
        });
        assert_eq!(got.len(), 1600);
        let pieces = [
            (100usize, 512usize),
            (512, 1024),
            (1024, 1536),
            (1536, 1600),
        ];
        let landed: Vec<bool> = pieces
            .iter()
            .map(|&(a, b)| {
                let all_data = got[a..b] == want[a..b];
                let all_zero = got[a..b].iter().all(|&x| x == 0);
                assert!(all_data || all_zero, "seed {seed}: piece {a}..{b} mixed");
                all_data
            })
            .collect();
        saw_later_without_earlier |= !landed[0] && landed[1..].iter().any(|&l| l);
    }
    assert!(saw_later_without_earlier);
    // The menu is bounded and holds no Keep.
    let menu = sim.pending()[0].menu();
    assert!(menu.len() <= 8 && !menu.contains(&Choice::Keep), "{menu:?}");
    // Length changes: Keep applies, anything else drops.
    h.sync_data().unwrap();
    h.set_len(4000).unwrap();
    assert_eq!(sim.pending()[0].kind, PendingKind::SetLen { len: 4000 });
    assert_eq!(
        sim.crash_with(&[Choice::Keep], &[])
            .read_file("f")
            .unwrap()
            .len(),
        4000
    );
    assert_eq!(
        sim.crash_with(&[Choice::Zeros], &[])
            .read_file("f")
            .unwrap(),
        want
    );
}

#[test]
fn names_need_a_directory_barrier() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut h = dir.open_handle("a", true).unwrap();
    h.write_at(0, b"x").unwrap();
    h.sync_data().unwrap();
    // The data is durable, the name is not.
    assert_eq!(sim.pending_ops(), 0);
    assert_eq!(
        sim.pending_names(),
        vec![Operation::Create { path: "a".into() }]
    );
    assert_eq!(sim.read_durable("a"), None);
    let lost = sim.crash_with(&[], &[NameChoice::Revert]);
    assert!(!lost.exists("a"));
    assert_eq!(lost.list_dir("").unwrap(), Vec::<String>::new());
    let kept = sim.crash_with(&[], &[NameChoice::Apply]);
    assert_eq!(kept.read_file("a").unwrap(), b"x");
    let outcomes: BTreeSet<bool> = (0..50).map(|s| sim.crash(s).exists("a")).collect();
    assert_eq!(outcomes.len(), 2, "random crashes see both outcomes");
    // A barrier of another directory does not help.
    dir.create_dir_all("other").unwrap();
    dir.sync_dir("other").unwrap();
    assert_eq!(sim.pending_name_ops(), 2);
    dir.sync_dir("").unwrap();
    assert_eq!(sim.pending_name_ops(), 0);
    assert_eq!(sim.read_durable("a").unwrap(), b"x");
    for after in all_crashes(&sim, 50) {
        assert_eq!(after.read_file("a").unwrap(), b"x");
        assert!(after.exists("other"));
    }
    // A file in a new subdirectory needs the subdirectory's own entry synced too.
    dir.create_dir_all("n/m").unwrap();
    let mut h = dir.open_handle("n/m/f", true).unwrap();
    h.write_at(0, b"y").unwrap();
    h.sync_data().unwrap();
    dir.sync_dir("n/m").unwrap();
    assert!(all_crashes(&sim, 50)
        .iter()
        .any(|a| a.read_file("n/m/f").is_none()));
    dir.sync_dir("n").unwrap();
    dir.sync_dir("").unwrap();
    for after in all_crashes(&sim, 50) {
        assert_eq!(after.read_file("n/m/f").unwrap(), b"y");
    }
}

#[test]
fn deletes_may_be_undone_until_synced() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.atomic_write_durable("f", b"content").unwrap();
    dir.delete("f").unwrap();
    assert!(!sim.exists("f"));
    let back = sim.crash_with(&[], &[NameChoice::Revert]);
    assert_eq!(back.read_file("f").unwrap(), b"content", "whole content");
    assert!(!sim.crash_with(&[], &[NameChoice::Apply]).exists("f"));
    dir.sync_dir("").unwrap();
    for after in all_crashes(&sim, 30) {
        assert!(!after.exists("f"));
    }
}

#[test]
fn renames_are_atomic() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.atomic_write_durable("target", b"old").unwrap();
    let target_durable = sim.op_count();
    let mut w = dir.create_file("tmp").unwrap();
    w.write_all(b"new").unwrap();
    drop(w);
    dir.sync_file("tmp").unwrap();
    dir.sync_dir("").unwrap();
    dir.atomic_rename("tmp", "target").unwrap();
    assert_eq!(read(&*dir, "target"), b"new");
    let mut seen = BTreeSet::new();
    for k in 0..=sim.op_count() {
        for after in all_crashes(&sim.snapshot_at(k), 30) {
            let t = after.read_file("target");
            let tmp = after.read_file("tmp");
            if k >= target_durable {
                let t = t.clone().expect("a replaced name is never missing");
                assert!(t == b"old" || t == b"new", "{t:?}");
            }
            if k == sim.op_count() {
                // Exactly one name for the new file: old state or new state.
                match t.as_deref() {
                    Some(b"new") => assert_eq!(tmp, None),
                    Some(b"old") => assert_eq!(tmp.as_deref(), Some(&b"new"[..])),
                    other => panic!("{other:?}"),
                }
                seen.insert(t.unwrap());
            }
        }
    }
    assert_eq!(seen.len(), 2, "both outcomes reachable");
    dir.sync_dir("").unwrap();
    for after in all_crashes(&sim, 30) {
        assert_eq!(after.read_file("target").unwrap(), b"new");
        assert!(!after.exists("tmp"));
    }
}

#[test]
fn a_rename_across_directories_needs_both_barriers() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.create_dir_all("a").unwrap();
    dir.create_dir_all("b").unwrap();
    dir.atomic_write_durable("a/f", b"1").unwrap();
    dir.sync_dir("").unwrap();
    dir.atomic_rename("a/f", "b/f").unwrap();
    dir.sync_dir("b").unwrap();
    assert_eq!(sim.pending_name_ops(), 1, "still waiting for `a`");
    for after in all_crashes(&sim, 20) {
        let a = after.exists("a/f");
        let b = after.exists("b/f");
        assert!(a ^ b, "one name, never neither or both: a={a} b={b}");
    }
    dir.sync_dir("a").unwrap();
    assert_eq!(sim.pending_name_ops(), 0);
    for after in all_crashes(&sim, 20) {
        assert!(!after.exists("a/f") && after.exists("b/f"));
    }
}

#[test]
fn atomic_write_durable_is_all_or_nothing_at_every_point() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.atomic_write_durable("c", b"first version").unwrap();
    let start = sim.op_count();
    dir.atomic_write_durable("c", b"second, longer version")
        .unwrap();
    for k in start..=sim.op_count() {
        for after in all_crashes(&sim.snapshot_at(k), 30) {
            let c = after.read_file("c").unwrap();
            assert!(
                c == b"first version" || c == b"second, longer version",
                "k={k}: {:?}",
                String::from_utf8_lossy(&c)
            );
            if k == sim.op_count() {
                assert_eq!(c, b"second, longer version");
            }
        }
    }
}

#[test]
fn fsyncgate_drops_the_data_of_a_failed_barrier() {
    for gate in [false, true] {
        let sim = CrashDirectory::new();
        sim.set_fsyncgate(gate);
        let dir: Arc<dyn Directory> = Arc::new(sim.clone());
        let mut h = dir.open_handle("f", true).unwrap();
        dir.sync_dir("").unwrap();
        h.write_at(0, b"lost?").unwrap();
        sim.fail_next(Op::Sync, FailKind::Other);
        let e = h.sync_data().unwrap_err();
        assert_eq!(io_kind(&e), ErrorKind::Other);
        assert!(sim.ops().last().unwrap().failed);
        // Reads still see the data either way.
        assert_eq!(sim.read_file("f").unwrap(), b"lost?");
        if gate {
            // Dropped: nothing pending, and the next barrier "succeeds".
            assert_eq!(sim.pending_ops(), 0);
            h.sync_data().unwrap();
            for after in all_crashes(&sim, 30) {
                assert_eq!(after.read_file("f").unwrap(), b"", "never durable");
            }
            // A later write does become durable; the lost range stays a hole.
            h.write_at(5, b"!").unwrap();
            h.sync_data().unwrap();
            assert_eq!(sim.read_durable("f").unwrap(), b"\0\0\0\0\0!");
            // The snapshot log replays the drop.
            let replay = sim.snapshot_at(sim.op_count());
            assert_eq!(replay.read_durable("f").unwrap(), b"\0\0\0\0\0!");
        } else {
            // Still pending: a crash may keep or drop it; a retried barrier covers it.
            assert_eq!(sim.pending_ops(), 1);
            assert_eq!(
                sim.crash_with(&[Choice::Keep], &[]).read_file("f").unwrap(),
                b"lost?"
            );
            assert_eq!(
                sim.crash_with(&[Choice::Drop], &[]).read_file("f").unwrap(),
                b""
            );
            h.sync_data().unwrap();
            assert_eq!(sim.read_durable("f").unwrap(), b"lost?");
        }
    }
}

#[test]
fn injected_failures_change_nothing() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.atomic_write_durable("f", b"abc").unwrap();
    sim.fail_nth(Op::Write, 2, FailKind::StorageFull);
    let mut h = dir.open_handle("f", false).unwrap();
    h.write_at(3, b"d").unwrap();
    let e = h.write_at(4, b"e").unwrap_err();
    assert_eq!(io_kind(&e), ErrorKind::StorageFull);
    assert_eq!(sim.read_file("f").unwrap(), b"abcd");
    h.write_at(4, b"f").unwrap();
    assert_eq!(sim.read_file("f").unwrap(), b"abcdf");

    sim.fail_next(Op::Rename, FailKind::Other);
    assert!(dir.atomic_rename("f", "g").is_err());
    assert!(sim.exists("f") && !sim.exists("g"));
    sim.fail_next(Op::Delete, FailKind::StorageFull);
    assert_eq!(
        io_kind(&dir.delete("f").unwrap_err()),
        ErrorKind::StorageFull
    );
    assert!(sim.exists("f"));
    dir.delete("f").unwrap();
    sim.fail_next(Op::SyncDir, FailKind::Other);
    assert!(dir.sync_dir("").is_err());
    assert_eq!(
        sim.pending_name_ops(),
        1,
        "the failed barrier covered nothing"
    );
    sim.fail_all(Op::Create, FailKind::Other);
    assert!(dir.create_file("x").is_err());
    assert!(dir.open_handle("y", true).is_err());
    assert!(!sim.exists("x") && !sim.exists("y"));
    sim.clear_failures();
    dir.create_file("x").unwrap();
    // atomic_write_durable's temp file, the two failed calls, and this one.
    assert_eq!(sim.counts(Op::Create), 4);
    let failed: Vec<_> = sim.ops().into_iter().filter(|r| r.failed).collect();
    assert_eq!(failed.len(), 6, "{failed:?}");
}

#[test]
fn crashes_are_deterministic_per_seed() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    dir.create_dir_all("w").unwrap();
    for i in 0..6u8 {
        let mut h = dir.open_handle(&format!("w/{i}"), true).unwrap();
        h.write_at(0, &vec![i + 1; 300 + 200 * i as usize]).unwrap();
        if i % 2 == 0 {
            h.sync_data().unwrap();
        }
        h.write_at(2000, &[i; 700]).unwrap();
    }
    dir.sync_dir("w").unwrap();
    dir.delete("w/0").unwrap();
    dir.atomic_rename("w/1", "w/9").unwrap();
    let mut distinct = BTreeSet::new();
    for seed in 0..200 {
        let a = sim.crash(seed).files();
        let b = sim.crash(seed).files();
        assert_eq!(a, b, "seed {seed}");
        assert_eq!(sim.random_plan(seed), sim.random_plan(seed));
        distinct.insert(format!("{a:?}"));
    }
    assert!(distinct.len() > 100, "{} distinct states", distinct.len());
    // The crash result is independent and fully durable.
    let after = sim.crash(7);
    assert_eq!(after.pending_ops(), 0);
    assert_eq!(after.pending_name_ops(), 0);
    assert_eq!(after.op_count(), 0);
    assert_eq!(after.crash(1).files(), after.files());
    assert_eq!(
        sim.crash(7).files(),
        after.files(),
        "the source is unchanged"
    );
}

#[test]
fn snapshots_replay_the_log() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut w = dir.append_file("log").unwrap();
    for i in 0..5u8 {
        w.write_all(&[i; 3]).unwrap();
        if i == 2 {
            dir.sync_file("log").unwrap();
        }
    }
    dir.sync_dir("").unwrap();
    dir.atomic_rename("log", "log2").unwrap();
    let ops = sim.ops();
    assert_eq!(ops[0].op, Operation::Create { path: "log".into() });
    assert_eq!(
        ops[1].op,
        Operation::Write {
            path: "log".into(),
            offset: 0,
            len: 3
        }
    );
    assert!(matches!(ops[4].op, Operation::Sync { .. }));
    assert_eq!(
        ops.last().unwrap().op,
        Operation::Rename {
            from: "log".into(),
            to: "log2".into()
        }
    );
    let now = sim.snapshot_at(ops.len());
    assert_eq!(now.files(), sim.files());
    assert_eq!(now.pending(), sim.pending());
    assert_eq!(now.ops(), ops);
    assert!(sim.snapshot_at(0).files().is_empty());
    let snaps: Vec<CrashDirectory> = sim.snapshots().collect();
    assert_eq!(snaps.len(), ops.len() + 1);
    for (k, s) in snaps.iter().enumerate() {
        let at = sim.snapshot_at(k);
        assert_eq!(s.files(), at.files(), "k={k}");
        assert_eq!(s.pending(), at.pending(), "k={k}");
        assert_eq!(s.pending_names(), at.pending_names(), "k={k}");
    }
    // After the sync (op 4), the first 9 bytes are durable, not the rest.
    let at = sim.snapshot_at(5);
    assert_eq!(at.read_durable("log"), None, "name not synced yet");
    assert_eq!(at.pending_ops(), 0);
    let at = sim.snapshot_at(7);
    assert_eq!(at.pending_ops(), 2);
    for after in all_crashes(&at, 20) {
        let f = after.read_file("log");
        if let Some(f) = f {
            assert_eq!(f[..9], [0, 0, 0, 1, 1, 1, 2, 2, 2]);
        }
    }
    // reset_log starts a new log at the current state.
    sim.reset_log();
    assert_eq!(sim.op_count(), 0);
    assert_eq!(sim.snapshot_at(0).files(), sim.files());
}

#[test]
fn directories_locks_and_paths() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    assert!(dir.file_path("x").is_none());
    assert!(matches!(
        dir.open_file("../x"),
        Err(PersistenceError::InvalidPath(_))
    ));
    assert!(dir.open_file("missing").err().unwrap().is_not_found());
    // Implicit parents, like MemoryDirectory.
    drop(dir.create_file("p/q/r").unwrap());
    assert_eq!(dir.list_dir("p").unwrap(), vec!["q".to_string()]);
    assert_eq!(
        sim.ops().iter().map(|r| r.op.clone()).collect::<Vec<_>>(),
        vec![
            Operation::CreateDir { path: "p".into() },
            Operation::CreateDir { path: "p/q".into() },
            Operation::Create {
                path: "p/q/r".into()
            },
        ]
    );
    assert_eq!(
        io_kind(&dir.delete("p").unwrap_err()),
        ErrorKind::DirectoryNotEmpty
    );
    assert!(matches!(
        dir.atomic_rename("p", "z"),
        Err(PersistenceError::NotSupported(_))
    ));
    assert!(dir.sync_dir("nope").unwrap_err().is_not_found());
    // Locks: in-process, shared by clones, released on drop, not carried into crashes.
    let l = dir.lock_exclusive("LOCK").unwrap();
    assert!(matches!(
        sim.lock_exclusive("LOCK"),
        Err(PersistenceError::Locked { .. })
    ));
    let crashed = sim.crash_with(&[], &[]);
    let l2 = crashed.lock_exclusive("LOCK").unwrap();
    drop(l);
    let l3 = sim.lock_exclusive("LOCK").unwrap();
    drop((l2, l3));
    // The lock file is never synced: it may vanish.
    assert!(sim
        .crash_plans()
        .iter()
        .any(|p| !sim.crash_with_plan(p).exists("LOCK")));
    // Handles keep working on a deleted file, and see writes through other handles.
    let mut a = dir.open_handle("h", true).unwrap();
    let mut b = dir.open_handle("h", false).unwrap();
    a.write_at(0, b"12").unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(b.read_at(0, &mut buf).unwrap(), 2);
    assert_eq!(&buf, b"12");
    dir.delete("h").unwrap();
    b.write_at(2, b"3").unwrap();
    assert_eq!(a.len().unwrap(), 3);
    assert!(!dir.exists("h"));
}

#[test]
fn crash_plans_are_bounded() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    for i in 0..4u64 {
        let mut h = dir.open_handle(&format!("f{i}"), true).unwrap();
        h.write_at(0, &vec![1; (i * 400 + 10) as usize]).unwrap();
        h.set_len(3).unwrap();
    }
    let n = sim.pending_ops();
    let m = sim.pending_name_ops();
    assert_eq!((n, m), (8, 4));
    let plans = sim.crash_plans();
    assert!(plans.len() <= 2 + 10 * n + 2 * m, "{}", plans.len());
    assert!(plans
        .iter()
        .all(|p| p.files.len() <= n && p.names.len() <= m));
    // The writes at sector boundaries get sector tears in their menus.
    let big = sim
        .pending()
        .into_iter()
        .find(|p| matches!(p.kind, PendingKind::Write { len, .. } if len > SECTOR))
        .unwrap();
    assert!(big
        .menu()
        .iter()
        .any(|c| matches!(c, Choice::TearSector { sector: 1, .. })));
}
