//! File handles (name_to_handle_at / open_by_handle_at, what NFS export and fstests use): a
//! handle opens its file again after the kernel forgot the inode (here: umount and mount), and a
//! handle of a deleted file gives ESTALE, never another file's data.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::Path;

use zpmfs_tests::*;

/// struct file_handle with room for any handle FUSE makes (it uses 8 to 12 bytes).
#[repr(C)]
struct Handle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 64],
}

fn handle_of(path: &Path) -> Handle {
    let mut h = Handle { handle_bytes: 64, handle_type: 0, f_handle: [0; 64] };
    let mut mount_id: i32 = 0;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: the path is a C string and both out-pointers are valid for the call; the kernel
    // writes at most handle_bytes (64) bytes of handle.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            p.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    assert_eq!(rc, 0, "name_to_handle_at({}): {}", path.display(), std::io::Error::last_os_error());
    h
}

/// open_by_handle_at(2) relative to the mount; Err(errno).
fn open_by_handle(mount: &Path, h: &Handle, flags: i32) -> Result<File, i32> {
    let m = File::open(mount).unwrap();
    // SAFETY: `h` is a valid file_handle whose handle_bytes the kernel filled in.
    let fd = unsafe { libc::syscall(libc::SYS_open_by_handle_at, m.as_raw_fd(), h as *const Handle, flags) };
    if fd < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
        Ok(unsafe { File::from_raw_fd(fd as i32) })
    }
}

fn read_all(mut f: File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn handles_survive_remount_and_go_stale_when_the_file_is_deleted() {
    let t = TestFs::new("fhandle");
    fs::create_dir_all(t.path("d/sub")).unwrap();
    fs::write(t.path("d/sub/file"), b"handle me").unwrap();
    fs::write(t.path("doomed"), b"about to go").unwrap();
    let file = handle_of(&t.path("d/sub/file"));
    let dir = handle_of(&t.path("d/sub"));
    let doomed = handle_of(&t.path("doomed"));

    // While the kernel still caches the inodes.
    assert_eq!(read_all(open_by_handle(&t.mnt, &file, libc::O_RDONLY).unwrap()), b"handle me");

    // A fresh mount: the kernel knows none of these inodes and must ask zus for them.
    t.unmount();
    t.mount();
    assert_eq!(
        read_all(open_by_handle(&t.mnt, &file, libc::O_RDONLY).unwrap()),
        b"handle me",
        "a file handle opens the same file after umount and mount"
    );
    let d = open_by_handle(&t.mnt, &dir, libc::O_RDONLY | libc::O_DIRECTORY).expect("directory handle");
    assert!(d.metadata().unwrap().is_dir());
    drop(d);

    fs::remove_file(t.path("doomed")).unwrap();
    // New files may take the freed inode number; the handle must still not open them.
    for i in 0..50 {
        fs::write(t.path(&format!("new{i}")), b"someone else").unwrap();
    }
    assert_eq!(
        open_by_handle(&t.mnt, &doomed, libc::O_RDONLY).err(),
        Some(libc::ESTALE),
        "a deleted file's handle is stale"
    );
    t.unmount();
    t.mount();
    assert_eq!(open_by_handle(&t.mnt, &doomed, libc::O_RDONLY).err(), Some(libc::ESTALE));
}
