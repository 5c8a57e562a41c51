//! The single-writer lock: `Directory::lock_exclusive` on the file system (across
//! directory values, threads and processes), in memory (across clones), through the
//! forwarding wrappers, and the `Ok(None)` default of a user-written directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use durability_std::{
    DirLock, Directory, FailingDirectory, FsDirectory, MemoryDirectory, PersistenceError,
    PersistenceResult,
};

const LOCK: &str = "wal/LOCK";

fn locked<T: std::fmt::Debug>(r: PersistenceResult<T>) -> bool {
    matches!(r, Err(PersistenceError::Locked { .. }))
}

fn take(dir: &dyn Directory, name: &str) -> DirLock {
    dir.lock_exclusive(name)
        .unwrap_or_else(|e| panic!("lock `{name}`: {e}"))
        .expect("this backend has a lock")
}

/// The semantics every locking backend shares. `a` and `b` are two writers on the
/// same data (two values of one root, or two clones).
fn same_name_conflicts(a: &dyn Directory, b: &dyn Directory) {
    let first = take(a, LOCK);
    assert!(locked(b.lock_exclusive(LOCK)));
    // Even the holder's own directory value cannot take it twice.
    assert!(locked(a.lock_exclusive(LOCK)));
    // The same file under another spelling is the same lock.
    assert!(locked(b.lock_exclusive("./wal//LOCK")));
    // Other names are independent.
    let other = take(b, "other/LOCK");
    let top = take(b, "LOCK");
    drop(first);
    let second = take(b, LOCK);
    assert!(locked(a.lock_exclusive(LOCK)));
    drop((second, other, top));
    drop(take(a, LOCK));
}

fn lock_file_is_kept(dir: &dyn Directory) {
    assert!(!dir.exists(LOCK));
    let l = take(dir, LOCK);
    assert!(dir.exists(LOCK), "the lock file is created");
    assert!(dir.exists("wal"), "with its parent directory");
    drop(l);
    assert!(dir.exists(LOCK), "the lock file is never deleted");
    assert_eq!(dir.list_dir("wal").unwrap(), vec!["LOCK"]);
    // Taking it again keeps an existing file (and its content).
    dir.atomic_write(LOCK, b"kept").unwrap();
    drop(take(dir, LOCK));
    let mut content = Vec::new();
    dir.open_file(LOCK)
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    assert_eq!(content, b"kept");
}

fn bad_names(dir: &dyn Directory) {
    for bad in ["../LOCK", "/LOCK", "wal/../../LOCK", "", "wal/", "a\\b"] {
        assert!(
            matches!(
                dir.lock_exclusive(bad),
                Err(PersistenceError::InvalidPath(_))
            ),
            "{bad:?}"
        );
    }
    // A directory is no lock file.
    dir.create_dir_all("adir").unwrap();
    assert!(matches!(
        dir.lock_exclusive("adir"),
        Err(PersistenceError::Io(_))
    ));
}

fn fs_root() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("db");
    (tmp, root)
}

#[test]
fn fs_second_lock_fails_until_the_first_is_dropped() {
    let (_tmp, root) = fs_root();
    let dir = FsDirectory::new(&root).unwrap();
    same_name_conflicts(&dir, &dir);
}

#[test]
fn fs_two_directories_on_one_root_conflict() {
    let (_tmp, root) = fs_root();
    let a = FsDirectory::new(&root).unwrap();
    let b = FsDirectory::new(&root).unwrap();
    same_name_conflicts(&a, &b);
    // Also through trait objects and the other way round.
    let a: Arc<dyn Directory> = Arc::new(a);
    let b: Arc<dyn Directory> = Arc::new(b);
    same_name_conflicts(&*b, &*a);
}

