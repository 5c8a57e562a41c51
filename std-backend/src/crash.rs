//! [`CrashDirectory`]: an in-memory [`Directory`] that simulates a machine that can
//! lose power, for testing crash recovery.
//!
//! # The model
//!
//! Every file (an *inode*) has a **durable image**, the bytes a power cut cannot take
//! away, plus the ordered list of **pending operations** (writes at offsets and length
//! changes) issued since the file's last barrier. The namespace has a **durable** set of
//! names and directories plus the ordered list of **pending name changes** (creations,
//! renames, deletions, new and removed directories) that no directory barrier covered
//! yet. Reads, [`exists`](Directory::exists) and [`list_dir`](Directory::list_dir) always
//! see the live state, as on an OS with a page cache.
//!
//! | call | what becomes durable |
//! |---|---|
//! | [`FileHandle::sync_data`], [`Directory::sync_file`] | that file's data and size: its pending operations are folded into its durable image |
//! | [`Directory::sync_dir`]`(d)` | every pending name change *directly inside* `d` (a rename between two directories needs both synced) |
//! | anything else | nothing |
//!
//! A power cut is simulated by [`CrashDirectory::crash`] (random, deterministic per
//! seed) or [`CrashDirectory::crash_with`] (explicit choices). Both return a **new,
//! independent** `CrashDirectory` holding the post-crash state: everything in it is
//! durable, it has no pending operations, an empty operation log, no locks held and
//! no failure rules. Run your recovery on it (and crash it again). From the state
//! before the crash:
//!
//! - each pending file operation is independently kept, dropped, replaced by zeros,
//!   torn at any byte, or torn at a 512-byte sector boundary with the rest of its range
//!   filled with zeros or random bytes ([`Choice`]); later writes may land while
//!   earlier ones did not; a file may end up longer than its data, with zeros where
//!   the data never landed;
//! - each pending name change is independently applied or reverted ([`NameChoice`]):
//!   files created since the last `sync_dir` may vanish, renames may revert, deletions
//!   may be undone. A rename is atomic: afterwards the file has its old name or its
//!   new one, never neither and never both, and a replaced target keeps its old file
//!   or gets the new one;
//! - a file or directory whose parent directory does not survive is gone too.
//!
//! Bytes covered by a completed barrier are never changed by a crash.
//!
//! # Exploring crash states
//!
//! - [`ops`](CrashDirectory::ops) is the log of every state-changing call (writes,
//!   length changes, creations, renames, deletions, directories, barriers, failed calls
//!   included) since the directory was created or the log was [reset](CrashDirectory::reset_log).
//!   [`snapshot_at(k)`](CrashDirectory::snapshot_at) rebuilds the state right after the
//!   first `k` of them (durable images plus the pending operations of that moment), so a
//!   test can cut the power at every point of a workload.
//! - [`pending_ops`](CrashDirectory::pending_ops) /
//!   [`pending_name_ops`](CrashDirectory::pending_name_ops) count what a crash may
//!   change, [`crash_with`](CrashDirectory::crash_with) takes one [`Choice`] per pending
//!   file operation and one [`NameChoice`] per pending name change, and
//!   [`crash_plans`](CrashDirectory::crash_plans) lists a bounded, systematic set of
//!   such choices (see there for its size).
//!
//! # Failures
//!
//! [`fail_nth`](CrashDirectory::fail_nth) makes the `n`th call of an [`Op`] fail with
//! an I/O error ([`FailKind::Other`] or [`FailKind::StorageFull`]), like
//! [`FailingDirectory`](crate::FailingDirectory); a failing call changes nothing. In
//! [fsyncgate mode](CrashDirectory::set_fsyncgate) a failing file barrier also *drops*
//! the pending writes of that file, as Linux does with dirty pages after a failed
//! `fsync`: they stay visible to reads but will never become durable, and the next
//! barrier of that file reports success.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use durability_std::crash::{CrashDirectory, Operation};
//! use durability_std::{Directory, PersistenceResult};
//!
//! # fn main() -> PersistenceResult<()> {
//! let sim = CrashDirectory::new();
//! let dir: Arc<dyn Directory> = Arc::new(sim.clone());
//! let mut h = dir.open_handle("log", true)?;
//! h.write_at(0, b"durable")?;
//! h.sync_data()?;
//! dir.sync_dir("")?; // the name `log` is durable too
//! h.write_at(7, b" maybe")?;
//! assert_eq!(sim.pending_ops(), 1);
//!
//! // The log: create, write, sync, sync_dir, write. Both barriers have returned once
//! // the first 4 calls are done.
//! let ops = sim.ops();
//! assert_eq!(ops.len(), 5);
//! assert!(matches!(ops[3].op, Operation::SyncDir { .. }));
//!
//! // Cut the power at every point of the run, in 20 random ways each.
//! for k in 0..=ops.len() {
//!     let at_k = sim.snapshot_at(k);
//!     for seed in 0..20 {
//!         let after = at_k.crash(seed);
//!         let bytes = after.read_file("log");
//!         if k >= 4 {
//!             let bytes = bytes.expect("a synced name survives");
//!             assert!(bytes.starts_with(b"durable"));
//!             // Nothing is invented: the rest is the unsynced write, torn, zeros or
//!             // garbage within its range.
//!             assert!(bytes.len() <= 13);
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::directory::{normalize, parent_dir, DirLock, Directory, FileHandle, NameLock, PathKind};
use crate::error::{PersistenceError, PersistenceResult};
use crate::failing::{FailKind, FailState, Op};

/// The sector size used by [`Choice::TearSector`] and [`Choice::Sectors`]: tears happen
/// at multiples of it (absolute file offsets).
pub const SECTOR: u64 = 512;

/// What a crash does to one pending file operation.
///
/// For a write of `len` bytes at `offset`:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// The whole write landed.
    Keep,
    /// Nothing of the write landed; the file is not extended by it.
    Drop,
    /// The file was extended (or overwritten) over the write's range, but the data
    /// never landed: the range reads as zeros.
    Zeros,
    /// The first `n` bytes landed, nothing after them (`n >= len` is [`Keep`](Choice::Keep),
    /// `0` is [`Drop`](Choice::Drop)).
    TearAt(u64),
    /// The bytes before the `sector`th multiple of [`SECTOR`] strictly inside the write
    /// landed; the rest of the write's range holds `fill`. `sector == 0` fills the
    /// whole range; a `sector` beyond the last boundary inside the write is
    /// [`Keep`](Choice::Keep).
    TearSector {
        /// How many sector boundaries inside the write the landed prefix reaches.
        sector: u64,
        /// What the rest of the range holds.
        fill: Fill,
    },
    /// Each [`SECTOR`]-aligned piece of the write independently landed or holds `fill`,
    /// decided by `seed`: later sectors may land while earlier ones did not.
    Sectors {
        /// Decides which pieces land.
        seed: u64,
        /// What the other pieces hold.
        fill: Fill,
    },
}

/// What the part of a torn write that did not land holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fill {
    /// Zeros (a file grown whose data never landed).
    Zeros,
    /// Garbage: pseudo-random bytes determined by the seed and the file offset.
    Random(u64),
}

/// What a crash does to one pending name change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameChoice {
    /// The change reached the disk.
    Apply,
    /// The change was lost: the name is as before it.
    Revert,
}

