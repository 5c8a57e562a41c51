//! `FlashStorage` and `SimFlash` on their own: geometry, mount, create/remove, reads,
//! write checks.
// `drop(storage)` ends the borrow of the flash bytes: a power-off before a re-mount.
#![allow(clippy::drop_non_drop)]

use durability_core::checksum::crc32c;
use durability_core::frame::{header, FrameForm, LogKind, SegmentHeader};
use durability_core::{Storage, StorageError, StorageErrorKind};
use durability_embedded::sim::{SimError, SimFlash};
use durability_embedded::{check_geometry, FlashError, FlashStorage, GeometryError};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

const ERASE: usize = 256;

fn header_bytes(segment: u64, align_log2: u8) -> [u8; header::LEN] {
    let mut out = [0u8; header::LEN];
    SegmentHeader {
        kind: LogKind::Wal,
        align_log2,
        log_id: 0xABCD,
        segment,
        first_id: 1,
        prev_end: 0,
        form: FrameForm::Long,
    }
    .emit(&mut out);
    out
}

/// Creates `segment` and writes its header, as the core does.
fn create_with_header<S: Storage>(st: &mut S, segment: u64) {
    st.create(segment).unwrap();
    let ws = st.write_size();
    let mut block = vec![0u8; header::LEN.div_ceil(ws) * ws];
    block[..header::LEN].copy_from_slice(&header_bytes(segment, ws.trailing_zeros() as u8));
    st.write(segment, 0, &block).unwrap();
}

fn listed<S: Storage>(st: &mut S) -> Vec<u64> {
    let mut v = Vec::new();
    st.list(&mut |n| v.push(n)).unwrap();
    v.sort();
    v
}

