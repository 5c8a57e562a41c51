//! Preallocated WAL segments (`WalWriter::set_preallocate`): every segment is zero-filled
//! to the segment limit at creation, so its file length no longer marks the end of the
//! data. Replay, resume, rotation and truncation must behave exactly as without it; the
//! zeros after the data and any bytes in the preallocated space must never validate; a
//! crash at any point keeps every acknowledged entry and invents none.
//!
//! The zero-fill runs ahead of use: the next segment's file is prepared under a name
//! that is not a segment name and renamed when the segment is created.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use durability::core::wal::WalConfig;
use durability::core::Storage;
use durability::storage::{
    CrashDirectory, DirLock, DirStorage, FailingDirectory, FileHandle, FsDirectory, MemoryDirectory,
};
use durability::walog::{WalReader, WalWriter};
use durability::{Directory, PersistenceError, PersistenceResult};
use durability_std::crash::{Choice, CrashPlan, Operation, PendingKind};
use durability_std::failing::{FailKind, Op};

/// Where the next segment is prepared (inside `wal/`).
const PREPARED: &str = "wal/next-segment.prep";

const LIMIT: u64 = 4096;

fn fs_dir() -> (tempfile::TempDir, Arc<dyn Directory>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    (tmp, dir)
}

fn payload(id: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (id as usize * 131 + i * 7) as u8)
        .collect()
}

fn writer(dir: &Arc<dyn Directory>, limit: u64) -> WalWriter<()> {
    let mut w = WalWriter::<()>::new(dir.clone());
    w.set_segment_size_limit_bytes(limit);
    w.set_preallocate(true);
    w
}

fn replay(dir: &Arc<dyn Directory>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    WalReader::<()>::new(dir.clone())
        .replay_bytes(durability::core::ReadMode::Strict, |id, b| {
            out.push((id, b.to_vec()));
            Ok(())
        })
        .unwrap();
    out
}

fn segment_lengths(dir: &Arc<dyn Directory>) -> Vec<(String, u64)> {
    let mut names = dir.list_dir("wal").unwrap();
    names.sort();
    names
        .into_iter()
        .filter(|n| DirStorage::segment_number(n).is_some())
        .map(|n| {
            let len = dir
                .open_handle(&format!("wal/{n}"), false)
                .unwrap()
                .len()
                .unwrap();
            (n, len)
        })
        .collect()
}

#[test]
fn segments_are_zero_filled_to_the_limit_and_replay_exactly() {
    for (_tmp, dir) in [
        fs_dir(),
        (
            tempfile::tempdir().unwrap(),
            Arc::new(MemoryDirectory::new()) as Arc<dyn Directory>,
        ),
    ] {
        let mut w = writer(&dir, LIMIT);
        for id in 1..=5 {
            assert_eq!(w.append_bytes(&payload(id, 100)).unwrap(), id);
        }
        w.flush_and_sync().unwrap();
        assert_eq!(segment_lengths(&dir), vec![(seg_name(1), LIMIT)]);
        let recs = replay(&dir);
        assert_eq!(recs.len(), 5);
        for (i, (id, b)) in recs.iter().enumerate() {
            assert_eq!(*id, i as u64 + 1);
            assert_eq!(*b, payload(*id, 100));
        }
    }
}

fn seg_name(n: u64) -> String {
    format!("{n:020}.seg")
}

#[test]
fn resume_appends_right_after_the_last_frame_not_at_the_file_length() {
    let (_tmp, dir) = fs_dir();
    {
        let mut w = writer(&dir, LIMIT);
        for id in 1..=3 {
            w.append_bytes(&payload(id, 64)).unwrap();
        }
        w.flush_and_sync().unwrap();
    }
    for round in 0..3u64 {
        let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
        w.set_segment_size_limit_bytes(LIMIT);
        w.set_preallocate(true);
        let next = 4 + round * 2;
        assert_eq!(w.next_entry_id().unwrap(), next);
        w.append_bytes(&payload(next, 64)).unwrap();
        w.append_bytes(&payload(next + 1, 64)).unwrap();
        w.flush_and_sync().unwrap();
        // Still the one segment, still its preallocated length: the appends landed
        // inside it, right after the data.
        assert_eq!(w.current_segment(), Some(1));
        assert_eq!(segment_lengths(&dir), vec![(seg_name(1), LIMIT)]);
    }
    let recs = replay(&dir);
    assert_eq!(recs.len(), 9);
    for (i, (id, b)) in recs.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(*b, payload(*id, 64));
    }
}