/// One choice per pending file operation and per pending name change, in the order of
/// [`CrashDirectory::pending`] and [`CrashDirectory::pending_names`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CrashPlan {
    /// For the pending file operations; missing entries are [`Choice::Keep`].
    pub files: Vec<Choice>,
    /// For the pending name changes; missing entries are [`NameChoice::Apply`].
    pub names: Vec<NameChoice>,
}

/// A state-changing call recorded in the [operation log](CrashDirectory::ops).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// A new file: [`Directory::create_file`], [`Directory::append_file`] or
    /// [`Directory::open_handle`] of a missing file, or the lock file of
    /// [`Directory::lock_exclusive`].
    Create {
        /// The file.
        path: String,
    },
    /// A write of `len` bytes at `offset`.
    Write {
        /// The file (its name when it was opened).
        path: String,
        /// Where.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// A length change: [`FileHandle::set_len`], or [`Directory::create_file`] of an
    /// existing file (length 0).
    SetLen {
        /// The file.
        path: String,
        /// The new length.
        len: u64,
    },
    /// [`Directory::atomic_write`]: a new file with `len` bytes replacing `path`.
    AtomicWrite {
        /// The file.
        path: String,
        /// How many bytes.
        len: u64,
    },
    /// A file barrier: [`FileHandle::sync_data`] or [`Directory::sync_file`].
    Sync {
        /// The file.
        path: String,
    },
    /// A directory barrier: [`Directory::sync_dir`].
    SyncDir {
        /// The directory (`""` = root).
        path: String,
    },
    /// [`Directory::atomic_rename`].
    Rename {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// [`Directory::delete`] of a file or an empty directory.
    Delete {
        /// The name.
        path: String,
    },
    /// A new directory ([`Directory::create_dir_all`], or a missing parent of a new
    /// file).
    CreateDir {
        /// The directory.
        path: String,
    },
}

/// One entry of the [operation log](CrashDirectory::ops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// The call.
    pub op: Operation,
    /// Whether it failed with an injected error (it then changed nothing, except
    /// that a failed barrier in [fsyncgate mode](CrashDirectory::set_fsyncgate) dropped
    /// the pending writes of its file).
    pub failed: bool,
}

/// A pending file operation, as listed by [`CrashDirectory::pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOp {
    /// A current name of the file (live, else durable), if it has one.
    pub path: Option<String>,
    /// The operation.
    pub kind: PendingKind,
}

/// What a [`PendingOp`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// A write of `len` bytes at `offset`.
    Write {
        /// Where.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// A length change (only [`Choice::Keep`] applies it; every other choice drops it).
    SetLen {
        /// The new length.
        len: u64,
    },
}

