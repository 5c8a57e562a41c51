//! The prefix property under arbitrary damage, legal or not, for the record log and the
//! WAL: whatever happens to the bytes, a replay delivers a prefix of what was appended
//! (payload-exact, ids contiguous from 1) and never a record that was not written.
//! Strict mode returns the full list or an error, except where the damage is
//! indistinguishable from a log that simply ended earlier (the final segment cut or
//! zeroed: unwritten space). Damage to a sealed segment is always an error. Reopening a
//! writer succeeds exactly when a best-effort replay does, changes nothing when it fails,
//! and continues right after the prefix when it succeeds.

use std::io::{Read, Write};
use std::sync::Arc;

use durability::core::mem::MemStorage;
use durability::core::recordlog::{
    RecordLogReader as CoreRlReader, RecordLogWriter as CoreRlWriter,
};
use durability::core::wal::{WalConfig, WalReader as CoreWalReader, WalWriter as CoreWalWriter};
use durability::core::{Error as CoreError, ReadMode};
use durability::recordlog::{RecordLogReadMode, RecordLogReader, RecordLogWriter};
use durability::storage::MemoryDirectory;
use durability::{Directory, PersistenceError};
use proptest::prelude::*;

const LOG_ID: u64 = 0x9F1E_F1E5_0000_0042;
const HEADER_LEN: usize = 48;
const MODES: [ReadMode; 2] = [ReadMode::Strict, ReadMode::BestEffort];

type Entries = Vec<(u64, Vec<u8>)>;

/// A position chosen uniformly in `0..size` once `size` is known.
#[derive(Debug, Clone, Copy)]
struct Index(u32);

impl Index {
    fn index(self, size: usize) -> usize {
        ((u64::from(self.0) * size as u64) >> 32) as usize
    }
}

fn any_index() -> impl Strategy<Value = Index> {
    any::<u32>().prop_map(Index)
}

// ---------------------------------------------------------------------------------------
// Damage.

#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    ZeroFrom(Index),
    GarbleFrom(Index, u64),
    BitFlip(Index, u8),
    ZeroRange(Index, usize),
    GarbleRange(Index, usize, u64),
}

impl Damage {
    fn apply(&self, b: &mut Vec<u8>) {
        let len = b.len();
        match *self {
            Damage::Truncate(i) => b.truncate(i.index(len + 1)),
            Damage::ZeroFrom(i) => b[i.index(len + 1)..].fill(0),
            Damage::GarbleFrom(i, seed) => garble(&mut b[i.index(len + 1)..], seed),
            Damage::BitFlip(i, bit) => {
                if len > 0 {
                    b[i.index(len)] ^= 1 << (bit % 8);
                }
            }
            Damage::ZeroRange(i, n) => {
                let a = i.index(len + 1);
                b[a..(a + n).min(len)].fill(0);
            }
            Damage::GarbleRange(i, n, seed) => {
                let a = i.index(len + 1);
                garble(&mut b[a..(a + n).min(len)], seed);
            }
        }
    }
}

/// Replaces every byte by a different, nonzero one.
fn garble(bytes: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for b in bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut g = (x >> 32) as u8 | 1;
        if g == *b {
            g ^= 2;
        }
        *b = g;
    }
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        1 => any_index().prop_map(Damage::Truncate),
        1 => any_index().prop_map(Damage::ZeroFrom),
        1 => (any_index(), any::<u64>()).prop_map(|(i, s)| Damage::GarbleFrom(i, s)),
        3 => (any_index(), any::<u8>()).prop_map(|(i, b)| Damage::BitFlip(i, b)),
        1 => (any_index(), 1usize..64).prop_map(|(i, n)| Damage::ZeroRange(i, n)),
        1 => (any_index(), 1usize..64, any::<u64>())
            .prop_map(|(i, n, s)| Damage::GarbleRange(i, n, s)),
    ]
}

/// Which segment a damage hits: the final one, or any.
#[derive(Debug, Clone)]
struct Hit {
    final_segment: bool,
    which: Index,
    damage: Damage,
}

fn hits_strategy() -> impl Strategy<Value = Vec<Hit>> {
    prop::collection::vec(
        (any::<bool>(), any_index(), damage_strategy()).prop_map(
            |(final_segment, which, damage)| Hit {
                final_segment,
                which,
                damage,
            },
        ),
        1..3,
    )
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Sync,
    Flush,
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            10 => prop_oneof![
                1 => Just(0usize),
                6 => 1usize..40,
                2 => 40usize..300,
                1 => 300usize..1200,
            ]
            .prop_map(Op::Append),
            3 => Just(Op::Sync),
            1 => Just(Op::Flush),
        ],
        1..50,
    )
}

fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0xA076_1D64_78BD_642F) ^ (len as u64).rotate_left(29) ^ 0x55;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 16) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Format knowledge for the checks (from docs/design.md, not from the crate).

fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

/// Byte positions of an intact segment that no checksum covers: the header's padding
/// and each frame's padding.
fn padding(seg: &[u8]) -> Vec<bool> {
    let mut pad = vec![false; seg.len()];
    let align = 1usize << seg[6];
    let data_start = round_up(HEADER_LEN, align);
    pad[HEADER_LEN..data_start].fill(true);
    let mut pos = data_start;
    while pos + 8 <= seg.len() {
        let word = u32::from_le_bytes(seg[pos + 4..pos + 8].try_into().unwrap());
        let body_end = pos + 8 + (word & 0x0FFF_FFFF) as usize;
        let end = round_up(body_end, align);
        assert!(end <= seg.len(), "writer left a partial frame");
        pad[body_end..end].fill(true);
        pos = end;
    }
    assert_eq!(pos, seg.len(), "writer left trailing bytes");
    pad
}

/// The first position where `damaged` differs from `orig` in a byte a checksum covers
/// (or ends, or runs longer); `None` if it differs only in padding.
fn first_real_change(orig: &[u8], damaged: &[u8]) -> Option<usize> {
    let pad = padding(orig);
    let common = orig.len().min(damaged.len());
    (0..common)
        .find(|&i| orig[i] != damaged[i] && !pad[i])
        .or((orig.len() != damaged.len()).then_some(common))
}

/// Whether `damaged` differs from `orig` in a byte a checksum covers, or in length.
fn changed_outside_padding(orig: &[u8], damaged: &[u8]) -> bool {
    first_real_change(orig, damaged).is_some()
}

/// Whether `damaged` reads like `orig` cut short: equal (up to padding) up to some
/// point, then nothing but unwritten (zero) bytes or the end.
fn looks_cut_short(orig: &[u8], damaged: &[u8]) -> bool {
    match first_real_change(orig, damaged) {
        None => true,
        Some(q) => damaged[q.min(damaged.len())..].iter().all(|&b| b == 0),
    }
}

// ---------------------------------------------------------------------------------------
// Outcomes, independent of the backend.

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Ok; `Some` is where a best-effort read was cut.
    Ok(Option<(u64, u64)>),
    Torn(u64, u64),
    Other(String),
}

fn core_end<T, E: std::fmt::Debug>(
    r: Result<T, CoreError<E>>,
    torn_at: impl FnOnce(&T) -> Option<(u64, u64)>,
) -> End {
    match r {
        Ok(rep) => End::Ok(torn_at(&rep)),
        Err(CoreError::TornTail { at }) => End::Torn(at.segment, at.offset),
        Err(e) => End::Other(format!("{e:?}")),
    }
}

