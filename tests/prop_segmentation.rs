//! Segmentation and buffer-size invariance: the same stream of entries, written with any
//! segment limit, any write size (1, 4, 32 bytes), any writer buffer (64 B to 64 KiB),
//! either append path (`append` or the in-place `append_with`) and any pattern of syncs
//! and flushes, replays to the same `(id, payload)` list — read through a growing `Vec`
//! or a fixed buffer. A segment never exceeds its limit unless it holds a single entry
//! that is larger than the limit on its own.

use durability::core::mem::MemStorage;
use durability::core::wal::{WalConfig, WalReader, WalWriter};
use durability::core::{Buffer, Error, ReadMode};
use proptest::prelude::*;

const LOG_ID: u64 = 0x5E6_0000_1234;
const HEADER_LEN: usize = 48;
const MODES: [ReadMode; 2] = [ReadMode::Strict, ReadMode::BestEffort];

type Entries = Vec<(u64, Vec<u8>)>;

#[derive(Debug, Clone, Copy)]
enum After {
    Nothing,
    Sync,
    Flush,
}

#[derive(Debug, Clone)]
struct Entry {
    len: usize,
    /// Written with `append_with` (serialized in place) rather than `append`.
    in_place: bool,
    after: After,
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    ws: usize,
    limit: u64,
    wbuf: usize,
}

#[derive(Debug, Clone)]
struct Case {
    entries: Vec<Entry>,
    layouts: Vec<Layout>,
    /// Extra bytes of the fixed read buffer beyond the largest frame.
    fixed_extra: usize,
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    (
        prop_oneof![
            1 => Just(0usize),
            8 => 1usize..64,
            3 => 64usize..400,
            1 => 400usize..5000,
        ],
        any::<bool>(),
        prop_oneof![
            6 => Just(After::Nothing),
            1 => Just(After::Sync),
            1 => Just(After::Flush),
        ],
    )
        .prop_map(|(len, in_place, after)| Entry {
            len,
            in_place,
            after,
        })
}

fn layout_strategy() -> impl Strategy<Value = Layout> {
    (
        prop::sample::select(vec![1usize, 4, 32]),
        prop_oneof![
            Just(0u64),
            1u64..200,
            200u64..1000,
            1000u64..10_000,
            Just(u64::MAX),
        ],
        prop_oneof![
            Just(64usize),
            65usize..300,
            prop::sample::select(vec![512usize, 4096, 65536]),
        ],
    )
        .prop_map(|(ws, limit, wbuf)| Layout { ws, limit, wbuf })
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(entry_strategy(), 0..60),
        prop::collection::vec(layout_strategy(), 2..4),
        prop_oneof![Just(0usize), 1usize..100, 100usize..70_000],
    )
        .prop_map(|(entries, layouts, fixed_extra)| Case {
            entries,
            layouts,
            fixed_extra,
        })
}

fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ len as u64 ^ 0xABCD;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as u8
        })
        .collect()
}

fn expected(c: &Case) -> Entries {
    c.entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, payload(i as u64 + 1, e.len)))
        .collect()
}

/// Writes the stream with one layout; everything is flushed at the end.
fn write(c: &Case, l: Layout) -> MemStorage {
    let mut st = MemStorage::with_write_size(l.ws);
    let cfg = WalConfig {
        segment_limit: l.limit,
        log_id: LOG_ID,
        first_id: 1,
        covered_through: 0,
    };
    let mut w = WalWriter::new(&mut st, vec![0u8; l.wbuf], cfg);
    for (i, e) in c.entries.iter().enumerate() {
        let want = i as u64 + 1;
        let p = payload(want, e.len);
        let id = if e.in_place {
            let staged = w
                .append_with(|buf| {
                    let dst = buf.get_mut(..p.len())?;
                    dst.copy_from_slice(&p);
                    Some(p.len())
                })
                .unwrap();
            match staged {
                Some(id) => id,
                // Larger than the whole buffer: nothing was staged, append it instead.
                None => w.append(&p).unwrap(),
            }
        } else {
            w.append(&p).unwrap()
        };
        assert_eq!(id, want, "{l:?}: ids contiguous from 1");
        match e.after {
            After::Nothing => {}
            After::Sync => w.sync().unwrap(),
            After::Flush => w.flush().unwrap(),
        }
    }
    w.flush().unwrap();
    drop(w);
    st
}

