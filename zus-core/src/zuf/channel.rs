//! A ZT: one server thread per CPU, pinned there, serving the operations zuf.ko dispatches
//! to that CPU's channel. Each ZT_WAIT hands the kernel the previous result and sleeps until
//! the next operation is in the buffer. And the poller: one more thread, pinned to a CPU of
//! its own, serving the polling channel by spinning on its handshake words (no system call
//! per operation; ZT_WAIT only to sleep after a while without one).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, warn};

use crate::fs_api::ZusFs;

use super::abi::*;
use super::sys::{Mapping, ZufFile};
use super::Mounts;

/// Open a channel of `cpu` (with ZT_INIT `flags`) and map its operation buffer and window.
fn open_channel(cpu: usize, flags: u32) -> io::Result<(ZufFile, Mapping, Mapping)> {
    let dev = ZufFile::open()?;
    let mut init = ZufZtInit { cpu: cpu as u32, flags };
    dev.ioctl(ZUF_IOC_ZT_INIT, &mut init)?;
    let buf = dev.map(0, ZUF_OP_BUF_SIZE)?;
    let window = dev.map(ZUF_WINDOW_OFFSET, ZUF_WINDOW_SIZE as usize)?;
    Ok((dev, buf, window))
}

/// Serve `cpu`'s channel until the kernel or the server shuts it down.
pub fn run<F: ZusFs + 'static>(cpu: usize, mounts: Arc<Mounts<F>>) -> io::Result<()> {
    let (dev, buf, mut window) = open_channel(cpu, 0)?;
    let mut wait = ZufZtWait::default();
    loop {
        if let Err(e) = dev.ioctl(ZUF_IOC_ZT_WAIT, &mut wait) {
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => {
                    wait = ZufZtWait::default();
                    continue;
                }
                Some(libc::ESHUTDOWN) | Some(libc::ENODEV) => return Ok(()),
                _ => return Err(e),
            }
        }
        let mut op = buf.read_op();
        let result = serve_op(&mounts, &mut op, &mut window);
        op.result = result;
        buf.write_op(&op);
        wait = ZufZtWait { prev_result: result, prev_len: std::mem::size_of::<ZufOpBuf>() as u32 };
        if result == -libc::EIO {
            error!("zus: cpu {cpu}: operation {} on inode {} failed with EIO", op.op, op.ino);
        }
    }
}

/// Serve `op` on the mount it names; -EIO for a superblock this server does not know.
fn serve_op<F: ZusFs + 'static>(mounts: &Mounts<F>, op: &mut ZufOpBuf, window: &mut Mapping) -> i32 {
    match mounts.get(op.sb_id) {
        Some(m) => m.serve(op, window),
        None => {
            warn!("zus: operation {} for unknown superblock {}", op.op, op.sb_id);
            -libc::EIO
        }
    }
}

/// Looks at the posted word between two spin_loop() hints.
const POLL_LOOKS: u32 = 64;

/// How long the poller spins without a call before it sleeps in ZT_WAIT.
const POLL_SPIN: Duration = Duration::from_millis(1);

/// Serve the polling channel (calls from every CPU but `cpu`, where this thread is pinned)
/// until the kernel or the server shuts it down.
pub fn run_poller<F: ZusFs + 'static>(cpu: usize, mounts: Arc<Mounts<F>>) -> io::Result<()> {
    let (dev, buf, mut window) = open_channel(cpu, ZUF_ZT_POLL)?;
    let ctl = buf.poll_ctl();
    let mut answered = ctl.answered.load(Ordering::Acquire);
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    loop {
        // Several looks per spin_loop(): under emulation a PAUSE leaves the translated code.
        let mut posted = ctl.posted.load(Ordering::Acquire);
        for _ in 1..POLL_LOOKS {
            if posted != answered {
                break;
            }
            posted = ctl.posted.load(Ordering::Acquire);
        }
        if posted != answered {
            let mut op = buf.read_op();
            op.result = serve_op(&mounts, &mut op, &mut window);
            buf.write_op(&op);
            // The reply is in the buffer before the kernel can see the number.
            ctl.answered.store(posted, Ordering::Release);
            answered = posted;
            if op.result == -libc::EIO {
                error!("zus: polling channel: operation {} on inode {} failed with EIO", op.op, op.ino);
            }
            spins = 0;
            continue;
        }
        std::hint::spin_loop();
        spins += 1;
        // The clock only now and then: in a guest without a TSC a clock read is a system call.
        if !spins.is_multiple_of(1024) {
            continue;
        }
        if spins == 1024 {
            idle_since = Instant::now();
        }
        if idle_since.elapsed() < POLL_SPIN {
            continue;
        }
        // Sleep until a call is posted: ZT_WAIT returns at once if one already is, and the
        // kernel wakes it for the next.
        let mut wait = ZufZtWait::default();
        if let Err(e) = dev.ioctl(ZUF_IOC_ZT_WAIT, &mut wait) {
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => {}
                Some(libc::ESHUTDOWN) | Some(libc::ENODEV) | Some(libc::EIO) => return Ok(()),
                _ => return Err(e),
            }
        }
        spins = 0;
    }
}
