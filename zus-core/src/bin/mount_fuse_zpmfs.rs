//! `mount.fuse.zpmfs`: the helper mount(8) runs for `mount -t fuse.zpmfs DEVICE DIR` and for
//! fstab lines of type fuse.zpmfs. It runs `zus mount -o OPTIONS DEVICE DIR` (the `zus` next to
//! this program, else the one on PATH), which returns once the mount is ready.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

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
    let zus = zus_program();
    // exec only returns on failure; on success zus's exit status is this program's.
    let err = Command::new(&zus).args(helper.zus_args()).exec();
    eprintln!("mount.fuse.zpmfs: cannot run {}: {err}", zus.display());
    ExitCode::from(1)
}