fn replay<B: Buffer>(
    st: &mut MemStorage,
    buf: B,
    mode: ReadMode,
) -> (Entries, Result<u64, String>) {
    let mut got = Vec::new();
    let r = WalReader::new(st, buf).replay(mode, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    (got, r.map(|rep| rep.next_id).map_err(|e| format!("{e:?}")))
}

fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let want = expected(c);
    let n = want.len() as u64;
    let max_len = c.entries.iter().map(|e| e.len).max().unwrap_or(0);
    for &l in &c.layouts {
        let mut st = write(c, l);
        for mode in MODES {
            prop_assert_eq!(
                replay(&mut st, Vec::new(), mode),
                (want.clone(), Ok(n + 1)),
                "{:?} {:?} growing buffer",
                l,
                mode
            );
            // A fixed buffer that holds the largest frame (and a sync marker).
            let size = round_up(8 + max_len, 32).max(64) + c.fixed_extra;
            let mut fixed = vec![0u8; size];
            prop_assert_eq!(
                replay(&mut st, &mut fixed[..], mode),
                (want.clone(), Ok(n + 1)),
                "{:?} {:?} fixed buffer of {}",
                l,
                mode,
                size
            );
        }

        // Segment limits: a segment only exceeds the limit with a single entry in it.
        let effective = l.limit.max(round_up(HEADER_LEN, l.ws) as u64 + 1);
        let segs: Vec<(&u64, &Vec<u8>)> = st.segments.iter().collect();
        for (i, (num, bytes)) in segs.iter().enumerate() {
            prop_assert_eq!(u64_at(bytes, 16), **num, "header names its segment");
            let first = u64_at(bytes, 24);
            let next = segs.get(i + 1).map_or(n + 1, |(_, b)| u64_at(b, 24));
            let entries = next - first;
            prop_assert!(
                bytes.len() as u64 <= effective || entries == 1,
                "{:?}: segment {} is {} bytes with {} entries",
                l,
                num,
                bytes.len(),
                entries
            );
            if i + 1 < segs.len() {
                prop_assert!(
                    entries >= 1,
                    "{:?}: sealed segment {} has no entries",
                    l,
                    num
                );
            }
        }
    }
    Ok(())
}

/// A fixed read buffer too small for a valid frame: the entries before it are
/// delivered, then `BufferTooSmall` (never a torn tail or corruption); `replay_from`
/// past the large entries verifies them by streaming and needs no larger buffer.
fn check_small_buffer(c: &Case) -> Result<(), TestCaseError> {
    let want = expected(c);
    let l = c.layouts[0];
    let mut st = write(c, l);
    let size = 64 + c.fixed_extra % 200;
    let too_big = |len: usize| 8 + len > size;
    let first_big = c.entries.iter().position(|e| too_big(e.len));
    for mode in MODES {
        let mut fixed = vec![0u8; size];
        let mut got = Vec::new();
        let r = WalReader::new(&mut st, &mut fixed[..]).replay(mode, |id, p| {
            got.push((id, p.to_vec()));
            Ok(())
        });
        match first_big {
            None => {
                prop_assert!(r.is_ok(), "{:?}", r);
                prop_assert_eq!(&got, &want);
            }
            Some(i) => {
                prop_assert!(
                    matches!(r, Err(Error::BufferTooSmall { needed }) if needed >= 8 + c.entries[i].len as u64),
                    "{:?}: {:?}",
                    mode,
                    r
                );
                prop_assert_eq!(&got[..], &want[..i]);
            }
        }
        // Deliver only the entries after the last one that does not fit.
        let from = c
            .entries
            .iter()
            .rposition(|e| too_big(e.len))
            .map_or(1, |i| i as u64 + 2);
        let mut got = Vec::new();
        let r = WalReader::new(&mut st, &mut fixed[..]).replay_from(mode, from, |id, p| {
            got.push((id, p.to_vec()));
            Ok(())
        });
        prop_assert!(r.is_ok(), "replay_from {}: {:?}", from, r);
        prop_assert_eq!(&got[..], &want[(from - 1) as usize..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replay_is_invariant_under_segmentation_and_buffers(c in case_strategy()) {
        check(&c)?;
    }

    #[test]
    fn small_fixed_read_buffer_is_reported_not_misread(c in case_strategy()) {
        check_small_buffer(&c)?;
    }
}

/// The extremes of each axis on one stream: every entry in its own segment, one
/// segment for everything, write sizes 1/4/32, the smallest and largest buffers.
#[test]
fn extremes_replay_identically() {
    let entries: Vec<Entry> = (0..40)
        .map(|i| Entry {
            len: [0, 1, 7, 31, 32, 33, 200, 3000][i % 8],
            in_place: i % 3 == 0,
            after: [After::Nothing, After::Sync, After::Flush][i % 3],
        })
        .collect();
    let mut layouts = Vec::new();
    for ws in [1, 4, 32] {
        for limit in [0, 100, u64::MAX] {
            for wbuf in [64, 65_536] {
                layouts.push(Layout { ws, limit, wbuf });
            }
        }
    }
    let c = Case {
        entries,
        layouts,
        fixed_extra: 0,
    };
    check(&c).unwrap();
    check_small_buffer(&c).unwrap();
    // Limit 0: every entry got a segment of its own.
    let st = write(
        &c,
        Layout {
            ws: 1,
            limit: 0,
            wbuf: 64,
        },
    );
    assert_eq!(st.segments.len(), c.entries.len());
}
