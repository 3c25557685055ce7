//! The command line of mkfs.zpmfs, parsed getopt-style: short options may be grouped (`-fq`)
//! and take their value attached (`-Lname`) or as the next word (`-L name`); `--` ends options.

use pmfs::format::LABEL_MAX;

pub const USAGE: &str = "\
Usage: mkfs.zpmfs [-L label] [-U uuid] [-f] [-n] [-q] [-s size] [--numa-nodes N,...] DEVICE-OR-FILE...

Format a persistent-memory device (/dev/pmemN, /dev/daxN.M) or an image file with zpmfs.
Several devices make one filesystem across them (a device set, one device per NUMA node):
each CPU's allocations come from its own node's device; the first device holds the metadata.

  -L label   volume label, at most 63 bytes
  -U uuid    filesystem UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, or \"random\"); default random
  -f         overwrite a device that already holds a filesystem or another signature
  -n         dry run: check and print what would be done, write nothing
  -q         quiet: print errors only
  -s size    create the image file, or extend it, to SIZE bytes (suffixes K, M, G, T: powers
             of 1024); only for image files, not devices
  --numa-nodes N,...
             the NUMA node of each device, in order (default: from sysfs, else 0; image
             files have no node, so name one for each to stand for a node)
  -V         print the version and exit
  -h         print this help and exit";

/// What the user asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub label: String,
    pub uuid: Option<[u8; 16]>,
    pub force: bool,
    pub dry_run: bool,
    pub quiet: bool,
    pub size: Option<u64>,
    pub path: String,
    /// Further devices of a device set, after `path`.
    pub more: Vec<String>,
    /// --numa-nodes: one per device.
    pub nodes: Option<Vec<u32>>,
}

/// What the command line asks for besides formatting.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Format(Args),
    Help,
    Version,
}

/// Parse the arguments after the program name. The error is the message to print before the
/// usage line.
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let mut args = Args::default();
    let mut paths = Vec::new();
    let mut i = 0;
    let mut options_done = false;
    while i < argv.len() {
        let word = &argv[i];
        i += 1;
        if options_done || !word.starts_with('-') || word == "-" {
            paths.push(word.clone());
            continue;
        }
        match word.as_str() {
            "--" => {
                options_done = true;
                continue;
            }
            "--help" => return Ok(Command::Help),
            w if w == "--numa-nodes" || w.starts_with("--numa-nodes=") => {
                let value = match w.split_once('=') {
                    Some((_, v)) => v.to_string(),
                    None if i < argv.len() => {
                        i += 1;
                        argv[i - 1].clone()
                    }
                    None => return Err("option --numa-nodes needs a value".to_string()),
                };
                let nodes: Option<Vec<u32>> = value.split(',').map(|n| n.trim().parse().ok()).collect();
                args.nodes = Some(nodes.filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!("invalid --numa-nodes {value:?}: expected node numbers, one per device, e.g. 0,1")
                })?);
                continue;
            }
            "--version" => return Ok(Command::Version),
            w if w.starts_with("--") => return Err(format!("unknown option {w}")),
            _ => {}
        }
        let flags: Vec<char> = word[1..].chars().collect();
        let mut j = 0;
        while j < flags.len() {
            let flag = flags[j];
            j += 1;
            match flag {
                'f' => args.force = true,
                'n' => args.dry_run = true,
                'q' => args.quiet = true,
                'h' => return Ok(Command::Help),
                'V' => return Ok(Command::Version),
                'L' | 'U' | 's' => {
                    let value: String = if j < flags.len() {
                        let v = flags[j..].iter().collect();
                        j = flags.len();
                        v
                    } else if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("option -{flag} needs a value"));
                    };
                    match flag {
                        'L' => args.label = parse_label(&value)?,
                        'U' => args.uuid = parse_uuid(&value)?,
                        _ => args.size = Some(parse_size(&value)?),
                    }
                }
                other => return Err(format!("unknown option -{other}")),
            }
        }
    }
    if paths.is_empty() {
        return Err("no device or image file given".to_string());
    }
    if let Some(n) = &args.nodes {
        if n.len() != paths.len() {
            return Err(format!(
                "--numa-nodes names {} nodes for {} devices: one per device",
                n.len(),
                paths.len()
            ));
        }
    }
    let mut sorted = paths.clone();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err("a device is named twice".to_string());
    }
    args.path = paths.remove(0);
    args.more = paths;
    Ok(Command::Format(args))
}

