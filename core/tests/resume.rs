//! Crash/resume cycles: after every kind of torn tail, `WalWriter::open` continues with
//! contiguous ids, a strict replay of the whole log succeeds, and it keeps working over
//! repeated crashes and resumes.

mod common;

use common::*;
use durability_core::error::Location;
use durability_core::mem::MemStorage;
use durability_core::wal::{WalConfig, WalWriter};
use durability_core::ReadMode;

const LOG_ID: u64 = 0x4E5E_0000_0000_0003;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// No damage: the process just stopped.
    None,
    /// Cut inside an unsynced frame.
    Truncated,
    /// Zeros from inside an unsynced frame.
    ZeroFilled,
    /// Zeros from the start of an unsynced frame (looks like preallocated space).
    ZeroFromBoundary,
    /// Garbage from inside an unsynced frame.
    Garbage,
    /// An unsynced frame zeroed, the frames after it intact.
    HoleThenFrames,
    /// A crash while creating the next segment: its header is torn.
    TornHeader,
    /// The next segment was created empty.
    EmptyNextSegment,
}

const CRASHES: [Crash; 8] = [
    Crash::None,
    Crash::Truncated,
    Crash::ZeroFilled,
    Crash::ZeroFromBoundary,
    Crash::Garbage,
    Crash::HoleThenFrames,
    Crash::TornHeader,
    Crash::EmptyNextSegment,
];

struct Sim {
    st: MemStorage,
    cfg: WalConfig,
    /// What must be read back, ids `1..=len`.
    model: Entries,
    generation: u64,
    rng: Rng,
}

impl Sim {
    fn new(ws: usize, limit: u64, seed: u64) -> Self {
        let mut cfg = WalConfig::new(LOG_ID);
        cfg.segment_limit = limit;
        Sim {
            st: MemStorage::with_write_size(ws),
            cfg,
            model: Vec::new(),
            generation: 0,
            rng: Rng(seed),
        }
    }

    fn payload(&mut self, id: u64) -> Vec<u8> {
        // Ids are reused after a cut; payloads differ per generation so a stale frame
        // read by mistake is noticed.
        let len = self.rng.below(30) as usize;
        payload(id ^ (self.generation << 40), len)
    }

    /// Opens, appends `synced` entries and syncs, then appends `unsynced` more and
    /// flushes. Returns the first unsynced id.
    fn session(&mut self, synced: u64, unsynced: u64, ctx: &str) -> u64 {
        self.generation += 1;
        let mut st = std::mem::take(&mut self.st);
        let mut w = WalWriter::open(&mut st, vec![0u8; 64], self.cfg)
            .unwrap_or_else(|e| panic!("{ctx}: open: {e:?}"));
        let next = self.model.len() as u64 + 1;
        assert_eq!(w.next_id().unwrap(), next, "{ctx}: resumed id");
        assert_eq!(
            w.last_id().unwrap(),
            next.checked_sub(1).filter(|&i| i > 0),
            "{ctx}"
        );
        for _ in 0..synced {
            let id = self.model.len() as u64 + 1;
            let p = self.payload(id);
            assert_eq!(w.append(&p).unwrap(), id, "{ctx}");
            self.model.push((id, p));
        }
        w.sync().unwrap();
        let first_unsynced = self.model.len() as u64 + 1;
        for _ in 0..unsynced {
            let id = self.model.len() as u64 + 1;
            let p = self.payload(id);
            assert_eq!(w.append(&p).unwrap(), id, "{ctx}");
            self.model.push((id, p));
        }
        w.flush().unwrap();
        drop(w);
        self.st = st;
        // Everything flushed reads back strictly.
        assert_eq!(wal_strict(&mut self.st), self.model, "{ctx}: after session");
        first_unsynced
    }

    fn last_seg(&self) -> u64 {
        *self.st.segments.keys().last().unwrap()
    }

