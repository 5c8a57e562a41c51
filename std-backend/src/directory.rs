//! The directory abstraction: a path-based, object-safe view of a tree of files.
//!
//! Paths are `&str`s relative to the directory's root, with `/` as the separator
//! (`"wal/00000000000000000001.seg"`). The empty path `""` names the root itself where
//! a directory is meant. Backends reject paths that could leave the root (absolute
//! paths, `..`) with [`PersistenceError::InvalidPath`].
//!
//! # Durability model
//!
//! Every method documents what is durable (survives a power cut) when it returns and
//! what a power cut *during* it may leave. In short, as on POSIX file systems:
//!
//! - writing bytes makes nothing durable; [`FileHandle::sync_data`] or
//!   [`Directory::sync_file`] makes a file's bytes and size durable;
//! - creating, renaming or deleting a name makes nothing durable either;
//!   [`Directory::sync_dir`] of the directory holding the name makes the change
//!   durable (and a newly created directory needs a `sync_dir` of its own parent);
//! - [`DurableDirectory`] combines these into the two durable operations most code
//!   needs: replace a file's content atomically, and rename durably.
//!
//! A barrier that returns an error means nothing about what is durable. Do not retry
//! it and treat a later success as covering the writes before the failure: on Linux a
//! failed `fsync` may already have dropped the dirty pages.
//!
//! # One writer at a time
//!
//! Two writers appending to the same log corrupt it. [`Directory::lock_exclusive`]
//! takes an advisory, exclusive lock named by a file (such as `"wal/LOCK"`); a second
//! writer, in this process or another, gets [`PersistenceError::Locked`]. The lock is
//! held by the returned [`DirLock`] and released when it is dropped or the process
//! exits, so a crash never leaves a stale lock.

use std::any::Any;
use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{PersistenceError, PersistenceResult};

/// A tree of files addressed by relative `/`-separated paths. Object-safe: use it as
/// `Arc<dyn Directory>`. See the [module docs](self) for the durability model.
///
/// The first ten methods are the original (0.2) interface. [`open_handle`],
/// [`sync_file`] and [`sync_dir`] were added in 0.3 as provided methods so that
/// directories written for 0.2 keep compiling: their defaults go through
/// [`file_path`] and report [`PersistenceError::NotSupported`] for backends that are
/// not OS directories.
///
/// [`lock_exclusive`] is a later provided method; its default reports that the
/// backend has no lock (`Ok(None)`).
///
/// [`open_handle`]: Directory::open_handle
/// [`sync_file`]: Directory::sync_file
/// [`sync_dir`]: Directory::sync_dir
/// [`file_path`]: Directory::file_path
/// [`lock_exclusive`]: Directory::lock_exclusive
pub trait Directory: Send + Sync {
    /// Creates the file at `path`, or truncates it if it exists, and returns a writer
    /// positioned at its start. The parent directory must exist on backends with real
    /// directories.
    ///
    /// Durable after return: nothing. The new name becomes durable after
    /// [`sync_dir`](Directory::sync_dir) of the parent, the bytes written through the
    /// writer after [`sync_file`](Directory::sync_file). A power cut during or after it
    /// (before those barriers) may leave the file absent, with its old content, empty,
    /// or holding any prefix of the written bytes, possibly with zero-filled holes.
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>>;

    /// Opens an existing file for sequential reading from its start.
    ///
    /// Reads the live state, including writes that are not durable yet. A missing file
    /// is an [`Io`](PersistenceError::Io) error of kind `NotFound`.
    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>>;

    /// Whether a file or directory exists at `path` (live state, durable or not).
    /// An invalid path does not exist.
    fn exists(&self, path: &str) -> bool;

    /// Deletes the file at `path` (or an empty directory).
    ///
    /// Durable after return: nothing; the removal is durable after
    /// [`sync_dir`](Directory::sync_dir) of the parent. A power cut before that may
    /// leave the file in place with its full content.
    fn delete(&self, path: &str) -> PersistenceResult<()>;

    /// Renames `from` to `to`, atomically replacing `to` if it exists: a reader sees
    /// either the old `to` or the new one, never a mixture or no file.
    ///
    /// Durable after return: nothing. The rename is durable after
    /// [`sync_dir`](Directory::sync_dir) of `to`'s parent (and of `from`'s parent if it
    /// differs). A power cut before that leaves either the state before or the state
    /// after the rename. The *content* of `from` is only guaranteed to be durable if it
    /// was synced before the rename; see [`DurableDirectory`].
    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()>;