impl PendingOp {
    /// The choices [`CrashDirectory::crash_plans`] tries for this operation, besides
    /// [`Choice::Keep`]: at most 8 for a write (drop, zeros, torn after 1 byte, in the
    /// middle and 1 byte short, garbage over the whole range, and a tear at the first
    /// sector boundary inside it filled with zeros or garbage), one (drop) for a length
    /// change.
    pub fn menu(&self) -> Vec<Choice> {
        match self.kind {
            PendingKind::SetLen { .. } => vec![Choice::Drop],
            PendingKind::Write { offset, len } => {
                let mut m = vec![Choice::Drop, Choice::Zeros];
                for n in [1, len / 2, len.saturating_sub(1)] {
                    let c = Choice::TearAt(n);
                    if n > 0 && n < len && !m.contains(&c) {
                        m.push(c);
                    }
                }
                let seed = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ len;
                m.push(Choice::TearSector {
                    sector: 0,
                    fill: Fill::Random(seed),
                });
                if boundaries(offset, len).next().is_some() {
                    m.push(Choice::TearSector {
                        sector: 1,
                        fill: Fill::Zeros,
                    });
                    m.push(Choice::TearSector {
                        sector: 1,
                        fill: Fill::Random(seed ^ 1),
                    });
                }
                m
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(kind: io::ErrorKind, path: &str, what: &str) -> PersistenceError {
    PersistenceError::Io(io::Error::new(kind, format!("`{path}`: {what}")))
}

fn not_found(path: &str) -> PersistenceError {
    io_err(io::ErrorKind::NotFound, path, "no such file or directory")
}

fn to_usize(n: u64) -> PersistenceResult<usize> {
    usize::try_from(n).map_err(|_| {
        PersistenceError::Io(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("offset {n} does not fit in memory"),
        ))
    })
}

/// splitmix64: small, fast, deterministic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The multiples of [`SECTOR`] strictly inside `offset..offset + len`.
fn boundaries(offset: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = (offset / SECTOR + 1) * SECTOR;
    let end = offset + len;
    (0..)
        .map(move |i| first + i * SECTOR)
        .take_while(move |&b| b < end)
}

fn write_into(buf: &mut Vec<u8>, pos: usize, src: &[u8]) {
    let end = pos + src.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[pos..end].copy_from_slice(src);
}

fn fill_into(buf: &mut Vec<u8>, from: u64, to: u64, fill: Fill) {
    let (a, b) = (from as usize, to as usize);
    if buf.len() < b {
        buf.resize(b, 0);
    }
    match fill {
        Fill::Zeros => buf[a..b].fill(0),
        Fill::Random(seed) => {
            for (i, byte) in buf[a..b].iter_mut().enumerate() {
                *byte = mix(seed ^ (from + i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)) as u8;
            }
        }
    }
}

#[derive(Debug, Clone)]
enum FileOpKind {
    Write { offset: u64, data: Arc<[u8]> },
    SetLen(u64),
}

impl FileOpKind {
    fn apply(&self, buf: &mut Vec<u8>, choice: Choice) {
        match (self, choice) {
            (FileOpKind::SetLen(len), Choice::Keep) => buf.resize(*len as usize, 0),
            (FileOpKind::SetLen(_), _) => {}
            (FileOpKind::Write { offset, data }, choice) => {
                let (off, len) = (*offset, data.len() as u64);
                match choice {
                    Choice::Keep => write_into(buf, off as usize, data),
                    Choice::Drop => {}
                    Choice::Zeros => fill_into(buf, off, off + len, Fill::Zeros),
                    Choice::TearAt(n) => {
                        let n = n.min(len) as usize;
                        if n > 0 {
                            write_into(buf, off as usize, &data[..n]);
                        }
                    }
                    Choice::TearSector { sector, fill } => {
                        let cut = if sector == 0 {
                            Some(off)
                        } else {
                            boundaries(off, len).nth((sector - 1) as usize)
                        };
                        match cut {
                            None => write_into(buf, off as usize, data),
                            Some(cut) => {
                                write_into(buf, off as usize, &data[..(cut - off) as usize]);
                                fill_into(buf, cut, off + len, fill);
                            }
                        }
                    }
                    Choice::Sectors { seed, fill } => {
                        let mut rng = Rng(seed);
                        let mut start = off;
                        let cuts = boundaries(off, len).chain([off + len]);
                        for end in cuts {
                            let piece = &data[(start - off) as usize..(end - off) as usize];
                            if rng.next() & 1 == 1 {
                                write_into(buf, start as usize, piece);
                            } else {
                                fill_into(buf, start, end, fill);
                            }
                            start = end;
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct FileOp {
    seq: u64,
    kind: FileOpKind,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// What survives any crash.
    durable: Vec<u8>,
    /// What reads see.
    live: Vec<u8>,
    /// Operations since the last barrier, oldest first.
    pending: Vec<FileOp>,
}

impl Inode {
    fn durable_after_sync(&self) -> Vec<u8> {
        let mut img = self.durable.clone();
        for op in &self.pending {
            op.kind.apply(&mut img, Choice::Keep);
        }
        img
    }
}

#[derive(Debug, Clone)]
enum NameOp {
    Link { path: String, ino: u64 },
    Unlink { path: String, ino: u64 },
    Rename { from: String, to: String, ino: u64 },
    Mkdir { path: String },
    Rmdir { path: String },
}

impl NameOp {
    fn dirs(&self) -> Vec<String> {
        match self {
            NameOp::Link { path, .. }
            | NameOp::Unlink { path, .. }
            | NameOp::Mkdir { path }
            | NameOp::Rmdir { path } => vec![parent_dir(path).to_string()],
            NameOp::Rename { from, to, .. } => {
                let (a, b) = (parent_dir(from), parent_dir(to));
                if a == b {
                    vec![a.to_string()]
                } else {
                    vec![a.to_string(), b.to_string()]
                }
            }
        }
    }

    fn ino(&self) -> Option<u64> {
        match self {
            NameOp::Link { ino, .. } | NameOp::Unlink { ino, .. } | NameOp::Rename { ino, .. } => {
                Some(*ino)
            }
            _ => None,
        }
    }

    fn describe(&self) -> Operation {
        match self {
            NameOp::Link { path, .. } => Operation::Create { path: path.clone() },
            NameOp::Unlink { path, .. } | NameOp::Rmdir { path } => {
                Operation::Delete { path: path.clone() }
            }
            NameOp::Rename { from, to, .. } => Operation::Rename {
                from: from.clone(),
                to: to.clone(),
            },
            NameOp::Mkdir { path } => Operation::CreateDir { path: path.clone() },
        }
    }
}

#[derive(Debug, Clone)]
struct PendingName {
    op: NameOp,
    /// Directories whose barrier has not covered this change yet.
    waiting: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Namespace {
    files: BTreeMap<String, u64>,
    /// Every directory except the root, which always exists.
    dirs: BTreeSet<String>,
}

impl Namespace {
    fn apply(&mut self, op: &NameOp) {
        match op {
            NameOp::Link { path, ino } => {
                self.files.insert(path.clone(), *ino);
            }
            NameOp::Unlink { path, ino } => {
                if self.files.get(path) == Some(ino) {
                    self.files.remove(path);
                }
            }
            NameOp::Rename { to, ino, .. } => {
                // The file has one name: wherever it was, it is now at `to`.
                self.files.retain(|_, i| i != ino);
                self.files.insert(to.clone(), *ino);
            }
            NameOp::Mkdir { path } => {
                self.dirs.insert(path.clone());
            }
            NameOp::Rmdir { path } => {
                self.dirs.remove(path);
            }
        }
    }

    fn is_dir(&self, p: &str) -> bool {
        p.is_empty() || self.dirs.contains(p)
    }

    /// Drops files and directories whose parent directory is missing.
    fn prune(&mut self) {
        let mut dirs: Vec<String> = self.dirs.iter().cloned().collect();
        dirs.sort_by_key(|d| d.matches('/').count());
        let mut kept = BTreeSet::new();
        for d in dirs {
            let parent = parent_dir(&d);
            if parent.is_empty() || kept.contains(parent) {
                kept.insert(d);
            }
        }
        self.dirs = kept;
        let dirs = &self.dirs;
        self.files.retain(|p, _| {
            let parent = parent_dir(p);
            parent.is_empty() || dirs.contains(parent)
        });
    }

    fn children(&self, dir: &str) -> BTreeSet<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let child = |k: &String| -> Option<String> {
            let rest = k.strip_prefix(&prefix)?;
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
        };
        self.files
            .keys()
            .filter_map(child)
            .chain(self.dirs.iter().filter_map(child))
            .collect()
    }
}

/// The effect of one recorded call on the state; replaying effects rebuilds it.
#[derive(Debug, Clone)]
enum Effect {
    Link {
        path: String,
        ino: u64,
        fresh: bool,
    },
    Write {
        ino: u64,
        offset: u64,
        data: Arc<[u8]>,
    },
    SetLen {
        ino: u64,
        len: u64,
    },
    Sync {
        ino: u64,
    },
    DropPending {
        ino: u64,
    },
    SyncDir {
        dir: String,
    },
    Rename {
        from: String,
        to: String,
        ino: u64,
    },
    Unlink {
        path: String,
        ino: u64,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
}

/// Everything a snapshot or a crash needs: no locks, no rules, no log.
#[derive(Debug, Clone, Default)]
struct Image {
    inodes: BTreeMap<u64, Inode>,
    live: Namespace,
    durable: Namespace,
    names: Vec<PendingName>,
    next_ino: u64,
    next_seq: u64,
}

impl Image {
    fn inode(&mut self, ino: u64) -> &mut Inode {
        self.inodes.entry(ino).or_default()
    }

    fn push_name(&mut self, op: NameOp) {
        let waiting = op.dirs();
        self.names.push(PendingName { op, waiting });
    }

    fn apply(&mut self, e: &Effect) {
        let seq = self.next_seq;
        self.next_seq += 1;
        match e {
            Effect::Link { path, ino, fresh } => {
                if *fresh {
                    self.inodes.insert(*ino, Inode::default());
                }
                self.next_ino = self.next_ino.max(ino + 1);
                self.live.files.insert(path.clone(), *ino);
                self.push_name(NameOp::Link {
                    path: path.clone(),
                    ino: *ino,
                });
            }
            Effect::Write { ino, offset, data } => {
                let node = self.inode(*ino);
                write_into(&mut node.live, *offset as usize, data);
                node.pending.push(FileOp {
                    seq,
                    kind: FileOpKind::Write {
                        offset: *offset,
                        data: data.clone(),
                    },
                });
            }
            Effect::SetLen { ino, len } => {
                let node = self.inode(*ino);
                node.live.resize(*len as usize, 0);
                node.pending.push(FileOp {
                    seq,
                    kind: FileOpKind::SetLen(*len),
                });
            }
            Effect::Sync { ino } => {
                let node = self.inode(*ino);
                node.durable = node.durable_after_sync();
                node.pending.clear();
            }
            Effect::DropPending { ino } => self.inode(*ino).pending.clear(),
            Effect::SyncDir { dir } => {
                let mut still = Vec::with_capacity(self.names.len());
                for mut n in std::mem::take(&mut self.names) {
                    n.waiting.retain(|d| d != dir);
                    if n.waiting.is_empty() {
                        self.durable.apply(&n.op);
                    } else {
                        still.push(n);
                    }
                }
                self.names = still;
            }
            Effect::Rename { from, to, ino } => {
                self.live.files.remove(from);
                self.live.files.insert(to.clone(), *ino);
                self.push_name(NameOp::Rename {
                    from: from.clone(),
                    to: to.clone(),
                    ino: *ino,
                });
            }
            Effect::Unlink { path, ino } => {
                self.live.files.remove(path);
                self.push_name(NameOp::Unlink {
                    path: path.clone(),
                    ino: *ino,
                });
            }
            Effect::Mkdir { path } => {
                self.live.dirs.insert(path.clone());
                self.push_name(NameOp::Mkdir { path: path.clone() });
            }
            Effect::Rmdir { path } => {
                self.live.dirs.remove(path);
                self.push_name(NameOp::Rmdir { path: path.clone() });
            }
        }
    }

    /// Inodes a crash can leave reachable: named now, durably, or by a pending change.
    fn relevant(&self) -> BTreeSet<u64> {
        self.live
            .files
            .values()
            .chain(self.durable.files.values())
            .copied()
            .chain(self.names.iter().filter_map(|n| n.op.ino()))
            .collect()
    }

    /// The pending file operations a crash decides, oldest first: (ino, index).
    fn pending_list(&self) -> Vec<(u64, usize)> {
        let mut all: Vec<(u64, u64, usize)> = self
            .relevant()
            .into_iter()
            .filter_map(|ino| self.inodes.get(&ino).map(|n| (ino, n)))
            .flat_map(|(ino, n)| {
                n.pending
                    .iter()
                    .enumerate()
                    .map(move |(i, op)| (op.seq, ino, i))
            })
            .collect();
        all.sort_unstable();
        all.into_iter().map(|(_, ino, i)| (ino, i)).collect()
    }

    fn name_of(&self, ino: u64) -> Option<String> {
        let find = |ns: &Namespace| {
            ns.files
                .iter()
                .find(|(_, &i)| i == ino)
                .map(|(p, _)| p.clone())
        };
        find(&self.live).or_else(|| find(&self.durable))
    }

    /// The post-crash image: durable everywhere, nothing pending.
    fn crash(&self, files: &[Choice], names: &[NameChoice]) -> Image {
        let list = self.pending_list();
        assert!(
            files.len() <= list.len(),
            "{} file choices for {} pending file operations",
            files.len(),
            list.len()
        );
        assert!(
            names.len() <= self.names.len(),
            "{} name choices for {} pending name changes",
            names.len(),
            self.names.len()
        );
        let mut ns = self.durable.clone();
        for (i, n) in self.names.iter().enumerate() {
            if names.get(i).copied().unwrap_or(NameChoice::Apply) == NameChoice::Apply {
                ns.apply(&n.op);
            }
        }
        ns.prune();
        let mut per_inode: BTreeMap<u64, Vec<Choice>> = BTreeMap::new();
        for (k, &(ino, i)) in list.iter().enumerate() {
            let v = per_inode.entry(ino).or_insert_with(|| {
                vec![Choice::Keep; self.inodes.get(&ino).map_or(0, |n| n.pending.len())]
            });
            v[i] = files.get(k).copied().unwrap_or(Choice::Keep);
        }
        let mut out = Image {
            next_ino: self.next_ino,
            ..Image::default()
        };
        for &ino in ns.files.values() {
            let Some(node) = self.inodes.get(&ino) else {
                continue;
            };
            let mut img = node.durable.clone();
            let choices = per_inode.get(&ino);
            for (i, op) in node.pending.iter().enumerate() {
                let c = choices.map_or(Choice::Keep, |v| v[i]);
                op.kind.apply(&mut img, c);
            }
            out.inodes.insert(
                ino,
                Inode {
                    durable: img.clone(),
                    live: img,
                    pending: Vec::new(),
                },
            );
        }
        out.live = ns.clone();
        out.durable = ns;
        out
    }
}

#[derive(Debug, Default)]
struct Sim {
    /// The state the log starts from.
    base: Image,
    cur: Image,
    log: Vec<(OpRecord, Vec<Effect>)>,
    locks: BTreeSet<String>,
    faults: FailState,
    fsyncgate: bool,
}

impl Sim {
    fn from_image(img: Image) -> Sim {
        Sim {
            base: img.clone(),
            cur: img,
            ..Sim::default()
        }
    }

    /// Counts one call of `op` and decides whether it fails.
    fn hit(&mut self, op: Op) -> io::Result<()> {
        self.faults.hit(op)
    }

    fn record(&mut self, op: Operation, effects: Vec<Effect>) {
        for e in &effects {
            self.cur.apply(e);
        }
        self.log.push((OpRecord { op, failed: false }, effects));
    }

    /// Counts `op`; on an injected failure records the failed call and returns the error.
    fn gate(&mut self, kind: Op, op: impl FnOnce() -> Operation) -> PersistenceResult<()> {
        match self.hit(kind) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.log.push((
                    OpRecord {
                        op: op(),
                        failed: true,
                    },
                    Vec::new(),
                ));
                Err(e.into())
            }
        }
    }

    /// A file may be placed at `p`: no ancestor is a file, `p` is not a directory.
    fn check_file_slot(&self, p: &str) -> PersistenceResult<()> {
        let mut d = parent_dir(p);
        while !d.is_empty() {
            if self.cur.live.files.contains_key(d) {
                return Err(io_err(
                    io::ErrorKind::NotADirectory,
                    p,
                    &format!("`{d}` is a file"),
                ));
            }
            d = parent_dir(d);
        }
        if self.cur.live.is_dir(p) {
            return Err(io_err(io::ErrorKind::IsADirectory, p, "is a directory"));
        }
        Ok(())
    }

    /// Effects creating every missing ancestor directory of `p` (outermost first).
    fn mkdirs(&self, p: &str, include_self: bool) -> Vec<Effect> {
        let mut missing = Vec::new();
        let mut d = if include_self { p } else { parent_dir(p) };
        while !d.is_empty() && !self.cur.live.dirs.contains(d) {
            missing.push(Effect::Mkdir {
                path: d.to_string(),
            });
            d = parent_dir(d);
        }
        missing.reverse();
        missing
    }

    fn file(&self, p: &str) -> PersistenceResult<u64> {
        match self.cur.live.files.get(p) {
            Some(&ino) => Ok(ino),
            None if self.cur.live.is_dir(p) => {
                Err(io_err(io::ErrorKind::IsADirectory, p, "is a directory"))
            }
            None => Err(not_found(p)),
        }
    }

    /// Records the creation of every missing ancestor directory of `p` (outermost
    /// first), one logged call each, so a crash can fall between them.
    fn record_mkdirs(&mut self, p: &str, include_self: bool) {
        for e in self.mkdirs(p, include_self) {
            let Effect::Mkdir { path } = &e else {
                unreachable!("mkdirs makes Mkdir effects")
            };
            let op = Operation::CreateDir { path: path.clone() };
            self.record(op, vec![e]);
        }
    }

    /// Creates the file `p` (with missing parents), recorded as `Create`.
    fn create(&mut self, p: &str) -> PersistenceResult<u64> {
        self.check_file_slot(p)?;
        self.record_mkdirs(p, false);
        let ino = self.cur.next_ino;
        self.record(
            Operation::Create {
                path: p.to_string(),
            },
            vec![Effect::Link {
                path: p.to_string(),
                ino,
                fresh: true,
            }],
        );
        Ok(ino)
    }

    fn sync_ino(&mut self, ino: u64, path: &str) -> PersistenceResult<()> {
        if let Err(e) = self.hit(Op::Sync) {
            let effects = if self.fsyncgate {
                vec![Effect::DropPending { ino }]
            } else {
                Vec::new()
            };
            for eff in &effects {
                self.cur.apply(eff);
            }
            self.log.push((
                OpRecord {
                    op: Operation::Sync {
                        path: path.to_string(),
                    },
                    failed: true,
                },
                effects,
            ));
            return Err(e.into());
        }
        self.record(
            Operation::Sync {
                path: path.to_string(),
            },
            vec![Effect::Sync { ino }],
        );
        Ok(())
    }

    fn write(&mut self, ino: u64, path: &str, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        let len = data.len() as u64;
        self.gate(Op::Write, || Operation::Write {
            path: path.to_string(),
            offset,
            len,
        })?;
        to_usize(offset.saturating_add(len))?;
        self.record(
            Operation::Write {
                path: path.to_string(),
                offset,
                len,
            },
            vec![Effect::Write {
                ino,
                offset,
                data: Arc::from(data),
            }],
        );
        Ok(())
    }

    fn live_len(&self, ino: u64) -> u64 {
        self.cur.inodes.get(&ino).map_or(0, |n| n.live.len() as u64)
    }
}

// ---------------------------------------------------------------------------------
// The directory
// ---------------------------------------------------------------------------------

/// An in-memory [`Directory`] that simulates power loss. See the [module docs](self)
/// for the model.
///
/// - Cheap to clone; clones share one state (hand one to the code under test, keep one
///   to inspect and crash it).
/// - Every state-changing call is recorded ([`ops`](Self::ops)); any point of the run
///   can be rebuilt ([`snapshot_at`](Self::snapshot_at)) and crashed
///   ([`crash`](Self::crash), [`crash_with`](Self::crash_with),
///   [`crash_plans`](Self::crash_plans)).
/// - Creating a file creates its missing parent directories (each a pending name change
///   in its own parent), like [`MemoryDirectory`](crate::MemoryDirectory) which needs
///   no parents.
/// - Renaming a directory is not supported ([`PersistenceError::NotSupported`]).
/// - [`lock_exclusive`](Directory::lock_exclusive) is an in-process lock shared by the
///   clones; snapshots and post-crash directories start with no lock held.
/// - [`file_path`](Directory::file_path) is `None`.
#[derive(Clone, Default)]
pub struct CrashDirectory {
    sim: Arc<Mutex<Sim>>,
}

impl fmt::Debug for CrashDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sim = self.sim();
        let mut m = f.debug_map();
        for (name, ino) in &sim.cur.live.files {
            let node = sim.cur.inodes.get(ino);
            m.entry(
                name,
                &format_args!(
                    "{} bytes ({} durable, {} pending ops)",
                    node.map_or(0, |n| n.live.len()),
                    node.map_or(0, |n| n.durable.len()),
                    node.map_or(0, |n| n.pending.len())
                ),
            );
        }
        m.finish()
    }
}

impl CrashDirectory {
    /// An empty directory, everything durable, with an empty operation log.
    pub fn new() -> Self {
        Self::default()
    }

    fn sim(&self) -> MutexGuard<'_, Sim> {
        lock(&self.sim)
    }

    fn from_image(img: Image) -> Self {
        CrashDirectory {
            sim: Arc::new(Mutex::new(Sim::from_image(img))),
        }
    }

    // ----- the operation log and snapshots -----

    /// The recorded state-changing calls, oldest first (see [`Operation`]). Reads, and
    /// calls rejected before changing anything (a missing file, an invalid path), are
    /// not recorded; calls failed by an injected error are, with `failed` set.
    pub fn ops(&self) -> Vec<OpRecord> {
        self.sim().log.iter().map(|(r, _)| r.clone()).collect()
    }

    /// How many calls [`ops`](Self::ops) holds.
    pub fn op_count(&self) -> usize {
        self.sim().log.len()
    }

    /// A new, independent directory in the state right after the first `k` recorded
    /// calls (`k = 0`: the state the log starts from; `k = ops().len()`: now): the
    /// durable images and names of that moment plus the operations then pending, ready
    /// to be crashed. Its log holds those `k` calls; no lock is held, no rule set.
    ///
    /// Cost: replays `k` calls from the start of the log.
    ///
    /// # Panics
    ///
    /// If `k` is larger than the number of recorded calls.
    pub fn snapshot_at(&self, k: usize) -> CrashDirectory {
        let sim = self.sim();
        assert!(
            k <= sim.log.len(),
            "snapshot_at({k}) of a log of {} calls",
            sim.log.len()
        );
        let mut img = sim.base.clone();
        for (_, effects) in &sim.log[..k] {
            for e in effects {
                img.apply(e);
            }
        }
        let out = Sim {
            base: sim.base.clone(),
            cur: img,
            log: sim.log[..k].to_vec(),
            ..Sim::default()
        };
        CrashDirectory {
            sim: Arc::new(Mutex::new(out)),
        }
    }

    /// Every snapshot from `snapshot_at(0)` to `snapshot_at(ops().len())`, built
    /// incrementally (one replay in total, not one per snapshot). Snapshots made this
    /// way have an empty log starting at their own state.
    pub fn snapshots(&self) -> impl Iterator<Item = CrashDirectory> {
        let (mut img, log) = {
            let sim = self.sim();
            (sim.base.clone(), sim.log.clone())
        };
        let mut k = 0;
        std::iter::from_fn(move || {
            if k > log.len() {
                return None;
            }
            if k > 0 {
                for e in &log[k - 1].1 {
                    img.apply(e);
                }
            }
            k += 1;
            Some(CrashDirectory::from_image(img.clone()))
        })
    }

    /// Starts a new log at the current state (pending operations stay pending).
    pub fn reset_log(&self) {
        let mut sim = self.sim();
        sim.base = sim.cur.clone();
        sim.log.clear();
    }

    // ----- crashing -----

    /// How many pending file operations (writes and length changes no barrier covered
    /// yet, of files a crash can leave reachable) a crash decides: the length of
    /// [`pending`](Self::pending).
    pub fn pending_ops(&self) -> usize {
        self.sim().cur.pending_list().len()
    }

    /// How many pending name changes a crash decides: the length of
    /// [`pending_names`](Self::pending_names).
    pub fn pending_name_ops(&self) -> usize {
        self.sim().cur.names.len()
    }

    /// The pending file operations, oldest first: the order of
    /// [`CrashPlan::files`] and of the `files` argument of [`crash_with`](Self::crash_with).
    pub fn pending(&self) -> Vec<PendingOp> {
        let sim = self.sim();
        let img = &sim.cur;
        img.pending_list()
            .into_iter()
            .map(|(ino, i)| {
                let op = &img.inodes[&ino].pending[i];
                PendingOp {
                    path: img.name_of(ino),
                    kind: match &op.kind {
                        FileOpKind::Write { offset, data } => PendingKind::Write {
                            offset: *offset,
                            len: data.len() as u64,
                        },
                        FileOpKind::SetLen(len) => PendingKind::SetLen { len: *len },
                    },
                }
            })
            .collect()
    }

    /// The pending name changes, oldest first: the order of [`CrashPlan::names`].
    pub fn pending_names(&self) -> Vec<Operation> {
        self.sim()
            .cur
            .names
            .iter()
            .map(|n| n.op.describe())
            .collect()
    }

    /// The state after a power cut now, with explicit choices: `files[i]` for the `i`th
    /// [pending](Self::pending) file operation (missing: [`Choice::Keep`]), `names[j]`
    /// for the `j`th [pending name change](Self::pending_names) (missing:
    /// [`NameChoice::Apply`]). Returns a new, independent directory (see the
    /// [module docs](self)); this one is unchanged.
    ///
    /// # Panics
    ///
    /// If more choices are given than there are pending operations.
    pub fn crash_with(&self, files: &[Choice], names: &[NameChoice]) -> CrashDirectory {
        let img = self.sim().cur.crash(files, names);
        CrashDirectory::from_image(img)
    }

    /// [`crash_with`](Self::crash_with) the choices of `plan`.
    pub fn crash_with_plan(&self, plan: &CrashPlan) -> CrashDirectory {
        self.crash_with(&plan.files, &plan.names)
    }

    /// A random power cut now, deterministic per `seed`: [`random_plan`](Self::random_plan).
    pub fn crash(&self, seed: u64) -> CrashDirectory {
        self.crash_with_plan(&self.random_plan(seed))
    }

    /// The choices of [`crash(seed)`](Self::crash). The seed picks one of three
    /// strategies: every operation decided independently (kept 40%, dropped 20%, zeros
    /// 10%, torn at a random byte 10%, torn at a random sector with zeros or garbage
    /// 10%, random sectors 10%; each name change applied or reverted with even odds);
    /// an in-order cut (everything before a random operation landed, that one torn in a
    /// random way, nothing after it; name changes applied up to a random point); or an
    /// in-order cut after which each later operation still lands with even odds.
    pub fn random_plan(&self, seed: u64) -> CrashPlan {
        let pending = self.pending();
        let names = self.pending_name_ops();
        let mut rng = Rng(mix(seed ^ 0xC4A5_11D1_5EED_0001));
        let torn = |rng: &mut Rng, op: &PendingOp| -> Choice {
            let PendingKind::Write { len, .. } = op.kind else {
                return Choice::Drop;
            };
            let fill = if rng.below(2) == 0 {
                Fill::Zeros
            } else {
                Fill::Random(rng.next())
            };
            match rng.below(6) {
                0 => Choice::Drop,
                1 => Choice::Zeros,
                2 | 3 => Choice::TearAt(rng.below(len + 1)),
                4 => Choice::TearSector {
                    sector: rng.below(len / SECTOR + 2),
                    fill,
                },
                _ => Choice::Sectors {
                    seed: rng.next(),
                    fill,
                },
            }
        };
        let strategy = rng.below(3);
        let mut plan = CrashPlan::default();
        match strategy {
            0 => {
                for op in &pending {
                    let c = match rng.below(10) {
                        0..=3 => Choice::Keep,
                        4 | 5 => Choice::Drop,
                        _ => torn(&mut rng, op),
                    };
                    plan.files.push(c);
                }
                for _ in 0..names {
                    plan.names.push(if rng.below(2) == 0 {
                        NameChoice::Apply
                    } else {
                        NameChoice::Revert
                    });
                }
            }
            _ => {
                let cut = rng.below(pending.len() as u64 + 1) as usize;
                for (i, op) in pending.iter().enumerate() {
                    let c = match i.cmp(&cut) {
                        std::cmp::Ordering::Less => Choice::Keep,
                        std::cmp::Ordering::Equal => torn(&mut rng, op),
                        std::cmp::Ordering::Greater if strategy == 2 && rng.below(2) == 0 => {
                            Choice::Keep
                        }
                        std::cmp::Ordering::Greater => Choice::Drop,
                    };
                    plan.files.push(c);
                }
                let ncut = rng.below(names as u64 + 1) as usize;
                plan.names = (0..names)
                    .map(|j| {
                        if j < ncut {
                            NameChoice::Apply
                        } else {
                            NameChoice::Revert
                        }
                    })
                    .collect();
            }
        }
        plan
    }

    /// A bounded, systematic set of crash plans for the current pending operations.
    /// With `n` pending file operations and `m` pending name changes it holds at most
    /// `2 + 10·n + 2·m` plans:
    ///
    /// 1. everything landed; nothing landed (all dropped, all reverted);
    /// 2. for each file operation `i` and each choice of its [`PendingOp::menu`] (at
    ///    most 8): operations before `i` landed, `i` got that choice, later ones were
    ///    dropped; all name changes applied — a torn tail at every operation;
    /// 3. for each file operation `i`: only `i` dropped, or only `i` zeroed, everything
    ///    else landed — later writes landing while an earlier one did not;
    /// 4. for each name change `j`: only `j` reverted; and the changes before `j`
    ///    applied, `j` and later ones reverted; all file operations landed.
    ///
    /// Different plans can give equal states (for example, choices for a file whose
    /// creation is reverted); callers that count states may want to deduplicate.
    pub fn crash_plans(&self) -> Vec<CrashPlan> {
        let pending = self.pending();
        let n = pending.len();
        let m = self.pending_name_ops();
        let mut plans = vec![
            CrashPlan {
                files: vec![Choice::Keep; n],
                names: vec![NameChoice::Apply; m],
            },
            CrashPlan {
                files: vec![Choice::Drop; n],
                names: vec![NameChoice::Revert; m],
            },
        ];
        for (i, op) in pending.iter().enumerate() {
            for c in op.menu() {
                let mut files = vec![Choice::Keep; i];
                files.push(c);
                files.resize(n, Choice::Drop);
                plans.push(CrashPlan {
                    files,
                    names: Vec::new(),
                });
            }
        }
        for (i, op) in pending.iter().enumerate() {
            let hole: &[Choice] = match op.kind {
                PendingKind::Write { .. } => &[Choice::Drop, Choice::Zeros],
                PendingKind::SetLen { .. } => &[Choice::Drop],
            };
            for &c in hole {
                let mut files = vec![Choice::Keep; n];
                files[i] = c;
                plans.push(CrashPlan {
                    files,
                    names: Vec::new(),
                });
            }
        }
        for j in 0..m {
            let mut names = vec![NameChoice::Apply; m];
            names[j] = NameChoice::Revert;
            plans.push(CrashPlan {
                files: Vec::new(),
                names,
            });
            if j > 0 {
                let mut names = vec![NameChoice::Apply; j];
                names.resize(m, NameChoice::Revert);
                plans.push(CrashPlan {
                    files: Vec::new(),
                    names,
                });
            }
        }
        plans
    }

    // ----- failures -----

    /// Makes the `n`th call (1-based) of `op` from now on fail with `kind`, once
    /// (replacing an earlier rule for `op`). Counted like
    /// [`FailingDirectory`](crate::FailingDirectory): [`Op::Write`] (a writer's
    /// `write`, [`FileHandle::write_at`], [`Directory::atomic_write`]), [`Op::Sync`]
    /// ([`FileHandle::sync_data`], [`Directory::sync_file`]), [`Op::SyncDir`],
    /// [`Op::Create`] ([`Directory::create_file`], [`Directory::append_file`],
    /// [`Directory::open_handle`] with `create`), [`Op::CreateDir`], [`Op::Delete`],
    /// [`Op::Rename`] (also the rename of [`Directory::atomic_write`]), [`Op::Read`],
    /// [`Op::Truncate`] ([`FileHandle::set_len`]). A failing call changes nothing, except
    /// for a file barrier in [fsyncgate mode](Self::set_fsyncgate).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn fail_nth(&self, op: Op, n: u64, kind: FailKind) {
        self.sim().faults.fail_nth(op, n, kind);
    }

    /// `fail_nth(op, 1, kind)`.
    pub fn fail_next(&self, op: Op, kind: FailKind) {
        self.fail_nth(op, 1, kind);
    }

    /// Makes every call of `op` from now on fail with `kind`, until
    /// [`clear_failures`](Self::clear_failures).
    pub fn fail_all(&self, op: Op, kind: FailKind) {
        self.sim().faults.fail_all(op, kind);
    }

    /// Removes every failure rule (counts are kept; fsyncgate mode too).
    pub fn clear_failures(&self) {
        self.sim().faults.clear();
    }

    /// How many calls of `op` were made, failed ones included.
    pub fn counts(&self, op: Op) -> u64 {
        self.sim().faults.count(op)
    }

    /// fsyncgate mode (off by default): a file barrier that fails with an injected
    /// error also drops that file's pending writes and length changes. Reads still see
    /// them, but no later barrier makes them durable, and the next barrier of the file
    /// returns `Ok` — the Linux behaviour that makes retrying a failed `fsync` unsafe.
    pub fn set_fsyncgate(&self, on: bool) {
        self.sim().fsyncgate = on;
    }

    // ----- inspection -----

    /// The live content of the file at `path` (what reads see), `None` if it does not
    /// exist.
    pub fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let p = normalize(path, PathKind::File).ok()?;
        let sim = self.sim();
        let ino = sim.cur.live.files.get(&p)?;
        Some(
            sim.cur
                .inodes
                .get(ino)
                .map_or_else(Vec::new, |n| n.live.clone()),
        )
    }

    /// What the file at `path` would hold after a crash that loses everything pending:
    /// `None` if its name is not durable, else its durable image.
    pub fn read_durable(&self, path: &str) -> Option<Vec<u8>> {
        let p = normalize(path, PathKind::File).ok()?;
        let sim = self.sim();
        let mut ns = sim.cur.durable.clone();
        ns.prune();
        let ino = ns.files.get(&p)?;
        Some(
            sim.cur
                .inodes
                .get(ino)
                .map_or_else(Vec::new, |n| n.durable.clone()),
        )
    }

    /// Every live file and its content, by path.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let sim = self.sim();
        sim.cur
            .live
            .files
            .iter()
            .map(|(p, ino)| {
                let bytes = sim
                    .cur
                    .inodes
                    .get(ino)
                    .map_or_else(Vec::new, |n| n.live.clone());
                (p.clone(), bytes)
            })
            .collect()
    }

    /// Media damage: XORs the byte at `offset` of the file at `path` with `mask`, in
    /// its live and durable images, as rot on the disk would — no program call made it,
    /// so it is not logged, and the log restarts at the damaged state
    /// ([`reset_log`](Self::reset_log)). Returns whether the byte exists.
    pub fn rot(&self, path: &str, offset: u64, mask: u8) -> bool {
        let Ok(p) = normalize(path, PathKind::File) else {
            return false;
        };
        let mut sim = self.sim();
        let Some(&ino) = sim.cur.live.files.get(&p) else {
            return false;
        };
        let node = sim.cur.inode(ino);
        let o = offset as usize;
        if o >= node.live.len() {
            return false;
        }
        node.live[o] ^= mask;
        if let Some(b) = node.durable.get_mut(o) {
            *b ^= mask;
        }
        for op in &mut node.pending {
            if let FileOpKind::Write { offset: w, data } = &mut op.kind {
                if (*w..*w + data.len() as u64).contains(&offset) {
                    let mut v = data.to_vec();
                    v[(offset - *w) as usize] ^= mask;
                    *data = Arc::from(v);
                }
            }
        }
        sim.base = sim.cur.clone();
        sim.log.clear();
        true
    }
}

impl Directory for CrashDirectory {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        let p = normalize(path, PathKind::File)?;
        let mut sim = self.sim();
        sim.gate(Op::Create, || Operation::Create { path: p.clone() })?;
        let ino = match sim.cur.live.files.get(&p) {
            Some(&ino) => {
                sim.record(
                    Operation::SetLen {
                        path: p.clone(),
                        len: 0,
                    },
                    vec![Effect::SetLen { ino, len: 0 }],
                );
                ino
            }
            None => sim.create(&p)?,
        };
        Ok(Box::new(CrashWriter {
            sim: self.sim.clone(),
            ino,
            path: p,
            pos: Some(0),
        }))
    }

    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        let p = normalize(path, PathKind::File)?;
        let ino = self.sim().file(&p)?;
        Ok(Box::new(CrashReader {
            sim: self.sim.clone(),
            ino,
            pos: 0,
        }))
    }

    fn exists(&self, path: &str) -> bool {
        let Ok(p) = normalize(path, PathKind::Dir) else {
            return false;
        };
        let sim = self.sim();
        sim.cur.live.files.contains_key(&p) || sim.cur.live.is_dir(&p)
    }

    fn delete(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::File)?;
        let mut sim = self.sim();
        sim.gate(Op::Delete, || Operation::Delete { path: p.clone() })?;
        if let Some(&ino) = sim.cur.live.files.get(&p) {
            sim.record(
                Operation::Delete { path: p.clone() },
                vec![Effect::Unlink { path: p, ino }],
            );
            return Ok(());
        }
        if !sim.cur.live.dirs.contains(&p) {
            return Err(not_found(&p));
        }
        if !sim.cur.live.children(&p).is_empty() {
            return Err(io_err(
                io::ErrorKind::DirectoryNotEmpty,
                &p,
                "directory not empty",
            ));
        }
        sim.record(
            Operation::Delete { path: p.clone() },
            vec![Effect::Rmdir { path: p }],
        );
        Ok(())
    }

    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        let from = normalize(from, PathKind::File)?;
        let to = normalize(to, PathKind::File)?;
        let mut sim = self.sim();
        sim.gate(Op::Rename, || Operation::Rename {
            from: from.clone(),
            to: to.clone(),
        })?;
        let Some(&ino) = sim.cur.live.files.get(&from) else {
            if sim.cur.live.is_dir(&from) {
                return Err(PersistenceError::NotSupported(format!(
                    "atomic_rename(`{from}`): CrashDirectory cannot rename directories"
                )));
            }
            return Err(not_found(&from));
        };
        if from == to {
            return Ok(());
        }
        sim.check_file_slot(&to)?;
        sim.record_mkdirs(&to, false);
        let effects = vec![Effect::Rename {
            from: from.clone(),
            to: to.clone(),
            ino,
        }];
        sim.record(Operation::Rename { from, to }, effects);
        Ok(())
    }

    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::Dir)?;
        let mut sim = self.sim();
        sim.gate(Op::CreateDir, || Operation::CreateDir { path: p.clone() })?;
        if p.is_empty() {
            return Ok(());
        }
        let mut d = p.as_str();
        loop {
            if sim.cur.live.files.contains_key(d) {
                return Err(io_err(
                    io::ErrorKind::AlreadyExists,
                    &p,
                    &format!("`{d}` is a file"),
                ));
            }
            d = parent_dir(d);
            if d.is_empty() {
                break;
            }
        }
        sim.record_mkdirs(&p, true);
        Ok(())
    }

    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        let p = normalize(path, PathKind::Dir)?;
        let sim = self.sim();
        if sim.cur.live.files.contains_key(&p) {
            return Err(io_err(io::ErrorKind::NotADirectory, &p, "is a file"));
        }
        if !sim.cur.live.is_dir(&p) {
            return Err(not_found(&p));
        }
        Ok(sim.cur.live.children(&p).into_iter().collect())
    }

    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        let p = normalize(path, PathKind::File)?;
        let mut sim = self.sim();
        sim.gate(Op::Create, || Operation::Create { path: p.clone() })?;
        let ino = match sim.cur.live.files.get(&p) {
            Some(&ino) => ino,
            None => sim.create(&p)?,
        };
        Ok(Box::new(CrashWriter {
            sim: self.sim.clone(),
            ino,
            path: p,
            pos: None,
        }))
    }

    /// One logged call: a new file holding `data` (a pending write) and a pending name
    /// change replacing `path`. Not synced: after a crash `path` holds the old content,
    /// or the new file with any of the outcomes of its write (even empty).
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::File)?;
        let mut sim = self.sim();
        let len = data.len() as u64;
        sim.gate(Op::Write, || Operation::AtomicWrite {
            path: p.clone(),
            len,
        })?;
        sim.gate(Op::Rename, || Operation::AtomicWrite {
            path: p.clone(),
            len,
        })?;
        if !sim.cur.live.files.contains_key(&p) {
            sim.check_file_slot(&p)?;
        }
        sim.record_mkdirs(&p, false);
        let ino = sim.cur.next_ino;
        let effects = vec![
            Effect::Link {
                path: p.clone(),
                ino,
                fresh: true,
            },
            Effect::Write {
                ino,
                offset: 0,
                data: Arc::from(data),
            },
        ];
        sim.record(Operation::AtomicWrite { path: p, len }, effects);
        Ok(())
    }

    fn file_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }

    fn open_handle(&self, path: &str, create: bool) -> PersistenceResult<Box<dyn FileHandle>> {
        let p = normalize(path, PathKind::File)?;
        let mut sim = self.sim();
        if create {
            sim.gate(Op::Create, || Operation::Create { path: p.clone() })?;
        }
        let ino = match sim.cur.live.files.get(&p) {
            Some(&ino) => ino,
            None if create => sim.create(&p)?,
            None => return Err(sim.file(&p).err().unwrap_or_else(|| not_found(&p))),
        };
        Ok(Box::new(CrashHandle {
            sim: self.sim.clone(),
            ino,
            path: p,
        }))
    }

    fn sync_file(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::File)?;
        let mut sim = self.sim();
        let ino = sim.file(&p)?;
        sim.sync_ino(ino, &p)
    }

    fn sync_dir(&self, path: &str) -> PersistenceResult<()> {
        let p = normalize(path, PathKind::Dir)?;
        let mut sim = self.sim();
        sim.gate(Op::SyncDir, || Operation::SyncDir { path: p.clone() })?;
        if sim.cur.live.files.contains_key(&p) {
            return Err(io_err(io::ErrorKind::NotADirectory, &p, "is a file"));
        }
        if !sim.cur.live.is_dir(&p) {
            return Err(not_found(&p));
        }
        sim.record(
            Operation::SyncDir { path: p.clone() },
            vec![Effect::SyncDir { dir: p }],
        );
        Ok(())
    }

    /// An in-process lock shared by the clones of this directory. Creates the empty
    /// lock file `name` if it is missing (a logged [`Operation::Create`], never synced)
    /// and never deletes it. Held elsewhere: [`PersistenceError::Locked`].
    fn lock_exclusive(&self, name: &str) -> PersistenceResult<Option<DirLock>> {
        let p = normalize(name, PathKind::File)?;
        let mut sim = self.sim();
        if !sim.locks.contains(&p) && !sim.cur.live.files.contains_key(&p) {
            sim.create(&p)?;
        }
        NameLock::take(&self.sim, &mut sim, held_locks, p).map(Some)
    }
}

