//! The conformance suite (`durability_core::conformance`) over `FlashStorage<SimFlash>`,
//! for several word sizes: the same checks the std backends pass.

use durability_core::conformance::{run_all, Medium, CHECKS};
use durability_embedded::sim::SimFlash;
use durability_embedded::FlashStorage;

const ERASE: usize = 512;
const WAL_UNITS: usize = 64;
const CK_UNITS: usize = 8;

/// A flash image split into a WAL partition and a checkpoint partition; a mount is a
/// fresh `SimFlash` and `FlashStorage` over each, built from the bytes alone.
struct Flash<const R: usize, const W: usize> {
    mem: Vec<u8>,
}

impl<const R: usize, const W: usize> Medium for Flash<R, W> {
    type Storage<'a> = FlashStorage<SimFlash<'a, R, W, ERASE>, WAL_UNITS>;
    fn mount(&mut self) -> (Self::Storage<'_>, Self::Storage<'_>) {
        let (wal, ck) = self.mem.split_at_mut(WAL_UNITS * ERASE);
        (
            FlashStorage::new(SimFlash::new(wal), 0, WAL_UNITS).unwrap(),
            FlashStorage::new(SimFlash::new(ck), 0, CK_UNITS).unwrap(),
        )
    }
}

fn fresh<const R: usize, const W: usize>() -> Flash<R, W> {
    Flash {
        mem: vec![0xFF; (WAL_UNITS + CK_UNITS) * ERASE],
    }
}

#[test]
fn flash_word_1() {
    assert_eq!(run_all(fresh::<1, 1>), CHECKS.len());
}

#[test]
fn flash_word_4() {
    assert_eq!(run_all(fresh::<4, 4>), CHECKS.len());
}

#[test]
fn flash_word_32_read_4() {
    assert_eq!(run_all(fresh::<4, 32>), CHECKS.len());
}