fn geometry_err<F: NorFlash>(flash: F, start: u32, units: usize) -> GeometryError {
    match FlashStorage::<F, 8>::try_new(flash, start, units) {
        Err(FlashError::BadGeometry(g)) => g,
        other => panic!("expected a geometry error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn geometry_is_checked() {
    let mut mem = vec![0xFFu8; 8 * 1024];
    assert_eq!(
        geometry_err(SimFlash::<3, 1, 300>::new(&mut mem), 0, 2),
        GeometryError::ReadSize
    );
    assert_eq!(
        geometry_err(SimFlash::<64, 1, 1024>::new(&mut mem), 0, 2),
        GeometryError::ReadSize
    );
    assert_eq!(
        geometry_err(SimFlash::<1, 64, 1024>::new(&mut mem), 0, 2),
        GeometryError::WriteSize
    );
    assert_eq!(
        geometry_err(SimFlash::<1, 6, 600>::new(&mut mem), 0, 2),
        GeometryError::WriteSize
    );
    assert_eq!(
        geometry_err(SimFlash::<1, 16, 200>::new(&mut mem), 0, 2),
        GeometryError::EraseNotWordMultiple
    );
    // word = max(READ, WRITE): a read size of 8 must divide the erase size too.
    assert_eq!(
        geometry_err(SimFlash::<8, 1, 260>::new(&mut mem), 0, 2),
        GeometryError::EraseNotWordMultiple
    );
    // 32-byte words: header 64 + one frame 32 = 96 bytes at least.
    assert_eq!(
        geometry_err(SimFlash::<1, 32, 64>::new(&mut mem), 0, 2),
        GeometryError::EraseTooSmall
    );
    assert_eq!(check_geometry(1, 32, 96), Ok(32));
    assert_eq!(
        check_geometry(1, 32, 127),
        Err(GeometryError::EraseNotWordMultiple)
    );
    // 1-byte words: 48 + 8.
    assert_eq!(check_geometry(1, 1, 56), Ok(1));
    assert_eq!(check_geometry(1, 1, 55), Err(GeometryError::EraseTooSmall));
    assert_eq!(check_geometry(0, 1, 80), Err(GeometryError::ReadSize));
    assert_eq!(check_geometry(1, 0, 80), Err(GeometryError::WriteSize));
    assert_eq!(check_geometry(4, 2, 256), Ok(4));
    assert_eq!(FlashStorage::<SimFlash<'_, 4, 2, 256>, 1>::GEOMETRY, Ok(4));
    assert_eq!(FlashStorage::<SimFlash<'_, 4, 2, 256>, 1>::word_size(), 4);

    // What the core sees.
    let mut mem = vec![0xFFu8; 2 * ERASE];
    let st = FlashStorage::<_, 2>::new(SimFlash::<4, 2, ERASE>::new(&mut mem), 0, 2).unwrap();
    assert_eq!(st.write_size(), 4);
    assert_eq!(st.unwritten_byte(), 0xFF);
    assert!(!st.resume_in_place());
    // A segment is one whole erase unit.
    assert_eq!(st.max_segment_len(), Some(ERASE as u64));
    drop(st);
    let st = FlashStorage::<_, 2>::new(SimFlash::<16, 16, ERASE>::new(&mut mem), 0, 2).unwrap();
    assert_eq!(st.max_segment_len(), Some(ERASE as u64));

    // Partition checks.
    let sim =
        || SimFlash::<1, 4, ERASE>::erased(Box::leak(vec![0u8; 8 * ERASE].into_boxed_slice()));
    assert_eq!(geometry_err(sim(), 0, 0), GeometryError::UnitCount);
    assert_eq!(geometry_err(sim(), 0, 9), GeometryError::UnitCount); // N = 8
    assert_eq!(geometry_err(sim(), 4, 2), GeometryError::StartMisaligned);
    assert_eq!(
        geometry_err(sim(), 7 * ERASE as u32, 2),
        GeometryError::OutOfRange
    );
    assert!(FlashStorage::<_, 8>::try_new(sim(), 6 * ERASE as u32, 2).is_ok());
    assert!(FlashStorage::<_, 8>::new(sim(), 0, 8).is_ok());

    let e: FlashError<SimError> = GeometryError::UnitCount.into();
    assert_eq!(e.kind(), StorageErrorKind::Other);
    assert!(e.to_string().contains("unit count"));
}

#[test]
fn erased_partition_mounts_empty_with_one_read_per_unit() {
    let mut mem = vec![0u8; 16 * ERASE];
    let mut st =
        FlashStorage::<_, 16>::new(SimFlash::<8, 4, ERASE>::erased(&mut mem), 0, 16).unwrap();
    assert!(listed(&mut st).is_empty());
    assert_eq!(st.free_units(), 16);
    let stats = st.flash().stats();
    assert_eq!(stats.reads, 16);
    // One read of the longest core header (a checkpoint header, 64 bytes) per unit.
    assert_eq!(stats.bytes_read, 16 * 64);
    assert_eq!((stats.writes, stats.erases), (0, 0));

    // Garbage (zeros, random-ish bytes, a header with a bad checksum) is free space too.
    let mut mem = vec![0u8; 4 * ERASE];
    for (i, b) in mem[ERASE..2 * ERASE].iter_mut().enumerate() {
        *b = (i * 37 % 256) as u8;
    }
    let mut h = header_bytes(3, 2);
    h[20] ^= 1;
    mem[2 * ERASE..2 * ERASE + 48].copy_from_slice(&h);
    let mut st = FlashStorage::<_, 4>::new(SimFlash::<32, 4, ERASE>::new(&mut mem), 0, 4).unwrap();
    assert!(listed(&mut st).is_empty());
    // READ_SIZE 32: one read of 64 bytes per unit.
    assert_eq!(st.flash().stats().reads, 4);
    assert_eq!(st.flash().stats().bytes_read, 4 * 64);
}

#[test]
fn mount_maps_headers_and_continues_the_ring_after_the_newest() {
    let mut mem = vec![0u8; 6 * ERASE];
    let mut st =
        FlashStorage::<_, 8>::new(SimFlash::<1, 4, ERASE>::erased(&mut mem), 0, 6).unwrap();
    for seg in 1..=4 {
        create_with_header(&mut st, seg);
        assert_eq!(st.unit_of(seg), Some(seg as usize - 1));
    }
    st.remove(1).unwrap();
    st.remove(2).unwrap();
    // An empty created segment (no header yet) is not on flash.
    st.create(5).unwrap();
    assert_eq!(st.unit_of(5), Some(4));
    assert_eq!(listed(&mut st), vec![3, 4, 5]);
    drop(st);

    let mut st = FlashStorage::<_, 8>::new(SimFlash::<1, 4, ERASE>::new(&mut mem), 0, 6).unwrap();
    assert_eq!(listed(&mut st), vec![3, 4]);
    assert_eq!(st.unit_of(3), Some(2));
    assert_eq!(st.unit_of(4), Some(3));
    assert_eq!(st.len(4).unwrap(), ERASE as u64);
    // The newest segment lives in unit 3, so allocation continues at 4, 5, then wraps.
    st.create(10).unwrap();
    st.create(11).unwrap();
    st.create(12).unwrap();
    st.create(13).unwrap();
    assert_eq!(
        [10, 11, 12, 13].map(|s| st.unit_of(s).unwrap()),
        [4, 5, 0, 1]
    );
    assert_eq!(st.create(14).unwrap_err(), FlashError::NoSpace);
}

#[test]
fn mount_refuses_duplicates_and_unknown_versions_without_erasing() {
    let mut mem = vec![0xFFu8; 4 * ERASE];
    let h = header_bytes(7, 0);
    mem[ERASE..ERASE + 48].copy_from_slice(&h);
    mem[3 * ERASE..3 * ERASE + 48].copy_from_slice(&h);
    let before = mem.clone();
    let err = FlashStorage::<_, 4>::new(SimFlash::<1, 1, ERASE>::new(&mut mem), 0, 4).unwrap_err();
    assert_eq!(
        err,
        FlashError::DuplicateSegment {
            segment: 7,
            first_unit: 1,
            second_unit: 3
        }
    );
    assert_eq!(err.kind(), StorageErrorKind::Other);
    assert_eq!(mem, before);

    // The way out: format.
    let mut st =
        FlashStorage::<_, 4>::format(SimFlash::<1, 1, ERASE>::new(&mut mem), 0, 4).unwrap();
    assert!(listed(&mut st).is_empty());
    assert_eq!(st.flash().stats().erases, 4);
    drop(st);
    assert!(mem.iter().all(|&b| b == 0xFF));

    // A valid header of a future version.
    let mut h = header_bytes(2, 0);
    h[header::VERSION] = 9;
    let crc = crc32c(&h[..header::CRC.start]);
    h[header::CRC].copy_from_slice(&crc.to_le_bytes());
    mem[2 * ERASE..2 * ERASE + 48].copy_from_slice(&h);
    let err = FlashStorage::<_, 4>::new(SimFlash::<1, 1, ERASE>::new(&mut mem), 0, 4).unwrap_err();
    assert_eq!(
        err,
        FlashError::UnsupportedVersion {
            unit: 2,
            version: 9
        }
    );
}

#[test]
fn partition_offset_is_respected() {
    let mut mem = vec![0xFFu8; 8 * ERASE];
    // A header outside the partition is not seen; one inside is.
    mem[..48].copy_from_slice(&header_bytes(1, 0));
    mem[5 * ERASE..5 * ERASE + 48].copy_from_slice(&header_bytes(2, 0));
    let mut st =
        FlashStorage::<_, 4>::new(SimFlash::<1, 1, ERASE>::new(&mut mem), 4 * ERASE as u32, 4)
            .unwrap();
    assert_eq!(listed(&mut st), vec![2]);
    assert_eq!(st.unit_of(2), Some(1));
    assert_eq!(st.unit_addr(1), 5 * ERASE as u32);
    st.remove(2).unwrap();
    for seg in 10..14 {
        st.create(seg).unwrap();
    }
    assert_eq!(st.create(14).unwrap_err(), FlashError::NoSpace);
    drop(st);
    // Nothing outside the partition was touched.
    assert_eq!(&mem[..48], &header_bytes(1, 0));
    assert!(mem[48..4 * ERASE].iter().all(|&b| b == 0xFF));
}

#[test]
fn remove_erases_and_frees_and_create_reports_no_space() {
    let mut mem = vec![0u8; 3 * ERASE];
    let mut st = FlashStorage::<_, 4>::new(SimFlash::<1, 4, ERASE>::new(&mut mem), 0, 3).unwrap();
    for seg in 1..=3 {
        create_with_header(&mut st, seg);
    }
    assert_eq!(st.free_units(), 0);
    let err = st.create(4).unwrap_err();
    assert_eq!(err, FlashError::NoSpace);
    assert_eq!(err.kind(), StorageErrorKind::NoSpace);

    let unit = st.unit_of(2).unwrap();
    let erases = st.flash().stats().erases;
    st.remove(2).unwrap();
    assert_eq!(st.flash().stats().erases, erases + 1);
    assert_eq!(st.free_units(), 1);
    assert_eq!(listed(&mut st), vec![1, 3]);
    let base = st.unit_addr(unit) as usize;
    assert!(st.flash().memory()[base..base + ERASE]
        .iter()
        .all(|&b| b == 0xFF));
    for err in [
        st.remove(2).unwrap_err(),
        st.sync(2).unwrap_err(),
        st.len(2).unwrap_err(),
        st.read(2, 0, &mut [0u8; 4]).unwrap_err(),
        st.write(2, 0, &[0u8; 4]).unwrap_err(),
    ] {
        assert_eq!(err.kind(), StorageErrorKind::NotFound);
    }

    // The freed unit is the only one left.
    create_with_header(&mut st, 4);
    assert_eq!(st.unit_of(4), Some(unit));
    assert_eq!(st.create(5).unwrap_err(), FlashError::NoSpace);

    // create() of an existing segment erases and reuses its unit.
    let unit1 = st.unit_of(1).unwrap();
    st.create(1).unwrap();
    assert_eq!(st.unit_of(1), Some(unit1));
    let base = st.unit_addr(unit1) as usize;
    assert!(st.flash().memory()[base..base + ERASE]
        .iter()
        .all(|&b| b == 0xFF));
    st.write(1, 0, &[1, 2, 3, 4]).unwrap();

    let err = st.truncate(1, 0).unwrap_err();
    assert_eq!(err, FlashError::Unsupported);
    assert_eq!(err.kind(), StorageErrorKind::Unsupported);
}

#[test]
fn writes_are_checked_and_append_only() {
    let mut mem = vec![0u8; 2 * ERASE];
    let mut st =
        FlashStorage::<_, 2>::new(SimFlash::<1, 8, ERASE>::erased(&mut mem), 0, 2).unwrap();
    st.create(1).unwrap();
    assert_eq!(
        st.write(1, 0, &[0u8; 4]).unwrap_err(),
        FlashError::Misaligned
    );
    assert_eq!(
        st.write(1, 4, &[0u8; 8]).unwrap_err(),
        FlashError::Misaligned
    );
    assert_eq!(st.write(1, 8, &[0u8; 8]).unwrap_err(), FlashError::NotAtEnd);
    assert_eq!(
        st.write(1, 0, &[0u8; ERASE + 8]).unwrap_err(),
        FlashError::OutOfBounds
    );
    st.write(1, 0, &[7u8; 16]).unwrap();
    st.write(1, 16, &[]).unwrap();
    // Writing the same words again is refused before reaching the flash.
    assert_eq!(st.write(1, 0, &[7u8; 8]).unwrap_err(), FlashError::NotAtEnd);
    st.write(1, 16, &[9u8; ERASE - 16]).unwrap();
    assert_eq!(
        st.write(1, ERASE as u64, &[0u8; 8]).unwrap_err(),
        FlashError::OutOfBounds
    );
    st.sync(1).unwrap();

    // A segment found at mount has an unknown write end: writes are refused.
    let mut block = [0u8; 48];
    block.copy_from_slice(&header_bytes(2, 3));
    st.create(2).unwrap();
    st.write(2, 0, &block).unwrap();
    drop(st);
    let mut st = FlashStorage::<_, 2>::new(SimFlash::<1, 8, ERASE>::new(&mut mem), 0, 2).unwrap();
    assert_eq!(listed(&mut st), vec![2]);
    assert_eq!(
        st.write(2, 48, &[0u8; 8]).unwrap_err(),
        FlashError::NotAtEnd
    );
    assert_eq!(st.flash().stats().writes, 0);
}

#[test]
fn reads_handle_any_alignment() {
    let mut mem = vec![0u8; 2 * ERASE];
    let mut st =
        FlashStorage::<_, 2>::new(SimFlash::<16, 4, ERASE>::erased(&mut mem), 0, 2).unwrap();
    st.create(5).unwrap();
    let data: Vec<u8> = (0..160u32).map(|i| (i * 7 + 1) as u8).collect();
    st.write(5, 0, &data).unwrap();
    let mut expect = vec![0xFFu8; ERASE];
    expect[..160].copy_from_slice(&data);
    for off in [0usize, 1, 3, 15, 16, 17, 100, 159, 250, 255] {
        for len in [0usize, 1, 2, 15, 16, 17, 33, 48, 300] {
            let mut buf = vec![0u8; len];
            let n = st.read(5, off as u64, &mut buf).unwrap();
            let want = len.min(ERASE - off);
            assert_eq!(n, want, "off {off} len {len}");
            assert_eq!(&buf[..n], &expect[off..off + n], "off {off} len {len}");
        }
    }
    assert_eq!(st.read(5, ERASE as u64, &mut [0u8; 4]).unwrap(), 0);
    assert_eq!(st.read(5, u64::MAX, &mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn sim_flash_enforces_nor_rules() {
    let mut mem = vec![0u8; 2 * ERASE];
    let mut f = SimFlash::<2, 4, ERASE>::erased(&mut mem);
    assert_eq!(f.capacity(), 2 * ERASE);
    f.write(0, &[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
    assert_eq!(
        f.write(0, &[0xFF; 4]),
        Err(SimError::AlreadyProgrammed { offset: 0 })
    );
    // A word is "programmed" even if only one of its bytes changed.
    f.write(8, &[0xFF, 0xFF, 0xFF, 0xFE]).unwrap();
    assert_eq!(
        f.write(4, &[0u8; 8]),
        Err(SimError::AlreadyProgrammed { offset: 8 })
    );
    // The refused write changed nothing.
    assert_eq!(&f.memory()[4..8], &[0xFF; 4]);
    assert_eq!(f.write(2, &[0u8; 4]), Err(SimError::NotAligned));
    assert_eq!(f.write(0, &[0u8; 2]), Err(SimError::NotAligned));
    assert_eq!(
        f.write(2 * ERASE as u32, &[0u8; 4]),
        Err(SimError::OutOfBounds)
    );
    let mut buf = [0u8; 4];
    f.read(0, &mut buf).unwrap();
    assert_eq!(buf, [0xF0, 0x0F, 0xFF, 0x00]);
    assert_eq!(f.read(1, &mut buf), Err(SimError::NotAligned));
    assert_eq!(f.erase(0, 10), Err(SimError::NotAligned));
    assert_eq!(f.erase(ERASE as u32, 0), Err(SimError::OutOfBounds));
    assert_eq!(f.erase(0, 3 * ERASE as u32), Err(SimError::OutOfBounds));
    f.erase(0, ERASE as u32).unwrap();
    f.write(0, &[1, 2, 3, 4]).unwrap();
    let s = f.stats();
    assert_eq!((s.reads, s.bytes_read), (1, 4));
    assert_eq!((s.writes, s.bytes_programmed, s.erases), (3, 12, 1));
    f.reset_stats();
    assert_eq!(f.stats(), Default::default());
    f.memory_mut()[0] = 0;
    assert_eq!(f.memory()[0], 0);
}
