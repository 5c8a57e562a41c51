//! An in-memory [`Storage`]: segments are `Vec<u8>`s. Volatile: a barrier is a no-op
//! because nothing here survives the process anyway. Used by tests and by host tools.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::{write_is_aligned, ErrorType, Storage};

/// Errors of [`MemStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// No such segment.
    NotFound,
    /// A write broke the storage contract (offset not at the end, or misaligned).
    BadWrite,
}

impl StorageError for MemError {
    fn kind(&self) -> StorageErrorKind {
        match self {
            MemError::NotFound => StorageErrorKind::NotFound,
            MemError::BadWrite => StorageErrorKind::Other,
        }
    }
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

/// Segments held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    /// The segments, by number. Public so tests can damage bytes directly.
    pub segments: BTreeMap<u64, Vec<u8>>,
    write_size: usize,
    short_frames: bool,
}

impl MemStorage {
    /// Empty storage with write size 1.
    pub fn new() -> Self {
        Self::with_write_size(1)
    }

    /// Empty storage with the given write size (a power of two).
    pub fn with_write_size(write_size: usize) -> Self {
        MemStorage {
            segments: BTreeMap::new(),
            write_size,
            short_frames: false,
        }
    }

    /// Makes logs created from now on use the short frame header
    /// ([`Storage::short_frames`]), as flash does: for testing that form on a medium
    /// without flash's other rules.
    pub fn with_short_frames(mut self, short: bool) -> Self {
        self.short_frames = short;
        self
    }

    fn seg(&mut self, n: u64) -> Result<&mut Vec<u8>, MemError> {
        self.segments.get_mut(&n).ok_or(MemError::NotFound)
    }
}

impl ErrorType for MemStorage {
    type Error = MemError;
}

impl Storage for MemStorage {
    fn write_size(&self) -> usize {
        self.write_size
    }
    fn short_frames(&self) -> bool {
        self.short_frames
    }
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), MemError> {
        self.segments.keys().for_each(|&n| visit(n));
        Ok(())
    }
    fn create(&mut self, segment: u64) -> Result<(), MemError> {
        self.segments.insert(segment, Vec::new());
        Ok(())
    }
    fn len(&mut self, segment: u64) -> Result<u64, MemError> {
        Ok(self.seg(segment)?.len() as u64)
    }
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        let data = self.seg(segment)?;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), MemError> {
        let ws = self.write_size;
        let seg = self.seg(segment)?;
        if !write_is_aligned(ws, offset, data.len()) || offset as usize > seg.len() {
            return Err(MemError::BadWrite);
        }
        seg.truncate(offset as usize);
        seg.extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self, segment: u64) -> Result<(), MemError> {
        self.seg(segment).map(|_| ())
    }
    fn truncate(&mut self, segment: u64, len: u64) -> Result<(), MemError> {
        self.seg(segment)?.truncate(len as usize);
        Ok(())
    }
    fn remove(&mut self, segment: u64) -> Result<(), MemError> {
        self.segments
            .remove(&segment)
            .map(|_| ())
            .ok_or(MemError::NotFound)
    }
}
