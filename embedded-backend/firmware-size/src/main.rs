//! Size and stack probe for `durability` on a Cortex-M4 (QEMU `mps2-an386`).
//!
//! Over a RAM-backed NOR flash (`flash::RamFlash`: 512-byte erase units, 4-byte program
//! words, a word is programmed at most once between erases), with no allocator:
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
//! does a panic. Success prints the results and the stack use, and exits 0.
//!
//! # What the `empty` baseline keeps
//!
//! With the `empty` feature every durability call is left out, and everything else
//! stays: the flash driver (`RamFlash`, exercised through the `NorFlash` trait), the
//! payload generator and its checks, the state fold, stack painting and the measured
//! call wrapper, the same report printed with the same formats (values hidden from the
//! optimizer), and a reachable panic handler. The size delta is then the library.
//!
//! # The `seqstore` build (comparison)
//!
//! With the `seqstore` feature (exclusive with `empty`) the same harness runs
//! sequential-storage 8.0.2's queue over the same `RamFlash` and geometry instead: push
//! entries 1..=18 (same payloads), then iterate them back on a fresh handle checking every
//! payload, then `peek`; each library call measured by [`lib`] like ours. Its delta over
//! `empty` is comparable to the full build's, with a smaller workload (no cut, replay of
//! a torn tail, resume, checkpoint or recovery); see `work` in that build.
//!
//! # How stack is measured
//!
//! Every durability call runs inside [`lib`], which calls it through `&mut dyn FnMut()`
//! from [`stack::measure`] (never inlined): the library code is inlined into that
//! closure, not into the harness, and the stack below `measure`'s frame is painted
//! before and scanned after the call. "Library peak" is the deepest word written below
//! the call site (it includes the closure's own return slot, a few words). "Harness
//! depth" is how far the deepest call site lies below `main`'s frame. Painting sees
//! only words that were written; the disassembly (`size-report.sh`) shows the reserved
//! frames.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    exit(false)
}

/// Ends the program through semihosting.
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Prints `FAIL: what` and exits 1.
#[inline(never)]
fn fail(what: &str) -> ! {
    hprintln!("FAIL: {}", what);
    exit(false)
}

