//! Poisoning: after a failed write or sync, a writer refuses everything, hands out no
//! more ids, and what reached the medium reads back as a prefix of what was appended
//! that includes everything a successful sync covered.

mod common;

use common::*;
use durability_core::error::{StorageError, StorageErrorKind};
use durability_core::mem::{MemError, MemStorage};
use durability_core::recordlog::{RecordLogReader, RecordLogWriter};
use durability_core::storage::{ErrorType, Storage};
use durability_core::wal::{WalConfig, WalReader, WalWriter};
use durability_core::{Error, ErrorKind, ReadMode};

const LOG_ID: u64 = 0xFA11_0000_0000_0005;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlakyError {
    Injected,
    Mem(MemError),
}

impl StorageError for FlakyError {
    fn kind(&self) -> StorageErrorKind {
        match self {
            FlakyError::Injected => StorageErrorKind::Other,
            FlakyError::Mem(e) => e.kind(),
        }
    }
}

/// How an injected write failure leaves the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tear {
    /// Nothing of the failed write arrives.
    Nothing,
    /// Its first half (rounded down to the write size) arrives.
    Half,
}

/// `MemStorage` that fails the `fail_write`-th write or the `fail_sync`-th sync (1-based),
/// and counts the operations a (by then poisoned) writer attempts after that.
struct Flaky {
    inner: MemStorage,
    fail_write: Option<usize>,
    fail_sync: Option<usize>,
    tear: Tear,
    writes: usize,
    syncs: usize,
    /// Operations attempted after the injected failure.
    after_failure: usize,
    failed: bool,
}

impl Flaky {
    fn new(ws: usize) -> Self {
        Flaky {
            inner: MemStorage::with_write_size(ws),
            fail_write: None,
            fail_sync: None,
            tear: Tear::Nothing,
            writes: 0,
            syncs: 0,
            after_failure: 0,
            failed: false,
        }
    }
    fn note(&mut self) {
        if self.failed {
            self.after_failure += 1;
        }
    }
}

impl ErrorType for Flaky {
    type Error = FlakyError;
}

