//! The directory abstraction, its backends, and the stable-storage helpers.
//!
//! [`Directory`] is path-based and object-safe (`Arc<dyn Directory>`). The logs reach
//! it through [`DirStorage`], which adapts it onto the core's segment trait. See the
//! `durability-std` crate for each method's durability contract.

use std::time::Duration;

pub use durability_std::crash::{self, CrashDirectory};
pub use durability_std::failing;
pub use durability_std::{
    parent_dir, sync_file, sync_parent_dir, DirLock, DirStorage, Directory, DurableDirectory,
    FailingDirectory, FileHandle, FsDirectory, MemoryDirectory,
};

/// When a log writer hands its buffered bytes to the directory on its own.
///
/// This is about *flushing* (the bytes reach the OS or the backend), not about
/// durability: only `flush_and_sync` is a stable-storage barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// Only on `flush`, `flush_and_sync`, rotation, or when the buffer is full.
    #[default]
    Manual,
    /// After every append.
    PerAppend,
    /// After every `n` appends.
    EveryN(usize),
    /// On the first append at least this long after the previous flush.
    Interval(Duration),
}

/// Tracks a [`FlushPolicy`] for a writer.
#[derive(Debug, Clone)]
pub(crate) struct FlushSchedule {
    pub policy: FlushPolicy,
    since_flush: usize,
    last_flush: std::time::Instant,
}

impl FlushSchedule {
    pub fn new() -> Self {
        FlushSchedule {
            policy: FlushPolicy::Manual,
            since_flush: 0,
            last_flush: std::time::Instant::now(),
        }
    }

    /// Records an append; returns whether the policy asks for a flush now.
    pub fn on_append(&mut self) -> bool {
        self.since_flush += 1;
        match self.policy {
            FlushPolicy::Manual => false,
            FlushPolicy::PerAppend => true,
            FlushPolicy::EveryN(n) => self.since_flush >= n.max(1),
            FlushPolicy::Interval(d) => self.last_flush.elapsed() >= d,
        }
    }

    /// Records a flush.
    pub fn on_flush(&mut self) {
        self.since_flush = 0;
        self.last_flush = std::time::Instant::now();
    }
}