fn check(ok: bool, what: &str) {
    if !ok {
        fail(what)
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

/// The kinds of measured calls (the report lists the peak of each).
#[derive(Clone, Copy)]
#[cfg_attr(any(feature = "empty", feature = "seqstore"), allow(dead_code))]
enum Call {
    /// `FlashStorage::new_in` (mount) in the full build, the flash driver in the baseline.
    Mount,
    /// `WalWriter::open` (scans the log) in the full build.
    Open,
    Append,
    Sync,
    Flush,
    /// `next_id` / `last_id` on an open writer.
    NextId,
    /// `Storage::list` and `FlashStorage::unit_of`.
    Lookup,
    Replay,
    Publish,
    Latest,
    Recover,
}

#[cfg(all(feature = "empty", feature = "seqstore"))]
compile_error!("features `empty` and `seqstore` are exclusive");

/// Names of [`Call`], in order.
#[cfg(not(feature = "seqstore"))]
const CALLS: [&str; 11] = [
    "mount (FlashStorage::new_in)",
    "WalWriter::open",
    "append",
    "sync",
    "flush",
    "next_id / last_id",
    "list / unit_of",
    "WalReader::replay",
    "lifecycle::publish",
    "CheckpointStore::latest",
    "lifecycle::recover",
];

/// Names of [`Call`] in the `seqstore` build: the sequential-storage call each slot measures.
#[cfg(feature = "seqstore")]
const CALLS: [&str; 11] = [
    "QueueStorage::new",
    "QueueStorage::iter",
    "QueueStorage::push",
    "-",
    "-",
    "-",
    "-",
    "QueueIterator::next",
    "-",
    "QueueStorage::peek",
    "-",
];

/// Runs one library call under [`stack::measure`] and returns its result.
#[inline(always)]
fn lib<R>(call: Call, f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    stack::measure(call as usize, &mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    });
    match out {
        Some(r) => r,
        None => fail("measured call did not run"),
    }
}

/// A RAM-backed NOR flash driver: what a real firmware's flash driver is, not
/// durability code (it is part of the `empty` baseline too).
mod flash {
    use embedded_storage::nor_flash::{
        ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
    };

    pub const ERASE: usize = 512;
    pub const WORD: usize = 4;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RamFlashError {
        OutOfBounds,
        NotAligned,
        /// A program into bytes that are not erased (a second write of a word).
        NotErased,
    }

    impl NorFlashError for RamFlashError {
        fn kind(&self) -> NorFlashErrorKind {
            match self {
                RamFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
                RamFlashError::NotAligned => NorFlashErrorKind::NotAligned,
                RamFlashError::NotErased => NorFlashErrorKind::Other,
            }
        }
    }

    pub struct RamFlash {
        mem: &'static mut [u8],
        pub writes: u32,
        pub erases: u32,
    }

    impl RamFlash {
        /// A flash over `mem`, all erased.
        pub fn erased(mem: &'static mut [u8]) -> Self {
            mem.fill(0xFF);
            RamFlash {
                mem,
                writes: 0,
                erases: 0,
            }
        }

        #[cfg_attr(feature = "seqstore", allow(dead_code))]
        pub fn memory_mut(&mut self) -> &mut [u8] {
            self.mem
        }

        fn range(&mut self, offset: u32, len: usize) -> Result<&mut [u8], RamFlashError> {
            let start = offset as usize;
            let end = start.checked_add(len).ok_or(RamFlashError::OutOfBounds)?;
            self.mem
                .get_mut(start..end)
                .ok_or(RamFlashError::OutOfBounds)
        }
    }

    impl ErrorType for RamFlash {
        type Error = RamFlashError;
    }

    impl ReadNorFlash for RamFlash {
        const READ_SIZE: usize = 1;

        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamFlashError> {
            let src = self.range(offset, bytes.len())?;
            for (d, s) in bytes.iter_mut().zip(src.iter()) {
                *d = *s;
            }
            Ok(())
        }

        fn capacity(&self) -> usize {
            self.mem.len()
        }
    }

    impl NorFlash for RamFlash {
        const WRITE_SIZE: usize = WORD;
        const ERASE_SIZE: usize = ERASE;

        fn erase(&mut self, from: u32, to: u32) -> Result<(), RamFlashError> {
            let (from, to) = (from as usize, to as usize);
            if from > to || !from.is_multiple_of(ERASE) || !to.is_multiple_of(ERASE) {
                return Err(RamFlashError::NotAligned);
            }
            self.range(from as u32, to - from)?.fill(0xFF);
            self.erases += ((to - from) / ERASE) as u32;
            Ok(())
        }

        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RamFlashError> {
            if !(offset as usize).is_multiple_of(WORD) || !bytes.len().is_multiple_of(WORD) {
                return Err(RamFlashError::NotAligned);
            }
            let dst = self.range(offset, bytes.len())?;
            if dst.iter().any(|&b| b != 0xFF) {
                return Err(RamFlashError::NotErased);
            }
            for (d, s) in dst.iter_mut().zip(bytes.iter()) {
                *d = *s;
            }
            self.writes += 1;
            Ok(())
        }
    }
}

/// Stack painting and the measured call: the only `unsafe` of this crate.
mod stack {
    #![allow(unsafe_code)]

    use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    const PAINT: u32 = 0xC0FF_EE5A;
    /// Words left untouched just below the painting function's stack pointer.
    const MARGIN: usize = 16;
    /// How deep below its call site one measured call may go.
    const WINDOW: usize = 8 * 1024;

    /// Deepest stack use below a call site in the current phase.
    static PHASE_PEAK: AtomicUsize = AtomicUsize::new(0);
    /// Lowest address any measured call touched.
    static LOWEST: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Lowest call site (stack pointer inside `measure`).
    static DEEPEST_SITE: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Deepest stack use below the call site, per kind of call ([`crate::Call`]).
    static PER_CALL: [AtomicUsize; crate::CALLS.len()] =
        [const { AtomicUsize::new(0) }; crate::CALLS.len()];

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

    fn sp() -> usize {
        cortex_m::register::msp::read() as usize
    }

    /// Fills `[bottom, sp - MARGIN)` with the pattern (sp: this function's own).
    #[inline(never)]
    fn paint_from(bottom: usize) {
        let end = (sp() - MARGIN) & !3;
        let mut p = (bottom + 3) & !3;
        while p < end {
            // SAFETY: [bottom, sp - MARGIN) is RAM that nothing uses: it lies below the
            // stack pointer (above .bss/.uninit, no heap), this loop calls nothing and
            // keeps its state in registers; the addresses are word-aligned.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
    }

    /// The lowest address in `[bottom, top)` that no longer holds the pattern.
    #[inline(never)]
    fn lowest_from(bottom: usize, top: usize) -> usize {
        let mut p = (bottom + 3) & !3;
        while p < top {
            // SAFETY: aligned reads inside the RAM region of the stack.
            if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
                break;
            }
            p += 4;
        }
        p
    }

    /// Paints the whole free stack; returns the caller's stack pointer.
    #[inline(never)]
    pub fn paint_all() -> usize {
        let sp = sp();
        paint_from(bounds().0);
        sp
    }

    /// Lowest address touched since `paint_all`, by anything.
    pub fn lowest() -> usize {
        let (bottom, top) = bounds();
        lowest_from(bottom, top).min(LOWEST.load(Relaxed))
    }

    /// Runs `f`: stack painted below this frame before, scanned after; records how far
    /// below this frame `f` wrote.
    #[inline(never)]
    pub fn measure(call: usize, f: &mut dyn FnMut()) {
        let site = sp();
        let bottom = site - WINDOW;
        if bottom < bounds().0 {
            crate::fail("stack: no room for the measuring window");
        }
        paint_from(bottom);
        f();
        let low = lowest_from(bottom, site);
        if low <= bottom {
            crate::fail("stack: a call went deeper than the measuring window");
        }
        PHASE_PEAK.store(PHASE_PEAK.load(Relaxed).max(site - low), Relaxed);
        if let Some(peak) = PER_CALL.get(call) {
            peak.store(peak.load(Relaxed).max(site - low), Relaxed);
        }
        LOWEST.store(LOWEST.load(Relaxed).min(low), Relaxed);
        DEEPEST_SITE.store(DEEPEST_SITE.load(Relaxed).min(site), Relaxed);
    }

    /// The deepest library use of the phase that ends now.
    pub fn end_phase() -> usize {
        PHASE_PEAK.swap(0, Relaxed)
    }

    /// Deepest stack use below the call site of the kind of call `call`.
    pub fn per_call(call: usize) -> usize {
        PER_CALL.get(call).map_or(0, |p| p.load(Relaxed))
    }

    /// The lowest call site of any measured call.
    pub fn deepest_site() -> usize {
        DEEPEST_SITE.load(Relaxed)
    }

    /// The stack top.
    pub fn top() -> usize {
        bounds().1
    }
}

/// Harness data shared by both builds: payloads, the checkpointed state, the report.
mod harness {
    use cortex_m_semihosting::hprintln;

    /// Payload lengths, cycled (no payload byte is 0xFF).
    const SIZES: [usize; 8] = [0, 1, 7, 31, 33, 60, 12, 3];

    fn byte(id: u64, k: usize) -> u8 {
        ((id as usize * 31 + k * 7) % 251) as u8
    }

    /// The payload of entry `id`, generated into `out`.
    #[inline(never)]
    pub fn payload(id: u64, out: &mut [u8; 64]) -> &[u8] {
        let len = SIZES[id as usize % SIZES.len()];
        for (k, b) in out[..len].iter_mut().enumerate() {
            *b = byte(id, k);
        }
        &out[..len]
    }

    /// Whether `p` is the payload of entry `id` (no buffer).
    #[inline(never)]
    pub fn payload_ok(id: u64, p: &[u8]) -> bool {
        p.len() == SIZES[id as usize % SIZES.len()]
            && p.iter().enumerate().all(|(k, &b)| b == byte(id, k))
    }

    /// A folded digest of entries: the checkpointed "state".
    #[derive(Clone, Copy, PartialEq, Eq, Default)]
    pub struct State {
        pub last: u64,
        pub digest: u64,
    }

    impl State {
        #[inline(never)]
        pub fn apply(&mut self, id: u64, p: &[u8]) {
            let s = p
                .iter()
                .fold(id, |a, &b| a.wrapping_mul(131).wrapping_add(b as u64));
            self.digest = self.digest.rotate_left(7) ^ s;
            self.last = id;
        }

        pub fn encode(&self) -> [u8; 16] {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&self.last.to_le_bytes());
            b[8..].copy_from_slice(&self.digest.to_le_bytes());
            b
        }

        #[inline(never)]
        pub fn decode(b: &[u8]) -> Option<State> {
            let (last, digest) = b.split_first_chunk::<8>()?;
            let digest: &[u8; 8] = digest.try_into().ok()?;
            Some(State {
                last: u64::from_le_bytes(*last),
                digest: u64::from_le_bytes(*digest),
            })
        }

        /// The state after entries `from..=to` with generated payloads.
        #[inline(never)]
        pub fn fold(mut self, from: u64, to: u64, tmp: &mut [u8; 64]) -> State {
            for id in from..=to {
                self.apply(id, payload(id, tmp));
            }
            self
        }
    }

    /// Phase names, in order.
    pub const PHASES: [&str; 5] = [
        "open new + append + sync",
        "cut + mount + replay (best-effort, strict)",
        "resume (WalWriter::open) + append",
        "publish (checkpoint write, truncate) + append",
        "mount + latest + recover + cp remount",
    ];

    #[derive(Default)]
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
        pub programs: u32,
        pub erases: u32,
        /// Bytes of the handles the caller keeps: WalWriter, FlashStorage, CheckpointStore.
        pub handles: [usize; 3],
        /// Deepest library stack use below its call site, per phase.
        pub phases: [usize; 5],
    }

    /// Prints the results (the same formats in both builds).
    #[inline(never)]
    pub fn report(o: &Outcome, main_sp: usize, lowest: usize, deepest_site: usize) {
        hprintln!(
            "session 1: appended 1..={} (11 unsynced), cut: tail of entry 11 torn",
            o.first_session_last
        );
        hprintln!(
            "replay best-effort after cut: {} entries, torn tail reported; strict: TornTail",
            o.torn_replayed
        );
        hprintln!(
            "resume: WalWriter::open continues at id {}; appended 11..=15",
            o.resumed_at
        );
        hprintln!(
            "publish: checkpoint last_id {}, marker id {}, {} WAL segment(s) removed; appended 17..=18",
            o.checkpoint_last_id, o.marker_id, o.wal_segments_removed
        );
        hprintln!(
            "recover: from checkpoint {}, {} WAL entries applied, next id {}, {} WAL segment(s) live",
            o.recovered_from, o.recovered_entries, o.next_id, o.wal_segments_live
        );
        hprintln!(
            "flash ops: {} programs, {} unit erases",
            o.programs,
            o.erases
        );
        hprintln!(
            "caller-held handles: WalWriter {} B, FlashStorage {} B, CheckpointStore {} B",
            o.handles[0],
            o.handles[1],
            o.handles[2]
        );
        let mut lib_peak = 0;
        for (name, peak) in PHASES.iter().zip(o.phases) {
            hprintln!(
                "  phase {}: library peak {} B below its call site",
                name,
                peak
            );
            lib_peak = lib_peak.max(peak);
        }
        for (k, name) in crate::CALLS.iter().enumerate() {
            let peak = crate::stack::per_call(k);
            if peak > 0 {
                hprintln!("    call {}: library peak {} B", name, peak);
            }
        }
        let harness = main_sp.saturating_sub(deepest_site.min(main_sp));
        hprintln!(
            "library peak stack (all phases): {} B (target: under 512 B)",
            lib_peak
        );
        hprintln!(
            "harness depth (main's frame to the deepest call site): {} B",
            harness
        );
        hprintln!(
            "peak stack: {} B below main's frame (sp {:#010x} -> lowest {:#010x}); {} B from the stack top {:#010x}",
            main_sp.saturating_sub(lowest),
            main_sp,
            lowest,
            crate::stack::top().saturating_sub(lowest),
            crate::stack::top()
        );
    }
}

