//! mkfs.zpmfs as a user runs it: what it refuses, what it prints, what it writes.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use zpmfs_tests::*;

fn mkfs_args(args: &[&str], path: &Path) -> Output {
    run(Command::new(bin("mkfs.zpmfs")).args(args).arg(path))
}

/// A zero-filled file of `size` bytes.
fn zero_file(path: &Path, size: u64) {
    fs::File::create(path).unwrap().set_len(size).unwrap();
}

#[test]
fn s_creates_the_image_and_prints_size_uuid_label() {
    let img = ScratchFile::new("mkfs-create");
    let uuid = "3f2b0c6e-5d41-4c1a-9e6f-0123456789ab";
    let out = mkfs_args(&["-s", "64M", "-L", "my data", "-U", uuid], &img.path).ok();
    assert_eq!(fs::metadata(&img.path).unwrap().len(), 64 << 20, "-s 64M makes a 64 MiB file");
    let text = out.stdout.to_lowercase();
    assert!(text.contains(uuid), "the UUID given with -U is printed:\n{}", out.stdout);
    assert!(out.stdout.contains("my data"), "the label is printed:\n{}", out.stdout);
    assert!(
        out.stdout.contains("67108864") || out.stdout.contains("64.00 MiB"),
        "the size is printed:\n{}",
        out.stdout
    );
    assert!(text.contains("blocks"), "the block count is printed:\n{}", out.stdout);
    // What was written is a zpmfs: a second mkfs recognises it.
    mkfs_args(&[], &img.path).fails().says_one_of(&["already contains a zpmfs"]);
}

#[test]
fn random_uuids_differ_between_formats() {
    let a = ScratchFile::new("mkfs-uuid-a");
    let b = ScratchFile::new("mkfs-uuid-b");
    let uuid_of = |out: &Output| {
        out.stdout
            .lines()
            .find(|l| l.contains("UUID"))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    let ua = uuid_of(&mkfs_args(&["-s", "16M"], &a.path).ok()).expect("a UUID line");
    let ub = uuid_of(&mkfs_args(&["-s", "16M"], &b.path).ok()).expect("a UUID line");
    assert_ne!(ua, ub);
    assert_eq!(ua.len(), 36, "UUID printed as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx: {ua}");
}

#[test]
fn quiet_prints_nothing() {
    let img = ScratchFile::new("mkfs-quiet");
    let out = mkfs_args(&["-q", "-s", "32M"], &img.path).ok();
    assert_eq!(out.stdout, "", "-q prints nothing on success");
}

#[test]
fn refuses_an_existing_zpmfs_without_f() {
    let img = ScratchFile::new("mkfs-again");
    mkfs_args(&["-q", "-s", "32M", "-L", "first"], &img.path).ok();
    let before = sha256(&img.path);
    let out = mkfs_args(&["-L", "second"], &img.path).fails();
    out.says_one_of(&["already contains a zpmfs filesystem"]).says_one_of(&["-f"]);
    assert_eq!(sha256(&img.path), before, "a refused mkfs writes nothing");
    let out = mkfs_args(&["-f", "-L", "second"], &img.path).ok();
    assert!(out.stdout.contains("second"), "{}", out.stdout);
    assert_ne!(sha256(&img.path), before, "-f formats again (a new UUID at least)");
}

#[test]
fn refuses_another_filesystem_naming_it() {
    let img = ScratchFile::new("mkfs-ext4");
    zero_file(&img.path, 32 << 20);
    let have_e2fsprogs = run(Command::new("sh").arg("-c").arg("command -v mkfs.ext4")).success();
    if have_e2fsprogs {
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img.path)).ok();
    } else {
        // The ext4 magic with the extents feature, where e2fsprogs is missing.
        let f = fs::OpenOptions::new().write(true).open(&img.path).unwrap();
        f.write_all_at(&[0x53, 0xEF], 1080).unwrap();
        f.write_all_at(&0x40u32.to_le_bytes(), 1024 + 0x60).unwrap();
    }
    let before = sha256(&img.path);
    mkfs_args(&[], &img.path).fails().says_one_of(&["contains an ext4 filesystem"]).says_one_of(&["-f"]);
    assert_eq!(sha256(&img.path), before, "a refused mkfs writes nothing");
    mkfs_args(&["-q", "-f"], &img.path).ok();
    mkfs_args(&[], &img.path).fails().says_one_of(&["already contains a zpmfs"]);
}

#[test]
fn refuses_swap_and_xfs_naming_them() {
    let swap = ScratchFile::new("mkfs-swap");
    zero_file(&swap.path, 32 << 20);
    run(Command::new("mkswap").arg(&swap.path)).ok();
    mkfs_args(&[], &swap.path).fails().says_one_of(&["swap area"]);

    let xfs = ScratchFile::new("mkfs-xfs");
    zero_file(&xfs.path, 32 << 20);
    fs::OpenOptions::new().write(true).open(&xfs.path).unwrap().write_all_at(b"XFSB", 0).unwrap();
    let before = sha256(&xfs.path);
    mkfs_args(&["-s", "64M"], &xfs.path).fails().says_one_of(&["xfs filesystem"]);
    assert_eq!(sha256(&xfs.path), before);
    assert_eq!(fs::metadata(&xfs.path).unwrap().len(), 32 << 20, "a refused -s does not extend the file");
}