fn parse_label(value: &str) -> Result<String, String> {
    if value.len() > LABEL_MAX {
        return Err(format!("label {value:?} is too long: {} bytes, at most {LABEL_MAX}", value.len()));
    }
    if value.contains('\0') {
        return Err("a label cannot contain a NUL byte".to_string());
    }
    Ok(value.to_string())
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, either case), or `random` (None: format picks).
pub fn parse_uuid(value: &str) -> Result<Option<[u8; 16]>, String> {
    if value.eq_ignore_ascii_case("random") {
        return Ok(None);
    }
    let bad = || {
        format!("invalid UUID {value:?}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex) or \"random\"")
    };
    let groups: Vec<&str> = value.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12] {
        return Err(bad());
    }
    let hex: String = groups.concat();
    let mut uuid = [0u8; 16];
    for (k, byte) in uuid.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * k..2 * k + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(Some(uuid))
}

/// The canonical text form of a UUID.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let h: Vec<String> = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// Bytes, with an optional K/M/G/T/P suffix (powers of 1024), optionally followed by "B" or "iB".
pub fn parse_size(value: &str) -> Result<u64, String> {
    let bad =
        || format!("invalid size {value:?}: expected a number of bytes with an optional K, M, G or T suffix");
    let digits_end = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, suffix) = value.split_at(digits_end);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let suffix = suffix.strip_suffix("iB").or_else(|| suffix.strip_suffix('B')).unwrap_or(suffix);
    let shift = match suffix {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        _ => return Err(bad()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(|| format!("size {value:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn format_args(s: &str) -> Args {
        match parse(&words(s)) {
            Ok(Command::Format(a)) => a,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn all_options() {
        let a = format_args("-L data -U 01234567-89ab-cdef-0123-456789ABCDEF -f -n -q -s 1G img");
        assert_eq!(a.label, "data");
        assert_eq!(
            a.uuid,
            Some([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
                0xef
            ])
        );
        assert!(a.force && a.dry_run && a.quiet);
        assert_eq!(a.size, Some(1 << 30));
        assert_eq!(a.path, "img");
    }

    #[test]
    fn grouped_and_attached() {
        let a = format_args("-fqLvol -s16M img");
        assert!(a.force && a.quiet);
        assert_eq!(a.label, "vol");
        assert_eq!(a.size, Some(16 << 20));
        let a = format_args("img -f");
        assert!(a.force);
        let a = format_args("-- -img");
        assert_eq!(a.path, "-img");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |s: &str| parse(&words(s)).unwrap_err();
        assert!(e("-L").contains("-L needs a value"));
        assert!(e("-x img").contains("unknown option -x"));
        assert!(e("").contains("no device"));
        assert!(e("a a").contains("named twice"));
        assert!(e("--numa-nodes 0 a b").contains("one per device"));
        assert!(e("--numa-nodes x a").contains("invalid --numa-nodes"));
        assert!(e("-U nope img").contains("invalid UUID"));
        assert!(e("-U 01234567-89ab-cdef-0123-456789abcdeg img").contains("invalid UUID"));
        assert!(e("-s 12X img").contains("invalid size"));
        assert!(e("-s 99999999999T img").contains("too large"));
        let long = "x".repeat(LABEL_MAX + 1);
        assert!(e(&format!("-L {long} img")).contains("too long"));
        assert_eq!(format_args(&format!("-L {} img", "x".repeat(LABEL_MAX))).label.len(), LABEL_MAX);
    }

    #[test]
    fn a_device_set_with_its_nodes() {
        let a = format_args("--numa-nodes 0,1 -f a b");
        assert_eq!(
            (a.path.as_str(), a.more.clone(), a.nodes.clone()),
            ("a", vec!["b".to_string()], Some(vec![0, 1]))
        );
        assert_eq!(format_args("--numa-nodes=1 a").nodes, Some(vec![1]));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&words("-h")), Ok(Command::Help));
        assert_eq!(parse(&words("--version")), Ok(Command::Version));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("3MB"), Ok(3 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn uuid_round_trip() {
        let text = "0123abcd-89ab-cdef-0123-456789abcdef";
        let uuid = parse_uuid(text).unwrap().unwrap();
        assert_eq!(format_uuid(&uuid), text);
        assert_eq!(parse_uuid("random"), Ok(None));
    }
}