use harness::{payload, payload_ok, Outcome, State};

/// Units of the WAL partition.
const WAL_UNITS: usize = 8;
/// Units of the checkpoint partition.
const CP_UNITS: usize = 4;

type Flash = flash::RamFlash;

/// Everything large lives in static memory, taken once. (The baseline keeps the
/// library's buffers unused, so that .bss compares too.)
#[cfg_attr(any(feature = "empty", feature = "seqstore"), allow(dead_code))]
struct Mem<P: 'static> {
    wal: Option<P>,
    cp: Option<P>,
    wbuf: [u8; 256],
    rbuf: [u8; 256],
    scratch: [u8; 128],
    tmp: [u8; 64],
}

/// The two RAM flashes, erased.
fn flashes() -> (&'static mut Flash, &'static mut Flash) {
    let wal_mem =
        cortex_m::singleton!(: [u8; WAL_UNITS * flash::ERASE] = [0; WAL_UNITS * flash::ERASE])
            .unwrap_or_else(|| fail("wal mem"));
    let cp_mem =
        cortex_m::singleton!(: [u8; CP_UNITS * flash::ERASE] = [0; CP_UNITS * flash::ERASE])
            .unwrap_or_else(|| fail("cp mem"));
    let wal: &'static mut Flash =
        cortex_m::singleton!(: Flash = Flash::erased(wal_mem)).unwrap_or_else(|| fail("wal flash"));
    let cp: &'static mut Flash =
        cortex_m::singleton!(: Flash = Flash::erased(cp_mem)).unwrap_or_else(|| fail("cp flash"));
    (wal, cp)
}

