//! A record log from arbitrary bytes: read in both modes through a growable and a small
//! fixed buffer, then a writer opened on it must refuse it with nothing changed, or cut
//! a torn tail and continue it with contiguous indices.
//!
//! Input: byte 0 selects the mode (bit 0) and the fixed buffer size. Raw mode: the rest
//! is the log verbatim. Built mode: the real writer, then damage with re-sealed CRCs.
#![no_main]

use durability_core::mem::MemStorage;
use durability_fuzz::{build_recordlog, check_recordlog, damage, In};
use libfuzzer_sys::fuzz_target;

const FIXED: [usize; 6] = [8, 16, 40, 64, 256, 4096];

fuzz_target!(|data: &[u8]| {
    let mut inp = In::new(data);
    let mode = inp.u8();
    let fixed_len = FIXED[(mode >> 1) as usize % FIXED.len()];
    let (bytes, ws) = if mode & 1 == 0 {
        (inp.rest().to_vec(), 1)
    } else {
        let (mut b, ws) = build_recordlog(&mut inp);
        damage(&mut b, &mut inp, 8);
        (b, ws)
    };
    let mut params = In::new(data);
    let mut st = MemStorage::with_write_size(ws);
    st.segments.insert(0, bytes);
    check_recordlog(&st, fixed_len, &mut params);
});
