use durability_core::mem::MemStorage;
use durability_core::wal::{WalConfig, WalReader, WalWriter};
use durability_core::ReadMode;

fn collect(
    st: &mut MemStorage,
    mode: ReadMode,
) -> Result<Vec<(u64, Vec<u8>)>, durability_core::Error<durability_core::mem::MemError>> {
    let mut out = Vec::new();
    WalReader::new(st, vec![0u8; 64]).replay(mode, |id, p| {
        out.push((id, p.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn round_trip_with_rotation_and_resume() {
    let mut st = MemStorage::new();
    let mut cfg = WalConfig::new(42);
    cfg.segment_limit = 200;
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], cfg);
    for i in 0..50u32 {
        let payload = vec![i as u8; (i % 40) as usize];
        assert_eq!(w.append(&payload).unwrap(), i as u64 + 1);
        if i % 7 == 0 {
            w.sync().unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    assert!(st.segments.len() > 3, "rotated: {}", st.segments.len());
    let got = collect(&mut st, ReadMode::Strict).unwrap();
    assert_eq!(got.len(), 50);
    for (i, (id, p)) in got.iter().enumerate() {
        assert_eq!(*id, i as u64 + 1);
        assert_eq!(p, &vec![i as u8; i % 40]);
    }
    // tear the last segment and resume
    let last = *st.segments.keys().last().unwrap();
    let seg = st.segments.get_mut(&last).unwrap();
    let n = seg.len();
    seg.truncate(n - 3);
    assert!(collect(&mut st, ReadMode::Strict).is_err());
    let be = collect(&mut st, ReadMode::BestEffort).unwrap();
    assert_eq!(be.len(), 49);
    let mut w = WalWriter::open(&mut st, vec![0u8; 64], cfg).unwrap();
    assert_eq!(w.append(b"next").unwrap(), 50);
    w.sync().unwrap();
    drop(w);
    let got = collect(&mut st, ReadMode::Strict).unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(got[49], (50, b"next".to_vec()));
}

#[test]
fn big_entries_and_small_buffers() {
    let mut st = MemStorage::with_write_size(4);
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(1));
    let big = (0..1000u32).map(|i| i as u8).collect::<Vec<_>>();
    w.append(&big).unwrap();
    w.append(b"x").unwrap();
    w.append(&big[..77]).unwrap();
    w.sync().unwrap();
    drop(w);
    let got = collect(&mut st, ReadMode::Strict).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, big);
    assert_eq!(got[2].1, &big[..77]);
}
