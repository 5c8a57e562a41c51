//! [`DirStorage`]: the adapter from a [`Directory`] onto the core's
//! [`Storage`] trait, so the record log and the WAL of `durability-core` run over
//! files, memory, or any other directory backend.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use durability_core::storage::write_is_aligned;
use durability_core::{ErrorType, Storage};

use crate::directory::{parent_dir, Directory, FileHandle};
use crate::error::{PersistenceError, PersistenceResult};

/// How many open file handles a [`DirStorage`] keeps (most recently used first).
/// Two would do for a WAL (the segment being appended and the one being read or
/// sealed); a few more avoid reopening during replay checks.
const HANDLE_CACHE: usize = 4;

/// Digits in a segment file name.
const SEGMENT_DIGITS: usize = 20;

/// Suffix of a segment file name.
const SEGMENT_SUFFIX: &str = ".seg";

/// Bytes of zeros handed to the directory per write while preallocating a segment.
const ZERO_CHUNK: usize = 1 << 20;

/// Bytes a preparer writes between its barriers. A barrier of the appending thread
/// waits for every write the device has in flight; in slices, the preparer never has
/// more than this much in flight, instead of a whole segment at its single final
/// barrier.
const PREPARE_SLICE: u64 = 256 << 10;

/// Name (in the segments' directory) of the file zero-filled ahead of use. Not a
/// segment name, so [`Storage::list`] never sees it; one fixed name, so a leftover of a
/// crash is simply overwritten by the next preparation.
const PREPARED_NAME: &str = "next-segment.prep";

/// A file being zero-filled ahead of use under [`PREPARED_NAME`].
struct Preparation {
    /// The size it is filled to.
    len: u64,
    state: PrepState,
    /// Asks a background preparer to stop early (the storage is being dropped).
    cancel: Arc<AtomicBool>,
}

enum PrepState {
    Running(JoinHandle<PersistenceResult<()>>),
    Done(PersistenceResult<()>),
}

impl Preparation {
    /// Waits for the preparer; `Ok` once the file holds `len` durable zeros.
    fn finish(self) -> PersistenceResult<()> {
        match self.state {
            PrepState::Done(r) => r,
            PrepState::Running(t) => t.join().unwrap_or_else(|_| {
                Err(PersistenceError::InvalidState(
                    "the segment preparer thread panicked".to_string(),
                ))
            }),
        }
    }
}

#[derive(Debug, Clone)]
enum Layout {
    /// Segment `n` is `{subdir}/{n:020}.seg`.
    Segments { subdir: String },
    /// Segment 0 is this file; no other segment exists.
    Single { path: String },
}

