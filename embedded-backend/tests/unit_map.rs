//! The RAM map of `FlashStorage` (which unit holds which segment, and each segment's
//! write end): segment numbers across the whole `u64` range, segment 0 next to free
//! units, the write end after create, program, failed program, remove and remount, and
//! the largest erase unit the map can track.
// `drop(storage)` ends the borrow of the flash bytes: a power-off before a re-mount.
#![allow(clippy::drop_non_drop)]

use durability_core::frame::{header, FrameForm, LogKind, SegmentHeader};
use durability_core::Storage;
use durability_embedded::sim::{PowerCut, SimFlash};
use durability_embedded::{FlashError, FlashStorage, GeometryError};
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};

const ERASE: usize = 256;
type Sim<'a> = SimFlash<'a, 1, 4, ERASE>;

/// A segment header block for `segment`, padded to the 4-byte word.
fn header_block(segment: u64) -> [u8; header::LEN] {
    let mut out = [0u8; header::LEN];
    SegmentHeader {
        kind: LogKind::Wal,
        align_log2: 2,
        log_id: 7,
        segment,
        first_id: 1,
        prev_end: 0,
        form: FrameForm::Long,
    }
    .emit(&mut out);
    out
}

fn listed<S: Storage>(st: &mut S) -> Vec<u64> {
    let mut v = Vec::new();
    st.list(&mut |n| v.push(n)).unwrap();
    v.sort();
    v
}

#[test]
fn segment_numbers_use_all_64_bits_and_zero_is_a_segment() {
    let big = [0, 5, (1 << 32) | 5, u64::MAX, 1 << 63];
    let mut mem = vec![0u8; 8 * ERASE];
    let mut st = FlashStorage::<_, 8>::new(Sim::erased(&mut mem), 0, 8).unwrap();
    // Nothing is mapped yet: a free unit does not hold segment 0.
    assert_eq!(st.unit_of(0), None);
    assert_eq!(st.len(0).unwrap_err(), FlashError::NotFound);
    assert_eq!(st.write(0, 0, &[0; 4]).unwrap_err(), FlashError::NotFound);
    for &n in &big {
        st.create(n).unwrap();
        st.write(n, 0, &header_block(n)).unwrap();
    }
    assert_eq!(st.free_units(), 3);
    let mut want = big.to_vec();
    want.sort();
    assert_eq!(listed(&mut st), want);
    // Segments equal in their low 32 bits are told apart.
    assert_ne!(st.unit_of(5), st.unit_of((1 << 32) | 5));
    assert_eq!(st.unit_of(1 << 32), None);
    let units: Vec<_> = big.iter().map(|&n| st.unit_of(n).unwrap()).collect();
    drop(st);

    // The same map after a remount, from the headers alone; none of them is a
    // duplicate of another.
    let mut st = FlashStorage::<_, 8>::new(Sim::new(&mut mem), 0, 8).unwrap();
    assert_eq!(listed(&mut st), want);
    for (&n, &u) in big.iter().zip(&units) {
        assert_eq!(st.unit_of(n), Some(u));
    }
    assert_eq!(st.free_units(), 3);
    // Removing segment 0 frees its unit and only that one.
    st.remove(0).unwrap();
    assert_eq!(st.unit_of(0), None);
    assert_eq!(st.free_units(), 4);
    assert_eq!(st.unit_of(u64::MAX), Some(units[3]));
}

