//! The main demo: write a WAL on disk, crash mid-write, recover.
//!
//! `cargo run --example quickstart`

use std::sync::Arc;

use durability::storage::FsDirectory;
use durability::walog::{WalEntry, WalReader, WalWriter};
use durability::Directory;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("durability-quickstart-{}", std::process::id()));
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(&tmp)?);

    let mut wal = WalWriter::<WalEntry>::new(dir.clone());
    for segment_id in 1..=3 {
        let id = wal.append(&WalEntry::AddSegment {
            segment_id,
            doc_count: 100,
        })?;
        println!("appended AddSegment {{ segment_id: {segment_id} }} as entry {id}");
    }
    wal.flush_and_sync()?;
    println!("flush_and_sync: entries 1..=3 are durable");

    wal.append(&WalEntry::DeleteDocuments {
        deletes: vec![(1, 42)],
    })?;
    drop(wal); // flushed, never synced

    // Simulate a crash that tore the last write: cut the final segment short.
    let seg = dir.list_dir("wal")?.pop().expect("a segment");
    let path = tmp.join("wal").join(&seg);
    let len = std::fs::metadata(&path)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(len - 3)?;
    println!("crash: {seg} torn 3 bytes short");

    match WalReader::<WalEntry>::new(dir.clone()).replay() {
        Ok(r) => println!("strict replay: {} entries", r.len()),
        Err(e) => println!("strict replay refuses: {e}"),
    }
    let records = WalReader::<WalEntry>::new(dir.clone()).replay_best_effort()?;
    println!(
        "best-effort replay: {} entries (the durable prefix)",
        records.len()
    );

    let mut wal = WalWriter::<WalEntry>::resume(dir.clone())?;
    let id = wal.append(&WalEntry::DeleteDocuments {
        deletes: vec![(1, 42)],
    })?;
    wal.flush_and_sync()?;
    println!("resumed: re-appended the lost delete as entry {id}");

    let records = WalReader::<WalEntry>::new(dir).replay()?;
    for r in &records {
        println!("  {:>2}: {:?}", r.entry_id, r.payload);
    }
    assert_eq!(records.len(), 4);
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
