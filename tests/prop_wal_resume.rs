//! Property: after any *legal* tear of the final segment (damage only to bytes that no
//! completed barrier covered), resuming the WAL continues the entry ids right after the
//! best-effort prefix, and a strict replay afterwards is exactly that prefix followed by
//! the new entries. Everything appended before the last completed sync is in the prefix.
//!
//! The WAL is written and resumed either by the core writer over `MemStorage` (write
//! sizes 1, 4 and 32) or, for a subset of cases, by the facade over `MemoryDirectory`.
//! The best-effort prefix is not only checked for being a prefix: it is predicted
//! exactly from the bytes (the run of frames of the final segment that survived intact).
//!
//! `PROPTEST_CASES=512 cargo test --test prop_wal_resume`

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use durability::core::mem::MemStorage;
use durability::core::wal::{WalConfig, WalReader as CoreReader, WalWriter as CoreWriter};
use durability::core::{Error as CoreError, ReadMode};
use durability::storage::MemoryDirectory;
use durability::walog::{WalReader, WalWriter};
use durability::{Directory, PersistenceError};
use proptest::prelude::*;

const LOG_ID: u64 = 0x7E57_0001_D00D_F00D;
const HEADER_LEN: usize = 48;

type Entries = Vec<(u64, Vec<u8>)>;

/// A position chosen uniformly in `0..size` once `size` is known.
#[derive(Debug, Clone, Copy)]
struct Index(u32);

impl Index {
    fn index(self, size: usize) -> usize {
        ((u64::from(self.0) * size as u64) >> 32) as usize
    }
    fn from(frac: f64) -> Self {
        Index((frac * f64::from(u32::MAX)) as u32)
    }
}

fn any_index() -> impl Strategy<Value = Index> {
    any::<u32>().prop_map(Index)
}

// ---------------------------------------------------------------------------------------
// Inputs.

#[derive(Debug, Clone)]
enum Op {
    /// Append an entry of this many bytes.
    Append(usize),
    Sync,
    Flush,
}

/// Damage to the final segment, restricted at application time to bytes no completed
/// barrier covered.
#[derive(Debug, Clone)]
enum Tear {
    /// Cut the segment at an offset at or after its durable length.
    Truncate(Index),
    /// Zero every byte from such an offset (a file grown whose data never landed).
    Zero(Index),
    /// Replace every byte from such an offset by a different, nonzero byte.
    Garble(Index, u64),
    /// Garble a range of the header only (a torn creation whose frames landed); only
    /// legal if the segment was never synced, otherwise no damage is done.
    Header(Index, Index, u64),
    /// Append zeros after the end (preallocated space).
    ZeroExtend(usize),
    /// No damage at all.
    Nothing,
}

#[derive(Debug, Clone)]
struct Case {
    facade: bool,
    ws: usize,
    limit: u64,
    wbuf: usize,
    ops: Vec<Op>,
    flush_at_end: bool,
    tear: Tear,
    resume_limit: u64,
    resume_wbuf: usize,
    more: Vec<Op>,
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        8 => 1usize..40,
        4 => 40usize..300,
        1 => 300usize..2500,
    ]
}

fn ops_strategy(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            10 => len_strategy().prop_map(Op::Append),
            2 => Just(Op::Sync),
            1 => Just(Op::Flush),
        ],
        0..max,
    )
}

