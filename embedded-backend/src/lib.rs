//! NOR-flash backend for `durability`: a [`Storage`] over an
//! [`embedded_storage::nor_flash::NorFlash`] partition.
//!
//! # Layout
//!
//! A partition is the byte range `[start, start + units * ERASE_SIZE)` of the flash,
//! cut into erase units. **Each segment occupies exactly one erase unit.** There is no
//! other metadata on the medium: a unit belongs to segment `n` if and only if its first
//! bytes are a core header naming `n` (a WAL or record-log segment header, or a
//! checkpoint header: [`identify_segment`]); every other unit is free. The header is the
//! core's own first write to every segment, so the map costs no extra byte of flash and
//! no extra program.
//!
//! # Mount
//!
//! [`FlashStorage::new`] reads the header of every unit, **one read of
//! `align_up(64, READ_SIZE)` bytes per unit and nothing else**, and builds the segment →
//! unit map in RAM (12 bytes a unit, no allocator). After mount, appends cost no
//! reads: only the program itself. A unit whose header does not parse (never written,
//! erased, half-erased, or a header torn by a power cut during its program) is free,
//! and it is always erased again before it is reused.
//!
//! [`FlashStorage::new_in`] mounts straight into a caller's `Option` (a field, a
//! `static` cell): firmware that keeps the storage in place that way does not carry
//! by-value copies of the map (12 bytes a unit) on its stack during the mount.
//!
//! Two units claiming the same segment number cannot be produced by this backend, even
//! across power cuts (`create` of a mapped segment reuses its unit; a free unit holds no
//! valid header). So a duplicate means outside interference (an image flashed over the
//! partition, a moved partition); mount refuses with
//! [`FlashError::DuplicateSegment`] naming the lowest such pair, and erases nothing:
//! picking either copy, or freeing one, could destroy the data the log needs. Likewise a
//! valid header of an unknown format version fails the mount
//! ([`FlashError::UnsupportedVersion`]) instead of counting the unit as free.
//! [`FlashStorage::format`] erases the whole partition as the explicit way out.
//!
//! # Units and wear
//!
//! `create` takes the first free unit after the one most recently used, in ring order
//! (at mount: after the unit of the highest segment number), so erases rotate over the
//! partition as the log advances and old segments are removed.
//!
//! # Geometry
//!
//! The word size is `max(READ_SIZE, WRITE_SIZE)`; both must be powers of two from 1 to
//! 32 and the word must divide `ERASE_SIZE`, which must hold at least a segment header
//! and one empty frame. [`FlashStorage::new`] checks this at
//! compile time (post-monomorphization `const` assertion); [`FlashStorage::try_new`]
//! returns [`FlashError::BadGeometry`] instead. The partition must end within the
//! 32-bit address space, and an erase unit be smaller than `u32::MAX - 1` bytes (the
//! map keeps a write end and two markers in a `u32`).
//!
//! The segment limit announced to the core
//! ([`max_segment_len`](durability_core::Storage::max_segment_len)) and the readable
//! extent ([`len`](durability_core::Storage::len)) are both the whole unit (the core
//! drops an optional sync marker rather than cross the limit). Units of up to 16 KiB
//! ask for the core's short frame header (6 bytes instead of 8: a 50-byte entry on
//! 4-byte words programs 56 bytes); the largest entry is therefore
//! `ERASE_SIZE - align_up(48, word) - 6` there, and `- 8` in larger units.
//!
//! # Ownership of the flash
//!
//! The storage owns `F`. Since `NorFlash` is implemented for `&mut T`, pass `&mut flash`
//! to keep the driver (a failed mount then does not lose it).
//!
//! # Reclaiming space
//!
//! A full partition is [`FlashError::NoSpace`]. Units come back when
//! `lifecycle::publish` writes a checkpoint (to a second `FlashStorage` partition,
//! through a `CheckpointStore`) and truncates the WAL behind it, or, for plain logging,
//! in ring mode (feature `ring`, `WalWriter::set_overwrite_oldest`), where the oldest unit is erased
//! and reused when no unit is free. Power cuts during any erase: see the decision table
//! in `docs/design.md` section 12.
//!
//! # Features
//!
//! - `async`: `asynch::BlockOn` runs this backend over an `embedded-storage-async`
//!   driver (each flash operation is driven to completion inside the call: same bytes,
//!   same logic, see its limits).
//! - `defmt`: `defmt::Format` for the error types here and in the core.
//! - `ring`: ring-buffer logging (`WalWriter::set_overwrite_oldest`); without it the
//!   ring paths are compiled out (680 B of `.text` in the firmware probe).
//!
//! [`Storage`]: durability_core::Storage
//! [`SegmentHeader`]: durability_core::frame::SegmentHeader
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "async")]
pub mod asynch;
mod error;
pub mod sim;

