//! POSIX ACLs over FUSE, with setfacl/getfacl as a user would: the kernel enforces a named
//! user's entry, the mask limits it, chmod moves the mask, a directory's default ACL is
//! inherited (and then the umask is not applied), and ACLs survive umount and mount.

use std::os::unix::fs::PermissionsExt;

use zpmfs_tests::*;

/// Run `script` as uid/gid 65534 (nobody); true when it succeeds.
fn as_nobody(script: &str) -> bool {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn acls_are_enforced_inherited_and_kept() {
    require_tool("setfacl");
    require_tool("setpriv");
    let t = TestFs::formatted("acl", DEFAULT_IMAGE_SIZE);
    let out = t.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "mount -o allow_other: {}", out.text());
    std::fs::set_permissions(&t.mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = t.path("secret");
    std::fs::write(&f, b"for nobody only\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cat = format!("cat {} >/dev/null", f.display());
    assert!(!as_nobody(&cat), "mode 600 keeps others out");

    sh(&t.mnt, "setfacl -m u:nobody:r secret");
    assert!(as_nobody(&cat), "a named-user entry lets nobody read");
    assert_eq!(mode(&f), 0o640, "the mask shows as the group bits");
    assert!(sh(&t.mnt, "getfacl -cp secret").contains("user:nobody:r--"));

    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!as_nobody(&cat), "chmod g-r sets the mask to none, which masks the named entry");
    assert!(sh(&t.mnt, "getfacl -cp secret").contains("mask::---"));

    // A default ACL: new files and directories inherit it and the umask does not apply.
    sh(&t.mnt, "mkdir shared && setfacl -d -m u:nobody:rwx,g::rx,o::- shared");
    sh(&t.mnt, "umask 077; touch shared/file; mkdir shared/sub");
    assert_eq!(mode(&t.path("shared/file")), 0o660, "mode 666 narrowed by the default ACL, not by umask 077");
    assert_eq!(mode(&t.path("shared/sub")), 0o770);
    assert!(as_nobody(&format!("echo hi > {}", t.path("shared/file").display())), "nobody writes by the ACL");
    let sub = sh(&t.mnt, "getfacl -cp shared/sub");
    assert!(sub.contains("default:user:nobody:rwx"), "a new directory inherits the default ACL:\n{sub}");
    // Without a default ACL the umask applies as usual.
    sh(&t.mnt, "umask 027; touch plain");
    assert_eq!(mode(&t.path("plain")), 0o640);

    // Setting an ACL drops setgid when the caller is not in the file's group (as chmod does).
    let g = t.path("setgid");
    std::fs::write(&g, b"").unwrap();
    std::os::unix::fs::chown(&g, Some(65534), Some(0)).unwrap();
    std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o2755)).unwrap();
    assert!(as_nobody(&format!("setfacl -m u::rwx,g::rwx,o::rwx {}", g.display())));
    assert_eq!(mode(&g), 0o777, "setgid survived an ACL set by a non-member");
    std::fs::set_permissions(&g, std::fs::Permissions::from_mode(0o2755)).unwrap();
    sh(&t.mnt, "setfacl -m u::rwx,g::rwx,o::rwx setgid");
    assert_eq!(mode(&g), 0o2777, "root keeps setgid");

    // Removing the ACL leaves the mode; and everything is still there after umount and mount.
    sh(&t.mnt, "setfacl -m u:nobody:rw plain && setfacl -b plain");
    assert!(!sh(&t.mnt, "getfacl -cp plain").contains("nobody"));
    t.unmount();
    let out = t.try_mount(&["-o", "allow_other"]);
    assert!(out.success(), "mount again: {}", out.text());
    assert!(sh(&t.mnt, "getfacl -cp shared/file").contains("user:nobody:rwx"));
    assert!(sh(&t.mnt, "getfacl -cp shared").contains("default:user:nobody:rwx"));
    assert!(!as_nobody(&cat), "the masked entry still keeps nobody out after mount");
}