    /// Damages the unsynced part of the final segment (or creates a torn successor).
    /// Updates the model to what must survive.
    fn crash(&mut self, crash: Crash, first_unsynced: u64, ctx: &str) {
        let seg = self.last_seg();
        let bytes = self.st.segments[&seg].clone();
        let (_, frames) = walk(&bytes, LOG_ID, seg);
        // The damage target: the second unsynced entry frame in the final segment (the
        // first one stays, so the marker and one unsynced entry survive).
        let target = frames
            .iter()
            .position(|f| matches!(f.kind, Fk::Entry(id) if id > first_unsynced))
            .map(|i| (i, frames[i]));
        let keep = |sim: &mut Sim, id: u64| sim.model.truncate(id as usize - 1);
        let mut clean_end = false;
        match crash {
            Crash::None => {}
            Crash::TornHeader | Crash::EmptyNextSegment => {
                let next_first = self.model.len() as u64 + 1;
                let mut h =
                    spec_header(1, bytes[6], LOG_ID, seg + 1, next_first, bytes.len() as u64)
                        .to_vec();
                let cut = if crash == Crash::EmptyNextSegment {
                    0
                } else {
                    4 + self.rng.below(40) as usize
                };
                h.truncate(cut);
                if crash == Crash::TornHeader && self.rng.below(2) == 0 {
                    h.resize(64, 0);
                }
                self.st.segments.insert(seg + 1, h);
                // Rotation syncs the full predecessor first: nothing is lost.
            }
            _ => {
                let Some((i, f)) = target else {
                    // Rotation moved the unsynced frames out of the final segment.
                    assert!(self.cfg.segment_limit < 1 << 20, "{ctx}: nothing to damage");
                    return;
                };
                let Fk::Entry(id) = f.kind else {
                    unreachable!()
                };
                let s = self.st.segments.get_mut(&seg).unwrap();
                let mid = f.start + 1 + self.rng.below((f.body_end - f.start - 1) as u64) as usize;
                match crash {
                    Crash::Truncated => s.truncate(mid),
                    Crash::ZeroFilled => s[mid..].fill(0),
                    Crash::ZeroFromBoundary => s[f.start..].fill(0),
                    Crash::Garbage => {
                        let mut r = Rng(mid as u64);
                        for b in &mut s[mid..] {
                            *b = garbage_byte(&mut r, *b);
                        }
                    }
                    Crash::HoleThenFrames => {
                        assert!(i + 1 < frames.len() || f.end == bytes.len());
                        s[f.start..f.end].fill(0);
                    }
                    _ => unreachable!(),
                }
                // Only unwritten bytes from the frame on (the hole was the last frame,
                // or the part before `mid` happened to be zeros) read as a clean end.
                clean_end = s[f.start..].iter().all(|&b| b == 0);
                keep(self, id);
            }
        }
        // Best effort reads exactly the survivors; strict fails exactly when torn.
        let (got, res) = wal_replay(&mut self.st, ReadMode::BestEffort);
        let report = res.unwrap_or_else(|e| panic!("{ctx}: best effort after {crash:?}: {e:?}"));
        assert_eq!(got, self.model, "{ctx}: best effort after {crash:?}");
        let (got, res) = wal_replay(&mut self.st, ReadMode::Strict);
        assert_eq!(got, self.model, "{ctx}: strict after {crash:?}");
        match res {
            Ok(r) => assert_eq!(r.torn_at, None),
            Err(durability_core::Error::TornTail { at }) => {
                assert_eq!(Some(at), report.torn_at, "{ctx}")
            }
            Err(e) => panic!("{ctx}: strict after {crash:?}: {e:?}"),
        }
        match crash {
            Crash::None | Crash::ZeroFromBoundary | Crash::EmptyNextSegment => {}
            Crash::TornHeader => assert_eq!(
                report.torn_at,
                Some(Location {
                    segment: seg + 1,
                    offset: 0
                }),
                "{ctx}"
            ),
            _ if clean_end => assert_eq!(report.torn_at, None, "{ctx}: {crash:?}"),
            _ if target.is_some() => assert_eq!(
                report.torn_at,
                Some(Location {
                    segment: seg,
                    offset: target.unwrap().1.start as u64
                }),
                "{ctx}: {crash:?}"
            ),
            _ => {}
        }
    }
}

