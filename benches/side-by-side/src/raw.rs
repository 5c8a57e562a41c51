//! The raw baselines: what plain `std::fs` does with the simplest frame.
//!
//! ```text
//!  raw frame
//!  0       4       8             8+len
//!  +-------+-------+-------------+
//!  |  len  |  crc  |   payload   |
//!  +-------+-------+-------------+
//!   u32 LE  CRC-32C of the payload (hardware, `crc32c` crate)
//! ```
//!
//! No segment header, no ids, no padding, no sync markers: this is the floor a framed
//! log cannot go below on the same disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Frame header length (len + crc).
pub const HEADER: usize = 8;

/// Builds one frame into `out` (cleared first).
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// `count` frames through a 64 KiB `BufWriter<File>`, flushed at the end (no sync).
pub fn buffered_append(path: &Path, payload: &[u8], count: u64) -> io::Result<Duration> {
    let file = File::create(path)?;
    let started = Instant::now();
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    for _ in 0..count {
        w.write_all(&(payload.len() as u32).to_le_bytes())?;
        w.write_all(&crc32c::crc32c(payload).to_le_bytes())?;
        w.write_all(payload)?;
    }
    w.flush()?;
    Ok(started.elapsed())
}

/// `count` frames, each one `write` + `sync_data`, into a new (growing) file.
pub fn durable_append(path: &Path, payload: &[u8], count: u64) -> io::Result<Duration> {
    let mut file = File::create(path)?;
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    let started = Instant::now();
    for _ in 0..count {
        frame(&mut buf, payload);
        file.write_all(&buf)?;
        file.sync_data()?;
    }
    Ok(started.elapsed())
}

/// Like [`durable_append`] into a file zero-filled (and synced) ahead of the timed loop,
/// so each `sync_data` flushes data only, never the file size.
pub fn durable_append_preallocated(
    path: &Path,
    payload: &[u8],
    count: u64,
) -> io::Result<Duration> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let total = count * (HEADER + payload.len()) as u64;
    let total = total.div_ceil(1 << 20) * (1 << 20);
    let zeros = vec![0u8; 1 << 20];
    let mut left = total;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    file.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    let started = Instant::now();
    for _ in 0..count {
        frame(&mut buf, payload);
        file.write_all(&buf)?;
        file.sync_data()?;
    }
    Ok(started.elapsed())
}

/// Writes `count` frames (untimed setup for [`replay`]); returns the bytes written.
pub fn write_log(path: &Path, payload: &[u8], count: u64) -> io::Result<u64> {
    buffered_append(path, payload, count)?;
    File::open(path)?.sync_all()?;
    Ok(count * (HEADER + payload.len()) as u64)
}

/// Sequential read of a framed file through a 256 KiB `BufReader`, one CRC-32C check
/// per frame; returns (elapsed, frames, payload bytes).
pub fn replay(path: &Path) -> io::Result<(Duration, u64, u64)> {
    let started = Instant::now();
    let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    let (mut frames, mut bytes) = (0u64, 0u64);
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&header[0..4]);
        let len = u32::from_le_bytes(word) as usize;
        word.copy_from_slice(&header[4..8]);
        let crc = u32::from_le_bytes(word);
        payload.resize(len, 0);
        r.read_exact(&mut payload)?;
        if crc32c::crc32c(&payload) != crc {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "crc mismatch"));
        }
        frames += 1;
        bytes += len as u64;
    }
    Ok((started.elapsed(), frames, bytes))
}

/// Reads every file in `files` start to end with a 1 MiB buffer, no parsing (the
/// sequential-read floor of a recovery); returns (elapsed, bytes).
pub fn sequential_read(files: &[std::path::PathBuf]) -> io::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for path in files {
        let mut f = File::open(path)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok((started.elapsed(), total))
}
