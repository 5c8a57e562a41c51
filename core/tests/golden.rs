//! Golden byte vectors: the on-media format is pinned byte for byte, and cross-checked
//! against an encoder written from the layout diagram in `src/frame.rs`.

mod common;

use common::*;
use durability_core::checksum::{crc32c, Crc32c};
use durability_core::frame::{
    frame_len, FrameForm, FrameHeader, FrameKind, FrameSeal, HeaderError, LogKind, SegmentHeader,
    SyncMarker, MAX_ENTRY_LEN,
};
use durability_core::mem::MemStorage;
use durability_core::recordlog::RecordLogWriter;
use durability_core::wal::{WalConfig, WalReader, WalWriter};
use durability_core::{Error, ReadMode};

const LOG_ID: u64 = 0x0123_4567_89AB_CDEF;

/// `hello`, empty, sync, `x`, flush.
fn golden_wal(ws: usize) -> MemStorage {
    golden_wal_on(MemStorage::with_write_size(ws))
}

/// The golden log's appends on `st`.
fn golden_wal_on(mut st: MemStorage) -> MemStorage {
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
    assert_eq!(w.append(b"hello").unwrap(), 1);
    assert_eq!(w.append(b"").unwrap(), 2);
    w.sync().unwrap();
    assert_eq!(w.append(b"x").unwrap(), 3);
    w.flush().unwrap();
    drop(w);
    st
}

const GOLDEN_WAL_WS1: &str = "
    4455524c 01 01 00 00  efcdab8967452301  0100000000000000  0100000000000000  0000000000000000  00000000  3f24a4bf
    8a12aab6 05000010 68656c6c6f
    d0e3e38d 00000010
    ef2e1ca2 18000020 4500000000000000 0300000000000000 efcdab8967452301
    120aa172 01000010 78";

const GOLDEN_WAL_WS4: &str = "
    4455524c 01 01 02 00  efcdab8967452301  0100000000000000  0100000000000000  0000000000000000  00000000  7f64bb38
    8a12aab6 05000010 68656c6c6f 000000
    d0e3e38d 00000010
    feb2973a 18000020 4800000000000000 0300000000000000 efcdab8967452301
    120aa172 01000010 78 000000";

#[test]
fn golden_wal_segment_write_size_1() {
    let st = golden_wal(1);
    assert_eq!(st.segments.len(), 1);
    let seg = &st.segments[&1];
    assert_eq!(to_hex(seg), to_hex(&hex(GOLDEN_WAL_WS1)));
    // The same bytes from the spec encoder.
    let mut spec = spec_header(1, 0, LOG_ID, 1, 1, 0).to_vec();
    spec.extend(spec_entry(LOG_ID, 1, 1, b"hello", 1));
    spec.extend(spec_entry(LOG_ID, 1, 2, b"", 1));
    assert_eq!(spec.len(), 69);
    spec.extend(spec_marker(LOG_ID, 1, 69, 3, 1));
    spec.extend(spec_entry(LOG_ID, 1, 3, b"x", 1));
    assert_eq!(to_hex(seg), to_hex(&spec));
}

#[test]
fn golden_wal_segment_write_size_4() {
    let st = golden_wal(4);
    let seg = &st.segments[&1];
    assert_eq!(to_hex(seg), to_hex(&hex(GOLDEN_WAL_WS4)));
    let mut spec = spec_header(1, 2, LOG_ID, 1, 1, 0).to_vec();
    spec.extend(spec_entry(LOG_ID, 1, 1, b"hello", 4));
    spec.extend(spec_entry(LOG_ID, 1, 2, b"", 4));
    assert_eq!(spec.len(), 72);
    spec.extend(spec_marker(LOG_ID, 1, 72, 3, 4));
    spec.extend(spec_entry(LOG_ID, 1, 3, b"x", 4));
    assert_eq!(to_hex(seg), to_hex(&spec));
}

/// The same log on a medium that asks for short frames (format version 2).
fn golden_wal_short(ws: usize) -> MemStorage {
    golden_wal_on(MemStorage::with_write_size(ws).with_short_frames(true))
}

const GOLDEN_WAL_SHORT_WS4: &str = "
    4455524c 02 01 02 00  efcdab8967452301  0100000000000000  0100000000000000  0000000000000000  00000000  f32d175b
    86e9a66c 0540 68656c6c6f 00
    66a4d85a 0040 0000
    8b4bb658 1880 4400000000000000 0300000000000000 efcdab8967452301 0000
    74a4c2e6 0140 78 00";

