//! [`FailingDirectory`]: a [`Directory`] wrapper that injects I/O failures, for
//! testing how code reacts to a write, a barrier, or a rename that fails.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::directory::{DirLock, Directory, FileHandle};
use crate::error::PersistenceResult;

/// An operation [`FailingDirectory`] counts and can make fail.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// One `write` call on a writer from [`Directory::create_file`] or
    /// [`Directory::append_file`], one [`FileHandle::write_at`], or one
    /// [`Directory::atomic_write`].
    Write,
    /// A file barrier: [`FileHandle::sync_data`] or [`Directory::sync_file`].
    Sync,
    /// A directory barrier: [`Directory::sync_dir`].
    SyncDir,
    /// Creating or truncating a file: [`Directory::create_file`],
    /// [`Directory::append_file`], or [`Directory::open_handle`] with `create`.
    Create,
    /// [`Directory::create_dir_all`].
    CreateDir,
    /// [`Directory::delete`].
    Delete,
    /// [`Directory::atomic_rename`], and the rename step of [`Directory::atomic_write`].
    Rename,
    /// One `read` call on a reader from [`Directory::open_file`], or one
    /// [`FileHandle::read_at`].
    Read,
    /// [`FileHandle::set_len`].
    Truncate,
}

/// The I/O error an injected failure returns.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// [`io::ErrorKind::Other`]: a generic I/O failure (a failed `fsync`, a bad sector).
    Other,
    /// [`io::ErrorKind::StorageFull`]: the disk is full.
    StorageFull,
}

impl FailKind {
    fn io_kind(self) -> io::ErrorKind {
        match self {
            FailKind::Other => io::ErrorKind::Other,
            FailKind::StorageFull => io::ErrorKind::StorageFull,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Fail the `n`th call after the rule was set (`seen` calls so far), once.
    Nth { n: u64, seen: u64, kind: FailKind },
    /// Fail every call.
    All { kind: FailKind },
}

/// Failure rules and call counts, shared by [`FailingDirectory`] and the
/// crash-simulating directory.
#[derive(Debug, Default)]
pub(crate) struct FailState {
    rules: BTreeMap<Op, Rule>,
    counts: BTreeMap<Op, u64>,
}

impl FailState {
    /// Counts one call of `op` and decides whether it fails.
    pub(crate) fn hit(&mut self, op: Op) -> io::Result<()> {
        *self.counts.entry(op).or_default() += 1;
        let kind = match self.rules.get_mut(&op) {
            None => return Ok(()),
            Some(Rule::All { kind }) => *kind,
            Some(Rule::Nth { n, seen, kind }) => {
                *seen += 1;
                if *seen < *n {
                    return Ok(());
                }
                let kind = *kind;
                self.rules.remove(&op);
                kind
            }
        };
        Err(io::Error::new(
            kind.io_kind(),
            format!("injected failure of {op:?} ({kind:?})"),
        ))
    }

    /// The `n`th call of `op` from now on fails, once.
    pub(crate) fn fail_nth(&mut self, op: Op, n: u64, kind: FailKind) {
        assert!(n >= 1, "fail_nth counts calls from 1");
        self.rules.insert(op, Rule::Nth { n, seen: 0, kind });
    }

    /// Every call of `op` fails.
    pub(crate) fn fail_all(&mut self, op: Op, kind: FailKind) {
        self.rules.insert(op, Rule::All { kind });
    }

    /// Removes every rule (counts are kept).
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Calls of `op` counted so far.
    pub(crate) fn count(&self, op: Op) -> u64 {
        self.counts.get(&op).copied().unwrap_or(0)
    }

    /// Sets every count back to 0 (rules are kept).
    pub(crate) fn reset_counts(&mut self) {
        self.counts.clear();
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<FailState>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FailState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one call of `op` and decides whether it fails.
    fn hit(&self, op: Op) -> io::Result<()> {
        self.lock().hit(op)
    }
}

/// Wraps a directory, forwards every call to it, counts the [`Op`]s and makes chosen
/// calls fail with an I/O error.
///
/// An injected failure happens *before* the call reaches the wrapped directory, so the
/// failing call changes nothing. Clones share the rules and counts, so a test can keep
/// one while a writer owns another.
///
/// ```
/// use std::sync::Arc;
/// use durability_std::{Directory, FailingDirectory, MemoryDirectory};
/// use durability_std::failing::{FailKind, Op};
///
/// let dir = FailingDirectory::new(Arc::new(MemoryDirectory::new()));
/// dir.fail_nth(Op::Write, 2, FailKind::StorageFull);
/// let mut w = dir.create_file("f").unwrap();
/// assert!(w.write(b"one").is_ok());
/// let err = w.write(b"two").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
/// assert!(w.write(b"three").is_ok()); // the rule fired once
/// assert_eq!(dir.counts(Op::Write), 3);
/// ```
#[derive(Clone)]
pub struct FailingDirectory {
    inner: Arc<dyn Directory>,
    shared: Shared,
}

impl FailingDirectory {
    /// Wraps `inner`; nothing fails until a rule is set.
    pub fn new(inner: Arc<dyn Directory>) -> Self {
        FailingDirectory {
            inner,
            shared: Shared::default(),
        }
    }

    /// The wrapped directory (calls on it are neither counted nor failed).
    pub fn inner(&self) -> &Arc<dyn Directory> {
        &self.inner
    }

    /// Makes the `n`th call (1-based) of `op` from now on fail with `kind`, once.
    /// Replaces an earlier rule for `op`.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn fail_nth(&self, op: Op, n: u64, kind: FailKind) {
        self.shared.lock().fail_nth(op, n, kind);
    }

    /// Makes the next call of `op` fail with `kind`, once: `fail_nth(op, 1, kind)`.
    pub fn fail_next(&self, op: Op, kind: FailKind) {
        self.fail_nth(op, 1, kind);
    }

    /// Makes every call of `op` from now on fail with [`FailKind::Other`], until
    /// [`clear`](Self::clear). Replaces an earlier rule for `op`.
    pub fn fail_all(&self, op: Op) {
        self.fail_all_with(op, FailKind::Other);
    }

    /// Makes every call of `op` from now on fail with `kind`, until
    /// [`clear`](Self::clear).
    pub fn fail_all_with(&self, op: Op, kind: FailKind) {
        self.shared.lock().fail_all(op, kind);
    }

    /// How many calls of `op` were made (failed ones included) since this directory
    /// was created or [`reset_counts`](Self::reset_counts) was called.
    pub fn counts(&self, op: Op) -> u64 {
        self.shared.lock().count(op)
    }

    /// Removes every failure rule (counts are kept).
    pub fn clear(&self) {
        self.shared.lock().clear();
    }

    /// Sets every count back to 0 (rules are kept).
    pub fn reset_counts(&self) {
        self.shared.lock().reset_counts();
    }

    fn hit(&self, op: Op) -> PersistenceResult<()> {
        Ok(self.shared.hit(op)?)
    }

    fn wrap_writer(&self, w: Box<dyn Write + Send>) -> Box<dyn Write + Send> {
        Box::new(FailingWriter {
            inner: w,
            shared: self.shared.clone(),
        })
    }
}

impl fmt::Debug for FailingDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("FailingDirectory")
            .field("rules", &st.rules)
            .field("counts", &st.counts)
            .finish_non_exhaustive()
    }
}