#[test]
fn rotation_and_truncate_through_with_preallocation() {
    let (_tmp, dir) = fs_dir();
    let mut w = writer(&dir, 1024);
    for id in 1..=200u64 {
        assert_eq!(
            w.append_bytes(&payload(id, 40 + (id as usize % 50)))
                .unwrap(),
            id
        );
        if id % 7 == 0 {
            w.flush_and_sync().unwrap();
        }
    }
    w.flush_and_sync().unwrap();
    let lens = segment_lengths(&dir);
    assert!(lens.len() > 10, "expected rotation: {lens:?}");
    assert!(lens.iter().all(|(_, l)| *l == 1024), "{lens:?}");
    let recs = replay(&dir);
    assert_eq!(recs.len(), 200);
    for (i, (id, b)) in recs.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(*b, payload(*id, 40 + (*id as usize % 50)));
    }
    // An entry larger than the limit gets a segment of its own that grows past it.
    let big = payload(201, 3000);
    assert_eq!(w.append_bytes(&big).unwrap(), 201);
    w.append_bytes(&payload(202, 10)).unwrap();
    w.flush_and_sync().unwrap();

    let removed = w.truncate_through(150).unwrap();
    assert!(removed > 0);
    let recs = replay(&dir);
    let first = recs[0].0;
    assert!(first <= 151, "entry 151 must survive, first is {first}");
    assert_eq!(recs.last().unwrap().0, 202);
    assert_eq!(recs.iter().find(|r| r.0 == 201).unwrap().1, big);
    for (i, (id, _)) in recs.iter().enumerate() {
        assert_eq!(*id, first + i as u64);
    }
    drop(w);
    let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
    assert_eq!(w.next_entry_id().unwrap(), 203);
}

#[test]
fn garbage_in_preallocated_space_is_a_torn_tail_cut_by_a_new_segment() {
    let (tmp, dir) = fs_dir();
    {
        let mut w = writer(&dir, LIMIT);
        for id in 1..=3 {
            w.append_bytes(&payload(id, 64)).unwrap();
        }
        w.flush_and_sync().unwrap();
    }
    // Bytes far after the data, inside the preallocated zeros (a torn write's debris).
    let path = tmp.path().join("wal").join(seg_name(1));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &[0xA5; 24], LIMIT - 100).unwrap();
    drop(f);

    assert!(matches!(
        WalReader::<()>::new(dir.clone())
            .replay_bytes(durability::core::ReadMode::Strict, |_, _| Ok(())),
        Err(PersistenceError::TornTail { .. })
    ));
    let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
    w.set_preallocate(true);
    assert_eq!(w.next_entry_id().unwrap(), 4);
    w.append_bytes(&payload(4, 64)).unwrap();
    w.flush_and_sync().unwrap();
    // The damaged segment is sealed, not appended over.
    assert_eq!(w.current_segment(), Some(2));
    let recs = replay(&dir);
    assert_eq!(
        recs.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(recs[3].1, payload(4, 64));
}

#[test]
fn a_recreated_segment_keeps_no_stale_bytes() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut st = DirStorage::segments(dir.clone(), "wal");
    st.create(7).unwrap();
    st.write(7, 0, &[0x5A; 3000]).unwrap();
    st.sync(7).unwrap();
    st.set_preallocate(2048);
    st.create(7).unwrap();
    assert_eq!(st.len(7).unwrap(), 2048);
    let mut buf = vec![0xFFu8; 2048];
    assert_eq!(st.read(7, 0, &mut buf).unwrap(), 2048);
    assert!(
        buf.iter().all(|&b| b == 0),
        "stale bytes survived re-creation"
    );
}

#[test]
fn preallocation_off_again_leaves_new_segments_unfilled() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut w = writer(&dir, 512);
    w.set_preallocate(false);
    w.append_bytes(&payload(1, 10)).unwrap();
    w.flush_and_sync().unwrap();
    let lens = segment_lengths(&dir);
    assert!(lens[0].1 < 512, "{lens:?}");
}

