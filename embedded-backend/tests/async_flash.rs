//! The backend over an async driver (`asynch::BlockOn`, feature `async`): the same WAL
//! and checkpoint operations over an async mock flash and over the blocking `SimFlash`
//! must issue the same flash operations and leave byte-identical flash images.

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use durability_core::checkpoint::CheckpointStore;
use durability_core::lifecycle::{publish, recover};
use durability_core::wal::{WalConfig, WalReader, WalWriter};
use durability_core::ReadMode;
use durability_embedded::asynch::{block_on, BlockOn};
use durability_embedded::sim::{SimFlash, SimStats};
use durability_embedded::FlashStorage;
use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use embedded_storage_async::nor_flash as asynch;

const ERASE: usize = 512;
const WAL_UNITS: usize = 12;
const CK_UNITS: usize = 4;
const LOG_ID: u64 = 0xA5F1_0001;

// ---------------------------------------------------------------------------------------
// An async mock NOR flash: write-once words, alignment checks, counters, and futures
// that return `Pending` a few times before completing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MockError {
    NotAligned,
    OutOfBounds,
    ProgrammedTwice,
}

impl NorFlashError for MockError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MockError::NotAligned => NorFlashErrorKind::NotAligned,
            MockError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            MockError::ProgrammedTwice => NorFlashErrorKind::Other,
        }
    }
}

/// Completes after returning `Pending` `left` times, waking itself each time.
struct Busy<'a> {
    left: u32,
    pendings: &'a Cell<u64>,
}

impl Future for Busy<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            return Poll::Ready(());
        }
        self.left -= 1;
        self.pendings.set(self.pendings.get() + 1);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

struct AsyncMock<const W: usize> {
    mem: Vec<u8>,
    stats: SimStats,
    pendings: Cell<u64>,
}

impl<const W: usize> AsyncMock<W> {
    fn erased(len: usize) -> Self {
        AsyncMock {
            mem: vec![0xFF; len],
            stats: SimStats::default(),
            pendings: Cell::new(0),
        }
    }

