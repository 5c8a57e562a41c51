//! A simulated NOR flash over a caller-provided byte slice, for tests and host tools.
//!
//! It enforces what real NOR flash enforces, and counts what it does:
//!
//! - erase sets a whole aligned range of erase units to `0xFF`;
//! - program ANDs the new bits into the old ones, and refuses (before changing
//!   anything) to program a `WRITE`-byte word that is not fully erased — every word is
//!   written at most once between erases;
//! - offsets and lengths are checked for bounds and for alignment to `READ`, `WRITE`
//!   and `ERASE` respectively.
//!
//! No allocator: the backing store is a `&mut [u8]` the caller owns; re-wrapping the
//! same slice in a new [`SimFlash`] is a "reboot" that keeps the flash contents.
//! Power cuts are not simulated yet.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of [`SimFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimError {
    /// An offset or length is not a multiple of the operation's granularity.
    NotAligned,
    /// The range runs past the end of the backing store.
    OutOfBounds,
    /// A program hit a word that is not fully erased (flash address of the word).
    AlreadyProgrammed {
        /// Address of the first such word.
        offset: u32,
    },
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            SimError::AlreadyProgrammed { .. } => NorFlashErrorKind::Other,
        }
    }
}

/// Operation counters of a [`SimFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Successful `read` calls.
    pub reads: u64,
    /// Bytes returned by `read`.
    pub bytes_read: u64,
    /// Successful `write` (program) calls.
    pub writes: u64,
    /// Bytes programmed.
    pub bytes_programmed: u64,
    /// Erase units erased (an erase of a range counts each unit).
    pub erases: u64,
}

/// A NOR flash simulated over `&mut [u8]`, with `READ`, `WRITE` and `ERASE` byte
/// granularities (all non-zero; any other combination is accepted so that geometry
/// checks of flash users can be tested).
///
/// The capacity is the slice length.
#[derive(Debug)]
pub struct SimFlash<'a, const READ: usize, const WRITE: usize, const ERASE: usize> {
    mem: &'a mut [u8],
    stats: SimStats,
}

impl<'a, const READ: usize, const WRITE: usize, const ERASE: usize>
    SimFlash<'a, READ, WRITE, ERASE>
{
    /// Wraps `mem` as it is (existing contents are the flash contents).
    pub fn new(mem: &'a mut [u8]) -> Self {
        const {
            assert!(
                READ > 0 && WRITE > 0 && ERASE > 0,
                "SimFlash granularities must be non-zero"
            )
        };
        SimFlash {
            mem,
            stats: SimStats::default(),
        }
    }

    /// Wraps `mem` after filling it with `0xFF` (a factory-erased chip).
    pub fn erased(mem: &'a mut [u8]) -> Self {
        mem.fill(0xFF);
        Self::new(mem)
    }

    /// The counters since creation or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats = SimStats::default();
    }

    /// The raw contents.
    pub fn memory(&self) -> &[u8] {
        self.mem
    }

    /// The raw contents, writable without any flash rule: for tests that damage bytes.
    pub fn memory_mut(&mut self) -> &mut [u8] {
        self.mem
    }

    fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, SimError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(SimError::OutOfBounds)?;
        if end > self.mem.len() {
            return Err(SimError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(SimError::NotAligned);
        }
        Ok(start..end)
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ErrorType
    for SimFlash<'_, READ, WRITE, ERASE>
{
    type Error = SimError;
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ReadNorFlash
    for SimFlash<'_, READ, WRITE, ERASE>
{
    const READ_SIZE: usize = READ;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        let r = self.range(offset, bytes.len(), READ)?;
        bytes.copy_from_slice(&self.mem[r]);
        self.stats.reads += 1;
        self.stats.bytes_read += bytes.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> NorFlash
    for SimFlash<'_, READ, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        if from > to {
            return Err(SimError::OutOfBounds);
        }
        let r = self.range(from, (to - from) as usize, ERASE)?;
        let units = (r.len() / ERASE) as u64;
        self.mem[r].fill(0xFF);
        self.stats.erases += units;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let r = self.range(offset, bytes.len(), WRITE)?;
        let target = &mut self.mem[r];
        if let Some(word) = target
            .chunks(WRITE)
            .position(|w| w.iter().any(|&b| b != 0xFF))
        {
            return Err(SimError::AlreadyProgrammed {
                offset: offset + (word * WRITE) as u32,
            });
        }
        for (t, b) in target.iter_mut().zip(bytes) {
            *t &= *b;
        }
        self.stats.writes += 1;
        self.stats.bytes_programmed += bytes.len() as u64;
        Ok(())
    }
}
