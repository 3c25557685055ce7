//! What mkfs.zpmfs does, in order.
//!
//! Checks come first and write nothing: the arguments, whether the target is in use (refused
//! even with -f), what it already holds (refused without -f), its size. Only then does it create
//! or extend an image file (-s) and format. Exit status: 0 done, 1 usage or operational error.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pmfs::device::{Device, DeviceKind};
use pmfs::format::{format_set, FormatOptions, MIN_DEVICE_SIZE};
use pmfs::probe::{describe, identify, PROBE_BYTES};

use crate::args::{self, format_uuid, Args, Command, USAGE};
use crate::mounted;

/// Nominal block size, for the dry-run estimate (format reports the real one).
const BLOCK_SIZE: u64 = 4096;

/// The whole program: parse `argv` (without the program name), act, say what happened.
pub fn main(argv: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let mut argv_utf8 = Vec::new();
    for arg in argv {
        match arg.into_string() {
            Ok(s) => argv_utf8.push(s),
            Err(bad) => {
                eprintln!("mkfs.zpmfs: argument {bad:?} is not valid UTF-8");
                return ExitCode::from(1);
            }
        }
    }
    match args::parse(&argv_utf8) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("mkfs.zpmfs {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Format(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("mkfs.zpmfs: {msg}");
                ExitCode::from(1)
            }
        },
        Err(msg) => {
            eprintln!("mkfs.zpmfs: {msg}");
            eprintln!("{}", USAGE.lines().next().unwrap_or_default());
            eprintln!("Try 'mkfs.zpmfs -h' for more information.");
            ExitCode::from(1)
        }
    }
}

/// One device or image file as checked before anything is written.
struct Prepared {
    path: PathBuf,
    /// Its size now (None: the image file does not exist yet) and what it holds.
    existing: Option<(u64, Option<String>)>,
    /// Its size once -s is applied.
    size: u64,
}

/// Everything after parsing. The error is the message to print.
fn run(args: &Args) -> Result<(), String> {
    let mut devices = Vec::new();
    for p in std::iter::once(&args.path).chain(&args.more) {
        devices.push(prepare(Path::new(p), args)?);
    }
    for d in &devices {
        if let (Some((_, Some(what))), false) = (&d.existing, args.quiet) {
            let verb = if args.dry_run { "would overwrite" } else { "overwriting" };
            println!("mkfs.zpmfs: {} contains {what}; {verb} it (-f)", d.path.display());
        }
    }
    if args.dry_run {
        if !args.quiet {
            for d in &devices {
                let shown = d.path.display();
                let action = match d.existing.as_ref().map(|e| e.0) {
                    None => format!("create the image file {shown} of {} and format it", human(d.size)),
                    Some(have) if have < d.size => {
                        format!("extend {shown} from {} to {} and format it", human(have), human(d.size))
                    }
                    Some(_) => format!("format {shown}"),
                };
                println!("mkfs.zpmfs: dry run (-n): would {action}");
            }
            let size: u64 = devices.iter().map(|d| d.size).sum();
            println!("Device size:      {size} bytes ({})", human(size));
            println!("Blocks:           about {} of {BLOCK_SIZE} bytes", size / BLOCK_SIZE);
            println!("Filesystem UUID:  {}", args.uuid.as_ref().map_or("random".to_string(), format_uuid));
            println!("Filesystem label: {}", label_shown(&args.label));
            println!("Nothing was written.");
        }
        return Ok(());
    }
    let mut created = Vec::new();
    for d in &devices {
        let shown = d.path.display();
        if args.size.is_some() && d.existing.as_ref().is_none_or(|e| e.0 < d.size) {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&d.path)
                .map_err(|e| format!("cannot create {shown}: {e}"))?;
            if d.existing.is_none() {
                created.push(d.path.clone());
            }
            file.set_len(d.size).map_err(|e| format!("cannot make {shown} {} long: {e}", human(d.size)))?;
        }
    }
    let result = format_devices(&devices, args);
    if result.is_err() {
        // Leave nothing half-made behind where the files were ours.
        for p in created {
            let _ = fs::remove_file(p);
        }
    }
    result
}