#[test]
fn golden_wal_segment_short_frames() {
    let st = golden_wal_short(4);
    let seg = &st.segments[&1];
    assert_eq!(to_hex(seg), to_hex(&hex(GOLDEN_WAL_SHORT_WS4)));
    let mut spec = spec_header_short(1, 2, LOG_ID, 1, 1, 0).to_vec();
    spec.extend(spec_frame_short(LOG_ID, 1, 1, KIND_ENTRY, b"hello", 4));
    spec.extend(spec_frame_short(LOG_ID, 1, 2, KIND_ENTRY, b"", 4));
    assert_eq!(spec.len(), 68);
    let mut marker = Vec::new();
    for v in [68u64, 3, LOG_ID] {
        marker.extend_from_slice(&v.to_le_bytes());
    }
    spec.extend(spec_frame_short(LOG_ID, 1, 0, KIND_MARKER, &marker, 4));
    spec.extend(spec_frame_short(LOG_ID, 1, 3, KIND_ENTRY, b"x", 4));
    assert_eq!(to_hex(seg), to_hex(&spec));
    // A 50-byte entry on 4-byte words: 56 bytes (60 in the long form).
    let short = FrameForm::Short;
    assert_eq!(short.frame_len(50, 4), 56);
    assert_eq!(FrameForm::Long.frame_len(50, 4), 60);
    // Read back by a reader on a medium that does not ask for short frames: the
    // header says the form.
    let mut plain = MemStorage::with_write_size(4);
    plain.segments = st.segments.clone();
    let (got, res) = wal_replay(&mut plain, ReadMode::Strict);
    assert_eq!(
        got,
        vec![(1, b"hello".to_vec()), (2, vec![]), (3, b"x".to_vec())]
    );
    assert_eq!(res.unwrap().next_id, 4);
}

#[test]
fn short_frames_parse_and_limits() {
    let seal = FrameSeal::new(LOG_ID, 7, FrameForm::Short);
    let head = seal.seal(FrameKind::Entry, 100, b"payload");
    assert_eq!(&head[6..], &[0, 0], "a short header is 6 bytes");
    assert_eq!(
        head[..6],
        spec_frame_short(LOG_ID, 7, 100, KIND_ENTRY, b"payload", 1)[..6]
    );
    let parsed = FrameHeader::parse(&head[..6], FrameForm::Short).unwrap();
    assert_eq!(
        (parsed.kind, parsed.len, parsed.word()),
        (FrameKind::Entry, 7, 0x4007)
    );
    assert!(parsed.verify(&seal, 100, b"payload"));
    let mut shorter = head;
    shorter[4..6].copy_from_slice(&0x4006u16.to_le_bytes());
    let shorter = FrameHeader::parse(&shorter[..6], FrameForm::Short).unwrap();
    assert!(
        !shorter.verify(&seal, 100, b"payloa"),
        "the checksum covers the word"
    );
    assert_eq!(parsed.frame_len(4), 16);
    // Too few bytes, zeros, erased bytes: never a frame.
    assert_eq!(FrameHeader::parse(&head[..5], FrameForm::Short), None);
    assert_eq!(FrameHeader::parse(&[0u8; 6], FrameForm::Short), None);
    assert_eq!(FrameHeader::parse(&[0xFFu8; 6], FrameForm::Short), None);
    // A marker must have its fixed length.
    let mut bad = [0u8; 6];
    bad[4..6].copy_from_slice(&(2u16 << 14 | 23).to_le_bytes());
    assert_eq!(FrameHeader::parse(&bad, FrameForm::Short), None);
    // The writer refuses an entry over the short form's limit before writing anything.
    let mut st = MemStorage::with_write_size(4).with_short_frames(true);
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
    let big = vec![7u8; durability_core::frame::SHORT_MAX_ENTRY_LEN as usize + 1];
    assert_eq!(
        w.append(&big),
        Err(Error::EntryTooLarge {
            len: big.len() as u64,
            max: durability_core::frame::SHORT_MAX_ENTRY_LEN as u64
        })
    );
    let fits = vec![7u8; durability_core::frame::SHORT_MAX_ENTRY_LEN as usize];
    assert_eq!(w.append(&fits), Ok(1), "refusal does not poison");
    w.sync().unwrap();
    drop(w);
    let (got, res) = wal_replay(&mut st, ReadMode::Strict);
    assert_eq!(got, vec![(1, fits)]);
    res.unwrap();
}

