//! `mount.fuse.zpmfs`: the helper mount(8) runs for `mount -t fuse.zpmfs DEVICE DIR` and for
//! fstab lines of type fuse.zpmfs. It runs `zus mount -o OPTIONS DEVICE DIR` (the `zus` next to
//! this program, else the one on PATH), which returns once the mount is ready.
//!
//! `-o remount,...` changes the flags of the existing mount (no second server), keeping the
//! flags it does not name. mount(8) drops options that are its defaults (dev, suid, exec)
//! before calling a helper, so a helper-made mount starts from those defaults, as a mount of
//! any other filesystem by root does; `nosuid`/`nodev` given (or added by mount(8) for a
//! `user` mount) still apply.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use nix::mount::MsFlags;
use zus_core::cli::parse_helper;

fn zus_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("zus")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("zus"))
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let helper = match parse_helper(&args) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("mount.fuse.zpmfs: {e}");
            return ExitCode::from(1);
        }
    };
    let opts: Vec<String> = helper.options.iter().map(|o| o.to_string_lossy().into_owned()).collect();
    let words: Vec<&str> = opts.iter().flat_map(|o| o.split(',')).collect();
    if words.contains(&"remount") {
        return remount(&helper.mountpoint, &words);
    }
    let mut helper = helper;
    helper.options.insert(0, "suid,dev".into());
    let zus = zus_program();
    // exec only returns on failure; on success zus's exit status is this program's.
    let err = Command::new(&zus).args(helper.zus_args()).exec();
    eprintln!("mount.fuse.zpmfs: cannot run {}: {err}", zus.display());
    ExitCode::from(1)
}

/// The flags of the mount at `mnt` now, from /proc/self/mountinfo (last match wins: the top
/// of a stack of mounts).
fn current_flags(mnt: &std::path::Path) -> Option<MsFlags> {
    let target = std::fs::canonicalize(mnt).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 5 && std::path::Path::new(f[4]) == target {
            let mut flags = MsFlags::empty();
            for o in f[5].split(',') {
                flags |= match o {
                    "ro" => MsFlags::MS_RDONLY,
                    "nosuid" => MsFlags::MS_NOSUID,
                    "nodev" => MsFlags::MS_NODEV,
                    "noexec" => MsFlags::MS_NOEXEC,
                    "noatime" => MsFlags::MS_NOATIME,
                    "nodiratime" => MsFlags::MS_NODIRATIME,
                    "relatime" => MsFlags::MS_RELATIME,
                    "sync" => MsFlags::MS_SYNCHRONOUS,
                    _ => MsFlags::empty(),
                };
            }
            found = Some(flags);
        }
    }
    found
}

fn remount(mnt: &std::ffi::OsStr, words: &[&str]) -> ExitCode {
    let mnt = std::path::Path::new(mnt);
    let Some(mut flags) = current_flags(mnt) else {
        eprintln!("mount.fuse.zpmfs: {} is not mounted", mnt.display());
        return ExitCode::from(32);
    };
    for w in words {
        match *w {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "suid" => flags &= !MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "dev" => flags &= !MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "exec" => flags &= !MsFlags::MS_NOEXEC,
            _ => {}
        }
    }
    match nix::mount::mount(None::<&str>, mnt, None::<&str>, flags | MsFlags::MS_REMOUNT, None::<&str>) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mount.fuse.zpmfs: remount of {} failed: {}", mnt.display(), e.desc());
            ExitCode::from(32)
        }
    }
}
