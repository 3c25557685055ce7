//! Helpers shared by the integration tests: the real binaries (`mkfs.zpmfs`, `zus`,
//! `mount.fuse.zpmfs`, as cargo built them), real images in /dev/shm and real FUSE mounts under
//! /tmp, each unique to its test and always cleaned up, even when the test fails.
//!
//! Binaries come from the cargo target directory of the profile these tests were built with
//! (`make test` builds them first), or from `$ZPMFS_BIN_DIR`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one command may run before the test fails instead of hanging.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Binaries and tools

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZPMFS_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // This test runs as target/<profile>/deps/<test>-<hash>: the binaries are in target/<profile>.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).expect("test binary lives in target/<profile>/deps").to_path_buf()
}

/// The path of one of the workspace's binaries, named as installed (`mkfs.zpmfs`); cargo builds
/// names with dots as `mkfs-zpmfs` / `mount_fuse_zpmfs`, so those are tried too.
pub fn bin(name: &str) -> PathBuf {
    let dir = bin_dir();
    let candidates = [name.to_string(), name.replace('.', "-"), name.replace('.', "_")];
    for c in &candidates {
        let p = dir.join(c);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "binary {name} not found in {} (tried {}): build the workspace first with \
         `cargo build --workspace --bins` (`make test` does), or set ZPMFS_BIN_DIR",
        dir.display(),
        candidates.join(", ")
    );
}

/// Fail (never skip) when a program a test needs is not installed.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed, and this test needs it: run `make deps` (or `.ci/run`, which \
         installs the test packages), or apt-get install the package that provides {tool}"
    );
}

