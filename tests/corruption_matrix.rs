//! The corruption matrix at the facade level (`durability::walog` over `MemoryDirectory`
//! and over real files in a temporary directory): every bit of every field of every
//! sealed segment's 48-byte header, every bit of the frame headers and a sample of the
//! payload bits of sealed segments, and every bit of the final segment's header, one at
//! a time. Strict replay must fail; best-effort must never return a wrong record (always
//! a prefix of what was written) and must fail for damage in a sealed segment; a writer
//! must refuse to resume a corrupt WAL and leave its bytes alone.
//!
//! Then whole-segment damage (a deleted middle segment, a duplicated segment, a segment
//! of another WAL, stale and zero bytes after a segment's end), and short regression
//! tests of specific failure modes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use durability::core::wal::WalConfig;
use durability::core::{Corruption, ReadMode};
use durability::recordlog::{RecordLogReadMode, RecordLogReader, RecordLogWriter};
use durability::storage::failing::{FailKind, Op};
use durability::storage::{FailingDirectory, FsDirectory, MemoryDirectory};
use durability::walog::{WalReader, WalWriter};
use durability::{Directory, PersistenceError};

const LOG_ID: u64 = 0xC0FF_EE00_0000_0007;
const HEADER_LEN: usize = 48;
const MODES: [ReadMode; 2] = [ReadMode::Strict, ReadMode::BestEffort];

type Entries = Vec<(u64, Vec<u8>)>;
type Files = BTreeMap<String, Vec<u8>>;

// ---------------------------------------------------------------------------------------
// Helpers.

fn mem_dir() -> Arc<dyn Directory> {
    Arc::new(MemoryDirectory::new())
}

fn fs_dir() -> (tempfile::TempDir, Arc<dyn Directory>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path().join("root")).unwrap());
    (tmp, dir)
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

/// Every file under `wal/`, by name.
fn wal_files(dir: &Arc<dyn Directory>) -> Files {
    dir.list_dir("wal")
        .unwrap()
        .into_iter()
        .map(|name| {
            let bytes = read_file(dir, &format!("wal/{name}"));
            (name, bytes)
        })
        .collect()
}

fn segment_numbers(dir: &Arc<dyn Directory>) -> Vec<u64> {
    dir.list_dir("wal")
        .unwrap()
        .iter()
        .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
        .collect()
}

fn payload(id: u64) -> Vec<u8> {
    let len = [0usize, 1, 17, 40, 5, 64, 23, 9][id as usize % 8];
    (0..len)
        .map(|i| {
            (id as u8)
                .wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(7))
                ^ 0x5A
        })
        .collect()
}

fn truth(n: u64) -> Entries {
    (1..=n).map(|id| (id, payload(id))).collect()
}

/// Replays through the facade, collecting what was delivered even when it fails.
fn replay(dir: &Arc<dyn Directory>, mode: ReadMode) -> (Entries, Result<(), PersistenceError>) {
    let mut got = Vec::new();
    let r = WalReader::<()>::new(dir.clone()).replay_bytes(mode, |id, p| {
        got.push((id, p.to_vec()));
        Ok(())
    });
    (got, r.map(|_| ()))
}

/// Replays and requires success.
#[track_caller]
fn read_ok(dir: &Arc<dyn Directory>, mode: ReadMode) -> Entries {
    let (got, r) = replay(dir, mode);
    r.unwrap_or_else(|e| panic!("{mode:?} replay failed: {e:?}"));
    got
}

#[track_caller]
fn assert_prefix(got: &Entries, all: &Entries, ctx: &str) {
    assert!(
        got.len() <= all.len(),
        "{ctx}: {} entries of {}",
        got.len(),
        all.len()
    );
    assert_eq!(
        &got[..],
        &all[..got.len()],
        "{ctx}: not a prefix of what was written"
    );
}

/// Writes entries `1..=n` with the facade, syncing after each id in `syncs`, then
/// flushes (the writer is dropped, which flushes too). Returns the entries.
fn write_wal(dir: &Arc<dyn Directory>, log_id: u64, n: u64, limit: u64, syncs: &[u64]) -> Entries {
    let cfg = WalConfig {
        segment_limit: limit,
        log_id,
        first_id: 1,
        covered_through: 0,
    };
    let mut w = WalWriter::<()>::with_config(dir.clone(), cfg);
    for id in 1..=n {
        assert_eq!(w.append_bytes(&payload(id)).unwrap(), id);
        if syncs.contains(&id) {
            w.flush_and_sync().unwrap();
        }
    }
    w.flush().unwrap();
    truth(n)
}

/// The matrix WAL: 60 entries, limit 300, a sync every 4 entries, so there are many
/// sealed segments with sync markers inside, and a final segment holding a marker.
fn matrix_wal(dir: &Arc<dyn Directory>) -> Entries {
    let syncs: Vec<u64> = (1..=60).filter(|i| i % 4 == 0).collect();
    let all = write_wal(dir, LOG_ID, 60, 300, &syncs);
    let segs = segment_numbers(dir);
    assert!(segs.len() >= 6, "{segs:?}");
    let last = read_file(dir, &seg_path(*segs.last().unwrap()));
    assert!(
        frames(&last).iter().any(|f| f.marker),
        "the final segment holds a sync marker"
    );
    all
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    start: usize,
    body_end: usize,
    marker: bool,
}

