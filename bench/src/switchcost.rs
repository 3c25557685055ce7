//! `zbench switch`: what a round trip between two tasks on one CPU costs on this machine, the
//! floor under any transport that hands a call to a server thread and waits for its answer.
//!
//! All on CPU 0, target `switch_floor` (the guest part renames it `guest_switch_floor`):
//! - `syscall`: getppid(2), entering and leaving the kernel (timed in batches of 100);
//! - `pipe_process_rtt`: a one-byte ping-pong over two pipes with a forked process, each hop a
//!   wake-up and a switch of address space, as zuf.ko's hand-over to the zus thread of the
//!   caller's CPU and back;
//! - `pipe_thread_rtt`: the same with a thread of this process (no address-space switch).

use std::time::{Duration, Instant};

use crate::{die, pin_to, report, Args, Lat};

/// Two pipes: [read, write] each.
fn pipes() -> ([libc::c_int; 2], [libc::c_int; 2]) {
    let (mut a, mut b) = ([0; 2], [0; 2]);
    // SAFETY: pipe(2) writes two descriptors into each two-element array.
    if unsafe { libc::pipe(a.as_mut_ptr()) != 0 || libc::pipe(b.as_mut_ptr()) != 0 } {
        die(&format!("pipe: {}", std::io::Error::last_os_error()));
    }
    (a, b)
}

fn close(fd: libc::c_int) {
    // SAFETY: closing a descriptor this module opened and no longer uses.
    unsafe { libc::close(fd) };
}

/// One byte each way; false at EOF or on an error.
fn hop(fd: libc::c_int, write: bool) -> bool {
    let mut c = [b'x'];
    // SAFETY: one byte to or from a live one-byte buffer.
    let n = unsafe {
        if write {
            libc::write(fd, c.as_ptr().cast(), 1)
        } else {
            libc::read(fd, c.as_mut_ptr().cast(), 1)
        }
    };
    n == 1
}

/// The echoing side: read a byte from `input`, write it to `output`, until EOF.
fn echo(input: libc::c_int, output: libc::c_int) {
    while hop(input, false) && hop(output, true) {}
}

/// Round trips to an echoing task for `secs`, each timed.
fn ping(to: libc::c_int, from: libc::c_int, secs: Duration) -> (Duration, Lat) {
    let mut lat = Lat::default();
    let start = Instant::now();
    while start.elapsed() < secs {
        let ok = lat.time(|| hop(to, true) && hop(from, false));
        if !ok {
            die(&format!("ping: {}", std::io::Error::last_os_error()));
        }
    }
    (start.elapsed(), lat)
}

pub fn switch(a: &Args) {
    let secs = Duration::from_secs_f64(a.num("secs", 2) as f64);
    pin_to(0);

    // Batches of 100 calls: one call is near the clock's own cost. Each batch counts as 100
    // operations of its mean latency.
    let mut lat = Lat::default();
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        for _ in 0..100 {
            // SAFETY: getppid has no arguments and cannot fail.
            unsafe { libc::getppid() };
        }
        let each = t.elapsed().as_nanos() as u64 / 100;
        lat.0.extend(std::iter::repeat_n(each, 100));
    }
    report("switch_floor", "syscall", 1, start.elapsed(), vec![lat], "");

    // A forked process (inherits CPU 0's affinity).
    let (a_pipe, b_pipe) = pipes();
    // SAFETY: the child only runs the echo loop over inherited descriptors and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        die(&format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        close(a_pipe[1]);
        close(b_pipe[0]);
        echo(a_pipe[0], b_pipe[1]);
        // SAFETY: leaving the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    close(a_pipe[0]);
    close(b_pipe[1]);
    let (wall, lat) = ping(a_pipe[1], b_pipe[0], secs);
    report("switch_floor", "pipe_process_rtt", 1, wall, vec![lat], "");
    close(a_pipe[1]);
    close(b_pipe[0]);
    // SAFETY: reaping the child forked above.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };

    // A thread of this process.
    let (a_pipe, b_pipe) = pipes();
    let echoer = std::thread::spawn(move || {
        pin_to(0);
        echo(a_pipe[0], b_pipe[1]);
        close(a_pipe[0]);
        close(b_pipe[1]);
    });
    let (wall, lat) = ping(a_pipe[1], b_pipe[0], secs);
    report("switch_floor", "pipe_thread_rtt", 1, wall, vec![lat], "");
    close(a_pipe[1]);
    let _ = echoer.join();
    close(b_pipe[0]);
}
