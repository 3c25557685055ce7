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
