//! The lifecycle demo: append to a WAL on disk, publish a checkpoint (which truncates
//! the WAL behind it), append more, crash with a torn tail, recover from the checkpoint
//! plus the WAL suffix, resume and continue.
//!
//! `cargo run --example lifecycle`

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use durability::publish::CheckpointPublisher;
use durability::recover::{RecoveredState, RecoveryManager};
use durability::storage::FsDirectory;
use durability::walog::{WalEntry, WalWriter};
use durability::{Directory, PersistenceError};

/// Removes the demo directory however `main` ends.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn deletes_of(state: &RecoveredState, segment_id: u64) -> Option<HashSet<u32>> {
    state
        .segments
        .iter()
        .find(|s| s.segment_id == segment_id)
        .map(|s| s.deleted_docs.clone())
}

fn wal_files(dir: &Arc<dyn Directory>) -> Result<Vec<String>, PersistenceError> {
    dir.list_dir("wal")
        .map(|names| names.into_iter().filter(|n| n.ends_with(".seg")).collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("durability-lifecycle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let _cleanup = Cleanup(root.clone());
    run(&root)
}

fn run(root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(root)?);
    dir.create_dir_all("ckpt")?;
    println!("directory: {}", root.display());

    // 1. Append entries; small segments so the WAL rotates.
    let mut wal = WalWriter::<WalEntry>::new(dir.clone());
    wal.set_segment_size_limit_bytes(256);
    for segment_id in 1..=12u64 {
        wal.append(&WalEntry::AddSegment {
            segment_id,
            doc_count: 100,
        })?;
        wal.append(&WalEntry::DeleteDocuments {
            deletes: vec![(segment_id, 1), (segment_id, 2)],
        })?;
    }
    let merged = wal.append(&WalEntry::EndMerge {
        transaction_id: 1,
        new_segment_id: 100,
        old_segment_ids: vec![1, 2],
        remapped_deletes: vec![(100, 1), (100, 101)],
    })?;
    wal.flush_and_sync()?;
    println!(
        "appended entries 1..={merged} (12 segments, their deletes, one merge); synced; WAL files: {:?}",
        wal_files(&dir)?
    );

    // 2. Publish a checkpoint of the state after the last entry.
    let mgr = RecoveryManager::new(dir.clone());
    let snapshot = mgr.recover_latest()?;
    assert_eq!(snapshot.last_entry_id, merged);
    let state = RecoveryManager::to_checkpoint_state(&snapshot);
    let publisher = CheckpointPublisher::new(dir.clone()).keep(2);
    let published = publisher.publish_checkpoint(&mut wal, &state, merged, "ckpt/1.ckpt")?;
    println!("published: {published:#?}");
    assert_eq!(published.checkpoint_last_entry_id, merged);
    assert_eq!(published.wal_checkpoint_entry_id, merged + 1);
    assert!(published.deleted_wal_segments > 0, "the WAL was truncated");
    println!("WAL files after truncation: {:?}", wal_files(&dir)?);

    // 3. Append more: two durable entries, then one that is only buffered.
    let added = wal.append(&WalEntry::AddSegment {
        segment_id: 20,
        doc_count: 50,
    })?;
    wal.append(&WalEntry::DeleteDocuments {
        deletes: vec![(20, 5)],
    })?;
    wal.flush_and_sync()?;
    let lost = wal.append(&WalEntry::DeleteDocuments {
        deletes: vec![(20, 6)],
    })?;
    println!(
        "appended {added}..={} durably, then entry {lost} without a sync",
        lost - 1
    );

    // 4. Crash: dropping the writer flushes its buffer (no sync), so entry `lost` reaches
    //    the file; the power cut then tears it: cut the final segment a few bytes short.
    drop(wal);
    let last_seg = wal_files(&dir)?.pop().expect("a segment");
    let seg_path = root.join("wal").join(&last_seg);
    let len = std::fs::metadata(&seg_path)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg_path)?
        .set_len(len - 3)?;
    println!(
        "crash: {last_seg} torn 3 bytes short ({len} -> {} bytes)",
        len - 3
    );

    // 5. Recover. Strict refuses the torn tail; best-effort cuts it.
    match mgr.recover_latest() {
        Err(e @ PersistenceError::TornTail { .. }) => println!("strict recovery refuses: {e}"),
        other => panic!("strict recovery should report the torn tail, got {other:?}"),
    }
    let recovered = mgr.recover_latest_best_effort()?;
    let report = &recovered.report;
    println!("best-effort recovery:");
    println!("  checkpoint used:  {:?}", report.checkpoint);
    println!("  segments scanned: {}", report.segments_scanned);
    println!("  records applied:  {}", report.records_applied);
    println!("  bytes applied:    {}", report.bytes_applied);
    println!("  torn tail:        {:?}", report.torn_tail);
    println!("  next entry id:    {}", report.next_entry_id);
    println!("  elapsed:          {:?}", report.elapsed);
    let used = report.checkpoint.as_ref().expect("a checkpoint");
    assert_eq!(
        (used.path.as_str(), used.last_entry_id),
        ("ckpt/1.ckpt", merged)
    );
    assert!(report.torn_tail.is_some());
    // The marker and the two durable entries after the checkpoint; the torn one is gone.
    assert_eq!(report.records_applied, 3);
    assert_eq!(report.next_entry_id, lost);
    assert_eq!(deletes_of(&recovered, 20), Some(HashSet::from([5])));
    assert_eq!(deletes_of(&recovered, 1), None, "merged away");
    assert_eq!(deletes_of(&recovered, 100), Some(HashSet::from([1, 101])));
    assert_eq!(recovered.segments.len(), 12);

    // 6. Resume: the writer cuts the torn tail and continues the ids.
    let mut wal = WalWriter::<WalEntry>::resume(dir.clone())?;
    wal.set_segment_size_limit_bytes(256);
    assert_eq!(wal.next_entry_id()?, report.next_entry_id);
    let again = wal.append(&WalEntry::DeleteDocuments {
        deletes: vec![(20, 6)],
    })?;
    wal.flush_and_sync()?;
    println!("resumed: re-appended the lost delete as entry {again}");
    assert_eq!(again, lost);

    let state = RecoveryManager::to_checkpoint_state(&mgr.recover_latest()?);
    let published = CheckpointPublisher::new(dir.clone())
        .keep(2)
        .publish_checkpoint(&mut wal, &state, again, "ckpt/2.ckpt")?;
    println!(
        "published {} covering entries up to {}",
        published.checkpoint_path, published.checkpoint_last_entry_id
    );
    drop(wal);

    let final_state = mgr.recover_latest()?;
    println!(
        "strict recovery after restart: {} segments, last entry {}, from {:?}",
        final_state.segments.len(),
        final_state.last_entry_id,
        final_state.report.checkpoint
    );
    assert_eq!(deletes_of(&final_state, 20), Some(HashSet::from([5, 6])));
    assert_eq!(final_state.last_entry_id, again + 1);
    assert_eq!(final_state.report.records_applied, 1);
    assert_eq!(final_state.report.torn_tail, None);
    println!("ok");
    Ok(())
}