/// The frames of an intact segment written with write size 1 (no padding), walked from
/// the format description.
fn frames(seg: &[u8]) -> Vec<Frame> {
    assert_eq!(seg[6], 0, "write size 1");
    let mut pos = HEADER_LEN;
    let mut out = Vec::new();
    while pos < seg.len() {
        let word = u32::from_le_bytes(seg[pos + 4..pos + 8].try_into().unwrap());
        let body_end = pos + 8 + (word & 0x0FFF_FFFF) as usize;
        assert!(body_end <= seg.len());
        out.push(Frame {
            start: pos,
            body_end,
            marker: word >> 28 == 2,
        });
        pos = body_end;
    }
    out
}

/// What a damaged WAL must do: which error both modes report, or `None` where only
/// "strict fails, best-effort returns a prefix" is required.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Both modes fail with `Corrupt` at this segment (and offset, if given).
    Corrupt(u64, Option<u64>, Option<Corruption>),
    /// Strict fails; best-effort returns a prefix of the truth.
    StrictFails,
}

/// Checks one damaged state; returns a label of the strict error for the tally.
fn check_damaged(dir: &Arc<dyn Directory>, all: &Entries, want: Want, ctx: &str) -> String {
    let (got_s, res_s) = replay(dir, ReadMode::Strict);
    let (got_b, res_b) = replay(dir, ReadMode::BestEffort);
    assert_prefix(&got_s, all, ctx);
    assert_prefix(&got_b, all, ctx);
    let err = res_s
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{ctx}: strict replay succeeded on damaged data"));
    let label = match err {
        PersistenceError::Corrupt { reason, .. } => format!("Corrupt({reason:?})"),
        PersistenceError::TornTail { .. } => "TornTail".to_string(),
        e => format!("{e:?}"),
    };
    match want {
        Want::Corrupt(seg, offset, reason) => {
            for (mode, r) in [("strict", &res_s), ("best-effort", &res_b)] {
                match r {
                    Err(PersistenceError::Corrupt {
                        segment,
                        offset: off,
                        reason: why,
                    }) => {
                        assert_eq!(*segment, seg, "{ctx} {mode}: reported segment");
                        if let Some(o) = offset {
                            assert_eq!(*off, o, "{ctx} {mode}: reported offset");
                        }
                        if let Some(w) = reason {
                            assert_eq!(*why, w, "{ctx} {mode}: reason");
                        }
                    }
                    other => panic!("{ctx} {mode}: expected Corrupt, got {other:?}"),
                }
            }
            // A writer refuses to resume and changes nothing.
            let before = wal_files(dir);
            match WalWriter::<()>::resume(dir.clone()) {
                Err(PersistenceError::Corrupt { .. }) => {}
                other => panic!(
                    "{ctx}: resume on corrupt data: {:?}",
                    other.map(|_| "a writer")
                ),
            }
            assert!(
                wal_files(dir) == before,
                "{ctx}: a failed resume changed bytes"
            );
        }
        Want::StrictFails => {}
    }
    label
}

/// Flips `bit` of file `path` in place (a positional write, no truncation), runs `f`,
/// flips it back.
fn with_flipped<T>(dir: &Arc<dyn Directory>, path: &str, bit: usize, f: impl FnOnce() -> T) -> T {
    let flip = || {
        let mut h = dir.open_handle(path, false).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(h.read_at((bit / 8) as u64, &mut b).unwrap(), 1);
        b[0] ^= 1 << (bit % 8);
        h.write_at((bit / 8) as u64, &b).unwrap();
    };
    flip();
    let r = f();
    flip();
    r
}

#[derive(Default)]
struct Tally {
    cases: usize,
    by_error: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, label: String) {
        self.cases += 1;
        *self.by_error.entry(label).or_default() += 1;
    }
}

// ---------------------------------------------------------------------------------------
// The bit matrix.