#[test]
fn dry_run_writes_nothing() {
    // A new file: not created.
    let new = ScratchFile::new("mkfs-dry-new");
    let out = mkfs_args(&["-n", "-s", "1G", "-L", "dry"], &new.path).ok();
    assert!(!new.path.exists(), "-n must not create {}", new.path.display());
    assert!(out.stdout.to_lowercase().contains("would"), "-n says what it would do:\n{}", out.stdout);
    assert!(out.stdout.contains("1073741824") || out.stdout.contains("1.00 GiB"), "{}", out.stdout);

    // An existing zero file: unchanged, not extended.
    let old = ScratchFile::new("mkfs-dry-old");
    zero_file(&old.path, 32 << 20);
    let before = sha256(&old.path);
    mkfs_args(&["-n", "-s", "64M"], &old.path).ok();
    mkfs_args(&["-n"], &old.path).ok();
    assert_eq!(sha256(&old.path), before);
    assert_eq!(fs::metadata(&old.path).unwrap().len(), 32 << 20);

    // Another filesystem with -n -f: it says it would overwrite, and does not.
    let ext = ScratchFile::new("mkfs-dry-ext");
    zero_file(&ext.path, 32 << 20);
    fs::OpenOptions::new().write(true).open(&ext.path).unwrap().write_all_at(&[0x53, 0xEF], 1080).unwrap();
    let before = sha256(&ext.path);
    let out = mkfs_args(&["-n", "-f"], &ext.path).ok();
    assert!(out.stdout.contains("ext2"), "names what -f would overwrite:\n{}", out.stdout);
    assert_eq!(sha256(&ext.path), before);
}

#[test]
fn too_small_states_the_minimum() {
    let img = ScratchFile::new("mkfs-small");
    mkfs_args(&["-s", "1M"], &img.path)
        .fails()
        .says_one_of(&["too small"])
        .says_one_of(&["16.00 MiB", "16777216"]);
    assert!(!img.path.exists(), "a refused -s creates nothing");

    zero_file(&img.path, 8 << 20);
    let before = sha256(&img.path);
    mkfs_args(&[], &img.path).fails().says_one_of(&["too small"]).says_one_of(&["16.00 MiB", "16777216"]);
    assert_eq!(sha256(&img.path), before);
}

#[test]
fn bad_uuid_and_long_label_are_refused() {
    let img = ScratchFile::new("mkfs-args");
    mkfs_args(&["-s", "32M", "-U", "not-a-uuid"], &img.path).fails().says_one_of(&["invalid UUID"]);
    mkfs_args(&["-s", "32M", "-U", "3f2b0c6e-5d41-4c1a-9e6f-0123456789aZ"], &img.path)
        .fails()
        .says_one_of(&["invalid UUID"]);
    let long = "L".repeat(64);
    mkfs_args(&["-s", "32M", "-L", &long], &img.path).fails().says_one_of(&["too long"]);
    mkfs_args(&["-s", "32M", "-Z"], &img.path).fails().says_one_of(&["unknown option -Z"]);
    mkfs_args(&["-s", "lots"], &img.path).fails().says_one_of(&["invalid size"]);
    assert!(!img.path.exists(), "refused arguments create nothing");
}

#[test]
fn unusable_paths_get_clear_errors() {
    let missing = Path::new("/dev/shm/zpmfs-test-no-such-dir/none.img");
    mkfs_args(&[], missing).fails().says_one_of(&["No such file or directory"]);
    mkfs_args(&["-s", "32M"], missing).fails().says_one_of(&["cannot create", "No such file or directory"]);
    let dir = ScratchDir::new("mkfs-dir");
    mkfs_args(&[], &dir.path).fails().says_one_of(&["is a directory"]);
    mkfs_args(&["-s", "32M"], Path::new("/dev/null")).fails().says_one_of(&["is a device"]);
}

#[test]
fn refuses_a_mounted_image_even_with_f() {
    let t = TestFs::new("mkfs-mounted");
    fs::write(t.path("keep.txt"), b"still here\n").unwrap();
    let out = mkfs_args(&["-f"], &t.image).fails();
    out.says_one_of(&["in use", "mounted"]);
    assert!(out.text().contains(&*t.image.to_string_lossy()), "names the image:\n{}", out.text());
    assert_eq!(fs::read(t.path("keep.txt")).unwrap(), b"still here\n", "the mounted fs is untouched");
}

#[test]
fn s_extends_a_smaller_image_and_refuses_to_shrink_one() {
    let img = ScratchFile::new("mkfs-extend");
    zero_file(&img.path, 16 << 20);
    let out = mkfs_args(&["-n", "-s", "48M"], &img.path).ok();
    assert!(out.stdout.contains("extend"), "-n says it would extend the file:\n{}", out.stdout);
    assert_eq!(fs::metadata(&img.path).unwrap().len(), 16 << 20);
    mkfs_args(&["-q", "-s", "48M"], &img.path).ok();
    assert_eq!(fs::metadata(&img.path).unwrap().len(), 48 << 20, "-s extends a smaller image");
    let before = sha256(&img.path);
    mkfs_args(&["-f", "-s", "32M"], &img.path).fails().says_one_of(&["larger than -s"]);
    assert_eq!(sha256(&img.path), before, "a refused shrink writes nothing");
    assert_eq!(fs::metadata(&img.path).unwrap().len(), 48 << 20);
}