#[test]
fn write_end_is_tracked_through_create_program_remove_and_remount() {
    let mut mem = vec![0u8; 2 * ERASE];
    let mut st = FlashStorage::<_, 2>::new(Sim::erased(&mut mem), 0, 2).unwrap();
    st.create(9).unwrap();
    assert_eq!(st.write(9, 4, &[0; 4]).unwrap_err(), FlashError::NotAtEnd);
    st.write(9, 0, &header_block(9)).unwrap();
    let end = header::LEN as u64;
    assert_eq!(st.write(9, 0, &[0; 4]).unwrap_err(), FlashError::NotAtEnd);
    assert_eq!(
        st.write(9, end + 4, &[0; 4]).unwrap_err(),
        FlashError::NotAtEnd
    );
    st.write(9, end, &[1; 4]).unwrap();
    // Up to the last word of the unit; then only an empty write fits.
    st.write(9, end + 4, &vec![2; ERASE - end as usize - 4])
        .unwrap();
    assert_eq!(
        st.write(9, ERASE as u64, &[0; 4]).unwrap_err(),
        FlashError::OutOfBounds
    );
    st.write(9, ERASE as u64, &[]).unwrap();
    assert_eq!(
        st.write(9, ERASE as u64 - 4, &[0; 4]).unwrap_err(),
        FlashError::NotAtEnd
    );
    // Re-created in place: erased and writable from 0 again, at its old unit.
    let unit = st.unit_of(9);
    st.create(9).unwrap();
    assert_eq!(st.unit_of(9), unit);
    st.write(9, 0, &header_block(9)).unwrap();
    // Removed: gone, and its number can be created anew.
    st.remove(9).unwrap();
    assert_eq!(st.write(9, end, &[0; 4]).unwrap_err(), FlashError::NotFound);
    st.create(9).unwrap();
    st.write(9, 0, &header_block(9)).unwrap();
    st.write(9, end, &[1; 4]).unwrap();
    drop(st);

    // Found at mount: the end is unknown, every write is refused before the flash.
    let mut st = FlashStorage::<_, 2>::new(Sim::new(&mut mem), 0, 2).unwrap();
    assert_eq!(listed(&mut st), vec![9]);
    for off in [0, end, end + 4] {
        assert_eq!(st.write(9, off, &[0; 4]).unwrap_err(), FlashError::NotAtEnd);
    }
    assert_eq!(st.flash().stats().writes, 0);
}

#[test]
fn failed_program_leaves_the_end_unknown() {
    let mut mem = vec![0u8; 2 * ERASE];
    let mut flash = Sim::erased(&mut mem);
    // The power fails 2 bytes into the program after the header.
    flash.set_power_cut(PowerCut::AtByte(header::LEN as u64 + 2), 1);
    let mut st = FlashStorage::<_, 2>::new(&mut flash, 0, 2).unwrap();
    st.create(3).unwrap();
    st.write(3, 0, &header_block(3)).unwrap();
    let end = header::LEN as u64;
    assert!(matches!(
        st.write(3, end, &[5; 4]),
        Err(FlashError::Flash(_))
    ));
    let writes = st.flash().stats().writes;
    // Neither the word that failed nor the next one is programmed by this storage
    // again: refused before reaching the flash.
    for off in [end, end + 4] {
        assert_eq!(st.write(3, off, &[5; 4]).unwrap_err(), FlashError::NotAtEnd);
    }
    assert_eq!(st.flash().stats().writes, writes);
    drop(st);

    // Power back (a fresh driver over the same bytes): the segment is found at mount
    // (its header landed), still not writable; re-created, it is writable from 0.
    drop(flash);
    let mut st = FlashStorage::<_, 2>::new(Sim::new(&mut mem), 0, 2).unwrap();
    assert_eq!(listed(&mut st), vec![3]);
    assert_eq!(st.write(3, end, &[5; 4]).unwrap_err(), FlashError::NotAtEnd);
    st.create(3).unwrap();
    st.write(3, 0, &header_block(3)).unwrap();
    st.write(3, end, &[5; 4]).unwrap();
}

/// A flash whose single erase unit is `ERASE_SIZE` bytes, with nothing behind it but
/// erased reads: only the partition checks matter.
struct Huge<const E: usize>;

impl<const E: usize> ErrorType for Huge<E> {
    type Error = NorFlashErrorKind;
}

impl<const E: usize> ReadNorFlash for Huge<E> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, _offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        bytes.fill(0xFF);
        Ok(())
    }
    fn capacity(&self) -> usize {
        E
    }
}

impl<const E: usize> NorFlash for Huge<E> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = E;
    fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
        Ok(())
    }
    fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn erase_units_up_to_4_gib_minus_3_bytes_are_tracked() {
    const LARGEST: usize = u32::MAX as usize - 2;
    let st = FlashStorage::<_, 1>::try_new(Huge::<LARGEST>, 0, 1).unwrap();
    assert_eq!(st.free_units(), 1);
    for err in [
        FlashStorage::<_, 1>::try_new(Huge::<{ LARGEST + 1 }>, 0, 1).map(|_| ()),
        FlashStorage::<_, 1>::try_new(Huge::<{ LARGEST + 2 }>, 0, 1).map(|_| ()),
    ] {
        assert_eq!(
            err.unwrap_err(),
            FlashError::BadGeometry(GeometryError::OutOfRange)
        );
    }
}

