//! The conformance suite (`durability_core::conformance`) over `DirStorage`, on an
//! in-memory directory and on real files in a temporary directory.

use std::sync::Arc;

use durability_core::conformance::{run_all, Medium, CHECKS};
use durability_std::{DirStorage, Directory, FsDirectory, MemoryDirectory};

/// A directory; a mount is two new `DirStorage`s (`wal/`, `checkpoints/`) over it.
struct Dir(Arc<dyn Directory>);

impl Medium for Dir {
    type Storage<'a> = DirStorage;
    fn mount(&mut self) -> (DirStorage, DirStorage) {
        (
            DirStorage::segments(self.0.clone(), "wal"),
            DirStorage::segments(self.0.clone(), "checkpoints"),
        )
    }
}

#[test]
fn dir_storage_over_memory_directory() {
    assert_eq!(
        run_all(|| Dir(Arc::new(MemoryDirectory::new()))),
        CHECKS.len()
    );
}

#[test]
fn dir_storage_over_fs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut round = 0;
    let checks = run_all(|| {
        round += 1;
        let root = tmp.path().join(format!("medium-{round}"));
        std::fs::create_dir(&root).unwrap();
        Dir(Arc::new(FsDirectory::new(&root).unwrap()))
    });
    assert_eq!(checks, CHECKS.len());
}
