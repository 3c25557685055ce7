//! Going to the background only once the mount is ready.
//!
//! zus forks first, while it is still single-threaded; the child mounts and serves, and the
//! parent waits on a pipe for the child's verdict and exits with it. So whoever started
//! `zus mount` (mount(8), a script, a test) gets exit status 0 only when the mount is usable,
//! and the error message and a non-zero status otherwise.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::unistd::ForkResult;

/// Which side of the fork this is.
pub enum Forked {
    /// The caller's process: exit with this status.
    Parent(i32),
    /// The server: report through the pipe once the mount is ready or has failed.
    Child(ReadyPipe),
}

/// The child's end of the readiness pipe.
pub struct ReadyPipe(File);

impl ReadyPipe {
    /// The mount is ready: the parent exits 0.
    pub fn ready(mut self) {
        let _ = self.0.write_all(&[0]);
    }
    /// The mount failed (the message has been printed): the parent exits 1.
    pub fn failed(mut self) {
        let _ = self.0.write_all(&[1]);
    }
}

fn thread_count() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// Fork. The parent blocks until the child reports, then returns its exit status.
#[allow(unsafe_code)]
pub fn fork_and_wait() -> Result<Forked, String> {
    if thread_count() != Some(1) {
        return Err("cannot go to the background: the process already runs threads".into());
    }
    let (read_end, write_end): (OwnedFd, OwnedFd) =
        nix::unistd::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    // SAFETY: the process has exactly one thread (checked just above), so the child is a
    // complete copy of it and may go on to run any code, not just async-signal-safe calls.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(format!("cannot fork: {e}")),
        Ok(ForkResult::Parent { .. }) => {
            drop(write_end);
            let mut verdict = [0u8; 1];
            match File::from(read_end).read_exact(&mut verdict) {
                Ok(()) => Ok(Forked::Parent(i32::from(verdict[0]))),
                Err(_) => {
                    eprintln!("zus: the server exited before the mount was ready");
                    Ok(Forked::Parent(1))
                }
            }
        }
        Ok(ForkResult::Child) => {
            drop(read_end);
            // A session of its own: no controlling terminal, no SIGHUP when it closes.
            let _ = nix::unistd::setsid();
            Ok(Forked::Child(ReadyPipe(File::from(write_end))))
        }
    }
}

/// Point standard input, output and error at /dev/null, and leave the caller's directory.
pub fn detach_stdio() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let _ = nix::unistd::chdir("/");
}
