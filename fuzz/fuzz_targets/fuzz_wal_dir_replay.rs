//! A whole WAL directory (1 to 4 segments) from arbitrary bytes: replay in both modes,
//! then a writer opened on it must refuse it with nothing changed, or continue it with
//! contiguous ids after the best-effort prefix.
//!
//! Input: byte 0 selects the mode (bit 0), the segment count, numbering and fixed buffer
//! size. Raw mode: split points, then the rest cut into segments. Built mode: the real
//! writer with a small segment limit, then per-segment damage (re-sealed CRCs included)
//! and directory damage: removed, renumbered, copied or swapped segments.
#![no_main]

use durability_core::mem::MemStorage;
use durability_fuzz::{build_wal, check_wal_replay, check_wal_writer, damage, In};
use libfuzzer_sys::fuzz_target;

const FIXED: [usize; 4] = [16, 64, 200, 4096];

fuzz_target!(|data: &[u8]| {
    let mut inp = In::new(data);
    let mode = inp.u8();
    let fixed_len = FIXED[(mode >> 6) as usize];
    let mut st = if mode & 1 == 0 {
        raw(&mut inp, mode)
    } else {
        built(&mut inp)
    };
    let mut params = if mode & 1 == 0 { In::new(data) } else { inp };
    let be = check_wal_replay(&mut st, fixed_len, &mut params);
    check_wal_writer(&st, &be, &mut params);
});

fn raw(inp: &mut In, mode: u8) -> MemStorage {
    let n = 1 + ((mode >> 1) % 4) as usize;
    let base = match (mode >> 3) % 4 {
        0 => 1,
        1 => inp.u8() as u64,
        2 => inp.edge_u64(),
        _ => u64::MAX - 3,
    };
    let scattered = (mode >> 5) & 1 == 1;
    let numbers: Vec<u64> = (0..n as u64)
        .map(|i| {
            if scattered {
                inp.edge_u64()
            } else {
                base.wrapping_add(i)
            }
        })
        .collect();
    let mut cuts: Vec<u16> = (1..n).map(|_| inp.u16()).collect();
    let rest = inp.bytes(usize::MAX);
    let mut cuts: Vec<usize> = cuts
        .drain(..)
        .map(|c| c as usize % (rest.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut st = MemStorage::new();
    let mut start = 0;
    for (i, &num) in numbers.iter().enumerate() {
        let end = cuts.get(i).copied().unwrap_or(rest.len());
        st.segments.insert(num, rest[start..end].to_vec());
        start = end;
    }
    st
}

fn built(inp: &mut In) -> MemStorage {
    let mut mem = build_wal(inp, false);
    for _ in 0..inp.below(6) {
        let segs: Vec<u64> = mem.segments.keys().copied().collect();
        if segs.is_empty() {
            break;
        }
        let s = segs[inp.below(segs.len() as u64) as usize];
        let other = match inp.u8() % 4 {
            0 => s.wrapping_add(1),
            1 => s.wrapping_sub(1),
            2 => segs[inp.below(segs.len() as u64) as usize],
            _ => inp.edge_u64(),
        };
        match inp.u8() % 8 {
            0..=3 => damage(mem.segments.get_mut(&s).expect("listed"), inp, 4),
            4 => {
                mem.segments.remove(&s);
            }
            5 => {
                let b = mem.segments.remove(&s).expect("listed");
                mem.segments.insert(other, b);
            }
            6 => {
                let b = mem.segments[&s].clone();
                mem.segments.insert(other, b);
            }
            _ => {
                let a = mem.segments.remove(&s).expect("listed");
                let b = mem.segments.remove(&other);
                if let Some(b) = b {
                    mem.segments.insert(s, b);
                }
                mem.segments.insert(other, a);
            }
        }
    }
    mem
}