/// Header bits of every sealed segment, and of the final one; frame-header bits and
/// every 7th payload bit of two sealed segments (the first and a middle one).
fn bit_matrix(
    dir: &Arc<dyn Directory>,
    all: &Entries,
    header_stride: usize,
    frame_segments: &[u64],
) -> Tally {
    let segs = segment_numbers(dir);
    let last = *segs.last().unwrap();
    let pristine = wal_files(dir);
    let mut t = Tally::default();

    for &n in &segs {
        let path = seg_path(n);
        for bit in (0..HEADER_LEN * 8).step_by(header_stride) {
            let field = match bit / 8 {
                0..4 => "magic",
                4 => "version",
                5 => "kind",
                6 => "align",
                7 => "reserved0",
                8..16 => "log_id",
                16..24 => "segment",
                24..32 => "first_id",
                32..40 => "prev_end",
                40..44 => "reserved1",
                _ => "crc",
            };
            let ctx = format!("segment {n} header bit {bit} ({field})");
            let want = if n < last {
                Want::Corrupt(n, Some(0), Some(Corruption::BadSegmentHeader))
            } else {
                Want::StrictFails
            };
            let label = with_flipped(dir, &path, bit, || check_damaged(dir, all, want, &ctx));
            if n == last {
                // The final segment holds a durable sync marker: its damaged header
                // cannot be a torn creation.
                assert_eq!(label, "Corrupt(BadSegmentHeader)", "{ctx}");
            }
            t.add(label);
        }
    }

    for &n in frame_segments {
        assert!(n < last, "frame matrix on sealed segments only");
        let path = seg_path(n);
        let bytes = read_file(dir, &path);
        let fr = frames(&bytes);
        assert!(fr.iter().any(|f| f.marker) && fr.iter().any(|f| !f.marker));
        for f in &fr {
            let header_bits = f.start * 8..(f.start + 8) * 8;
            let payload_bits = ((f.start + 8) * 8..f.body_end * 8).step_by(7);
            for bit in header_bits.chain(payload_bits) {
                let what = if bit < (f.start + 8) * 8 {
                    "header"
                } else {
                    "payload"
                };
                let kind = if f.marker { "marker" } else { "entry" };
                let ctx = format!("segment {n} {kind} frame at {} {what} bit {bit}", f.start);
                let want = Want::Corrupt(
                    n,
                    Some(f.start as u64),
                    Some(Corruption::BadFrameInSealedSegment),
                );
                let label = with_flipped(dir, &path, bit, || check_damaged(dir, all, want, &ctx));
                t.add(label);
            }
        }
    }
    assert!(wal_files(dir) == pristine, "the matrix restores every bit");
    t
}

#[test]
fn bit_matrix_in_memory() {
    let dir = mem_dir();
    let all = matrix_wal(&dir);
    let segs = segment_numbers(&dir);
    let middle = segs[segs.len() / 2];
    let t = bit_matrix(&dir, &all, 1, &[segs[0], middle]);
    println!(
        "corruption matrix (MemoryDirectory, {} segments): {} cases: {:?}",
        segs.len(),
        t.cases,
        t.by_error
    );
    assert!(t.cases > 4000, "{} cases", t.cases);
    // The undamaged WAL still reads back whole.
    assert_eq!(
        WalReader::<()>::new(dir)
            .replay_bytes(ReadMode::Strict, |_, _| Ok(()))
            .unwrap()
            .entries,
        60
    );
}

#[test]
fn bit_matrix_on_files() {
    let (_tmp, dir) = fs_dir();
    let all = matrix_wal(&dir);
    let segs = segment_numbers(&dir);
    // Every header bit of every segment and the frames of one sealed segment.
    let t = bit_matrix(&dir, &all, 1, &[segs[1]]);
    println!(
        "corruption matrix (FsDirectory, {} segments): {} cases: {:?}",
        segs.len(),
        t.cases,
        t.by_error
    );
    assert!(t.cases > 4000, "{} cases", t.cases);
}

// ---------------------------------------------------------------------------------------
// Whole-segment damage.

fn corrupt_reason(r: &Result<(), PersistenceError>) -> Option<(u64, Corruption)> {
    match r {
        Err(PersistenceError::Corrupt {
            segment, reason, ..
        }) => Some((*segment, *reason)),
        _ => None,
    }
}

/// Both modes fail with `Corrupt` (for the given reason, if any) and a resume fails
/// without changing bytes; best-effort delivered only a prefix.
#[track_caller]
fn assert_corrupt_everywhere(
    dir: &Arc<dyn Directory>,
    all: &Entries,
    reason: Option<Corruption>,
    ctx: &str,
) {
    for mode in MODES {
        let (got, r) = replay(dir, mode);
        assert_prefix(&got, all, ctx);
        let c = corrupt_reason(&r).unwrap_or_else(|| panic!("{ctx} {mode:?}: {r:?}"));
        if let Some(w) = reason {
            assert_eq!(c.1, w, "{ctx} {mode:?}");
        }
    }
    let before = wal_files(dir);
    assert!(
        matches!(
            WalWriter::<()>::resume(dir.clone()),
            Err(PersistenceError::Corrupt { .. })
        ),
        "{ctx}: resume"
    );
    assert!(
        wal_files(dir) == before,
        "{ctx}: a failed resume changed bytes"
    );
}

#[test]
fn deleted_middle_segment_is_detected() {
    let dir = mem_dir();
    let all = matrix_wal(&dir);
    let segs = segment_numbers(&dir);
    for &victim in &segs[1..segs.len() - 1] {
        let bytes = read_file(&dir, &seg_path(victim));
        dir.delete(&seg_path(victim)).unwrap();
        assert_corrupt_everywhere(
            &dir,
            &all,
            Some(Corruption::MissingSegment),
            &format!("segment {victim} deleted"),
        );
        write_file(&dir, &seg_path(victim), &bytes);
    }
    assert_eq!(read_ok(&dir, ReadMode::Strict), all);
}