/// Check one device or image file: what it is, that nothing uses it, its size, and (unless
/// -f) that it holds nothing.
fn prepare(path: &Path, args: &Args) -> Result<Prepared, String> {
    let shown = path.display();
    let existing = match fs::metadata(path) {
        Ok(meta) => {
            let ft = meta.file_type();
            if ft.is_dir() {
                return Err(format!("{shown} is a directory, not a device or an image file"));
            }
            if (ft.is_block_device() || ft.is_char_device()) && args.size.is_some() {
                return Err(format!(
                    "{shown} is a device: its size is fixed, -s only sets the size of an image file"
                ));
            }
            if !(ft.is_file() || ft.is_block_device() || ft.is_char_device()) {
                return Err(format!("{shown} is neither a device nor a regular file"));
            }
            if let Some(why) = mounted::in_use(path) {
                return Err(format!("{shown} is in use: {why}; refusing to format it"));
            }
            Some(check_contents(path, args)?)
        }
        Err(e) if e.kind() == ErrorKind::NotFound && args.size.is_some() => None,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "cannot open {shown}: No such file or directory (give -s SIZE to create an image file)"
            ))
        }
        Err(e) => return Err(format!("cannot open {shown}: {e}")),
    };
    let existing_size = existing.as_ref().map(|(size, _)| *size);
    let size = match (args.size, existing_size) {
        (Some(want), Some(have)) if want < have => {
            return Err(format!(
                "{shown} is already {} ({have} bytes), larger than -s {} ({want} bytes); zpmfs uses the \
                 whole file: leave out -s, or remove the file first",
                human(have),
                human(want)
            ))
        }
        (Some(want), _) => want,
        (None, Some(have)) => have,
        (None, None) => return Err(format!("cannot open {shown}: No such file or directory")),
    };
    if size < MIN_DEVICE_SIZE {
        return Err(format!(
            "{shown} is too small: {} ({size} bytes); zpmfs needs at least {} ({MIN_DEVICE_SIZE} bytes)",
            human(size),
            human(MIN_DEVICE_SIZE)
        ));
    }
    Ok(Prepared { path: path.to_path_buf(), existing, size })
}

/// Refuse, unless -f, a device that already holds something. Returns its size and what it
/// holds (to be overwritten, with -f).
fn check_contents(path: &Path, args: &Args) -> Result<(u64, Option<String>), String> {
    let dev = Device::open(path, false).map_err(|e| message(&e))?;
    let head = dev.read_head(PROBE_BYTES).map_err(|e| message(&e))?;
    let found = identify(&head).map(describe);
    if let (Some(what), false) = (&found, args.force) {
        return Err(format!("{} already contains {what}; use -f to overwrite", path.display()));
    }
    Ok((dev.size(), found))
}

fn format_devices(devices: &[Prepared], args: &Args) -> Result<(), String> {
    let mut opened = Vec::new();
    for d in devices {
        opened.push(Device::open(&d.path, true).map_err(|e| message(&e))?);
    }
    let nodes: Vec<u32> = match &args.nodes {
        Some(n) => n.clone(),
        None => devices.iter().map(|d| pmfs::numa::device_node(&d.path).unwrap_or(0)).collect(),
    };
    let opts = FormatOptions { label: args.label.clone(), uuid: args.uuid, cpus: None };
    let refs: Vec<&Device> = opened.iter().collect();
    let names: Vec<String> = devices.iter().map(|d| d.path.display().to_string()).collect();
    let summary = format_set(&refs, &nodes, &opts)
        .map_err(|e| format!("cannot format {}: {}", names.join(" "), message(&e)))?;
    if !args.quiet {
        for (dev, node) in opened.iter().zip(&nodes) {
            let kind = match dev.kind() {
                DeviceKind::BlockDevice => "block device",
                DeviceKind::DaxChar => "device-DAX",
                DeviceKind::File => "image file",
            };
            let on = if opened.len() > 1 { format!(", NUMA node {node}") } else { String::new() };
            println!("Created zpmfs on {} ({kind}, {}{on})", dev.path().display(), human(dev.size()));
        }
        let size: u64 = opened.iter().map(|d| d.size()).sum();
        println!("Device size:      {size} bytes ({})", human(size));
        println!("Blocks:           {} of {} bytes", summary.blocks, summary.block_size);
        println!("Per-CPU tables:   {}", summary.cpus);
        println!("Filesystem UUID:  {}", format_uuid(&summary.uuid));
        println!("Filesystem label: {}", label_shown(&args.label));
        let source =
            if names.len() > 1 { format!("-o source={} zpmfs", names.join(":")) } else { names[0].clone() };
        println!("Mount it with:    mount -t fuse.zpmfs {source} MOUNTPOINT");
    }
    Ok(())
}

/// The text of a pmfs error without the "I/O error: " prefix when it already says what failed.
fn message(e: &pmfs::Error) -> String {
    match e {
        pmfs::Error::Io(what) => what.clone(),
        other => other.to_string(),
    }
}

fn label_shown(label: &str) -> String {
    if label.is_empty() {
        "(none)".to_string()
    } else {
        label.to_string()
    }
}

/// 1073741824 -> "1.00 GiB".
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(16 << 20), "16.00 MiB");
        assert_eq!(human(1 << 30), "1.00 GiB");
        assert_eq!(human(3 << 39), "1.50 TiB");
    }
}
