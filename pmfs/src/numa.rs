//! The machine's NUMA map: which node each CPU is on, how far nodes are from each other, and
//! which node a PM device is attached to. Read from sysfs; overridable, so that a machine with
//! one node can stand in for several (tests, and image files, which have no node).

use std::path::Path;

use crate::error::{Error, Result};

/// CPU number -> NUMA node, and node distances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaMap {
    /// Index: CPU number. A CPU past the end is taken modulo the length.
    pub cpu_node: Vec<u32>,
    /// (from, to, distance) as sysfs gives them (10 = local); empty: by node number difference.
    pub distances: Vec<(u32, u32, u32)>,
}

impl NumaMap {
    /// Every CPU on node 0.
    pub fn single() -> NumaMap {
        NumaMap { cpu_node: vec![0], distances: Vec::new() }
    }

    /// From /sys/devices/system/node; one node when sysfs has none.
    pub fn from_sysfs() -> NumaMap {
        Self::from_dir(Path::new("/sys/devices/system/node"))
    }

    fn from_dir(dir: &Path) -> NumaMap {
        let mut cpu_node = Vec::new();
        let mut distances = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir) else { return Self::single() };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(node) = name.strip_prefix("node").and_then(|n| n.parse::<u32>().ok()) else { continue };
            let cpus = std::fs::read_to_string(e.path().join("cpulist")).unwrap_or_default();
            for cpu in parse_cpu_list(cpus.trim()).unwrap_or_default() {
                if cpu_node.len() <= cpu {
                    cpu_node.resize(cpu + 1, u32::MAX);
                }
                cpu_node[cpu] = node;
            }
            let dist = std::fs::read_to_string(e.path().join("distance")).unwrap_or_default();
            // sysfs lists distances to every online node in node order.
            let online = online_nodes(dir);
            for (to, d) in online.iter().zip(dist.split_whitespace()) {
                if let Ok(d) = d.parse() {
                    distances.push((node, *to, d));
                }
            }
        }
        if cpu_node.is_empty() {
            return Self::single();
        }
        for n in cpu_node.iter_mut().filter(|n| **n == u32::MAX) {
            *n = 0;
        }
        NumaMap { cpu_node, distances }
    }

    /// `"0,0,1,1"`: CPU i is on the i-th node listed (the mount option `cpu_nodes`).
    pub fn from_cpu_nodes(list: &str) -> Result<NumaMap> {
        let cpu_node: Option<Vec<u32>> = list.split(',').map(|n| n.trim().parse().ok()).collect();
        match cpu_node {
            Some(v) if !v.is_empty() => Ok(NumaMap { cpu_node: v, distances: Vec::new() }),
            _ => Err(Error::Invalid("cpu_nodes must list one NUMA node number per CPU, e.g. 0,0,1,1")),
        }
    }

    /// The node CPU `cpu` is on.
    pub fn node_of(&self, cpu: usize) -> u32 {
        self.cpu_node[cpu % self.cpu_node.len().max(1)]
    }

    /// How far `to` is from `from` (smaller is nearer).
    pub fn distance(&self, from: u32, to: u32) -> u32 {
        if from == to {
            return 10;
        }
        self.distances
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map_or(20 + from.abs_diff(to), |(_, _, d)| *d)
    }
}

fn online_nodes(dir: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(dir.join("online")).unwrap_or_default();
    parse_cpu_list(text.trim()).unwrap_or_default().into_iter().map(|n| n as u32).collect()
}

/// "0-3,8,10-11" -> [0, 1, 2, 3, 8, 10, 11].
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// The NUMA node sysfs gives for the device `path` (/dev/pmemN or /dev/daxN.M); None for a
/// file, or when the platform does not say (-1).
pub fn device_node(path: &Path) -> Option<u32> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    let kind = if meta.file_type().is_block_device() {
        "block"
    } else if meta.file_type().is_char_device() {
        "char"
    } else {
        return None;
    };
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    let base = format!("/sys/dev/{kind}/{major}:{minor}");
    for f in ["device/numa_node", "numa_node"] {
        if let Ok(t) = std::fs::read_to_string(format!("{base}/{f}")) {
            if let Ok(n) = t.trim().parse::<i64>() {
                return u32::try_from(n).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_sysfs_writes_them() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn a_fake_sysfs_with_two_nodes_gives_their_cpus_and_distances() {
        let dir = std::env::temp_dir().join(format!("zpmfs-numa-{}", std::process::id()));
        for (n, cpus, dist) in [(0, "0-1", "10 21"), (1, "2-3", "21 10")] {
            let d = dir.join(format!("node{n}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cpulist"), cpus).unwrap();
            std::fs::write(d.join("distance"), dist).unwrap();
        }
        std::fs::write(dir.join("online"), "0-1\n").unwrap();
        let m = NumaMap::from_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(m.cpu_node, vec![0, 0, 1, 1]);
        assert_eq!(m.distance(0, 1), 21);
        assert_eq!(m.node_of(6), 1);
    }

    #[test]
    fn cpu_nodes_option_is_checked() {
        assert_eq!(NumaMap::from_cpu_nodes("0,1").unwrap().cpu_node, vec![0, 1]);
        assert!(NumaMap::from_cpu_nodes("0,x").is_err());
    }
}
