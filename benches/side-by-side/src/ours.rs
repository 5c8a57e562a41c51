//! Our library, through the public API of the `durability` facade only.
//!
//! Every writer works on an `FsDirectory` rooted at a fresh directory; the clock starts
//! after the WAL is opened (`next_entry_id` opens it), like the raw baselines start
//! after `File::create`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use durability::core::ReadMode;
use durability::recover::recover_latest_state;
use durability::walog::{SharedWalWriter, WalReader, WalWriter, WAL_DIR};
use durability::{Directory, FsDirectory, PersistenceResult};

/// Segment limit of the durable and group-commit writers: a preallocating writer
/// zero-fills a whole segment when it creates one (untimed here), and one repetition's
/// records fit in 16 MiB, so the default 64 MiB would only add setup I/O.
const DURABLE_SEGMENT_LIMIT: u64 = 16 << 20;

fn open_dir(path: &Path) -> PersistenceResult<Arc<dyn Directory>> {
    Ok(Arc::new(FsDirectory::new(path)?))
}

/// A writer on `path` with the default segment limit, opened (segment created, lock
/// taken) before it is returned.
fn writer(path: &Path) -> PersistenceResult<WalWriter<()>> {
    let mut w = WalWriter::<()>::new(open_dir(path)?);
    w.next_entry_id()?;
    Ok(w)
}

/// A writer for the durable rows: 16 MiB segments, preallocated or not.
fn durable_writer(path: &Path, preallocate: bool) -> PersistenceResult<WalWriter<()>> {
    let mut w = WalWriter::<()>::new(open_dir(path)?);
    w.set_preallocate(preallocate);
    w.set_segment_size_limit_bytes(DURABLE_SEGMENT_LIMIT);
    w.next_entry_id()?;
    Ok(w)
}

/// `count` `append_bytes`, then `flush` (no sync). `segment_limit`: `None` for the
/// default (64 MiB: a repetition's data crosses one segment boundary, as appends do
/// once per 64 MiB in steady state), or a limit large enough that nothing rotates.
pub fn buffered_append(
    path: &Path,
    payload: &[u8],
    count: u64,
    segment_limit: Option<u64>,
) -> PersistenceResult<Duration> {
    let mut w = WalWriter::<()>::new(open_dir(path)?);
    if let Some(limit) = segment_limit {
        w.set_segment_size_limit_bytes(limit);
    }
    w.next_entry_id()?;
    let started = Instant::now();
    for _ in 0..count {
        w.append_bytes(payload)?;
    }
    w.flush()?;
    Ok(started.elapsed())
}

/// `count` times `append_bytes` + `flush_and_sync`.
pub fn durable_append(
    path: &Path,
    payload: &[u8],
    count: u64,
    preallocate: bool,
) -> PersistenceResult<Duration> {
    let mut w = durable_writer(path, preallocate)?;
    let started = Instant::now();
    for _ in 0..count {
        w.append_bytes(payload)?;
        w.flush_and_sync()?;
    }
    Ok(started.elapsed())
}

/// `threads` threads each make `per_thread` durable appends through one shared writer
/// (`SharedWalWriter::append_bytes_durable`); returns the wall time and the number of
/// barriers the group commit issued.
pub fn group_commit(
    path: &Path,
    payload: &[u8],
    threads: usize,
    per_thread: u64,
    preallocate: bool,
) -> PersistenceResult<(Duration, u64)> {
    let shared = SharedWalWriter::new(durable_writer(path, preallocate)?);
    let elapsed = run_threads(threads, || {
        for _ in 0..per_thread {
            shared.append_bytes_durable(payload)?;
        }
        Ok(())
    })?;
    Ok((elapsed, shared.barriers()))
}

/// Runs `work` on `threads` threads released together; returns the wall time from the
/// release to the last thread's end.
fn run_threads(
    threads: usize,
    work: impl Fn() -> PersistenceResult<()> + Sync,
) -> PersistenceResult<Duration> {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    work()
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        for h in handles {
            h.join().expect("writer thread panicked")?;
        }
        Ok(started.elapsed())
    })
}

/// Writes `count` entries and syncs them (untimed setup for the replays).
pub fn write_log(path: &Path, payload: &[u8], count: u64) -> PersistenceResult<()> {
    let mut w = writer(path)?;
    for _ in 0..count {
        w.append_bytes(payload)?;
    }
    w.flush_and_sync()
}

/// `WalReader::replay_bytes` (strict) over the WAL; returns (elapsed, entries, bytes).
pub fn replay(path: &Path) -> PersistenceResult<(Duration, u64, u64)> {
    let dir = open_dir(path)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    WalReader::<()>::new(dir).replay_bytes(ReadMode::Strict, |_, p| {
        n += 1;
        bytes += p.len() as u64;
        Ok(())
    })?;
    Ok((started.elapsed(), n, bytes))
}

/// An entry decoded without allocating: postcard bytes (`varint len ‖ bytes`) seen as
/// their length. Lets the recovery row use the full typed path (`recover_latest_state`)
/// without measuring an allocator.
pub struct Blob(pub u64);

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Blob, E> {
                Ok(Blob(v.len() as u64))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.len() as u64))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// `payload` as postcard encodes a byte slice: LEB128 length, then the bytes.
pub fn postcard_bytes(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    let mut n = payload.len() as u64;
    loop {
        let byte = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(payload);
    out
}

/// Full recovery (`recover_latest_state`, strict: newest checkpoint, none here, plus one
/// pass over the WAL decoding every entry); returns (elapsed, entries, payload bytes).
pub fn recover(path: &Path) -> PersistenceResult<(Duration, u64, u64)> {
    let dir = open_dir(path)?;
    let started = Instant::now();
    let r = recover_latest_state::<(), Blob, (u64, u64)>(
        &dir,
        ReadMode::Strict,
        |_| (0, 0),
        |s, _, b| {
            s.0 += 1;
            s.1 += b.0;
        },
    )?;
    Ok((started.elapsed(), r.state.0, r.state.1))
}

/// The segment files of the WAL in `path`, in name order.
pub fn segment_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(path.join(WAL_DIR))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