fn tear_strategy() -> impl Strategy<Value = Tear> {
    prop_oneof![
        3 => any_index().prop_map(Tear::Truncate),
        2 => any_index().prop_map(Tear::Zero),
        3 => (any_index(), any::<u64>()).prop_map(|(i, s)| Tear::Garble(i, s)),
        2 => (any_index(), any_index(), any::<u64>()).prop_map(|(a, b, s)| Tear::Header(a, b, s)),
        1 => (1usize..200).prop_map(Tear::ZeroExtend),
        1 => Just(Tear::Nothing),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::bool::weighted(0.25),
        prop::sample::select(vec![1usize, 1, 4, 32]),
        prop_oneof![1 => 100u64..400, 2 => 400u64..1500, 1 => 1500u64..6000],
        prop::sample::select(vec![64usize, 100, 256, 1024, 65536]),
        ops_strategy(60),
        any::<bool>(),
        tear_strategy(),
        prop_oneof![100u64..400, 400u64..1500],
        prop::sample::select(vec![64usize, 512, 4096]),
        ops_strategy(12),
    )
        .prop_map(
            |(
                facade,
                ws,
                limit,
                wbuf,
                ops,
                flush_at_end,
                tear,
                resume_limit,
                resume_wbuf,
                more,
            )| {
                Case {
                    facade,
                    ws: if facade { 1 } else { ws },
                    limit,
                    wbuf,
                    ops,
                    flush_at_end: facade || flush_at_end,
                    tear,
                    resume_limit,
                    resume_wbuf,
                    more,
                }
            },
        )
}