// --- crash exploration -------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Step {
    Append(usize),
    Flush,
    Sync,
    Reopen,
    Truncate(u64),
}
use Step::*;

const CRASH_LIMIT: u64 = 300;
const TRUNCATED_THROUGH: u64 = 4;
const LOG_ID: u64 = 0x9E11_A10C_0000_0006;

fn crash_writer(dir: &Arc<dyn Directory>, resume: bool, background: bool) -> WalWriter<()> {
    let mut w = if resume {
        WalWriter::<()>::resume(dir.clone()).unwrap()
    } else {
        WalWriter::<()>::with_config(dir.clone(), WalConfig::new(LOG_ID))
    };
    w.set_segment_size_limit_bytes(CRASH_LIMIT);
    w.set_preallocate(true);
    w.set_background_preallocation(background);
    w
}

/// Runs `steps` on `sim` from scratch; returns the model and `(calls done, acked id)`.
/// With `background`, the preparer's calls interleave with the writer's; an
/// acknowledgement is stamped with the call count read after the sync returned, never
/// earlier than the barrier that proved it.
fn run(
    sim: &CrashDirectory,
    steps: &[Step],
    background: bool,
) -> (Vec<Vec<u8>>, Vec<(usize, u64)>) {
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut w = crash_writer(&dir, false, background);
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut acks = Vec::new();
    for &s in steps {
        match s {
            Append(len) => {
                let id = model.len() as u64 + 1;
                let p = payload(id, len);
                assert_eq!(w.append_bytes(&p).unwrap(), id);
                model.push(p);
            }
            Flush => w.flush().unwrap(),
            Sync => {
                w.flush_and_sync().unwrap();
                acks.push((sim.op_count(), model.len() as u64));
            }
            Reopen => {
                drop(w);
                w = crash_writer(&dir, true, background);
                assert_eq!(w.next_entry_id().unwrap(), model.len() as u64 + 1);
            }
            Truncate(t) => {
                w.truncate_through(t).unwrap();
            }
        }
    }
    drop(w);
    (model, acks)
}

/// Checks one post-crash state: replay is a contiguous run of exactly the appended
/// entries reaching the acknowledged id; a resumed, preallocating writer continues
/// right after it, and what it then syncs replays too.
fn check(post: &CrashDirectory, model: &[Vec<u8>], acked: u64) -> Result<(), String> {
    let dir: Arc<dyn Directory> = Arc::new(post.clone());
    let mut recs = Vec::new();
    WalReader::<()>::new(dir.clone())
        .replay_bytes(durability::core::ReadMode::BestEffort, |id, b| {
            recs.push((id, b.to_vec()));
            Ok(())
        })
        .map_err(|e| format!("best-effort replay failed: {e}"))?;
    let first = recs.first().map_or(1, |r| r.0);
    if first > TRUNCATED_THROUGH + 1 {
        return Err(format!("first id {first}: truncation removed too much"));
    }
    for (i, (id, b)) in recs.iter().enumerate() {
        if *id != first + i as u64 {
            return Err(format!("gap: record {i} has id {id}"));
        }
        match model.get((*id as usize).wrapping_sub(1)) {
            Some(p) if p == b => {}
            Some(_) => return Err(format!("record {id} is not the entry appended as {id}")),
            None => return Err(format!("phantom record {id}")),
        }
    }
    let last = recs.last().map_or(first - 1, |r| r.0);
    if last < acked {
        return Err(format!(
            "acknowledged entries lost: log ends at {last}, acked {acked}"
        ));
    }
    let mut w = WalWriter::<()>::resume(dir.clone()).map_err(|e| format!("resume: {e}"))?;
    w.set_segment_size_limit_bytes(CRASH_LIMIT);
    w.set_preallocate(true);
    let next = w.next_entry_id().map_err(|e| e.to_string())?;
    if next != last + 1 {
        return Err(format!("resume continues at {next} after {last}"));
    }
    let p = payload(next, 70);
    w.append_bytes(&p).map_err(|e| e.to_string())?;
    w.flush_and_sync().map_err(|e| e.to_string())?;
    drop(w);
    let mut again = Vec::new();
    WalReader::<()>::new(dir)
        .replay_bytes(durability::core::ReadMode::Strict, |id, b| {
            again.push((id, b.to_vec()));
            Ok(())
        })
        .map_err(|e| format!("strict replay after the continuation: {e}"))?;
    if again.len() != recs.len() + 1 || again.last() != Some(&(next, p)) {
        return Err(format!(
            "after the continuation {} records (expected {})",
            again.len(),
            recs.len() + 1
        ));
    }
    Ok(())
}

