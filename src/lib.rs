#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod checkpointing;
mod group;
pub mod publish;
pub mod recordlog;
pub mod recover;
pub mod replay;
pub mod storage;
pub mod walog;

/// Error and result types.
pub mod error {
    pub use durability_std::error::{PersistenceError, PersistenceResult};
}

/// The no_std core, for code that wants the storage trait or the raw state machines.
pub use durability_core as core;

pub use error::{PersistenceError, PersistenceResult};
pub use storage::{Directory, DurableDirectory, FsDirectory, MemoryDirectory};
pub use walog::{WalEntry, WalRecord};

/// Carries an error of the caller's callback through the core, whose error type only
/// knows storage errors: the core sees a placeholder and stops, the caller gets the
/// original error back from [`Trap::merge`].
pub(crate) struct Trap(Option<PersistenceError>);

impl Trap {
    pub(crate) fn new() -> Self {
        Trap(None)
    }

    pub(crate) fn hold<E>(
        &mut self,
        r: PersistenceResult<()>,
    ) -> Result<(), durability_core::Error<E>> {
        r.map_err(|e| {
            self.0 = Some(e);
            durability_core::Error::Encode
        })
    }

    pub(crate) fn merge<T>(
        self,
        r: Result<T, durability_core::Error<PersistenceError>>,
    ) -> PersistenceResult<T> {
        match (self.0, r) {
            (Some(e), _) => Err(e),
            (None, r) => Ok(r?),
        }
    }
}

/// A random identity for a new log, so segments of different logs never mix.
pub(crate) fn new_log_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}
