//! The error type of every std backend and of the `durability` facade.

use std::fmt;

use durability_core::{Corruption, StorageError, StorageErrorKind};

/// Result of every fallible operation in this crate.
pub type PersistenceResult<T> = Result<T, PersistenceError>;

/// Everything that can go wrong while persisting or recovering data.
///
/// Core errors (`durability_core::Error<PersistenceError>`) convert into it with `?`;
/// the conversion flattens them, so callers match on one enum.
#[non_exhaustive]
#[derive(Debug)]
pub enum PersistenceError {
    /// An operating-system or backend I/O error. A missing file or directory is an
    /// `Io` error of kind [`std::io::ErrorKind::NotFound`] (see
    /// [`is_not_found`](PersistenceError::is_not_found)).
    Io(std::io::Error),
    /// Bytes are not in the expected format (bad magic, unknown version, ...).
    Format(String),
    /// A checksum does not match the data it covers.
    CrcMismatch {
        /// The checksum stored with the data.
        expected: u32,
        /// The checksum computed over the data as read.
        actual: u32,
    },
    /// A value could not be serialized.
    Encode(String),
    /// Bytes that passed their checksum could not be deserialized.
    Decode(String),
    /// An operation was called in a state that does not allow it (for example on a
    /// writer that was closed), or broke a caller-side contract.
    InvalidState(String),
    /// A configuration value is out of range or inconsistent.
    InvalidConfig(String),
    /// The backend cannot perform this operation (for example a directory without
    /// positional file handles, or one that cannot issue stable-storage barriers).
    NotSupported(String),
    /// A path argument is not a clean relative path inside the directory root
    /// (absolute, contains `..`, empty where a file name is required, ...).
    InvalidPath(String),
    /// Data covered by a completed barrier, or a sealed segment, is damaged.
    Corrupt {
        /// Segment number (0 for a single-file log).
        segment: u64,
        /// Byte offset in the segment where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: Corruption,
    },
    /// Strict reads only: the log ends in a write torn by a crash, which no barrier
    /// covered. Best-effort reads stop there instead.
    TornTail {
        /// Segment number of the final segment.
        segment: u64,
        /// Where the valid prefix ends.
        offset: u64,
    },
    /// An entry is larger than the format or the medium allows.
    EntryTooLarge {
        /// The entry's length in bytes.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// An earlier I/O or sync failure poisoned the writer; it accepts nothing more.
    /// After a failed *sync*, restart the process before reopening the log: the OS may
    /// have dropped the unsynced pages from the disk while its cache still shows them
    /// ("fsyncgate"), and a writer reopened in the same process would build on them.
    Poisoned,
    /// [`Directory::lock_exclusive`](crate::Directory::lock_exclusive) found the lock
    /// held by another writer: another process, or another handle or directory value
    /// in this process. Nothing was changed; retry after that writer has finished
    /// (its lock is released when it drops the lock or exits, even by crashing).
    Locked {
        /// The lock file: its OS path for [`FsDirectory`](crate::FsDirectory), its
        /// path inside the directory for other backends.
        path: String,
    },
    /// The WAL no longer holds entry `needed`: it was truncated behind a checkpoint that
    /// is missing, unusable or older. Recovering would silently lose entries.
    WalGap {
        /// The first entry id recovery needs.
        needed: u64,
        /// The first entry id the WAL still holds.
        first_available: u64,
    },
    /// A checkpoint covers entries beyond what the writer assigned or the WAL holds.
    CheckpointAhead {
        /// The checkpoint's last entry id.
        checkpoint_last_id: u64,
        /// The id the WAL assigns next.
        wal_next_id: u64,
    },
}

impl PersistenceError {
    /// Whether this is an I/O error of kind [`std::io::ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, PersistenceError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for PersistenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistenceError::Io(e) => write!(f, "I/O error: {e}"),
            PersistenceError::Format(m) => write!(f, "format error: {m}"),
            PersistenceError::CrcMismatch { expected, actual } => write!(
                f,
                "checksum mismatch: stored {expected:#010x}, computed {actual:#010x}"
            ),
            PersistenceError::Encode(m) => write!(f, "encode error: {m}"),
            PersistenceError::Decode(m) => write!(f, "decode error: {m}"),
            PersistenceError::InvalidState(m) => write!(f, "invalid state: {m}"),
            PersistenceError::InvalidConfig(m) => write!(f, "invalid configuration: {m}"),
            PersistenceError::NotSupported(m) => write!(f, "not supported: {m}"),
            PersistenceError::InvalidPath(m) => write!(f, "invalid path: {m}"),
            PersistenceError::Corrupt {
                segment,
                offset,
                reason,
            } => write!(
                f,
                "corruption in segment {segment} at byte {offset}: {reason:?}"
            ),
            PersistenceError::TornTail { segment, offset } => write!(
                f,
                "torn tail in final segment {segment} at byte {offset} (strict read)"
            ),
            PersistenceError::EntryTooLarge { len, max } => {
                write!(f, "entry of {len} bytes exceeds the limit of {max} bytes")
            }
            PersistenceError::Poisoned => {
                f.write_str("writer poisoned by an earlier I/O or sync failure; reopen it")
            }
            PersistenceError::WalGap {
                needed,
                first_available,
            } => write!(
                f,
                "the WAL starts at entry {first_available} but recovery needs entry {needed}: \
                 it was truncated behind a checkpoint that is missing or unusable"
            ),
            PersistenceError::CheckpointAhead {
                checkpoint_last_id,
                wal_next_id,
            } => write!(
                f,
                "checkpoint covers entries up to {checkpoint_last_id}, but the WAL assigns {wal_next_id} next"
            ),
            PersistenceError::Locked { path } => {
                write!(
                    f,
                    "`{path}` is locked by another writer (process or handle)"
                )
            }
        }
    }
}

