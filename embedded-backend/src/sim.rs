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
//!
//! # Power cuts
//!
//! [`SimFlash::set_power_cut`] arms a cut, deterministic by seed, that hits either the
//! program or erase call number `n` counted from arming ([`PowerCut::AtOp`]), or the
//! word holding the `n`-th byte programmed from arming ([`PowerCut::AtByte`]):
//!
//! - a program being cut completes the words before the torn word, clears a random
//!   subset of the bits the torn word was to clear (only 1 → 0, like real NOR), and
//!   leaves the words after it untouched;
//! - an erase being cut erases the units before the torn unit, leaves the torn unit with
//!   content chosen at random among: random bytes, erased front over old back (the
//!   old header gone), old front over erased back (the old header surviving over a
//!   partly erased body), and a per-byte mix of old, erased and random;
//! - the cut call and every later call (reads too) fail with [`SimError::PowerLost`];
//!   take the image ([`memory`](SimFlash::memory)) and mount it in a fresh `SimFlash`.
//!
//! # Images
//!
//! [`SimFlash::image_header`] / [`parse_image`] give a 32-byte header (magic, geometry,
//! length) for the contents, so host tools can inspect a dump; on hosted targets
//! `save_image` / `load_image` write and read such an image file.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of [`SimFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
    /// The simulated power was cut (during this call or an earlier one).
    PowerLost,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            SimError::AlreadyProgrammed { .. } | SimError::PowerLost => NorFlashErrorKind::Other,
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
    cut: Option<ArmedCut>,
    torn_erase: TornErase,
    /// Program and erase calls since the cut was armed.
    ops: u64,
    /// Bytes programmed since the cut was armed.
    bytes: u64,
    lost: bool,
}

/// What a cut erase may leave in the torn unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TornErase {
    /// Any of the four patterns (see the [module docs](self)), including the unit's
    /// old front (its segment header) surviving over a partly erased body.
    #[default]
    Any,
    /// Never the old front over an erased back: the unit's first bytes are always
    /// damaged or erased (for tests of code that cannot handle a resurrected header).
    HeaderLost,
}

/// When a simulated power cut hits; counted from [`SimFlash::set_power_cut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerCut {
    /// Program/erase call number `n` (0-based: `n` calls complete, the next one is cut,
    /// at a word or unit chosen by the seed).
    AtOp(u64),
    /// After `n` more bytes are programmed: the word holding byte `n` is torn (erases
    /// in between complete).
    AtByte(u64),
}

#[derive(Debug, Clone, Copy)]
struct ArmedCut {
    when: PowerCut,
    rng: Rng,
}

/// splitmix64: small, deterministic, good enough to pick torn bits.
#[derive(Debug, Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Length of an image header ([`SimFlash::image_header`]).
pub const IMAGE_HEADER_LEN: usize = 32;
const IMAGE_MAGIC: [u8; 8] = *b"SIMFLSH1";

/// Geometry recorded in an image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGeometry {
    /// `READ` granularity.
    pub read: u32,
    /// `WRITE` granularity.
    pub write: u32,
    /// `ERASE` granularity.
    pub erase: u32,
    /// Length of the contents in bytes.
    pub len: u64,
}

/// Why an image does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the header, or than the length it announces, or trailing bytes.
    Length,
    /// Wrong magic.
    Magic,
    /// The geometry differs from the expected one.
    Geometry(ImageGeometry),
}