impl Storage for Flaky {
    fn write_size(&self) -> usize {
        self.inner.write_size()
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), FlakyError> {
        self.note();
        self.inner.list(visit).map_err(FlakyError::Mem)
    }
    fn create(&mut self, segment: u64) -> Result<(), FlakyError> {
        self.note();
        self.inner.create(segment).map_err(FlakyError::Mem)
    }
    fn len(&mut self, segment: u64) -> Result<u64, FlakyError> {
        self.note();
        self.inner.len(segment).map_err(FlakyError::Mem)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, FlakyError> {
        self.note();
        self.inner
            .read(segment, offset, buf)
            .map_err(FlakyError::Mem)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), FlakyError> {
        self.note();
        self.writes += 1;
        if Some(self.writes) == self.fail_write {
            self.failed = true;
            if self.tear == Tear::Half {
                let ws = self.inner.write_size();
                let half = data.len() / 2 / ws * ws;
                self.inner
                    .write(segment, offset, &data[..half])
                    .map_err(FlakyError::Mem)?;
            }
            return Err(FlakyError::Injected);
        }
        self.inner
            .write(segment, offset, data)
            .map_err(FlakyError::Mem)
    }
    fn sync(&mut self, segment: u64) -> Result<(), FlakyError> {
        self.note();
        self.syncs += 1;
        if Some(self.syncs) == self.fail_sync {
            self.failed = true;
            return Err(FlakyError::Injected);
        }
        self.inner.sync(segment).map_err(FlakyError::Mem)
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), FlakyError> {
        self.note();
        self.inner.truncate(segment, len).map_err(FlakyError::Mem)
    }
    fn remove(&mut self, segment: u64) -> Result<(), FlakyError> {
        self.note();
        self.inner.remove(segment).map_err(FlakyError::Mem)
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Append(usize),
    Flush,
    Sync,
}

/// A script with small and large (buffer-exceeding) entries, rotations (limit 200),
/// flushes and syncs.
fn script() -> Vec<Op> {
    let mut ops = Vec::new();
    let mut r = Rng(11);
    for i in 0..40 {
        let len = match i % 9 {
            4 => 100 + r.below(150) as usize, // larger than the 64-byte write buffer
            _ => r.below(30) as usize,
        };
        ops.push(Op::Append(len));
        match r.below(6) {
            0 => ops.push(Op::Sync),
            1 => ops.push(Op::Flush),
            _ => {}
        }
    }
    ops.push(Op::Sync);
    ops
}

/// The minimal interface the scenario needs from both writers.
trait Writer {
    fn append(&mut self, p: &[u8]) -> Result<u64, Error<FlakyError>>;
    fn flush(&mut self) -> Result<(), Error<FlakyError>>;
    fn sync(&mut self) -> Result<(), Error<FlakyError>>;
    fn next(&mut self) -> Result<u64, Error<FlakyError>>;
    fn append_with(&mut self, p: &[u8]) -> Result<Option<u64>, Error<FlakyError>>;
    fn is_poisoned(&self) -> bool;
}

impl Writer for WalWriter<&mut Flaky, Vec<u8>> {
    fn append(&mut self, p: &[u8]) -> Result<u64, Error<FlakyError>> {
        WalWriter::append(self, p)
    }
    fn flush(&mut self) -> Result<(), Error<FlakyError>> {
        WalWriter::flush(self)
    }
    fn sync(&mut self) -> Result<(), Error<FlakyError>> {
        WalWriter::sync(self)
    }
    fn next(&mut self) -> Result<u64, Error<FlakyError>> {
        self.next_id()
    }
    fn append_with(&mut self, p: &[u8]) -> Result<Option<u64>, Error<FlakyError>> {
        WalWriter::append_with(self, |b| copy_into(b, p))
    }
    fn is_poisoned(&self) -> bool {
        WalWriter::is_poisoned(self)
    }
}

impl Writer for RecordLogWriter<&mut Flaky, Vec<u8>> {
    fn append(&mut self, p: &[u8]) -> Result<u64, Error<FlakyError>> {
        RecordLogWriter::append(self, p)
    }
    fn flush(&mut self) -> Result<(), Error<FlakyError>> {
        RecordLogWriter::flush(self)
    }
    fn sync(&mut self) -> Result<(), Error<FlakyError>> {
        RecordLogWriter::sync(self)
    }
    fn next(&mut self) -> Result<u64, Error<FlakyError>> {
        self.next_index()
    }
    fn append_with(&mut self, p: &[u8]) -> Result<Option<u64>, Error<FlakyError>> {
        RecordLogWriter::append_with(self, |b| copy_into(b, p))
    }
    fn is_poisoned(&self) -> bool {
        RecordLogWriter::is_poisoned(self)
    }
}

fn copy_into(b: &mut [u8], p: &[u8]) -> Option<usize> {
    let dst = b.get_mut(..p.len())?;
    dst.copy_from_slice(p);
    Some(p.len())
}

/// What a run produced.
struct Run {
    /// Entries whose append returned an id.
    appended: Entries,
    /// Entries covered by a successful sync.
    synced: usize,
    /// Whether the injected failure happened.
    failed: bool,
}

fn drive<W: Writer>(w: &mut W, ops: &[Op], ctx: &str) -> Run {
    let mut appended: Entries = Vec::new();
    let mut synced = 0;
    let mut failed = false;
    for (i, op) in ops.iter().enumerate() {
        let r: Result<(), Error<FlakyError>> = match *op {
            Op::Append(len) => {
                let id_guess = appended.len() as u64 + 1;
                let p = payload(id_guess, len);
                // Every third small entry goes through the in-place encoder.
                let res = if len < 40 && i % 3 == 0 {
                    w.append_with(&p).map(|o| o.expect("fits the buffer"))
                } else {
                    w.append(&p)
                };
                res.map(|id| {
                    assert_eq!(id, id_guess, "{ctx}: ids are contiguous");
                    appended.push((id, p));
                })
            }
            Op::Flush => w.flush(),
            Op::Sync => w.sync().map(|()| synced = appended.len()),
        };
        if let Err(e) = r {
            assert_eq!(
                e,
                Error::Storage(FlakyError::Injected),
                "{ctx}: op {i} {op:?}"
            );
            assert_eq!(e.kind(), ErrorKind::Storage(StorageErrorKind::Other));
            failed = true;
            break;
        }
        assert!(!w.is_poisoned(), "{ctx}");
    }
    if failed {
        assert!(w.is_poisoned(), "{ctx}: a storage failure poisons");
        for _ in 0..2 {
            assert_eq!(w.append(b"after").unwrap_err(), Error::Poisoned, "{ctx}");
            assert_eq!(
                w.append_with(b"after").unwrap_err(),
                Error::Poisoned,
                "{ctx}"
            );
            assert_eq!(w.flush().unwrap_err(), Error::Poisoned, "{ctx}");
            assert_eq!(w.sync().unwrap_err(), Error::Poisoned, "{ctx}");
            assert_eq!(w.next().unwrap_err(), Error::Poisoned, "{ctx}");
            assert_eq!(Error::<FlakyError>::Poisoned.kind(), ErrorKind::Poisoned);
            assert!(w.is_poisoned());
        }
    }
    Run {
        appended,
        synced,
        failed,
    }
}

fn replay_inner(st: &mut MemStorage, wal: bool, mode: ReadMode) -> (Entries, bool) {
    if wal {
        let (got, res) = wal_replay(st, mode);
        (got, res.is_ok())
    } else {
        let (got, res) = rl_read(st, mode);
        (got, res.is_ok())
    }
}

/// After the failure: the medium holds a prefix of the appended entries including all
/// synced ones (best effort), and a fresh writer resumes with the next id.
fn check_after(fl: Flaky, run: &Run, wal: bool, ctx: &str) {
    let mut st = fl.inner;
    let (got, ok) = replay_inner(&mut st, wal, ReadMode::BestEffort);
    assert!(ok, "{ctx}: best effort after failure");
    assert_prefix(&got, &run.appended, ctx);
    assert_contiguous(&got, ctx);
    assert!(
        got.len() >= run.synced,
        "{ctx}: {} entries read, {} were synced",
        got.len(),
        run.synced
    );
    let n = got.len() as u64;
    let mut want = got.clone();
    if wal {
        let mut w = WalWriter::open(&mut st, vec![0u8; 64], wal_cfg())
            .unwrap_or_else(|e| panic!("{ctx}: reopen {e:?}"));
        assert_eq!(w.next_id().unwrap(), n + 1, "{ctx}");
        assert_eq!(w.append(b"again").unwrap(), n + 1, "{ctx}");
        w.sync().unwrap();
    } else {
        let mut w = RecordLogWriter::open(&mut st, vec![0u8; 64], LOG_ID)
            .unwrap_or_else(|e| panic!("{ctx}: reopen {e:?}"));
        assert_eq!(w.next_index().unwrap(), n + 1, "{ctx}");
        assert_eq!(w.append(b"again").unwrap(), n + 1, "{ctx}");
        w.sync().unwrap();
    }
    want.push((n + 1, b"again".to_vec()));
    let (got, ok) = replay_inner(&mut st, wal, ReadMode::Strict);
    assert!(ok, "{ctx}: strict after reopen");
    assert_eq!(got, want, "{ctx}");
}

fn wal_cfg() -> WalConfig {
    let mut c = WalConfig::new(LOG_ID);
    c.segment_limit = 200;
    c
}

/// Runs the script once without failures and returns the numbers of writes and syncs.
fn counts(ws: usize, wal: bool) -> (usize, usize) {
    let mut fl = Flaky::new(ws);
    let run = if wal {
        let mut w = WalWriter::new(&mut fl, vec![0u8; 64], wal_cfg());
        drive(&mut w, &script(), "clean run")
    } else {
        let mut w = RecordLogWriter::new(&mut fl, vec![0u8; 64], LOG_ID);
        drive(&mut w, &script(), "clean run")
    };
    assert!(!run.failed);
    assert_eq!(run.synced, run.appended.len());
    if wal {
        assert!(fl.inner.segments.len() > 3, "the script rotates");
    }
    let (writes, syncs) = (fl.writes, fl.syncs);
    // Everything (including entries encoded in place and moved by a rotation) reads back.
    let (got, ok) = replay_inner(&mut fl.inner, wal, ReadMode::Strict);
    assert!(ok);
    assert_eq!(got, run.appended);
    (writes, syncs)
}

fn failing_runs(wal: bool) {
    for ws in [1, 4] {
        let (writes, syncs) = counts(ws, wal);
        assert!(writes > 20 && syncs > 5, "{writes} writes, {syncs} syncs");
        let mut cases = Vec::new();
        for n in 1..=writes {
            cases.push((Some(n), None, Tear::Nothing));
            cases.push((Some(n), None, Tear::Half));
        }
        for n in 1..=syncs {
            cases.push((None, Some(n), Tear::Nothing));
        }
        for (fail_write, fail_sync, tear) in cases {
            let ctx = format!("wal {wal} ws {ws} write {fail_write:?} sync {fail_sync:?} {tear:?}");
            let mut fl = Flaky::new(ws);
            fl.fail_write = fail_write;
            fl.fail_sync = fail_sync;
            fl.tear = tear;
            let run = if wal {
                let mut w = WalWriter::new(&mut fl, vec![0u8; 64], wal_cfg());
                drive(&mut w, &script(), &ctx)
            } else {
                let mut w = RecordLogWriter::new(&mut fl, vec![0u8; 64], LOG_ID);
                drive(&mut w, &script(), &ctx)
            };
            assert!(run.failed, "{ctx}: the failure was injected");
            assert_eq!(
                fl.after_failure, 0,
                "{ctx}: a poisoned writer touched the storage"
            );
            check_after(fl, &run, wal, &ctx);
        }
    }
}

#[test]
fn wal_writer_poisoned_by_any_failed_write_or_sync() {
    failing_runs(true);
}

#[test]
fn record_log_writer_poisoned_by_any_failed_write_or_sync() {
    failing_runs(false);
}

#[test]
fn failed_open_poisons() {
    // The header write of a new log fails.
    let mut fl = Flaky::new(1);
    fl.fail_write = Some(1);
    let mut w = WalWriter::new(&mut fl, vec![0u8; 64], wal_cfg());
    assert_eq!(
        w.append(b"x").unwrap_err(),
        Error::Storage(FlakyError::Injected)
    );
    assert!(w.is_poisoned());
    assert_eq!(w.append(b"x").unwrap_err(), Error::Poisoned);
    assert_eq!(w.last_id().unwrap_err(), Error::Poisoned);
    drop(w);
    let mut fl = Flaky::new(1);
    fl.fail_write = Some(1);
    let r = RecordLogWriter::open(&mut fl, vec![0u8; 64], LOG_ID);
    assert_eq!(r.err().unwrap(), Error::Storage(FlakyError::Injected));
}

#[test]
fn readers_report_storage_errors() {
    let mut fl = Flaky::new(1);
    let mut w = WalWriter::new(&mut fl, vec![0u8; 64], wal_cfg());
    w.append(b"x").unwrap();
    w.sync().unwrap();
    drop(w);
    let r = WalReader::new(&mut fl, Vec::new()).replay(ReadMode::BestEffort, |_, _| Ok(()));
    assert!(r.is_ok());
    // A record log that does not exist: NotFound from the storage, in both modes.
    let mut fl = Flaky::new(1);
    for mode in MODES {
        let r = RecordLogReader::new(&mut fl, Vec::new()).read(mode, |_, _| Ok(()));
        assert_eq!(
            r.unwrap_err().kind(),
            ErrorKind::Storage(StorageErrorKind::NotFound)
        );
    }
}
