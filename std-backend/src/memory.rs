//! [`MemoryDirectory`]: a volatile, thread-safe, in-memory [`Directory`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::directory::{normalize, DirLock, Directory, FileHandle, NameLock, PathKind};
use crate::error::{PersistenceError, PersistenceResult};

type Bytes = Arc<Mutex<Vec<u8>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(kind: io::ErrorKind, path: &str, what: &str) -> PersistenceError {
    PersistenceError::Io(io::Error::new(kind, format!("`{path}`: {what}")))
}

fn not_found(path: &str) -> PersistenceError {
    io_err(io::ErrorKind::NotFound, path, "no such file or directory")
}

#[derive(Default)]
struct State {
    /// Files by canonical path. Each is shared with the writers, readers and handles
    /// opened on it, so they see each other's changes, like open files of an OS.
    files: BTreeMap<String, Bytes>,
    /// Directories created explicitly (with all their ancestors). Directories that
    /// hold a file exist implicitly as well.
    dirs: BTreeSet<String>,
    /// Canonical names of the locks held through
    /// [`lock_exclusive`](Directory::lock_exclusive).
    locks: BTreeSet<String>,
}

/// Whether some key of `map` lies strictly under the directory `dir` (non-empty).
fn has_under<V>(keys: &BTreeMap<String, V>, dir: &str) -> bool {
    let prefix = format!("{dir}/");
    keys.range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix))
}

fn set_has_under(keys: &BTreeSet<String>, dir: &str) -> bool {
    let prefix = format!("{dir}/");
    keys.range(prefix.clone()..)
        .next()
        .is_some_and(|k| k.starts_with(&prefix))
}

/// `a/b/c` -> `["a", "a/b"]`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

impl State {
    fn is_dir(&self, p: &str) -> bool {
        p.is_empty()
            || self.dirs.contains(p)
            || has_under(&self.files, p)
            || set_has_under(&self.dirs, p)
    }

    fn dir_is_empty(&self, p: &str) -> bool {
        if p.is_empty() {
            return self.files.is_empty() && self.dirs.is_empty();
        }
        !has_under(&self.files, p) && !set_has_under(&self.dirs, p)
    }

    /// A file may be placed at `p`: no ancestor is a file and `p` is not a directory.
    fn check_file_slot(&self, p: &str) -> PersistenceResult<()> {
        if let Some(a) = ancestors(p).find(|a| self.files.contains_key(*a)) {
            return Err(io_err(
                io::ErrorKind::NotADirectory,
                p,
                &format!("`{a}` is a file"),
            ));
        }
        if self.is_dir(p) {
            return Err(io_err(io::ErrorKind::IsADirectory, p, "is a directory"));
        }
        Ok(())
    }

    fn file(&self, p: &str) -> PersistenceResult<Bytes> {
        match self.files.get(p) {
            Some(f) => Ok(f.clone()),
            None if self.is_dir(p) => Err(io_err(io::ErrorKind::IsADirectory, p, "is a directory")),
            None => Err(not_found(p)),
        }
    }
}

/// A volatile in-memory [`Directory`]: files are shared byte vectors.
///
/// - Cheap to clone; clones share the same files (`Arc<Mutex<..>>` inside), so one can
///   be handed to a writer while a test keeps another.
/// - Writers from [`create_file`](Directory::create_file) and
///   [`append_file`](Directory::append_file), readers and
///   [`open_handle`](Directory::open_handle) handles all work directly on the file's
///   shared bytes, like open files of an OS: a handle sees writes made through
///   another. Deleting or renaming over a file leaves open handles on the old bytes.
/// - Directories are implicit (a file `a/b` implies the directory `a`) plus those made
///   by [`create_dir_all`](Directory::create_dir_all). Unlike [`FsDirectory`](crate::FsDirectory),
///   creating a file never fails because its parent directory is missing.
/// - [`sync_file`](Directory::sync_file), [`sync_dir`](Directory::sync_dir) and
///   [`FileHandle::sync_data`] succeed (for existing targets) without doing anything:
///   memory has no power to lose, so every barrier is trivially honoured. It therefore
///   cannot show what a crash would lose; test that with a directory that simulates
///   crashes, or inject barrier failures with [`FailingDirectory`](crate::FailingDirectory).
/// - [`file_path`](Directory::file_path) is `None`.
/// - [`lock_exclusive`](Directory::lock_exclusive) is an in-process lock shared by
///   all clones: while one clone holds a name, taking it through any clone fails
///   with [`PersistenceError::Locked`]. Separate `MemoryDirectory::new()`s never
///   conflict.
///
/// Paths are checked like [`FsDirectory`](crate::FsDirectory)'s (no absolute paths, no
/// `..`) and canonicalized, so `a//b` and `./a/b` name `a/b`.
#[derive(Clone, Default)]
pub struct MemoryDirectory {
    state: Arc<Mutex<State>>,
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl fmt::Debug for MemoryDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        let mut m = f.debug_map();
        for (name, bytes) in &st.files {
            m.entry(name, &format_args!("{} bytes", lock(bytes).len()));
        }
        m.finish()
    }
}