/// A [`Storage`] over a [`Directory`]: each segment is one file.
///
/// - [`DirStorage::segments`]: segment `n` is the file `{subdir}/{n:020}.seg`, for the
///   multi-segment WAL.
/// - [`DirStorage::single`]: segment 0 is one given file, for the record log.
///
/// The directory must support [`Directory::open_handle`] (every backend of this crate
/// does). Write size is 1.
///
/// # Durability
///
/// [`Storage::sync`] of a segment calls [`FileHandle::sync_data`]; the first sync after
/// the segment was [created](Storage::create) also syncs the parent directory, so the
/// file's *name* is durable too (and, if this storage created the parent directory,
/// the grandparent as well, so the directory itself is). [`Storage::remove`] deletes
/// the file and syncs the parent before returning. A failed barrier is reported and
/// never retried on the caller's behalf.
///
/// # Preallocation
///
/// With [`set_preallocate`](DirStorage::set_preallocate), each segment
/// [created](Storage::create) is first filled with zeros up to the given size and
/// synced, before the core writes its header. Later appends then overwrite blocks that
/// are already allocated, written and covered by a durable file size, so their barrier
/// (`fdatasync`) flushes data only, with no size or extent change. Zeros are what the
/// core treats as never-written space ([`Storage::unwritten_byte`]), and the end of the
/// data is found by reading, so the file length no longer marks it. Zero-fill (rather
/// than `fallocate`) also means no stale bytes of an earlier file can sit in the
/// preallocated space, and ext4 has no unwritten extents left to convert (itself a
/// metadata change) on the first write of each block.
///
/// ## Ahead of use
///
/// The zero-fill does not run inside the append that rotates: after a successful
/// [`Storage::sync`] (so once a new segment's name is durable; also at the first write
/// of a storage that opened an existing segment), the next segment's file is prepared
/// under a name that is not a segment name (`next-segment.prep`, ignored by
/// [`Storage::list`]): created empty, zero-filled to the size and synced, by a
/// background thread (or, with
/// [`set_background_preparation(false)`](DirStorage::set_background_preparation),
/// right there, for reproducible tests). [`Storage::create`] then waits for it if it
/// is still running and renames it to the segment's name; the segment's first
/// [`Storage::sync`] syncs the directory, so the name is durable before anything in
/// the segment is acknowledged. Only a file this storage prepared itself is used,
/// never a leftover found on disk (a crash may leave one; the next preparation
/// overwrites it). If the preparation failed, or the size changed, or the segment's
/// name already exists, `create` zero-fills in place as before and reports any error
/// of that; a failed preparation is counted in
/// [`failed_preparations`](DirStorage::failed_preparations). Dropping the storage
/// stops and joins the preparer and deletes an unused prepared file.
///
/// # Handles
///
/// Open handles of the most recently used segments are cached, so appends and reads
/// do not reopen files. A storage assumes it is the only one changing its segments
/// while it exists: a segment deleted or replaced behind its back may still be seen
/// through a cached handle.
pub struct DirStorage {
    dir: Arc<dyn Directory>,
    layout: Layout,
    /// Open handles, most recently used first.
    cache: Vec<(u64, Box<dyn FileHandle>)>,
    /// Segments created by this storage whose names are not yet known to be durable.
    unnamed: BTreeSet<u64>,
    /// Directories whose entries must be synced before those names are durable.
    dirty_dirs: BTreeSet<String>,
    /// Whether this storage has made the names it inherited durable: segments and
    /// directories created by an earlier storage (a writer before a restart, or one
    /// that failed) may never have had their names synced.
    inherited_names_synced: bool,
    /// Size new segments are zero-filled to at creation; 0: no preallocation.
    preallocate: u64,
    /// Whether the next segment is prepared on a background thread (else inline).
    background: bool,
    /// The next segment's file, prepared ahead of use.
    prepared: Option<Preparation>,
    /// Preparations that failed (their segments were zero-filled in place instead).
    failed_preparations: u64,
    /// The error of the most recent failed preparation.
    last_preparation_error: Option<PersistenceError>,
}

impl DirStorage {
    /// Segments as numbered files in `subdir` (`""` = the directory's root): segment
    /// `n` is `{subdir}/{n:020}.seg`, e.g. `wal/00000000000000000001.seg`. The
    /// subdirectory is created with the first segment. Other files in it are ignored.
    pub fn segments(dir: Arc<dyn Directory>, subdir: &str) -> Self {
        Self::with_layout(
            dir,
            Layout::Segments {
                subdir: subdir.trim_end_matches('/').to_string(),
            },
        )
    }

    /// One file as segment 0 (the record log's segment); any other segment number is
    /// a `NotFound` I/O error. The file's parent directory is created with it.
    pub fn single(dir: Arc<dyn Directory>, path: &str) -> Self {
        Self::with_layout(
            dir,
            Layout::Single {
                path: path.to_string(),
            },
        )
    }

    fn with_layout(dir: Arc<dyn Directory>, layout: Layout) -> Self {
        DirStorage {
            dir,
            layout,
            cache: Vec::new(),
            unnamed: BTreeSet::new(),
            dirty_dirs: BTreeSet::new(),
            inherited_names_synced: false,
            preallocate: 0,
            background: true,
            prepared: None,
            failed_preparations: 0,
            last_preparation_error: None,
        }
    }

    /// Zero-fills every segment created from now on to `bytes` (and syncs it) before
    /// its first byte is written; `0` turns preallocation off. Only the
    /// [`segments`](DirStorage::segments) layout preallocates: the record log's single
    /// file keeps its length as its end. The zero-fill runs ahead of use, on a
    /// background thread by default. See the type docs.
    pub fn set_preallocate(&mut self, bytes: u64) {
        self.preallocate = bytes;
    }

    /// Whether the next segment is zero-filled on a background thread (`true`, the
    /// default) or synchronously, at the point the thread would start (`false`: the
    /// same work on the caller's thread, in a reproducible order of operations, as
    /// crash tests over a simulated directory need).
    pub fn set_background_preparation(&mut self, on: bool) {
        self.background = on;
    }

