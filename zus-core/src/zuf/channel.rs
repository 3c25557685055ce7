//! A ZT: one server thread per CPU, pinned there, serving the operations zuf.ko dispatches
//! to that CPU's channel. Each ZT_WAIT hands the kernel the previous result and sleeps until
//! the next operation is in the buffer.

use std::io;
use std::sync::Arc;

use log::{error, warn};

use crate::fs_api::ZusFs;

use super::abi::*;
use super::sys::ZufFile;
use super::Mounts;

/// Serve `cpu`'s channel until the kernel or the server shuts it down.
pub fn run<F: ZusFs + 'static>(cpu: usize, mounts: Arc<Mounts<F>>) -> io::Result<()> {
    let dev = ZufFile::open()?;
    let mut init = ZufZtInit { cpu: cpu as u32, flags: 0 };
    dev.ioctl(ZUF_IOC_ZT_INIT, &mut init)?;
    let buf = dev.map(0, ZUF_OP_BUF_SIZE)?;
    let mut window = dev.map(ZUF_WINDOW_OFFSET, ZUF_WINDOW_SIZE as usize)?;
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
        let result = match mounts.get(op.sb_id) {
            Some(m) => m.serve(&mut op, &mut window),
            None => {
                warn!("zus: operation {} for unknown superblock {}", op.op, op.sb_id);
                -libc::EIO
            }
        };
        op.result = result;
        buf.write_op(&op);
        wait = ZufZtWait { prev_result: result, prev_len: std::mem::size_of::<ZufOpBuf>() as u32 };
        if result == -libc::EIO {
            error!("zus: cpu {cpu}: operation {} on inode {} failed with EIO", op.op, op.ino);
        }
    }
}