    /// Creates the directory at `path` and every missing ancestor. `""` is the root,
    /// which always exists.
    ///
    /// Durable after return: nothing. Each newly created directory is durable after
    /// [`sync_dir`](Directory::sync_dir) of its parent. A power cut before that may
    /// leave any prefix of the chain created.
    fn create_dir_all(&self, path: &str) -> PersistenceResult<()>;

    /// Names (not paths) of the entries of the directory at `path` (`""` = root),
    /// sorted. Live state, durable or not. A missing directory is an
    /// [`Io`](PersistenceError::Io) error of kind `NotFound`.
    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>>;

    /// Opens the file at `path` for appending, creating it if it is missing; every
    /// write goes to the current end of the file.
    ///
    /// Durable after return: nothing, as for [`create_file`](Directory::create_file):
    /// the appended bytes after [`sync_file`](Directory::sync_file), a newly created
    /// name after [`sync_dir`](Directory::sync_dir) of the parent. A power cut may keep
    /// any prefix of the unsynced appends, possibly with zero-filled holes.
    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>>;

    /// Replaces the content of `path` with `data` atomically with respect to readers
    /// and crashes: the data is written to a temporary file in the same directory,
    /// which is then renamed over `path`.
    ///
    /// **Not synced.** Durable after return: nothing, and after a power cut `path` may
    /// hold the old content, the new content, or (on file systems that reorder the
    /// rename before the data) an empty or partial file. Use
    /// [`DurableDirectory::atomic_write_durable`] when the new content must survive.
    /// A stray temporary file may be left behind by a crash.
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()>;

    /// The OS path of `path`, for backends that are real directories; `None` for other
    /// backends (memory, custom stores) and for invalid paths.
    fn file_path(&self, path: &str) -> Option<PathBuf>;

    /// Opens the file at `path` for positional reads and writes, creating it (empty)
    /// if it is missing and `create` is true. Without `create`, a missing file is an
    /// [`Io`](PersistenceError::Io) error of kind `NotFound`.
    ///
    /// Durable after return: nothing; a newly created name is durable after
    /// [`sync_dir`](Directory::sync_dir) of the parent.
    ///
    /// Default: [`PersistenceError::NotSupported`].
    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        let _ = create;
        Err(PersistenceError::NotSupported(format!(
            "open_handle(`{path}`): this directory has no positional file handles"
        )))
    }

    /// A barrier for one file: when it returns `Ok`, every write to the file that
    /// completed before the call, and its size, are durable. Its *name* is not: that
    /// needs [`sync_dir`](Directory::sync_dir) of the parent.
    ///
    /// A power cut during it may leave any subset of the pending writes. An error means
    /// nothing about what is durable; do not retry and trust a later success.
    ///
    /// Default: through [`file_path`](Directory::file_path), opening the file and
    /// calling `fsync` (`File::sync_all`); [`PersistenceError::NotSupported`] if
    /// `file_path` is `None`.
    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        match self.file_path(path) {
            Some(p) => os_sync_file(&p),
            None => Err(PersistenceError::NotSupported(format!(
                "sync_file(`{path}`): this directory cannot issue stable-storage barriers"
            ))),
        }
    }

    /// A barrier for the entries of the DIRECTORY at `path` (`""` = root): when it
    /// returns `Ok`, every creation, rename and deletion of a name directly inside it
    /// that completed before the call is durable.
    ///
    /// A power cut during it may leave any subset of those changes. An error means
    /// nothing about what is durable.
    ///
    /// Default: through [`file_path`](Directory::file_path), opening the directory and
    /// calling `fsync` on it (Unix; elsewhere the OS offers no directory barrier and
    /// this returns `Ok`); [`PersistenceError::NotSupported`] if `file_path` is `None`.
    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        match self.file_path(path) {
            Some(p) => os_sync_dir(&p),
            None => Err(PersistenceError::NotSupported(format!(
                "sync_dir(`{path}`): this directory cannot issue stable-storage barriers"
            ))),
        }
    }

    /// Takes the exclusive lock named by the file `name` (for example `"wal/LOCK"`),
    /// without waiting, so that only one writer at a time works on the data the lock
    /// stands for.
    ///
    /// - `Ok(Some(lock))`: this caller holds the lock until `lock` is dropped.
    /// - `Ok(None)`: the backend has no lock; nothing stops a second writer, and the
    ///   caller must ensure single-writer use some other way.
    /// - `Err(`[`PersistenceError::Locked`]`)`: another holder has the lock (another
    ///   process, or another handle in this process).
    ///
    /// The lock is advisory: it only excludes callers that take it too; reads, writes
    /// and deletions through other paths are not blocked. See [`DirLock`].
    ///
    /// Backends that implement it create the (empty) lock file `name` if it is
    /// missing, with its parent directories, and never delete it: deleting a lock file
    /// races with a writer that has just opened it. Do not delete it yourself while
    /// writers may run. The file's creation is not synced; that does not matter, as
    /// the lock lives only as long as the process holding it.
    ///
    /// Default: `Ok(None)`.
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        let _ = name;
        Ok(None)
    }
}

