//! Group commit through `SharedWalWriter`: many threads, one barrier per batch, each
//! caller acknowledged only once ITS entry is durable, and a failed barrier poisoning
//! everything not yet acknowledged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use durability::storage::crash::{Choice, NameChoice};
use durability::storage::failing::{FailKind, Op};
use durability::storage::{CrashDirectory, DirLock, FailingDirectory, FileHandle, MemoryDirectory};
use durability::walog::{SharedWalWriter, WalReader, WalWriter};
use durability::{Directory, PersistenceError, PersistenceResult};
use serde::{Deserialize, Serialize};

fn payload(thread: usize, i: usize) -> Vec<u8> {
    let mut p = format!("t{thread}-e{i}-").into_bytes();
    p.extend((0..(i * 7 + thread) % 200).map(|k| (k * 13 + thread) as u8));
    p
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

/// Runs `threads` × `per_thread` durable appends; returns id → payload acknowledged.
fn hammer(
    shared: &SharedWalWriter<()>,
    threads: usize,
    per_thread: usize,
) -> BTreeMap<u64, Vec<u8>> {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let w = shared.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let mut acked = Vec::new();
                for i in 0..per_thread {
                    let p = payload(t, i);
                    let id = w.append_bytes_durable(&p).unwrap();
                    // Acknowledged means covered by a completed barrier.
                    assert!(w.durable_id() >= id);
                    acked.push((id, p));
                }
                acked
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for h in handles {
        for (id, p) in h.join().unwrap() {
            assert!(all.insert(id, p).is_none(), "id {id} handed out twice");
        }
    }
    all
}

#[test]
fn many_threads_get_distinct_contiguous_durable_ids_and_replay_returns_exactly_them() {
    let crash = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(crash.clone());
    let mut w = WalWriter::<()>::new(dir.clone());
    w.set_segment_size_limit_bytes(8 * 1024);
    let shared = SharedWalWriter::new(w);
    let (threads, per) = (8, 150);
    let acked = hammer(&shared, threads, per);
    assert_eq!(acked.len(), threads * per);
    let ids: Vec<u64> = acked.keys().copied().collect();
    assert_eq!(ids, (1..=(threads * per) as u64).collect::<Vec<_>>());
    // Every acknowledged entry is in the durable image: a crash now keeps them all.
    let lost = crash.crash_with(
        &vec![Choice::Drop; crash.pending_ops()],
        &vec![NameChoice::Revert; crash.pending_name_ops()],
    );
    let post: Arc<dyn Directory> = Arc::new(lost);
    let recs = replay(&post);
    assert_eq!(recs.len(), acked.len());
    for (id, p) in &recs {
        assert_eq!(acked.get(id), Some(p), "entry {id}");
    }
    // Per thread, ids grow in the order the thread appended.
    for t in 0..threads {
        let mine: Vec<u64> = recs
            .iter()
            .filter(|(_, p)| p.starts_with(format!("t{t}-").as_bytes()))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(mine.len(), per);
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
    drop(shared);
    assert_eq!(replay(&dir).len(), threads * per);
}

/// A directory whose file barriers take as long as a disk's (`MemoryDirectory`'s are
/// instant, so no thread would ever find a barrier in progress). Only the outcome is
/// asserted, as a count: how many barriers the entries needed.
struct SlowSync {
    inner: Arc<dyn Directory>,
}

struct SlowHandle(Box<dyn FileHandle>);

const DISK_SYNC: Duration = Duration::from_millis(2);

impl FileHandle for SlowHandle {
    fn len(&mut self) -> PersistenceResult<u64> {
        self.0.len()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        self.0.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        self.0.write_at(offset, data)
    }
    fn sync_data(&mut self) -> PersistenceResult<()> {
        thread::sleep(DISK_SYNC);
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> PersistenceResult<()> {
        self.0.set_len(len)
    }
}

impl Directory for SlowSync {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.inner.create_file(path)
    }
    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        self.inner.open_file(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }
    fn delete(&self, path: &str) -> PersistenceResult<()> {
        self.inner.delete(path)
    }
    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        self.inner.atomic_rename(from, to)
    }
    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.inner.append_file(path)
    }
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        self.inner.atomic_write(path, data)
    }
    fn file_path(&self, path: &str) -> Option<PathBuf> {
        self.inner.file_path(path)
    }
    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        Ok(Box::new(SlowHandle(self.inner.open_handle(path, create)?)))
    }
    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        self.inner.sync_file(path)
    }
    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        self.inner.sync_dir(path)
    }
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        self.inner.lock_exclusive(name)
    }
}

