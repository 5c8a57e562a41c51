//! Build a flash image with the real writer, damage it, and check everything that reads
//! it back from the bytes alone. Shared by `tests/flash_image_damage.rs` (proptest) and
//! `fuzz/fuzz_targets/fuzz_flash_image.rs` (cargo-fuzz, through `#[path]`), so it uses
//! nothing but `std`, `durability-core` and `durability-embedded`.
//!
//! The image never depends on the frame form: it is always written by `WalWriter`,
//! `CheckpointStore` and `lifecycle::publish` over `FlashStorage<SimFlash>`.
//!
//! Payloads are a function of the entry id (and of the case's `len_seed` / `max_len`),
//! checkpoint payloads a function of their `last_id`, so whatever a reader delivers can
//! be checked without knowing what the damage destroyed.

#![allow(dead_code)]

use durability_core::checkpoint::CheckpointStore;
use durability_core::lifecycle::{publish, recover};
use durability_core::wal::{ReplayReport, WalConfig, WalReader, WalWriter};
use durability_core::{Error, ReadMode};
use durability_embedded::sim::{PowerCut, SimError, SimFlash};
use durability_embedded::{FlashError, FlashStorage};

/// Erase unit of the simulated chip.
pub const ERASE: usize = 256;
/// WAL partition: units `0..WAL_UNITS` of the chip.
pub const WAL_UNITS: usize = 16;
/// Checkpoint partition: the `CP_UNITS` units after the WAL partition.
pub const CP_UNITS: usize = 4;
/// Map capacity of every `FlashStorage` here.
pub const N: usize = 16;
/// Units on the chip.
pub const UNITS: usize = WAL_UNITS + CP_UNITS;
/// Bytes on the chip.
pub const CHIP: usize = UNITS * ERASE;
/// Identity of the log.
pub const LOG_ID: u64 = 0x0D15_EA5E_F1A5_4001;
/// Checkpoints kept by `publish`.
pub const KEEP: usize = 2;
/// Largest payload the builder appends (a frame of it fits a 256-byte unit at any word).
pub const MAX_LEN: usize = 160;
/// Fixed buffers: one erase unit holds any frame or checkpoint.
pub const BUF: usize = ERASE;

pub type Flash<'a, const W: usize> = SimFlash<'a, W, W, ERASE>;
pub type Fs<'a, const W: usize> = FlashStorage<Flash<'a, W>, N>;
pub type E = FlashError<SimError>;
pub type Err = Error<E>;

/// One step of the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Append this many entries.
    Append(u8),
    /// `sync`: everything appended so far is acknowledged.
    Sync,
    /// `lifecycle::publish` of a checkpoint at the last assigned id (with or without a
    /// marker entry); frees WAL units.
    Publish { marker: bool },
    /// End the session (drop the writer): the next one mounts, recovers and reopens.
    Reboot,
}

/// Where a byte-level damage hits: `unit` modulo the chip's units, `off` modulo the
/// unit's programmed extent plus one word (so most hits land on written bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub unit: u8,
    pub off: u16,
}

/// One edit of the image after it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Clear the bits of `mask` (what a flash can do on its own: bits decay 1 -> 0).
    ClearBits { at: Target, mask: u8 },
    /// Flip the bits of `mask`.
    Flip { at: Target, mask: u8 },
    /// Overwrite one byte.
    Byte { at: Target, value: u8 },
    /// Set the aligned word holding the target to all-0xFF or all-0x00.
    Word { at: Target, erased: bool },
    /// Erase the unit from the target to its end (a cut erase over an old front).
    EraseTail { at: Target },
    /// Overwrite a whole unit with pseudo-random bytes.
    Garbage { unit: u8, seed: u64 },
    /// Erase a whole unit.
    EraseUnit { unit: u8 },
    /// Copy unit `from` over unit `to` (an image flashed over the partition).
    CopyUnit { from: u8, to: u8 },
    /// Swap two units (order on the medium must not matter).
    SwapUnits { a: u8, b: u8 },
}

/// A power cut while building: the `op`-th program/erase after the start of session
/// `session` on the WAL (or checkpoint) partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub session: u8,
    pub checkpoint_partition: bool,
    pub op: u16,
    pub seed: u64,
}

