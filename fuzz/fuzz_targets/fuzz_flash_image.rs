//! Damaged NOR-flash images through `durability-embedded`'s `FlashStorage` over
//! `SimFlash`: mount, replay (strict and best-effort), `WalWriter::open` + append + sync
//! + remount, lifecycle recovery (both modes) + a writer after it + recovery again.
//!
//! Byte 0 picks the mode (and the word size, `1`, `4` or `16` bytes, by `% 3`):
//! - bit 7 set: raw — the rest of the input is the chip (16 WAL + 4 checkpoint units of
//!   256 bytes, cut or padded with 0xFF), mounted as it is; only structural checks
//!   apply (no panic, contiguous ids, modes agree, a writer that opens appends and its
//!   entry reads back);
//! - bit 7 clear: built — the input is decoded as a case (payload lengths, writer
//!   steps, publishes, reboots, an optional power cut, then damage: bit clears and
//!   flips, bytes, 0xFF/0x00 words, erased tails, garbled / erased / copied / swapped
//!   units); the image is written by the real writer, so every delivered entry is also
//!   checked against the payload written under its id.
//!
//! The scenario is the one of `embedded-backend/tests/flash_image_damage.rs`, included
//! by path so the proptest and the fuzzer check the same things.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../embedded-backend/tests/flash_image_damage/scenario.rs"]
mod scenario;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        scenario::run_raw(mode & 0x7F, rest);
    } else {
        scenario::run(&scenario::spec_from_bytes(data));
    }
});
