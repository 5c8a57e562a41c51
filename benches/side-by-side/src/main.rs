//! Side-by-side WAL benchmark: `durability` vs raw `std::fs` baselines vs `okaywal`,
//! in ONE process run, on the same disk, with the same payload sizes.
//!
//! ```text
//! cargo run --release -- [--quick] [--dir PATH] [--reps N] [--recovery-mib N]
//!                        [--only crc,buffered,durable,group,replay,recovery]
//! ```
//!
//! Each measurement repeats `--reps` times with the implementations interleaved (so
//! background noise hits them alike) and prints the median rate and the ratios; the
//! issue's targets are checked at the end with PASS/MISS. Page cache is warm for every
//! read (dropping it needs root): reads measure CPU and memory, not the device.
//! See docs/PERFORMANCE.md for a run and its reading.

mod okay;
mod ours;
mod raw;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

const MIB: u64 = 1 << 20;
const SIZES: [usize; 3] = [64, 256, 4096];
const SECTIONS: [&str; 6] = ["crc", "buffered", "durable", "group", "replay", "recovery"];

struct Opts {
    root: PathBuf,
    quick: bool,
    reps: usize,
    recovery_mib: u64,
    only: Vec<String>,
}

/// How much work one repetition does.
struct Scale {
    buffered_bytes: u64,
    durable_ops: u64,
    group_ops: u64,
    replay_bytes: u64,
    recovery_reps: usize,
}

impl Scale {
    fn new(quick: bool) -> Self {
        if quick {
            Scale {
                buffered_bytes: 8 * MIB,
                durable_ops: 200,
                group_ops: 480,
                replay_bytes: 16 * MIB,
                recovery_reps: 2,
            }
        } else {
            Scale {
                buffered_bytes: 64 * MIB,
                durable_ops: 1000,
                group_ops: 1920,
                replay_bytes: 128 * MIB,
                recovery_reps: 3,
            }
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: side-by-side [--quick] [--dir PATH] [--reps N] [--recovery-mib N] [--only LIST]\n\
         \x20 --quick          smaller runs (about a minute)\n\
         \x20 --dir PATH       where the scratch directory goes (default: the system temp dir,\n\
         \x20                  or /work/bench-tmp when that is tmpfs)\n\
         \x20 --reps N         repetitions per measurement (default 7, quick 3)\n\
         \x20 --recovery-mib N size of the WAL for the recovery row (default 1024, quick 128)\n\
         \x20 --only LIST      comma-separated subset of: {}",
        SECTIONS.join(",")
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut quick, mut reps, mut mib, mut only) = (None, false, None, None, Vec::new());
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--quick" => quick = true,
            "--dir" => dir = Some(PathBuf::from(value())),
            "--reps" => reps = Some(value().parse().unwrap_or_else(|_| usage())),
            "--recovery-mib" => mib = Some(value().parse().unwrap_or_else(|_| usage())),
            "--only" => {
                only = value().split(',').map(str::to_owned).collect();
                if only.iter().any(|s| !SECTIONS.contains(&s.as_str())) {
                    usage()
                }
            }
            "--bench" => {} // passed by `cargo bench`
            _ => usage(),
        }
    }
    let root = dir.unwrap_or_else(default_dir);
    Opts {
        root,
        quick,
        reps: reps.unwrap_or(if quick { 3 } else { 7 }).max(1),
        recovery_mib: mib.unwrap_or(if quick { 128 } else { 1024 }),
        only,
    }
}

/// The system temp dir, unless it lives in memory.
fn default_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    match fs_type(&tmp).as_deref() {
        Some("tmpfs") | Some("ramfs") => {
            let fallback = PathBuf::from("/work/bench-tmp");
            eprintln!(
                "note: {} is in memory; using {} (pass --dir to choose)",
                tmp.display(),
                fallback.display()
            );
            fallback
        }
        _ => tmp,
    }
}