#[test]
fn duplicated_segment_is_detected() {
    let dir = mem_dir();
    let all = matrix_wal(&dir);
    let segs = segment_numbers(&dir);
    let last = *segs.last().unwrap();
    let pristine = wal_files(&dir);
    // A copy of another segment under a new number: after the end, or over a middle one.
    for (src, dst) in [
        (2, last + 1),
        (segs[0], last + 1),
        (2, 3),
        (3, 2),
        (last - 1, last),
    ] {
        let ctx = format!("segment {src} copied as {dst}");
        write_file(&dir, &seg_path(dst), &read_file(&dir, &seg_path(src)));
        assert_corrupt_everywhere(&dir, &all, None, &ctx);
        for mode in MODES {
            let r = replay(&dir, mode).1;
            assert!(
                matches!(
                    corrupt_reason(&r),
                    Some((
                        _,
                        Corruption::SegmentNumberMismatch | Corruption::EntryIdGap
                    ))
                ),
                "{ctx} {mode:?}: {r:?}"
            );
        }
        for (name, bytes) in &pristine {
            write_file(&dir, &format!("wal/{name}"), bytes);
        }
        if dst == last + 1 {
            dir.delete(&seg_path(dst)).unwrap();
        }
    }
    assert_eq!(read_ok(&dir, ReadMode::Strict), all);
}

#[test]
fn segment_of_another_wal_is_detected() {
    let dir = mem_dir();
    let all = matrix_wal(&dir);
    // Another WAL with the same shape (and more segments), different identity.
    let other = mem_dir();
    let syncs: Vec<u64> = (1..=90).filter(|i| i % 4 == 0).collect();
    write_wal(&other, LOG_ID ^ 0x1111, 90, 300, &syncs);
    let segs = segment_numbers(&dir);
    let last = *segs.last().unwrap();
    let pristine = wal_files(&dir);
    for n in [segs[0], 2, segs[segs.len() / 2], last, last + 1] {
        let ctx = format!("segment {n} of another WAL dropped in");
        write_file(&dir, &seg_path(n), &read_file(&other, &seg_path(n)));
        assert_corrupt_everywhere(&dir, &all, None, &ctx);
        // Found by its identity, or (after our shorter final segment) by the seal its
        // header claims for ours.
        for mode in MODES {
            let r = replay(&dir, mode).1;
            assert!(
                matches!(
                    corrupt_reason(&r),
                    Some((_, Corruption::ForeignSegment | Corruption::SealMismatch))
                ),
                "{ctx} {mode:?}: {r:?}"
            );
        }
        for (name, bytes) in &pristine {
            write_file(&dir, &format!("wal/{name}"), bytes);
        }
        if n == last + 1 {
            dir.delete(&seg_path(n)).unwrap();
        }
    }
    assert_eq!(read_ok(&dir, ReadMode::Strict), all);
}

/// Bytes left after a segment's end: in a sealed segment they are ignored (the seal
/// says where it ends); after the final segment's end, zeros are unwritten space and
/// an older frame is a torn tail that resuming cuts.
#[test]
fn stale_and_zero_bytes_after_a_segment_end() {
    let dir = mem_dir();
    let all = matrix_wal(&dir);
    let segs = segment_numbers(&dir);
    let last = *segs.last().unwrap();
    let pristine = wal_files(&dir);
    let restore = |dir: &Arc<dyn Directory>| {
        for (name, bytes) in &pristine {
            write_file(dir, &format!("wal/{name}"), bytes);
        }
    };

    // An older frame of this log: the first frame of segment 2 (an entry).
    let seg2 = read_file(&dir, &seg_path(2));
    let f = frames(&seg2)[0];
    let old_frame = seg2[f.start..f.body_end].to_vec();

    for n in [segs[0], 2, last - 1] {
        for (what, tail) in [
            ("an older frame", old_frame.clone()),
            ("a copy of its own last frame", {
                let b = read_file(&dir, &seg_path(n));
                let fl = *frames(&b).last().unwrap();
                b[fl.start..fl.body_end].to_vec()
            }),
            ("zeros", vec![0u8; 100]),
            ("0xFF bytes", vec![0xFF; 64]),
        ] {
            let ctx = format!("sealed segment {n} followed by {what}");
            let mut b = read_file(&dir, &seg_path(n));
            b.extend_from_slice(&tail);
            write_file(&dir, &seg_path(n), &b);
            for mode in MODES {
                assert_eq!(read_ok(&dir, mode), all.clone(), "{ctx} {mode:?}");
            }
            restore(&dir);
        }
    }

    // Zeros after the final segment's end: unwritten space, the WAL continues in place.
    let mut b = read_file(&dir, &seg_path(last));
    b.resize(b.len() + 200, 0);
    write_file(&dir, &seg_path(last), &b);
    for mode in MODES {
        assert_eq!(read_ok(&dir, mode), all.clone(), "final + zeros {mode:?}");
    }
    {
        let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
        assert_eq!(w.current_segment(), Some(last), "continues in place");
        assert_eq!(w.append_bytes(b"after zeros").unwrap(), 61);
        w.flush_and_sync().unwrap();
    }
    let mut want = all.clone();
    want.push((61, b"after zeros".to_vec()));
    assert_eq!(read_ok(&dir, ReadMode::Strict), want);
    restore(&dir);

    // An older frame after the final segment's end: it does not verify there, so it is
    // a torn tail (strict error, best-effort unchanged) that resuming cuts.
    let mut b = read_file(&dir, &seg_path(last));
    let end = b.len() as u64;
    b.extend_from_slice(&old_frame);
    write_file(&dir, &seg_path(last), &b);
    let (got, r) = replay(&dir, ReadMode::Strict);
    assert_eq!(got, all);
    assert!(
        matches!(r, Err(PersistenceError::TornTail { segment, offset }) if segment == last && offset == end),
        "{r:?}"
    );
    assert_eq!(read_ok(&dir, ReadMode::BestEffort), all.clone());
    {
        let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
        assert_eq!(w.current_segment(), Some(last + 1), "the tail is cut");
        assert_eq!(w.append_bytes(b"after stale").unwrap(), 61);
        w.flush_and_sync().unwrap();
    }
    let mut want = all.clone();
    want.push((61, b"after stale".to_vec()));
    assert_eq!(read_ok(&dir, ReadMode::Strict), want);
}