    /// Busy for a while, then the range checked against `align`.
    async fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, MockError> {
        Busy {
            left: 1 + (offset / 64) % 3,
            pendings: &self.pendings,
        }
        .await;
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(MockError::OutOfBounds)?;
        if end > self.mem.len() {
            return Err(MockError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(MockError::NotAligned);
        }
        Ok(start..end)
    }
}

impl<const W: usize> asynch::ErrorType for AsyncMock<W> {
    type Error = MockError;
}

impl<const W: usize> asynch::ReadNorFlash for AsyncMock<W> {
    const READ_SIZE: usize = W;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        let r = self.range(offset, bytes.len(), W).await?;
        bytes.copy_from_slice(&self.mem[r]);
        self.stats.reads += 1;
        self.stats.bytes_read += bytes.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize> asynch::NorFlash for AsyncMock<W> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = ERASE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        if from > to {
            return Err(MockError::OutOfBounds);
        }
        let r = self.range(from, (to - from) as usize, ERASE).await?;
        self.stats.erases += (r.len() / ERASE) as u64;
        self.mem[r].fill(0xFF);
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        let r = self.range(offset, bytes.len(), W).await?;
        if self.mem[r.clone()].iter().any(|&b| b != 0xFF) {
            return Err(MockError::ProgrammedTwice);
        }
        self.mem[r].copy_from_slice(bytes);
        self.stats.writes += 1;
        self.stats.bytes_programmed += bytes.len() as u64;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// One scenario, written once over any blocking `NorFlash`.

fn payload(id: u64) -> Vec<u8> {
    let len = [0usize, 3, 17, 40, 101, 200, 9][id as usize % 7];
    (0..len).map(|k| (id as usize * 13 + k) as u8).collect()
}

/// What the scenario observed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    replayed: Vec<(u64, Vec<u8>)>,
    next_ids: Vec<u64>,
    removed: Vec<u64>,
    recovered_sum: u64,
    recovered_from: Option<u64>,
}

fn mount_wal<F: NorFlash>(f: &mut F) -> FlashStorage<&mut F, 16> {
    FlashStorage::new(f, 0, WAL_UNITS).unwrap()
}

fn mount_ck<F: NorFlash>(f: &mut F) -> FlashStorage<&mut F, 16> {
    FlashStorage::new(f, 0, CK_UNITS).unwrap()
}

/// Append, sync, remount and replay, resume, publish checkpoints (which truncates the
/// WAL and retains checkpoints), remount and recover. Every mount is a fresh
/// `FlashStorage` over the same flash.
fn scenario<F: NorFlash>(wal: &mut F, ck: &mut F) -> Outcome {
    let cfg = WalConfig {
        segment_limit: u64::MAX,
        ..WalConfig::new(LOG_ID)
    };
    let mut out = Outcome {
        replayed: Vec::new(),
        next_ids: Vec::new(),
        removed: Vec::new(),
        recovered_sum: 0,
        recovered_from: None,
    };

    // Session 1: a fresh log.
    {
        let mut w = WalWriter::open(mount_wal(wal), [0u8; 256], cfg).unwrap();
        for id in 1..=40u64 {
            assert_eq!(w.append(&payload(id)).unwrap(), id);
            if id % 6 == 0 {
                w.sync().unwrap();
            }
        }
        w.sync().unwrap();
    }
    // Remount and replay.
    WalReader::new(mount_wal(wal), [0u8; 256])
        .replay(ReadMode::Strict, |id, p| {
            out.replayed.push((id, p.to_vec()));
            Ok(())
        })
        .unwrap();

    // Session 2: resume, publish twice (truncate + retain), keep appending.
    let mut sum = (1..=40u64).sum::<u64>();
    {
        let mut w = WalWriter::open(mount_wal(wal), [0u8; 256], cfg).unwrap();
        let mut store = CheckpointStore::new(mount_ck(ck));
        out.next_ids.push(w.next_id().unwrap());
        for id in 41..=90u64 {
            assert_eq!(w.append(&payload(id)).unwrap(), id);
            sum += id;
            if id % 25 == 0 {
                let r = publish(
                    &mut w,
                    &mut store,
                    id,
                    &sum.to_le_bytes(),
                    None,
                    2,
                    &mut [0u8; 128],
                )
                .unwrap();
                out.removed.push(r.wal_segments_removed);
                out.removed.push(r.checkpoints_removed);
            }
        }
        w.sync().unwrap();
        out.next_ids.push(w.next_id().unwrap());
    }

    // Remount both and recover: checkpoint + the WAL suffix.
    let mut store = CheckpointStore::new(mount_ck(ck));
    let (got, report) = recover(
        mount_wal(wal),
        &mut store,
        &mut [0u8; 256],
        ReadMode::Strict,
        |c| Ok(c.map_or(0, |(_, p)| u64::from_le_bytes(p.try_into().unwrap()))),
        |s: &mut u64, id, p| {
            assert_eq!(p, &payload(id)[..]);
            *s += id;
            Ok(())
        },
    )
    .unwrap();
    out.recovered_sum = got;
    out.recovered_from = report.checkpoint.map(|c| c.header.last_id);
    out.next_ids.push(report.next_id);
    out
}

fn same_bytes_and_ops<const W: usize>() {
    // Blocking reference: SimFlash.
    let mut wal_mem = vec![0xFFu8; WAL_UNITS * ERASE];
    let mut ck_mem = vec![0xFFu8; CK_UNITS * ERASE];
    let (sim_out, sim_wal_stats, sim_ck_stats) = {
        let mut wal = SimFlash::<W, W, ERASE>::new(&mut wal_mem);
        let mut ck = SimFlash::<W, W, ERASE>::new(&mut ck_mem);
        let out = scenario(&mut wal, &mut ck);
        (out, wal.stats(), ck.stats())
    };

    // The same scenario through the adapter over the async mock.
    let mut wal = BlockOn::new(AsyncMock::<W>::erased(WAL_UNITS * ERASE));
    let mut ck = BlockOn::new(AsyncMock::<W>::erased(CK_UNITS * ERASE));
    let async_out = scenario(&mut wal, &mut ck);

    // What the scenario saw is right...
    let want: Vec<_> = (1..=40u64).map(|id| (id, payload(id))).collect();
    assert_eq!(sim_out.replayed, want);
    assert_eq!(sim_out.next_ids, vec![41, 91, 91]);
    assert_eq!(sim_out.recovered_from, Some(75));
    assert_eq!(sim_out.recovered_sum, (1..=90u64).sum::<u64>());
    assert!(
        sim_out.removed[0] > 0 && sim_out.removed[2] > 0,
        "{sim_out:?}"
    );
    // ...and identical through the adapter: results, flash images, operation counts.
    assert_eq!(async_out, sim_out, "word {W}");
    assert!(
        wal.inner().mem == wal_mem,
        "WAL flash images differ (word {W})"
    );
    assert!(
        ck.inner().mem == ck_mem,
        "checkpoint images differ (word {W})"
    );
    assert_eq!(wal.inner().stats, sim_wal_stats, "word {W}");
    assert_eq!(ck.inner().stats, sim_ck_stats, "word {W}");
    // The adapter really drove futures that were pending.
    let ops = sim_wal_stats.reads + sim_wal_stats.writes;
    assert!(
        wal.inner().pendings.get() > ops,
        "{}",
        wal.inner().pendings.get()
    );
}

#[test]
fn same_bytes_and_ops_word_1() {
    same_bytes_and_ops::<1>();
}

#[test]
fn same_bytes_and_ops_word_4() {
    same_bytes_and_ops::<4>();
}

#[test]
fn same_bytes_and_ops_word_32() {
    same_bytes_and_ops::<32>();
}

#[test]
fn driver_errors_come_through() {
    let mut flash = BlockOn::new(AsyncMock::<4>::erased(2 * ERASE));
    assert_eq!(
        NorFlash::write(&mut flash, 2, &[0; 4]),
        Err(MockError::NotAligned)
    );
    NorFlash::write(&mut flash, 0, &[0; 4]).unwrap();
    assert_eq!(
        NorFlash::write(&mut flash, 0, &[0; 4]),
        Err(MockError::ProgrammedTwice)
    );
    // A failed program surfaces as the backend's `Flash` error and freezes the segment.
    let mut st = FlashStorage::<_, 2>::new(&mut flash, 0, 2).unwrap();
    use durability_core::Storage;
    st.create(1).unwrap();
    st.write(1, 0, &[1; 8]).unwrap();
    assert_eq!(
        st.write(1, 8, &[1; 3]),
        Err(durability_embedded::FlashError::Misaligned)
    );
}

/// The adapter inside an async task: the blocking calls simply run to completion there.
#[test]
fn usable_from_an_async_task() {
    let mut flash = BlockOn::new(AsyncMock::<4>::erased(WAL_UNITS * ERASE));
    let next = embassy_futures::block_on(async {
        let st = FlashStorage::<_, 16>::new(&mut flash, 0, WAL_UNITS).unwrap();
        let mut w = WalWriter::open(st, [0u8; 256], WalConfig::new(LOG_ID)).unwrap();
        for id in 1..=5u64 {
            w.append(&payload(id)).unwrap();
        }
        w.sync().unwrap();
        w.next_id().unwrap()
    });
    assert_eq!(next, 6);
    assert_eq!(block_on(async { 7 }), 7);
    let mut got = 0;
    WalReader::new(
        FlashStorage::<_, 16>::new(&mut flash, 0, WAL_UNITS).unwrap(),
        [0u8; 256],
    )
    .replay(ReadMode::Strict, |_, _| {
        got += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(got, 5);
}
