//! CRC-32C (Castagnoli), the one checksum of every format in this crate.
//!
//! Everything that checksums goes through [`Crc32c`], so a faster implementation
//! can be dropped in here without touching the formats. Three backends, one result:
//!
//! - default: the `crc` crate's 1 KiB byte-wise table, about 8x faster than its
//!   table-less default and small enough for flash targets (no_std);
//! - `table16`: the 16 KiB slice-by-16 table (several times faster again) for
//!   hosts where code size is free (no_std);
//! - `hw-crc`: the `crc32c` crate, which uses the CPU's CRC-32C instruction
//!   (SSE 4.2 on x86_64, the CRC extension on aarch64) after a run-time feature
//!   check and falls back to software elsewhere. It needs `std` (for the run-time
//!   check), so this feature makes the crate a std crate; it wins over `table16`.
//!
//! A test pins the hardware path to the `crc` crate's table on random data, random
//! incremental splits and the RFC 3720 vectors.

#[cfg(not(feature = "hw-crc"))]
mod imp {
    use crc::{Crc, Digest, CRC_32_ISCSI};

    #[cfg(not(feature = "table16"))]
    type Table = crc::Table<1>;
    #[cfg(feature = "table16")]
    type Table = crc::Table<16>;

    static CASTAGNOLI: Crc<u32, Table> = Crc::<u32, Table>::new(&CRC_32_ISCSI);

    #[derive(Clone)]
    pub struct State(Digest<'static, u32, Table>);

    impl State {
        pub fn new() -> Self {
            State(CASTAGNOLI.digest())
        }
        pub fn update(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        pub fn finalize(self) -> u32 {
            self.0.finalize()
        }
    }

    pub fn checksum(bytes: &[u8]) -> u32 {
        CASTAGNOLI.checksum(bytes)
    }
}

#[cfg(feature = "hw-crc")]
mod imp {
    /// The running CRC in its finalized form: `crc32c_append` takes and returns
    /// the finalized value, so chaining calls is the incremental computation.
    #[derive(Clone)]
    pub struct State(u32);

    impl State {
        pub fn new() -> Self {
            State(0)
        }
        pub fn update(&mut self, bytes: &[u8]) {
            self.0 = crc32c::crc32c_append(self.0, bytes);
        }
        pub fn finalize(self) -> u32 {
            self.0
        }
    }

    pub fn checksum(bytes: &[u8]) -> u32 {
        crc32c::crc32c(bytes)
    }
}

/// An incremental CRC-32C computation.
#[derive(Clone)]
pub struct Crc32c(imp::State);

impl Crc32c {
    /// Starts a new checksum.
    pub fn new() -> Self {
        Crc32c(imp::State::new())
    }

    /// Feeds `bytes` into the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Returns the checksum of everything fed so far.
    pub fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32C of one byte slice.
pub fn crc32c(bytes: &[u8]) -> u32 {
    imp::checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 appendix B.4 check value and the all-zero 32-byte vector.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        let mut split = Crc32c::new();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.finalize(), 0xE306_9283);
    }

    /// RFC 3720 appendix B.4: the four 32-byte iSCSI vectors.
    #[test]
    fn rfc3720_vectors() {
        let zeros = [0u8; 32];
        let ones = [0xFFu8; 32];
        let mut inc = [0u8; 32];
        let mut dec = [0u8; 32];
        for i in 0..32u8 {
            inc[usize::from(i)] = i;
            dec[usize::from(i)] = 31 - i;
        }
        assert_eq!(crc32c(&zeros), 0x8A91_36AA);
        assert_eq!(crc32c(&ones), 0x62A8_AB43);
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        assert_eq!(crc32c(&dec), 0x113F_DB5C);
        assert_eq!(crc32c(&[]), 0);
    }

    /// Whatever backend is compiled in agrees with the `crc` crate's slice-by-16
    /// table: random lengths 0..4096, random contents, random split points for the
    /// incremental interface.
    #[test]
    fn agrees_with_reference_table() {
        use crc::{Crc, CRC_32_ISCSI};
        let reference = Crc::<u32, crc::Table<16>>::new(&CRC_32_ISCSI);

        // xorshift64*: deterministic, no dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut data = [0u8; 4096];
        for _ in 0..2000 {
            let len = (next() % 4096) as usize;
            for b in data[..len].iter_mut() {
                *b = next() as u8;
            }
            let bytes = &data[..len];
            let want = reference.checksum(bytes);
            assert_eq!(crc32c(bytes), want, "one-shot, len {len}");

            // Up to four random split points, in order.
            let mut cuts = [0usize; 4];
            for c in cuts.iter_mut() {
                *c = if len == 0 {
                    0
                } else {
                    (next() as usize) % (len + 1)
                };
            }
            cuts.sort_unstable();
            let mut inc = Crc32c::new();
            let mut from = 0;
            for &c in &cuts {
                inc.update(&bytes[from..c]);
                from = c;
            }
            inc.update(&bytes[from..]);
            assert_eq!(
                inc.finalize(),
                want,
                "incremental, len {len}, cuts {cuts:?}"
            );
        }
    }
}