// ---------------------------------------------------------------------------------------
// Regressions.

/// A run of zero bytes has kind 0: it never decodes as a frame, in particular not as
/// a series of empty records (an empty entry frame is only 8 bytes).
#[test]
fn all_zero_run_never_decodes_as_empty_records() {
    // WAL: a final segment that is a valid header followed by zeros.
    let dir = mem_dir();
    let all = write_wal(&dir, LOG_ID, 3, 1 << 20, &[]);
    let last = *segment_numbers(&dir).last().unwrap();
    let mut b = read_file(&dir, &seg_path(last));
    b.resize(b.len() + 8 * 50, 0);
    write_file(&dir, &seg_path(last), &b);
    for mode in MODES {
        assert_eq!(read_ok(&dir, mode), all.clone(), "{mode:?}");
    }
    // A header followed only by zeros: no entries at all.
    let header_only = {
        let d = mem_dir();
        write_wal(&d, LOG_ID, 0, 1 << 20, &[]);
        read_file(&d, &seg_path(1))
    };
    assert_eq!(header_only.len(), HEADER_LEN);
    let d = mem_dir();
    let mut z = header_only.clone();
    z.resize(HEADER_LEN + 4096, 0);
    write_file(&d, &seg_path(1), &z);
    for mode in MODES {
        assert_eq!(read_ok(&d, mode), vec![], "{mode:?}");
    }
    // Record log: same.
    let d = mem_dir();
    {
        let mut w = RecordLogWriter::new(d.clone(), "r.log");
        w.append_bytes(b"").unwrap();
        w.append_bytes(b"x").unwrap();
        w.flush_and_sync().unwrap();
    }
    let mut b = read_file(&d, "r.log");
    b.resize(b.len() + 800, 0);
    write_file(&d, "r.log", &b);
    for mode in [RecordLogReadMode::Strict, RecordLogReadMode::BestEffort] {
        assert_eq!(
            RecordLogReader::new(d.clone(), "r.log")
                .read_all(mode)
                .unwrap(),
            vec![b"".to_vec(), b"x".to_vec()]
        );
    }
}

/// A crash that leaves the unsynced tail zero-filled (the file grew, its data never
/// landed) reads as a clean end; resuming continues the ids in place.
#[test]
fn zero_filled_tail_opens_and_continues_ids() {
    let dir = mem_dir();
    let all = write_wal(&dir, LOG_ID, 8, 1 << 20, &[5]);
    let b = read_file(&dir, &seg_path(1));
    let fr = frames(&b);
    // e1..e5, marker, e6..e8: zero everything from the marker on.
    assert!(fr[5].marker);
    let mut z = b.clone();
    z[fr[5].start..].fill(0);
    write_file(&dir, &seg_path(1), &z);
    for mode in MODES {
        assert_eq!(read_ok(&dir, mode), all[..5].to_vec(), "{mode:?}");
    }
    {
        let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
        assert_eq!(w.next_entry_id().unwrap(), 6);
        assert_eq!(w.current_segment(), Some(1));
        assert_eq!(w.append_bytes(b"six").unwrap(), 6);
        assert_eq!(w.append_bytes(b"seven").unwrap(), 7);
        w.flush_and_sync().unwrap();
    }
    let mut want = all[..5].to_vec();
    want.push((6, b"six".to_vec()));
    want.push((7, b"seven".to_vec()));
    assert_eq!(read_ok(&dir, ReadMode::Strict), want);
}

fn set_len(b: &mut [u8], at: usize, len: u32) {
    let word = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap());
    b[at + 4..at + 8].copy_from_slice(&((word & 0xF000_0000) | len).to_le_bytes());
}