#[test]
fn fs_locked_error_names_the_lock_file() {
    let (_tmp, root) = fs_root();
    let dir = FsDirectory::new(&root).unwrap();
    let _l = take(&dir, LOCK);
    let e = dir.lock_exclusive(LOCK).unwrap_err();
    match &e {
        PersistenceError::Locked { path } => {
            assert_eq!(Path::new(path), root.join("wal").join("LOCK"));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("locked by another writer"), "{msg}");
}

#[test]
fn fs_lock_file_is_created_and_kept() {
    let (_tmp, root) = fs_root();
    let dir = FsDirectory::new(&root).unwrap();
    lock_file_is_kept(&dir);
    assert!(root.join("wal").join("LOCK").is_file());
}

#[test]
fn fs_lock_names_are_checked() {
    let (_tmp, root) = fs_root();
    let dir = FsDirectory::new(&root).unwrap();
    bad_names(&dir);
    assert!(!root.parent().unwrap().join("LOCK").exists());
}

#[test]
fn fs_lock_across_threads() {
    let (_tmp, root) = fs_root();
    let dir = Arc::new(FsDirectory::new(&root).unwrap());
    let held = take(&*dir, LOCK);
    let d = dir.clone();
    let r = std::thread::spawn(move || d.lock_exclusive(LOCK).map(|l| l.is_some()))
        .join()
        .unwrap();
    assert!(locked(r));
    // The lock can move to, and be released by, another thread.
    std::thread::spawn(move || drop(held)).join().unwrap();
    let d = dir.clone();
    let l = std::thread::spawn(move || take(&*d, LOCK)).join().unwrap();
    assert!(locked(dir.lock_exclusive(LOCK)));
    drop(l);
    drop(take(&*dir, LOCK));
}

#[test]
fn dir_lock_is_send_sync_and_debug() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<DirLock>();
    let l = DirLock::new(());
    assert!(format!("{l:?}").starts_with("DirLock"));
}

// --- Another process ----------------------------------------------------------------

/// Set for the child process: the root it locks.
const CHILD_ENV: &str = "DURABILITY_LOCK_TEST_CHILD_ROOT";
/// Name of the test that acts as the lock-holding child.
const CHILD_TEST: &str = "child_process_lock_holder";

/// Not a test of its own: when `CHILD_ENV` is set, this runs as the child of
/// [`spawn_holder`]. It takes the lock, prints "locked", and holds the lock until
/// its stdin is closed (or a minute has passed, so it can never linger).
#[test]
fn child_process_lock_holder() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = FsDirectory::new(root).unwrap();
    let _lock = take(&dir, LOCK);
    let mut out = std::io::stdout();
    writeln!(out, "locked").unwrap();
    out.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(60));
}

/// A child process holding the lock; killed on drop if still running.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary as a child that takes `LOCK` under `root`, and waits until
/// it reports that it holds the lock.
fn spawn_holder(root: &Path) -> Holder {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let holder = Holder(child);
    let mut stdout = BufReader::new(stdout);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("the child exited without taking the lock; its output:\n{seen}");
        }
        seen.push_str(&line);
        // libtest may print "test <name> ... " in front of it on the same line.
        if line.trim_end().ends_with("locked") {
            break;
        }
    }
    // Keep reading, so that the child's later output never fails on a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    holder
}

#[test]
fn fs_lock_held_by_another_process_blocks_us() {
    let (_tmp, root) = fs_root();
    let dir = FsDirectory::new(&root).unwrap();
    let mut holder = spawn_holder(&root);
    assert!(locked(dir.lock_exclusive(LOCK)));
    // Other names are still free.
    drop(take(&dir, "other/LOCK"));

    // Closing its stdin makes the child drop the lock and exit normally.
    drop(holder.0.stdin.take());
    let status = holder.0.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    drop(take(&dir, LOCK));
}

#[test]
fn fs_lock_of_a_killed_process_is_released() {
    let (_tmp, root) = fs_root();
    let dir = FsDirectory::new(&root).unwrap();
    let mut holder = spawn_holder(&root);
    assert!(locked(dir.lock_exclusive(LOCK)));

    // A crash (kill) never leaves a stale lock: the OS releases it with the process.
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();
    drop(take(&dir, LOCK));
    // And we now block a new child: it cannot take the lock and fails.
    let l = take(&dir, LOCK);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("locked by another writer"), "{stderr}");
    drop(l);
}

// --- Memory ---------------------------------------------------------------------------

#[test]
fn memory_clones_share_the_lock() {
    let a = MemoryDirectory::new();
    let b = a.clone();
    same_name_conflicts(&a, &b);
    same_name_conflicts(&a, &a);
    let dyn_b: Arc<dyn Directory> = Arc::new(b);
    same_name_conflicts(&*dyn_b, &a);
}