// ---------------------------------------------------------------------------------------------
// Running commands

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub shown: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// stdout and stderr together, for looking for a message.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    /// Panic with everything it printed unless it exited 0.
    #[track_caller]
    pub fn ok(self) -> Output {
        assert!(
            self.success(),
            "`{}` failed ({}):\n--- stdout\n{}--- stderr\n{}",
            self.shown,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
    /// Panic unless it exited non-zero.
    #[track_caller]
    pub fn fails(self) -> Output {
        assert!(
            !self.success(),
            "`{}` succeeded but should have failed:\n--- stdout\n{}--- stderr\n{}",
            self.shown,
            self.stdout,
            self.stderr
        );
        self
    }
    /// Panic unless stdout+stderr contains one of `words` (case-insensitive).
    #[track_caller]
    pub fn says_one_of(&self, words: &[&str]) -> &Output {
        let text = self.text().to_lowercase();
        assert!(
            words.iter().any(|w| text.contains(&w.to_lowercase())),
            "`{}` should name the problem (one of {words:?}) but said:\n{}",
            self.shown,
            self.text()
        );
        self
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: "zpmfs-test-<what>-<pid>-<n>".
pub fn unique(what: &str) -> String {
    format!("zpmfs-test-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Run a command to completion (at most [`COMMAND_TIMEOUT`]). Output goes to files, not pipes,
/// so a daemon that keeps inherited descriptors open cannot make us wait for it.
pub fn run(cmd: &mut Command) -> Output {
    run_timeout(cmd, COMMAND_TIMEOUT)
}

pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    );
    let out_path = std::env::temp_dir().join(unique("stdout"));
    let err_path = std::env::temp_dir().join(unique("stderr"));
    let out_file = fs::File::create(&out_path).expect("create stdout file");
    let err_file = fs::File::create(&err_path).expect("create stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{shown}`: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = fs::read_to_string(&out_path).unwrap_or_default();
            let stderr = fs::read_to_string(&err_path).unwrap_or_default();
            let _ = fs::remove_file(&out_path);
            let _ = fs::remove_file(&err_path);
            panic!("`{shown}` did not finish in {timeout:?}:\n--- stdout\n{stdout}--- stderr\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&fs::read(&out_path).unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&err_path).unwrap_or_default()).into_owned();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    Output { status, stdout, stderr, shown }
}

/// Run a bash script in `dir` with `set -euo pipefail`; panic with its output unless it succeeds.
#[track_caller]
pub fn sh(dir: &Path, script: &str) -> String {
    let out =
        run(Command::new("bash").arg("-c").arg(format!("set -euo pipefail\n{script}")).current_dir(dir));
    assert!(
        out.success(),
        "script failed ({}) in {}:\n{script}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        dir.display(),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// The sha256 of a file, by sha256sum.
pub fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path)).ok();
    out.stdout.split_whitespace().next().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// Images, mounts

/// The size most tests format.
pub const DEFAULT_IMAGE_SIZE: &str = "128M";

/// `mkfs.zpmfs ARGS...`
pub fn mkfs(args: &[&OsStr]) -> Output {
    run(Command::new(bin("mkfs.zpmfs")).args(args))
}

/// Mounting needs root and /dev/fuse: say so rather than fail obscurely.
pub fn require_root_and_fuse() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the integration tests mount filesystems: run them as root");
    assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing: load the fuse module (modprobe fuse)");
}

/// A file in /dev/shm removed when dropped (after the mounts declared later, which drop first).
pub struct ScratchFile {
    pub path: PathBuf,
}

impl ScratchFile {
    pub fn new(what: &str) -> ScratchFile {
        ScratchFile { path: PathBuf::from("/dev/shm").join(format!("{}.img", unique(what))) }
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A directory (under /tmp or /dev/shm) removed with its contents when dropped.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(what: &str) -> ScratchDir {
        Self::under(&std::env::temp_dir(), what)
    }
    pub fn under(parent: &Path, what: &str) -> ScratchDir {
        let path = parent.join(unique(what));
        fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir { path }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // A test that expected a mount here to fail may have got one: never leave it behind.
        if is_mount_point(&self.path) {
            let _ = run_timeout(Command::new("umount").arg("-l").arg(&self.path), Duration::from_secs(30));
        }
        if !is_mount_point(&self.path) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether `path` is a mount point now (from /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mount_entry(&canonical).is_some()
}

/// The (fstype, source) of the mount at `mount_point`, the topmost if several.
pub fn mount_entry(mount_point: &Path) -> Option<(String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let wanted = mount_point.to_string_lossy().replace(' ', "\\040");
    text.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let dash = fields.iter().position(|f| *f == "-")?;
        if *fields.get(4)? != wanted {
            return None;
        }
        Some((fields.get(dash + 1)?.to_string(), fields.get(dash + 2)?.to_string()))
    })
}

/// The pids of zus processes serving `mount_point` (found by their command line).
pub fn zus_pids(mount_point: &Path) -> Vec<u32> {
    let needle = mount_point.as_os_str().as_bytes();
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else { return pids };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let exe = fs::read_link(entry.path().join("exe")).unwrap_or_default();
        let exe_name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(exe_name == "zus" || exe_name.starts_with("zus ")) {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|arg| arg == needle) {
            pids.push(pid);
        }
    }
    pids
}

fn kill9(pid: u32) {
    // SAFETY: kill(2) with a pid we found and SIGKILL touches no memory of ours.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// The FUSE channel the suite is asked to mount with (`ZPMFS_FUSE_CHANNEL`), if any.
pub fn fuse_channel_from_env() -> Option<String> {
    std::env::var("ZPMFS_FUSE_CHANNEL").ok().filter(|c| !c.is_empty())
}

/// The kernel's switch for FUSE over io_uring (Linux 6.14+).
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Whether FUSE over io_uring is on, switching it on when it is off and we may (root); `Err`
/// says why it cannot be had, for a test to print when it skips.
pub fn ensure_fuse_uring() -> Result<(), String> {
    match fs::read_to_string(ENABLE_URING) {
        Ok(v) if v.trim() == "Y" => Ok(()),
        Ok(_) => {
            fs::write(ENABLE_URING, "Y").map_err(|e| format!("{ENABLE_URING} is N and cannot be set: {e}"))
        }
        Err(_) => Err(format!("this kernel has no FUSE over io_uring ({ENABLE_URING} missing; Linux 6.14+)")),
    }
}

/// `zus status MNT` of a running zus.
pub fn zus_status(mnt: &Path) -> String {
    run(Command::new(bin("zus")).arg("status").arg(mnt)).ok().text()
}

/// A number in a `zus status` report (`key=N`), 0 when absent.
pub fn status_number(report: &str, key: &str) -> u64 {
    let prefix = format!("{key}=");
    report.split_whitespace().find_map(|w| w.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A zpmfs image in /dev/shm and a mount point under /tmp. Dropping it unmounts (umount, then
/// umount -l), stops the server (waits, then SIGKILL), removes the mount point and the image.
pub struct TestFs {
    pub image: PathBuf,
    pub mnt: PathBuf,
}

impl TestFs {
    /// Format a fresh image of [`DEFAULT_IMAGE_SIZE`] and mount it.
    pub fn new(what: &str) -> TestFs {
        Self::with_size(what, DEFAULT_IMAGE_SIZE)
    }

    pub fn with_size(what: &str, size: &str) -> TestFs {
        let fs = Self::formatted(what, size);
        fs.mount();
        fs
    }

    /// Format a fresh image; don't mount it.
    pub fn formatted(what: &str, size: &str) -> TestFs {
        let fs = Self::unformatted(what);
        mkfs(&["-q".as_ref(), "-s".as_ref(), size.as_ref(), fs.image.as_os_str()]).ok();
        fs
    }

    /// Names only: no image file yet, an empty mount point.
    pub fn unformatted(what: &str) -> TestFs {
        require_root_and_fuse();
        let name = unique(what);
        let image = PathBuf::from("/dev/shm").join(format!("{name}.img"));
        let mnt = std::env::temp_dir().join(format!("{name}.mnt"));
        fs::create_dir_all(&mnt).expect("create mount point");
        TestFs { image, mnt }
    }

    /// `zus mount [extra...] IMAGE MNT`, whatever the result. With `ZPMFS_FUSE_CHANNEL` set
    /// (auto, uring, dev), the mount uses that FUSE channel (`-o fuse_channel=`), so that the
    /// whole suite can run over either channel.
    pub fn try_mount(&self, extra: &[&str]) -> Output {
        let mut cmd = Command::new(bin("zus"));
        cmd.arg("mount");
        if let Some(channel) = fuse_channel_from_env() {
            cmd.arg("-o").arg(format!("fuse_channel={channel}"));
        }
        run(cmd.args(extra).arg(&self.image).arg(&self.mnt))
    }

    /// Mount, and panic unless it worked.
    #[track_caller]
    pub fn mount(&self) {
        let out = self.try_mount(&[]);
        assert!(
            out.success() && is_mount_point(&self.mnt),
            "mount of {} on {} failed ({}; mounted: {}):\n{}",
            self.image.display(),
            self.mnt.display(),
            out.status,
            is_mount_point(&self.mnt),
            out.text()
        );
    }

    /// `umount MNT`, then wait for its zus to exit (it marks the image clean first).
    #[track_caller]
    pub fn unmount(&self) {
        run(Command::new("umount").arg(&self.mnt)).ok();
        assert!(!is_mount_point(&self.mnt), "{} still mounted after umount", self.mnt.display());
        self.wait_for_server_exit(Duration::from_secs(30));
        let left = zus_pids(&self.mnt);
        assert!(left.is_empty(), "zus {left:?} still running 30 s after umount {}", self.mnt.display());
    }

    /// Wait until no zus serves this mount point any more.
    pub fn wait_for_server_exit(&self, timeout: Duration) {
        let start = Instant::now();
        while !zus_pids(&self.mnt).is_empty() && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL every zus serving this mount; returns how many there were.
    pub fn kill_server(&self) -> usize {
        let pids = zus_pids(&self.mnt);
        for pid in &pids {
            kill9(*pid);
        }
        self.wait_for_server_exit(Duration::from_secs(10));
        pids.len()
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// statvfs of the mount.
    pub fn statvfs(&self) -> libc::statvfs {
        statvfs(&self.mnt)
    }

    /// Everything a clean-up must do, never panicking.
    fn cleanup(&self) {
        for _ in 0..3 {
            if !is_mount_point(&self.mnt) {
                break;
            }
            let out = run_timeout(Command::new("umount").arg(&self.mnt), Duration::from_secs(30));
            if !out.success() {
                let _ = run_timeout(Command::new("umount").arg("-l").arg(&self.mnt), Duration::from_secs(30));
            }
        }
        self.wait_for_server_exit(Duration::from_secs(10));
        for pid in zus_pids(&self.mnt) {
            kill9(pid);
        }
        self.wait_for_server_exit(Duration::from_secs(5));
        if !is_mount_point(&self.mnt) {
            let _ = fs::remove_dir_all(&self.mnt);
        }
        let _ = fs::remove_file(&self.image);
    }
}

impl Drop for TestFs {
    fn drop(&mut self) {
        // A panic inside a panic aborts and loses the first message: catch our own.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.cleanup()));
    }
}

pub fn statvfs(path: &Path) -> libc::statvfs {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}: {}", path.display(), std::io::Error::last_os_error());
    st
}

// ---------------------------------------------------------------------------------------------
// Trees: generate, describe, compare

/// A small deterministic pseudo-random generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Sizes every generated tree includes, cycled through; the rest are random up to 16 KiB.
pub const EDGE_SIZES: [usize; 8] = [0, 1, 4095, 4096, 4097, 8191, 65536, 100 * 1024];

/// Write a tree of `files` regular files under `root` (which must exist): nested directories,
/// sizes covering [`EDGE_SIZES`], varied modes and past mtimes, a few symlinks, hard links,
/// empty directories and unusual names.
pub fn make_tree(root: &Path, files: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let modes = [0o644, 0o600, 0o755, 0o400, 0o664];
    let mut dirs = vec![root.to_path_buf()];
    for a in 0..10 {
        let top = root.join(format!("dir{a}"));
        fs::create_dir(&top).unwrap();
        for b in 0..8 {
            let sub = top.join(format!("sub{b}"));
            fs::create_dir(&sub).unwrap();
            dirs.push(sub);
        }
        dirs.push(top);
    }
    let deep = root.join("d/e/e/p/e/r/still/deeper");
    fs::create_dir_all(&deep).unwrap();
    dirs.push(deep);
    for i in 0..files {
        let dir = &dirs[i % dirs.len()];
        let size =
            if i % 7 == 0 { EDGE_SIZES[(i / 7) % EDGE_SIZES.len()] } else { rng.below(16 * 1024) as usize };
        let path = dir.join(format!("file-{i:05}.dat"));
        fs::write(&path, rng.bytes(size)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(modes[i % modes.len()])).unwrap();
        let mtime = std::time::UNIX_EPOCH
            + Duration::new(1_500_000_000 + rng.below(100_000_000), rng.below(1_000_000_000) as u32);
        set_mtime(&path, mtime);
    }
    fs::write(root.join("name with spaces.txt"), b"spaces\n").unwrap();
    fs::write(root.join("ünïcødé-ファイル.txt"), "unicode\n").unwrap();
    fs::write(root.join("x".repeat(255)), b"longest name\n").unwrap();
    for k in 0..10 {
        std::os::unix::fs::symlink(
            format!("dir{k}/sub0/file-{:05}.dat", k * 89 + 1),
            root.join(format!("link{k}")),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("dir3/sub4", root.join("dirlink")).unwrap();
    for k in 0..5 {
        fs::hard_link(root.join("name with spaces.txt"), root.join(format!("dir{k}/hardlink{k}.txt")))
            .unwrap();
    }
    for k in 0..3 {
        fs::create_dir(root.join(format!("empty{k}"))).unwrap();
    }
    // Directory mtimes last, so creating their contents does not move them.
    for (n, dir) in dirs.iter().enumerate().skip(1) {
        let t = std::time::UNIX_EPOCH + Duration::new(1_400_000_000 + n as u64 * 1000, 123_456_789);
        set_mtime(dir, t);
    }
}

/// Set a directory's (or file's) mtime without opening it for writing.
pub fn set_mtime(path: &Path, t: std::time::SystemTime) {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long },
    ];
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid C string and `times` holds the two timespecs utimensat reads.
    let rc =
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(rc, 0, "utimensat {}: {}", path.display(), std::io::Error::last_os_error());
}

/// What a user compares between two trees, per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { mode: u32, uid: u32, gid: u32, size: u64, mtime: (i64, i64), nlink: u64, sha256: String },
    Dir { mode: u32, uid: u32, gid: u32, mtime: (i64, i64) },
    Symlink { target: PathBuf },
    Other { mode: u32 },
}

/// Every entry under `root` (relative path -> entry); file contents hashed with sha256sum.
pub fn manifest(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let hashes = hash_tree(root);
    let mut out = BTreeMap::new();
    walk(root, root, &hashes, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, hashes: &BTreeMap<PathBuf, String>, out: &mut BTreeMap<PathBuf, Entry>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        .map(|e| e.expect("readdir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let ft = meta.file_type();
        let entry = if ft.is_symlink() {
            Entry::Symlink { target: fs::read_link(&path).unwrap() }
        } else if ft.is_dir() {
            walk(root, &path, hashes, out);
            Entry::Dir {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            }
        } else if ft.is_file() {
            Entry::File {
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                nlink: meta.nlink(),
                sha256: hashes
                    .get(&rel)
                    .cloned()
                    .unwrap_or_else(|| panic!("no sha256 for {}", rel.display())),
            }
        } else {
            Entry::Other { mode: meta.mode() }
        };
        out.insert(rel, entry);
    }
}

/// sha256sum of every regular file under `root`, in one pass of find | xargs.
fn hash_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let text = sh(root, "find . -type f -print0 | xargs -0 -r sha256sum");
    text.lines()
        .filter_map(|line| {
            let (hash, name) = line.split_once("  ")?;
            Some((PathBuf::from(name.strip_prefix("./").unwrap_or(name)), hash.to_string()))
        })
        .collect()
}

/// Panic naming the first differences between two manifests.
#[track_caller]
pub fn assert_same_tree(expected: &BTreeMap<PathBuf, Entry>, got: &BTreeMap<PathBuf, Entry>) {
    let mut problems = Vec::new();
    for (path, e) in expected {
        match got.get(path) {
            None => problems.push(format!("missing: {}", path.display())),
            Some(g) if g != e => {
                problems.push(format!("differs: {}\n  expected {e:?}\n  got      {g:?}", path.display()))
            }
            _ => {}
        }
    }
    for path in got.keys().filter(|p| !expected.contains_key(*p)) {
        problems.push(format!("unexpected: {}", path.display()));
    }
    assert!(
        problems.is_empty(),
        "{} of {} entries differ; the first:\n{}",
        problems.len(),
        expected.len(),
        problems.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Compare file contents, reporting lengths and the first differing offset (not megabytes of
/// bytes).
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    let show = |v: &[u8]| v[first.min(v.len())..(first + 16).min(v.len())].to_vec();
    panic!(
        "{what}: contents differ: got {} bytes, want {}; first difference at offset {first}: got {:?}..., want {:?}...",
        got.len(),
        want.len(),
        show(got),
        show(want)
    );
}

/// Append a line to a file outside the mount and flush it (progress records of a writer).
pub fn append_line(path: &Path, line: &str) {
    let mut f = fs::OpenOptions::new().create(true).append(true).open(path).expect("open side file");
    writeln!(f, "{line}").expect("write side file");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree helpers themselves, on tmpfs: cp -a keeps everything they compare, and a change
    /// to any file is seen.
    #[test]
    fn tree_helpers_see_what_cp_a_keeps_and_what_changes() {
        let src = ScratchDir::under(Path::new("/dev/shm"), "self-src");
        let dst = ScratchDir::under(Path::new("/dev/shm"), "self-dst");
        make_tree(&src.path, 300, 42);
        let expected = manifest(&src.path);
        run(Command::new("cp").arg("-a").arg(&src.path).arg(dst.path.join("c"))).ok();
        assert_same_tree(&expected, &manifest(&dst.path.join("c")));
        fs::write(dst.path.join("c/dir0/sub0/file-00001.dat"), b"changed").unwrap();
        let changed =
            std::panic::catch_unwind(|| assert_same_tree(&expected, &manifest(&dst.path.join("c"))));
        assert!(changed.is_err(), "a changed file is noticed");
    }

    #[test]
    fn commands_report_status_and_output() {
        let out = run(Command::new("sh").arg("-c").arg("echo out; echo err >&2; exit 3"));
        assert!(!out.success());
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));
        out.says_one_of(&["ERR"]);
        assert!(std::panic::catch_unwind(|| require_tool("no-such-tool-zpmfs")).is_err());
    }
}
