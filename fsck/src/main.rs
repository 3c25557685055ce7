//! fsck.zpmfs [-n|-p|-a|-y] [-f] [-v] DEVICE-OR-IMAGE
//!
//! Exit codes as e2fsck: 0 no errors, 1 errors corrected, 4 errors left uncorrected,
//! 8 operational error (cannot open, not zpmfs, in use), 16 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use pmfs::fsck::{fsck_devices, FsckMode, FsckOptions};

const USAGE: &str = "usage: fsck.zpmfs [-n|-p|-a|-y] [-f] [-v] DEVICE-OR-IMAGE...
  (one device, or members of a device set: the others are found by UUID, image files
  must all be named; A:B is the same as A B)
  -n  check only, change nothing
  -p  preen: repair what is safe without asking (-a is the same)
  -y  repair everything repairable
  -f  check even if the filesystem was cleanly unmounted
  -v  verbose";

struct Args {
    mode: Option<FsckMode>,
    force: bool,
    /// Also print the notes on a clean check.
    verbose: bool,
    device: PathBuf,
    /// Every device named (several for a device set).
    devices: Vec<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut mode = None;
    let (mut force, mut verbose) = (false, false);
    let mut devices = Vec::new();
    let mut it = std::env::args().skip(1);
    let set = |m: FsckMode, mode: &mut Option<FsckMode>| match mode {
        Some(old) if *old != m => Err("only one of -n, -p/-a and -y may be given".to_string()),
        _ => {
            *mode = Some(m);
            Ok(())
        }
    };
    while let Some(a) = it.next() {
        if a == "-C" || a == "-E" || a == "-b" || a == "-B" || a == "-j" || a == "-l" || a == "-L" {
            it.next(); // options of e2fsck that fsck(8) or users may pass; not meaningful here
            continue;
        }
        if a == "-V" || a == "--version" {
            println!("fsck.zpmfs {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        if a == "-h" || a == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if let Some(flags) = a.strip_prefix('-') {
            for f in flags.chars() {
                match f {
                    'n' => set(FsckMode::Check, &mut mode)?,
                    'p' | 'a' => set(FsckMode::Preen, &mut mode)?,
                    'y' => set(FsckMode::Repair, &mut mode)?,
                    'f' => force = true,
                    'v' => verbose = true,
                    't' | 'T' | 'M' | 'P' | 'r' | 's' | 'N' | 'c' | 'k' | 'D' => {}
                    other => return Err(format!("unknown option -{other}")),
                }
            }
        } else {
            devices.extend(a.split(':').filter(|p| !p.is_empty()).map(PathBuf::from));
        }
    }
    let device = devices.first().cloned().ok_or("no device given")?;
    Ok(Args { mode, force, verbose, device, devices })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fsck.zpmfs: {e}\n{USAGE}");
            return ExitCode::from(16);
        }
    };
    let Some(mode) = args.mode.or_else(|| {
        // e2fsck asks interactively without a mode; we never ask: without a terminal that would
        // hang a boot, so we refuse instead.
        eprintln!("fsck.zpmfs: give -n (check only), -p (safe repairs) or -y (repair everything)");
        None
    }) else {
        return ExitCode::from(16);
    };
    let shown = args.device.display().to_string();
    let progress =
        |done: u64, total: u64| eprintln!("{}: checked {done} of {total} inodes", args.device.display());
    let report = match fsck_devices(&args.devices, &FsckOptions { mode, force: args.force }, Some(&progress))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fsck.zpmfs: {shown}: {}", e.detail());
            return ExitCode::from(8);
        }
    };
    let label = if report.label.is_empty() { String::new() } else { format!(" ({})", report.label) };
    if report.skipped {
        println!("{shown}{label}: clean, {} inodes", report.inodes);
        return ExitCode::SUCCESS;
    }
    for n in
        report.notes.iter().filter(|_| args.verbose || !report.problems.is_empty() || mode != FsckMode::Check)
    {
        println!("{shown}: {n}");
    }
    for p in &report.problems {
        let what = if p.fixed { "FIXED" } else { "NOT FIXED" };
        println!("{shown}: {}. {what}.", p.what);
    }
    let code = report.exit_code();
    if code == 4 && mode == FsckMode::Preen {
        println!("{shown}: UNEXPECTED INCONSISTENCY; RUN fsck.zpmfs MANUALLY (with -y).");
    }
    if code == 1 {
        println!("\n{shown}: ***** FILESYSTEM WAS MODIFIED *****");
    }
    println!(
        "{shown}{label}: {} inodes, {}/{} blocks, {} problem(s), {} fixed",
        report.inodes,
        report.blocks_used,
        report.blocks,
        report.problems.len(),
        report.problems.iter().filter(|p| p.fixed).count()
    );
    ExitCode::from(code as u8)
}