struct CrashWriter {
    sim: Arc<Mutex<Sim>>,
    ino: u64,
    path: String,
    /// Cursor, or `None` in append mode.
    pos: Option<u64>,
}

impl Write for CrashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sim = lock(&self.sim);
        let at = match self.pos {
            Some(p) => p,
            None => sim.live_len(self.ino),
        };
        sim.write(self.ino, &self.path, at, buf)
            .map_err(|e| match e {
                PersistenceError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            })?;
        if let Some(p) = &mut self.pos {
            *p += buf.len() as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct CrashReader {
    sim: Arc<Mutex<Sim>>,
    ino: u64,
    pos: usize,
}

impl Read for CrashReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut sim = lock(&self.sim);
        sim.hit(Op::Read)?;
        let data = sim
            .cur
            .inodes
            .get(&self.ino)
            .map_or(&[][..], |n| &n.live[..]);
        let start = self.pos.min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        self.pos += n;
        Ok(n)
    }
}

struct CrashHandle {
    sim: Arc<Mutex<Sim>>,
    ino: u64,
    path: String,
}

impl FileHandle for CrashHandle {
    fn len(&mut self) -> PersistenceResult<u64> {
        Ok(lock(&self.sim).live_len(self.ino))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> PersistenceResult<usize> {
        let mut sim = lock(&self.sim);
        sim.hit(Op::Read)?;
        let data = sim
            .cur
            .inodes
            .get(&self.ino)
            .map_or(&[][..], |n| &n.live[..]);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> PersistenceResult<()> {
        lock(&self.sim).write(self.ino, &self.path, offset, data)
    }

    fn sync_data(&mut self) -> PersistenceResult<()> {
        lock(&self.sim).sync_ino(self.ino, &self.path)
    }

    fn set_len(&mut self, len: u64) -> PersistenceResult<()> {
        to_usize(len)?;
        let mut sim = lock(&self.sim);
        let path = self.path.clone();
        sim.gate(Op::Truncate, || Operation::SetLen {
            path: path.clone(),
            len,
        })?;
        sim.record(
            Operation::SetLen { path, len },
            vec![Effect::SetLen { ino: self.ino, len }],
        );
        Ok(())
    }
}

fn held_locks(sim: &mut Sim) -> &mut BTreeSet<String> {
    &mut sim.locks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_strictly_inside() {
        assert_eq!(boundaries(0, 512).collect::<Vec<_>>(), Vec::<u64>::new());
        assert_eq!(boundaries(0, 513).collect::<Vec<_>>(), vec![512]);
        assert_eq!(boundaries(500, 600).collect::<Vec<_>>(), vec![512, 1024]);
        assert_eq!(boundaries(512, 512).collect::<Vec<_>>(), Vec::<u64>::new());
    }

    #[test]
    fn tear_sector_cuts_at_the_boundary() {
        let op = FileOpKind::Write {
            offset: 500,
            data: Arc::from(vec![7u8; 600]),
        };
        let mut buf = Vec::new();
        op.apply(
            &mut buf,
            Choice::TearSector {
                sector: 1,
                fill: Fill::Zeros,
            },
        );
        assert_eq!(buf.len(), 1100);
        assert!(buf[..500].iter().all(|&b| b == 0));
        assert!(buf[500..512].iter().all(|&b| b == 7));
        assert!(buf[512..].iter().all(|&b| b == 0));
        let mut buf = Vec::new();
        op.apply(
            &mut buf,
            Choice::TearSector {
                sector: 3,
                fill: Fill::Zeros,
            },
        );
        assert!(buf[500..].iter().all(|&b| b == 7));
    }
}