#[cfg(not(any(feature = "empty", feature = "seqstore")))]
mod work {
    use super::{check, fail, lib, payload, payload_ok, Call, Flash, OrFail, Outcome, State};
    use super::{CP_UNITS, WAL_UNITS};
    use crate::stack::end_phase;
    use durability_core::checkpoint::{CheckpointHeader, CheckpointStore};
    use durability_core::lifecycle;
    use durability_core::wal::{WalConfig, WalReader, WalWriter};
    use durability_core::{Error, ReadMode};
    use durability_embedded::FlashStorage;

    /// Map capacity of both storages (one monomorphization).
    const N: usize = 8;
    const LOG_ID: u64 = 0x0F12_3456_789A_BCDE;
    const MARKER: &[u8] = b"checkpoint@15";

    pub type Fs = FlashStorage<&'static mut Flash, N>;
    type Mem = super::Mem<Fs>;
    type Writer<'a> = WalWriter<&'a mut Fs, &'a mut [u8; 256]>;

    fn cfg() -> WalConfig {
        WalConfig {
            segment_limit: u64::MAX,
            ..WalConfig::new(LOG_ID)
        }
    }

    fn fs<'a>(slot: &'a mut Option<Fs>, what: &str) -> &'a mut Fs {
        match slot {
            Some(fs) => fs,
            None => fail(what),
        }
    }

    /// Power-off and remount: the flash driver is kept, the storage is mounted anew
    /// from the flash contents alone. `tear`: before mounting, the last word written in
    /// the erase unit at this address goes back to 0xFF (a program cut by the power).
    #[inline(never)]
    fn remount(slot: &mut Option<Fs>, units: usize, tear: Option<usize>, what: &str) {
        let flash = match slot.take() {
            Some(fs) => fs.into_flash(),
            None => fail(what),
        };
        if let Some(base) = tear {
            let unit_bytes = flash
                .memory_mut()
                .get_mut(base..base + super::flash::ERASE)
                .unwrap_or_else(|| fail("unit bytes"));
            let end = unit_bytes
                .iter()
                .rposition(|&b| b != 0xFF)
                .unwrap_or_else(|| fail("no data in last segment"));
            // Entry 11 is 7 payload bytes (frame 8 + 7, padded to 16): tear its last word.
            let word = end & !3;
            unit_bytes[word..=end].fill(0xFF);
        }
        // Mounted straight into the slot (`new_in`): no storage-sized temporary, here or
        // in the library (`new` would return it by value through two copies).
        let mounted = lib(Call::Mount, || {
            FlashStorage::new_in(slot, flash, 0, units).is_ok()
        });
        check(mounted, what);
    }

    /// Appends `ids`, checking the id handed out for each; syncs after each.
    #[inline(never)]
    fn append_range(w: &mut Writer, tmp: &mut [u8; 64], ids: core::ops::RangeInclusive<u64>) {
        for id in ids {
            let p = payload(id, tmp);
            let got = lib(Call::Append, || w.append(p)).or_fail("append");
            check(got == id, "append: id handed out");
            lib(Call::Sync, || w.sync()).or_fail("sync");
        }
    }

    /// Replay of the whole WAL; checks ids contiguous from 1 and payloads equal.
    /// Returns (entries, torn).
    #[inline(never)]
    fn replay_check(m: &mut Mem, mode: ReadMode, what: &str) -> (u64, bool) {
        let mut next = 1u64;
        let mut bad = false;
        let fs = fs(&mut m.wal, what);
        let rbuf = &mut m.rbuf;
        let report = lib(Call::Replay, || {
            WalReader::new(fs, rbuf).replay(mode, |id, p| {
                bad |= id != next || !payload_ok(id, p);
                next = id + 1;
                Ok(())
            })
        })
        .or_fail(what);
        check(!bad, "replay: ids contiguous and payloads equal");
        check(report.entries == next - 1, "replay: entry count");
        check(report.next_id == next, "replay: next id");
        (report.entries, report.torn_at.is_some())
    }

    /// Session 1: a new log, 10 durable entries, then an 11th that is only flushed.
    #[inline(never)]
    fn session1(m: &mut Mem, o: &mut Outcome) {
        let wal = fs(&mut m.wal, "wal");
        let wbuf = &mut m.wbuf;
        let mut w = lib(Call::Open, || WalWriter::open(wal, wbuf, cfg())).or_fail("open new");
        o.handles[0] = core::mem::size_of_val(&w);
        append_range(&mut w, &mut m.tmp, 1..=10);
        let p = payload(11, &mut m.tmp);
        let id = lib(Call::Append, || w.append(p)).or_fail("append 11");
        check(id == 11, "append 11: id");
        lib(Call::Flush, || w.flush()).or_fail("flush 11");
        o.first_session_last = lib(Call::NextId, || w.last_id())
            .or_fail("last id")
            .unwrap_or(0);
        check(o.first_session_last == 11, "session 1 last id");
    }

    /// Power cut mid-program of entry 11: its last bytes never left the erased state.
    #[inline(never)]
    fn cut(m: &mut Mem) {
        let wal = fs(&mut m.wal, "wal");
        let mut seg_max = 0;
        let _ = lib(Call::Lookup, || {
            durability_core::Storage::list(wal, &mut |s| seg_max = seg_max.max(s))
        });
        let unit =
            lib(Call::Lookup, || wal.unit_of(seg_max)).unwrap_or_else(|| fail("last segment unit"));
        let base = wal.unit_addr(unit) as usize;
        remount(&mut m.wal, WAL_UNITS, Some(base), "mount after cut");
    }

    /// Replay: best-effort gives 1..=10 and a torn tail; strict refuses the tail.
    #[inline(never)]
    fn replay_after_cut(m: &mut Mem, o: &mut Outcome) {
        let (torn_replayed, torn) = replay_check(m, ReadMode::BestEffort, "replay best-effort");
        check(
            torn_replayed == 10 && torn,
            "best-effort replay: 10 entries, torn tail",
        );
        o.torn_replayed = torn_replayed;
        let fs = fs(&mut m.wal, "wal");
        let rbuf = &mut m.rbuf;
        let r = lib(Call::Replay, || {
            WalReader::new(fs, rbuf).replay(ReadMode::Strict, |_, _| Ok(()))
        });
        check(
            matches!(r, Err(Error::TornTail { .. })),
            "strict replay: TornTail",
        );
    }

    /// Resume (ids continue at 11 in a new segment after the cut), then publish a
    /// checkpoint of the state after 15 with a marker entry (16), then append 17..=18.
    /// With `wal-only`, the resume alone.
    #[cfg_attr(feature = "wal-only", allow(unreachable_code, unused_variables))]
    #[inline(never)]
    fn resume_publish(m: &mut Mem, o: &mut Outcome) {
        remount(&mut m.wal, WAL_UNITS, None, "remount");
        let wal = fs(&mut m.wal, "wal");
        let wbuf = &mut m.wbuf;
        let mut w = lib(Call::Open, || WalWriter::open(wal, wbuf, cfg())).or_fail("resume");
        o.resumed_at = lib(Call::NextId, || w.next_id()).or_fail("next id");
        check(o.resumed_at == 11, "resume: next id 11");
        append_range(&mut w, &mut m.tmp, 11..=15);
        o.phases[2] = end_phase();
        #[cfg(feature = "wal-only")]
        return;

        let st = State::default().fold(1, 15, &mut m.tmp);
        let encoded = st.encode();
        let cp = fs(&mut m.cp, "cp");
        let mut store = CheckpointStore::new(cp);
        o.handles[2] = core::mem::size_of_val(&store);
        let scratch = &mut m.scratch;
        let rep = lib(Call::Publish, || {
            lifecycle::publish(&mut w, &mut store, 15, &encoded, Some(MARKER), 1, scratch)
        })
        .or_fail("publish");
        o.marker_id = rep.marker_id.unwrap_or(0);
        o.checkpoint_last_id = rep.last_id;
        o.wal_segments_removed = rep.wal_segments_removed;
        check(o.marker_id == 16, "publish: marker id 16");
        check(rep.last_id == 15, "publish: last id");
        append_range(&mut w, &mut m.tmp, 17..=18);
    }

    /// Reboot of the WAL partition; the newest checkpoint, a full recovery, then a
    /// reboot of the checkpoint partition that must find the checkpoint again.
    #[inline(never)]
    fn recover(m: &mut Mem, o: &mut Outcome) {
        remount(&mut m.wal, WAL_UNITS, None, "remount wal");
        let expect = State::default().fold(1, 15, &mut m.tmp);
        {
            let cp = fs(&mut m.cp, "cp");
            let rbuf = &mut m.rbuf;
            let latest = lib(Call::Latest, || CheckpointStore::new(cp).latest(rbuf))
                .or_fail("latest")
                .unwrap_or_else(|| fail("latest: none"));
            check(latest.header.last_id == 15, "latest: last id 15");
            check(latest.header.log_id == LOG_ID, "latest: log id");
            let len = latest.header.len as usize;
            let stored = m.rbuf.get(..len).unwrap_or_else(|| fail("latest: length"));
            check(State::decode(stored) == Some(expect), "latest: payload");
        }

        let wal = fs(&mut m.wal, "wal");
        let cp = fs(&mut m.cp, "cp");
        let rbuf = &mut m.rbuf;
        let mut bad = false;
        let mut rep = lifecycle::RecoveryReport::default();
        let state = lib(Call::Recover, || {
            lifecycle::recover_into(
                wal,
                &mut CheckpointStore::new(cp),
                rbuf,
                ReadMode::Strict,
                &mut rep,
                |c: Option<(&CheckpointHeader, &[u8])>| {
                    Ok(c.and_then(|(_, p)| State::decode(p)).unwrap_or_default())
                },
                |s: &mut State, id, p| {
                    let ok = if id == 16 {
                        p == MARKER
                    } else {
                        payload_ok(id, p)
                    };
                    bad |= !ok || id != s.last + 1;
                    s.apply(id, p);
                    Ok(())
                },
            )
        })
        .or_fail("recover");
        check(!bad, "recover: suffix ids contiguous and payloads equal");
        o.recovered_from = rep.checkpoint.map_or(0, |c| c.header.last_id);
        o.recovered_entries = rep.replay.entries;
        o.next_id = rep.next_id;
        check(o.recovered_from == 15, "recover: from checkpoint 15");
        check(
            rep.replay.entries == 3,
            "recover: 3 entries after the checkpoint",
        );
        check(rep.next_id == 19 && state.last == 18, "recover: next id 19");
        let mut full = expect;
        full.apply(16, MARKER);
        check(
            state == full.fold(17, 18, &mut m.tmp),
            "recover: state equals the full fold",
        );

        remount(&mut m.cp, CP_UNITS, None, "remount cp");
        let cp = fs(&mut m.cp, "cp");
        let rbuf = &mut m.rbuf;
        let found = lib(Call::Latest, || CheckpointStore::new(cp).latest(rbuf))
            .or_fail("latest after cp remount")
            .is_some_and(|c| c.header.last_id == 15);
        check(
            found,
            "checkpoint lost at remount of its FlashStorage partition",
        );

        let wal = fs(&mut m.wal, "wal");
        o.wal_segments_live = wal.units() - wal.free_units();
        o.handles[1] = core::mem::size_of_val(wal);
        let cs = fs(&mut m.cp, "cp").flash();
        let (cw, ce) = (cs.writes, cs.erases);
        let ws = fs(&mut m.wal, "wal").flash();
        o.programs = ws.writes + cw;
        o.erases = ws.erases + ce;
    }

    #[inline(never)]
    pub fn run(m: &mut Mem, o: &mut Outcome) {
        session1(m, o);
        o.phases[0] = end_phase();
        cut(m);
        replay_after_cut(m, o);
        o.phases[1] = end_phase();
        resume_publish(m, o);
        o.phases[3] = end_phase();
        if cfg!(feature = "wal-only") {
            return;
        }
        recover(m, o);
        o.phases[4] = end_phase();
    }

    /// Takes the static memory (once) and mounts both partitions on erased flash.
    pub fn setup() -> &'static mut Mem {
        let (wal_flash, cp_flash) = super::flashes();
        let m = cortex_m::singleton!(: Mem = Mem {
            wal: None,
            cp: None,
            wbuf: [0; 256],
            rbuf: [0; 256],
            scratch: [0; 128],
            tmp: [0; 64],
        })
        .unwrap_or_else(|| fail("mem"));
        FlashStorage::new_in(&mut m.wal, wal_flash, 0, WAL_UNITS).or_fail("mount wal");
        FlashStorage::new_in(&mut m.cp, cp_flash, 0, CP_UNITS).or_fail("mount cp");
        m
    }
}