#[cfg(feature = "async")]
pub use asynch::BlockOn;
pub use error::{FlashError, GeometryError};

use durability_core::frame;
use durability_core::storage::{
    identify_segment, write_is_aligned, ErrorType, SegmentIdentity, Storage, IDENTIFY_LEN,
};
use embedded_storage::nor_flash::NorFlash;

/// Largest word size (and frame alignment) the core supports.
const MAX_WORD: usize = frame::MAX_ALIGN;

/// Bytes read per unit at mount: the longest core header rounded up to the largest
/// read size.
const HEADER_READ_MAX: usize = align_up(IDENTIFY_LEN, MAX_WORD);

const fn align_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

/// Checks a flash geometry; returns the word size.
///
/// `const` so that [`FlashStorage::new`] can reject a bad geometry at compile time.
pub const fn check_geometry(
    read_size: usize,
    write_size: usize,
    erase_size: usize,
) -> Result<usize, GeometryError> {
    if !read_size.is_power_of_two() || read_size > MAX_WORD {
        return Err(GeometryError::ReadSize);
    }
    if !write_size.is_power_of_two() || write_size > MAX_WORD {
        return Err(GeometryError::WriteSize);
    }
    let word = if read_size > write_size {
        read_size
    } else {
        write_size
    };
    if !erase_size.is_multiple_of(word) {
        return Err(GeometryError::EraseNotWordMultiple);
    }
    if erase_size < align_up(frame::header::LEN, word) + align_up(FRAME_HEADER_LEN, word) {
        return Err(GeometryError::EraseTooSmall);
    }
    Ok(word)
}

const FRAME_HEADER_LEN: usize = frame::frame_header::HEADER_LEN;

/// Largest erase unit whose segments use the short frame header: no entry in it can
/// exceed the short form's limit.
const SHORT_FRAMES_MAX_UNIT: usize = 16 * 1024;
const _: () = assert!(
    SHORT_FRAMES_MAX_UNIT - frame::header::LEN - frame::frame_header::SHORT_HEADER_LEN
        <= frame::SHORT_MAX_ENTRY_LEN as usize
);

/// Unit state: no segment. Zero, so an empty map is zero-filled in place.
const FREE: u32 = 0;
/// Unit state: a segment whose write end is not known (found at mount, or after a
/// failed program); writes to it are refused.
const END_UNKNOWN: u32 = 1;

/// Unit state: a segment whose next write goes to `end`. `!end`, which is at least 2
/// because the partition check keeps `ERASE_SIZE` (and so `end`) below `u32::MAX - 1`.
const fn end_state(end: u32) -> u32 {
    !end
}