/// Deterministic payload of the `n`th append of a run (distinct runs, distinct bytes).
fn payload(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (len as u64).rotate_left(17);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The two ways of running a WAL: the core over MemStorage, the facade over a directory.

enum Wal {
    Core(MemStorage),
    Facade(Arc<dyn Directory>),
}

fn seg_path(n: u64) -> String {
    format!("wal/{n:020}.seg")
}

fn read_file(dir: &Arc<dyn Directory>, path: &str) -> Vec<u8> {
    let mut v = Vec::new();
    dir.open_file(path).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn write_file(dir: &Arc<dyn Directory>, path: &str, bytes: &[u8]) {
    let mut w = dir.create_file(path).unwrap();
    w.write_all(bytes).unwrap();
    w.flush().unwrap();
}

/// How a replay ended, independent of the backend's error type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Ok; `Some` is where a best-effort replay was cut.
    Ok(Option<(u64, u64)>),
    /// Strict mode: torn tail at (segment, offset).
    Torn(u64, u64),
    /// Any other error.
    Other(String),
}

/// What the writing session left behind.
struct Written {
    appended: Vec<Vec<u8>>,
    /// Ids `1..=acked` were acknowledged durable by a completed sync.
    acked: u64,
    /// (segment, length) at the last completed sync.
    durable: Option<(u64, usize)>,
}

/// What a resumed writer reported and assigned.
struct Resumed {
    next_id: u64,
    segment: u64,
    log_id: u64,
    new: Entries,
}

impl Wal {
    fn segments(&self) -> BTreeMap<u64, Vec<u8>> {
        match self {
            Wal::Core(st) => st.segments.clone(),
            Wal::Facade(dir) => {
                let mut out = BTreeMap::new();
                if dir.exists("wal") {
                    for name in dir.list_dir("wal").unwrap() {
                        let digits = name.strip_suffix(".seg").unwrap();
                        out.insert(
                            digits.parse().unwrap(),
                            read_file(dir, &format!("wal/{name}")),
                        );
                    }
                }
                out
            }
        }
    }

    fn set_segment(&mut self, n: u64, bytes: Vec<u8>) {
        match self {
            Wal::Core(st) => {
                st.segments.insert(n, bytes);
            }
            Wal::Facade(dir) => write_file(dir, &seg_path(n), &bytes),
        }
    }

    fn replay(&mut self, mode: ReadMode) -> (Entries, End) {
        let mut got = Vec::new();
        let end = match self {
            Wal::Core(st) => {
                let r = CoreReader::new(st, Vec::new()).replay(mode, |id, p| {
                    got.push((id, p.to_vec()));
                    Ok(())
                });
                match r {
                    Ok(rep) => End::Ok(rep.torn_at.map(|l| (l.segment, l.offset))),
                    Err(CoreError::TornTail { at }) => End::Torn(at.segment, at.offset),
                    Err(e) => End::Other(format!("{e:?}")),
                }
            }
            Wal::Facade(dir) => {
                let r = WalReader::<()>::new(dir.clone()).replay_bytes(mode, |id, p| {
                    got.push((id, p.to_vec()));
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

    fn write(&mut self, c: &Case) -> Written {
        let mut appended = Vec::new();
        let mut acked = 0;
        let mut durable = None;
        match self {
            Wal::Core(st) => {
                let cfg = WalConfig {
                    segment_limit: c.limit,
                    log_id: LOG_ID,
                    first_id: 1,
                    covered_through: 0,
                };
                let mut w = CoreWriter::new(st, vec![0u8; c.wbuf], cfg);
                for op in &c.ops {
                    match op {
                        Op::Append(len) => {
                            let p = payload(appended.len() as u64 + 1, *len);
                            let id = w.append(&p).unwrap();
                            appended.push(p);
                            assert_eq!(id, appended.len() as u64, "ids from 1, contiguous");
                        }
                        Op::Flush => w.flush().unwrap(),
                        Op::Sync => {
                            w.sync().unwrap();
                            acked = appended.len() as u64;
                            let seg = w.current_segment().unwrap();
                            durable = Some((seg, w.storage().segments[&seg].len()));
                        }
                    }
                }
                if c.flush_at_end {
                    w.flush().unwrap();
                }
                // Dropping the core writer discards what is still staged: a crash.
            }
            Wal::Facade(dir) => {
                let cfg = WalConfig {
                    segment_limit: c.limit,
                    log_id: LOG_ID,
                    first_id: 1,
                    covered_through: 0,
                };
                let mut w = WalWriter::<()>::with_config(dir.clone(), cfg);
                for op in &c.ops {
                    match op {
                        Op::Append(len) => {
                            let p = payload(appended.len() as u64 + 1, *len);
                            let id = w.append_bytes(&p).unwrap();
                            appended.push(p);
                            assert_eq!(id, appended.len() as u64, "ids from 1, contiguous");
                        }
                        Op::Flush => w.flush().unwrap(),
                        Op::Sync => {
                            w.flush_and_sync().unwrap();
                            acked = appended.len() as u64;
                            let seg = w.current_segment().unwrap();
                            durable = Some((seg, read_file(dir, &seg_path(seg)).len()));
                        }
                    }
                }
                // Dropping the facade writer flushes (like BufWriter) without syncing.
            }
        }
        Written {
            appended,
            acked,
            durable,
        }
    }

    /// Opens a writer on the (damaged) log, appends `more` with its syncs and flushes,
    /// and makes everything durable.
    fn resume(&mut self, c: &Case, first_payload: u64) -> Result<Resumed, String> {
        let mut new = Vec::new();
        match self {
            Wal::Core(st) => {
                let cfg = WalConfig {
                    segment_limit: c.resume_limit,
                    // An existing log keeps its own identity.
                    log_id: LOG_ID ^ 0xFFFF,
                    first_id: 1,
                    covered_through: 0,
                };
                let mut w = CoreWriter::open(st, vec![0u8; c.resume_wbuf], cfg)
                    .map_err(|e| format!("open: {e:?}"))?;
                let next_id = w.next_id().unwrap();
                let segment = w.current_segment().unwrap();
                let log_id = w.log_id();
                for op in &c.more {
                    match op {
                        Op::Append(len) => {
                            let p = payload(first_payload + new.len() as u64, *len);
                            let id = w.append(&p).map_err(|e| format!("append: {e:?}"))?;
                            new.push((id, p));
                        }
                        Op::Flush => w.flush().map_err(|e| format!("flush: {e:?}"))?,
                        Op::Sync => w.sync().map_err(|e| format!("sync: {e:?}"))?,
                    }
                }
                w.sync().map_err(|e| format!("final sync: {e:?}"))?;
                Ok(Resumed {
                    next_id,
                    segment,
                    log_id,
                    new,
                })
            }
            Wal::Facade(dir) => {
                let mut w =
                    WalWriter::<()>::resume(dir.clone()).map_err(|e| format!("resume: {e:?}"))?;
                w.set_segment_size_limit_bytes(c.resume_limit);
                let next_id = w.next_entry_id().unwrap();
                let segment = w.current_segment().unwrap();
                let log_id = w.log_id().unwrap();
                for op in &c.more {
                    match op {
                        Op::Append(len) => {
                            let p = payload(first_payload + new.len() as u64, *len);
                            let id = w.append_bytes(&p).map_err(|e| format!("append: {e:?}"))?;
                            new.push((id, p));
                        }
                        Op::Flush => w.flush().map_err(|e| format!("flush: {e:?}"))?,
                        Op::Sync => w.flush_and_sync().map_err(|e| format!("sync: {e:?}"))?,
                    }
                }
                w.flush_and_sync()
                    .map_err(|e| format!("final sync: {e:?}"))?;
                Ok(Resumed {
                    next_id,
                    segment,
                    log_id,
                    new,
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The oracle: which frames of the final segment survive a tear, written from the format
// description in docs/design.md (not from the crate's decoder).

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    start: usize,
    body_end: usize,
    end: usize,
    /// `None` for an entry, `Some(watermark)` for a sync marker.
    marker: Option<u64>,
}

/// The complete frames of a segment written by the writer (a trailing frame cut short by
/// a crash of the writer is not listed).
fn frames(seg: &[u8]) -> (usize, Vec<Frame>) {
    let align = 1usize << seg[6];
    let data_start = round_up(HEADER_LEN, align);
    let mut pos = data_start;
    let mut out = Vec::new();
    while pos + 8 <= seg.len() {
        let word = u32::from_le_bytes(seg[pos + 4..pos + 8].try_into().unwrap());
        let len = (word & 0x0FFF_FFFF) as usize;
        let body_end = pos + 8 + len;
        let end = round_up(body_end, align);
        if end > seg.len() {
            break;
        }
        let marker = match word >> 28 {
            1 => None,
            2 => Some(u64_at(seg, pos + 8)),
            k => panic!("writer produced frame kind {k} at {pos}"),
        };
        out.push(Frame {
            start: pos,
            body_end,
            end,
            marker,
        });
        pos = end;
    }
    (data_start, out)
}

/// The applied damage, for the oracle.
struct Applied {
    damaged: Vec<u8>,
    header_torn: bool,
}

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

/// Applies `tear` to `orig` (the final segment), touching only bytes at or after
/// `durable` (the segment's length at its last completed sync, 0 if never synced).
fn apply(tear: &Tear, orig: &[u8], durable: usize) -> Applied {
    let data_start = round_up(HEADER_LEN, 1usize << orig[6]);
    let mut d = orig.to_vec();
    let pick = |i: &Index| durable + i.index(orig.len() - durable + 1);
    let header_torn = match tear {
        Tear::Truncate(i) => {
            let t = pick(i);
            d.truncate(t);
            t < data_start
        }
        Tear::Zero(i) => {
            let t = pick(i);
            d[t..].fill(0);
            t < HEADER_LEN && d.len() > t
        }
        Tear::Garble(i, seed) => {
            let t = pick(i);
            garble(&mut d[t..], *seed);
            t < HEADER_LEN && d.len() > t
        }
        Tear::Header(a, b, seed) if durable == 0 => {
            let (a, b) = (a.index(HEADER_LEN), b.index(HEADER_LEN));
            let (lo, hi) = (a.min(b), a.max(b) + 1);
            garble(&mut d[lo..hi], *seed);
            true
        }
        Tear::ZeroExtend(n) => {
            d.resize(d.len() + n, 0);
            false
        }
        Tear::Header(..) | Tear::Nothing => false,
    };
    Applied {
        damaged: d,
        header_torn,
    }
}

/// Entries of the final segment that must survive, and where the replay ends:
/// `(entries, None)` for a clean end, `(entries, Some(offset))` for a torn tail.
fn oracle_final(orig: &[u8], a: &Applied) -> (u64, Option<u64>) {
    if a.header_torn {
        return (0, Some(0));
    }
    let d = &a.damaged;
    let (data_start, frames) = frames(orig);
    let mut cut = data_start;
    let mut entries = 0;
    let mut rest = &frames[..];
    while let Some(f) = rest.first() {
        if d.len() >= f.end && d[f.start..f.body_end] == orig[f.start..f.body_end] {
            cut = f.end;
            entries += u64::from(f.marker.is_none());
            rest = &rest[1..];
        } else {
            break;
        }
    }
    if d.len() <= cut || d[cut..].iter().all(|&b| b == 0) {
        return (entries, None);
    }
    // The tear never touches bytes a barrier covered, so no intact marker can prove the
    // damage durable; the generator would be wrong otherwise.
    let proven = rest.iter().any(|f| {
        f.start > cut
            && d.len() >= f.body_end
            && d[f.start..f.body_end] == orig[f.start..f.body_end]
            && f.marker.is_some_and(|wm| wm > cut as u64)
    });
    assert!(
        !proven,
        "illegal tear generated: damage below a proven watermark"
    );
    (entries, Some(cut as u64))
}

// ---------------------------------------------------------------------------------------
// The property.

fn check(c: &Case) -> Result<(), TestCaseError> {
    let mut wal = if c.facade {
        Wal::Facade(Arc::new(MemoryDirectory::new()))
    } else {
        Wal::Core(MemStorage::with_write_size(c.ws))
    };
    let w = wal.write(c);
    let all: Entries = w
        .appended
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 + 1, p.clone()))
        .collect();

    // What reached the medium: a prefix of what was appended, including everything a
    // completed sync acknowledged (all of it if the writer flushed at the end).
    let (stored, end) = wal.replay(ReadMode::BestEffort);
    prop_assert!(matches!(end, End::Ok(_)), "undamaged log: {:?}", end);
    prop_assert!(stored.len() <= all.len());
    prop_assert_eq!(&stored[..], &all[..stored.len()]);
    prop_assert!(stored.len() as u64 >= w.acked);
    if c.flush_at_end {
        prop_assert_eq!(&stored, &all);
    }

    let before = wal.segments();
    let Some((&last, orig)) = before.iter().next_back() else {
        // Nothing was ever opened: a new log.
        prop_assert!(all.is_empty());
        let r = wal.resume(c, 1_000_000).map_err(TestCaseError::fail)?;
        prop_assert_eq!(r.next_id, 1);
        let (got, end) = wal.replay(ReadMode::Strict);
        prop_assert_eq!(end, End::Ok(None));
        prop_assert_eq!(got, r.new);
        return Ok(());
    };
    let lowest = *before.keys().next().unwrap();
    let durable = match w.durable {
        Some((seg, len)) if seg == last => len,
        _ => 0,
    };

    // Tear the final segment.
    let applied = apply(&c.tear, orig, durable);
    wal.set_segment(last, applied.damaged.clone());
    let first_in_last = u64_at(orig, 24);
    let (in_last, torn) = oracle_final(orig, &applied);
    let k = first_in_last - 1 + in_last;
    let want_prefix = &stored[..k as usize];
    prop_assert!(
        k >= w.acked,
        "a tear of unsynced bytes lost acknowledged entries"
    );

    // Best-effort: exactly the predicted prefix; strict: the same entries, then the
    // torn tail as an error.
    let torn_at = torn.map(|off| (last, off));
    let (got, end) = wal.replay(ReadMode::BestEffort);
    prop_assert_eq!(&got[..], want_prefix, "best-effort prefix");
    prop_assert_eq!(end, End::Ok(torn_at));
    let (got, end) = wal.replay(ReadMode::Strict);
    prop_assert_eq!(&got[..], want_prefix, "strict delivers the same prefix");
    match torn_at {
        None => prop_assert_eq!(end, End::Ok(None)),
        Some((s, o)) => prop_assert_eq!(end, End::Torn(s, o)),
    }

    // Resume and append more: ids continue right after the prefix.
    let damaged = wal.segments();
    let r = wal.resume(c, 1_000_000).map_err(TestCaseError::fail)?;
    prop_assert_eq!(r.next_id, k + 1, "resume continues after the prefix");
    let mut want = want_prefix.to_vec();
    for (i, (id, _)) in r.new.iter().enumerate() {
        prop_assert_eq!(*id, k + 1 + i as u64, "new ids contiguous");
    }
    want.extend(r.new.iter().cloned());
    let log_reset = applied.header_torn && last == lowest;
    if !log_reset {
        prop_assert_eq!(r.log_id, LOG_ID, "an existing log keeps its identity");
    }
    match (applied.header_torn, torn) {
        (true, _) => prop_assert_eq!(r.segment, last, "a torn creation is recreated"),
        (false, Some(_)) => prop_assert_eq!(r.segment, last + 1, "a torn tail is cut"),
        (false, None) => prop_assert!(r.segment == last || r.segment == last + 1),
    }

    // Resuming destroyed nothing valid: earlier segments untouched, the surviving part
    // of the final segment untouched.
    let after = wal.segments();
    for (n, bytes) in damaged.range(..last) {
        prop_assert_eq!(&after[n], bytes, "segment {} changed by resume", n);
    }
    if !applied.header_torn {
        let keep = match torn {
            Some(off) => off as usize,
            None => {
                let (ds, fr) = frames(orig);
                let mut cut = ds;
                for f in fr.iter().take_while(|f| {
                    applied.damaged.len() >= f.end
                        && applied.damaged[f.start..f.body_end] == orig[f.start..f.body_end]
                }) {
                    cut = f.end;
                }
                cut
            }
        };
        prop_assert_eq!(
            &after[&last][..keep],
            &applied.damaged[..keep],
            "valid part of the final segment changed"
        );
    }

    // The final strict replay is exactly the prefix plus the new entries.
    let (got, end) = wal.replay(ReadMode::Strict);
    prop_assert_eq!(end, End::Ok(None), "strict replay after resume");
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn resume_after_a_legal_tear_continues_the_prefix(c in case_strategy()) {
        check(&c)?;
    }
}

/// A hand-picked case of each tear kind over both backends, so a plain `cargo test`
/// exercises every branch even with few proptest cases.
#[test]
fn every_tear_kind_on_both_backends() {
    let ops: Vec<Op> = (0..30)
        .flat_map(|i| {
            let mut v = vec![Op::Append((i * 37) % 120)];
            if i % 7 == 3 {
                v.push(Op::Sync);
            }
            v
        })
        .collect();
    let tears = [
        Tear::Truncate(Index::from(0.5)),
        Tear::Zero(Index::from(0.3)),
        Tear::Garble(Index::from(0.7), 5),
        Tear::Header(Index::from(0.1), Index::from(0.9), 9),
        Tear::ZeroExtend(64),
        Tear::Nothing,
        Tear::Truncate(Index::from(0.0)),
    ];
    for facade in [false, true] {
        for tear in &tears {
            for extra_rotation in [false, true] {
                let mut ops = ops.clone();
                if extra_rotation {
                    // A rotation after the last sync leaves an unsynced final segment,
                    // whose header may legally be torn.
                    ops.push(Op::Append(900));
                    ops.push(Op::Append(5));
                }
                let c = Case {
                    facade,
                    ws: if facade { 1 } else { 4 },
                    limit: 400,
                    wbuf: 256,
                    ops,
                    flush_at_end: true,
                    tear: tear.clone(),
                    resume_limit: 300,
                    resume_wbuf: 64,
                    more: vec![Op::Append(3), Op::Sync, Op::Append(500), Op::Append(0)],
                };
                check(&c).unwrap_or_else(|e| panic!("facade {facade} {tear:?}: {e}"));
            }
        }
    }
}
