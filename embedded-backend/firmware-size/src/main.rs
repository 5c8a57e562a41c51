//! Size and stack probe for `durability` on a Cortex-M4 (QEMU `mps2-an386`).
//!
//! Over a RAM-backed simulated NOR flash (`SimFlash`, 512-byte erase units, 4-byte
//! program words), with no allocator:
//!
//! 1. append entries 1..=10 with barriers, then entry 11 without one (flushed only);
//! 2. "cut the power": drop everything, damage the unsynced last frame in the raw flash
//!    bytes (its tail bytes back to 0xFF: a torn program);
//! 3. remount, replay (best-effort: 1..=10 and a torn tail; strict: `TornTail`);
//! 4. resume with `WalWriter::open` (ids continue at 11), append 11..=15;
//! 5. `lifecycle::publish` a checkpoint at 15 (marker entry 16, covered segments
//!    removed), append 17..=18, remount, `CheckpointStore::latest` and
//!    `lifecycle::recover`: state from the checkpoint plus entries 16..=18.
//!
//! Every check that fails prints `FAIL: <what>` and exits 1 through semihosting; so
//! does a panic. Success prints the results and the peak stack, and exits 0.
//!
//! With the `empty` feature every durability call is left out (stack painting,
//! printing and exit stay), as the size baseline.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Prints `FAIL: what` and exits 1.
#[cfg_attr(feature = "empty", allow(dead_code))]
fn fail(what: &str) -> ! {
    hprintln!("FAIL: {}", what);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[cfg_attr(feature = "empty", allow(dead_code))]
fn check(ok: bool, what: &str) {
    if !ok {
        fail(what)
    }
}

/// Stack painting: the only `unsafe` of this crate.
mod stack {
    #![allow(unsafe_code)]

    const PAINT: u32 = 0xC0FF_EE5A;
    /// Words left untouched just below the painting function's stack pointer.
    const MARGIN: usize = 64;

    extern "C" {
        /// Top of the stack (cortex-m-rt's link.x).
        static _stack_start: u32;
        /// End of .bss/.uninit: the stack can grow down to here (no heap).
        static __sheap: u32;
    }

    /// The stack region `[bottom, top)`.
    fn bounds() -> (usize, usize) {
        // Only the addresses of the linker symbols are taken, never their contents.
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let bottom = core::ptr::addr_of!(__sheap) as usize;
        (bottom, top)
    }

    /// Fills the unused stack (from the bottom up to a margin below the current stack
    /// pointer) with a pattern. Returns the stack pointer at the time.
    #[inline(never)]
    pub fn paint() -> usize {
        let sp = cortex_m::register::msp::read() as usize;
        let (bottom, _) = bounds();
        let end = (sp - MARGIN) & !3;
        let mut p = (bottom + 3) & !3;
        while p < end {
            // SAFETY: [bottom, sp - MARGIN) is RAM that nothing uses: it lies below the
            // stack pointer (above .bss/.uninit, no heap), this loop calls nothing and
            // keeps its state in registers; the addresses are word-aligned.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
        sp
    }

    /// Peak stack use since `paint`, in bytes from the top of the stack, and the
    /// lowest address touched.
    #[inline(never)]
    pub fn peak() -> (usize, usize) {
        let (bottom, top) = bounds();
        let mut p = (bottom + 3) & !3;
        while p < top {
            // SAFETY: aligned reads inside the RAM region of the stack.
            if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
                break;
            }
            p += 4;
        }
        (top - p, p)
    }

    /// Peak since the last paint as the lowest address touched, then paints again.
    #[cfg(not(feature = "empty"))]
    #[inline(never)]
    pub fn phase() -> usize {
        let (_, lowest) = peak();
        paint();
        lowest
    }

    /// The stack top.
    pub fn top() -> usize {
        bounds().1
    }
}

#[cfg(not(feature = "empty"))]
mod work {
    use super::{check, fail};
    use durability_core::checkpoint::{CheckpointHeader, CheckpointStore};
    use durability_core::lifecycle;
    use durability_core::wal::{WalConfig, WalReader, WalWriter};
    use durability_core::{Error, ReadMode};
    use durability_embedded::sim::SimFlash;
    use durability_embedded::FlashStorage;

    /// Erase unit of the simulated flash.
    pub const ERASE: usize = 512;
    /// Units of the WAL partition.
    pub const WAL_UNITS: usize = 8;
    /// Units of the checkpoint partition.
    pub const CP_UNITS: usize = 4;
    /// Map capacity of both storages (one monomorphization).
    const N: usize = 8;
    const LOG_ID: u64 = 0x0F12_3456_789A_BCDE;

    pub type Flash = SimFlash<'static, 1, 4, ERASE>;
    pub type Fs = FlashStorage<&'static mut Flash, N>;

    /// Everything large lives in static memory, taken once, so the stack holds only
    /// the core's own frames and the small writer/reader structs.
    pub struct Mem {
        pub wal: Option<Fs>,
        pub cp: Option<Fs>,
        pub wbuf: [u8; 256],
        pub rbuf: [u8; 256],
        pub scratch: [u8; 128],
    }

    pub struct Outcome {
        pub first_session_last: u64,
        pub torn_replayed: u64,
        pub resumed_at: u64,
        pub checkpoint_last_id: u64,
        pub marker_id: u64,
        pub wal_segments_removed: u64,
        pub recovered_from: u64,
        pub recovered_entries: u64,
        pub next_id: u64,
        pub wal_segments_live: usize,
        pub programs: u64,
        pub erases: u64,
        pub cp_survives_remount: bool,
        /// Lowest stack address touched by each phase.
        pub phases: [(&'static str, usize); 5],
        /// Stack pointer inside `run`, below its own frame.
        pub body_sp: usize,
    }

    /// Payload lengths, cycled (no payload byte is 0xFF).
    const SIZES: [usize; 8] = [0, 1, 7, 31, 33, 60, 12, 3];
    const MARKER: &[u8] = b"checkpoint@15";

    fn payload(id: u64, out: &mut [u8; 64]) -> &[u8] {
        let len = SIZES[id as usize % SIZES.len()];
        for (k, b) in out[..len].iter_mut().enumerate() {
            *b = ((id as usize * 31 + k * 7) % 251) as u8;
        }
        &out[..len]
    }

    fn payload_ok(id: u64, p: &[u8]) -> bool {
        let mut tmp = [0u8; 64];
        payload(id, &mut tmp) == p
    }

    /// A folded digest of entries: the checkpointed "state".
    #[derive(Clone, Copy, PartialEq, Eq)]
    struct State {
        last: u64,
        digest: u64,
    }

    impl State {
        fn apply(&mut self, id: u64, p: &[u8]) {
            let s = p.iter().fold(id, |a, &b| a.wrapping_mul(131).wrapping_add(b as u64));
            self.digest = self.digest.rotate_left(7) ^ s;
            self.last = id;
        }
        fn encode(&self) -> [u8; 16] {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&self.last.to_le_bytes());
            b[8..].copy_from_slice(&self.digest.to_le_bytes());
            b
        }
        fn decode(b: &[u8]) -> Option<State> {
            if b.len() != 16 {
                return None;
            }
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[..8]);
            let last = u64::from_le_bytes(w);
            w.copy_from_slice(&b[8..]);
            Some(State {
                last,
                digest: u64::from_le_bytes(w),
            })
        }
    }

    trait OrFail<T> {
        fn or_fail(self, what: &str) -> T;
    }
    impl<T, E> OrFail<T> for Result<T, E> {
        fn or_fail(self, what: &str) -> T {
            match self {
                Ok(v) => v,
                Err(_) => fail(what),
            }
        }
    }

    fn cfg() -> WalConfig {
        WalConfig {
            segment_limit: u64::MAX,
            log_id: LOG_ID,
            first_id: 1,
            covered_through: 0,
        }
    }

    /// Power-off and remount: the flash driver is kept, the storage is mounted anew
    /// from the flash contents alone.
    fn remount(slot: &mut Option<Fs>, units: usize, what: &str) {
        let flash = match slot.take() {
            Some(fs) => fs.into_flash(),
            None => fail(what),
        };
        *slot = Some(FlashStorage::new(flash, 0, units).or_fail(what));
    }

    fn fs<'a>(slot: &'a mut Option<Fs>, what: &str) -> &'a mut Fs {
        match slot {
            Some(fs) => fs,
            None => fail(what),
        }
    }

    /// Appends `ids`, checking the id handed out for each; syncs after each.
    fn append_range(w: &mut WalWriter<&mut Fs, &mut [u8; 256]>, ids: core::ops::RangeInclusive<u64>) {
        let mut tmp = [0u8; 64];
        for id in ids {
            let got = w.append(payload(id, &mut tmp)).or_fail("append");
            check(got == id, "append: id handed out");
            w.sync().or_fail("sync");
        }
    }

    /// Strict/best-effort replay of the whole WAL; checks ids contiguous from 1 and
    /// payloads equal. Returns (entries, torn).
    fn replay_check(m: &mut Mem, mode: ReadMode, what: &str) -> (u64, bool) {
        let mut next = 1u64;
        let mut bad = false;
        let fs = fs(&mut m.wal, what);
        let report = WalReader::new(fs, &mut m.rbuf)
            .replay(mode, |id, p| {
                bad |= id != next || !payload_ok(id, p);
                next = id + 1;
                Ok(())
            })
            .or_fail(what);
        check(!bad, "replay: ids contiguous and payloads equal");
        check(report.entries == next - 1, "replay: entry count");
        check(report.next_id == next, "replay: next id");
        (report.entries, report.torn_at.is_some())
    }

    pub fn run(m: &mut Mem) -> Outcome {
        let mut phases = [("", 0usize); 5];
        // The harness's own frame (its locals, the inlined phases) lies above this.
        let body_sp = cortex_m::register::msp::read() as usize;
        // Session 1: a new log, 10 durable entries, then an 11th that is only flushed.
        let first_session_last = {
            let wal = fs(&mut m.wal, "wal");
            let mut w = WalWriter::open(wal, &mut m.wbuf, cfg()).or_fail("open new");
            append_range(&mut w, 1..=10);
            let mut tmp = [0u8; 64];
            let id = w.append(payload(11, &mut tmp)).or_fail("append 11");
            check(id == 11, "append 11: id");
            w.flush().or_fail("flush 11");
            w.last_id().or_fail("last id").unwrap_or(0)
        };
        check(first_session_last == 11, "session 1 last id");
        phases[0] = ("open new + append + sync", crate::stack::phase());

        // Power cut mid-program of entry 11: its last bytes never left the erased state.
        {
            let wal = fs(&mut m.wal, "wal");
            let mut seg_max = 0;
            let _ = durability_core::Storage::list(wal, &mut |s| seg_max = seg_max.max(s));
            let unit = wal.unit_of(seg_max).unwrap_or_else(|| fail("last segment unit"));
            let base = wal.unit_addr(unit) as usize;
            let flash = m.wal.take().unwrap_or_else(|| fail("wal")).into_flash();
            let unit_bytes = &mut flash.memory_mut()[base..base + ERASE];
            let end = unit_bytes
                .iter()
                .rposition(|&b| b != 0xFF)
                .unwrap_or_else(|| fail("no data in last segment"));
            // Entry 11 is 7 payload bytes (frame 8 + 7, padded to 16): tear its last word.
            let word = end & !3;
            unit_bytes[word..=end].fill(0xFF);
            m.wal = Some(FlashStorage::new(flash, 0, WAL_UNITS).or_fail("mount after cut"));
        }

        // Replay: best-effort gives 1..=10 and a torn tail; strict refuses the tail.
        let (torn_replayed, torn) = replay_check(m, ReadMode::BestEffort, "replay best-effort");
        check(torn_replayed == 10 && torn, "best-effort replay: 10 entries, torn tail");
        {
            let fs = fs(&mut m.wal, "wal");
            let r = WalReader::new(fs, &mut m.rbuf).replay(ReadMode::Strict, |_, _| Ok(()));
            check(matches!(r, Err(Error::TornTail { .. })), "strict replay: TornTail");
        }

        phases[1] = ("mount + replay (best-effort, strict)", crate::stack::phase());
        // Resume: ids continue at 11 in a new segment after the cut.
        remount(&mut m.wal, WAL_UNITS, "remount");
        let (resumed_at, checkpoint_last_id, marker_id, wal_segments_removed) = {
            let wal = fs(&mut m.wal, "wal");
            let mut w = WalWriter::open(wal, &mut m.wbuf, cfg()).or_fail("resume");
            let resumed_at = w.next_id().or_fail("next id");
            check(resumed_at == 11, "resume: next id 11");
            append_range(&mut w, 11..=15);

            // Checkpoint the state after 15, with a marker entry (16).
            let mut st = State { last: 0, digest: 0 };
            let mut tmp = [0u8; 64];
            for id in 1..=15 {
                st.apply(id, payload(id, &mut tmp));
            }
            phases[2] = ("resume (WalWriter::open) + append", crate::stack::phase());
            let cp = fs(&mut m.cp, "cp");
            let mut store = CheckpointStore::new(cp);
            let rep = lifecycle::publish(
                &mut w,
                &mut store,
                15,
                &st.encode(),
                Some(MARKER),
                1,
                &mut m.scratch,
            )
            .or_fail("publish");
            let marker_id = rep.marker_id.unwrap_or(0);
            check(marker_id == 16, "publish: marker id 16");
            check(rep.last_id == 15, "publish: last id");
            append_range(&mut w, 17..=18);
            (resumed_at, rep.last_id, marker_id, rep.wal_segments_removed)
        };

        phases[3] = ("publish (checkpoint write, truncate)", crate::stack::phase());
        // Reboot of the WAL partition; the newest checkpoint (from the checkpoint
        // partition as mounted: see `cp_survives_remount`), then a full recovery.
        remount(&mut m.wal, WAL_UNITS, "remount wal");
        let cp = fs(&mut m.cp, "cp");
        let mut store = CheckpointStore::new(cp);
        let latest = store
            .latest(&mut m.rbuf)
            .or_fail("latest")
            .unwrap_or_else(|| fail("latest: none"));
        check(latest.header.last_id == 15, "latest: last id 15");
        check(latest.header.log_id == LOG_ID, "latest: log id");
        let mut expect = State { last: 0, digest: 0 };
        let mut tmp = [0u8; 64];
        for id in 1..=15 {
            expect.apply(id, payload(id, &mut tmp));
        }
        check(
            State::decode(&m.rbuf[..latest.header.len as usize]) == Some(expect),
            "latest: payload",
        );

        let wal = fs(&mut m.wal, "wal");
        let mut bad = false;
        let (state, rep) = lifecycle::recover(
            wal,
            &mut store,
            &mut m.rbuf,
            ReadMode::Strict,
            |c: Option<(&CheckpointHeader, &[u8])>| {
                Ok(c.and_then(|(_, p)| State::decode(p))
                    .unwrap_or(State { last: 0, digest: 0 }))
            },
            |s: &mut State, id, p| {
                let ok = if id == 16 { p == MARKER } else { payload_ok(id, p) };
                bad |= !ok || id != s.last + 1;
                s.apply(id, p);
                Ok(())
            },
        )
        .or_fail("recover");
        check(!bad, "recover: suffix ids contiguous and payloads equal");
        let recovered_from = rep.checkpoint.map_or(0, |c| c.header.last_id);
        check(recovered_from == 15, "recover: from checkpoint 15");
        check(rep.replay.entries == 3, "recover: 3 entries after the checkpoint");
        check(rep.next_id == 19 && state.last == 18, "recover: next id 19");
        expect.apply(16, MARKER);
        for id in 17..=18 {
            expect.apply(id, payload(id, &mut tmp));
        }
        check(state == expect, "recover: state equals the full fold");

        phases[4] = ("latest + recover", crate::stack::phase());
        // A reboot of the checkpoint partition must find the checkpoint again.
        remount(&mut m.cp, CP_UNITS, "remount cp");
        let cp = fs(&mut m.cp, "cp");
        let cp_survives_remount = CheckpointStore::new(cp)
            .latest(&mut m.rbuf)
            .or_fail("latest after cp remount")
            .is_some_and(|c| c.header.last_id == 15);

        let wal = fs(&mut m.wal, "wal");
        let wal_segments_live = wal.units() - wal.free_units();
        let ws = wal.flash().stats();
        let cs = fs(&mut m.cp, "cp").flash().stats();
        Outcome {
            first_session_last,
            torn_replayed,
            resumed_at,
            checkpoint_last_id,
            marker_id,
            wal_segments_removed,
            recovered_from,
            recovered_entries: rep.replay.entries,
            next_id: rep.next_id,
            wal_segments_live,
            programs: ws.writes + cs.writes,
            erases: ws.erases + cs.erases,
            cp_survives_remount,
            phases,
            body_sp,
        }
    }

    /// Takes the static memory (once) and mounts both partitions on erased flash.
    pub fn setup() -> &'static mut Mem {
        let wal_mem = cortex_m::singleton!(: [u8; WAL_UNITS * ERASE] = [0; WAL_UNITS * ERASE])
            .unwrap_or_else(|| fail("wal mem"));
        let cp_mem = cortex_m::singleton!(: [u8; CP_UNITS * ERASE] = [0; CP_UNITS * ERASE])
            .unwrap_or_else(|| fail("cp mem"));
        let wal_flash: &'static mut Flash =
            cortex_m::singleton!(: Flash = SimFlash::erased(wal_mem)).unwrap_or_else(|| fail("f"));
        let cp_flash: &'static mut Flash =
            cortex_m::singleton!(: Flash = SimFlash::erased(cp_mem)).unwrap_or_else(|| fail("f"));
        let m = cortex_m::singleton!(: Mem = Mem {
            wal: None,
            cp: None,
            wbuf: [0; 256],
            rbuf: [0; 256],
            scratch: [0; 128],
        })
        .unwrap_or_else(|| fail("mem"));
        m.wal = Some(FlashStorage::new(wal_flash, 0, WAL_UNITS).or_fail("mount wal"));
        m.cp = Some(FlashStorage::new(cp_flash, 0, CP_UNITS).or_fail("mount cp"));
        m
    }
}