/// A [`Storage`] over a NOR-flash partition, one segment per erase unit, for at most
/// `N` units. See the [crate docs](crate) for layout, mount and wear.
///
/// Geometry as seen by the core: [`write_size`](Storage::write_size) is the word size,
/// [`unwritten_byte`](Storage::unwritten_byte) is `0xFF`, [`len`](Storage::len) is
/// `ERASE_SIZE` (the end of the data is found by reading),
/// [`max_segment_len`](Storage::max_segment_len) is `ERASE_SIZE` too, and
/// [`resume_in_place`](Storage::resume_in_place) is `false` (a word reading `0xFF` may be
/// half-programmed, so the core starts a new segment after a reopen).
///
/// RAM: `N` slots of 12 bytes, plus the driver. Every write must start at the segment's
/// write end as tracked in RAM (the core's contract); writes to a segment found at
/// mount are refused ([`FlashError::NotAtEnd`]), so no word is ever programmed twice
/// by this backend even if its caller errs.
#[derive(Debug)]
pub struct FlashStorage<F, const N: usize> {
    flash: F,
    start: u32,
    /// Units in the partition, at most `N` and `u16::MAX`.
    units: u16,
    /// Unit most recently handed out; the next `create` searches after it.
    cursor: u16,
    /// Per unit: [`FREE`], [`END_UNKNOWN`] or [`end_state`] of the next write's offset.
    /// Two plain arrays, not an array of structs: they are zero-filled in place, and
    /// 12 bytes a unit without padding.
    state: [u32; N],
    /// Per unit: the segment it holds (0 when free).
    segment: [u64; N],
}

type Res<T, F> = Result<T, FlashError<<F as embedded_storage::nor_flash::ErrorType>::Error>>;

impl<F: NorFlash, const N: usize> FlashStorage<F, N> {
    /// The geometry check for `F`: the word size, or why `F` cannot be used.
    pub const GEOMETRY: Result<usize, GeometryError> =
        check_geometry(F::READ_SIZE, F::WRITE_SIZE, F::ERASE_SIZE);

    /// Evaluated (post-monomorphization) where `new` and `new_in` name it: a compile
    /// error for an unusable geometry.
    const GEOMETRY_OK: () = assert!(
        Self::GEOMETRY.is_ok(),
        "NorFlash geometry unusable: READ_SIZE and WRITE_SIZE must be powers of two up to 32, \
         dividing an ERASE_SIZE that holds a header and a frame"
    );

    /// Mounts the partition of `units` erase units at byte `start` of `flash`.
    ///
    /// Fails to compile if `F`'s geometry is unusable (see [`try_new`](Self::try_new)
    /// for the checked form). Reads the header of every unit once (see the
    /// [crate docs](crate#mount)); writes and erases nothing.
    ///
    /// Errors: [`FlashError::BadGeometry`] for a bad partition (start not on a unit
    /// boundary, out of range, `units` 0, over `N` or over 65,535); [`FlashError::DuplicateSegment`]
    /// and [`FlashError::UnsupportedVersion`] for a partition this backend did not
    /// produce; [`FlashError::Flash`] if a read fails.
    pub fn new(flash: F, start: u32, units: usize) -> Res<Self, F> {
        let () = Self::GEOMETRY_OK;
        Self::try_new(flash, start, units)
    }

    /// Like [`new`](Self::new), but mounts straight into `slot` (a field, a `static`
    /// cell's content, a caller's local) instead of returning the storage by value.
    ///
    /// Same checks, reads and errors as `new`. What `slot` held is dropped first; on
    /// an error it is left `None` (and `flash` is dropped, as by `new`). The point is
    /// stack: a by-value return keeps the storage (12 bytes a unit) in the callee's
    /// frame and again in the caller's result before it reaches its place; here it is
    /// built where it stays.
    ///
    /// ```
    /// use durability_embedded::sim::{SimError, SimFlash};
    /// use durability_embedded::{FlashError, FlashStorage};
    ///
    /// let mut mem = vec![0u8; 4 * 256];
    /// let mut slot = None;
    /// FlashStorage::<_, 4>::new_in(&mut slot, SimFlash::<1, 4, 256>::erased(&mut mem), 0, 4)?;
    /// if let Some(storage) = &slot {
    ///     assert_eq!(storage.free_units(), 4);
    /// }
    /// # Ok::<(), FlashError<SimError>>(())
    /// ```
    ///
    /// An unusable geometry does not compile (here `READ_SIZE` 3):
    ///
    /// ```compile_fail
    /// # use durability_embedded::{sim::SimFlash, FlashStorage};
    /// let mut mem = vec![0u8; 600];
    /// let mut slot = None;
    /// let _ = FlashStorage::<_, 2>::new_in(&mut slot, SimFlash::<3, 1, 300>::new(&mut mem), 0, 2);
    /// ```
    pub fn new_in(slot: &mut Option<Self>, flash: F, start: u32, units: usize) -> Res<(), F> {
        let () = Self::GEOMETRY_OK;
        *slot = None;
        Self::check_partition(&flash, start, units)?;
        let s = slot.insert(FlashStorage {
            flash,
            start,
            units: units as u16,
            cursor: (units - 1) as u16,
            state: [FREE; N],
            segment: [0; N],
        });
        let r = s.mount();
        if r.is_err() {
            *slot = None;
        }
        r
    }