/// Filesystem type and device of the mount holding `path` (longest mount-point prefix
/// in /proc/mounts).
fn mount_of(path: &Path) -> Option<(String, String, String)> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at, ty) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(at)
                .then(|| (dev.to_owned(), at.to_owned(), ty.to_owned()))
        })
        .max_by_key(|(_, at, _)| at.len())
}

fn fs_type(path: &Path) -> Option<String> {
    mount_of(path).map(|(_, _, ty)| ty)
}

/// Free bytes on the filesystem of `path`, from `df -Pk`.
fn free_bytes(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

/// Fresh, numbered scratch directories under one root that is removed at the end.
struct Scratch {
    base: PathBuf,
    next: u64,
}

impl Scratch {
    fn new(root: &Path) -> Res<Self> {
        let base = root.join(format!("side-by-side-{}", std::process::id()));
        std::fs::create_dir_all(&base)?;
        Ok(Scratch { base, next: 0 })
    }

    fn fresh(&mut self) -> Res<PathBuf> {
        self.next += 1;
        let p = self.base.join(format!("d{}", self.next));
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn remove(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn rate(count: u64, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64()
}

fn fmt_rate(r: f64) -> String {
    if r.is_nan() {
        "n/a".into()
    } else if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r.is_nan() {
        "n/a".into()
    } else {
        format!("{r:.2}x")
    }
}

/// A printed table: a header and rows of cells.
struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: &str, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        // Print each row as it is measured, so a long run shows progress.
        println!("  {}", cells.join(" | "));
        self.rows.push(cells);
    }

    fn print(&self) {
        println!("\n### {}\n", self.title);
        println!("| {} |", self.header.join(" | "));
        println!(
            "|{}|",
            self.header
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}

/// One target of the issue, checked on this run.
struct Target {
    what: String,
    measured: f64,
    at_least: bool,
    bound: f64,
}

impl Target {
    fn pass(&self) -> bool {
        if self.at_least {
            self.measured >= self.bound
        } else {
            self.measured <= self.bound
        }
    }
}

struct Run {
    opts: Opts,
    scale: Scale,
    scratch: Scratch,
    tables: Vec<Table>,
    targets: Vec<Target>,
}

impl Run {
    fn wants(&self, section: &str) -> bool {
        self.opts.only.is_empty() || self.opts.only.iter().any(|s| s == section)
    }

    fn target(&mut self, what: String, measured: f64, at_least: bool, bound: f64) {
        self.targets.push(Target {
            what,
            measured,
            at_least,
            bound,
        });
    }

    /// CRC-32C throughput: ours (`durability::core::checksum`) vs the `crc32c` crate
    /// (SSE 4.2 / ARMv8 CRC instructions) over 1 MiB buffers.
    fn crc(&mut self) -> Res<()> {
        let buf: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
        let rounds = if self.opts.quick { 64 } else { 256 };
        let mut t = Table::new(
            "CRC-32C over 1 MiB buffers (GB/s)",
            &[
                "ours (durability::core::checksum)",
                "crc32c crate (hardware)",
                "ours/hw",
            ],
        );
        println!("\n[crc] {rounds} MiB per repetition");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut sink = 0u32;
        for _ in 0..self.opts.reps {
            let s = Instant::now();
            for _ in 0..rounds {
                sink ^= durability::core::checksum::crc32c(&buf);
            }
            a.push(rate(rounds * MIB, s.elapsed()) / 1e9);
            let s = Instant::now();
            for _ in 0..rounds {
                sink ^= crc32c::crc32c(&buf);
            }
            b.push(rate(rounds * MIB, s.elapsed()) / 1e9);
        }
        std::hint::black_box(sink);
        let (a, b) = (median(a), median(b));
        t.row(vec![format!("{a:.2}"), format!("{b:.2}"), fmt_ratio(a / b)]);
        self.tables.push(t);
        Ok(())
    }

    fn buffered(&mut self) -> Res<()> {
        let mut t = Table::new(
            "Buffered append (records/s, flush at the end, no sync; ours: default 64 MiB segments, \
            so each repetition crosses one segment boundary, and with 1 GiB segments, no rotation)",
            &[
                "payload",
                "records",
                "ours",
                "ours, no rotation",
                "raw BufWriter",
                "okaywal",
                "ours/raw",
                "no rotation/raw",
                "ours/okaywal",
                "target ours/raw",
            ],
        );
        println!(
            "\n[buffered] {} MiB per repetition",
            self.scale.buffered_bytes / MIB
        );
        for size in SIZES {
            let payload = vec![0xA5u8; size];
            let count = self.scale.buffered_bytes / size as u64;
            let (mut o, mut on, mut r, mut k) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..self.opts.reps {
                let d = self.scratch.fresh()?;
                o.push(rate(
                    count,
                    ours::buffered_append(&d, &payload, count, None)?,
                ));
                remove(&d);
                let d = self.scratch.fresh()?;
                let no_rotation = Some(1 << 30);
                on.push(rate(
                    count,
                    ours::buffered_append(&d, &payload, count, no_rotation)?,
                ));
                remove(&d);
                let d = self.scratch.fresh()?;
                r.push(rate(
                    count,
                    raw::buffered_append(&d.join("raw.log"), &payload, count)?,
                ));
                remove(&d);
                let d = self.scratch.fresh()?;
                k.push(rate(count, okay::buffered_append(&d, &payload, count)?));
                remove(&d);
            }
            let (o, on, r, k) = (median(o), median(on), median(r), median(k));
            t.row(vec![
                format!("{size} B"),
                count.to_string(),
                fmt_rate(o),
                fmt_rate(on),
                fmt_rate(r),
                fmt_rate(k),
                fmt_ratio(o / r),
                fmt_ratio(on / r),
                fmt_ratio(o / k),
                ">= 0.80x".into(),
            ]);
            self.target(
                format!("buffered append {size} B: ours/raw BufWriter"),
                o / r,
                true,
                0.8,
            );
        }
        self.tables.push(t);
        Ok(())
    }

    fn durable(&mut self) -> Res<()> {
        let mut t = Table::new(
            "Durable append, one barrier per record (records/s)",
            &[
                "payload",
                "ours",
                "ours prealloc",
                "raw write+sync_data",
                "raw prealloc",
                "okaywal",
                "best ours/raw prealloc",
                "ours/raw",
                "best ours/okaywal",
                "target",
            ],
        );
        let count = self.scale.durable_ops;
        println!("\n[durable] {count} records per repetition");
        for size in SIZES {
            let payload = vec![0x5Au8; size];
            let (mut o, mut op, mut r, mut rp, mut k) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..self.opts.reps {
                let d = self.scratch.fresh()?;
                o.push(rate(
                    count,
                    ours::durable_append(&d, &payload, count, false)?,
                ));
                remove(&d);
                {
                    let d = self.scratch.fresh()?;
                    op.push(rate(
                        count,
                        ours::durable_append(&d, &payload, count, true)?,
                    ));
                    remove(&d);
                }
                let d = self.scratch.fresh()?;
                r.push(rate(
                    count,
                    raw::durable_append(&d.join("raw.log"), &payload, count)?,
                ));
                remove(&d);
                let d = self.scratch.fresh()?;
                let p = d.join("raw.log");
                rp.push(rate(
                    count,
                    raw::durable_append_preallocated(&p, &payload, count)?,
                ));
                remove(&d);
                let d = self.scratch.fresh()?;
                k.push(rate(count, okay::durable_append(&d, &payload, count)?));
                remove(&d);
            }
            let (o, op, r, rp, k) = (median(o), median(op), median(r), median(rp), median(k));
            let best = if op.is_nan() { o } else { o.max(op) };
            t.row(vec![
                format!("{size} B"),
                fmt_rate(o),
                fmt_rate(op),
                fmt_rate(r),
                fmt_rate(rp),
                fmt_rate(k),
                fmt_ratio(best / rp),
                fmt_ratio(o / r),
                fmt_ratio(best / k),
                ">= 0.90x raw prealloc".into(),
            ]);
            self.target(
                format!("durable append {size} B: best ours/raw preallocated"),
                best / rp,
                true,
                0.9,
            );
        }
        self.tables.push(t);
        Ok(())
    }

    fn group(&mut self) -> Res<()> {
        let title = "Group commit: durable appends from N threads, total records/s \
            (ours: SharedWalWriter::append_bytes_durable, preallocated 16 MiB segment; \
            okaywal: begin_entry + write_chunk + commit, default configuration)";
        let mut t = Table::new(
            title,
            &[
                "payload",
                "threads",
                "ours",
                "ours records/barrier",
                "okaywal",
                "ours/okaywal",
                "ours N/ours 1",
                "okaywal N/okaywal 1",
            ],
        );
        let total = self.scale.group_ops;
        println!("\n[group] {total} records per repetition, split over the threads");
        for size in SIZES {
            let payload = vec![0x3Cu8; size];
            let mut base = (f64::NAN, f64::NAN);
            for threads in [1usize, 4, 16] {
                let per = total / threads as u64;
                let n = per * threads as u64;
                let (mut o, mut k, mut batch) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..self.opts.reps {
                    let d = self.scratch.fresh()?;
                    let (elapsed, barriers) = ours::group_commit(&d, &payload, threads, per, true)?;
                    o.push(rate(n, elapsed));
                    batch.push(n as f64 / barriers.max(1) as f64);
                    remove(&d);
                    let d = self.scratch.fresh()?;
                    k.push(rate(n, okay::group_commit(&d, &payload, threads, per)?));
                    remove(&d);
                }
                let (o, k, batch) = (median(o), median(k), median(batch));
                if threads == 1 {
                    base = (o, k);
                }
                t.row(vec![
                    format!("{size} B"),
                    threads.to_string(),
                    fmt_rate(o),
                    format!("{batch:.1}"),
                    fmt_rate(k),
                    fmt_ratio(o / k),
                    fmt_ratio(o / base.0),
                    fmt_ratio(k / base.1),
                ]);
                if threads == 16 {
                    self.target(
                        format!("group commit {size} B: ours 16 threads / ours 1 thread"),
                        o / base.0,
                        true,
                        8.0,
                    );
                    self.target(
                        format!("group commit {size} B: ours 16 threads / okaywal 16 threads"),
                        o / k,
                        true,
                        1.0,
                    );
                }
            }
        }
        self.tables.push(t);
        Ok(())
    }

    fn replay(&mut self) -> Res<()> {
        let mut t = Table::new(
            "Replay, warm page cache (records/s; every record's CRC checked)",
            &[
                "payload",
                "records",
                "ours replay_bytes",
                "raw BufReader+CRC",
                "okaywal recovery",
                "ours/raw",
                "ours/okaywal",
                "target ours/raw",
            ],
        );
        println!(
            "\n[replay] {} MiB of payload per log",
            self.scale.replay_bytes / MIB
        );
        for size in SIZES {
            let payload = vec![0xC3u8; size];
            let count = self.scale.replay_bytes / size as u64;
            let od = self.scratch.fresh()?;
            ours::write_log(&od, &payload, count)?;
            let rd = self.scratch.fresh()?;
            let rfile = rd.join("raw.log");
            raw::write_log(&rfile, &payload, count)?;
            let kd = self.scratch.fresh()?;
            okay::write_log(&kd, &payload, count, 1000)?;
            let (mut o, mut r, mut k) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..self.opts.reps {
                let (d, n, _) = ours::replay(&od)?;
                check_count("ours replay", n, count)?;
                o.push(rate(n, d));
                let (d, n, _) = raw::replay(&rfile)?;
                check_count("raw replay", n, count)?;
                r.push(rate(n, d));
                // okaywal recycles what it recovers: replay a copy.
                let copy = self.scratch.fresh()?;
                copy_files(&kd, &copy)?;
                let (d, n, _) = okay::replay(&copy)?;
                check_count("okaywal replay", n, count)?;
                k.push(rate(n, d));
                remove(&copy);
            }
            remove(&od);
            remove(&rd);
            remove(&kd);
            let (o, r, k) = (median(o), median(r), median(k));
            t.row(vec![
                format!("{size} B"),
                count.to_string(),
                fmt_rate(o),
                fmt_rate(r),
                fmt_rate(k),
                fmt_ratio(o / r),
                fmt_ratio(o / k),
                ">= 0.50x".into(),
            ]);
            self.target(
                format!("replay {size} B: ours/raw read+CRC"),
                o / r,
                true,
                0.5,
            );
        }
        self.tables.push(t);
        Ok(())
    }

    fn recovery(&mut self) -> Res<()> {
        let mut mib = self.opts.recovery_mib;
        if let Some(free) = free_bytes(&self.scratch.base) {
            // Our WAL and the raw log of one payload size at a time, plus 10% and 1 GiB
            // of headroom for everyone else.
            let fits = free.saturating_sub(1 << 30) / MIB * 10 / 22;
            if fits < mib {
                let smaller = fits.max(16);
                println!(
                    "WARNING: {} MiB free at {}; recovery WAL shrunk from {mib} MiB to {smaller} MiB",
                    free / MIB,
                    self.scratch.base.display()
                );
                mib = smaller;
            }
        }
        let mut t = Table::new(
            &format!(
                "Recovery of a {mib} MiB WAL, warm page cache (GB/s of WAL bytes; time ratio)"
            ),
            &[
                "payload",
                "records",
                "segments",
                "ours recover_latest_state",
                "ours replay_bytes",
                "sequential read",
                "raw read+CRC (framed file)",
                "time ours recover/read",
                "time raw read+CRC/read",
                "target",
            ],
        );
        println!(
            "\n[recovery] {mib} MiB WAL, {} repetitions",
            self.scale.recovery_reps
        );
        for size in [256usize, 4096] {
            let payload = ours::postcard_bytes(&vec![0x77u8; size - 2]);
            let frame = 8 + payload.len() as u64;
            let count = mib * MIB / frame;
            let d = self.scratch.fresh()?;
            let w = Instant::now();
            ours::write_log(&d, &payload, count)?;
            println!(
                "  wrote {count} records of {size} B in {:.1} s",
                w.elapsed().as_secs_f64()
            );
            let files = ours::segment_files(&d)?;
            let wal_bytes: u64 = files
                .iter()
                .map(|f| std::fs::metadata(f).map(|m| m.len()))
                .sum::<std::io::Result<u64>>()?;
            let rd_dir = self.scratch.fresh()?;
            let raw_file = rd_dir.join("raw.log");
            let raw_bytes = raw::write_log(&raw_file, &payload, count)?;
            let (mut rec, mut rep, mut seq, mut ratio) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut rawr, mut raw_ratio) = (Vec::new(), Vec::new());
            for _ in 0..self.scale.recovery_reps {
                let (xd, n, _) = raw::replay(&raw_file)?;
                check_count("raw replay", n, count)?;
                let (sd, _) = raw::sequential_read(&files)?;
                let (rd, n, _) = ours::recover(&d)?;
                check_count("ours recover", n, count)?;
                let (pd, n, _) = ours::replay(&d)?;
                check_count("ours replay", n, count)?;
                seq.push(wal_bytes as f64 / sd.as_secs_f64() / 1e9);
                rec.push(wal_bytes as f64 / rd.as_secs_f64() / 1e9);
                rep.push(wal_bytes as f64 / pd.as_secs_f64() / 1e9);
                ratio.push(rd.as_secs_f64() / sd.as_secs_f64());
                let raw_rate = raw_bytes as f64 / xd.as_secs_f64() / 1e9;
                rawr.push(raw_rate);
                raw_ratio.push(seq.last().copied().unwrap_or(f64::NAN) / raw_rate);
            }
            remove(&d);
            remove(&rd_dir);
            let (rec, rep, seq, ratio) = (median(rec), median(rep), median(seq), median(ratio));
            let (rawr, raw_ratio) = (median(rawr), median(raw_ratio));
            t.row(vec![
                format!("{size} B"),
                count.to_string(),
                files.len().to_string(),
                format!("{rec:.2}"),
                format!("{rep:.2}"),
                format!("{seq:.2}"),
                format!("{rawr:.2}"),
                fmt_ratio(ratio),
                fmt_ratio(raw_ratio),
                "<= 1.50x".into(),
            ]);
            self.target(
                format!("recovery {mib} MiB, {size} B records: time ours/sequential read"),
                ratio,
                false,
                1.5,
            );
        }
        self.tables.push(t);
        Ok(())
    }
}

fn check_count(what: &str, got: u64, want: u64) -> Res<()> {
    if got != want {
        return Err(format!("{what}: read {got} records, wrote {want}").into());
    }
    Ok(())
}

fn copy_files(from: &Path, to: &Path) -> Res<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// The commit of the tree this binary was built from, and whether it had local edits
/// (read at run time with git, when there is one).
fn tree_version() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .map_or(0, |s| s.lines().count());
            if dirty == 0 {
                format!("commit {head}")
            } else {
                format!("commit {head} + {dirty} locally modified files")
            }
        }
        None => "unknown commit".into(),
    }
}