/// The checks shared by both logs: both modes deliver the same prefix of `all` with
/// contiguous ids from 1, and their outcomes agree.
fn check_reads(
    all: &Entries,
    strict: &(Entries, End),
    best: &(Entries, End),
) -> Result<(), TestCaseError> {
    let (got_s, end_s) = strict;
    let (got_b, end_b) = best;
    prop_assert_eq!(got_s, got_b, "both modes stop at the same place");
    prop_assert!(got_b.len() <= all.len(), "more entries than appended");
    prop_assert_eq!(
        &got_b[..],
        &all[..got_b.len()],
        "not a prefix of what was appended"
    );
    match (end_s, end_b) {
        (End::Ok(None), End::Ok(None)) => {}
        (End::Torn(s, o), End::Ok(Some((s2, o2)))) => {
            prop_assert_eq!((s, o), (s2, o2), "torn location differs between modes")
        }
        (End::Other(a), End::Other(b)) => prop_assert_eq!(a, b, "modes report different errors"),
        (s, b) => prop_assert!(
            false,
            "inconsistent outcomes: strict {:?}, best-effort {:?}",
            s,
            b
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The WAL.

#[derive(Debug, Clone)]
struct WalCase {
    ws: usize,
    limit: u64,
    wbuf: usize,
    ops: Vec<Op>,
    hits: Vec<Hit>,
}

fn wal_case() -> impl Strategy<Value = WalCase> {
    (
        prop::sample::select(vec![1usize, 1, 4, 32]),
        prop_oneof![150u64..600, 600u64..3000],
        prop::sample::select(vec![64usize, 200, 4096]),
        ops_strategy(),
        hits_strategy(),
    )
        .prop_map(|(ws, limit, wbuf, ops, hits)| WalCase {
            ws,
            limit,
            wbuf,
            ops,
            hits,
        })
}

fn wal_read(st: &mut MemStorage, mode: ReadMode) -> (Entries, End) {
    let mut got = Vec::new();
    let r = CoreWalReader::new(st, Vec::new()).replay(mode, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    (
        got,
        core_end(r, |rep| rep.torn_at.map(|l| (l.segment, l.offset))),
    )
}

fn check_wal(c: &WalCase) -> Result<(), TestCaseError> {
    let mut st = MemStorage::with_write_size(c.ws);
    let cfg = WalConfig {
        segment_limit: c.limit,
        log_id: LOG_ID,
        first_id: 1,
        covered_through: 0,
    };
    let mut all = Vec::new();
    {
        let mut w = CoreWalWriter::new(&mut st, vec![0u8; c.wbuf], cfg);
        for op in &c.ops {
            match op {
                Op::Append(len) => {
                    let p = payload(all.len() as u64 + 1, *len);
                    let id = w.append(&p).unwrap();
                    all.push((id, p));
                }
                Op::Sync => w.sync().unwrap(),
                Op::Flush => w.flush().unwrap(),
            }
        }
        w.flush().unwrap();
    }
    let orig = st.segments.clone();
    prop_assert_eq!(
        wal_read(&mut st, ReadMode::Strict),
        (all.clone(), End::Ok(None))
    );

    let last = *orig.keys().next_back().unwrap();
    let keys: Vec<u64> = orig.keys().copied().collect();
    for h in &c.hits {
        let n = if h.final_segment {
            last
        } else {
            keys[h.which.index(keys.len())]
        };
        h.damage.apply(st.segments.get_mut(&n).unwrap());
    }
    let damaged = st.segments.clone();
    let changed: Vec<u64> = keys
        .iter()
        .copied()
        .filter(|n| damaged[n] != orig[n])
        .collect();

    let strict = wal_read(&mut st, ReadMode::Strict);
    let best = wal_read(&mut st, ReadMode::BestEffort);
    check_reads(&all, &strict, &best)?;

    // Strict returns everything unless the damage is indistinguishable from the log
    // having ended earlier: the final segment cut short or followed by unwritten bytes.
    let only_cut_short = changed
        .iter()
        .all(|&n| n == last || !changed_outside_padding(&orig[&n], &damaged[&n]))
        && looks_cut_short(&orig[&last], &damaged[&last]);
    if let End::Ok(_) = strict.1 {
        if strict.0 != all {
            prop_assert!(
                only_cut_short,
                "strict returned {} of {} entries without an error after {:?}",
                strict.0.len(),
                all.len(),
                c.hits
            );
        }
    }

    // A sealed segment is every segment below the last one with a readable header.
    let final_header_intact = {
        let (o, d) = (&orig[&last], &damaged[&last]);
        let ds = round_up(HEADER_LEN, 1usize << o[6]);
        d.len() >= ds && d[..ds] == o[..ds]
    };
    let sealed_below = if final_header_intact { last } else { last - 1 };
    let sealed_hit = changed
        .iter()
        .any(|&n| n < sealed_below && changed_outside_padding(&orig[&n], &damaged[&n]));
    if sealed_hit {
        prop_assert!(
            matches!(best.1, End::Other(_)),
            "damage in a sealed segment was not an error: {:?}",
            best.1
        );
    }
    if changed.is_empty()
        || changed
            .iter()
            .all(|n| !changed_outside_padding(&orig[n], &damaged[n]))
    {
        prop_assert_eq!(
            &strict,
            &(all.clone(), End::Ok(None)),
            "padding is not data"
        );
    }

    // Reopening: succeeds exactly when best-effort does; a failure changes nothing; a
    // success continues the ids after the prefix.
    let k = best.0.len() as u64;
    let cfg2 = WalConfig {
        segment_limit: 500,
        log_id: LOG_ID + 1,
        first_id: 1,
        covered_through: 0,
    };
    match CoreWalWriter::open(&mut st, vec![0u8; 64], cfg2) {
        Err(e) => {
            prop_assert!(
                matches!(best.1, End::Other(_)),
                "open failed ({:?}) where best-effort succeeded",
                e
            );
            prop_assert_eq!(&st.segments, &damaged, "a failed open changed bytes");
        }
        Ok(mut w) => {
            prop_assert!(
                matches!(best.1, End::Ok(_)),
                "open succeeded on {:?}",
                best.1
            );
            prop_assert_eq!(w.next_id().unwrap(), k + 1);
            let p = payload(9999, 33);
            prop_assert_eq!(w.append(&p).unwrap(), k + 1);
            w.sync().unwrap();
            drop(w);
            let mut want = best.0.clone();
            want.push((k + 1, p));
            prop_assert_eq!(wal_read(&mut st, ReadMode::Strict), (want, End::Ok(None)));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The record log, through the core and through the facade.

#[derive(Debug, Clone)]
struct RlCase {
    facade: bool,
    ws: usize,
    wbuf: usize,
    ops: Vec<Op>,
    damage: Vec<Damage>,
}

fn rl_case() -> impl Strategy<Value = RlCase> {
    (
        prop::bool::weighted(0.3),
        prop::sample::select(vec![1usize, 4, 32]),
        prop::sample::select(vec![64usize, 200, 4096]),
        ops_strategy(),
        prop::collection::vec(damage_strategy(), 1..3),
    )
        .prop_map(|(facade, ws, wbuf, ops, damage)| RlCase {
            facade,
            ws: if facade { 1 } else { ws },
            wbuf,
            ops,
            damage,
        })
}

const RL_PATH: &str = "logs/events.log";

enum Rl {
    Core(MemStorage),
    Facade(Arc<dyn Directory>),
}

impl Rl {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Rl::Core(st) => st.segments[&0].clone(),
            Rl::Facade(dir) => {
                let mut v = Vec::new();
                dir.open_file(RL_PATH).unwrap().read_to_end(&mut v).unwrap();
                v
            }
        }
    }

    fn set_bytes(&mut self, b: &[u8]) {
        match self {
            Rl::Core(st) => {
                st.segments.insert(0, b.to_vec());
            }
            Rl::Facade(dir) => {
                let mut w = dir.create_file(RL_PATH).unwrap();
                w.write_all(b).unwrap();
                w.flush().unwrap();
            }
        }
    }

    fn read(&mut self, mode: ReadMode) -> (Entries, End) {
        let mut got = Vec::new();
        let end = match self {
            Rl::Core(st) => {
                let r = CoreRlReader::new(st, Vec::new()).read(mode, |i, p| {
                    got.push((i, p.to_vec()));
                    Ok(())
                });
                core_end(r, |rep| rep.torn_at.map(|l| (l.segment, l.offset)))
            }
            Rl::Facade(dir) => {
                let m = match mode {
                    ReadMode::Strict => RecordLogReadMode::Strict,
                    ReadMode::BestEffort => RecordLogReadMode::BestEffort,
                };
                let mut n = 0;
                let r = RecordLogReader::new(dir.clone(), RL_PATH).read_with(m, |p| {
                    n += 1;
                    got.push((n, p.to_vec()));
                    Ok(())
                });
                match r {
                    Ok(rep) => End::Ok(rep.torn_at.map(|l| (l.segment, l.offset))),
                    Err(PersistenceError::TornTail { segment, offset }) => {
                        End::Torn(segment, offset)
                    }
                    Err(e) => End::Other(format!("{e:?}")),
                }
            }
        };
        (got, end)
    }

    /// Writes `ops`; returns the records appended, all flushed.
    fn write(&mut self, c: &RlCase) -> Entries {
        let mut all = Vec::new();
        match self {
            Rl::Core(st) => {
                let mut w = CoreRlWriter::new(st, vec![0u8; c.wbuf], LOG_ID);
                for op in &c.ops {
                    match op {
                        Op::Append(len) => {
                            let p = payload(all.len() as u64 + 1, *len);
                            let i = w.append(&p).unwrap();
                            all.push((i, p));
                        }
                        Op::Sync => w.sync().unwrap(),
                        Op::Flush => w.flush().unwrap(),
                    }
                }
                w.flush().unwrap();
            }
            Rl::Facade(dir) => {
                let mut w = RecordLogWriter::new(dir.clone(), RL_PATH);
                for op in &c.ops {
                    match op {
                        Op::Append(len) => {
                            let p = payload(all.len() as u64 + 1, *len);
                            w.append_bytes(&p).unwrap();
                            all.push((all.len() as u64 + 1, p));
                        }
                        Op::Sync => w.flush_and_sync().unwrap(),
                        Op::Flush => w.flush().unwrap(),
                    }
                }
                w.flush().unwrap();
            }
        }
        all
    }

    /// Reopens a writer and appends one record, durably; returns the index the writer
    /// reported before the append (core) or `None` (facade, which does not report it).
    fn reopen_append(&mut self, p: &[u8]) -> Result<Option<u64>, String> {
        match self {
            Rl::Core(st) => {
                let mut w = CoreRlWriter::open(st, vec![0u8; 64], LOG_ID + 1)
                    .map_err(|e| format!("{e:?}"))?;
                let next = w.next_index().unwrap();
                assert_eq!(w.append(p).unwrap(), next);
                w.sync().unwrap();
                Ok(Some(next))
            }
            Rl::Facade(dir) => {
                let mut w = RecordLogWriter::new(dir.clone(), RL_PATH);
                w.append_bytes(p).map_err(|e| format!("{e:?}"))?;
                w.flush_and_sync().unwrap();
                Ok(None)
            }
        }
    }
}

fn check_rl(c: &RlCase) -> Result<(), TestCaseError> {
    let mut rl = if c.facade {
        Rl::Facade(Arc::new(MemoryDirectory::new()))
    } else {
        Rl::Core(MemStorage::with_write_size(c.ws))
    };
    let all = rl.write(c);
    prop_assert_eq!(rl.read(ReadMode::Strict), (all.clone(), End::Ok(None)));
    let orig = rl.bytes();
    let mut d = orig.clone();
    for dmg in &c.damage {
        dmg.apply(&mut d);
    }
    rl.set_bytes(&d);

    let strict = rl.read(ReadMode::Strict);
    let best = rl.read(ReadMode::BestEffort);
    check_reads(&all, &strict, &best)?;
    if let End::Ok(_) = strict.1 {
        if strict.0 != all {
            prop_assert!(
                looks_cut_short(&orig, &d),
                "strict returned {} of {} records without an error after {:?}",
                strict.0.len(),
                all.len(),
                c.damage
            );
        }
    }
    if !changed_outside_padding(&orig, &d) {
        prop_assert_eq!(
            &strict,
            &(all.clone(), End::Ok(None)),
            "padding is not data"
        );
    }

    let k = best.0.len() as u64;
    let p = payload(7777, 21);
    match rl.reopen_append(&p) {
        Err(e) => {
            prop_assert!(
                matches!(best.1, End::Other(_)),
                "reopen failed ({}) where best-effort succeeded",
                e
            );
            prop_assert_eq!(rl.bytes(), d, "a failed reopen changed bytes");
        }
        Ok(next) => {
            prop_assert!(
                matches!(best.1, End::Ok(_)),
                "reopen succeeded on {:?}",
                best.1
            );
            if let Some(next) = next {
                prop_assert_eq!(next, k + 1);
            }
            let mut want = best.0.clone();
            want.push((k + 1, p));
            prop_assert_eq!(rl.read(ReadMode::Strict), (want, End::Ok(None)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn wal_replay_is_a_prefix_under_any_damage(c in wal_case()) {
        check_wal(&c)?;
    }

    #[test]
    fn record_log_read_is_a_prefix_under_any_damage(c in rl_case()) {
        check_rl(&c)?;
    }
}

/// Without damage both logs read back exactly, in both modes (the baseline the
/// properties above compare against).
#[test]
fn undamaged_logs_read_back_in_both_modes() {
    let mut st = MemStorage::new();
    let mut w = CoreWalWriter::new(&mut st, vec![0u8; 64], WalConfig::new(LOG_ID));
    let all: Entries = (1..=20u64)
        .map(|i| {
            let p = payload(i, (i as usize * 13) % 50);
            assert_eq!(w.append(&p).unwrap(), i);
            if i % 6 == 0 {
                w.sync().unwrap();
            }
            (i, p)
        })
        .collect();
    w.flush().unwrap();
    drop(w);
    for mode in MODES {
        assert_eq!(wal_read(&mut st, mode), (all.clone(), End::Ok(None)));
    }
}