    /// Like [`new`](Self::new), with the geometry checked at run time:
    /// [`FlashError::BadGeometry`] if it is unusable.
    pub fn try_new(flash: F, start: u32, units: usize) -> Res<Self, F> {
        let mut s = Self::unmounted(flash, start, units)?;
        s.mount()?;
        Ok(s)
    }

    /// Erases every unit of the partition and returns it mounted and empty.
    ///
    /// This destroys every segment: it is the explicit recovery for a partition that
    /// does not mount, or the initialisation of a partition of unknown content (mount
    /// alone already treats units without a valid header as free). A power cut during
    /// it leaves some units erased and others untouched or half-erased; calling it
    /// again finishes the job.
    pub fn format(flash: F, start: u32, units: usize) -> Res<Self, F> {
        let mut s = Self::unmounted(flash, start, units)?;
        for unit in 0..units {
            s.erase_unit(unit)?;
        }
        Ok(s)
    }

    /// The storage with an empty map (nothing read), after the partition checks.
    fn unmounted(flash: F, start: u32, units: usize) -> Res<Self, F> {
        Self::check_partition(&flash, start, units)?;
        Ok(FlashStorage {
            flash,
            start,
            units: units as u16,
            cursor: (units - 1) as u16,
            state: [FREE; N],
            segment: [0; N],
        })
    }

    fn check_partition(flash: &F, start: u32, units: usize) -> Res<(), F> {
        Self::GEOMETRY?;
        if units == 0 || units > N || units > u16::MAX as usize {
            return Err(GeometryError::UnitCount.into());
        }
        if !(start as usize).is_multiple_of(F::ERASE_SIZE) {
            return Err(GeometryError::StartMisaligned.into());
        }
        let end = (units as u64)
            .checked_mul(F::ERASE_SIZE as u64)
            .and_then(|len| len.checked_add(start as u64))
            .ok_or(GeometryError::OutOfRange)?;
        // `to` of an erase of the last unit must be a valid u32 address, and a write
        // end (at most `ERASE_SIZE`) must stay below the map's markers.
        if end > flash.capacity() as u64
            || end > u32::MAX as u64
            || F::ERASE_SIZE >= u32::MAX as usize - 1
        {
            return Err(GeometryError::OutOfRange.into());
        }
        Ok(())
    }

