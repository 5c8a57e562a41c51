//! Micro benchmarks of the frame codec and the checksum behind it: frame encode (seal +
//! place header and payload into a write buffer, what every append does), frame decode
//! (parse the header, verify the checksum over identity and payload, what every
//! replayed record costs), and CRC-32C alone; `frame_encode_raw_floor` is the same
//! loop with a plain `len ‖ crc ‖ payload` frame, for comparison.
//! `cargo bench --bench frame`. Side-by-side comparisons live in docs/PERFORMANCE.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use durability::core::checksum::crc32c;
use durability::core::frame::{
    frame_header, frame_len, FrameForm, FrameHeader, FrameKind, FrameSeal,
};

const SIZES: [usize; 3] = [64, 256, 4096];
/// Frames per iteration: enough to amortise the loop, small enough to stay in cache.
const FRAMES: u64 = 256;
const LOG_ID: u64 = 0x0123_4567_89AB_CDEF;
const SEGMENT: u64 = 7;
const ALIGN: usize = 8;

/// A buffer of `FRAMES` encoded frames of `size`-byte payloads, entry ids from 1.
fn encoded(seal: &FrameSeal, size: usize) -> Vec<u8> {
    let payload = vec![0xA5u8; size];
    let step = frame_len(size, ALIGN) as usize;
    let mut buf = vec![0u8; step * FRAMES as usize];
    for (i, frame) in buf.chunks_exact_mut(step).enumerate() {
        let head = seal.seal(FrameKind::Entry, i as u64 + 1, &payload);
        frame[..frame_header::HEADER_LEN].copy_from_slice(&head);
        frame[frame_header::HEADER_LEN..frame_header::HEADER_LEN + size].copy_from_slice(&payload);
    }
    buf
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    let seal = FrameSeal::new(LOG_ID, SEGMENT, FrameForm::Long);
    for size in SIZES {
        let payload = vec![0xA5u8; size];
        let step = frame_len(size, ALIGN) as usize;
        let mut buf = vec![0u8; step * FRAMES as usize];
        g.throughput(Throughput::Elements(FRAMES));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, payload| {
            b.iter(|| {
                for (i, frame) in buf.chunks_exact_mut(step).enumerate() {
                    let head = seal.seal(FrameKind::Entry, i as u64 + 1, black_box(payload));
                    frame[..frame_header::HEADER_LEN].copy_from_slice(&head);
                    frame[frame_header::HEADER_LEN..frame_header::HEADER_LEN + size]
                        .copy_from_slice(payload);
                }
                black_box(&buf);
            })
        });
    }
    g.finish();
}

/// The floor for `frame_encode`: the side-by-side harness's raw frame (`len ‖ crc of the
/// payload ‖ payload`, one CRC call, no identity in the checksum) into the same buffer.
fn encode_raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode_raw_floor");
    for size in SIZES {
        let payload = vec![0xA5u8; size];
        let step = frame_len(size, ALIGN) as usize;
        let mut buf = vec![0u8; step * FRAMES as usize];
        g.throughput(Throughput::Elements(FRAMES));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, payload| {
            b.iter(|| {
                for frame in buf.chunks_exact_mut(step) {
                    let p = black_box(payload);
                    frame[..4].copy_from_slice(&(p.len() as u32).to_le_bytes());
                    frame[4..8].copy_from_slice(&crc32c(p).to_le_bytes());
                    frame[8..8 + size].copy_from_slice(p);
                }
                black_box(&buf);
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_decode_verify");
    let seal = FrameSeal::new(LOG_ID, SEGMENT, FrameForm::Long);
    for size in SIZES {
        let buf = encoded(&seal, size);
        let step = frame_len(size, ALIGN) as usize;
        g.throughput(Throughput::Elements(FRAMES));
        g.bench_with_input(BenchmarkId::from_parameter(size), &buf, |b, buf| {
            b.iter(|| {
                let mut ok = 0u64;
                for (i, frame) in black_box(buf).chunks_exact(step).enumerate() {
                    let mut head = [0u8; frame_header::HEADER_LEN];
                    head.copy_from_slice(&frame[..frame_header::HEADER_LEN]);
                    let h = FrameHeader::parse(&head, FrameForm::Long).expect("valid header");
                    let body = &frame[frame_header::HEADER_LEN..][..h.len as usize];
                    ok += u64::from(h.verify(&seal, i as u64 + 1, body));
                }
                assert_eq!(ok, FRAMES);
            })
        });
    }
    g.finish();
}

fn checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for size in SIZES.into_iter().chain([1 << 20]) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| crc32c(black_box(data)))
        });
    }
    g.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = encode, encode_raw, decode, checksum
}
criterion_main!(benches);