#[test]
fn golden_wal_reads_back() {
    for ws in [1, 4] {
        let mut st = golden_wal(ws);
        let mut got = Vec::new();
        let report = WalReader::new(&mut st, Vec::new())
            .replay(ReadMode::Strict, |id, p| {
                got.push((id, p.to_vec()));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            got,
            vec![(1, b"hello".to_vec()), (2, vec![]), (3, b"x".to_vec())]
        );
        assert_eq!(report.segments, 1);
        assert_eq!(report.entries, 3);
        assert_eq!(report.payload_bytes, 6);
        assert_eq!(report.first_id, Some(1));
        assert_eq!(report.next_id, 4);
        assert_eq!(report.torn_at, None);
    }
}

const GOLDEN_RECORD_LOG: &str = "
    4455524c 01 02 00 00  1032547698badcfe  0000000000000000  0100000000000000  0000000000000000  00000000  f1bc040c
    2e76ac20 01000010 61
    c1325c50 02000010 6263
    d9577cd6 18000020 4300000000000000 0300000000000000 1032547698badcfe
    f812f974 01000010 64";

#[test]
fn golden_record_log() {
    let id = 0xFEDC_BA98_7654_3210;
    let mut st = MemStorage::new();
    let mut w = RecordLogWriter::new(&mut st, vec![0u8; 64], id);
    assert_eq!(w.append(b"a").unwrap(), 1);
    assert_eq!(w.append(b"bc").unwrap(), 2);
    w.sync().unwrap();
    assert_eq!(w.append(b"d").unwrap(), 3);
    w.flush().unwrap();
    drop(w);
    assert_eq!(st.segments.keys().copied().collect::<Vec<_>>(), vec![0]);
    let seg = &st.segments[&0];
    assert_eq!(to_hex(seg), to_hex(&hex(GOLDEN_RECORD_LOG)));
    let mut spec = spec_header(2, 0, id, 0, 1, 0).to_vec();
    spec.extend(spec_entry(id, 0, 1, b"a", 1));
    spec.extend(spec_entry(id, 0, 2, b"bc", 1));
    spec.extend(spec_marker(id, 0, 67, 3, 1));
    spec.extend(spec_entry(id, 0, 3, b"d", 1));
    assert_eq!(to_hex(seg), to_hex(&spec));
    assert_eq!(
        rl_strict(&mut st),
        vec![(1, b"a".to_vec()), (2, b"bc".to_vec()), (3, b"d".to_vec())]
    );
}

#[test]
fn golden_segment_header() {
    let h = SegmentHeader {
        kind: LogKind::Wal,
        align_log2: 2,
        log_id: LOG_ID,
        segment: 7,
        first_id: 100,
        prev_end: 4096,
        form: FrameForm::Long,
    };
    let mut out = [0xAAu8; 48];
    h.emit(&mut out);
    assert_eq!(
        to_hex(&out),
        to_hex(&hex("4455524c 01 01 02 00 efcdab8967452301 0700000000000000 6400000000000000 0010000000000000 00000000 8f65fa54"))
    );
    assert_eq!(out, spec_header(1, 2, LOG_ID, 7, 100, 4096));
    assert_eq!(SegmentHeader::parse(&out), Ok(h));
    assert_eq!(h.align(), 4);
    assert_eq!(h.data_start(), 48);
    let h32 = SegmentHeader { align_log2: 5, ..h };
    assert_eq!(h32.data_start(), 64);
    // A record-log header round-trips too.
    let r = SegmentHeader {
        kind: LogKind::RecordLog,
        align_log2: 0,
        log_id: 1,
        segment: 0,
        first_id: 1,
        prev_end: 0,
        form: FrameForm::Long,
    };
    r.emit(&mut out);
    assert_eq!(out, spec_header(2, 0, 1, 0, 1, 0));
    assert_eq!(SegmentHeader::parse(&out), Ok(r));
}

#[test]
fn golden_frame_seal() {
    let seal = FrameSeal::new(LOG_ID, 7, FrameForm::Long);
    let head = seal.seal(FrameKind::Entry, 100, b"payload");
    assert_eq!(to_hex(&head), "bc81175f07000010");
    assert_eq!(&spec_entry(LOG_ID, 7, 100, b"payload", 1)[..8], &head[..]);
    let m = SyncMarker {
        watermark: 4144,
        next_id: 101,
        log_id: LOG_ID,
    };
    let mp = m.emit();
    assert_eq!(
        to_hex(&mp),
        "30100000000000006500000000000000efcdab8967452301"
    );
    assert_eq!(SyncMarker::parse(&mp), m);
    let mh = seal.seal(FrameKind::SyncMarker, 0, &mp);
    assert_eq!(to_hex(&mh), "8952453f18000020");
    assert_eq!(&spec_marker(LOG_ID, 7, 4144, 101, 1)[..8], &mh[..]);

    let parsed = FrameHeader::parse(&head, FrameForm::Long).unwrap();
    assert_eq!(parsed.kind, FrameKind::Entry);
    assert_eq!(parsed.len, 7);
    assert_eq!(parsed.crc, 0x5F17_81BC);
    assert_eq!(parsed.word(), 0x1000_0007);
    assert!(parsed.verify(&seal, 100, b"payload"));
    assert!(
        !parsed.verify(&seal, 101, b"payload"),
        "the implicit entry id is checked"
    );
    assert!(
        !parsed.verify(&FrameSeal::new(LOG_ID, 8, FrameForm::Long), 100, b"payload"),
        "the segment is checked"
    );
    assert!(
        !parsed.verify(
            &FrameSeal::new(LOG_ID ^ 1, 7, FrameForm::Long),
            100,
            b"payload"
        ),
        "the log id is checked"
    );
    assert!(!parsed.verify(&seal, 100, b"paylaod"));
    assert_eq!(parsed.frame_len(1), 15);
    assert_eq!(parsed.frame_len(4), 16);
    assert_eq!(parsed.frame_len(32), 32);
    assert_eq!(frame_len(0, 1), 8);
    assert_eq!(frame_len(16, 32), 32);
    assert_eq!(frame_len(25, 32), 64);
}

#[test]
fn golden_crc_values() {
    // RFC 3720 appendix B.4 and the standard check value.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    assert_eq!(crc32c(&(0..32u8).collect::<Vec<_>>()), 0x46DD_794E);
    assert_eq!(crc32c(&(0..32u8).rev().collect::<Vec<_>>()), 0x113F_DB5C);
    assert_eq!(crc32c(b"DURL"), 0xFF14_3BE3);
    assert_eq!(crc32c(b"hello"), 0x9A71_BB4C);
    // Against the bitwise reference on pseudo-random inputs, whole and split.
    let mut r = Rng(7);
    for len in 0..300 {
        let data: Vec<u8> = (0..len).map(|_| r.byte()).collect();
        assert_eq!(crc32c(&data), ref_crc32c(&data), "len {len}");
        let cut = if len == 0 {
            0
        } else {
            r.below(len as u64) as usize
        };
        let mut c = Crc32c::new();
        c.update(&data[..cut]);
        c.update(&data[cut..]);
        assert_eq!(c.finalize(), ref_crc32c(&data), "split at {cut} of {len}");
    }
    assert_eq!(Crc32c::default().finalize(), 0);
}

#[test]
fn erased_and_zeroed_bytes_never_parse() {
    assert_eq!(FrameHeader::parse(&[0u8; 8], FrameForm::Long), None);
    assert_eq!(FrameHeader::parse(&[0xFFu8; 8], FrameForm::Long), None);
    // Whatever the checksum bytes hold, kind 0 and kind 15 never parse.
    let mut r = Rng(3);
    for _ in 0..1000 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = r.byte());
        b[7] &= 0x0F;
        assert_eq!(FrameHeader::parse(&b, FrameForm::Long), None);
        b[7] |= 0xF0;
        assert_eq!(FrameHeader::parse(&b, FrameForm::Long), None);
    }
    assert_eq!(SegmentHeader::parse(&[0u8; 48]), Err(HeaderError::Invalid));
    assert_eq!(
        SegmentHeader::parse(&[0xFFu8; 48]),
        Err(HeaderError::Invalid)
    );
    assert_eq!(SegmentHeader::parse(&[0u8; 47]), Err(HeaderError::Short));
    assert_eq!(SegmentHeader::parse(&[]), Err(HeaderError::Short));
}