#[test]
fn crash_at_every_point_keeps_acknowledged_entries_and_invents_none() {
    explore_crashes(false);
}

/// The same with the real default, the background preparer: the calls interleave
/// differently from run to run, every state reached must still hold.
#[test]
fn crash_at_every_point_with_the_background_preparer() {
    explore_crashes(true);
}

fn explore_crashes(background: bool) {
    let workload = [
        Append(40),
        Append(90),
        Sync,
        Append(30),
        Flush,
        Append(120),
        Append(60),
        Sync,
        Append(200),
        Append(10),
        Flush,
        Reopen,
        Append(50),
        Sync,
        Append(80),
        Append(80),
        Append(80),
        Sync,
        Truncate(TRUNCATED_THROUGH),
        Append(25),
        Flush,
    ];
    let sim = CrashDirectory::new();
    let (model, acks) = run(&sim, &workload, background);
    let mut seen = HashSet::new();
    let mut states = 0u64;
    for (k, at) in sim.snapshots().enumerate() {
        let acked = acks
            .iter()
            .filter(|(c, _)| *c <= k)
            .map(|(_, id)| *id)
            .max()
            .unwrap_or(0);
        let mut plans = at.crash_plans();
        plans.extend((0..32).map(|s| at.random_plan(s ^ ((k as u64) << 20))));
        // Tear every pending write at a few bytes, later ones dropped or landed.
        let pending = at.pending();
        let n = pending.len();
        for (i, op) in pending.iter().enumerate() {
            let PendingKind::Write { len, .. } = op.kind else {
                continue;
            };
            for cut in (1..len).step_by(len.div_ceil(6).max(1) as usize) {
                for later in [Choice::Drop, Choice::Keep] {
                    let mut files = vec![Choice::Keep; i];
                    files.push(Choice::TearAt(cut));
                    files.resize(n, later);
                    plans.push(CrashPlan {
                        files,
                        names: Vec::new(),
                    });
                }
            }
        }
        for plan in plans {
            let post = at.crash_with_plan(&plan);
            if !seen.insert((post.files(), acked)) {
                continue;
            }
            states += 1;
            check(&post, &model, acked).unwrap_or_else(|e| {
                panic!("cut after call {k}, plan {plan:?}: {e}\npost-crash files: {post:?}")
            });
        }
    }
    println!(
        "preallocate crash states (background preparer: {background}): {states} over {} crash points",
        sim.op_count() + 1
    );
    // The rotations used prepared files: they were renamed into place.
    assert!(
        sim.ops()
            .iter()
            .any(|r| matches!(&r.op, Operation::Rename { from, .. } if from == PREPARED)),
        "no prepared file was renamed into place"
    );
    assert!(states > 200, "explored only {states} states");
}

// --- preparation ahead of use -------------------------------------------------------

fn prepared_storage(dir: &Arc<dyn Directory>, bytes: u64, background: bool) -> DirStorage {
    let mut st = DirStorage::segments(dir.clone(), "wal");
    st.set_preallocate(bytes);
    st.set_background_preparation(background);
    st
}

fn listed(st: &mut DirStorage) -> Vec<u64> {
    let mut v = Vec::new();
    st.list(&mut |n| v.push(n)).unwrap();
    v.sort();
    v
}

fn all_zero(st: &mut DirStorage, segment: u64, len: u64) -> bool {
    let mut buf = vec![0xFFu8; len as usize];
    st.read(segment, 0, &mut buf).unwrap() == len as usize && buf.iter().all(|&b| b == 0)
}

