//! `durability-core`: the medium-independent heart of `durability`.
//!
//! Layers, one file each, bottom up:
//!
//! - [`checksum`]: CRC-32C behind one small interface.
//! - [`frame`]: the byte formats (segment header, frame, sync marker).
//! - [`storage`]: the [`Storage`] trait every backend implements.
//! - [`segment`]: reading one segment's frames and judging its end; appending to it.
//! - [`recordlog`]: a single-segment log of records.
//! - [`wal`]: the multi-segment write-ahead log.
//! - [`checkpoint`]: the checkpoint format and a store where the newest valid one wins.
//! - [`lifecycle`]: publishing a checkpoint and truncating the WAL; one-pass recovery.
//!
//! No allocator is needed: every reader and writer works over a caller-provided
//! [`Buffer`]. The `alloc` feature adds `Vec` buffers and an in-memory
//! storage ([`mem::MemStorage`]).
#![cfg_attr(not(feature = "hw-crc"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod buffer;
pub mod checkpoint;
pub mod checksum;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod frame;
pub mod lifecycle;
#[cfg(feature = "alloc")]
pub mod mem;
pub mod recordlog;
pub mod segment;
pub mod storage;
pub mod wal;

pub use buffer::Buffer;
pub use error::{Corruption, Error, ErrorKind, Location, StorageError, StorageErrorKind};
pub use storage::{ErrorType, Storage};

/// How readers treat a torn tail of the final segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// A torn tail is an error ([`Error::TornTail`]).
    Strict,
    /// A torn tail ends the log; everything before it is returned.
    BestEffort,
}