#[test]
fn frame_header_kinds_and_lengths() {
    for kind in 0u32..16 {
        for len in [
            0u32,
            1,
            15,
            16,
            24,
            17,
            1000,
            MAX_ENTRY_LEN,
            MAX_ENTRY_LEN + 1,
            0x0FFF_FFFF,
        ] {
            let word = kind << 28 | len;
            let mut b = [0u8; 8];
            b[4..].copy_from_slice(&word.to_le_bytes());
            let parsed = FrameHeader::parse(&b, FrameForm::Long);
            let valid = match kind {
                1 => len <= MAX_ENTRY_LEN,
                2 => len == 24,
                _ => false,
            };
            assert_eq!(parsed.is_some(), valid, "kind {kind} len {len}");
            if let Some(h) = parsed {
                assert_eq!(h.len, len);
                assert_eq!(h.word(), word);
            }
        }
    }
}

#[test]
fn header_parse_rejects_bad_fields() {
    let good = spec_header(1, 0, LOG_ID, 3, 5, 99);
    assert!(SegmentHeader::parse(&good).is_ok());
    // Every single-bit flip breaks the checksum (or the magic).
    for bit in 0..48 * 8 {
        let mut b = good;
        b[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            SegmentHeader::parse(&b),
            Err(HeaderError::Invalid),
            "bit {bit}"
        );
    }
    // Fields that are invalid even with a correct checksum.
    let reseal = |f: &dyn Fn(&mut [u8; 48])| {
        let mut b = good;
        f(&mut b);
        let crc = ref_crc32c(&b[..44]);
        b[44..].copy_from_slice(&crc.to_le_bytes());
        SegmentHeader::parse(&b)
    };
    assert_eq!(reseal(&|b| b[5] = 0), Err(HeaderError::Invalid), "kind 0");
    assert_eq!(reseal(&|b| b[5] = 3), Err(HeaderError::Invalid), "kind 3");
    assert_eq!(reseal(&|b| b[6] = 6), Err(HeaderError::Invalid), "align 64");
    assert_eq!(
        reseal(&|b| b[6] = 200),
        Err(HeaderError::Invalid),
        "align 2^200"
    );
    assert!(reseal(&|b| b[6] = 5).is_ok(), "align 32");
    assert_eq!(
        reseal(&|b| b[7] = 1),
        Err(HeaderError::Invalid),
        "reserved0"
    );
    assert_eq!(
        reseal(&|b| b[42] = 1),
        Err(HeaderError::Invalid),
        "reserved1"
    );
    assert_eq!(
        reseal(&|b| b[4] = 3),
        Err(HeaderError::Version(3)),
        "version"
    );
    assert_eq!(
        reseal(&|b| b[4] = 0),
        Err(HeaderError::Version(0)),
        "version 0"
    );
    assert_eq!(
        reseal(&|b| b[4] = 2).map(|h| h.form),
        Ok(FrameForm::Short),
        "version 2: short frames"
    );
    assert_eq!(reseal(&|b| b[0] = b'X'), Err(HeaderError::Invalid), "magic");
}