#[test]
fn sixteen_threads_share_barriers() {
    let failing = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let dir: Arc<dyn Directory> = Arc::new(SlowSync {
        inner: Arc::new(failing.clone()),
    });
    let shared = SharedWalWriter::new(WalWriter::<()>::new(dir.clone()));
    shared.append_bytes_durable(b"open").unwrap();
    failing.reset_counts();
    let before = shared.barriers();
    let (threads, per) = (16, 100);
    let acked = hammer(&shared, threads, per);
    let entries = (threads * per) as u64;
    let barriers = shared.barriers() - before;
    let file_syncs = failing.counts(Op::Sync);
    println!("{entries} durable entries from {threads} threads: {barriers} barriers, {file_syncs} file syncs");
    assert_eq!(acked.len() as u64, entries);
    assert_eq!(barriers, file_syncs, "one file sync per barrier");
    assert!(
        file_syncs < entries,
        "no batching: {file_syncs} syncs for {entries} entries"
    );
    assert_eq!(replay(&dir).len() as u64, entries + 1);
}

#[test]
fn a_failed_barrier_fails_every_waiter_not_yet_durable_and_everything_after() {
    let failing = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let dir: Arc<dyn Directory> = Arc::new(failing.clone());
    let shared = SharedWalWriter::new(WalWriter::<()>::new(dir.clone()));
    for i in 0..10 {
        shared.append_bytes_durable(&payload(99, i)).unwrap();
    }
    let durable_before = shared.durable_id();
    assert_eq!(durable_before, 10);
    // Every file sync from now on fails.
    failing.fail_all_with(Op::Sync, FailKind::Other);

    let threads = 16;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let w = shared.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                (0..20)
                    .map(|i| w.append_bytes_durable(&payload(t, i)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut errs = 0;
    for h in handles {
        for r in h.join().unwrap() {
            match r {
                Ok(id) => panic!("entry {id} acknowledged although every barrier failed"),
                Err(_) => errs += 1,
            }
        }
    }
    assert_eq!(errs, threads * 20);
    assert!(shared.is_poisoned());
    assert_eq!(shared.durable_id(), durable_before);
    // Nothing later is accepted, even with the medium healthy again.
    failing.clear();
    assert!(matches!(
        shared.append_bytes(b"later"),
        Err(PersistenceError::Poisoned)
    ));
    assert!(shared.append_bytes_durable(b"later").is_err());
    assert!(shared.sync().is_err());
    drop(shared);
    // The acknowledged entries are intact and first in the log.
    let recs = replay(&dir);
    assert!(recs.len() >= 10);
    for (i, (id, p)) in recs.iter().take(10).enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(*p, payload(99, i));
    }
}

#[test]
fn a_waiter_whose_entry_a_completed_barrier_covered_succeeds_before_a_later_failure() {
    // The second barrier fails: entries acknowledged by the first stay acknowledged,
    // the failure reaches the entry of the second.
    let failing = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
    let dir: Arc<dyn Directory> = Arc::new(failing.clone());
    let shared = SharedWalWriter::new(WalWriter::<()>::new(dir.clone()));
    let a = shared.append_bytes(b"a").unwrap();
    let b = shared.append_bytes(b"b").unwrap();
    shared.sync().unwrap();
    assert_eq!(shared.durable_id(), b);
    failing.fail_next(Op::Sync, FailKind::Other);
    let c = shared.append_bytes(b"c").unwrap();
    assert!(shared.sync().is_err());
    assert_eq!(shared.durable_id(), b);
    assert!(c > b && b > a);
    assert!(shared.append_bytes_durable(b"d").is_err());
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Op2 {
    key: u32,
    value: String,
}

#[test]
fn serde_entries_and_buffered_appends_then_sync() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    let shared = SharedWalWriter::new(WalWriter::<Op2>::new(dir.clone()));
    let mut ids = Vec::new();
    for k in 0..50u32 {
        let op = Op2 {
            key: k,
            value: format!("v{k}"),
        };
        ids.push(if k % 10 == 9 {
            shared.append_durable(&op).unwrap()
        } else {
            shared.append(&op).unwrap()
        });
    }
    assert_eq!(ids, (1..=50).collect::<Vec<_>>());
    assert_eq!(shared.durable_id(), 50);
    for k in 50..60u32 {
        shared
            .append(&Op2 {
                key: k,
                value: String::new(),
            })
            .unwrap();
    }
    shared.sync().unwrap();
    assert_eq!(shared.durable_id(), 60);
    // Too large is refused without an id and without poisoning.
    let huge = vec![0u8; durability::walog::MAX_ENTRY_BYTES as usize + 1];
    assert!(matches!(
        shared.append_bytes(&huge),
        Err(PersistenceError::EntryTooLarge { .. })
    ));
    assert!(!shared.is_poisoned());
    assert_eq!(
        shared
            .append(&Op2 {
                key: 60,
                value: "x".into()
            })
            .unwrap(),
        61
    );
    drop(shared);
    let recs = WalReader::<Op2>::new(dir).replay().unwrap();
    assert_eq!(recs.len(), 61);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.entry_id, i as u64 + 1);
        assert_eq!(r.payload.key, i as u32);
    }
}

