//! `durability-std`: the std backends of `durability`.
//!
//! - [`Directory`]: a path-based, object-safe view of a tree of files, with explicit
//!   stable-storage barriers ([`Directory::sync_file`], [`Directory::sync_dir`]) and
//!   positional file handles ([`FileHandle`]). Each method documents what is durable
//!   when it returns and what a power cut during it may leave.
//! - [`DurableDirectory`]: atomic, durable replace and rename, for every directory.
//! - [`Directory::lock_exclusive`] and [`DirLock`]: an advisory single-writer lock
//!   that a second writer, in this process or another, finds taken
//!   ([`PersistenceError::Locked`]) instead of corrupting the data.
//! - Backends: [`FsDirectory`] (the OS file system, with `fsync`) and
//!   [`MemoryDirectory`] (volatile, for tests and tools), plus [`FailingDirectory`],
//!   a wrapper that injects I/O failures.
//! - [`DirStorage`]: the adapter that runs the record log and WAL of
//!   `durability-core` over any directory, one file per segment.
//! - [`PersistenceError`]: the error of all of the above, which core errors flatten
//!   into with `?`.
//!
//! ```
//! use std::sync::Arc;
//! use durability_core::wal::{WalConfig, WalReader, WalWriter};
//! use durability_core::ReadMode;
//! use durability_std::{DirStorage, Directory, MemoryDirectory, PersistenceResult};
//!
//! # fn main() -> PersistenceResult<()> {
//! let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
//! let mut w = WalWriter::new(DirStorage::segments(dir.clone(), "wal"), vec![0u8; 4096], WalConfig::new(7));
//! w.append(b"hello")?;
//! w.sync()?;
//! let mut seen = Vec::new();
//! WalReader::new(DirStorage::segments(dir, "wal"), vec![0u8; 4096])
//!     .replay(ReadMode::Strict, |id, p| {
//!         seen.push((id, p.to_vec()));
//!         Ok(())
//!     })?;
//! assert_eq!(seen, vec![(1, b"hello".to_vec())]);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapter;
pub mod crash;
pub mod directory;
pub mod error;
pub mod failing;
pub mod fs;
pub mod memory;

pub use adapter::DirStorage;
pub use crash::CrashDirectory;
pub use directory::{
    parent_dir, sync_file, sync_parent_dir, DirLock, Directory, DurableDirectory, FileHandle,
};
pub use error::{PersistenceError, PersistenceResult};
pub use failing::FailingDirectory;
pub use fs::FsDirectory;
pub use memory::MemoryDirectory;