/// The baseline: the harness without the library (see the crate docs).
#[cfg(feature = "empty")]
mod work {
    use super::{check, fail, lib, payload, payload_ok, Call, Flash, OrFail, Outcome, State};
    use crate::stack::end_phase;
    use core::hint::black_box;
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

    type Mem = super::Mem<&'static mut Flash>;

    #[inline(never)]
    pub fn run(m: &mut Mem, o: &mut Outcome) {
        // The payloads, their checks and the state fold, as the full build uses them.
        for id in 1..=black_box(18u64) {
            let p = payload(id, &mut m.tmp);
            check(payload_ok(id, p), "payload");
        }
        let st = State::default().fold(1, black_box(15), &mut m.tmp);
        check(State::decode(&st.encode()) == Some(st), "state");
        o.phases[0] = end_phase();

        // The flash driver through its trait, each call measured.
        let f = m.wal.as_mut().unwrap_or_else(|| fail("wal"));
        let word = black_box([1u8, 2, 3, 4]);
        lib(Call::Mount, || f.erase(0, black_box(512))).or_fail("erase");
        lib(Call::Append, || f.write(black_box(0), &word)).or_fail("write");
        let mut back = [0u8; 4];
        lib(Call::Replay, || f.read(black_box(0), &mut back)).or_fail("read");
        check(back == word && f.capacity() > 0, "flash round trip");
        let f = f.memory_mut();
        f[..4].fill(0xFF);
        o.phases[1] = end_phase();
        let cp = m.cp.as_mut().unwrap_or_else(|| fail("cp"));
        o.programs = black_box(cp.writes + 1);
        o.erases = black_box(cp.erases + 1);
        o.phases[2] = end_phase();
        o.phases[3] = end_phase();
        o.phases[4] = end_phase();
        // The results the full build prints, hidden from the optimizer.
        o.first_session_last = black_box(0);
        o.torn_replayed = black_box(0);
        o.resumed_at = black_box(0);
        o.checkpoint_last_id = black_box(0);
        o.marker_id = black_box(0);
        o.wal_segments_removed = black_box(0);
        o.recovered_from = black_box(0);
        o.recovered_entries = black_box(0);
        o.next_id = black_box(0);
        o.wal_segments_live = black_box(0);
        o.handles = black_box([0; 3]);
        // A reachable (never taken) panic, so the panic handler is in both builds.
        if black_box(o.programs) == 0 {
            panic!("baseline panic path");
        }
    }