#[test]
fn resumes_an_existing_log_and_continues_its_ids() {
    let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
    {
        let mut w = WalWriter::<()>::new(dir.clone());
        for i in 0..5 {
            w.append_bytes(&payload(0, i)).unwrap();
        }
        w.flush_and_sync().unwrap();
    }
    let shared = SharedWalWriter::new(WalWriter::<()>::new(dir.clone()));
    assert_eq!(shared.append_bytes_durable(b"six").unwrap(), 6);
    let mut w = WalWriter::<()>::new(dir.clone());
    // The shared writer holds the single-writer lock.
    assert!(matches!(
        w.append_bytes(b"x"),
        Err(PersistenceError::Locked { .. })
    ));
    drop(shared);
    assert_eq!(replay(&dir).len(), 6);
}

#[test]
fn shared_writer_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<SharedWalWriter<()>>();
    check::<SharedWalWriter<Op2>>();
}

/// Crash at every point of a multi-threaded run (rotating, preallocated segments): every
/// entry acknowledged before the cut survives, and nothing else appears but entries
/// appended with exactly that id. An acknowledgement is stamped with the operation count
/// read after `append_bytes_durable` returned, which can only be later than the barrier
/// that proved it: the check is never stricter than the truth.
#[test]
fn crash_at_every_point_keeps_every_acknowledged_entry() {
    let sim = CrashDirectory::new();
    let dir: Arc<dyn Directory> = Arc::new(sim.clone());
    let mut w = WalWriter::<()>::with_config(
        dir.clone(),
        durability::core::wal::WalConfig::new(0x6C0_0C0A_0000_0001),
    );
    w.set_segment_size_limit_bytes(400);
    w.set_preallocate(true);
    let shared = SharedWalWriter::new(w);
    let threads = 4;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (s, sim, start) = (shared.clone(), sim.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut out = Vec::new();
                for i in 0..12 {
                    let p = payload(t, i);
                    if i % 3 == 2 {
                        // Buffered: never acknowledged on its own.
                        out.push((s.append_bytes(&p).unwrap(), p, usize::MAX));
                    } else {
                        let id = s.append_bytes_durable(&p).unwrap();
                        out.push((id, p, sim.op_count()));
                    }
                }
                out
            })
        })
        .collect();
    let mut appended = BTreeMap::new();
    let mut acks = Vec::new();
    for h in handles {
        for (id, p, at) in h.join().unwrap() {
            appended.insert(id, p);
            acks.push((at, id));
        }
    }
    drop(shared);
    let mut states = 0;
    let mut seen = std::collections::HashSet::new();
    for (k, at) in sim.snapshots().enumerate() {
        let must: Vec<u64> = acks
            .iter()
            .filter(|(c, _)| *c <= k)
            .map(|(_, id)| *id)
            .collect();
        let mut plans = at.crash_plans();
        plans.extend((0..6).map(|s| at.random_plan(s ^ ((k as u64) << 16))));
        for plan in plans {
            let post = at.crash_with_plan(&plan);
            if !seen.insert((post.files(), must.len())) {
                continue;
            }
            states += 1;
            let pd: Arc<dyn Directory> = Arc::new(post.clone());
            let mut recs = Vec::new();
            WalReader::<()>::new(pd)
                .replay_bytes(durability::core::ReadMode::BestEffort, |id, b| {
                    recs.push((id, b.to_vec()));
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("cut after call {k}, {plan:?}: replay failed: {e}"));
            for (i, (id, b)) in recs.iter().enumerate() {
                assert_eq!(*id, i as u64 + 1, "cut after call {k}, {plan:?}: gap");
                assert_eq!(
                    appended.get(id),
                    Some(b),
                    "cut after call {k}, {plan:?}: phantom {id}"
                );
            }
            for id in &must {
                assert!(
                    *id <= recs.len() as u64,
                    "cut after call {k}, {plan:?}: acknowledged entry {id} lost ({} recovered)",
                    recs.len()
                );
            }
        }
    }
    println!("group commit crash states: {states}");
    assert!(states > 100);
}
