//! The conformance suite (`durability_core::conformance`) over the in-memory storage,
//! with write sizes 1 and 8.

use durability_core::conformance::{run_all, Medium, CHECKS};
use durability_core::mem::MemStorage;

/// Two `MemStorage`s; a mount lends them out again (they hold no cached state).
struct Mem {
    wal: MemStorage,
    checkpoints: MemStorage,
}

impl Medium for Mem {
    type Storage<'a> = &'a mut MemStorage;
    fn mount(&mut self) -> (&mut MemStorage, &mut MemStorage) {
        (&mut self.wal, &mut self.checkpoints)
    }
}

fn fresh(write_size: usize) -> impl FnMut() -> Mem {
    move || Mem {
        wal: MemStorage::with_write_size(write_size),
        checkpoints: MemStorage::with_write_size(write_size),
    }
}

#[test]
fn mem_storage_write_size_1() {
    assert_eq!(run_all(fresh(1)), CHECKS.len());
}

#[test]
fn mem_storage_write_size_8() {
    assert_eq!(run_all(fresh(8)), CHECKS.len());
}

/// Logs in the short frame form (as on flash) on a medium with sync markers: write
/// sizes 1 and 4.
#[test]
fn mem_storage_short_frames() {
    for write_size in [1, 4] {
        let fresh = move || Mem {
            wal: MemStorage::with_write_size(write_size).with_short_frames(true),
            checkpoints: MemStorage::with_write_size(write_size).with_short_frames(true),
        };
        assert_eq!(run_all(fresh), CHECKS.len(), "write size {write_size}");
    }
}
