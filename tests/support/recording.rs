//! A `Directory` wrapper that records every mutating call and barrier, in order, with
//! the path it touched (writers and handles included).

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use durability::storage::{DirLock, FileHandle};
use durability::{Directory, PersistenceResult};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `create_file`, `append_file`, or `open_handle(create = true)`.
    Create(String),
    CreateDir(String),
    /// A `write` on a writer, or `write_at` on a handle.
    Write(String),
    /// `sync_file` or `sync_data` on a handle.
    Sync(String),
    SyncDir(String),
    Rename(String, String),
    Delete(String),
    Truncate(String),
    AtomicWrite(String),
}

impl Event {
    /// The path the event touched (the destination of a rename).
    pub fn path(&self) -> &str {
        match self {
            Event::Create(p)
            | Event::CreateDir(p)
            | Event::Write(p)
            | Event::Sync(p)
            | Event::SyncDir(p)
            | Event::Delete(p)
            | Event::Truncate(p)
            | Event::AtomicWrite(p)
            | Event::Rename(_, p) => p,
        }
    }
}

type Log = Arc<Mutex<Vec<Event>>>;

/// Forwards everything to `inner` and records the calls.
#[derive(Clone)]
pub struct RecordingDirectory {
    inner: Arc<dyn Directory>,
    log: Log,
}

impl RecordingDirectory {
    pub fn new(inner: Arc<dyn Directory>) -> Self {
        RecordingDirectory {
            inner,
            log: Arc::default(),
        }
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    fn push(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }
}

impl Directory for RecordingDirectory {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.push(Event::Create(path.to_owned()));
        Ok(Box::new(RecWriter {
            inner: self.inner.create_file(path)?,
            path: path.to_owned(),
            log: self.log.clone(),
        }))
    }

    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        self.inner.open_file(path)
    }

    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }

    fn delete(&self, path: &str) -> PersistenceResult<()> {
        self.push(Event::Delete(path.to_owned()));
        self.inner.delete(path)
    }

    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        self.push(Event::Rename(from.to_owned(), to.to_owned()));
        self.inner.atomic_rename(from, to)
    }

    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        self.push(Event::CreateDir(path.to_owned()));
        self.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.push(Event::Create(path.to_owned()));
        Ok(Box::new(RecWriter {
            inner: self.inner.append_file(path)?,
            path: path.to_owned(),
            log: self.log.clone(),
        }))
    }

    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        self.push(Event::AtomicWrite(path.to_owned()));
        self.inner.atomic_write(path, data)
    }

    fn file_path(&self, path: &str) -> Option<PathBuf> {
        self.inner.file_path(path)
    }

    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        if create {
            self.push(Event::Create(path.to_owned()));
        }
        Ok(Box::new(RecHandle {
            inner: self.inner.open_handle(path, create)?,
            path: path.to_owned(),
            log: self.log.clone(),
        }))
    }

    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        self.push(Event::Sync(path.to_owned()));
        self.inner.sync_file(path)
    }

    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        self.push(Event::SyncDir(path.to_owned()));
        self.inner.sync_dir(path)
    }

    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        self.inner.lock_exclusive(name)
    }
}

struct RecWriter {
    inner: Box<dyn Write + Send>,
    path: String,
    log: Log,
}

impl Write for RecWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Write(self.path.clone()));
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct RecHandle {
    inner: Box<dyn FileHandle>,
    path: String,
    log: Log,
}

impl RecHandle {
    fn push(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }
}

impl FileHandle for RecHandle {
    fn len(&mut self) -> PersistenceResult<u64> {
        self.inner.len()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        self.inner.read_at(offset, buf)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        self.push(Event::Write(self.path.clone()));
        self.inner.write_at(offset, data)
    }

    fn sync_data(&mut self) -> PersistenceResult<()> {
        self.push(Event::Sync(self.path.clone()));
        self.inner.sync_data()
    }

    fn set_len(&mut self, len: u64) -> PersistenceResult<()> {
        self.push(Event::Truncate(self.path.clone()));
        self.inner.set_len(len)
    }
}
