//! Micro benchmarks of the WAL paths on `MemoryDirectory` (the library's own cost, no
//! disk): buffered append (frame encode + copy into the write buffer, flush at the
//! end) and strict replay. `cargo bench --bench wal`. Side-by-side comparisons against
//! raw file I/O and okaywal: benches/side-by-side and docs/PERFORMANCE.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use durability::core::ReadMode;
use durability::storage::MemoryDirectory;
use durability::walog::{WalReader, WalWriter};
use durability::Directory;

const RECORDS: u64 = 10_000;

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_append_buffered");
    for size in [64usize, 256, 4096] {
        let payload = vec![0xA5u8; size];
        g.throughput(Throughput::Elements(RECORDS));
        g.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, payload| {
            b.iter(|| {
                let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
                let mut w = WalWriter::<()>::new(dir);
                for _ in 0..RECORDS {
                    w.append_bytes(payload).unwrap();
                }
                w.flush().unwrap();
            })
        });
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_replay");
    for size in [64usize, 256, 4096] {
        let dir: Arc<dyn Directory> = Arc::new(MemoryDirectory::new());
        let mut w = WalWriter::<()>::new(dir.clone());
        for _ in 0..RECORDS {
            w.append_bytes(&vec![0x5Au8; size]).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        g.throughput(Throughput::Elements(RECORDS));
        g.bench_with_input(BenchmarkId::from_parameter(size), &dir, |b, dir| {
            b.iter(|| {
                let mut n = 0u64;
                WalReader::<()>::new(dir.clone())
                    .replay_bytes(ReadMode::Strict, |_, p| {
                        n += p.len() as u64;
                        Ok(())
                    })
                    .unwrap();
                n
            })
        });
    }
    g.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = append, replay
}
criterion_main!(benches);