#[test]
fn the_next_segment_is_prepared_under_a_name_list_ignores_and_renamed_into_place() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut st = prepared_storage(&dir, 2048, false);
    st.create(1).unwrap();
    st.write(1, 0, &[7; 100]).unwrap();
    // Not before segment 1's name is durable (its first barrier).
    assert!(!dir.exists(PREPARED));
    st.sync(1).unwrap();
    // Prepared right after that barrier, not a segment.
    assert!(dir.exists(PREPARED));
    assert_eq!(
        dir.open_handle(PREPARED, false).unwrap().len().unwrap(),
        2048
    );
    assert_eq!(listed(&mut st), vec![1]);

    st.create(2).unwrap();
    assert_eq!(listed(&mut st), vec![1, 2]);
    assert_eq!(st.len(2).unwrap(), 2048);
    assert!(all_zero(&mut st, 2, 2048));
    // The file was taken over; the next is prepared after segment 2's first barrier.
    assert!(!dir.exists(PREPARED));
    st.write(2, 0, &[8; 10]).unwrap();
    st.sync(2).unwrap();
    assert!(dir.exists(PREPARED));
    st.create(3).unwrap();
    assert!(all_zero(&mut st, 3, 2048));
    assert_eq!(st.failed_preparations(), 0);
    // Segment 1 is untouched.
    let mut one = [0u8; 100];
    st.read(1, 0, &mut one).unwrap();
    assert_eq!(one, [7; 100]);
}

#[test]
fn the_background_preparer_is_joined_and_its_unused_file_deleted_on_drop() {
    for rotate in [false, true] {
        let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
        let mut st = prepared_storage(&dir, 1 << 20, true);
        st.create(1).unwrap();
        st.sync(1).unwrap();
        if rotate {
            st.create(2).unwrap();
            assert!(all_zero(&mut st, 2, 1 << 20));
        }
        drop(st);
        assert!(!dir.exists(PREPARED), "rotate {rotate}");
        let mut names = dir.list_dir("wal").unwrap();
        names.sort();
        let expect: Vec<String> = (1..=1 + rotate as u64).map(seg_name).collect();
        assert_eq!(names, expect);
    }
}

#[test]
fn a_leftover_prepared_file_is_never_used_as_it_is() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    dir.create_dir_all("wal").unwrap();
    // A crash's leftover: the right size, not zeros.
    let mut h = dir.open_handle(PREPARED, true).unwrap();
    h.write_at(0, &[0xA5; 2048]).unwrap();
    drop(h);
    let mut st = prepared_storage(&dir, 2048, false);
    st.create(1).unwrap();
    assert!(all_zero(&mut st, 1, 2048));
    st.sync(1).unwrap();
    st.create(2).unwrap();
    assert!(all_zero(&mut st, 2, 2048));
}

#[test]
fn a_storage_resuming_a_segment_prepares_the_next_on_its_first_write() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    {
        let mut st = DirStorage::segments(dir.clone(), "wal");
        st.create(1).unwrap();
        st.write(1, 0, &[1; 10]).unwrap();
        st.sync(1).unwrap();
    }
    let mut st = prepared_storage(&dir, 4096, false);
    assert_eq!(listed(&mut st), vec![1]);
    assert!(!dir.exists(PREPARED), "reading or listing prepares nothing");
    st.write(1, 10, &[2; 10]).unwrap();
    assert!(dir.exists(PREPARED));
    st.create(2).unwrap();
    assert_eq!(st.len(2).unwrap(), 4096);
    assert!(all_zero(&mut st, 2, 4096));
}

#[test]
fn a_recreated_segment_name_is_zero_filled_in_place_not_replaced_by_a_rename() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let mut st = prepared_storage(&dir, 2048, false);
    st.create(7).unwrap();
    st.write(7, 0, &[0x5A; 3000]).unwrap();
    st.sync(7).unwrap();
    assert!(dir.exists(PREPARED));
    st.create(7).unwrap();
    assert_eq!(st.len(7).unwrap(), 2048);
    assert!(
        all_zero(&mut st, 7, 2048),
        "stale bytes survived re-creation"
    );
}