#[test]
fn new_in_mounts_in_place_like_new() {
    let mut mem = vec![0u8; 4 * ERASE];
    let mut st = FlashStorage::<_, 4>::new(Sim::erased(&mut mem), 0, 4).unwrap();
    for n in [7, 3, 11] {
        st.create(n).unwrap();
        st.write(n, 0, &header_block(n)).unwrap();
    }
    st.remove(3).unwrap();
    let units: Vec<_> = [7, 11].iter().map(|&n| st.unit_of(n)).collect();
    drop(st);

    let mut slot = None;
    FlashStorage::<_, 4>::new_in(&mut slot, Sim::new(&mut mem), 0, 4).unwrap();
    let st = slot.as_mut().unwrap();
    assert_eq!(listed(st), vec![7, 11]);
    assert_eq!(vec![st.unit_of(7), st.unit_of(11)], units);
    assert_eq!(st.free_units(), 2);
    assert_eq!(st.flash().stats().reads, 4);
    assert_eq!(st.write(11, 0, &[0; 4]).unwrap_err(), FlashError::NotAtEnd);
    // The cursor follows the newest segment (11): the next create takes the unit
    // after it in ring order, as after `new`.
    st.create(12).unwrap();
    let after_new_in = st.unit_of(12);
    drop(slot);
    let mut st = FlashStorage::<_, 4>::new(Sim::new(&mut mem), 0, 4).unwrap();
    // (12 never got a header: the unit is free again at this mount.)
    st.create(12).unwrap();
    assert_eq!(st.unit_of(12), after_new_in);
    drop(st);

    // A partition error leaves the slot empty, whatever it held.
    let mut slot = None;
    FlashStorage::<_, 4>::new_in(&mut slot, Sim::new(&mut mem), 0, 4).unwrap();
    assert!(slot.is_some());
    let mut other = vec![0u8; 4 * ERASE];
    assert_eq!(
        FlashStorage::<_, 4>::new_in(&mut slot, Sim::erased(&mut other), 4, 2).unwrap_err(),
        FlashError::BadGeometry(GeometryError::StartMisaligned)
    );
    assert!(slot.is_none());

    // So does a mount error: two units claiming one segment.
    let mut dup = vec![0xFFu8; 2 * ERASE];
    dup[..header::LEN].copy_from_slice(&header_block(5));
    dup[ERASE..ERASE + header::LEN].copy_from_slice(&header_block(5));
    let mut slot = None;
    FlashStorage::<_, 4>::new_in(&mut slot, Sim::new(&mut other), 0, 4).unwrap();
    assert_eq!(
        FlashStorage::<_, 4>::new_in(&mut slot, Sim::new(&mut dup), 0, 2).unwrap_err(),
        FlashError::DuplicateSegment {
            segment: 5,
            first_unit: 0,
            second_unit: 1
        }
    );
    assert!(slot.is_none());
}

/// All permutations of `items`.
fn permutations(items: &[u64]) -> Vec<Vec<u64>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

#[test]
fn create_after_mount_takes_the_first_free_unit_after_the_newest_segment() {
    const UNITS: usize = 4;
    for occupied in 0u32..(1 << UNITS) {
        let units: Vec<usize> = (0..UNITS).filter(|u| occupied & (1 << u) != 0).collect();
        let numbers: Vec<u64> = (0..units.len() as u64).map(|i| 7 * i).collect();
        for order in permutations(&numbers) {
            let mut mem = vec![0xFFu8; UNITS * ERASE];
            for (&u, &n) in units.iter().zip(&order) {
                mem[u * ERASE..u * ERASE + header::LEN].copy_from_slice(&header_block(n));
            }
            let mut slot = None;
            FlashStorage::<_, UNITS>::new_in(&mut slot, Sim::new(&mut mem), 0, UNITS).unwrap();
            let st = slot.as_mut().unwrap();
            // The model: the cursor is the unit of the highest number, else the last
            // unit; the next create takes the first free unit after it, in ring order.
            let cursor = units
                .iter()
                .zip(&order)
                .max_by_key(|(_, &n)| n)
                .map_or(UNITS - 1, |(&u, _)| u);
            let expected = (1..=UNITS)
                .map(|k| (cursor + k) % UNITS)
                .find(|u| !units.contains(u));
            match expected {
                Some(u) => {
                    st.create(1000).unwrap();
                    assert_eq!(
                        st.unit_of(1000),
                        Some(u),
                        "units {units:?} numbers {order:?}"
                    );
                }
                None => assert_eq!(st.create(1000).unwrap_err(), FlashError::NoSpace),
            }
            for (&u, &n) in units.iter().zip(&order) {
                assert_eq!(st.unit_of(n), Some(u));
            }
        }
    }
}