    pub fn setup() -> &'static mut Mem {
        let (wal, cp) = super::flashes();
        cortex_m::singleton!(: Mem = Mem {
            wal: Some(wal),
            cp: Some(cp),
            wbuf: [0; 256],
            rbuf: [0; 256],
            scratch: [0; 128],
            tmp: [0; 64],
        })
        .unwrap_or_else(|| fail("mem"))
    }
}

/// The same harness running sequential-storage's queue (feature `seqstore`): entries
/// 1..=18 pushed (each push as durable on return as an append + sync), then a fresh
/// `QueueStorage` over the same flash (a reboot: new uncached cache) iterates them back
/// and every payload is checked, then `peek` returns the oldest. Its `pop` needs
/// `MultiwriteNorFlash` (it reprograms an item header), which `RamFlash` refuses to be, so
/// reading back is the non-destructive iterator. The crate is async-only: [`Async`](work::Async)
/// forwards its async `NorFlash` to the blocking driver and `embassy_futures::block_on`
/// polls each call; both are part of this build's size delta (a few dozen bytes).
#[cfg(feature = "seqstore")]
mod work {
    use super::{check, fail, lib, payload, payload_ok, Call, Flash, OrFail, Outcome, State};
    use crate::stack::end_phase;
    use core::hint::black_box;
    use embassy_futures::block_on;
    use embedded_storage::nor_flash::{NorFlash as _, ReadNorFlash as _};
    use sequential_storage::cache::{Cache, Uncached};
    use sequential_storage::queue::{QueueConfig, QueueStorage};