impl Directory for FailingDirectory {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.hit(Op::Create)?;
        Ok(self.wrap_writer(self.inner.create_file(path)?))
    }

    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        let r = self.inner.open_file(path)?;
        Ok(Box::new(FailingReader {
            inner: r,
            shared: self.shared.clone(),
        }))
    }

    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }

    fn delete(&self, path: &str) -> PersistenceResult<()> {
        self.hit(Op::Delete)?;
        self.inner.delete(path)
    }

    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        self.hit(Op::Rename)?;
        self.inner.atomic_rename(from, to)
    }

    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        self.hit(Op::CreateDir)?;
        self.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.hit(Op::Create)?;
        Ok(self.wrap_writer(self.inner.append_file(path)?))
    }

    /// Counts as one [`Op::Write`] followed by one [`Op::Rename`]; either failing
    /// leaves `path` unchanged.
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        self.hit(Op::Write)?;
        self.hit(Op::Rename)?;
        self.inner.atomic_write(path, data)
    }

    fn file_path(&self, path: &str) -> Option<PathBuf> {
        self.inner.file_path(path)
    }

    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        if create {
            self.hit(Op::Create)?;
        }
        let h = self.inner.open_handle(path, create)?;
        Ok(Box::new(FailingHandle {
            inner: h,
            shared: self.shared.clone(),
        }))
    }

    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        self.hit(Op::Sync)?;
        self.inner.sync_file(path)
    }

    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        self.hit(Op::SyncDir)?;
        self.inner.sync_dir(path)
    }

    /// Forwarded to the wrapped directory; neither counted nor failed (creating the
    /// lock file is not an [`Op::Create`]).
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        self.inner.lock_exclusive(name)
    }
}

struct FailingWriter {
    inner: Box<dyn Write + Send>,
    shared: Shared,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.hit(Op::Write)?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct FailingReader {
    inner: Box<dyn Read + Send>,
    shared: Shared,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.shared.hit(Op::Read)?;
        self.inner.read(buf)
    }
}

struct FailingHandle {
    inner: Box<dyn FileHandle>,
    shared: Shared,
}

impl FileHandle for FailingHandle {
    fn len(&mut self) -> PersistenceResult<u64> {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        self.shared.hit(Op::Read)?;
        self.inner.read_at(offset, buf)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        self.shared.hit(Op::Write)?;
        self.inner.write_at(offset, data)
    }

    fn sync_data(&mut self) -> PersistenceResult<()> {
        self.shared.hit(Op::Sync)?;
        self.inner.sync_data()
    }

    fn set_len(&mut self, len: u64) -> PersistenceResult<()> {
        self.shared.hit(Op::Truncate)?;
        self.inner.set_len(len)
    }
}