fn cycle(ws: usize, limit: u64, order: &[Crash], seed: u64) {
    let mut sim = Sim::new(ws, limit, seed);
    for (round, &crash) in order.iter().enumerate() {
        let ctx = format!("ws {ws} limit {limit} seed {seed} round {round} {crash:?}");
        let synced = 1 + sim.rng.below(4);
        let first_unsynced = sim.session(synced, 3, &ctx);
        sim.crash(crash, first_unsynced, &ctx);
        if round % 3 == 2 {
            // Open and drop without appending: must change nothing that is read.
            let mut st = std::mem::take(&mut sim.st);
            let mut w = WalWriter::open(&mut st, vec![0u8; 64], sim.cfg).unwrap();
            assert_eq!(w.next_id().unwrap(), sim.model.len() as u64 + 1);
            drop(w);
            sim.st = st;
            assert_eq!(
                wal_replay(&mut sim.st, ReadMode::BestEffort).0,
                sim.model,
                "{ctx}: open only"
            );
        }
    }
    // A last clean session; the whole log then reads strictly, ids contiguous.
    sim.session(2, 0, "final");
    let got = wal_strict(&mut sim.st);
    assert_eq!(got, sim.model);
    assert_contiguous(&got, "final");
}

#[test]
fn resume_after_each_crash_kind() {
    for ws in [1, 4, 32] {
        for crash in CRASHES {
            // Each kind twice in a row: the second resume follows the first one's cut.
            cycle(ws, 1 << 20, &[crash, crash, Crash::None], 1);
        }
    }
}

#[test]
fn resume_cycles_mixed() {
    let mut r = Rng(2024);
    for ws in [1, 4, 32] {
        for limit in [1 << 20, 300] {
            for seed in 0..6 {
                let order: Vec<Crash> = (0..10)
                    .map(|_| CRASHES[r.below(CRASHES.len() as u64) as usize])
                    .collect();
                cycle(ws, limit, &order, seed);
            }
        }
    }
}

#[test]
fn resume_at_a_full_segment_starts_the_next() {
    let mut st = MemStorage::new();
    let mut c = WalConfig::new(LOG_ID);
    c.segment_limit = 100;
    let mut w = WalWriter::new(&mut st, vec![0u8; 64], c);
    // 48-byte header + 4 frames of 13 bytes = 100: exactly full.
    for id in 1..=4 {
        assert_eq!(w.append(b"12345").unwrap(), id);
    }
    w.sync().unwrap();
    drop(w);
    assert_eq!(st.segments[&1].len(), 100);
    let mut w = WalWriter::open(&mut st, vec![0u8; 64], c).unwrap();
    assert_eq!(w.current_segment(), Some(2));
    assert_eq!(w.append(b"next").unwrap(), 5);
    w.sync().unwrap();
    drop(w);
    assert_eq!(
        st.segments[&1].len(),
        100,
        "the full segment is not appended to"
    );
    let got = wal_strict(&mut st);
    assert_eq!(got.len(), 5);
    assert_eq!(got[4], (5, b"next".to_vec()));
}

#[test]
fn resume_after_torn_single_segment_uses_config_first_id() {
    let mut st = MemStorage::new();
    st.segments
        .insert(1, spec_header(1, 0, LOG_ID, 1, 1, 0)[..30].to_vec());
    let c = WalConfig {
        first_id: 1000,
        ..WalConfig::new(LOG_ID)
    };
    let mut w = WalWriter::open(&mut st, vec![0u8; 64], c).unwrap();
    assert_eq!(w.next_id().unwrap(), 1000);
    assert_eq!(w.append(b"a").unwrap(), 1000);
    assert_eq!(w.append(b"b").unwrap(), 1001);
    w.sync().unwrap();
    drop(w);
    let (got, res) = wal_replay(&mut st, ReadMode::Strict);
    let r = res.unwrap();
    assert_eq!(got, vec![(1000, b"a".to_vec()), (1001, b"b".to_vec())]);
    assert_eq!(r.first_id, Some(1000));
    assert_eq!(r.next_id, 1002);
}

#[test]
fn first_id_zero_is_rejected() {
    let mut st = MemStorage::new();
    let c = WalConfig {
        first_id: 0,
        ..WalConfig::new(LOG_ID)
    };
    let r = WalWriter::open(&mut st, vec![0u8; 64], c);
    assert!(matches!(r, Err(durability_core::Error::InvalidConfig(_))));
    drop(r);
    assert!(st.segments.is_empty());
}