    type Mem = super::Mem<&'static mut Flash>;

    /// sequential-storage's async flash traits over the blocking RamFlash.
    pub struct Async<'a>(&'a mut Flash);

    impl embedded_storage::nor_flash::ErrorType for Async<'_> {
        type Error = super::flash::RamFlashError;
    }

    impl embedded_storage_async::nor_flash::ReadNorFlash for Async<'_> {
        const READ_SIZE: usize = 1;
        async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            self.0.read(offset, bytes)
        }
        fn capacity(&self) -> usize {
            self.0.capacity()
        }
    }

    impl embedded_storage_async::nor_flash::NorFlash for Async<'_> {
        const WRITE_SIZE: usize = super::flash::WORD;
        const ERASE_SIZE: usize = super::flash::ERASE;
        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            self.0.erase(from, to)
        }
        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            self.0.write(offset, bytes)
        }
    }

    type Queue<'a> = QueueStorage<Async<'a>, Cache<Uncached, Uncached, Uncached>>;

    const RANGE: core::ops::Range<u32> = 0..(super::WAL_UNITS * super::flash::ERASE) as u32;

    #[inline(never)]
    fn mount(f: &mut Flash) -> Queue<'_> {
        lib(Call::Mount, || {
            QueueStorage::new(
                Async(f),
                const { QueueConfig::new(RANGE) },
                Cache::new_uncached(),
            )
        })
    }

    #[inline(never)]
    fn push_all(m: &mut Mem) {
        let f = m.wal.as_mut().unwrap_or_else(|| fail("wal"));
        let mut q = mount(f);
        for id in 1..=18u64 {
            let p = payload(id, &mut m.tmp);
            lib(Call::Append, || block_on(q.push(p, false))).or_fail("push");
        }
    }

    /// Iterates the queue on a fresh handle; returns the entries read, all checked.
    #[inline(never)]
    fn iterate(m: &mut Mem) -> u64 {
        let f = m.wal.as_mut().unwrap_or_else(|| fail("wal"));
        let mut q = mount(f);
        let qr = &mut q;
        let mut it = lib(Call::Open, move || block_on(qr.iter())).or_fail("iter");
        let mut next = 1u64;
        loop {
            let buf = &mut m.rbuf;
            let it = &mut it;
            let len = lib(Call::Replay, move || {
                block_on(async { it.next(buf).await.map(|e| e.map(|e| e.len())) })
            })
            .or_fail("next");
            let Some(len) = len else { break };
            let p = m.rbuf.get(..len).unwrap_or_else(|| fail("next: length"));
            check(payload_ok(next, p), "iterate: payloads equal, in order");
            next += 1;
        }
        next - 1
    }

    #[inline(never)]
    fn peek(m: &mut Mem) {
        let f = m.wal.as_mut().unwrap_or_else(|| fail("wal"));
        let mut q = mount(f);
        let buf = &mut m.rbuf;
        let len = lib(Call::Latest, || {
            block_on(async { q.peek(buf).await.map(|d| d.map(|d| d.len())) })
        })
        .or_fail("peek")
        .unwrap_or_else(|| fail("peek: empty"));
        let p = m.rbuf.get(..len).unwrap_or_else(|| fail("peek: length"));
        check(payload_ok(1, p), "peek: the oldest is entry 1");
    }

    #[inline(never)]
    pub fn run(m: &mut Mem, o: &mut Outcome) {
        push_all(m);
        o.phases[0] = end_phase();
        let n = iterate(m);
        check(n == 18, "iterate: 18 entries");
        o.phases[1] = end_phase();
        peek(m);
        o.phases[2] = end_phase();
        // The state fold, as the other builds use it.
        let st = State::default().fold(1, black_box(15), &mut m.tmp);
        check(State::decode(&st.encode()) == Some(st), "state");
        o.phases[3] = end_phase();
        o.phases[4] = end_phase();
        let f = m.wal.as_mut().unwrap_or_else(|| fail("wal"));
        o.programs = f.writes;
        o.erases = f.erases;
        o.first_session_last = n;
        // The WAL results the full build prints, hidden from the optimizer.
        o.torn_replayed = black_box(0);
        o.resumed_at = black_box(0);
        o.checkpoint_last_id = black_box(0);
        o.marker_id = black_box(0);
        o.wal_segments_removed = black_box(0);
        o.recovered_from = black_box(0);
        o.recovered_entries = black_box(0);
        o.next_id = black_box(0);
        o.wal_segments_live = black_box(0);
        o.handles = black_box([core::mem::size_of::<Queue<'static>>(), 0, 0]);
    }

    pub fn setup() -> &'static mut Mem {
        let (wal, cp) = super::flashes();
        cortex_m::singleton!(: Mem = Mem {
            wal: Some(wal),
            cp: Some(cp),
            wbuf: [0; 256],
            rbuf: [0; 256],
            scratch: [0; 128],
            tmp: [0; 64],
        })
        .unwrap_or_else(|| fail("mem"))
    }
}

#[entry]
fn main() -> ! {
    let mem = work::setup();
    let mut o = Outcome::default();
    let main_sp = stack::paint_all();
    work::run(mem, &mut o);
    // Measured before anything is printed: printing is not part of the budget.
    let lowest = stack::lowest();

    if cfg!(feature = "empty") {
        hprintln!("empty firmware (the harness without durability calls)");
    } else if cfg!(feature = "seqstore") {
        hprintln!("sequential-storage 8.0.2 queue over RamFlash (512 B units, 4 B words): push 1..=18, iterate, peek; lines about the WAL below do not apply (0)");
    } else {
        hprintln!("durability firmware: WAL + checkpoint over RamFlash (512 B units, 4 B words)");
    }
    harness::report(&o, main_sp, lowest, stack::deepest_site());
    hprintln!("all checks passed");
    exit(black_box(true))
}