/// An exclusive lock taken with [`Directory::lock_exclusive`]; the lock is released
/// when this value is dropped.
///
/// What it protects: whatever the callers agree it stands for, typically one log
/// directory (`"wal/LOCK"` guards the segments under `wal/`). A second
/// `lock_exclusive` of the same name, from another process or through another
/// directory value or clone in this one, fails with [`PersistenceError::Locked`]
/// while this value lives.
///
/// The lock is **advisory**: it excludes only code that asks for it, and does not
/// stop anybody from opening, writing or deleting files.
///
/// It is released on drop, and by the operating system when the holding process
/// exits for any reason (file locks die with their process), so a crash never
/// leaves a stale lock behind and there is nothing to clean up on restart.
///
/// Backends build one from any guard value whose `Drop` releases their lock, with
/// [`DirLock::new`].
#[must_use = "the lock is released as soon as the DirLock is dropped"]
pub struct DirLock {
    _guard: Box<dyn Any + Send + Sync>,
}

impl DirLock {
    /// Wraps `guard`, a value that holds a backend's lock and releases it when dropped.
    pub fn new<G: Any + Send + Sync>(guard: G) -> Self {
        DirLock {
            _guard: Box::new(guard),
        }
    }
}

/// The in-process lock of the memory-backed directories: a name held in a set inside
/// their shared state, released when the lock is dropped.
pub(crate) struct NameLock<T: Send + 'static> {
    state: std::sync::Arc<std::sync::Mutex<T>>,
    names: fn(&mut T) -> &mut std::collections::BTreeSet<String>,
    name: String,
}

impl<T: Send + 'static> NameLock<T> {
    /// Holds `name` in `names(st)`, where `st` is the locked content of `state`;
    /// [`PersistenceError::Locked`] if it is held already.
    pub(crate) fn take(
        state: &std::sync::Arc<std::sync::Mutex<T>>,
        st: &mut T,
        names: fn(&mut T) -> &mut std::collections::BTreeSet<String>,
        name: String,
    ) -> PersistenceResult<DirLock> {
        if !names(st).insert(name.clone()) {
            return Err(PersistenceError::Locked { path: name });
        }
        Ok(DirLock::new(NameLock {
            state: state.clone(),
            names,
            name,
        }))
    }
}

impl<T: Send + 'static> Drop for NameLock<T> {
    fn drop(&mut self) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.names)(&mut st).remove(&self.name);
    }
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirLock").finish_non_exhaustive()
    }
}

/// A file opened for positional I/O, held open by logs.
///
/// Handles see the live content of the file; two handles to the same file see each
/// other's writes.
pub trait FileHandle: Send {
    /// The current length of the file in bytes (live, durable or not).
    fn len(&mut self) -> PersistenceResult<u64>;

    /// Whether the file is empty (live state). Provided: `len() == 0`.
    fn is_empty(&mut self) -> PersistenceResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads into `buf` from `offset`. Fills `buf` completely unless the end of the
    /// file comes first; returns the number of bytes read (0 at or past the end).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize>;

    /// Writes all of `data` at `offset`, extending the file if needed (a gap past the
    /// old end reads as zeros).
    ///
    /// Durable after return: nothing; the bytes are durable after
    /// [`sync_data`](FileHandle::sync_data). A power cut before that may keep any
    /// subset of the unsynced writes, each torn at any byte or replaced by zeros.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()>;

