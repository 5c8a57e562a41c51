//! A checkpoint from arbitrary bytes, through every reader: the core codec
//! (`checkpoint::decode`), the std facade's `CheckpointFile` over a `MemoryDirectory`
//! (`read_bytes`, `read_postcard` as `Vec<u64>` and as `CheckpointState`), and a
//! `CheckpointStore` over `MemStorage` (`latest`, alone and behind a valid older one).
//! All must agree, never panic, and never allocate more than the bytes present.
//!
//! Each input is checked twice: as given, and with its header repaired (magic, version,
//! kind, a length that fits, the right CRC) so the payload decoders get exercised too.
#![no_main]

use std::io::Write;
use std::sync::Arc;

use durability::checkpoint::CheckpointFile;
use durability::checkpointing::CheckpointState;
use durability::storage::{Directory, MemoryDirectory};
use durability_core::checkpoint::{decode, field, CheckpointStore, MAGIC, VERSION};
use durability_core::checksum::Crc32c;
use durability_core::mem::MemStorage;
use durability_core::{Error, Storage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ws = 1usize << (data.first().copied().unwrap_or(0) % 6);
    check(data, ws);
    check(&repaired(data), ws);
});

/// The number the image is stored under in the checkpoint store.
const STORE_SEQ: u64 = 2;

/// `data` with a valid header over as much payload as it announces and has.
fn repaired(data: &[u8]) -> Vec<u8> {
    let mut img = data.to_vec();
    if img.len() < field::HEADER_LEN {
        img.resize(field::HEADER_LEN, 0);
    }
    img[field::MAGIC].copy_from_slice(&MAGIC);
    img[field::VERSION] = VERSION;
    img[field::KIND] = 1;
    img[field::RESERVED].fill(0);
    img[field::RESERVED2].fill(0);
    // The store below keeps the image as checkpoint 2: a checkpoint is valid there only
    // under its own number.
    img[field::SEQ].copy_from_slice(&STORE_SEQ.to_le_bytes());
    let avail = (img.len() - field::HEADER_LEN) as u32;
    let stated = u32::from_le_bytes(img[field::LEN].try_into().expect("4"));
    // Keep an over-long or short length now and then: trailing bytes and truncation.
    let len = if stated % 8 == 0 {
        stated
    } else {
        stated % (avail + 1)
    };
    img[field::LEN].copy_from_slice(&len.to_le_bytes());
    let mut crc = Crc32c::new();
    crc.update(&img[..field::CRC.start]);
    let end = (field::HEADER_LEN + len as usize).min(img.len());
    crc.update(&img[field::HEADER_LEN..end]);
    let c = crc.finalize();
    img[field::CRC].copy_from_slice(&c.to_le_bytes());
    img
}

fn check(img: &[u8], ws: usize) {
    let dec = decode(img);
    if let Ok((h, payload)) = &dec {
        assert_eq!(h.len as usize, payload.len());
        assert_eq!(field::HEADER_LEN + payload.len(), img.len());
        assert_eq!(
            &h.emit()[..],
            &img[..field::HEADER_LEN],
            "header round trip"
        );
    }

    // The std facade, through a directory.
    let mem = MemoryDirectory::new();
    let mut f = mem.create_file("cp/state.ckpt").expect("create");
    f.write_all(img).expect("write");
    drop(f);
    let dir: Arc<dyn Directory> = Arc::new(mem);
    let cf = CheckpointFile::new(dir);
    let rb = cf.read_bytes("cp/state.ckpt");
    match (&dec, &rb) {
        (Ok((h, p)), Ok((h2, p2))) => {
            assert_eq!(h, h2);
            assert_eq!(p, p2);
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("decode {a:?} vs read_bytes {b:?}"),
    }
    let rp = cf.read_postcard::<Vec<u64>>("cp/state.ckpt");
    if let Ok((last, _)) = &rp {
        assert_eq!(Some(*last), dec.as_ref().ok().map(|d| d.0.last_id));
    }
    if dec.is_err() {
        assert!(rp.is_err());
    }
    if let Ok((last, state)) = cf.read_postcard::<CheckpointState>("cp/state.ckpt") {
        assert_eq!(Some(last), dec.as_ref().ok().map(|d| d.0.last_id));
        let _ = state.normalized();
    }

    // The store: the image alone as checkpoint STORE_SEQ.
    let mut st = MemStorage::with_write_size(ws);
    st.segments.insert(STORE_SEQ, img.to_vec());
    let mut store = CheckpointStore::new(&mut st);
    let mut buf = Vec::new();
    let latest = store.latest(&mut buf).expect("latest over MemStorage");
    assert!(
        buf.len() <= img.len(),
        "store reader allocated past the image"
    );
    match latest {
        Some(c) => {
            assert_eq!(c.seq, STORE_SEQ);
            assert_eq!(c.header.seq, STORE_SEQ);
            assert_eq!(c.skipped, 0);
            let end = field::HEADER_LEN + c.header.len as usize;
            let (h, p) = decode(&img[..end]).expect("the store accepted an invalid image");
            assert_eq!(h, c.header);
            assert_eq!(p, &buf[..c.header.len as usize]);
            // Past the padding only never-written bytes.
            let padded = end.div_ceil(ws) * ws;
            assert!(img[padded.min(img.len())..].iter().all(|&b| b == 0));
        }
        None => assert!(
            dec.as_ref().map_or(true, |d| d.0.seq != STORE_SEQ),
            "store rejected a valid image: {dec:?}"
        ),
    }
    let mut fixed = [0u8; 64];
    match store.latest(&mut fixed) {
        Ok(Some(c)) => assert_eq!(Some(c.header), latest.map(|l| l.header)),
        Ok(None) => assert!(latest.is_none()),
        // Only a checkpoint that verifies (checked by streaming) may be refused for
        // not fitting the buffer; a damaged one is skipped like with a `Vec`.
        Err(Error::BufferTooSmall { needed }) => {
            assert!(needed as usize > fixed.len());
            assert!(latest.is_some(), "BufferTooSmall for a checkpoint the Vec path rejected");
            let stated = durability_core::checkpoint::CheckpointHeader::parse(img)
                .expect("BufferTooSmall for an image without a header");
            assert_eq!(stated.len as u64, needed);
        }
        Err(e) => panic!("fixed-buffer latest: {e:?}"),
    }

    // Behind a valid older checkpoint: the newest valid one wins.
    let mut st = MemStorage::with_write_size(ws);
    let mut store = CheckpointStore::new(&mut st);
    let seq = store.write(7, 41, b"older state").expect("write");
    assert_eq!(seq, 1);
    store.storage().create(STORE_SEQ).expect("create");
    store.storage().segments.insert(STORE_SEQ, img.to_vec());
    let mut buf = Vec::new();
    let c = store
        .latest(&mut buf)
        .expect("latest")
        .expect("the older checkpoint is valid");
    match latest {
        Some(l) => {
            assert_eq!((c.seq, c.skipped), (STORE_SEQ, 0));
            assert_eq!(c.header, l.header);
        }
        None => {
            assert_eq!((c.seq, c.skipped), (1, 1));
            assert_eq!((c.header.log_id, c.header.last_id), (7, 41));
            assert_eq!(&buf[..c.header.len as usize], b"older state");
        }
    }
}