    /// Maps every unit whose header names a segment; the cursor goes to the unit of
    /// the highest segment number.
    fn mount(&mut self) -> Res<(), F> {
        let mut raw = [0u8; HEADER_READ_MAX];
        for unit in 0..self.units() {
            let addr = self.unit_addr(unit);
            // `IDENTIFY_LEN` in whole reads: at most `HEADER_READ_MAX`, since
            // `READ_SIZE <= MAX_WORD` (the slicing cannot fail).
            self.flash
                .read(
                    addr,
                    raw.get_mut(..align_up(IDENTIFY_LEN, F::READ_SIZE))
                        .unwrap_or_default(),
                )
                .map_err(FlashError::Flash)?;
            match identify_segment(raw.get(..IDENTIFY_LEN).unwrap_or_default()) {
                SegmentIdentity::Segment(segment) => {
                    if let Some(first_unit) = self.unit_of(segment) {
                        // Both below `units`, which is at most `u16::MAX`.
                        return Err(FlashError::DuplicateSegment {
                            segment,
                            first_unit: first_unit as u16,
                            second_unit: unit as u16,
                        });
                    }
                    self.map_unit(unit, segment, END_UNKNOWN);
                    // The cursor goes to the newest segment so far: it still points at
                    // the (free, or just mapped) last unit until a segment is found.
                    let c = self.cursor as usize;
                    if self.state.get(c) == Some(&FREE)
                        || self.segment.get(c).is_some_and(|&s| segment > s)
                    {
                        self.cursor = unit as u16;
                    }
                }
                SegmentIdentity::UnsupportedVersion(version) => {
                    return Err(FlashError::UnsupportedVersion {
                        unit: unit as u16,
                        version,
                    });
                }
                SegmentIdentity::Unknown => {}
            }
        }
        Ok(())
    }

    /// The word size: `max(READ_SIZE, WRITE_SIZE)`.
    pub const fn word_size() -> usize {
        if F::READ_SIZE > F::WRITE_SIZE {
            F::READ_SIZE
        } else {
            F::WRITE_SIZE
        }
    }

    /// Number of erase units in the partition.
    pub fn units(&self) -> usize {
        self.units as usize
    }

    /// The partition's slots (no panic path: `units <= N`).
    fn slots(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.state
            .iter()
            .copied()
            .zip(self.segment.iter().copied())
            .take(self.units())
    }

    /// Number of units holding no segment.
    pub fn free_units(&self) -> usize {
        self.state
            .iter()
            .take(self.units())
            .filter(|&&s| s == FREE)
            .count()
    }

    /// The unit index holding `segment`, if any.
    pub fn unit_of(&self, segment: u64) -> Option<usize> {
        self.slots()
            .position(|(state, seg)| state != FREE && seg == segment)
    }

    /// Flash address of the first byte of unit `unit` (`unit < units()`).
    pub fn unit_addr(&self, unit: usize) -> u32 {
        self.start + (unit * F::ERASE_SIZE) as u32
    }

    /// The flash driver, for inspection.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// Gives back the flash driver.
    pub fn into_flash(self) -> F {
        self.flash
    }

    fn erase_unit(&mut self, unit: usize) -> Res<(), F> {
        let from = self.unit_addr(unit);
        self.flash
            .erase(from, from + F::ERASE_SIZE as u32)
            .map_err(FlashError::Flash)
    }

    fn mapped(&self, segment: u64) -> Res<usize, F> {
        self.unit_of(segment).ok_or(FlashError::NotFound)
    }

    /// The first free unit after the cursor, in ring order (the cursor's own unit last).
    fn next_free(&self) -> Option<usize> {
        let units = self.units();
        let mut unit = self.cursor as usize;
        for _ in 0..units {
            unit += 1;
            if unit >= units {
                unit = 0;
            }
            if self.state.get(unit) == Some(&FREE) {
                return Some(unit);
            }
        }
        None
    }

    /// Sets the state of unit `unit` (`unit < units()`).
    fn set_state(&mut self, unit: usize, state: u32) {
        if let Some(s) = self.state.get_mut(unit) {
            *s = state;
        }
    }

    /// Maps unit `unit` (`unit < units()`) to `segment`.
    fn map_unit(&mut self, unit: usize, segment: u64, state: u32) {
        self.set_state(unit, state);
        if let Some(s) = self.segment.get_mut(unit) {
            *s = segment;
        }
    }