/// An inflated length field in the final segment must not swallow later records that
/// a later sync marker proves durable (corruption); after the last marker it is a torn
/// tail, which resuming cuts.
#[test]
fn inflated_length_in_the_final_segment() {
    let dir = mem_dir();
    // e1 e2 M e3 e4 M e5 e6
    let all = write_wal(&dir, LOG_ID, 6, 1 << 20, &[2, 4]);
    let orig = read_file(&dir, &seg_path(1));
    let fr = frames(&orig);
    let kinds: Vec<bool> = fr.iter().map(|f| f.marker).collect();
    assert_eq!(
        kinds,
        [false, false, true, false, false, true, false, false]
    );
    let (e3, e5) = (fr[3], fr[6]);
    let seg_len = orig.len() as u32;
    for inflated in [
        e3.body_end as u32,
        seg_len,
        seg_len * 2,
        0x0FFF_FFFF,
        64 << 20,
    ] {
        // e3 lies below the second marker's watermark.
        let mut b = orig.clone();
        set_len(&mut b, e3.start, inflated);
        write_file(&dir, &seg_path(1), &b);
        let ctx = format!("e3 length {inflated}");
        for mode in MODES {
            let (got, r) = replay(&dir, mode);
            assert_eq!(got, all[..2].to_vec(), "{ctx} {mode:?}");
            assert!(
                matches!(
                    r,
                    Err(PersistenceError::Corrupt { segment: 1, offset, reason: Corruption::BadFrameBelowWatermark })
                        if offset == e3.start as u64
                ),
                "{ctx} {mode:?}: {r:?}"
            );
        }
        let before = wal_files(&dir);
        assert!(WalWriter::<()>::resume(dir.clone()).is_err(), "{ctx}");
        assert!(
            wal_files(&dir) == before,
            "{ctx}: a failed resume changed bytes"
        );

        // e5 lies after the last marker: nothing proves it durable.
        let mut b = orig.clone();
        set_len(&mut b, e5.start, inflated);
        write_file(&dir, &seg_path(1), &b);
        let ctx = format!("e5 length {inflated}");
        let (got, r) = replay(&dir, ReadMode::Strict);
        assert_eq!(got, all[..4].to_vec(), "{ctx}");
        assert!(
            matches!(r, Err(PersistenceError::TornTail { segment: 1, offset }) if offset == e5.start as u64),
            "{ctx}: {r:?}"
        );
        assert_eq!(
            read_ok(&dir, ReadMode::BestEffort),
            all[..4].to_vec(),
            "{ctx}"
        );
        {
            let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
            assert_eq!(w.append_bytes(b"new five").unwrap(), 5, "{ctx}");
            w.flush_and_sync().unwrap();
        }
        let mut want = all[..4].to_vec();
        want.push((5, b"new five".to_vec()));
        assert_eq!(read_ok(&dir, ReadMode::Strict), want, "{ctx}");
        for n in segment_numbers(&dir) {
            dir.delete(&seg_path(n)).unwrap();
        }
        write_file(&dir, &seg_path(1), &orig);
    }
}

/// Entry ids are implicit but covered by the checksum: two frames of equal size (even
/// with equal payloads) swapped are detected wherever they are.
#[test]
fn swapped_equal_size_frames_are_detected() {
    for same_payload in [false, true] {
        let build = |dir: &Arc<dyn Directory>, syncs: &[u64], limit: u64| -> Entries {
            let cfg = WalConfig {
                segment_limit: limit,
                log_id: LOG_ID,
                first_id: 1,
                covered_through: 0,
            };
            let mut w = WalWriter::<()>::with_config(dir.clone(), cfg);
            let mut all = Vec::new();
            for id in 1..=12u64 {
                let p = if same_payload {
                    b"same".to_vec()
                } else {
                    format!("p{id:03}").into_bytes()
                };
                w.append_bytes(&p).unwrap();
                all.push((id, p));
                if syncs.contains(&id) {
                    w.flush_and_sync().unwrap();
                }
            }
            w.flush().unwrap();
            all
        };
        let swap = |dir: &Arc<dyn Directory>, seg: u64, i: usize, j: usize| {
            let mut b = read_file(dir, &seg_path(seg));
            let fr = frames(&b);
            let (a, c) = (fr[i], fr[j]);
            assert_eq!(a.body_end - a.start, c.body_end - c.start);
            let fa = b[a.start..a.body_end].to_vec();
            let fc = b[c.start..c.body_end].to_vec();
            b[a.start..a.body_end].copy_from_slice(&fc);
            b[c.start..c.body_end].copy_from_slice(&fa);
            write_file(dir, &seg_path(seg), &b);
            a.start as u64
        };
        let ctx = format!("same payload {same_payload}");

        // Unsynced, single segment: a torn tail at the first swapped frame.
        let dir = mem_dir();
        let all = build(&dir, &[], 1 << 20);
        let at = swap(&dir, 1, 1, 2);
        let (got, r) = replay(&dir, ReadMode::Strict);
        assert_eq!(got, all[..1].to_vec(), "{ctx}");
        assert!(
            matches!(r, Err(PersistenceError::TornTail { segment: 1, offset }) if offset == at),
            "{ctx}: {r:?}"
        );
        assert_eq!(
            read_ok(&dir, ReadMode::BestEffort),
            all[..1].to_vec(),
            "{ctx}"
        );

        // Synced, with a marker after them: corruption.
        let dir = mem_dir();
        let all = build(&dir, &[6], 1 << 20);
        let at = swap(&dir, 1, 1, 2);
        for mode in MODES {
            let (got, r) = replay(&dir, mode);
            assert_eq!(got, all[..1].to_vec(), "{ctx} {mode:?}");
            assert!(
                matches!(r, Err(PersistenceError::Corrupt { segment: 1, offset, reason: Corruption::BadFrameBelowWatermark }) if offset == at),
                "{ctx} {mode:?}: {r:?}"
            );
        }

        // In a sealed segment: corruption.
        let dir = mem_dir();
        let all = build(&dir, &[], 100);
        assert!(segment_numbers(&dir).len() >= 3);
        let at = swap(&dir, 1, 0, 1);
        assert_corrupt_everywhere(&dir, &all, Some(Corruption::BadFrameInSealedSegment), &ctx);
        let r = replay(&dir, ReadMode::BestEffort).1;
        assert!(matches!(r, Err(PersistenceError::Corrupt { offset, .. }) if offset == at));
    }
}