    /// How many ahead-of-use preparations failed (each such segment was zero-filled in
    /// place by [`Storage::create`] instead, which reported its own errors).
    pub fn failed_preparations(&self) -> u64 {
        self.failed_preparations
    }

    /// The error of the most recent failed preparation, if any.
    pub fn last_preparation_error(&self) -> Option<&PersistenceError> {
        self.last_preparation_error.as_ref()
    }

    /// Whether segments of this storage are preallocated.
    fn preallocating(&self) -> bool {
        self.preallocate > 0 && matches!(self.layout, Layout::Segments { .. })
    }

    /// The path of the file prepared ahead of use.
    fn prepared_path(&self) -> String {
        match self.parent() {
            "" => PREPARED_NAME.to_string(),
            p => format!("{p}/{PREPARED_NAME}"),
        }
    }

    /// Starts preparing the next segment's file, unless one is under way or ready.
    fn prepare_next(&mut self) {
        if self.prepared.is_some() || !self.preallocating() {
            return;
        }
        let (dir, path, len) = (self.dir.clone(), self.prepared_path(), self.preallocate);
        let cancel = Arc::new(AtomicBool::new(false));
        let state = if self.background {
            let stop = cancel.clone();
            match std::thread::Builder::new()
                .name("durability-prealloc".to_string())
                .spawn(move || prepare(dir.as_ref(), &path, len, &stop))
            {
                Ok(t) => PrepState::Running(t),
                Err(e) => PrepState::Done(Err(PersistenceError::Io(e))),
            }
        } else {
            PrepState::Done(prepare(dir.as_ref(), &path, len, &cancel))
        };
        self.prepared = Some(Preparation { len, state, cancel });
    }

    /// Renames the prepared file to `path` if its preparation succeeded (so it holds
    /// durable zeros), it has the current size, and `path` does not exist yet.
    /// `Ok(false)`: not used (a failed preparation is counted).
    fn take_prepared(&mut self, path: &str) -> PersistenceResult<bool> {
        let Some(p) = self.prepared.take() else {
            return Ok(false);
        };
        let len = p.len;
        if let Err(e) = p.finish() {
            self.failed_preparations += 1;
            self.last_preparation_error = Some(e);
            return Ok(false);
        }
        // A re-created segment number is overwritten in place, so that its old
        // content is gone durably with the zero-fill's barrier, as without preparation.
        if len != self.preallocate || self.dir.exists(path) {
            return Ok(false);
        }
        self.dir.atomic_rename(&self.prepared_path(), path)?;
        Ok(true)
    }

    /// The preallocation size of new segments (0 = off).
    pub fn preallocate(&self) -> u64 {
        self.preallocate
    }

    /// The path of segment `n` in the directory. For a [`single`](DirStorage::single)
    /// storage this is its file whatever `n` is.
    pub fn segment_path(&self, n: u64) -> String {
        match &self.layout {
            Layout::Segments { subdir } if subdir.is_empty() => format!("{n:020}{SEGMENT_SUFFIX}"),
            Layout::Segments { subdir } => format!("{subdir}/{n:020}{SEGMENT_SUFFIX}"),
            Layout::Single { path } => path.clone(),
        }
    }

    /// The directory the segments live in.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.dir
    }

    /// The segment number of a file name (not a path) of the
    /// [`segments`](DirStorage::segments) layout: exactly 20 ASCII digits and `.seg`.
    pub fn segment_number(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
        if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The directory holding the segment files.
    fn parent(&self) -> &str {
        match &self.layout {
            Layout::Segments { subdir } => subdir,
            Layout::Single { path } => parent_dir(path),
        }
    }

    /// The path of an addressable segment.
    fn path_of(&self, n: u64) -> PersistenceResult<String> {
        match &self.layout {
            Layout::Single { path } if n != 0 => Err(PersistenceError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("segment {n} does not exist: `{path}` is a single-segment storage"),
            ))),
            _ => Ok(self.segment_path(n)),
        }
    }

    fn drop_handle(&mut self, n: u64) {
        self.cache.retain(|(s, _)| *s != n);
    }

    fn put_handle(&mut self, n: u64, h: Box<dyn FileHandle>) {
        self.drop_handle(n);
        self.cache.insert(0, (n, h));
        self.cache.truncate(HANDLE_CACHE);
    }

    /// The handle of segment `n`, opened (without creating) if not cached. A missing
    /// file is an `Io` error of kind `NotFound`.
    fn handle(&mut self, n: u64) -> PersistenceResult<&mut dyn FileHandle> {
        match self.cache.iter().position(|(s, _)| *s == n) {
            Some(0) => {}
            Some(i) => {
                let entry = self.cache.remove(i);
                self.cache.insert(0, entry);
            }
            None => {
                let path = self.path_of(n)?;
                let h = self.dir.open_handle(&path, false)?;
                self.put_handle(n, h);
            }
        }
        Ok(self.cache[0].1.as_mut())
    }
}

