//! One WAL segment from arbitrary bytes: header and frame parsers, then replay in both
//! modes through a growable and a small fixed buffer, then a writer opened on it.
//!
//! Input: byte 0 selects the mode (bit 0) and the fixed buffer size. Raw mode: the rest
//! is segment 1 verbatim. Built mode: the rest drives the real writer (one segment) and
//! then damage with re-sealed CRCs, so valid-but-odd frames are reached quickly.
#![no_main]

use durability_core::frame::{
    frame_header, header, FrameForm, FrameHeader, FrameKind, HeaderError, SegmentHeader,
    SyncMarker, MAX_ENTRY_LEN,
};
use durability_core::mem::MemStorage;
use durability_fuzz::{build_wal, check_wal_replay, check_wal_writer, damage, In};
use libfuzzer_sys::fuzz_target;

const FIXED: [usize; 8] = [8, 16, 31, 40, 64, 100, 256, 4096];

fuzz_target!(|data: &[u8]| {
    let mut inp = In::new(data);
    let mode = inp.u8();
    let fixed_len = FIXED[(mode >> 1) as usize % FIXED.len()];
    let (bytes, ws) = if mode & 1 == 0 {
        (inp.rest().to_vec(), 1)
    } else {
        let mut mem = build_wal(&mut inp, true);
        let ws = durability_core::Storage::write_size(&mem);
        let mut b = mem.segments.remove(&1).unwrap_or_default();
        damage(&mut b, &mut inp, 8);
        (b, ws)
    };
    // Parameters of the later checks come from the input again (the raw mode used it
    // all as the segment).
    let mut params = In::new(data);

    parsers(&bytes);

    let mut st = MemStorage::with_write_size(ws);
    st.segments.insert(1, bytes);
    let be = check_wal_replay(&mut st, fixed_len, &mut params);
    check_wal_writer(&st, &be, &mut params);
});

fn parsers(bytes: &[u8]) {
    match SegmentHeader::parse(bytes) {
        Ok(h) => {
            let mut out = [0u8; header::LEN];
            h.emit(&mut out);
            assert_eq!(&out[..], &bytes[..header::LEN], "header round trip");
            assert!(h.align() <= durability_core::frame::MAX_ALIGN);
            assert!(h.data_start() >= header::LEN as u64 && h.data_start() <= 64);
        }
        Err(HeaderError::Short) => assert!(bytes.len() < header::LEN),
        Err(_) => assert!(bytes.len() >= header::LEN),
    }
    for head in bytes.windows(frame_header::HEADER_LEN).take(4096) {
        let head: &[u8; frame_header::HEADER_LEN] = head.try_into().expect("8 bytes");
        if let Some(fh) = FrameHeader::parse(head, FrameForm::Long) {
            assert!(fh.len <= MAX_ENTRY_LEN);
            if fh.kind == FrameKind::SyncMarker {
                assert_eq!(fh.len as usize, durability_core::frame::marker::LEN);
            }
            assert_eq!(fh.word().to_le_bytes(), head[4..8]);
            for align in [1, 2, 4, 8, 16, 32] {
                let n = fh.frame_len(align);
                assert!(n >= (frame_header::HEADER_LEN as u64 + fh.len as u64));
                assert_eq!(n % align as u64, 0);
            }
        }
    }
    for w in bytes.windows(durability_core::frame::marker::LEN).take(64) {
        let m = SyncMarker::parse(w.try_into().expect("24 bytes"));
        assert_eq!(&m.emit()[..], w, "marker round trip");
    }
}