impl Directory for MemoryDirectory {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        let p = normalize(path, PathKind::File)?;
        let mut st = self.state();
        let data = match st.files.get(&p) {
            Some(f) => {
                lock(f).clear();
                f.clone()
            }
            None => {
                st.check_file_slot(&p)?;
                let f = Bytes::default();
                st.files.insert(p, f.clone());
                f
            }
        };
        Ok(Box::new(MemWriter { data, pos: Some(0) }))
    }

    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        let p = normalize(path, PathKind::File)?;
        let data = self.state().file(&p)?;
        Ok(Box::new(MemReader { data, pos: 0 }))
    }

    fn exists(&self, path: &str) -> bool {
        let Ok(p) = normalize(path, PathKind::Dir) else {
            return false;
        };
        let st = self.state();
        st.files.contains_key(&p) || st.is_dir(&p)
    }

    fn delete(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::File)?;
        let mut st = self.state();
        if st.files.remove(&p).is_some() {
            return Ok(());
        }
        if !st.is_dir(&p) {
            return Err(not_found(&p));
        }
        if !st.dir_is_empty(&p) {
            return Err(io_err(
                io::ErrorKind::DirectoryNotEmpty,
                &p,
                "directory not empty",
            ));
        }
        st.dirs.remove(&p);
        Ok(())
    }

    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        let from = normalize(from, PathKind::File)?;
        let to = normalize(to, PathKind::File)?;
        let mut st = self.state();
        if from == to {
            let exists = st.files.contains_key(&from) || st.is_dir(&from);
            return if exists {
                Ok(())
            } else {
                Err(not_found(&from))
            };
        }
        if let Some(f) = st.files.get(&from).cloned() {
            st.check_file_slot(&to)?;
            st.files.remove(&from);
            st.files.insert(to, f);
            return Ok(());
        }
        if !st.is_dir(&from) {
            return Err(not_found(&from));
        }
        // Renaming a directory moves its whole subtree.
        if to.starts_with(&format!("{from}/")) {
            return Err(io_err(
                io::ErrorKind::InvalidInput,
                &to,
                "cannot move a directory into itself",
            ));
        }
        if st.files.contains_key(&to) {
            return Err(io_err(io::ErrorKind::NotADirectory, &to, "is a file"));
        }
        if let Some(a) = ancestors(&to).find(|a| st.files.contains_key(*a)) {
            return Err(io_err(
                io::ErrorKind::NotADirectory,
                &to,
                &format!("`{a}` is a file"),
            ));
        }
        if st.is_dir(&to) && !st.dir_is_empty(&to) {
            return Err(io_err(
                io::ErrorKind::DirectoryNotEmpty,
                &to,
                "directory not empty",
            ));
        }
        let prefix = format!("{from}/");
        let moved = |k: &str| format!("{to}/{}", &k[prefix.len()..]);
        let files: Vec<String> = st
            .files
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in files {
            let f = st.files.remove(&k).expect("listed above");
            st.files.insert(moved(&k), f);
        }
        let dirs: Vec<String> = st
            .dirs
            .iter()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in dirs {
            st.dirs.remove(&k);
            st.dirs.insert(moved(&k));
        }
        st.dirs.remove(&from);
        for a in ancestors(&to) {
            st.dirs.insert(a.to_string());
        }
        st.dirs.insert(to);
        Ok(())
    }

    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::Dir)?;
        if p.is_empty() {
            return Ok(());
        }
        let mut st = self.state();
        if let Some(a) = ancestors(&p)
            .chain([p.as_str()])
            .find(|a| st.files.contains_key(*a))
        {
            return Err(io_err(
                io::ErrorKind::AlreadyExists,
                &p,
                &format!("`{a}` is a file"),
            ));
        }
        for a in ancestors(&p) {
            st.dirs.insert(a.to_string());
        }
        st.dirs.insert(p);
        Ok(())
    }

    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        let p = normalize(path, PathKind::Dir)?;
        let st = self.state();
        if st.files.contains_key(&p) {
            return Err(io_err(io::ErrorKind::NotADirectory, &p, "is a file"));
        }
        if !st.is_dir(&p) {
            return Err(not_found(&p));
        }
        let prefix = if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        };
        let child = |k: &String| -> Option<String> {
            let rest = k.strip_prefix(&prefix)?;
            Some(rest.split('/').next().unwrap_or(rest).to_string())
        };
        let names: BTreeSet<String> = st
            .files
            .keys()
            .filter_map(child)
            .chain(st.dirs.iter().filter_map(child))
            .collect();
        Ok(names.into_iter().collect())
    }

    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        let p = normalize(path, PathKind::File)?;
        let mut st = self.state();
        let data = match st.files.get(&p) {
            Some(f) => f.clone(),
            None => {
                st.check_file_slot(&p)?;
                let f = Bytes::default();
                st.files.insert(p, f.clone());
                f
            }
        };
        Ok(Box::new(MemWriter { data, pos: None }))
    }

    /// Atomic under the directory's lock: readers see the old or the new bytes.
    /// Handles open on the old file keep the old bytes, as after a rename on an OS.
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::File)?;
        let mut st = self.state();
        if !st.files.contains_key(&p) {
            st.check_file_slot(&p)?;
        }
        st.files.insert(p, Arc::new(Mutex::new(data.to_vec())));
        Ok(())
    }

    fn file_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }

    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        let p = normalize(path, PathKind::File)?;
        let mut st = self.state();
        let data = match st.files.get(&p) {
            Some(f) => f.clone(),
            None if create => {
                st.check_file_slot(&p)?;
                let f = Bytes::default();
                st.files.insert(p, f.clone());
                f
            }
            None => return Err(st.file(&p).err().unwrap_or_else(|| not_found(&p))),
        };
        Ok(Box::new(MemHandle { data }))
    }

    /// Succeeds for an existing file; memory has nothing to flush.
    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::File)?;
        self.state().file(&p).map(|_| ())
    }

    /// Succeeds for an existing directory; memory has nothing to flush.
    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::Dir)?;
        let st = self.state();
        if st.files.contains_key(&p) {
            return Err(io_err(io::ErrorKind::NotADirectory, &p, "is a file"));
        }
        if !st.is_dir(&p) {
            return Err(not_found(&p));
        }
        Ok(())
    }

    /// An in-process lock shared by the clones of this directory. Like
    /// [`FsDirectory`](crate::FsDirectory), creates the empty lock file `name` if it
    /// is missing and never deletes it. Held elsewhere: [`PersistenceError::Locked`]
    /// with the canonical `name`.
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        let p = normalize(name, PathKind::File)?;
        let mut st = self.state();
        if !st.locks.contains(&p) && !st.files.contains_key(&p) {
            st.check_file_slot(&p)?;
            st.files.insert(p.clone(), Bytes::default());
        }
        NameLock::take(&self.state, &mut st, held_locks, p).map(Some)
    }
}