impl std::error::Error for PersistenceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PersistenceError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for PersistenceError {
    fn from(e: std::io::Error) -> Self {
        PersistenceError::Io(e)
    }
}

impl StorageError for PersistenceError {
    fn kind(&self) -> StorageErrorKind {
        use std::io::ErrorKind as K;
        match self {
            PersistenceError::Io(e) => match e.kind() {
                K::NotFound => StorageErrorKind::NotFound,
                K::StorageFull | K::QuotaExceeded => StorageErrorKind::NoSpace,
                K::Unsupported => StorageErrorKind::Unsupported,
                _ => StorageErrorKind::Other,
            },
            PersistenceError::NotSupported(_) => StorageErrorKind::Unsupported,
            PersistenceError::Locked { .. } => StorageErrorKind::Other,
            _ => StorageErrorKind::Other,
        }
    }
}

impl From<durability_core::Error<PersistenceError>> for PersistenceError {
    fn from(e: durability_core::Error<PersistenceError>) -> Self {
        use durability_core::Error as E;
        match e {
            E::Storage(e) => e,
            E::Corrupt { at, reason } => PersistenceError::Corrupt {
                segment: at.segment,
                offset: at.offset,
                reason,
            },
            E::TornTail { at } => PersistenceError::TornTail {
                segment: at.segment,
                offset: at.offset,
            },
            E::EntryTooLarge { len, max } => PersistenceError::EntryTooLarge { len, max },
            E::BufferTooSmall { needed } => {
                PersistenceError::InvalidState(format!("buffer too small: {needed} bytes needed"))
            }
            E::Poisoned => PersistenceError::Poisoned,
            E::Encode => PersistenceError::Encode("entry could not be encoded".into()),
            E::Decode { entry_id } => {
                PersistenceError::Decode(format!("entry {entry_id} does not decode"))
            }
            E::InvalidConfig(why) => PersistenceError::InvalidConfig(why.into()),
            E::UnsupportedVersion(v) => {
                PersistenceError::Format(format!("unsupported format version {v}"))
            }
            E::Checkpoint(durability_core::checkpoint::CheckpointError::Checksum {
                expected,
                actual,
            }) => PersistenceError::CrcMismatch { expected, actual },
            E::Checkpoint(c) => PersistenceError::Format(c.to_string()),
            E::WalGap {
                needed,
                first_available,
            } => PersistenceError::WalGap {
                needed,
                first_available,
            },
            E::CheckpointAhead {
                checkpoint_last_id,
                wal_next_id,
            } => PersistenceError::CheckpointAhead {
                checkpoint_last_id,
                wal_next_id,
            },
            other => PersistenceError::Format(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durability_core::{Error as CoreError, Location};
    use std::error::Error as _;

    #[test]
    fn kinds() {
        let nf = PersistenceError::from(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(nf.is_not_found());
        assert_eq!(nf.kind(), StorageErrorKind::NotFound);
        assert!(nf.source().is_some());
        let full = PersistenceError::from(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(full.kind(), StorageErrorKind::NoSpace);
        assert!(!full.is_not_found());
        assert_eq!(
            PersistenceError::NotSupported("x".into()).kind(),
            StorageErrorKind::Unsupported
        );
        assert_eq!(PersistenceError::Poisoned.kind(), StorageErrorKind::Other);
        assert!(PersistenceError::Poisoned.source().is_none());
    }

    #[test]
    fn flattens_core_errors() {
        let at = Location {
            segment: 3,
            offset: 17,
        };
        let e: PersistenceError = CoreError::Corrupt {
            at,
            reason: Corruption::EntryIdGap,
        }
        .into();
        assert!(matches!(
            e,
            PersistenceError::Corrupt {
                segment: 3,
                offset: 17,
                reason: Corruption::EntryIdGap
            }
        ));
        let e: PersistenceError = CoreError::<PersistenceError>::TornTail { at }.into();
        assert!(matches!(
            e,
            PersistenceError::TornTail {
                segment: 3,
                offset: 17
            }
        ));
        let e: PersistenceError = CoreError::Storage(PersistenceError::Poisoned).into();
        assert!(matches!(e, PersistenceError::Poisoned));
        let e: PersistenceError = CoreError::<PersistenceError>::Decode { entry_id: 9 }.into();
        assert!(matches!(&e, PersistenceError::Decode(m) if m.contains('9')));
        let e: PersistenceError =
            CoreError::<PersistenceError>::BufferTooSmall { needed: 64 }.into();
        assert!(matches!(&e, PersistenceError::InvalidState(m) if m.contains("64")));
        let e: PersistenceError = CoreError::<PersistenceError>::UnsupportedVersion(4).into();
        assert!(matches!(&e, PersistenceError::Format(m) if m.contains('4')));
        let e: PersistenceError = CoreError::<PersistenceError>::InvalidConfig("bad").into();
        assert!(matches!(&e, PersistenceError::InvalidConfig(m) if m == "bad"));
        let e: PersistenceError =
            CoreError::<PersistenceError>::EntryTooLarge { len: 5, max: 4 }.into();
        assert!(matches!(
            e,
            PersistenceError::EntryTooLarge { len: 5, max: 4 }
        ));
        let e: PersistenceError = CoreError::<PersistenceError>::Poisoned.into();
        assert!(matches!(e, PersistenceError::Poisoned));
        let e: PersistenceError = CoreError::<PersistenceError>::Encode.into();
        assert!(matches!(e, PersistenceError::Encode(_)));
    }

    #[test]
    fn display_is_informative() {
        let e = PersistenceError::CrcMismatch {
            expected: 1,
            actual: 2,
        };
        assert_eq!(
            e.to_string(),
            "checksum mismatch: stored 0x00000001, computed 0x00000002"
        );
        let e = PersistenceError::InvalidPath("`..` is not allowed".into());
        assert!(e.to_string().starts_with("invalid path: "));
        let e = PersistenceError::Locked {
            path: "wal/LOCK".into(),
        };
        assert_eq!(
            e.to_string(),
            "`wal/LOCK` is locked by another writer (process or handle)"
        );
        assert_eq!(e.kind(), StorageErrorKind::Other);
        assert!(e.source().is_none());
    }
}
