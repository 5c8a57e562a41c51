//! [`FsDirectory`]: a [`Directory`] over a directory of the OS file system.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::directory::{
    normalize, os_sync_dir, os_sync_file, parent_dir, temp_sibling, DirLock, Directory, FileHandle,
    PathKind,
};
use crate::error::{PersistenceError, PersistenceResult};

/// A directory of the OS file system. Every path argument is checked and resolved
/// under [`root`](FsDirectory::root); a path that could leave it (absolute, `..`,
/// a drive prefix) is rejected with [`PersistenceError::InvalidPath`].
///
/// Barriers are real: [`sync_file`](Directory::sync_file) and
/// [`FileHandle::sync_data`] call `fsync`/`fdatasync`, and
/// [`sync_dir`](Directory::sync_dir) `fsync`s the directory (Unix; elsewhere the OS
/// offers no directory barrier and it is a no-op).
///
/// Symbolic links inside the root are followed like any other entry; the checks are
/// about the path strings, not about what the file system links to.
///
/// [`lock_exclusive`](Directory::lock_exclusive) takes an OS file lock
/// ([`File::try_lock`]: `flock` on Unix, `LockFileEx` on Windows) on the lock file.
/// Such locks belong to one *open* of the file, so a second `FsDirectory` on the same
/// root, in this process or another, is refused as well.
#[derive(Debug, Clone)]
pub struct FsDirectory {
    root: PathBuf,
}

impl FsDirectory {
    /// A directory rooted at `root`, which is created (with its ancestors) if missing.
    /// The creation of the root is not synced.
    pub fn new(root: impl AsRef<Path>) -> PersistenceResult<Self> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)?;
        Ok(FsDirectory { root })
    }

    /// The root every path is resolved under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str, kind: PathKind) -> PersistenceResult<PathBuf> {
        let rel = normalize(path, kind)?;
        Ok(if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        })
    }

    fn file(&self, path: &str) -> PersistenceResult<PathBuf> {
        self.resolve(path, PathKind::File)
    }
}

impl Directory for FsDirectory {
    /// Unbuffered: each `write` on the returned writer is a system call. Wrap it in a
    /// `BufWriter` for many small writes (and call `flush` before syncing).
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        Ok(Box::new(File::create(self.file(path)?)?))
    }

    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.file(path)?)?))
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path, PathKind::Dir).is_ok_and(|p| p.exists())
    }

    fn delete(&self, path: &str) -> PersistenceResult<()> {
        let p = self.file(path)?;
        if std::fs::symlink_metadata(&p)?.is_dir() {
            std::fs::remove_dir(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
        Ok(())
    }

    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        let (from, to) = (self.file(from)?, self.file(to)?);
        std::fs::rename(from, to)?;
        Ok(())
    }

    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        std::fs::create_dir_all(self.resolve(path, PathKind::Dir)?)?;
        Ok(())
    }

    /// Names that are not valid UTF-8 are skipped: this API cannot address them.
    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.resolve(path, PathKind::Dir)?)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Unbuffered, like [`create_file`](FsDirectory::create_file).
    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.file(path)?)?;
        Ok(Box::new(f))
    }

    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        let target = self.file(path)?;
        let tmp = self.file(&temp_sibling(path))?;
        let r = (|| -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            drop(f);
            std::fs::rename(&tmp, &target)
        })();
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(())
    }

    fn file_path(&self, path: &str) -> Option<PathBuf> {
        self.resolve(path, PathKind::Dir).ok()
    }

    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(self.file(path)?)?;
        Ok(Box::new(FsHandle(f)))
    }

    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        os_sync_file(&self.file(path)?)
    }

    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        os_sync_dir(&self.resolve(path, PathKind::Dir)?)
    }

    /// Opens (creating it and its parent directories if missing) the lock file `name`
    /// and takes an exclusive OS lock on it with [`File::try_lock`], without waiting.
    /// Held elsewhere: [`PersistenceError::Locked`] with the file's OS path.
    ///
    /// The OS releases the lock when the process exits, however it exits. Locks on
    /// network file systems are only as reliable as the file system makes them. On
    /// platforms where std has no file locks this fails with an
    /// [`Io`](PersistenceError::Io) error of kind `Unsupported`.
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        let rel = normalize(name, PathKind::File)?;
        let path = self.root.join(&rel);
        let parent = parent_dir(&rel);
        if !parent.is_empty() {
            std::fs::create_dir_all(self.root.join(parent))?;
        }
        // Write access: Windows' LockFileEx wants a handle opened for reading or
        // writing, and some Unix emulations of `flock` (NFS) want write access for
        // an exclusive lock.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock::new(FsLock(file)))),
            Err(TryLockError::WouldBlock) => Err(PersistenceError::Locked {
                path: path.display().to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// The open lock file holding an exclusive OS lock.
struct FsLock(File);

impl Drop for FsLock {
    fn drop(&mut self) {
        // Closing the file would release the lock too, but only once every duplicate
        // of the descriptor is closed (a child process between `fork` and `exec`
        // holds one); unlocking releases it at once.
        let _ = self.0.unlock();
    }
}

/// An open OS file used through positional reads and writes.
struct FsHandle(File);

impl FileHandle for FsHandle {
    fn len(&mut self) -> PersistenceResult<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            match pread(&mut self.0, offset + done as u64, &mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        let mut done = 0;
        while done < data.len() {
            match pwrite(&mut self.0, offset + done as u64, &data[done..]) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn sync_data(&mut self) -> PersistenceResult<()> {
        self.0.sync_data()?;
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> PersistenceResult<()> {
        self.0.set_len(len)?;
        Ok(())
    }
}

#[cfg(unix)]
fn pread(f: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, offset)
}

#[cfg(unix)]
fn pwrite(f: &mut File, offset: u64, data: &[u8]) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(f, data, offset)
}

#[cfg(not(unix))]
fn pread(f: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    f.read(buf)
}

#[cfg(not(unix))]
fn pwrite(f: &mut File, offset: u64, data: &[u8]) -> std::io::Result<usize> {
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset))?;
    f.write(data)
}
