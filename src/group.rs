//! Group commit: [`SharedWalWriter`], one WAL writer shared by many threads, where one
//! barrier makes every entry appended before it durable.
//!
//! # Protocol
//!
//! Appending takes a short lock on a **queue**: the entry gets the next id and its bytes
//! are copied to the queue. Nothing else happens on the appending thread, so appends
//! continue while a barrier is in progress.
//!
//! A thread that needs its entry durable waits for the **durable watermark** (the
//! highest id a completed barrier covered) to reach its id. If no barrier is in
//! progress it becomes the **leader**: it takes the writer, moves every queued entry
//! into it (in id order), runs one `flush_and_sync`, raises the watermark to the last
//! id it moved and wakes the waiters it covered (and one more, to lead the next barrier,
//! if any is left: waking everyone cost a context switch per waiter per barrier). Entries appended while it was syncing wait for
//! the next leader, which takes all of them at once: the batch grows with the barrier's
//! latency, with no timer.
//!
//! # Failure
//!
//! Any error while moving entries into the writer or during its barrier poisons the
//! shared writer: the leader gets the error, every waiter whose entry was not yet
//! covered by a completed barrier gets [`PersistenceError::Poisoned`], and every later
//! call fails the same way. A failed barrier is never retried. Ids handed out and not
//! acknowledged may or may not be on disk: a new writer (after a restart) resumes after
//! what is actually there.
//!
//! Lock order: writer, then queue. The queue lock is never held across I/O.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;

use serde::Serialize;

use crate::error::{PersistenceError, PersistenceResult};
use crate::walog::{WalWriter, MAX_ENTRY_BYTES};

/// Queued bytes above which an appender moves the queue into the writer itself (without
/// a barrier), so buffered appends without any sync do not grow the queue unboundedly.
const QUEUE_SOFT_LIMIT: usize = 1 << 20;

/// Most yields a leader spends letting its batch grow before its barrier.
const GROW_ROUNDS: usize = 8;

/// Entries appended and not yet moved into the writer, and the watermarks.
struct Queue {
    /// Whether the log was opened and `first_id` / `durable` are known.
    opened: bool,
    /// Id of the first queued entry; ids are contiguous.
    first_id: u64,
    /// Concatenated payloads of the queued entries.
    bytes: Vec<u8>,
    /// Length of each queued entry, in id order.
    lens: Vec<usize>,
    /// Every id below this is covered by a completed barrier.
    durable_to: u64,
    /// A leader is moving entries into the writer or running its barrier.
    leader: bool,
    /// Set by the first failure; nothing is acknowledged after it.
    failed: bool,
    /// Completed barriers.
    barriers: u64,
    /// Threads parked until every id below their target is durable (or a failure).
    waiters: Vec<(u64, Thread)>,
}

impl Queue {
    fn next_id(&self) -> u64 {
        self.first_id + self.lens.len() as u64
    }
}

/// The writer side, behind its own lock.
struct Writer<E> {
    wal: WalWriter<E>,
    /// Every id below this was moved into `wal`.
    moved_to: u64,
    /// Spare vectors swapped with the queue's, so a steady state allocates nothing.
    spare_bytes: Vec<u8>,
    spare_lens: Vec<usize>,
}

struct Shared<E> {
    queue: Mutex<Queue>,
    writer: Mutex<Writer<E>>,
}