    /// Reads `buf.len()` bytes at `off` inside `unit`, reading whole `READ_SIZE` words:
    /// the aligned middle straight into `buf`, unaligned ends through a stack word.
    fn read_in_unit(&mut self, unit: usize, off: usize, buf: &mut [u8]) -> Res<(), F> {
        let rs = F::READ_SIZE;
        // Units start on a multiple of `ERASE_SIZE`, itself a multiple of `READ_SIZE`.
        let mut addr = self.unit_addr(unit) + off as u32;
        if rs == 1 {
            // Byte-addressable reads (a constant): one call, no word loop (and, as in
            // the loop, no call for nothing).
            if buf.is_empty() {
                return Ok(());
            }
            return self.flash.read(addr, buf).map_err(FlashError::Flash);
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let skip = addr as usize % rs;
            let (now, after) = if skip == 0 && rest.len() >= rs {
                let n = rest.len() / rs * rs;
                let (now, after) = core::mem::take(&mut rest).split_at_mut(n);
                self.flash.read(addr, now).map_err(FlashError::Flash)?;
                (now, after)
            } else {
                let mut word = [0u8; MAX_WORD];
                let word = &mut word[..rs];
                self.flash
                    .read(addr - skip as u32, word)
                    .map_err(FlashError::Flash)?;
                let n = (rs - skip).min(rest.len());
                let (now, after) = core::mem::take(&mut rest).split_at_mut(n);
                now.copy_from_slice(&word[skip..skip + n]);
                (now, after)
            };
            addr += now.len() as u32;
            rest = after;
        }
        Ok(())
    }
}

impl<F: NorFlash, const N: usize> ErrorType for FlashStorage<F, N> {
    type Error = FlashError<F::Error>;
}

impl<F: NorFlash, const N: usize> Storage for FlashStorage<F, N> {
    /// The word size, `max(READ_SIZE, WRITE_SIZE)`.
    fn write_size(&self) -> usize {
        Self::word_size()
    }

    /// `0xFF`: erased NOR flash.
    fn unwritten_byte(&self) -> u8 {
        0xFF
    }

    /// `ERASE_SIZE`: a segment is one erase unit.
    fn max_segment_len(&self) -> Option<u64> {
        Some(F::ERASE_SIZE as u64)
    }

    /// `false`: a word that reads as erased may be half-programmed.
    fn resume_in_place(&self) -> bool {
        false
    }

    /// `true`: a program is final when it returns and a cut leaves a programmed prefix,
    /// one undefined word and erased space (words are programmed in address order; see
    /// the media assumptions in `docs/design.md`). So the core writes no sync markers
    /// here: an entry costs exactly its frame.
    fn ordered_writes(&self) -> bool {
        true
    }

    /// The short frame header (6 bytes: a 50-byte entry on 4-byte words programs 56
    /// bytes, not 60) whenever a unit cannot hold an entry over its 16,383-byte limit
    /// anyway; larger units keep the 8-byte header and their larger entries.
    fn short_frames(&self) -> bool {
        F::ERASE_SIZE <= SHORT_FRAMES_MAX_UNIT
    }

    /// Visits the mapped segments in unit order. No flash access.
    ///
    /// Durability: the RAM map, which is exactly what a mount would find except after a
    /// power cut during `create`/`remove` (see those).
    fn list(&mut self, visit: &mut dyn FnMut(u64)) -> Result<(), Self::Error> {
        self.slots()
            .filter(|&(state, _)| state != FREE)
            .for_each(|(_, segment)| visit(segment));
        Ok(())
    }

    /// Erases a unit for `segment` (its current unit if it exists, else the next free
    /// one in ring order) and maps it, empty. Erased always: space that reads `0xFF` may
    /// still be a half-erased unit.
    ///
    /// Durable after return: the erase, but not the segment: it exists on flash only
    /// once the core's header write (its first write) completes; before that a mount
    /// counts the unit free. A power cut during the erase leaves arbitrary bytes whose
    /// header does not parse (free at the next mount, erased again before reuse) — or,
    /// when an existing segment was being replaced, possibly its old header over a
    /// partly erased body. On an erase error the unit is left unmapped (free).
    ///
    /// Errors: [`FlashError::NoSpace`] if no unit is free.
    fn create(&mut self, segment: u64) -> Result<(), Self::Error> {
        let unit = match self.unit_of(segment) {
            Some(unit) => {
                self.set_state(unit, FREE);
                unit
            }
            None => self.next_free().ok_or(FlashError::NoSpace)?,
        };
        self.erase_unit(unit)?;
        self.map_unit(unit, segment, end_state(0));
        self.cursor = unit as u16;
        Ok(())
    }