/// One case: how to build the image and how to damage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Word size: `WORDS[word % 3]`.
    pub word: u8,
    /// Payload lengths are `0..=max_len` (clamped to [`MAX_LEN`]).
    pub max_len: u8,
    /// Varies payload lengths and bytes between cases.
    pub len_seed: u64,
    pub ops: Vec<Op>,
    pub cut: Option<Cut>,
    pub damage: Vec<Damage>,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the builder appends (and what the checks expect) under entry `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payloads {
    pub max_len: usize,
    pub seed: u64,
}

impl Payloads {
    pub fn of(spec: &Spec) -> Self {
        Payloads {
            max_len: (spec.max_len as usize).min(MAX_LEN),
            seed: spec.len_seed,
        }
    }

    pub fn entry(&self, id: u64) -> Vec<u8> {
        let h = mix(id ^ self.seed);
        let len = (h % (self.max_len as u64 + 1)) as usize;
        let mut out = Vec::with_capacity(len);
        let mut s = h;
        while out.len() < len {
            s = mix(s);
            let take = (len - out.len()).min(8);
            out.extend_from_slice(&s.to_le_bytes()[..take]);
        }
        out
    }

    /// The checkpoint payload of the state after `last_id`.
    pub fn checkpoint(&self, last_id: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&last_id.to_le_bytes());
        out[8..].copy_from_slice(&mix(last_id ^ self.seed ^ 0xC0DE).to_le_bytes());
        out
    }
}

/// What the build did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Built {
    /// Highest id the writer assigned (0: none).
    pub max_id: u64,
    /// Every id up to this was acknowledged by a `sync` or `publish` that returned `Ok`.
    pub acked: u64,
    /// The armed power cut hit.
    pub cut: bool,
    /// A writer call failed without a power cut (e.g. the WAL partition was full).
    pub failed: bool,
}

fn wal_mem(chip: &mut [u8]) -> (&mut [u8], &mut [u8]) {
    chip.split_at_mut(WAL_UNITS * ERASE)
}

fn mount<const W: usize>(mem: &mut [u8], units: usize) -> Result<Fs<'_, W>, E> {
    FlashStorage::new(SimFlash::new(mem), 0, units)
}

/// Checks a stream of delivered entries as they come: ids contiguous and increasing,
/// payloads as written, no id beyond what was ever assigned.
pub struct Delivered<'p> {
    pay: Option<&'p Payloads>,
    /// Highest id any writer assigned; `None` for a raw image (nothing known).
    max_id: Option<u64>,
    pub ids: Vec<u64>,
    /// An entry a check appended itself (id, payload): checked even without `pay`.
    own: Option<(u64, Vec<u8>)>,
    ctx: &'static str,
}

impl<'p> Delivered<'p> {
    pub fn new(pay: Option<&'p Payloads>, max_id: Option<u64>, ctx: &'static str) -> Self {
        Delivered {
            pay,
            max_id,
            ids: Vec::new(),
            own: None,
            ctx,
        }
    }

    fn with_own(mut self, own: Option<(u64, Vec<u8>)>) -> Self {
        self.own = own;
        self
    }

    pub fn take(&mut self, id: u64, payload: &[u8]) {
        let ctx = self.ctx;
        if let Some(&prev) = self.ids.last() {
            assert_eq!(
                Some(id),
                prev.checked_add(1),
                "{ctx}: id {id} delivered after {prev}"
            );
        }
        if let Some(max) = self.max_id {
            assert!(
                id <= max,
                "{ctx}: id {id} delivered, never assigned (max {max})"
            );
        }
        if let Some((own_id, own)) = &self.own {
            if id == *own_id {
                assert_eq!(
                    payload,
                    own.as_slice(),
                    "{ctx}: id {id} is not what was appended"
                );
            }
        }
        if let Some(p) = self.pay {
            assert!(
                payload == p.entry(id).as_slice(),
                "{ctx}: id {id} delivered a payload that was never written under it \
                 ({} bytes)",
                payload.len()
            );
        }
        self.ids.push(id);
    }

    pub fn last(&self) -> Option<u64> {
        self.ids.last().copied()
    }
}

/// Builds the image with the real writer into `chip` (which must be `CHIP` bytes; it is
/// erased first).
pub fn build<const W: usize>(spec: &Spec, chip: &mut [u8]) -> Built {
    assert_eq!(chip.len(), CHIP);
    chip.fill(0xFF);
    let pay = Payloads::of(spec);
    let mut built = Built::default();
    let sessions: Vec<&[Op]> = spec.ops.split(|op| *op == Op::Reboot).collect();
    for (s, ops) in sessions.iter().enumerate() {
        let (wal_bytes, cp_bytes) = wal_mem(chip);
        let mut wal_flash = Flash::<W>::new(wal_bytes);
        let mut cp_flash = Flash::<W>::new(cp_bytes);
        let armed = spec.cut.filter(|c| c.session as usize == s);
        if let Some(c) = armed {
            let f = if c.checkpoint_partition {
                &mut cp_flash
            } else {
                &mut wal_flash
            };
            f.set_power_cut(PowerCut::AtOp(c.op as u64), c.seed);
        }
        if !session::<W>(wal_flash, cp_flash, &pay, ops, &mut built) {
            break;
        }
    }
    built
}

fn power_lost(e: &Err) -> bool {
    matches!(e, Error::Storage(FlashError::Flash(SimError::PowerLost)))
}

fn no_space(e: &Err) -> bool {
    matches!(e, Error::Storage(FlashError::NoSpace))
}

/// One boot of the builder: mount, recover (checked), reopen, run `ops`. Returns whether
/// the build goes on (false after a power cut or when no writer could be opened).
fn session<const W: usize>(
    wal_flash: Flash<'_, W>,
    cp_flash: Flash<'_, W>,
    pay: &Payloads,
    ops: &[Op],
    built: &mut Built,
) -> bool {
    // The image is the builder's own, undamaged (a cut ends the build), so these succeed.
    let mut wal = FlashStorage::<_, N>::new(wal_flash, 0, WAL_UNITS).expect("build: mount WAL");
    let cp = FlashStorage::<_, N>::new(cp_flash, 0, CP_UNITS).expect("build: mount checkpoints");
    let mut ck = CheckpointStore::new(cp);
    let mut buf = [0u8; BUF];
    let mut seen = Delivered::new(Some(pay), Some(built.max_id), "build: recovery");
    let recovered = recover(
        &mut wal,
        &mut ck,
        &mut buf,
        ReadMode::BestEffort,
        |c| {
            if let Some((h, p)) = c {
                assert_eq!(
                    p,
                    &pay.checkpoint(h.last_id)[..],
                    "build: checkpoint payload"
                );
            }
            Ok(())
        },
        |_, id, p| {
            seen.take(id, p);
            Ok(())
        },
    );
    let report = match recovered {
        Ok((_, r)) => r,
        Err(e) if power_lost(&e) => {
            built.cut = true;
            return false;
        }
        Err(e) => panic!("build: recovery of an undamaged image failed: {e:?}"),
    };
    assert!(
        report.next_id > built.acked,
        "build: acknowledged entries lost: next id {} after {} acknowledged",
        report.next_id,
        built.acked
    );
    let cfg = report.writer_config(WalConfig::new(LOG_ID));
    let mut w = match WalWriter::open(wal, [0u8; BUF], cfg) {
        Ok(w) => w,
        Err(e) => {
            if power_lost(&e) {
                built.cut = true;
            } else {
                assert!(no_space(&e), "build: open failed: {e:?}");
                built.failed = true;
            }
            return false;
        }
    };
    let next = w.next_id().expect("build: next id of an open writer");
    assert_eq!(next, report.next_id, "build: writer and recovery disagree");
    let fail = |e: Err, built: &mut Built| {
        if power_lost(&e) {
            built.cut = true;
            false
        } else {
            // A full partition (or what follows it: the writer is poisoned) ends the
            // session, not the build: a later session may publish and free units.
            built.failed = true;
            true
        }
    };
    let mut scratch = [0u8; BUF];
    for op in ops {
        match *op {
            Op::Append(k) => {
                for _ in 0..k {
                    let id = match w.next_id() {
                        Ok(id) => id,
                        Err(e) => return fail(e, built),
                    };
                    // A failed (cut) append may still have landed.
                    built.max_id = built.max_id.max(id);
                    match w.append(&pay.entry(id)) {
                        Ok(got) => assert_eq!(got, id, "build: append id"),
                        Err(e) => return fail(e, built),
                    }
                }
            }
            Op::Sync => match w.sync() {
                Ok(()) => {
                    let last = w.last_id().expect("build: last id").unwrap_or(0);
                    built.acked = built.acked.max(last);
                }
                Err(e) => return fail(e, built),
            },
            Op::Publish { marker } => {
                let last = match w.last_id() {
                    Ok(Some(last)) => last,
                    Ok(None) => continue,
                    Err(e) => return fail(e, built),
                };
                let m = pay.entry(last + 1);
                if marker {
                    // Appended inside publish; it may land even if publish fails later.
                    built.max_id = built.max_id.max(last + 1);
                }
                let r = publish(
                    &mut w,
                    &mut ck,
                    last,
                    &pay.checkpoint(last),
                    marker.then_some(&m[..]),
                    KEEP,
                    &mut scratch,
                );
                match r {
                    Ok(r) => {
                        assert_eq!(r.marker_id, marker.then_some(last + 1), "build: marker id");
                        let through = r.marker_id.unwrap_or(last);
                        built.acked = built.acked.max(through);
                    }
                    Err(e) => return fail(e, built),
                }
            }
            Op::Reboot => unreachable!("sessions are split at reboots"),
        }
    }
    true
}

/// Bytes of a unit up to its last non-0xFF byte.
fn extent(unit: &[u8]) -> usize {
    unit.iter().rposition(|&b| b != 0xFF).map_or(0, |p| p + 1)
}

fn resolve(chip: &[u8], word: usize, t: Target) -> usize {
    let unit = t.unit as usize % UNITS;
    let base = unit * ERASE;
    let span = (extent(&chip[base..base + ERASE]) + word).min(ERASE);
    base + t.off as usize % span
}

/// Applies the damage to the chip (`word`: the flash word size, for `Damage::Word`).
pub fn damage(chip: &mut [u8], word: usize, list: &[Damage]) {
    for d in list {
        match *d {
            Damage::ClearBits { at, mask } => chip[resolve(chip, word, at)] &= !mask,
            Damage::Flip { at, mask } => chip[resolve(chip, word, at)] ^= mask,
            Damage::Byte { at, value } => chip[resolve(chip, word, at)] = value,
            Damage::Word { at, erased } => {
                let start = resolve(chip, word, at) / word * word;
                chip[start..start + word].fill(if erased { 0xFF } else { 0x00 });
            }
            Damage::EraseTail { at } => {
                let pos = resolve(chip, word, at);
                let end = (pos / ERASE + 1) * ERASE;
                chip[pos..end].fill(0xFF);
            }
            Damage::Garbage { unit, seed } => {
                let base = unit as usize % UNITS * ERASE;
                let mut s = seed;
                for chunk in chip[base..base + ERASE].chunks_mut(8) {
                    s = mix(s);
                    chunk.copy_from_slice(&s.to_le_bytes()[..chunk.len()]);
                }
            }
            Damage::EraseUnit { unit } => {
                let base = unit as usize % UNITS * ERASE;
                chip[base..base + ERASE].fill(0xFF);
            }
            Damage::CopyUnit { from, to } => {
                let (f, t) = (from as usize % UNITS, to as usize % UNITS);
                chip.copy_within(f * ERASE..(f + 1) * ERASE, t * ERASE);
            }
            Damage::SwapUnits { a, b } => {
                let (a, b) = (a as usize % UNITS, b as usize % UNITS);
                if a != b {
                    let (lo, hi) = (a.min(b), a.max(b));
                    let (x, y) = chip.split_at_mut(hi * ERASE);
                    x[lo * ERASE..(lo + 1) * ERASE].swap_with_slice(&mut y[..ERASE]);
                }
            }
        }
    }
}

/// How far a case got (for the tests' summary: a suite whose every case stops at the
/// mount checks little).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub cases: u64,
    pub wal_mounted: u64,
    pub replay_ok: u64,
    pub replay_torn: u64,
    pub replay_err: u64,
    pub entries_delivered: u64,
    pub writer_opened: u64,
    pub writer_appended: u64,
    pub recovered: u64,
    pub recovery_err: u64,
    pub recovered_writer_appended: u64,
    pub built_cut: u64,
    pub built_full: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.cases += o.cases;
        self.wal_mounted += o.wal_mounted;
        self.replay_ok += o.replay_ok;
        self.replay_torn += o.replay_torn;
        self.replay_err += o.replay_err;
        self.entries_delivered += o.entries_delivered;
        self.writer_opened += o.writer_opened;
        self.writer_appended += o.writer_appended;
        self.recovered += o.recovered;
        self.recovery_err += o.recovery_err;
        self.recovered_writer_appended += o.recovered_writer_appended;
        self.built_cut += o.built_cut;
        self.built_full += o.built_full;
    }
}

/// What the checks know about the image: nothing (a raw image), or how it was built and
/// whether it was damaged afterwards.
#[derive(Debug, Clone, Copy)]
pub struct Known<'p> {
    pub pay: Option<&'p Payloads>,
    pub built: Option<Built>,
    pub damaged: bool,
}

/// The payload a checker's own writer appends under `id`.
fn own_payload(known: &Known<'_>, id: u64) -> Vec<u8> {
    match known.pay {
        Some(p) => p.entry(id),
        None => {
            let mut v = id.to_le_bytes().to_vec();
            v.extend_from_slice(b"appended by the check");
            v
        }
    }
}

/// Replays the WAL partition of `chip` in both modes (a growable and a fixed buffer) and
/// checks what they deliver and how they agree. Returns the best-effort result and the
/// ids it delivered; `None` if the partition does not mount.
fn replay_both<const W: usize>(
    chip: &[u8],
    known: &Known<'_>,
    max_id: Option<u64>,
    own: Option<(u64, Vec<u8>)>,
    ctx: &'static str,
) -> Option<(Result<ReplayReport, Err>, Vec<u64>, bool)> {
    let mut img = chip.to_vec();
    let (wal_b, _) = wal_mem(&mut img);
    let mut fs = mount::<W>(wal_b, WAL_UNITS).ok()?;
    let mut strict = Delivered::new(known.pay, max_id, ctx).with_own(own.clone());
    let mut grow: Vec<u8> = Vec::new();
    let rs = WalReader::new(&mut fs, &mut grow).replay(ReadMode::Strict, |id, p| {
        strict.take(id, p);
        Ok(())
    });
    assert!(
        grow.len() <= ERASE,
        "{ctx}: the reader's buffer grew to {} bytes, more than a unit",
        grow.len()
    );
    let mut be = Delivered::new(known.pay, max_id, ctx).with_own(own);
    let rb = WalReader::new(&mut fs, [0u8; BUF]).replay(ReadMode::BestEffort, |id, p| {
        be.take(id, p);
        Ok(())
    });
    assert_eq!(
        strict.ids, be.ids,
        "{ctx}: strict and best-effort delivered differently"
    );
    let torn = match (&rs, &rb) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{ctx}: reports differ");
            assert!(a.torn_at.is_none(), "{ctx}: strict Ok with a torn tail");
            false
        }
        (Err(Error::TornTail { at }), Ok(b)) => {
            assert_eq!(
                b.torn_at,
                Some(*at),
                "{ctx}: torn tail reported differently"
            );
            true
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "{ctx}: the modes fail differently");
            false
        }
        (a, b) => panic!("{ctx}: strict {a:?} but best-effort {b:?}"),
    };
    if let Ok(r) = &rb {
        assert_eq!(
            r.entries,
            be.ids.len() as u64,
            "{ctx}: report counts entries wrong"
        );
        if let Some(last) = be.last() {
            assert_eq!(r.next_id, last + 1, "{ctx}: next id after the last entry");
        }
        if let (Some(first), Some(f)) = (be.ids.first(), r.first_id) {
            assert_eq!(
                *first, f,
                "{ctx}: first id delivered is not the log's first"
            );
        }
    }
    Some((rb, be.ids, torn))
}

/// Recovers (checkpoint + WAL suffix) from the chip in `mode`; checks what it delivers.
/// Returns the report and the ids delivered, or the error; `None` if a partition does
/// not mount. The chip is not changed (a copy is mounted).
fn recover_checked<const W: usize>(
    chip: &[u8],
    known: &Known<'_>,
    max_id: Option<u64>,
    own: Option<(u64, Vec<u8>)>,
    mode: ReadMode,
    ctx: &'static str,
) -> Option<(RecoveryResult, Vec<u64>)> {
    let mut img = chip.to_vec();
    let (wb, cb) = wal_mem(&mut img);
    let wal = mount::<W>(wb, WAL_UNITS).ok()?;
    let cp = mount::<W>(cb, CP_UNITS).ok()?;
    let mut ck = CheckpointStore::new(cp);
    let mut seen = Delivered::new(known.pay, max_id, ctx).with_own(own);
    let mut buf = [0u8; BUF];
    let r = recover(
        wal,
        &mut ck,
        &mut buf,
        mode,
        |c| {
            let from = match c {
                Some((h, p)) => {
                    assert_eq!(p.len(), h.len as usize, "{ctx}: checkpoint length");
                    if let Some(pay) = known.pay {
                        assert_eq!(
                            p,
                            &pay.checkpoint(h.last_id)[..],
                            "{ctx}: checkpoint payload never written for last id {}",
                            h.last_id
                        );
                    }
                    if let Some(max) = max_id {
                        assert!(h.last_id <= max, "{ctx}: checkpoint beyond every id");
                    }
                    h.last_id + 1
                }
                None => 1,
            };
            Ok(from)
        },
        |_, id, p| {
            seen.take(id, p);
            Ok(())
        },
    );
    let r = r.map(|(from, report)| {
        if let Some(&first) = seen.ids.first() {
            assert_eq!(
                first, from,
                "{ctx}: recovery did not continue at the checkpoint"
            );
        }
        assert_eq!(
            report.replay.entries,
            seen.ids.len() as u64,
            "{ctx}: entry count"
        );
        let through = seen.last().unwrap_or(from - 1);
        assert_eq!(report.next_id, through + 1, "{ctx}: next id after recovery");
        (
            through,
            RecoveryOut {
                cfg: report.writer_config(WalConfig::new(LOG_ID)),
                torn: report.replay.torn_at.is_some(),
            },
        )
    });
    Some((r, seen.ids))
}

#[derive(Debug, Clone, Copy)]
pub struct RecoveryOut {
    cfg: WalConfig,
    torn: bool,
}

/// The id a writer continued at and, if its append and sync worked, the image after.
type WriterRound = (u64, Option<Vec<u8>>);

/// Opens a writer on a copy of the chip, appends one entry and syncs. Returns the open's
/// error, or the id it continued at and, if the append and sync worked, the written
/// image (the caller checks that the entry reads back).
fn writer_round<const W: usize>(
    chip: &[u8],
    known: &Known<'_>,
    cfg: WalConfig,
    ctx: &'static str,
) -> Option<Result<WriterRound, Err>> {
    let mut img = chip.to_vec();
    let n = {
        let (wb, _) = wal_mem(&mut img);
        let fs = mount::<W>(wb, WAL_UNITS).ok()?;
        let mut w = match WalWriter::open(fs, [0u8; BUF], cfg) {
            Ok(w) => w,
            Err(e) => return Some(Err(e)),
        };
        let n = w
            .next_id()
            .unwrap_or_else(|e| panic!("{ctx}: next id of an open writer: {e:?}"));
        let res = w.append(&own_payload(known, n)).and_then(|id| {
            assert_eq!(id, n, "{ctx}: append returned another id");
            w.sync()
        });
        if let Err(e) = res {
            assert!(
                no_space(&e),
                "{ctx}: an open writer failed to append: {e:?}"
            );
            return Some(Ok((n, None)));
        }
        n
    };
    Some(Ok((n, Some(img))))
}

type RecoveryResult = Result<(u64, RecoveryOut), Err>;

/// Every check on one image (see the module docs of the test). `chip` is not changed.
pub fn check<const W: usize>(chip: &[u8], known: &Known<'_>) -> Stats {
    let mut st = Stats {
        cases: 1,
        ..Stats::default()
    };
    let max_id = known.built.map(|b| b.max_id);
    let undamaged = !known.damaged && known.built.is_some();
    let clean = undamaged && known.built.is_some_and(|b| !b.cut);

    // 1. Plain replay, both modes.
    let replay = replay_both::<W>(chip, known, max_id, None, "replay");
    match &replay {
        Some((r, ids, torn)) => {
            st.wal_mounted += 1;
            match r {
                Ok(_) if *torn => st.replay_torn += 1,
                Ok(_) => st.replay_ok += 1,
                Err(_) => st.replay_err += 1,
            }
            st.entries_delivered += ids.len() as u64;
            if clean {
                assert!(r.is_ok() && !torn, "replay of an undamaged image: {r:?}");
                let acked = known.built.map_or(0, |b| b.acked);
                if let Ok(rep) = r {
                    assert!(
                        rep.first_id.is_none() || rep.next_id > acked,
                        "replay of an undamaged image lost acknowledged entries: {rep:?}"
                    );
                }
            }
        }
        None => assert!(!undamaged, "an undamaged image does not mount"),
    }

    // 2. A writer on the image as it is: opens where replay works, appends, reads back.
    if let Some(res) = writer_round::<W>(chip, known, WalConfig::new(LOG_ID), "writer") {
        let be = replay.as_ref().map(|(r, ids, _)| (r, ids));
        match res {
            Err(e) => {
                if let Some((Ok(_), _)) = be {
                    assert!(
                        no_space(&e),
                        "writer: open failed on a log that replays: {e:?}"
                    );
                }
            }
            Ok((n, img)) => {
                st.writer_opened += 1;
                if let Some((r, ids)) = be {
                    match r {
                        Ok(rep) if rep.first_id.is_some() => {
                            assert_eq!(
                                n, rep.next_id,
                                "writer: continues at another id than replay"
                            )
                        }
                        Ok(_) => {}
                        Err(e) => panic!("writer: opened a log that replay refuses ({e:?})"),
                    }
                    if let Some(&last) = ids.last() {
                        assert!(n > last, "writer: reuses id {n} (replay delivered {last})");
                    }
                }
                if let Some(img) = img {
                    st.writer_appended += 1;
                    let own = Some((n, own_payload(known, n)));
                    let max = max_id.map(|m| m.max(n));
                    let ctx = "replay after the writer's append";
                    let (r, ids, torn) = replay_both::<W>(&img, known, max, own, ctx)
                        .unwrap_or_else(|| panic!("{ctx}: the image no longer mounts"));
                    assert!(r.is_ok() && !torn, "{ctx}: {r:?} (torn: {torn})");
                    assert_eq!(
                        ids.last(),
                        Some(&n),
                        "{ctx}: the appended entry is not last"
                    );
                }
            }
        }
    }

    // 3. Lifecycle recovery, both modes, then a writer continuing after it.
    let strict = recover_checked::<W>(
        chip,
        known,
        max_id,
        None,
        ReadMode::Strict,
        "recover strict",
    );
    let be = recover_checked::<W>(
        chip,
        known,
        max_id,
        None,
        ReadMode::BestEffort,
        "recover best-effort",
    );
    for (r, ids) in [&strict, &be].into_iter().flatten() {
        st.entries_delivered += ids.len() as u64;
        match r {
            Ok(_) => st.recovered += 1,
            Err(_) => st.recovery_err += 1,
        }
    }
    if let (Some((rs, ids_s)), Some((rb, ids_b))) = (&strict, &be) {
        assert_eq!(ids_s, ids_b, "recovery: the modes delivered differently");
        cross_modes(rs, rb);
    }
    if undamaged {
        let b = known.built.unwrap_or_default();
        let Some((Ok((through, _)), _)) = &be else {
            panic!("best-effort recovery of an undamaged image failed: {be:?}");
        };
        assert!(
            *through >= b.acked,
            "recovery lost acknowledged entries: {through} < {}",
            b.acked
        );
        if clean {
            assert!(
                matches!(&strict, Some((Ok(_), _))),
                "strict recovery of an undamaged, uncut image failed: {strict:?}"
            );
        }
    }
    if let Some((Ok((through, out)), _)) = &be {
        let ctx = "writer after recovery";
        match writer_round::<W>(chip, known, out.cfg, ctx) {
            None => panic!("{ctx}: the image no longer mounts"),
            Some(Err(e)) => {
                assert!(
                    no_space(&e),
                    "{ctx}: open failed after a recovery that worked: {e:?}"
                )
            }
            Some(Ok((n, img))) => {
                assert_eq!(
                    n,
                    through + 1,
                    "{ctx}: does not continue after the recovered state"
                );
                if let Some(img) = img {
                    st.recovered_writer_appended += 1;
                    let own = Some((n, own_payload(known, n)));
                    let max = max_id.map(|m| m.max(n));
                    for mode in [ReadMode::Strict, ReadMode::BestEffort] {
                        let (r, _) = recover_checked::<W>(&img, known, max, own.clone(), mode, ctx)
                            .unwrap_or_else(|| panic!("{ctx}: the image no longer mounts"));
                        match r {
                            Ok((t, _)) => assert_eq!(t, n, "{ctx}: {mode:?} recovery ends at {t}"),
                            Err(e) => panic!("{ctx}: {mode:?} recovery after the append: {e:?}"),
                        }
                    }
                }
            }
        }
    }
    st
}

/// Strict and best-effort runs over the same bytes: they differ only in how a torn
/// tail ends them.
fn cross_modes(strict: &RecoveryResult, be: &RecoveryResult) {
    match (strict, be) {
        (Ok((a, ra)), Ok((b, rb))) => {
            assert_eq!(a, b, "recovery: modes end at different ids");
            assert!(!ra.torn && !rb.torn, "recovery: strict Ok over a torn tail");
        }
        (Err(Error::TornTail { .. }), Ok((_, rb))) => {
            assert!(
                rb.torn,
                "recovery: strict saw a torn tail, best-effort did not"
            )
        }
        // Strict stops at the torn tail; best-effort goes on to the later checks
        // (checkpoint ahead of the WAL, ...), which may fail instead.
        (Err(Error::TornTail { .. }), Err(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "recovery: the modes fail differently"),
        (a, b) => panic!("recovery: strict {a:?} but best-effort {b:?}"),
    }
}

fn run_w<const W: usize>(spec: &Spec) -> Stats {
    let mut chip = vec![0xFF; CHIP];
    let built = build::<W>(spec, &mut chip);
    damage(&mut chip, W, &spec.damage);
    let pay = Payloads::of(spec);
    let known = Known {
        pay: Some(&pay),
        built: Some(built),
        damaged: !spec.damage.is_empty(),
    };
    let mut st = check::<W>(&chip, &known);
    st.built_cut += built.cut as u64;
    st.built_full += built.failed as u64;
    st
}

/// The word sizes the cases run with (`Spec::word` picks one).
pub const WORDS: [usize; 3] = [1, 4, 16];

/// Builds, damages and checks one case.
pub fn run(spec: &Spec) -> Stats {
    match spec.word as usize % WORDS.len() {
        0 => run_w::<1>(spec),
        1 => run_w::<4>(spec),
        _ => run_w::<16>(spec),
    }
}

/// The undamaged image of `spec`, as a raw-mode fuzz input (mode byte, then the chip):
/// seeds for `fuzz_flash_image`, which cannot guess CRC-32C values on its own.
pub fn raw_seed(spec: &Spec) -> Vec<u8> {
    let mut chip = vec![0xFF; CHIP];
    match spec.word as usize % WORDS.len() {
        0 => build::<1>(spec, &mut chip),
        1 => build::<4>(spec, &mut chip),
        _ => build::<16>(spec, &mut chip),
    };
    let mut out = vec![0x80 | (spec.word % WORDS.len() as u8)];
    out.extend_from_slice(&chip);
    out
}

/// Mounts `bytes` (cut or padded with 0xFF to the chip's size) as a raw flash image of
/// word size `WORDS[word % 3]` and checks it (nothing is known about what was written:
/// only the structural checks apply, and what the checks append themselves).
pub fn run_raw(word: u8, bytes: &[u8]) -> Stats {
    let mut chip = vec![0xFF; CHIP];
    let n = bytes.len().min(CHIP);
    chip[..n].copy_from_slice(&bytes[..n]);
    let known = Known {
        pay: None,
        built: None,
        damaged: true,
    };
    match word as usize % WORDS.len() {
        0 => check::<1>(&chip, &known),
        1 => check::<4>(&chip, &known),
        _ => check::<16>(&chip, &known),
    }
}

/// Reads bytes; zero once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn target(&mut self) -> Target {
        Target {
            unit: self.u8(),
            off: self.u16(),
        }
    }
}

/// A case from fuzzer bytes: word, payload lengths, builder steps, an optional power
/// cut, then damage. Every byte string is a valid case.
pub fn spec_from_bytes(data: &[u8]) -> Spec {
    let mut i = Input(data);
    let word = i.u8();
    let max_len = i.u8();
    let len_seed = mix(i.u8() as u64);
    let ops = (0..i.u8() % 32)
        .map(|_| {
            let b = i.u8();
            match b % 8 {
                0..=3 => Op::Append(1 + (b >> 3) % 6),
                4 | 5 => Op::Sync,
                6 => Op::Publish {
                    marker: b & 0x80 != 0,
                },
                _ => Op::Reboot,
            }
        })
        .collect();
    let c = i.u8();
    let cut = (c & 1 == 1).then(|| Cut {
        session: (c >> 1) % 4,
        checkpoint_partition: c & 0x80 != 0,
        op: i.u16() % 64,
        seed: i.u8() as u64,
    });
    let damage = (0..i.u8() % 8)
        .map(|_| {
            let kind = i.u8();
            let at = i.target();
            let x = i.u8();
            match kind % 9 {
                0 => Damage::ClearBits { at, mask: x | 1 },
                1 => Damage::Flip { at, mask: x | 1 },
                2 => Damage::Byte { at, value: x },
                3 => Damage::Word {
                    at,
                    erased: x & 1 == 1,
                },
                4 => Damage::EraseTail { at },
                5 => Damage::Garbage {
                    unit: at.unit,
                    seed: at.off as u64 | (x as u64) << 16,
                },
                6 => Damage::EraseUnit { unit: at.unit },
                7 => Damage::CopyUnit {
                    from: at.unit,
                    to: x,
                },
                _ => Damage::SwapUnits { a: at.unit, b: x },
            }
        })
        .collect();
    Spec {
        word,
        max_len,
        len_seed,
        ops,
        cut,
        damage,
    }
}
