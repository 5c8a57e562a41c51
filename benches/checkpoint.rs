//! Micro benchmarks of checkpoints: encode + write and read + verify, through the
//! path API (`CheckpointFile`, atomic temp-file + rename) and the numbered store
//! (`Checkpoints`, newest valid wins), on `MemoryDirectory` so the numbers are the
//! library's cost, not the disk's. Payloads are opaque bytes (a `Vec<u8>` state).
//! `cargo bench --bench checkpoint`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use durability::checkpoint::{checkpoints, CheckpointFile};
use durability::storage::MemoryDirectory;
use durability::Directory;

const SIZES: [usize; 2] = [4 * 1024, 1024 * 1024];

fn state(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 253) as u8).collect()
}

fn file(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint_file");
    for size in SIZES {
        let s = state(size);
        let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
        let f = CheckpointFile::new(dir);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("write", size), &s, |b, s| {
            b.iter(|| {
                f.write_postcard("ckpt/state.bin", 42, black_box(s))
                    .unwrap()
            })
        });
        f.write_postcard("ckpt/state.bin", 42, &s).unwrap();
        g.bench_with_input(BenchmarkId::new("read", size), &s, |b, s| {
            b.iter(|| {
                let (id, back): (u64, Vec<u8>) = f.read_postcard("ckpt/state.bin").unwrap();
                assert_eq!((id, back.len()), (42, s.len()));
            })
        });
    }
    g.finish();
}

fn store(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint_store");
    for size in SIZES {
        let payload = state(size);
        let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
        let mut store = checkpoints(dir);
        let mut last = 0u64;
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("write", size), &payload, |b, p| {
            b.iter(|| {
                last += 1;
                store.write(1, last, black_box(p)).unwrap();
                // Keep the store small so every iteration does the same work.
                store.retain_newest(1, &mut vec![0u8; 64 * 1024]).unwrap();
            })
        });
        let mut buf = vec![0u8; size + 4096];
        g.bench_function(BenchmarkId::new("latest", size), |b| {
            b.iter(|| {
                let found = store.latest(&mut buf).unwrap().expect("a checkpoint");
                assert_eq!(found.header.len as usize, size);
            })
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
    targets = file, store
}
criterion_main!(benches);