fn print_machine(root: &Path) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let (dev, at, ty) = mount_of(root).unwrap_or_default();
    println!("machine: {cpus} CPUs ({model}), kernel {}", kernel.trim());
    println!(
        "disk: {} on {dev} mounted at {at} ({ty}), {} MiB free",
        root.display(),
        free_bytes(root).unwrap_or(0) / MIB
    );
}

fn main() -> Res<()> {
    let opts = parse_args();
    std::fs::create_dir_all(&opts.root)?;
    let started = Instant::now();
    println!(
        "side-by-side: durability (this tree) vs raw std::fs vs okaywal 0.3 — {} run, {} repetitions, median of each",
        if opts.quick { "quick" } else { "full" },
        opts.reps
    );
    println!("tree: {}", tree_version());
    print_machine(&opts.root);
    let mut run = Run {
        scale: Scale::new(opts.quick),
        scratch: Scratch::new(&opts.root)?,
        opts,
        tables: Vec::new(),
        targets: Vec::new(),
    };
    if run.wants("crc") {
        run.crc()?;
    }
    if run.wants("buffered") {
        run.buffered()?;
    }
    if run.wants("durable") {
        run.durable()?;
    }
    if run.wants("group") {
        run.group()?;
    }
    if run.wants("replay") {
        run.replay()?;
    }
    if run.wants("recovery") {
        run.recovery()?;
    }

    println!("\n## Results (medians of this run)");
    for t in &run.tables {
        t.print();
    }
    println!("\n### Targets\n");
    println!("| target | measured | bound | result |");
    println!("|---|---|---|---|");
    for t in &run.targets {
        println!(
            "| {} | {} | {} {} | {} |",
            t.what,
            fmt_ratio(t.measured),
            if t.at_least { ">=" } else { "<=" },
            fmt_ratio(t.bound),
            if t.pass() { "PASS" } else { "MISS" }
        );
    }
    let passed = run.targets.iter().filter(|t| t.pass()).count();
    println!(
        "\n{passed}/{} targets met; total run time {:.0} s",
        run.targets.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