#[test]
fn a_failed_preparation_is_counted_and_the_segment_zero_filled_in_place() {
    let fail = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let dir: Arc<dyn Directory> = Arc::new(fail.clone());
    let mut st = prepared_storage(&dir, 2048, false);
    // Sync 1: segment 1's zero-fill; 2: its first barrier; 3: the preparation of
    // segment 2's file, which that barrier started.
    fail.fail_nth(Op::Sync, 3, FailKind::Other);
    st.create(1).unwrap();
    st.sync(1).unwrap();
    assert_eq!(st.failed_preparations(), 0, "counted when it is needed");
    st.create(2).unwrap();
    assert_eq!(st.failed_preparations(), 1);
    assert!(st.last_preparation_error().is_some());
    assert_eq!(st.len(2).unwrap(), 2048);
    assert!(all_zero(&mut st, 2, 2048));
    st.write(2, 0, &[3; 64]).unwrap();
    st.sync(2).unwrap();
    // The one prepared after segment 2 worked and is used.
    st.create(3).unwrap();
    assert_eq!(st.failed_preparations(), 1);
}

#[test]
fn when_the_fallback_zero_fill_fails_too_create_reports_it() {
    let fail = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let dir: Arc<dyn Directory> = Arc::new(fail.clone());
    let mut st = prepared_storage(&dir, 2048, false);
    st.create(1).unwrap();
    // Every file creation fails from now on: the preparation, then the fallback.
    fail.fail_all(Op::Create);
    st.sync(1).unwrap();
    assert!(st.create(2).is_err());
    assert_eq!(st.failed_preparations(), 1);
}

#[test]
fn rotation_makes_the_renamed_name_durable_before_the_first_acknowledgement() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut st = prepared_storage(&dir, 1024, false);
    st.create(1).unwrap();
    st.write(1, 0, &[1; 50]).unwrap();
    st.sync(1).unwrap();
    st.create(2).unwrap();
    st.write(2, 0, &[2; 50]).unwrap();
    st.sync(2).unwrap();
    let now = sim.snapshot_at(sim.op_count());
    let mut plans = now.crash_plans();
    plans.extend((0..64).map(|s| now.random_plan(s)));
    for plan in plans {
        let files = now.crash_with_plan(&plan).files();
        let two = files
            .get(&format!("wal/{}", seg_name(2)))
            .unwrap_or_else(|| panic!("segment 2 lost after its sync: {plan:?}"));
        assert_eq!(two.len(), 1024);
        assert_eq!(&two[..50], &[2; 50]);
        assert!(two[50..].iter().all(|&b| b == 0));
    }
}

/// A directory whose prepared files can never be created: the writer does not notice
/// (each rotation zero-fills in place).
struct NoPrepare(Arc<dyn Directory>);

impl Directory for NoPrepare {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.0.create_file(path)
    }
    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        self.0.open_file(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.0.exists(path)
    }
    fn delete(&self, path: &str) -> PersistenceResult<()> {
        self.0.delete(path)
    }
    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        self.0.atomic_rename(from, to)
    }
    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        self.0.create_dir_all(path)
    }
    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        self.0.list_dir(path)
    }
    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.0.append_file(path)
    }
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        self.0.atomic_write(path, data)
    }
    fn file_path(&self, path: &str) -> Option<PathBuf> {
        self.0.file_path(path)
    }
    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        if path.ends_with(".prep") {
            return Err(PersistenceError::Io(std::io::Error::other("no space")));
        }
        self.0.open_handle(path, create)
    }
    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        self.0.sync_file(path)
    }
    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        self.0.sync_dir(path)
    }
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        self.0.lock_exclusive(name)
    }
}

#[test]
fn a_writer_whose_background_preparations_all_fail_keeps_working() {
    let mem: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let dir: Arc<dyn Directory> = Arc::new(NoPrepare(mem.clone()));
    let mut w = writer(&dir, 1024);
    for id in 1..=60u64 {
        assert_eq!(w.append_bytes(&payload(id, 100)).unwrap(), id);
        w.flush_and_sync().unwrap();
    }
    drop(w);
    let lens = segment_lengths(&mem);
    assert!(lens.len() > 4, "expected rotation: {lens:?}");
    assert!(lens.iter().all(|(_, l)| *l == 1024), "{lens:?}");
    assert!(!mem.exists(PREPARED));
    let recs = replay(&dir);
    assert_eq!(recs.len(), 60);
    for (i, (id, b)) in recs.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(*b, payload(*id, 100));
    }
}