#[test]
fn unsupported_version_is_reported() {
    let mut st = golden_wal(1);
    let seg = st.segments.get_mut(&1).unwrap();
    seg[4] = 3;
    let crc = ref_crc32c(&seg[..44]);
    seg[44..48].copy_from_slice(&crc.to_le_bytes());
    let before = st.clone().segments;
    for mode in MODES {
        let (got, res) = wal_replay(&mut st, mode);
        assert!(got.is_empty());
        assert_eq!(res.unwrap_err(), Error::UnsupportedVersion(3));
    }
    let e = WalWriter::open(&mut st, Vec::new(), WalConfig::new(LOG_ID))
        .err()
        .unwrap();
    assert_eq!(e, Error::UnsupportedVersion(3));
    assert_eq!(
        st.segments, before,
        "open must not touch a log of another version"
    );
}

/// The checkpoint format (64-byte header, payload), pinned.
#[test]
fn golden_checkpoint() {
    use durability_core::checkpoint::{decode, field, CheckpointHeader, CheckpointStore};
    let h = CheckpointHeader::new(0x0123_4567_89AB_CDEF, 3, 42, b"state").unwrap();
    let mut image = h.emit().to_vec();
    image.extend_from_slice(b"state");
    assert_eq!(image.len(), field::HEADER_LEN + 5);
    assert_eq!(
        to_hex(&image),
        concat!(
            "44555243", // magic "DURC"
            "01",
            "01",
            "0000",                                             // version, kind, reserved
            "efcdab8967452301",                                 // log_id
            "0300000000000000",                                 // seq
            "2a00000000000000",                                 // last_id 42
            "05000000",                                         // len
            "000000000000000000000000000000000000000000000000", // reserved
            "eeb9e281",                                         // crc
            "7374617465",                                       // payload "state"
        )
    );
    let (parsed, payload) = decode(&image).unwrap();
    assert_eq!((parsed, payload), (h, &b"state"[..]));
    // The store writes the same bytes, with its number as `seq`.
    let mut store = CheckpointStore::new(MemStorage::new());
    store.write(0x0123_4567_89AB_CDEF, 42, b"a").unwrap();
    store.write(0x0123_4567_89AB_CDEF, 42, b"state").unwrap();
    assert_eq!(store.storage().segments[&2], {
        let mut img = CheckpointHeader::new(0x0123_4567_89AB_CDEF, 2, 42, b"state")
            .unwrap()
            .emit()
            .to_vec();
        img.extend_from_slice(b"state");
        img
    });
}