    /// A barrier (`fdatasync`): when it returns `Ok`, every completed write and the
    /// file's size are durable, which is enough for appends. The file's name is not
    /// covered: a newly created file also needs [`Directory::sync_dir`] of its parent.
    ///
    /// A power cut during it may leave any subset of the pending writes. An error means
    /// nothing about what is durable; do not retry and trust a later success.
    fn sync_data(&mut self) -> PersistenceResult<()>;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    ///
    /// Durable after the next [`sync_data`](FileHandle::sync_data). A power cut before
    /// that may leave the old length.
    fn set_len(&mut self, len: u64) -> PersistenceResult<()>;
}

/// The two durable operations built from a [`Directory`]'s primitives and barriers.
/// Implemented for every `Directory` (including `dyn Directory`).
///
/// On a backend whose barriers report [`PersistenceError::NotSupported`] both fail
/// with that error before changing anything.
pub trait DurableDirectory: Directory {
    /// Replaces the content of `path` with `data` so that after `Ok` the new content is
    /// durable and readers (and a crash at any point) see either the old content or
    /// the new one in full, never a mixture.
    ///
    /// Steps: write a temporary file next to `path`, sync it, rename it over `path`,
    /// sync the parent directory. A crash may leave a stray temporary file (its name
    /// starts with `.` and ends with `.tmp`); an error removes the temporary file when
    /// it can.
    fn atomic_write_durable(&self, path: &str, data: &[u8]) -> PersistenceResult<()>;

    /// Renames `from` to `to` (replacing `to`) durably: after `Ok`, the content of
    /// `from` and the rename are both durable. A crash at any point leaves either the
    /// old state or the new one.
    ///
    /// Steps: sync `from`'s content, rename, sync `to`'s parent and, if different,
    /// `from`'s parent. `from` must be a file.
    fn atomic_rename_durable(&self, from: &str, to: &str) -> PersistenceResult<()>;
}

impl<T: Directory + ?Sized> DurableDirectory for T {
    fn atomic_write_durable(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        let parent = parent_dir(path);
        // Checks barrier support before anything is changed; costs one directory sync.
        self.sync_dir(parent)?;
        let tmp = temp_sibling(path);
        let written = (|| {
            let mut w = self.create_file(&tmp)?;
            w.write_all(data)?;
            w.flush()?;
            drop(w);
            self.sync_file(&tmp)?;
            self.atomic_rename(&tmp, path)
        })();
        if let Err(e) = written {
            if self.exists(&tmp) {
                let _ = self.delete(&tmp);
            }
            return Err(e);
        }
        self.sync_dir(parent)
    }

    fn atomic_rename_durable(&self, from: &str, to: &str) -> PersistenceResult<()> {
        let to_parent = parent_dir(to);
        let from_parent = parent_dir(from);
        // Makes the content durable and checks that both barriers are supported
        // before the rename changes anything.
        self.sync_file(from)?;
        self.sync_dir(to_parent)?;
        self.atomic_rename(from, to)?;
        self.sync_dir(to_parent)?;
        if from_parent != to_parent {
            self.sync_dir(from_parent)?;
        }
        Ok(())
    }
}

/// Makes the content of the file at `path` durable: [`Directory::sync_file`].
pub fn sync_file(dir: &dyn Directory, path: &str) -> PersistenceResult<()> {
    dir.sync_file(path)
}

/// Makes the creation, rename or deletion of the entry `path` durable by syncing the
/// directory that holds it: [`Directory::sync_dir`] of [`parent_dir(path)`](parent_dir).
pub fn sync_parent_dir(dir: &dyn Directory, path: &str) -> PersistenceResult<()> {
    dir.sync_dir(parent_dir(path))
}

/// The directory part of a relative path: `"a/b/c"` -> `"a/b"`, `"c"` -> `""` (the
/// root). A trailing `/` is ignored.
pub fn parent_dir(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => trimmed[..i].trim_end_matches('/'),
        None => "",
    }
}