/// Writes zeros over `0..len` of an empty file and makes them durable (the name is
/// made durable by the segment's first [`Storage::sync`]), with a barrier after every
/// `slice` bytes and at the end. Stops with an error when `cancel` is set.
fn zero_fill(
    h: &mut dyn FileHandle,
    len: u64,
    slice: u64,
    cancel: &AtomicBool,
) -> PersistenceResult<()> {
    let zeros = vec![0u8; len.min(slice).min(ZERO_CHUNK as u64) as usize];
    let mut at = 0u64;
    let mut unsynced = 0u64;
    while at < len {
        if cancel.load(Ordering::Relaxed) {
            return Err(PersistenceError::InvalidState(
                "segment preparation cancelled".to_string(),
            ));
        }
        let n = (len - at).min(zeros.len() as u64) as usize;
        h.write_at(at, &zeros[..n])?;
        at += n as u64;
        unsynced += n as u64;
        if unsynced >= slice && at < len {
            h.sync_data()?;
            unsynced = 0;
        }
    }
    h.sync_data()
}

/// Creates (or empties) the file at `path` and fills it with `len` durable zeros.
fn prepare(
    dir: &dyn Directory,
    path: &str,
    len: u64,
    cancel: &AtomicBool,
) -> PersistenceResult<()> {
    let mut h = dir.open_handle(path, true)?;
    h.set_len(0)?;
    zero_fill(h.as_mut(), len, PREPARE_SLICE, cancel)
}

impl Drop for DirStorage {
    fn drop(&mut self) {
        // No preparer outlives the storage (a later writer may prepare the same name).
        if let Some(p) = self.prepared.take() {
            p.cancel.store(true, Ordering::Relaxed);
            let _ = p.finish();
            // Not a segment name and never synced: leaving it would be harmless, but
            // it holds a whole segment's worth of space.
            let _ = self.dir.delete(&self.prepared_path());
        }
    }
}

impl fmt::Debug for DirStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirStorage")
            .field("layout", &self.layout)
            .field(
                "open_handles",
                &self.cache.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("unnamed", &self.unnamed)
            .field("dirty_dirs", &self.dirty_dirs)
            .field("preallocate", &self.preallocate)
            .field("background", &self.background)
            .field("prepared", &self.prepared.as_ref().map(|p| p.len))
            .field("failed_preparations", &self.failed_preparations)
            .finish_non_exhaustive()
    }
}

impl ErrorType for DirStorage {
    type Error = PersistenceError;
}

impl Storage for DirStorage {
    fn write_size(&self) -> usize {
        1
    }

    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> PersistenceResult<()> {
        match &self.layout {
            Layout::Single { path } => {
                if self.dir.exists(path) {
                    visit(0);
                }
                Ok(())
            }
            Layout::Segments { subdir } => {
                let names = match self.dir.list_dir(subdir) {
                    Ok(names) => names,
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(e),
                };
                names
                    .iter()
                    .filter_map(|name| Self::segment_number(name))
                    .for_each(visit);
                Ok(())
            }
        }
    }

    fn create(&mut self, segment: u64) -> PersistenceResult<()> {
        let path = self.path_of(segment)?;
        self.drop_handle(segment);
        let parent = self.parent().to_string();
        // Each directory this creates needs its own parent synced as well.
        let mut d = parent.as_str();
        while !d.is_empty() && !self.dir.exists(d) {
            self.dirty_dirs.insert(parent_dir(d).to_string());
            d = parent_dir(d);
        }
        self.dir.create_dir_all(&parent)?;
        self.dirty_dirs.insert(parent);
        // Created or renamed, the name becomes durable with the segment's first sync.
        self.unnamed.insert(segment);
        if self.preallocating() && self.take_prepared(&path)? {
            // The prepared file holds only durable zeros.
            let h = self.dir.open_handle(&path, false)?;
            self.put_handle(segment, h);
        } else {
            let mut h = self.dir.open_handle(&path, true)?;
            h.set_len(0)?;
            if self.preallocating() {
                zero_fill(
                    h.as_mut(),
                    self.preallocate,
                    u64::MAX,
                    &AtomicBool::new(false),
                )?;
            }
            self.put_handle(segment, h);
        }
        Ok(())
    }

