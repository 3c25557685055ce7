//! A full filesystem over a real mount: dd and write(2) stop with ENOSPC, creates too, files
//! written before are intact (now, and after unmount and mount), rm gives the space back, and
//! fsck.zpmfs -n finds the image clean with the used blocks statvfs reported.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use zpmfs_tests::*;

const ENOSPC: i32 = 28;

/// Blocks in use as statvfs counts them.
fn used(t: &TestFs) -> u64 {
    let st = t.statvfs();
    st.f_blocks - st.f_bfree
}

/// Unmount; `fsck.zpmfs -n -f` says the image is clean and counts `used` blocks; mount again.
#[track_caller]
fn unmount_fsck_mount(t: &TestFs, used: u64) {
    t.unmount();
    let out = run(Command::new(bin("fsck.zpmfs")).args(["-n", "-f"]).arg(&t.image)).ok();
    let summary = out.stdout.lines().last().unwrap_or_default().to_string();
    assert!(summary.contains(" 0 problem(s)"), "fsck.zpmfs -n -f:\n{}", out.text());
    assert!(summary.contains(&format!(" {used}/")), "statvfs said {used} blocks used; fsck: {summary}");
    t.mount();
}

/// statvfs once `ok` accepts it, or after 5 s: the kernel tells zus that an unlinked inode is
/// no longer in use (FORGET) just after unlink returns, and only then are its blocks freed.
fn statvfs_when(t: &TestFs, ok: impl Fn(&libc::statvfs) -> bool) -> libc::statvfs {
    let start = std::time::Instant::now();
    loop {
        let st = t.statvfs();
        if ok(&st) || start.elapsed() > std::time::Duration::from_secs(5) {
            return st;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Append `chunk`-sized writes of `byte` until ENOSPC; returns the bytes write(2) accepted.
fn write_until_enospc(path: &Path, byte: u8, chunk: usize) -> u64 {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    let buf = vec![byte; chunk];
    let mut done = 0u64;
    loop {
        match f.write(&buf) {
            Ok(n) => done += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(ENOSPC), "{}: {e}", path.display());
                return done;
            }
        }
    }
}

#[test]
fn full_filesystem_gives_enospc_keeps_files_and_frees_space_on_rm() {
    let t = TestFs::with_size("full", "32M");
    fs::create_dir(t.path("keep")).unwrap();
    make_tree(&t.path("keep"), 150, 11);
    let kept = manifest(&t.path("keep"));
    let start = t.statvfs();

    // dd stops with the message users know.
    let out = run(Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "status=none"])
        .arg(format!("of={}", t.path("fill").display())));
    out.fails().says_one_of(&["No space left on device"]);
    // write(2) and create(2) on a full filesystem say ENOSPC too.
    let more = write_until_enospc(&t.path("more"), 0x5a, 4096);
    let mut made = 0;
    let err = loop {
        match fs::File::create(t.path(&format!("empty-{made}"))) {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(ENOSPC), "create on a full filesystem: {err}");
    let st = t.statvfs();
    assert!(st.f_bavail < 4, "{} blocks still available after ENOSPC", st.f_bavail);
    let filled = fs::metadata(t.path("fill")).unwrap().len();
    assert!(filled > 16 << 20, "dd wrote only {filled} bytes into 32 MiB");
    eprintln!("32 MiB: dd wrote {filled} bytes, write(2) {more} more, {made} creates, then ENOSPC");
    assert_eq!(fs::metadata(t.path("more")).unwrap().len(), more);
    assert_same_tree(&kept, &manifest(&t.path("keep")));
    let full_used = used(&t);

    unmount_fsck_mount(&t, full_used);
    assert_same_tree(&kept, &manifest(&t.path("keep")));
    assert_eq!(fs::metadata(t.path("fill")).unwrap().len(), filled);
    sh(&t.mnt, "test \"$(tr -d '\\0' < fill | wc -c)\" = 0 && test \"$(tr -d Z < more | wc -c)\" = 0");

    // rm on the full filesystem works and gives the space back.
    // -f: when the data writes took the last block an inode table could grow into, the first
    // create already fails, and no empty-* file exists (1 run in 16 of CI's suite).
    sh(&t.mnt, "rm -f fill more empty-*");
    let inode_tables = made as u64 / 32 + 8;
    let st = statvfs_when(&t, |st| st.f_bfree + inode_tables >= start.f_bfree);
    assert!(
        st.f_bfree + inode_tables >= start.f_bfree,
        "free blocks: {} at the start, {} after rm",
        start.f_bfree,
        st.f_bfree
    );
    let freed_used = used(&t);
    unmount_fsck_mount(&t, freed_used);
    assert_same_tree(&kept, &manifest(&t.path("keep")));
    // The space is there to fill again.
    sh(&t.mnt, "dd if=/dev/zero of=again bs=1M count=16 status=none");
}

#[test]
fn writers_racing_for_the_last_blocks_over_fuse_lose_nothing() {
    let t = TestFs::with_size("full-race", "32M");
    let writers: Vec<_> = (0..4u8)
        .map(|i| {
            let path = t.path(&format!("w{i}"));
            std::thread::spawn(move || write_until_enospc(&path, b'a' + i, 4096 * (1 + i as usize)))
        })
        .collect();
    let accepted: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(t.statvfs().f_bavail < 8, "{} blocks still available", t.statvfs().f_bavail);
    let check = |t: &TestFs| {
        for (i, n) in accepted.iter().enumerate() {
            let data = fs::read(t.path(&format!("w{i}"))).unwrap();
            // A write cut short by ENOSPC may have landed in part: never more than was asked.
            assert!(data.len() as u64 >= *n, "w{i}: {} bytes, write(2) accepted {n}", data.len());
            assert!(data.len() as u64 <= n + 4096 * 4, "w{i}: {} bytes, write(2) accepted {n}", data.len());
            assert!(data.iter().all(|&b| b == b'a' + i as u8), "w{i}: foreign bytes");
        }
    };
    check(&t);
    let u = used(&t);
    unmount_fsck_mount(&t, u);
    check(&t);
    sh(&t.mnt, "rm w0 w1 w2 w3");
    let st = statvfs_when(&t, |st| st.f_bavail > 7000);
    assert!(st.f_bavail > 7000, "after rm only {} blocks available", st.f_bavail);
}