/// Forwards every method, provided ones included, so a wrapped directory keeps its
/// own barriers and handles.
macro_rules! forward_directory {
    ($($ty:ty),*) => {$(
        impl<D: Directory + ?Sized> Directory for $ty {
            fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
                (**self).create_file(path)
            }
            fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
                (**self).open_file(path)
            }
            fn exists(&self, path: &str) -> bool {
                (**self).exists(path)
            }
            fn delete(&self, path: &str) -> PersistenceResult<()> {
                (**self).delete(path)
            }
            fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
                (**self).atomic_rename(from, to)
            }
            fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
                (**self).create_dir_all(path)
            }
            fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
                (**self).list_dir(path)
            }
            fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
                (**self).append_file(path)
            }
            fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
                (**self).atomic_write(path, data)
            }
            fn file_path(&self, path: &str) -> Option<PathBuf> {
                (**self).file_path(path)
            }
            fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
                (**self).open_handle(path, create)
            }
            fn sync_file(&self, path: &str) -> PersistenceResult<()> {
                (**self).sync_file(path)
            }
            fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
                (**self).sync_dir(path)
            }
            fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
                (**self).lock_exclusive(name)
            }
        }
    )*};
}

forward_directory!(Arc<D>, Box<D>, &D);

/// What a path argument must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// A file: at least one component, no trailing `/` or `.`.
    File,
    /// A directory: `""` is the root.
    Dir,
}

/// Checks a path argument and returns it in canonical form (components joined by `/`,
/// without `.` or empty components). Rejects anything that could leave the root.
pub(crate) fn normalize(path: &str, kind: PathKind) -> PersistenceResult<String> {
    let bad = |why: &str| Err(PersistenceError::InvalidPath(format!("`{path}`: {why}")));
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    if path.contains('\\') {
        return bad("contains `\\`; use `/` as the separator");
    }
    if path.starts_with('/') || std::path::Path::new(path).has_root() {
        return bad("absolute paths are not allowed; give a path relative to the directory root");
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => return bad("`..` components are not allowed"),
            name => {
                // A drive or UNC prefix (`C:`) would escape the root on Windows.
                let mut comps = std::path::Path::new(name).components();
                if !matches!(
                    (comps.next(), comps.next()),
                    (Some(std::path::Component::Normal(_)), None)
                ) {
                    return bad("contains a path prefix or root component");
                }
                parts.push(name);
            }
        }
    }
    if kind == PathKind::File {
        let last = path.rsplit('/').next().unwrap_or("");
        if parts.is_empty() {
            return bad("a file name is required");
        }
        if last.is_empty() || last == "." {
            return bad("a file path must end in a file name");
        }
    }
    Ok(parts.join("/"))
}

/// A unique temporary name next to `path`: `dir/.name.<pid>.<counter>.tmp`.
pub(crate) fn temp_sibling(path: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    format!("{dir}.{name}.{pid}.{n}.tmp")
}

/// `fsync` of an OS file (needs write access on Windows).
pub(crate) fn os_sync_file(p: &std::path::Path) -> PersistenceResult<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(cfg!(not(unix)))
        .open(p)?;
    f.sync_all()?;
    Ok(())
}

/// `fsync` of an OS directory; a no-op where the OS has no directory barrier.
pub(crate) fn os_sync_dir(p: &std::path::Path) -> PersistenceResult<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(p)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        if !p.is_dir() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound).into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_dir_cases() {
        assert_eq!(parent_dir("a/b/c"), "a/b");
        assert_eq!(parent_dir("c"), "");
        assert_eq!(parent_dir(""), "");
        assert_eq!(parent_dir("a/b/"), "a");
        assert_eq!(parent_dir("a//b"), "a");
    }

    #[test]
    fn normalize_cases() {
        use PathKind::*;
        assert_eq!(normalize("a/b.bin", File).unwrap(), "a/b.bin");
        assert_eq!(normalize("./a//b", File).unwrap(), "a/b");
        assert_eq!(normalize("", Dir).unwrap(), "");
        assert_eq!(normalize("wal/", Dir).unwrap(), "wal");
        for bad in ["..", "a/../../x", "/etc/passwd", "a\\b", "a\0b", "../x"] {
            assert!(
                matches!(normalize(bad, Dir), Err(PersistenceError::InvalidPath(_))),
                "{bad:?}"
            );
        }
        for bad in ["", ".", "a/", "a/.", "/"] {
            assert!(
                matches!(normalize(bad, File), Err(PersistenceError::InvalidPath(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn temp_names_are_unique_siblings() {
        let a = temp_sibling("d/x.bin");
        let b = temp_sibling("d/x.bin");
        assert_ne!(a, b);
        assert!(a.starts_with("d/.x.bin.") && a.ends_with(".tmp"));
        assert_eq!(parent_dir(&temp_sibling("x")), "");
    }
}