/// After a failed write or barrier the writer is poisoned; a resumed writer continues
/// after what is actually on disk and never hands out an id the failed writer
/// acknowledged as durable.
#[test]
fn entry_ids_are_not_reused_after_a_failed_flush() {
    #[derive(Debug, Clone, Copy)]
    enum Failure {
        /// The write of the staged entries fails: they never reach the directory.
        Write,
        /// The writes land but the barrier fails.
        Sync,
        /// Creating the next segment fails during a rotation.
        Rotation,
    }
    for failure in [Failure::Write, Failure::Sync, Failure::Rotation] {
        let ctx = format!("{failure:?}");
        let failing = FailingDirectory::new(mem_dir());
        let dir: Arc<dyn Directory> = Arc::new(failing.clone());
        let mut w = WalWriter::<()>::with_config(
            dir.clone(),
            WalConfig {
                segment_limit: 400,
                log_id: LOG_ID,
                first_id: 1,
                covered_through: 0,
            },
        );
        for id in 1..=10 {
            assert_eq!(w.append_bytes(&payload(id)).unwrap(), id);
        }
        w.flush_and_sync().unwrap();
        let acked = 10u64;
        for id in 11..=13 {
            assert_eq!(w.append_bytes(&payload(id)).unwrap(), id);
        }
        let failed = match failure {
            Failure::Write => {
                failing.fail_next(Op::Write, FailKind::Other);
                w.flush()
            }
            Failure::Sync => {
                failing.fail_next(Op::Sync, FailKind::Other);
                w.flush_and_sync()
            }
            Failure::Rotation => {
                failing.fail_next(Op::Create, FailKind::StorageFull);
                w.append_bytes(&[7u8; 500]).map(|_| ())
            }
        };
        assert!(failed.is_err(), "{ctx}: the injected failure surfaced");
        assert!(w.is_poisoned(), "{ctx}");
        failing.clear();
        // Nothing more is handed out.
        assert!(
            matches!(w.append_bytes(b"x"), Err(PersistenceError::Poisoned)),
            "{ctx}"
        );
        assert!(
            matches!(w.next_entry_id(), Err(PersistenceError::Poisoned)),
            "{ctx}"
        );
        drop(w);

        let (on_disk, r) = replay(&dir, ReadMode::BestEffort);
        r.unwrap();
        assert_prefix(&on_disk, &truth(13), &ctx);
        assert!(
            on_disk.len() as u64 >= acked,
            "{ctx}: acknowledged entries lost"
        );
        let mut w = WalWriter::<()>::resume(dir.clone()).unwrap();
        let next = w.next_entry_id().unwrap();
        assert_eq!(
            next,
            on_disk.len() as u64 + 1,
            "{ctx}: continues after what is on disk"
        );
        assert!(
            next > acked,
            "{ctx}: id {next} was acknowledged durable before"
        );
        let id = w.append_bytes(b"resumed").unwrap();
        assert_eq!(id, next, "{ctx}");
        w.flush_and_sync().unwrap();
        drop(w);
        let mut want = on_disk.clone();
        want.push((next, b"resumed".to_vec()));
        assert_eq!(read_ok(&dir, ReadMode::Strict), want, "{ctx}");
    }
}

