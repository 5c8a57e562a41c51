//! The backend's error type and the geometry it rejects.

use core::fmt;

use durability_core::{StorageError, StorageErrorKind};

/// Why a flash geometry or partition cannot hold a [`FlashStorage`](crate::FlashStorage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GeometryError {
    /// `READ_SIZE` is not a power of two from 1 to 32.
    ReadSize,
    /// `WRITE_SIZE` is not a power of two from 1 to 32.
    WriteSize,
    /// `ERASE_SIZE` is not a multiple of the word size (`max(READ_SIZE, WRITE_SIZE)`).
    EraseNotWordMultiple,
    /// `ERASE_SIZE` cannot hold a segment header, one empty entry and a sync marker.
    EraseTooSmall,
    /// The partition does not start on an erase-unit boundary.
    StartMisaligned,
    /// The partition runs past the flash's capacity or past the 32-bit address space,
    /// or its erase unit is `u32::MAX - 1` bytes or larger.
    OutOfRange,
    /// The partition has no unit, more than the map's capacity `N`, or more than
    /// 65,535 (unit indices are `u16`, which keeps errors small).
    UnitCount,
}

impl GeometryError {
    /// A one-line description.
    pub const fn as_str(&self) -> &'static str {
        match self {
            GeometryError::ReadSize => "READ_SIZE is not a power of two from 1 to 32",
            GeometryError::WriteSize => "WRITE_SIZE is not a power of two from 1 to 32",
            GeometryError::EraseNotWordMultiple => "ERASE_SIZE is not a multiple of the word size",
            GeometryError::EraseTooSmall => {
                "ERASE_SIZE cannot hold a segment header, a frame and a sync marker"
            }
            GeometryError::StartMisaligned => "partition start is not on an erase-unit boundary",
            GeometryError::OutOfRange => {
                "partition runs past the flash capacity or 32-bit addresses"
            }
            GeometryError::UnitCount => {
                "partition unit count is 0 or exceeds the map capacity N or 65535"
            }
        }
    }
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of [`FlashStorage`](crate::FlashStorage). `E` is the flash driver's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FlashError<E> {
    /// The flash driver failed.
    Flash(E),
    /// No such segment.
    NotFound,
    /// `create` found no free erase unit in the partition.
    NoSpace,
    /// The operation does not exist on flash (`truncate`).
    Unsupported,
    /// A write runs past the end of the segment's erase unit.
    OutOfBounds,
    /// A write's offset or length is not a multiple of the word size.
    Misaligned,
    /// A write does not start at the segment's current write end, or goes to a segment
    /// whose write end is unknown (found at mount, or after a failed program). Refused
    /// because it could program a word twice.
    NotAtEnd,
    /// The geometry or the partition is unusable.
    BadGeometry(GeometryError),
    /// Mount: two units hold a valid header for the same segment number. Nothing was
    /// erased; the partition needs inspection (or [`FlashStorage::format`](crate::FlashStorage::format)).
    DuplicateSegment {
        /// The segment number claimed twice.
        segment: u64,
        /// The lower unit index claiming it.
        first_unit: u16,
        /// The higher unit index claiming it.
        second_unit: u16,
    },
    /// Mount: a unit holds a valid header of a format version this build does not read.
    /// Nothing was erased.
    UnsupportedVersion {
        /// The unit index.
        unit: u16,
        /// The version found.
        version: u8,
    },
}

impl<E: fmt::Debug> StorageError for FlashError<E> {
    fn kind(&self) -> StorageErrorKind {
        match self {
            FlashError::NotFound => StorageErrorKind::NotFound,
            FlashError::NoSpace => StorageErrorKind::NoSpace,
            FlashError::Unsupported => StorageErrorKind::Unsupported,
            _ => StorageErrorKind::Other,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for FlashError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::Flash(e) => write!(f, "flash driver error: {e:?}"),
            FlashError::NotFound => f.write_str("no such segment"),
            FlashError::NoSpace => f.write_str("no free erase unit in the partition"),
            FlashError::Unsupported => f.write_str("operation not supported on flash"),
            FlashError::OutOfBounds => f.write_str("write past the end of the erase unit"),
            FlashError::Misaligned => {
                f.write_str("write offset or length not a multiple of the word size")
            }
            FlashError::NotAtEnd => f.write_str("write not at the segment's known write end"),
            FlashError::BadGeometry(g) => write!(f, "bad flash geometry: {g}"),
            FlashError::DuplicateSegment {
                segment,
                first_unit,
                second_unit,
            } => write!(
                f,
                "segment {segment} claimed by erase units {first_unit} and {second_unit}"
            ),
            FlashError::UnsupportedVersion { unit, version } => {
                write!(f, "erase unit {unit} holds format version {version}")
            }
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FlashError<E> {}

impl<E> From<GeometryError> for FlashError<E> {
    fn from(g: GeometryError) -> Self {
        FlashError::BadGeometry(g)
    }
}