#[test]
fn memory_locked_error_names_the_canonical_path() {
    let dir = MemoryDirectory::new();
    let _l = take(&dir, LOCK);
    match dir.clone().lock_exclusive("./wal//LOCK") {
        Err(PersistenceError::Locked { path }) => assert_eq!(path, LOCK),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn memory_separate_directories_do_not_conflict() {
    let a = MemoryDirectory::new();
    let b = MemoryDirectory::new();
    let _la = take(&a, LOCK);
    let _lb = take(&b, LOCK);
}

#[test]
fn memory_lock_file_is_created_and_kept() {
    lock_file_is_kept(&MemoryDirectory::new());
}

#[test]
fn memory_lock_names_are_checked() {
    bad_names(&MemoryDirectory::new());
    // Under a file there is no room for a lock file.
    let dir = MemoryDirectory::new();
    dir.atomic_write("f", b"").unwrap();
    assert!(matches!(
        dir.lock_exclusive("f/LOCK"),
        Err(PersistenceError::Io(_))
    ));
}

#[test]
fn memory_lock_outlives_the_directory_value() {
    let dir = MemoryDirectory::new();
    let l = take(&dir.clone(), LOCK);
    assert!(locked(dir.lock_exclusive(LOCK)));
    drop(l);
    drop(take(&dir, LOCK));
}

// --- Wrappers and user directories ----------------------------------------------------

#[test]
fn wrappers_forward_the_lock() {
    let mem = MemoryDirectory::new();
    let boxed: Box<dyn Directory> = Box::new(mem.clone());
    let arc: Arc<dyn Directory> = Arc::new(mem.clone());
    let failing = FailingDirectory::new(arc.clone());
    let by_ref: &dyn Directory = &&mem;

    let held = take(&failing, LOCK);
    assert!(locked(boxed.lock_exclusive(LOCK)));
    assert!(locked(arc.lock_exclusive(LOCK)));
    assert!(locked(by_ref.lock_exclusive(LOCK)));
    assert!(locked(mem.lock_exclusive(LOCK)));
    drop(held);
    drop(take(&boxed, LOCK));

    // FailingDirectory neither counts nor fails the lock.
    failing.fail_all(durability_std::failing::Op::Create);
    drop(take(&failing, "x/LOCK"));
    assert_eq!(failing.counts(durability_std::failing::Op::Create), 0);

    let (_tmp, root) = fs_root();
    let fs: Arc<dyn Directory> = Arc::new(FsDirectory::new(&root).unwrap());
    let failing = FailingDirectory::new(fs.clone());
    let _held = take(&fs, LOCK);
    assert!(locked(failing.lock_exclusive(LOCK)));
}

/// A directory written before `lock_exclusive` existed: only the required methods.
struct UserDir(MemoryDirectory);

impl Directory for UserDir {
    fn create_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.0.create_file(path)
    }
    fn open_file(&self, path: &str) -> PersistenceResult<Box<dyn Read + Send>> {
        self.0.open_file(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.0.exists(path)
    }
    fn delete(&self, path: &str) -> PersistenceResult<()> {
        self.0.delete(path)
    }
    fn atomic_rename(&self, from: &str, to: &str) -> PersistenceResult<()> {
        self.0.atomic_rename(from, to)
    }
    fn create_dir_all(&self, path: &str) -> PersistenceResult<()> {
        self.0.create_dir_all(path)
    }
    fn list_dir(&self, path: &str) -> PersistenceResult<Vec<String>> {
        self.0.list_dir(path)
    }
    fn append_file(&self, path: &str) -> PersistenceResult<Box<dyn Write + Send>> {
        self.0.append_file(path)
    }
    fn atomic_write(&self, path: &str, data: &[u8]) -> PersistenceResult<()> {
        self.0.atomic_write(path, data)
    }
    fn file_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }
}

#[test]
fn user_directory_has_no_lock() {
    let dir = UserDir(MemoryDirectory::new());
    assert!(dir.lock_exclusive(LOCK).unwrap().is_none());
    // No lock means no conflict, and nothing is created.
    assert!(dir.lock_exclusive(LOCK).unwrap().is_none());
    assert!(!dir.exists(LOCK));
    let dyn_dir: Arc<dyn Directory> = Arc::new(dir);
    assert!(dyn_dir.lock_exclusive(LOCK).unwrap().is_none());
    let failing = FailingDirectory::new(dyn_dir);
    assert!(failing.lock_exclusive(LOCK).unwrap().is_none());
}
