//! mkfs.zpmfs: see [`mkfs_zpmfs::cli`].

fn main() -> std::process::ExitCode {
    mkfs_zpmfs::cli::main(std::env::args_os().skip(1))
}
