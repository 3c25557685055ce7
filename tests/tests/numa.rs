//! A device set over FUSE, as a user runs it: mkfs.zpmfs across two image files standing for
//! two NUMA nodes' PM, zus mount with `cpu_nodes=0:1` standing for a two-socket machine
//! (CPU 0 on node 0, CPU 1 on node 1), writers pinned with taskset, and `zus status` showing
//! where each node's writes went.

use std::process::Command;

use zpmfs_tests::*;

/// `key=value` fields of the `node=N` line of a `zus status` report.
fn node_line(report: &str, node: u32) -> std::collections::HashMap<String, u64> {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("node={node} ")))
        .unwrap_or_else(|| panic!("no node={node} line in:\n{report}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn status(t: &TestFs) -> String {
    run(Command::new(bin("zus")).arg("status").arg(&t.mnt)).ok().text()
}

#[test]
fn writers_pinned_to_each_node_fill_their_own_node() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test pins a writer to CPU 1: it needs two CPUs, this machine has {cpus}");
    let (a, b) = (ScratchFile::new("numa-a"), ScratchFile::new("numa-b"));
    let t = TestFs::unformatted("numa");
    let out = mkfs(&[
        "--numa-nodes".as_ref(),
        "0,1".as_ref(),
        "-s".as_ref(),
        "64M".as_ref(),
        a.path.as_os_str(),
        b.path.as_os_str(),
    ])
    .ok();
    assert!(out.text().contains("NUMA node 1"), "mkfs names each member's node:\n{}", out.text());
    let source = format!("source={}:{},cpu_nodes=0:1", a.path.display(), b.path.display());
    // The server confined to CPU 0: its FUSE workers all run there, so the CPU 1 writer's
    // data reaches node 1 only because zus places by the caller's CPU, not its own.
    let out = run(Command::new("taskset")
        .args(["-c", "0"])
        .arg(bin("zus"))
        .args(["mount", "-o", &source, "zpmfs-set"])
        .arg(&t.mnt));
    assert!(out.success() && is_mount_point(&t.mnt), "mount of the set: {}", out.text());
    let before = status(&t);
    for (cpu, name) in [(0, "on-node-0"), (1, "on-node-1")] {
        sh(&t.mnt, &format!("taskset -c {cpu} dd if=/dev/urandom of={name} bs=1M count=8 status=none"));
    }
    let after = status(&t);
    for node in [0, 1] {
        let (was, now) = (node_line(&before, node), node_line(&after, node));
        let local = now["local"] - was["local"];
        assert!(local >= 2048, "node {node}: {local} blocks written locally, want 8 MiB (2048):\n{after}");
        assert_eq!(now["spilled"], 0, "node {node} spilled:\n{after}");
    }
    let sums = [sha256(&t.path("on-node-0")), sha256(&t.path("on-node-1"))];
    t.unmount();
    let out = run(Command::new(bin("fsck.zpmfs")).args(["-n", "-f"]).arg(&a.path).arg(&b.path));
    assert!(out.success(), "fsck of the set: {}", out.text());
    // Only the first member named: a clear refusal, not a half-mounted filesystem.
    let source_a = format!("source={}", a.path.display());
    let out = run(Command::new(bin("zus")).args(["mount", "-o", &source_a, "zpmfs-set"]).arg(&t.mnt)).fails();
    assert!(out.text().contains("member 1 of 2") && out.text().contains("missing"), "{}", out.text());
    let out = run(Command::new(bin("zus")).args(["mount", "-o", &source, "zpmfs-set"]).arg(&t.mnt));
    assert!(out.success(), "remount of the set: {}", out.text());
    assert_eq!([sha256(&t.path("on-node-0")), sha256(&t.path("on-node-1"))], sums);
}

#[test]
fn zus_status_of_a_plain_directory_says_no_zus_answers() {
    let dir = ScratchDir::new("nostatus");
    let out = run(Command::new(bin("zus")).arg("status").arg(&dir.path)).fails();
    assert!(out.text().contains("no zus answers"), "{}", out.text());
}