#[entry]
fn main() -> ! {
    #[cfg(not(feature = "empty"))]
    let mem = work::setup();

    let sp = stack::paint();

    #[cfg(not(feature = "empty"))]
    let o = work::run(mem);

    // Measured before anything is printed: printing is not part of the budget.
    let (peak, lowest) = stack::peak();

    #[cfg(not(feature = "empty"))]
    {
        hprintln!("durability firmware: WAL + checkpoint over SimFlash (512 B units, 4 B words)");
        hprintln!("session 1: appended 1..={} (11 unsynced), cut: tail of entry 11 torn", o.first_session_last);
        hprintln!("replay best-effort after cut: {} entries, torn tail reported; strict: TornTail", o.torn_replayed);
        hprintln!("resume: WalWriter::open continues at id {}; appended 11..=15", o.resumed_at);
        hprintln!(
            "publish: checkpoint last_id {}, marker id {}, {} WAL segment(s) removed; appended 17..=18",
            o.checkpoint_last_id, o.marker_id, o.wal_segments_removed
        );
        hprintln!(
            "recover: from checkpoint {}, {} WAL entries applied, next id {}, {} WAL segment(s) live",
            o.recovered_from, o.recovered_entries, o.next_id, o.wal_segments_live
        );
        hprintln!("flash ops: {} programs, {} unit erases", o.programs, o.erases);
    }
    #[cfg(feature = "empty")]
    hprintln!("empty firmware (no durability code)");

    hprintln!(
        "peak stack: {} B below main's frame (sp {:#010x} -> lowest {:#010x}); {} B from the stack top {:#010x}",
        sp.saturating_sub(lowest),
        sp,
        lowest,
        peak,
        stack::top()
    );
    #[cfg(not(feature = "empty"))]
    {
        let lowest_all = o.phases.iter().fold(lowest, |a, p| a.min(p.1));
        for (name, low) in o.phases {
            hprintln!(
                "  phase {}: {} B below main's frame, {} B below the harness frame",
                name,
                sp.saturating_sub(low),
                o.body_sp.saturating_sub(low)
            );
        }
        hprintln!("harness frame (work::run locals): {} B", sp.saturating_sub(o.body_sp));
        hprintln!("peak stack over all phases: {} B below main's frame", sp.saturating_sub(lowest_all));
        hprintln!(
            "checkpoint partition remounted: latest checkpoint {}",
            if o.cp_survives_remount { "found" } else { "MISSING" }
        );
        check(
            o.cp_survives_remount,
            "checkpoint lost at remount of its FlashStorage partition",
        );
        hprintln!("all checks passed");
    }
    debug::exit(debug::EXIT_SUCCESS);
    #[allow(clippy::empty_loop)]
    loop {}
}
