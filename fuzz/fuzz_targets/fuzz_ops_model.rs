//! The WAL writer against a model, through crashes.
//!
//! The input is a configuration (write size, unwritten byte, resume in place or not,
//! first id, buffer size, segment limit) and then a sequence of operations on the core
//! `WalWriter` over a [`SimStorage`]: append, append through the in-place encoder,
//! flush, sync, segment limit changes, injected write/sync failures, and crashes. A
//! crash keeps every segment's durable prefix (what completed barriers covered) and
//! damages what lies past it (torn, zeroed, garbage, grown, vanished), then reopens.
//!
//! The model is the list of appended payloads and how many of them a successful sync
//! made durable. After each crash: best-effort replay succeeds; it returns every
//! durable entry, then a contiguous prefix of the rest, in order, ids contiguous from
//! the first id, nothing invented; strict agrees or reports a torn tail; the reopened
//! writer continues right after what replay returned and opening changes nothing.
#![no_main]

use durability_core::mem::MemError;
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::Error;
use durability_fuzz::{
    check_wal_replay, payload_len, prng_bytes, write_size, Fail, In, SimStorage,
};
use libfuzzer_sys::fuzz_target;

type Writer = WalWriter<SimStorage, Vec<u8>>;

struct Model {
    first_id: u64,
    /// Every payload appended and not lost to a crash, in id order.
    entries: Vec<Vec<u8>>,
    /// How many of them a completed barrier covers.
    durable: usize,
}

impl Model {
    fn next_id(&self) -> u64 {
        self.first_id + self.entries.len() as u64
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = In::new(data);
    let ws = write_size(&mut inp);
    let flags = inp.u8();
    let unwritten = if flags & 1 == 1 { 0xFF } else { 0x00 };
    let in_place = flags & 2 == 0;
    let first_id = if flags & 4 == 0 {
        1
    } else {
        1 + inp.u16() as u64 * 1_000_003
    };
    let cfg = WalConfig {
        segment_limit: limit(&mut inp),
        log_id: inp.u64(),
        first_id,
        covered_through: 0,
    };
    let bufsize = 64 + inp.below(1024) as usize;
    let fixed_len = 16 + inp.below(512) as usize;

    let st = SimStorage::new(ws, unwritten, in_place);
    let mut w = WalWriter::open(st, vec![0u8; bufsize], cfg).expect("open a new WAL");
    let mut m = Model {
        first_id,
        entries: Vec::new(),
        durable: 0,
    };
    let mut ops = 0;
    while !inp.is_empty() && ops < 200 {
        ops += 1;
        if w.is_poisoned() {
            // A poisoned writer refuses everything; the only way on is a restart.
            assert_eq!(w.append(b"x"), Err(Error::Poisoned));
            assert_eq!(w.sync(), Err(Error::Poisoned));
            w = crash(w, &mut m, &mut inp, cfg, bufsize, fixed_len);
            continue;
        }
        match inp.u8() % 10 {
            0..=2 => {
                let p = prng_bytes(inp.u64(), payload_len(&mut inp));
                match w.append(&p) {
                    Ok(id) => {
                        assert_eq!(id, m.next_id(), "id of an append");
                        m.entries.push(p);
                    }
                    Err(e) => expect_injected(&w, e),
                }
            }
            3 => {
                let p = prng_bytes(inp.u64(), payload_len(&mut inp));
                let r = w.append_with(|buf| {
                    let dst = buf.get_mut(..p.len())?;
                    dst.copy_from_slice(&p);
                    Some(p.len())
                });
                let r = match r {
                    Ok(None) => w.append(&p),
                    Ok(Some(id)) => Ok(id),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(id) => {
                        assert_eq!(id, m.next_id(), "id of an append_with");
                        m.entries.push(p);
                    }
                    Err(e) => expect_injected(&w, e),
                }
            }
            4 => {
                if let Err(e) = w.flush() {
                    expect_injected(&w, e);
                }
            }
            5 | 6 => match w.sync() {
                Ok(()) => m.durable = m.entries.len(),
                Err(e) => expect_injected(&w, e),
            },
            7 => {
                let l = limit(&mut inp);
                w.set_segment_limit(l);
            }
            8 => {
                let f = if inp.bool() {
                    Fail::Sync
                } else {
                    Fail::Write {
                        keep: inp.u16() as usize,
                    }
                };
                w.storage().fail = Some(f);
            }
            _ => w = crash(w, &mut m, &mut inp, cfg, bufsize, fixed_len),
        }
    }
    crash(w, &mut m, &mut inp, cfg, bufsize, fixed_len);
});

fn limit(inp: &mut In) -> u64 {
    match inp.u8() % 4 {
        0 => inp.u8() as u64,
        1 | 2 => 64 + inp.u16() as u64 % 4096,
        _ => u64::MAX,
    }
}

/// The only errors a writer over this storage may return come from injected failures,
/// and they poison it.
fn expect_injected(w: &Writer, e: Error<MemError>) {
    assert!(
        matches!(e, Error::Storage(MemError::BadWrite)),
        "unexpected writer error: {e:?}"
    );
    assert!(w.is_poisoned(), "a storage error did not poison the writer");
}

fn crash(
    w: Writer,
    m: &mut Model,
    inp: &mut In,
    cfg: WalConfig,
    bufsize: usize,
    fixed_len: usize,
) -> Writer {
    // Staged bytes die with the process.
    let (mut st, _) = w.into_parts();
    st.crash(inp);

    let be = check_wal_replay(&mut st, fixed_len, inp);
    if let Err(e) = &be.result {
        panic!("replay failed after a legal crash: {e:?}");
    }
    let n = be.entries.len();
    assert!(
        n >= m.durable,
        "lost durable entries: replay has {n}, {} were synced",
        m.durable
    );
    assert!(
        n <= m.entries.len(),
        "replay invented entries: {n} > {} appended",
        m.entries.len()
    );
    for (i, (id, p)) in be.entries.iter().enumerate() {
        assert_eq!(*id, m.first_id + i as u64, "id of replayed entry {i}");
        assert!(
            *p == m.entries[i],
            "replayed entry {id} differs from what was appended"
        );
    }
    m.entries.truncate(n);
    m.durable = m.durable.min(n);

    let before = st.mem.segments.clone();
    let mut w = WalWriter::open(st, vec![0u8; bufsize], cfg).expect("reopen after a crash");
    assert_eq!(
        w.next_id().expect("open"),
        m.next_id(),
        "next id after reopen"
    );
    // Opening destroys nothing: same entries, and old segments untouched except where
    // a torn tail or torn creation was replaced.
    let (after, _) = durability_fuzz::replay_wal(
        w.storage(),
        Vec::new(),
        durability_core::ReadMode::BestEffort,
    );
    assert_eq!(
        after.entries, be.entries,
        "opening changed what replay returns"
    );
    let now = w.storage();
    for (seg, bytes) in &before {
        if let Some(cur) = now.mem.segments.get(seg) {
            let keep = now.synced.get(seg).copied().unwrap_or(0);
            let keep = keep.min(bytes.len()).min(cur.len());
            assert_eq!(&cur[..keep], &bytes[..keep], "open rewrote durable bytes");
        }
    }
    w
}