    /// `ERASE_SIZE` for a mapped segment. No flash access.
    fn len(&mut self, segment: u64) -> Result<u64, Self::Error> {
        self.mapped(segment).map(|_| F::ERASE_SIZE as u64)
    }

    /// Reads from the segment's unit; any offset and length (unaligned ends are read
    /// through a stack word). Returns fewer bytes only at the end of the unit.
    fn read(&mut self, segment: u64, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let unit = self.mapped(segment)?;
        if offset >= F::ERASE_SIZE as u64 {
            return Ok(0);
        }
        // Below `ERASE_SIZE`: exact as a usize.
        let offset = offset as usize;
        // A split, not a range slice: no outlined, bounds-checked call (`n <= len`).
        let n = buf.len().min(F::ERASE_SIZE - offset);
        let (now, _) = buf.split_at_mut_checked(n).unwrap_or((&mut [], &mut []));
        self.read_in_unit(unit, offset, now)?;
        Ok(n)
    }

    /// Programs `data` at `offset`, which must be the segment's write end and, like the
    /// length, a multiple of the word size; the write must stay inside the unit.
    ///
    /// Durable after return: all of `data` (NOR programs are final on completion).
    /// A power cut during it leaves the words before the one being programmed durable,
    /// that word undefined (it may even read `0xFF`), and the rest erased. On a driver
    /// error the segment's write end becomes unknown and further writes to it are
    /// refused, since retrying could program a word twice.
    fn write(&mut self, segment: u64, offset: u64, data: &[u8]) -> Result<(), Self::Error> {
        let unit = self.mapped(segment)?;
        if !write_is_aligned(Self::word_size(), offset, data.len()) {
            return Err(FlashError::Misaligned);
        }
        // Inside the unit: `offset + len <= ERASE_SIZE` (so both fit a u32), no overflow.
        if offset > F::ERASE_SIZE as u64 || data.len() > F::ERASE_SIZE - offset as usize {
            return Err(FlashError::OutOfBounds);
        }
        let offset = offset as u32;
        let addr = self.unit_addr(unit) + offset;
        let Some(state) = self.state.get_mut(unit) else {
            return Err(FlashError::NotFound);
        };
        // `offset <= ERASE_SIZE < u32::MAX - 1`: an unknown end never matches.
        if *state != end_state(offset) {
            return Err(FlashError::NotAtEnd);
        }
        if data.is_empty() {
            return Ok(());
        }
        *state = END_UNKNOWN;
        self.flash.write(addr, data).map_err(FlashError::Flash)?;
        *state = end_state(offset + data.len() as u32);
        Ok(())
    }

    /// A no-op barrier (every `write` is durable when it returns); checks that the
    /// segment exists.
    fn sync(&mut self, segment: u64) -> Result<(), Self::Error> {
        self.mapped(segment).map(|_| ())
    }

    /// Always [`FlashError::Unsupported`]: flash cannot shrink a segment in place.
    fn truncate(&mut self, _segment: u64, _len: u64) -> Result<(), Self::Error> {
        Err(FlashError::Unsupported)
    }

    /// Erases the segment's unit and frees it.
    ///
    /// Durable after return: the removal (the unit reads all `0xFF`). A power cut during
    /// the erase leaves the unit undefined: usually its header no longer parses and it
    /// is free at the next mount, but NOR gives no ordering inside an erase, so the old
    /// header may survive over a partly erased body and the segment reappear at mount.
    /// The unit is unmapped even if the erase fails.
    fn remove(&mut self, segment: u64) -> Result<(), Self::Error> {
        let unit = self.mapped(segment)?;
        self.set_state(unit, FREE);
        self.erase_unit(unit)
    }
}