/// A WAL writer shared by many threads (`Clone + Send + Sync`), with group commit.
///
/// - [`append_bytes`](Self::append_bytes) / [`append`](Self::append): buffered, returns
///   the entry's id; durable after a later barrier (any thread's).
/// - [`append_bytes_durable`](Self::append_bytes_durable) /
///   [`append_durable`](Self::append_durable): returns once a barrier covering THIS
///   entry has completed. Concurrent callers share barriers: one of them leads and
///   syncs for all (protocol and failure rules: `docs/design.md`, Group commit).
/// - [`sync`](Self::sync): every entry appended before the call is durable on `Ok`.
///
/// Ids are contiguous in append order across all threads. Dropping the last handle
/// hands buffered entries to the directory (not durable), like dropping a
/// [`WalWriter`].
pub struct SharedWalWriter<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for SharedWalWriter<E> {
    fn clone(&self) -> Self {
        SharedWalWriter {
            shared: self.shared.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave these structures half-updated in a way
    // that acknowledges anything: `failed` and the watermark are set last.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<E> SharedWalWriter<E> {
    /// Shares `writer` (its segment limit, flush policy and preallocation setting stay
    /// as configured). No I/O happens here; the log is opened on first use.
    pub fn new(writer: WalWriter<E>) -> Self {
        SharedWalWriter {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    opened: false,
                    first_id: 0,
                    bytes: Vec::new(),
                    lens: Vec::new(),
                    durable_to: 0,
                    leader: false,
                    failed: false,
                    barriers: 0,
                    waiters: Vec::new(),
                }),
                writer: Mutex::new(Writer {
                    wal: writer,
                    moved_to: 0,
                    spare_bytes: Vec::new(),
                    spare_lens: Vec::new(),
                }),
            }),
        }
    }

    /// Opens the log on first use: the queue's ids continue the writer's.
    fn ensure_open(&self) -> PersistenceResult<()> {
        if lock(&self.shared.queue).opened {
            return Ok(());
        }
        let mut w = lock(&self.shared.writer);
        let mut q = lock(&self.shared.queue);
        if q.failed {
            return Err(PersistenceError::Poisoned);
        }
        if !q.opened {
            match w.wal.next_entry_id() {
                Ok(next) => {
                    // Entries already in the log are not this writer's to acknowledge;
                    // the watermark only matters for ids from `next` on.
                    q.opened = true;
                    q.first_id = next;
                    q.durable_to = next;
                    w.moved_to = next;
                }
                Err(e) => {
                    q.failed = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Appends raw bytes as one entry; returns its id. Buffered: durable after a later
    /// barrier ([`sync`](Self::sync), or any thread's durable append).
    pub fn append_bytes(&self, payload: &[u8]) -> PersistenceResult<u64> {
        self.queue_entry(payload.len(), |out| {
            out.copy_from_slice(payload);
            Ok(())
        })
    }

    /// Queues one entry of `len` bytes that `fill` writes in place (the entry's only
    /// copy before the writer's buffer; the queue's vectors are reused, so a steady state
    /// allocates nothing). Returns its id.
    fn queue_entry(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> PersistenceResult<()>,
    ) -> PersistenceResult<u64> {
        if len > MAX_ENTRY_BYTES as usize {
            return Err(PersistenceError::EntryTooLarge {
                len: len as u64,
                max: u64::from(MAX_ENTRY_BYTES),
            });
        }
        self.ensure_open()?;
        let (id, over) = {
            let mut q = lock(&self.shared.queue);
            if q.failed {
                return Err(PersistenceError::Poisoned);
            }
            let at = q.bytes.len();
            q.bytes.resize(at + len, 0);
            if let Err(e) = fill(&mut q.bytes[at..]) {
                q.bytes.truncate(at);
                return Err(e);
            }
            let id = q.next_id();
            q.lens.push(len);
            (id, q.bytes.len() > QUEUE_SOFT_LIMIT && !q.leader)
        };
        if over {
            let mut w = lock(&self.shared.writer);
            if let Err(e) = self.drain(&mut w) {
                self.fail();
                return Err(e);
            }
        }
        Ok(id)
    }

    /// Appends raw bytes as one entry and returns its id once the entry is durable.
    pub fn append_bytes_durable(&self, payload: &[u8]) -> PersistenceResult<u64> {
        let id = self.append_bytes(payload)?;
        self.wait_durable(id + 1)?;
        Ok(id)
    }

    /// Makes every entry appended before this call durable.
    pub fn sync(&self) -> PersistenceResult<()> {
        self.ensure_open()?;
        let next = {
            let q = lock(&self.shared.queue);
            if q.failed {
                return Err(PersistenceError::Poisoned);
            }
            q.next_id()
        };
        self.wait_durable(next)
    }

    /// Highest id a completed barrier covered (entries found in the log when it was
    /// opened count as covered; 0 before that).
    pub fn durable_id(&self) -> u64 {
        lock(&self.shared.queue).durable_to.saturating_sub(1)
    }

    /// Barriers completed through this shared writer.
    pub fn barriers(&self) -> u64 {
        lock(&self.shared.queue).barriers
    }

    /// Whether a failure poisoned the shared writer.
    pub fn is_poisoned(&self) -> bool {
        lock(&self.shared.queue).failed
    }

    /// Waits until every id below `to` is durable, leading a barrier when none is in
    /// progress.
    fn wait_durable(&self, to: u64) -> PersistenceResult<()> {
        let mut q = lock(&self.shared.queue);
        loop {
            if q.durable_to >= to {
                return Ok(());
            }
            if q.failed {
                return Err(PersistenceError::Poisoned);
            }
            if q.leader {
                // Parked until a barrier covers `to`, or it is our turn to lead.
                q.waiters.push((to, std::thread::current()));
                drop(q);
                std::thread::park();
                q = lock(&self.shared.queue);
                continue;
            }
            q.leader = true;
            drop(q);
            let result = self.barrier();
            q = lock(&self.shared.queue);
            q.leader = false;
            let result = match result {
                Ok(moved_to) => {
                    q.durable_to = q.durable_to.max(moved_to);
                    q.barriers += 1;
                    Ok(())
                }
                Err(e) => {
                    q.failed = true;
                    Err(e)
                }
            };
            let woken = take_woken(&mut q);
            drop(q);
            woken.iter().for_each(Thread::unpark);
            result?;
            q = lock(&self.shared.queue);
        }
    }

    /// The leader's work: move the queue into the writer, one barrier. Returns the id
    /// below which the barrier covers every entry.
    fn barrier(&self) -> PersistenceResult<u64> {
        let mut w = lock(&self.shared.writer);
        self.let_batch_grow();
        self.drain(&mut w)?;
        w.wal.flush_and_sync()?;
        Ok(w.moved_to)
    }

    /// Gives threads that were just acknowledged a chance to queue their next entry
    /// before the barrier starts: yields while the queue keeps growing (at most
    /// [`GROW_ROUNDS`] times). No timer: a lone thread pays one yield.
    fn let_batch_grow(&self) {
        let mut queued = lock(&self.shared.queue).lens.len();
        for _ in 0..GROW_ROUNDS {
            std::thread::yield_now();
            let now = lock(&self.shared.queue).lens.len();
            if now == queued {
                break;
            }
            queued = now;
        }
    }

    /// Moves every queued entry into the writer, in id order.
    fn drain(&self, w: &mut Writer<E>) -> PersistenceResult<()> {
        let (first, mut bytes, mut lens) = {
            let mut q = lock(&self.shared.queue);
            if q.failed {
                return Err(PersistenceError::Poisoned);
            }
            let first = q.first_id;
            let bytes = std::mem::replace(&mut q.bytes, std::mem::take(&mut w.spare_bytes));
            let lens = std::mem::replace(&mut q.lens, std::mem::take(&mut w.spare_lens));
            q.first_id += lens.len() as u64;
            (first, bytes, lens)
        };
        let mut at = 0;
        for (i, &len) in lens.iter().enumerate() {
            let id = w.wal.append_bytes(&bytes[at..at + len])?;
            if id != first + i as u64 {
                return Err(PersistenceError::InvalidState(format!(
                    "group commit: the writer assigned id {id} to queued entry {}",
                    first + i as u64
                )));
            }
            w.moved_to = id + 1;
            at += len;
        }
        bytes.clear();
        lens.clear();
        w.spare_bytes = bytes;
        w.spare_lens = lens;
        Ok(())
    }

    fn fail(&self) {
        let mut q = lock(&self.shared.queue);
        q.failed = true;
        let woken = take_woken(&mut q);
        drop(q);
        woken.iter().for_each(Thread::unpark);
    }
}

/// Removes the parked waiters to wake after a barrier: those it covered (all of them
/// after a failure), plus the one with the lowest target among the rest, which leads
/// the next barrier. The others stay parked: no wake-up without work for it.
fn take_woken(q: &mut Queue) -> Vec<Thread> {
    let mut woken = Vec::new();
    let (durable, failed) = (q.durable_to, q.failed);
    q.waiters.retain(|(to, t)| {
        let wake = failed || *to <= durable;
        if wake {
            woken.push(t.clone());
        }
        !wake
    });
    if let Some(next) = (0..q.waiters.len()).min_by_key(|&i| q.waiters[i].0) {
        woken.push(q.waiters.swap_remove(next).1);
    }
    woken
}

impl<E: Serialize> SharedWalWriter<E> {
    /// Appends one serde entry (postcard, encoded straight into the queue: no
    /// allocation per entry); returns its id. Buffered, like
    /// [`append_bytes`](Self::append_bytes).
    pub fn append(&self, entry: &E) -> PersistenceResult<u64> {
        let encode_error = |e: postcard::Error| PersistenceError::Encode(e.to_string());
        let len = postcard::serialize_with_flavor(entry, postcard::ser_flavors::Size::default())
            .map_err(encode_error)?;
        self.queue_entry(len, |out| match postcard::to_slice(entry, out) {
            Ok(done) if done.len() == len => Ok(()),
            Ok(_) => Err(PersistenceError::Encode(
                "entry serialized to a different length twice".into(),
            )),
            Err(e) => Err(encode_error(e)),
        })
    }

    /// Appends one serde entry and returns its id once the entry is durable.
    pub fn append_durable(&self, entry: &E) -> PersistenceResult<u64> {
        let id = self.append(entry)?;
        self.wait_durable(id + 1)?;
        Ok(id)
    }
}

impl<E> Drop for Shared<E> {
    fn drop(&mut self) {
        // The last handle: hand what is queued to the writer (which flushes it when it
        // drops in turn), unless a failure means nothing more may be written.
        let q = self.queue.get_mut().unwrap_or_else(PoisonError::into_inner);
        if q.failed || q.lens.is_empty() {
            return;
        }
        let w = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let mut at = 0;
        for &len in &q.lens {
            if w.wal.append_bytes(&q.bytes[at..at + len]).is_err() {
                return;
            }
            at += len;
        }
    }
}