/// Writes `src` at `pos` of `data`, zero-filling any gap past the end.
fn write_bytes(data: &mut Vec<u8>, pos: usize, src: &[u8]) {
    let end = pos + src.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[pos..end].copy_from_slice(src);
}

fn to_usize(n: u64) -> PersistenceResult<usize> {
    usize::try_from(n).map_err(|_| {
        PersistenceError::Io(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("offset {n} does not fit in memory"),
        ))
    })
}

struct MemWriter {
    data: Bytes,
    /// Cursor, or `None` for append mode.
    pos: Option<usize>,
}

impl Write for MemWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut data = lock(&self.data);
        match &mut self.pos {
            None => data.extend_from_slice(buf),
            Some(pos) => {
                write_bytes(&mut data, *pos, buf);
                *pos += buf.len();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct MemReader {
    data: Bytes,
    pos: usize,
}

impl Read for MemReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = lock(&self.data);
        let start = self.pos.min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        self.pos += n;
        Ok(n)
    }
}

struct MemHandle {
    data: Bytes,
}

impl FileHandle for MemHandle {
    fn len(&mut self) -> PersistenceResult<u64> {
        Ok(lock(&self.data).len() as u64)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        let data = lock(&self.data);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        let pos = to_usize(offset)?;
        write_bytes(&mut lock(&self.data), pos, data);
        Ok(())
    }

    fn sync_data(&mut self) -> PersistenceResult<()> {
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> PersistenceResult<()> {
        let len = to_usize(len)?;
        lock(&self.data).resize(len, 0);
        Ok(())
    }
}

fn held_locks(st: &mut State) -> &mut BTreeSet<String> {
    &mut st.locks
}
