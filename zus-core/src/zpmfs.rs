//! zpmfs served by zus: [`ZusFs`] for [`pmfs::Fs`], one line of delegation per operation.

use std::path::Path;

use crate::fs_api::*;

impl ZusFs for pmfs::Fs {
    fn mount(paths: &[std::path::PathBuf], opts: &MountOptions) -> Result<Self> {
        pmfs::Fs::mount_devices(paths, opts)
    }
    fn mount_mapped(pm: pmfs::persist::PmRegion, path: &Path, opts: &MountOptions) -> Result<Self> {
        pmfs::Fs::mount_mapped(pm, path, opts)
    }
    fn mount_report(&self) -> MountReport {
        pmfs::Fs::mount_report(self)
    }
    fn node_stats(&self) -> Vec<pmfs::alloc::NodeStats> {
        pmfs::Fs::node_stats(self)
    }
    fn unmount(&self) -> Result<()> {
        pmfs::Fs::unmount(self)
    }
    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        pmfs::Fs::lookup(self, parent, name)
    }
    fn getattr(&self, ino: Ino) -> Result<Attr> {
        pmfs::Fs::getattr(self, ino)
    }
    fn setattr(&self, ino: Ino, set: &SetAttr) -> Result<Attr> {
        pmfs::Fs::setattr(self, ino, set)
    }
    fn set_flags(&self, ino: Ino, flags: u32, caller: Caller) -> Result<Attr> {
        pmfs::Fs::set_flags(self, ino, flags, caller)
    }
    fn mknod(&self, parent: Ino, name: &[u8], mode: u32, rdev: u32, caller: Caller) -> Result<Attr> {
        pmfs::Fs::mknod(self, parent, name, mode, rdev, caller)
    }
    fn mkdir(&self, parent: Ino, name: &[u8], mode: u32, caller: Caller) -> Result<Attr> {
        pmfs::Fs::mkdir(self, parent, name, mode, caller)
    }
    fn symlink(&self, parent: Ino, name: &[u8], target: &[u8], caller: Caller) -> Result<Attr> {
        pmfs::Fs::symlink(self, parent, name, target, caller)
    }
    fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        pmfs::Fs::readlink(self, ino)
    }
    fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> Result<Attr> {
        pmfs::Fs::link(self, ino, new_parent, new_name)
    }
    fn unlink(&self, parent: Ino, name: &[u8]) -> Result<()> {
        pmfs::Fs::unlink(self, parent, name)
    }
    fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<()> {
        pmfs::Fs::rmdir(self, parent, name)
    }
    fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<Option<Ino>> {
        pmfs::Fs::rename_replacing(self, parent, name, new_parent, new_name, flags)
    }
    fn tmpfile(&self, parent: Ino, mode: u32, caller: Caller) -> Result<Attr> {
        pmfs::Fs::tmpfile(self, parent, mode, caller)
    }
    fn shutdown(&self) {
        pmfs::Fs::shutdown(self)
    }
    fn open(&self, ino: Ino) -> Result<()> {
        pmfs::Fs::open(self, ino)
    }
    fn release(&self, ino: Ino) -> Result<()> {
        pmfs::Fs::release(self, ino)
    }
    fn hold(&self, ino: Ino, generation: u32, n: u32) -> Result<()> {
        pmfs::Fs::hold(self, ino, generation, n)
    }
    fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        pmfs::Fs::read(self, ino, offset, buf)
    }
    fn write(&self, ino: Ino, offset: u64, data: &[u8], append: bool) -> Result<(usize, u64)> {
        pmfs::Fs::write(self, ino, offset, data, append)
    }
    fn fsync(&self, ino: Ino, datasync: bool) -> Result<()> {
        pmfs::Fs::fsync(self, ino, datasync)
    }
    fn fallocate(&self, ino: Ino, mode: FallocMode, offset: u64, len: u64) -> Result<()> {
        pmfs::Fs::fallocate(self, ino, mode, offset, len)
    }
    fn lseek(&self, ino: Ino, offset: u64, whence: SeekWhence) -> Result<u64> {
        pmfs::Fs::lseek(self, ino, offset, whence)
    }
    fn data_extents(&self, ino: Ino, offset: u64, len: u64, max: usize) -> Result<Vec<DataExtent>> {
        pmfs::Fs::data_extents(self, ino, offset, len, max)
    }
    fn readdir(&self, ino: Ino, offset: u64, max: usize) -> Result<Vec<DirEntry>> {
        pmfs::Fs::readdir(self, ino, offset, max)
    }
    fn statfs(&self) -> Result<StatFs> {
        pmfs::Fs::statfs(self)
    }
    fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], flags: XattrFlags) -> Result<()> {
        pmfs::Fs::setxattr(self, ino, name, value, flags)
    }
    fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        pmfs::Fs::getxattr(self, ino, name)
    }
    fn listxattr(&self, ino: Ino) -> Result<Vec<u8>> {
        pmfs::Fs::listxattr(self, ino)
    }
    fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<()> {
        pmfs::Fs::removexattr(self, ino, name)
    }
    fn get_data_block(&self, ino: Ino, offset: u64, for_write: bool) -> Result<Option<DataBlock>> {
        pmfs::Fs::get_data_block(self, ino, offset, for_write)
    }
}