    fn len(&mut self, segment: u64) -> PersistenceResult<u64> {
        self.handle(segment)?.len()
    }

    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        self.handle(segment)?.read_at(offset, buf)
    }

    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        if !write_is_aligned(self.write_size(), offset, data.len()) {
            return Err(PersistenceError::InvalidState(format!(
                "misaligned write of {} bytes at offset {offset} to segment {segment}",
                data.len()
            )));
        }
        if self.prepared.is_none() && self.unnamed.is_empty() && self.preallocating() {
            // A storage that resumed an existing segment prepares its successor too.
            self.prepare_next();
        }
        self.handle(segment)?.write_at(offset, data)
    }

    fn sync(&mut self, segment: u64) -> PersistenceResult<()> {
        self.handle(segment)?.sync_data()?;
        if !self.inherited_names_synced {
            // The first barrier of this storage also covers every directory entry on
            // the way to its segments, whoever created them.
            let mut d = self.parent().to_string();
            loop {
                let up = parent_dir(&d).to_string();
                self.dirty_dirs.insert(d.clone());
                if d.is_empty() {
                    break;
                }
                d = up;
            }
            self.unnamed.insert(segment);
        }
        if self.unnamed.contains(&segment) {
            // Deepest directory first: a directory's own entry is synced after its
            // content, so no durable name ever points at a directory missing entries.
            let mut dirs: Vec<String> = self.dirty_dirs.iter().cloned().collect();
            dirs.sort_by_key(|d| {
                std::cmp::Reverse(if d.is_empty() {
                    0
                } else {
                    d.matches('/').count() + 1
                })
            });
            for d in dirs {
                self.dir.sync_dir(&d)?;
                self.dirty_dirs.remove(&d);
            }
            // Every name this storage created lives in the synced parent.
            self.unnamed.clear();
            self.inherited_names_synced = true;
        }
        if self.prepared.is_none() && self.preallocating() {
            // Only now, not at `create`: the preparer's writes would otherwise compete
            // with this first barrier of the new segment, its directory sync included.
            self.prepare_next();
        }
        Ok(())
    }

    fn truncate(&mut self, segment: u64, len: u64) -> PersistenceResult<()> {
        self.handle(segment)?.set_len(len)
    }

    fn remove(&mut self, segment: u64) -> PersistenceResult<()> {
        let path = self.path_of(segment)?;
        self.drop_handle(segment);
        self.dir.delete(&path)?;
        self.unnamed.remove(&segment);
        self.dir.sync_dir(self.parent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(
            DirStorage::segment_number("00000000000000000001.seg"),
            Some(1)
        );
        assert_eq!(
            DirStorage::segment_number("18446744073709551615.seg"),
            Some(u64::MAX)
        );
        assert_eq!(DirStorage::segment_number("18446744073709551616.seg"), None);
        assert_eq!(DirStorage::segment_number("0000000000000000001.seg"), None);
        assert_eq!(
            DirStorage::segment_number("000000000000000000001.seg"),
            None
        );
        assert_eq!(DirStorage::segment_number("0000000000000000000+.seg"), None);
        assert_eq!(
            DirStorage::segment_number("00000000000000000001.seg.tmp"),
            None
        );
        assert_eq!(DirStorage::segment_number("00000000000000000001"), None);
    }

    #[test]
    fn paths() {
        let dir: Arc<dyn Directory> = Arc::new(crate::MemoryDirectory::new());
        let s = DirStorage::segments(dir.clone(), "wal");
        assert_eq!(s.segment_path(1), "wal/00000000000000000001.seg");
        let s = DirStorage::segments(dir.clone(), "");
        assert_eq!(s.segment_path(12), "00000000000000000012.seg");
        let s = DirStorage::single(dir, "logs/a.log");
        assert_eq!(s.segment_path(0), "logs/a.log");
        assert_eq!(s.parent(), "logs");
    }

    #[test]
    fn is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<DirStorage>();
    }
}
