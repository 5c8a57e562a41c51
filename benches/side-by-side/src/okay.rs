//! The peer: the `okaywal` crate, used through its public API only.
//!
//! Mapping of our operations onto it:
//! - a record is one chunk (`EntryWriter::write_chunk`);
//! - a durable append is one entry with one chunk, committed (`commit` returns once
//!   the entry is synced; concurrent committers share its syncs);
//! - okaywal has no non-durable commit, so the buffered row times `write_chunk` of
//!   every record into ONE entry and commits after the clock stops;
//! - replay is `WriteAheadLog::open` over an existing log: its recovery hands every
//!   entry to the `LogManager`, which reads each chunk and checks its CRC.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use okaywal::{Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader};

/// A manager that keeps nothing and checkpoints nothing (the benchmark's entries are
/// thrown away once written).
#[derive(Debug)]
struct Discard;

impl LogManager for Discard {
    fn recover(&mut self, _entry: &mut Entry<'_>) -> io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: EntryId,
        _entries: &mut SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// A manager that reads every recovered chunk and checks its CRC.
#[derive(Debug)]
struct Verify {
    chunks: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    buf: Vec<u8>,
}

impl LogManager for Verify {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    let mut n = 0u64;
                    loop {
                        let got = chunk.read(&mut self.buf)?;
                        if got == 0 {
                            break;
                        }
                        n += got as u64;
                    }
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "crc"));
                    }
                    self.chunks.fetch_add(1, Ordering::Relaxed);
                    self.bytes.fetch_add(n, Ordering::Relaxed);
                }
                ReadChunkResult::EndOfEntry | ReadChunkResult::AbortedEntry => return Ok(()),
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last: EntryId,
        _entries: &mut SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// A configuration that never checkpoints (so written entries stay in the log).
fn keep_all(dir: &Path) -> Configuration {
    Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

/// `count` chunks into one entry; timed until the last chunk is written (the commit,
/// okaywal's only way to finish an entry, is a sync and runs after the clock stops).
pub fn buffered_append(dir: &Path, payload: &[u8], count: u64) -> io::Result<Duration> {
    let wal = keep_all(dir).open(Discard)?;
    let started = Instant::now();
    let mut entry = wal.begin_entry()?;
    for _ in 0..count {
        entry.write_chunk(payload)?;
    }
    let elapsed = started.elapsed();
    entry.commit()?;
    wal.shutdown()?;
    Ok(elapsed)
}

/// `count` entries of one chunk, each committed (durable) before the next begins.
/// Default configuration (1 MiB preallocated segment files, background checkpoints).
pub fn durable_append(dir: &Path, payload: &[u8], count: u64) -> io::Result<Duration> {
    let wal = Configuration::default_for(dir).open(Discard)?;
    let started = Instant::now();
    for _ in 0..count {
        let mut entry = wal.begin_entry()?;
        entry.write_chunk(payload)?;
        entry.commit()?;
    }
    let elapsed = started.elapsed();
    wal.shutdown()?;
    Ok(elapsed)
}

/// `threads` threads each commit `per_thread` one-chunk entries; okaywal lets other
/// writers proceed while a commit syncs and shares syncs between waiting committers.
pub fn group_commit(
    dir: &Path,
    payload: &[u8],
    threads: usize,
    per_thread: u64,
) -> io::Result<Duration> {
    let wal = Configuration::default_for(dir).open(Discard)?;
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| -> io::Result<Duration> {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> io::Result<()> {
                    start.wait();
                    for _ in 0..per_thread {
                        let mut entry = wal.begin_entry()?;
                        entry.write_chunk(payload)?;
                        entry.commit()?;
                    }
                    Ok(())
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        for h in handles {
            h.join().expect("okaywal writer thread panicked")?;
        }
        Ok(started.elapsed())
    })?;
    wal.shutdown()?;
    Ok(elapsed)
}

/// Writes `count` chunks as entries of `per_entry` chunks (each entry commit is a sync,
/// so one chunk per entry would make the setup fsync-bound); untimed.
pub fn write_log(dir: &Path, payload: &[u8], count: u64, per_entry: u64) -> io::Result<()> {
    let wal = keep_all(dir).open(Discard)?;
    let mut left = count;
    while left > 0 {
        let n = left.min(per_entry);
        let mut entry = wal.begin_entry()?;
        for _ in 0..n {
            entry.write_chunk(payload)?;
        }
        entry.commit()?;
        left -= n;
    }
    wal.shutdown()
}

/// Opens (recovers) the log in `dir`, reading and CRC-checking every chunk; returns
/// (elapsed, chunks, bytes). Recovery hands the recovered files to okaywal's
/// checkpointer, which recycles them: run it on a copy.
pub fn replay(dir: &Path) -> io::Result<(Duration, u64, u64)> {
    let chunks = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let manager = Verify {
        chunks: chunks.clone(),
        bytes: bytes.clone(),
        buf: vec![0u8; 64 * 1024],
    };
    let started = Instant::now();
    let wal = keep_all(dir).open(manager)?;
    let elapsed = started.elapsed();
    wal.shutdown()?;
    Ok((
        elapsed,
        chunks.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    ))
}
