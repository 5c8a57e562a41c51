//! The record log facade: round trips, torn tails, reopen repair.

use std::sync::Arc;

use durability::recordlog::{RecordLogReadMode, RecordLogReader, RecordLogWriter};
use durability::storage::FsDirectory;
use durability::{Directory, PersistenceError};

#[test]
fn round_trip_reopen_and_torn_tail_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    let mut w = RecordLogWriter::new(dir.clone(), "logs/events.log");
    for i in 0..20u32 {
        w.append_postcard(&(i, format!("event {i}"))).unwrap();
    }
    w.flush_and_sync().unwrap();
    w.append_bytes(b"unsynced").unwrap();
    drop(w);

    let r = RecordLogReader::new(dir.clone(), "logs/events.log");
    assert_eq!(r.read_all(RecordLogReadMode::Strict).unwrap().len(), 21);

    // Tear the last record.
    let path = tmp.path().join("logs/events.log");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    assert!(matches!(
        r.read_all(RecordLogReadMode::Strict),
        Err(PersistenceError::TornTail { .. })
    ));
    let events: Vec<(u32, String)> = r.read_all_postcard(RecordLogReadMode::BestEffort).unwrap();
    assert_eq!(events.len(), 20);
    assert_eq!(events[7], (7, "event 7".to_string()));

    // Reopen: the torn tail is cut before anything is appended after it.
    let mut w = RecordLogWriter::new(dir.clone(), "logs/events.log");
    w.append_bytes(b"after repair").unwrap();
    w.flush_and_sync().unwrap();
    let all = r.read_all(RecordLogReadMode::Strict).unwrap();
    assert_eq!(all.len(), 21);
    assert_eq!(all[20], b"after repair");
}

#[test]
fn a_file_that_is_not_a_record_log_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(FsDirectory::new(tmp.path()).unwrap());
    let foreign = b"this is somebody else's file, not a log; do not touch it".repeat(4);
    dir.atomic_write("notes.txt", &foreign).unwrap();
    let mut w = RecordLogWriter::new(dir.clone(), "notes.txt");
    assert!(w.append_bytes(b"x").is_err());
    assert!(w.is_poisoned());
    drop(w);
    assert_eq!(
        std::fs::read(tmp.path().join("notes.txt")).unwrap(),
        foreign
    );
}