/// `WalWriter::new` does no I/O and never truncates: constructing one on an existing
/// WAL and dropping it (with or without opening it) leaves every byte as it was.
#[test]
fn constructor_never_truncates_an_existing_wal() {
    let (_tmp, fs) = fs_dir();
    for dir in [mem_dir(), fs] {
        let all = write_wal(&dir, LOG_ID, 30, 250, &[10, 20]);
        let before = wal_files(&dir);
        assert!(before.len() > 2);
        drop(WalWriter::<()>::new(dir.clone()));
        assert!(wal_files(&dir) == before, "new + drop changed bytes");
        {
            let mut w = WalWriter::<()>::new(dir.clone());
            assert_eq!(w.next_entry_id().unwrap(), 31);
            assert_eq!(w.last_entry_id().unwrap(), Some(30));
        }
        assert!(wal_files(&dir) == before, "new + open + drop changed bytes");
        drop(WalWriter::<()>::with_config(
            dir.clone(),
            WalConfig::new(LOG_ID ^ 9),
        ));
        assert!(
            wal_files(&dir) == before,
            "with_config + drop changed bytes"
        );
        assert_eq!(read_ok(&dir, ReadMode::Strict), all);
        // A torn tail: whatever a writer does with it, no existing byte is truncated
        // or overwritten (the tail is cut by starting a new segment). That a writer
        // which was never used does anything at all is the bug below.
        let last = *segment_numbers(&dir).last().unwrap();
        let mut b = read_file(&dir, &seg_path(last));
        b.extend_from_slice(b"garbage");
        write_file(&dir, &seg_path(last), &b);
        let before = wal_files(&dir);
        drop(WalWriter::<()>::new(dir.clone()));
        let after = wal_files(&dir);
        for (name, bytes) in &before {
            assert!(after.get(name) == Some(bytes), "{name} changed");
        }
        assert_eq!(read_ok(&dir, ReadMode::BestEffort), all);
    }
}

/// Dropping a facade `WalWriter` that was never used (or whose first call failed with
/// `Locked`) is not a no-op: `Drop` (src/walog.rs:263-268) calls the core writer's
/// `flush`, which opens the log (`ensure_open` -> `open_log`, core/src/wal.rs) WITHOUT
/// taking `wal.lock` (only `claim` does). On a WAL whose final segment ends in a torn
/// tail it cuts the tail (syncs the segment, creates the next one) even while another
/// writer holds the lock: a second writer that was refused with `Locked` still writes
/// to the WAL behind the lock holder's back.
///
/// Expected: an unused writer's drop does no I/O; a writer never touches the WAL
/// without holding the lock. (Observed: a new segment file appears.)
#[test]
fn bug_dropping_an_unused_writer_touches_the_wal_without_the_lock() {
    let dir = mem_dir();
    let all = write_wal(&dir, LOG_ID, 5, 1 << 20, &[5]);
    // A crash left a torn tail; the lock holder (another writer, a recovery tool, a
    // process) has not looked at the WAL yet.
    let mut b = read_file(&dir, &seg_path(1));
    b.extend_from_slice(b"torn write");
    write_file(&dir, &seg_path(1), &b);
    let before = wal_files(&dir);
    let held = dir.lock_exclusive(durability::walog::LOCK_FILE).unwrap();
    assert!(held.is_some());

    let mut second = WalWriter::<()>::new(dir.clone());
    assert!(matches!(
        second.append_bytes(b"refused"),
        Err(PersistenceError::Locked { .. })
    ));
    drop(second);
    drop(WalWriter::<()>::new(dir.clone()));
    let after = wal_files(&dir);
    assert!(
        after == before,
        "a writer without the lock changed the WAL: {:?} -> {:?}",
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert_eq!(read_ok(&dir, ReadMode::BestEffort), all);
}

/// `FsDirectory` refuses every path that escapes its root.
#[test]
fn fs_directory_refuses_paths_escaping_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(&root).unwrap());
    std::fs::write(tmp.path().join("outside.txt"), b"secret").unwrap();
    let invalid = |r: Result<(), PersistenceError>, what: &str| {
        assert!(
            matches!(r, Err(PersistenceError::InvalidPath(_))),
            "{what}: {r:?}"
        );
    };
    for p in [
        "../outside.txt",
        "a/../../outside.txt",
        "../x/y",
        "..",
        "./../z",
    ] {
        invalid(dir.create_file(p).map(|_| ()), &format!("create_file {p}"));
        invalid(dir.open_file(p).map(|_| ()), &format!("open_file {p}"));
        invalid(dir.append_file(p).map(|_| ()), &format!("append_file {p}"));
        invalid(dir.delete(p), &format!("delete {p}"));
        invalid(dir.atomic_write(p, b"x"), &format!("atomic_write {p}"));
        invalid(dir.atomic_rename(p, "in.txt"), &format!("rename from {p}"));
        invalid(dir.atomic_rename("in.txt", p), &format!("rename to {p}"));
        invalid(dir.create_dir_all(p), &format!("create_dir_all {p}"));
        invalid(dir.list_dir(p).map(|_| ()), &format!("list_dir {p}"));
        invalid(
            dir.open_handle(p, true).map(|_| ()),
            &format!("open_handle {p}"),
        );
        invalid(dir.sync_file(p), &format!("sync_file {p}"));
        assert!(!dir.exists(p), "exists {p}");
        assert!(dir.file_path(p).is_none(), "file_path {p}");
    }
    let abs = tmp.path().join("outside.txt");
    invalid(
        dir.open_file(abs.to_str().unwrap()).map(|_| ()),
        "absolute path",
    );
    // The logs built on it refuse too, and nothing was created or changed outside.
    let mut rl = RecordLogWriter::new(dir.clone(), "../escape.log");
    assert!(rl.append_bytes(b"x").is_err());
    drop(rl);
    assert!(!tmp.path().join("escape.log").exists());
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["outside.txt", "root"]);
    assert_eq!(
        std::fs::read(tmp.path().join("outside.txt")).unwrap(),
        b"secret"
    );
}
