//! Many threads changing the same directories and files at once: no deadlock, no error other
//! than the expected races (ENOENT, EEXIST, ENOTEMPTY), and a tree that recovery accepts.

mod common;

use std::sync::Arc;

use common::Image;
use pmfs::vfs::*;
use pmfs::Error;

const ME: Caller = Caller { uid: 0, gid: 0, pid: 1 };

fn expected_race(e: &Error) -> bool {
    matches!(e, Error::NotFound | Error::Exists | Error::NotEmpty | Error::NotDir | Error::IsDir)
}

#[test]
fn racing_namespace_and_data_operations_stay_consistent() {
    let img = Image::new("race", 128 << 20);
    let fs = Arc::new(img.mount());
    let dirs: Vec<Ino> =
        (0..3).map(|i| fs.mkdir(ROOT_INO, format!("d{i}").as_bytes(), 0o755, ME).unwrap().ino).collect();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let fs = fs.clone();
            let dirs = dirs.clone();
            std::thread::spawn(move || {
                let mut x = t * 7919 + 1;
                for _ in 0..1500 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let d = dirs[(x >> 33) as usize % dirs.len()];
                    let d2 = dirs[(x >> 40) as usize % dirs.len()];
                    let n = format!("n{}", (x >> 20) % 16);
                    let n2 = format!("n{}", (x >> 24) % 16);
                    let r = match (x >> 50) % 7 {
                        0 => fs.mknod(d, n.as_bytes(), libc::S_IFREG | 0o644, 0, ME).map(|_| ()),
                        1 => fs.mkdir(d, n.as_bytes(), 0o755, ME).map(|_| ()),
                        2 => fs.unlink(d, n.as_bytes()).or_else(|_| fs.rmdir(d, n.as_bytes())),
                        3 => fs.rename(d, n.as_bytes(), d2, n2.as_bytes(), RenameFlags::default()),
                        4 => fs
                            .lookup(d, n.as_bytes())
                            .and_then(|a| fs.link(a.ino, d2, n2.as_bytes()))
                            .map(|_| ()),
                        5 => fs
                            .lookup(d, n.as_bytes())
                            .and_then(|a| fs.write(a.ino, (x >> 8) % 10000, &x.to_le_bytes(), false))
                            .map(|_| ()),
                        _ => fs.readdir(d, 0, 100).map(|_| ()),
                    };
                    if let Err(e) = r {
                        assert!(expected_race(&e) || e == Error::NotPermitted, "unexpected error {e:?}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Every directory entry resolves, and link counts match the entries that name each inode.
    let mut names_per_ino = std::collections::HashMap::<Ino, u32>::new();
    for &d in &dirs {
        for e in fs.readdir(d, 2, 100_000).unwrap() {
            let a = fs.lookup(d, &e.name).unwrap();
            assert_eq!(a.ino, e.ino);
            if a.kind != FileKind::Directory {
                *names_per_ino.entry(a.ino).or_default() += 1;
            } else {
                for sub in fs.readdir(a.ino, 2, 100_000).unwrap() {
                    if sub.kind != FileKind::Directory {
                        *names_per_ino.entry(sub.ino).or_default() += 1;
                    }
                }
            }
        }
    }
    for (ino, n) in &names_per_ino {
        assert_eq!(fs.getattr(*ino).unwrap().nlink, *n, "inode {ino}");
    }
    let free = fs.statfs().unwrap().blocks_free;
    drop(fs); // crash: recovery must accept the tree and find the same free space
    let fs = img.mount();
    assert_eq!(fs.mount_report().orphans_freed, 0);
    assert_eq!(fs.statfs().unwrap().blocks_free, free);
}

/// What the kernel does on a path walk racing with unlink and create of the same name: look
/// the name up, take a reference on the answer (as the FUSE handlers do), use the inode, let
/// go. A held inode must stay the same inode until released, whatever happens to its name.
/// Regression: a lookup that read the old inode's number just before an unlink loaded the
/// slot while a create was reusing it, and cached a second copy of the new inode; the hold
/// landed on that copy, the create's copy replaced it, and the next unlink freed the inode
/// the kernel still held.
#[test]
fn a_held_inode_stays_itself_while_its_name_is_unlinked_and_created_again() {
    let img = Image::new("hold-race", 64 << 20);
    let fs = Arc::new(img.mount());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let (fs, stop) = (fs.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = fs.mknod(ROOT_INO, b"f", libc::S_IFREG | 0o644, 0, ME);
                    let _ = fs.unlink(ROOT_INO, b"f");
                }
            })
        })
        .collect();
    let users: Vec<_> = (0..2)
        .map(|_| {
            let fs = fs.clone();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                let mut held = 0u64;
                // Until enough holds landed (each a lookup that found the file mid-churn), or
                // a bound that only a machine under heavy load reaches.
                while held < 1000 && start.elapsed() < std::time::Duration::from_secs(15) {
                    let a = match fs.lookup(ROOT_INO, b"f") {
                        Ok(a) => a,
                        Err(e) => {
                            assert_eq!(e, Error::NotFound, "lookup of a racing name");
                            continue;
                        }
                    };
                    match fs.hold(a.ino, a.generation, 1) {
                        Ok(()) => {}
                        Err(Error::NotFound) => continue,
                        Err(e) => panic!("hold of a racing name's inode: {e}"),
                    }
                    // Held: unlinks of the name leave it alive, and its number is not reused.
                    for _ in 0..3 {
                        std::thread::yield_now();
                        let now = fs.getattr(a.ino).unwrap_or_else(|e| panic!("held inode {}: {e}", a.ino));
                        assert_eq!(now.generation, a.generation, "held inode {} became another", a.ino);
                    }
                    fs.write(a.ino, 0, b"x", false).unwrap();
                    fs.release(a.ino).unwrap();
                    held += 1;
                }
                held
            })
        })
        .collect();
    let held: u64 = users.into_iter().map(|h| h.join().unwrap()).sum();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.into_iter().for_each(|h| h.join().unwrap());
    assert!(held >= 50, "only {held} lookups found the file in 15 s: the race was not exercised");
    let fs = Arc::try_unwrap(fs).unwrap_or_else(|_| panic!("threads still hold the mount"));
    img.unmount_and_fsck(fs);
}
