//! `SimFlash` power cuts and images: the simulator's own semantics.
// `drop(flash)` ends the borrow of the bytes: a power-off before inspecting them.
#![allow(clippy::drop_non_drop)]

use durability_embedded::sim::{
    parse_image, ImageError, PowerCut, SimError, SimFlash, TornErase, IMAGE_HEADER_LEN,
};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

const ERASE: usize = 64;

#[test]
fn cut_by_op_tears_one_word_by_and() {
    for seed in 0..64 {
        let mut mem = vec![0xFF; 4 * ERASE];
        let mut f = SimFlash::<4, 4, ERASE>::new(&mut mem);
        f.write(0, &[0x11; 8]).unwrap();
        f.set_power_cut(PowerCut::AtOp(1), seed);
        f.write(8, &[0xAA; 8]).unwrap(); // op 0 completes
        let data = [0x0F; 16];
        assert_eq!(f.write(16, &data), Err(SimError::PowerLost));
        assert!(f.power_lost());
        // Every later call fails, reads too.
        let mut b = [0u8; 4];
        assert_eq!(f.read(0, &mut b), Err(SimError::PowerLost));
        assert_eq!(f.write(32, &[0; 4]), Err(SimError::PowerLost));
        assert_eq!(f.erase(0, ERASE as u32), Err(SimError::PowerLost));
        drop(f);
        assert_eq!(&mem[..8], &[0x11; 8]);
        assert_eq!(&mem[8..16], &[0xAA; 8]);
        let torn = &mem[16..32];
        // Words before the torn one are programmed, words after it untouched; the torn
        // word only lost bits the program clears.
        let w = torn.chunks(4).position(|w| w != [0x0F; 4]).unwrap_or(4);
        for (k, word) in torn.chunks(4).enumerate() {
            if k < w {
                assert_eq!(word, [0x0F; 4]);
            } else if k > w {
                assert_eq!(word, [0xFF; 4], "seed {seed}");
            } else {
                // Bits the program leaves at 1 stay 1: only some of the cleared ones go.
                assert!(word.iter().all(|&b| b & 0x0F == 0x0F), "seed {seed}");
            }
        }
    }
}

#[test]
fn cut_by_bytes_hits_the_word_of_that_byte() {
    for n in 0..24u64 {
        let mut mem = vec![0xFF; 2 * ERASE];
        let mut f = SimFlash::<1, 4, ERASE>::new(&mut mem);
        f.set_power_cut(PowerCut::AtByte(n), n);
        f.write(0, &[0u8; 8]).ok();
        f.erase(ERASE as u32, 2 * ERASE as u32).ok();
        let r = f.write(8, &[0u8; 16]);
        assert!(r.is_err(), "byte {n} is inside the 24 programmed");
        drop(f);
        let word = (n / 4) as usize * 4;
        assert!(
            mem[..word].iter().all(|&b| b == 0),
            "before the torn word: programmed"
        );
        assert!(
            mem[word + 4..24].iter().all(|&b| b == 0xFF),
            "after it: untouched"
        );
    }
}

#[test]
fn cut_erase_leaves_units_before_erased_and_later_ones_untouched() {
    let mut seen_old_header = false;
    let mut seen_header_lost = false;
    for (mode, seeds) in [(TornErase::Any, 0..200), (TornErase::HeaderLost, 0..200)] {
        for seed in seeds {
            let mut mem = vec![0u8; 4 * ERASE];
            let mut f = SimFlash::<4, 4, ERASE>::new(&mut mem);
            f.set_torn_erase(mode);
            f.set_power_cut(PowerCut::AtOp(0), seed);
            assert_eq!(f.erase(0, 4 * ERASE as u32), Err(SimError::PowerLost));
            let stats = f.stats();
            drop(f);
            let torn = stats.erases as usize;
            assert!(torn < 4);
            for (k, u) in mem.chunks(ERASE).enumerate() {
                if k < torn {
                    assert_eq!(u, [0xFF; ERASE]);
                } else if k > torn {
                    assert_eq!(u, [0u8; ERASE], "later units untouched");
                } else if u[..16] == [0u8; 16] && u[16..].contains(&0xFF) {
                    if mode == TornErase::HeaderLost {
                        // a random split may still leave a short old front; never a
                        // whole 48-byte header over an erased back
                        assert!(u[..48] != [0u8; 48], "seed {seed}");
                    } else {
                        seen_old_header |= u[..48] == [0u8; 48];
                    }
                } else if mode == TornErase::HeaderLost {
                    seen_header_lost = true;
                }
            }
        }
    }
    assert!(seen_old_header && seen_header_lost);
}

#[test]
fn cuts_are_deterministic_by_seed() {
    let run = |seed| {
        let mut mem = vec![0xFF; 2 * ERASE];
        let mut f = SimFlash::<8, 8, ERASE>::new(&mut mem);
        f.set_power_cut(PowerCut::AtOp(0), seed);
        f.write(0, &[0u8; 64]).unwrap_err();
        mem
    };
    assert_eq!(run(7), run(7));
    assert!((0..16).any(|s| run(s) != run(7)));
}

#[test]
fn image_header_round_trip() {
    let mut mem = vec![0xFF; 3 * ERASE];
    let mut f = SimFlash::<1, 4, ERASE>::new(&mut mem);
    f.write(4, &[1, 2, 3, 4]).unwrap();
    let mut image = f.image_header().to_vec();
    image.extend_from_slice(f.memory());
    let (g, body) = parse_image(&image).unwrap();
    assert_eq!(
        (g.read, g.write, g.erase, g.len),
        (1, 4, ERASE as u32, 3 * ERASE as u64)
    );
    assert_eq!(body, f.memory());
    assert_eq!(
        SimFlash::<1, 4, ERASE>::image_contents(&image),
        Ok(f.memory())
    );
    assert!(matches!(
        SimFlash::<4, 4, ERASE>::image_contents(&image),
        Err(ImageError::Geometry(_))
    ));
    assert_eq!(
        parse_image(&image[..IMAGE_HEADER_LEN + 1]),
        Err(ImageError::Length)
    );
    let mut bad = image.clone();
    bad[0] ^= 1;
    assert_eq!(parse_image(&bad), Err(ImageError::Magic));
}