/// Splits an image (header + contents) into its geometry and contents.
pub fn parse_image(image: &[u8]) -> Result<(ImageGeometry, &[u8]), ImageError> {
    if image.len() < IMAGE_HEADER_LEN {
        return Err(ImageError::Length);
    }
    if image[..8] != IMAGE_MAGIC {
        return Err(ImageError::Magic);
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([image[o], image[o + 1], image[o + 2], image[o + 3]]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&image[20..28]);
    let g = ImageGeometry {
        read: u32_at(8),
        write: u32_at(12),
        erase: u32_at(16),
        len: u64::from_le_bytes(len),
    };
    let body = &image[IMAGE_HEADER_LEN..];
    if body.len() as u64 != g.len {
        return Err(ImageError::Length);
    }
    Ok((g, body))
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
            cut: None,
            torn_erase: TornErase::Any,
            ops: 0,
            bytes: 0,
            lost: false,
        }
    }

    /// Arms a power cut (replacing any armed one); program/erase calls and programmed
    /// bytes are counted from here. `seed` picks the torn word/unit and its content.
    pub fn set_power_cut(&mut self, when: PowerCut, seed: u64) {
        self.cut = Some(ArmedCut {
            when,
            rng: Rng(seed ^ 0xD1B5_4A32_D192_ED03),
        });
        self.ops = 0;
        self.bytes = 0;
    }

    /// Chooses what a cut erase may leave (default [`TornErase::Any`]).
    pub fn set_torn_erase(&mut self, mode: TornErase) {
        self.torn_erase = mode;
    }

    /// Disarms a pending power cut (power already lost stays lost).
    pub fn clear_power_cut(&mut self) {
        self.cut = None;
    }

    /// Whether the power was cut: every call now fails with [`SimError::PowerLost`].
    pub fn power_lost(&self) -> bool {
        self.lost
    }

    /// Program and erase calls that reached the medium since creation or the last
    /// [`set_power_cut`](Self::set_power_cut) (a cut call counts).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Bytes programmed since creation or the last [`set_power_cut`](Self::set_power_cut).
    pub fn bytes_since_armed(&self) -> u64 {
        self.bytes
    }

    /// The image header of the current contents: magic `SIMFLSH1`, `READ`, `WRITE`,
    /// `ERASE` (u32 LE), length (u64 LE), 4 zero bytes. The image is this header
    /// followed by [`memory`](Self::memory).
    pub fn image_header(&self) -> [u8; IMAGE_HEADER_LEN] {
        let mut h = [0u8; IMAGE_HEADER_LEN];
        h[..8].copy_from_slice(&IMAGE_MAGIC);
        h[8..12].copy_from_slice(&(READ as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(WRITE as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(ERASE as u32).to_le_bytes());
        h[20..28].copy_from_slice(&(self.mem.len() as u64).to_le_bytes());
        h
    }

    /// Checks that `image` has this type's geometry; returns its contents, to copy
    /// into the slice a new `SimFlash` wraps.
    pub fn image_contents(image: &[u8]) -> Result<&[u8], ImageError> {
        let (g, body) = parse_image(image)?;
        if g.read as usize != READ || g.write as usize != WRITE || g.erase as usize != ERASE {
            return Err(ImageError::Geometry(g));
        }
        Ok(body)
    }

    fn check_power(&self) -> Result<(), SimError> {
        if self.lost {
            Err(SimError::PowerLost)
        } else {
            Ok(())
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
        self.check_power()?;
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
        self.check_power()?;
        let r = self.range(from, (to - from) as usize, ERASE)?;
        let units = (r.len() / ERASE) as u64;
        let op = self.ops;
        self.ops += 1;
        if let Some(ArmedCut {
            when: PowerCut::AtOp(n),
            mut rng,
        }) = self.cut
        {
            if op == n && units > 0 {
                let torn = rng.below(units) as usize;
                let start = r.start;
                self.mem[start..start + torn * ERASE].fill(0xFF);
                let unit = &mut self.mem[start + torn * ERASE..start + (torn + 1) * ERASE];
                tear_unit(unit, &mut rng, self.torn_erase);
                self.stats.erases += torn as u64;
                self.lost = true;
                self.cut = None;
                return Err(SimError::PowerLost);
            }
        }
        self.mem[r].fill(0xFF);
        self.stats.erases += units;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.check_power()?;
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
        let op = self.ops;
        self.ops += 1;
        let torn_word = match self.cut {
            Some(ArmedCut {
                when: PowerCut::AtOp(n),
                mut rng,
            }) if op == n => Some((rng.below((bytes.len() / WRITE) as u64) as usize, rng)),
            Some(ArmedCut {
                when: PowerCut::AtByte(n),
                rng,
            }) if n < self.bytes + bytes.len() as u64 => {
                Some(((n - self.bytes) as usize / WRITE, rng))
            }
            _ => None,
        };
        if let Some((word, mut rng)) = torn_word {
            if !bytes.is_empty() {
                let done = word * WRITE;
                for (t, b) in target[..done].iter_mut().zip(&bytes[..done]) {
                    *t &= *b;
                }
                for (t, b) in target[done..done + WRITE]
                    .iter_mut()
                    .zip(&bytes[done..done + WRITE])
                {
                    // Clear a random subset of the bits this program clears.
                    *t &= !(!*b & rng.byte());
                }
                self.stats.bytes_programmed += done as u64;
                self.bytes += done as u64;
            }
            self.lost = true;
            self.cut = None;
            return Err(SimError::PowerLost);
        }
        for (t, b) in target.iter_mut().zip(bytes) {
            *t &= *b;
        }
        self.bytes += bytes.len() as u64;
        self.stats.writes += 1;
        self.stats.bytes_programmed += bytes.len() as u64;
        Ok(())
    }
}

/// Content of a unit whose erase was cut.
fn tear_unit(unit: &mut [u8], rng: &mut Rng, mode: TornErase) {
    let split = rng.below(unit.len() as u64 + 1) as usize;
    let mut pattern = rng.below(4);
    if mode == TornErase::HeaderLost && pattern == 2 {
        pattern = 1;
    }
    match pattern {
        0 => unit.iter_mut().for_each(|b| *b = rng.byte()),
        1 => unit[..split].fill(0xFF),
        2 => unit[split..].fill(0xFF),
        _ => unit.iter_mut().for_each(|b| match rng.below(3) {
            0 => *b = 0xFF,
            1 => *b = rng.byte(),
            _ => {}
        }),
    }
}

#[cfg(not(target_os = "none"))]
mod hosted {
    extern crate std;
    use super::{ImageError, SimFlash};
    use std::io;
    use std::path::Path;
    use std::vec::Vec;

    fn invalid(e: ImageError) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            std::format!("bad flash image: {e:?}"),
        )
    }

    impl<const READ: usize, const WRITE: usize, const ERASE: usize> SimFlash<'_, READ, WRITE, ERASE> {
        /// Writes the image (header + contents) to `path`. Hosted targets only.
        pub fn save_image(&self, path: impl AsRef<Path>) -> io::Result<()> {
            let mut out = Vec::with_capacity(super::IMAGE_HEADER_LEN + self.mem.len());
            out.extend_from_slice(&self.image_header());
            out.extend_from_slice(self.mem);
            std::fs::write(path, out)
        }

        /// Reads an image file of this geometry; returns the contents, to wrap in a
        /// new `SimFlash` (`SimFlash::new(&mut contents)`). Hosted targets only.
        pub fn load_image(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
            let image = std::fs::read(path)?;
            Self::image_contents(&image)
                .map(<[u8]>::to_vec)
                .map_err(invalid)
        }
    }
}
