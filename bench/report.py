#!/usr/bin/env python3
"""Turn a bench run's raw output into results.csv, summary.json, summary.md and plots/*.svg.

    bench/report.py RESULTS_DIR

Reads RESULTS_DIR/raw/**/*.jsonl (zbench lines, the shell's machine/mount/memory lines, and the
guest job's lines) and RESULTS_DIR/raw/**/fio.TARGET.WORKLOAD.THREADS.json (fio
--output-format=json). Standard library only; running it again on the same directory (for
example after adding the guest results under raw/guest/) rewrites the outputs.
"""

import csv
import glob
import json
import math
import os
import sys

# Each headline figure and its goal (issue 6): which way is better, and the bound. A goal of
# None means none was set (reported only). ratio_meta_zuf_vs_ext4dax is a latency ratio, so
# "metadata throughput >= ext4-DAX" is "<= 1".
GOALS = {
    "ratio_inprocess_vs_nova_floor": ("<=", 1.5),
    "ratio_fuse_vs_null_fuse": ("<=", 1.3),
    "ratio_zuf_vs_ext4dax_lat": ("<=", 1.2),
    "ratio_fuse_vs_zuf_guest": (">=", 3.0),
    "ratio_meta_zuf_vs_ext4dax": ("<=", 1.0),
    "dram_bytes_per_inode": ("<=", 256),
    "dram_bytes_per_extent": ("<=", 32),
    # Throughput at the most threads the run had / at 1 thread. The goal is 12 at 16
    # threads on a 16-core machine; on N threads the run holds itself to the same share, 0.75 N.
    "scaling_inprocess_write": (">=", None),
    "scaling_fuse_write": (">=", None),
}
SCALING_SHARE = 0.75

FIO_WRITE = ("randwrite_4k", "randwrite_4k_unpinned", "append_4k_fdatasync", "seqwrite_64k")


def load_fio(path):
    """One result row from a fio JSON file named fio.TARGET.WORKLOAD.THREADS.json."""
    base = os.path.basename(path)[len("fio."):-len(".json")]
    target, workload, threads = base.rsplit(".", 2)
    try:
        with open(path) as f:
            text = f.read()
        # fio may print notes before the JSON object.
        data = json.loads(text[text.index("{"):])
        job = data["jobs"][0]
    except (ValueError, KeyError, IndexError):
        return None
    sec = job["write" if workload in FIO_WRITE else "read"]
    lat = sec["lat_ns"]
    pct = lat.get("percentile") or sec.get("clat_ns", {}).get("percentile", {})
    mean, p50, p99 = lat["mean"], pct.get("50.000000", 0), pct.get("99.000000", 0)
    row = {"target": target, "workload": workload, "threads": int(threads), "ops_per_s": sec["iops"]}
    if workload == "append_4k_fdatasync":
        # One operation is a write and its fdatasync: latencies add (percentiles approximately).
        s = job.get("sync", {}).get("lat_ns", {})
        sp = s.get("percentile", {})
        mean += s.get("mean", 0)
        p50 += sp.get("50.000000", 0)
        p99 += sp.get("99.000000", 0)
        row["fdatasync_mean_us"] = s.get("mean", 0) / 1000
    row.update({"mean_us": mean / 1000, "p50_us": p50 / 1000, "p99_us": p99 / 1000,
                "ops": sec.get("total_ios", 0)})
    return row


def load(outdir):
    rows, other = [], []
    for path in sorted(glob.glob(os.path.join(outdir, "raw", "**", "*.jsonl"), recursive=True)):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if "workload" in obj and "mean_us" in obj:
                    rows.append(obj)
                else:
                    other.append(obj)
    for path in sorted(glob.glob(os.path.join(outdir, "raw", "**", "fio.*.json"), recursive=True)):
        row = load_fio(path)
        if row:
            rows.append(row)
    return rows, other


def find(rows, target, workload, threads=1):
    for r in rows:
        if r["target"] == target and r["workload"] == workload and r["threads"] == threads:
            return r
    return None


def ratio(rows, num, den, workload, threads=1, key="mean_us"):
    a, b = find(rows, num, workload, threads), find(rows, den, workload, threads)
    if not a or not b or not b[key]:
        return None
    return a[key] / b[key]


def geomean_ratio(rows, num, den, prefix, threads=1):
    """Geometric mean, over the metadata phases both targets ran, of the mean-latency ratios."""
    logs = []
    for r in rows:
        if r["target"] == num and r["workload"].startswith(prefix) and r["threads"] == threads:
            d = find(rows, den, r["workload"], threads)
            if d and d["mean_us"] and r["mean_us"]:
                logs.append(math.log(r["mean_us"] / d["mean_us"]))
    return math.exp(sum(logs) / len(logs)) if logs else None


def memory(other):
    mem = {o["what"]: o for o in other if o.get("kind") == "mem"}
    out = {}
    if "empty" in mem and "files_stat" in mem and mem["files_stat"]["files"]:
        f = mem["files_stat"]["files"]
        out["dram_bytes_per_inode"] = (mem["files_stat"]["rss_anon"] - mem["empty"]["rss_anon"]) / f
        out["dram_bytes_per_dentry_readdir_only"] = (
            mem["files_readdir"]["rss_anon"] - mem["empty"]["rss_anon"]) / f if "files_readdir" in mem else None
        if "files_after_crash_mount" in mem:
            out["dram_bytes_per_inode_after_crash_mount"] = (
                mem["files_after_crash_mount"]["rss_anon"] - mem["empty"]["rss_anon"]) / f
    if "sparse_before" in mem and "sparse_after" in mem and mem["sparse_after"]["extents"]:
        out["dram_bytes_per_extent"] = (
            mem["sparse_after"]["rss_anon"] - mem["sparse_before"]["rss_anon"]) / mem["sparse_after"]["extents"]
    out["rss"] = mem
    return out


def numa_ratio(rows, prefix):
    """Remote over local placement: the median over rounds of each run's mean write latency."""
    def median(target):
        v = sorted(r["mean_us"] for r in rows if r["target"] == prefix + target and r["workload"] == "randwrite_4k")
        return v[len(v) // 2] if v else None
    local, remote = median("zpmfs_numa_local"), median("zpmfs_numa_remote")
    return None if not local or not remote else {
        "value": round(remote / local, 3), "local_mean_us": local, "remote_mean_us": remote,
        "what": "device set, one thread on CPU 0: 4 KiB random-write mean latency with placement forced "
                "onto the other node / on its own node (median of the rounds)"}


def scaling(rows, target, workload):
    """(ops/s at the most threads / ops/s at 1 thread, that thread count), or (None, None)."""
    counts = [r["threads"] for r in rows if r["target"] == target and r["workload"] == workload]
    if not counts or max(counts) < 2:
        return None, None
    one, most = find(rows, target, workload, 1), find(rows, target, workload, max(counts))
    if not one or not one["ops_per_s"]:
        return None, None
    return most["ops_per_s"] / one["ops_per_s"], max(counts)


def headline(rows, other):
    goals = dict(GOALS)
    scaled = {key: scaling(rows, target, "randwrite_4k")
              for key, target in (("scaling_inprocess_write", "zpmfs_inprocess"),
                                  ("scaling_fuse_write", "zpmfs_fuse"))}
    for key, (_, n) in scaled.items():
        if n:
            goals[key] = (">=", round(SCALING_SHARE * n, 2))
    figures = {
        "ratio_inprocess_vs_nova_floor": (
            _ratio2(rows, ("zpmfs_inprocess", "randwrite_4k"), ("floor", "nova_append_4k")),
            "mean latency of a 4 KiB write at a random offset through pmfs::Fs / NOVA-style "
            "persisted append on the same DRAM-emulated PM, 1 thread"),
        "ratio_fuse_vs_null_fuse": (
            ratio(rows, "zpmfs_fuse", "null_fuse", "randwrite_4k"),
            "fio 4 KiB randwrite O_DIRECT psync mean latency, zpmfs over FUSE / null FUSE server, 1 job "
            "pinned to CPU 0"),
        "ratio_zuf_vs_ext4dax_lat": (
            ratio(rows, "guest_zpmfs_zuf", "guest_ext4_dax", "randwrite_4k"),
            "guest (TCG): fio 4 KiB randwrite O_DIRECT mean latency, zpmfs over zuf.ko / ext4-DAX, 1 job"),
        "ratio_fuse_vs_zuf_guest": (
            ratio(rows, "guest_zpmfs_fuse", "guest_zpmfs_zuf", "randwrite_4k"),
            "guest (TCG): fio 4 KiB randwrite O_DIRECT mean latency, zpmfs over FUSE / over zuf.ko, 1 job"),
        "ratio_meta_zuf_vs_ext4dax": (
            geomean_ratio(rows, "guest_zpmfs_zuf", "guest_ext4_dax", "meta_"),
            "guest (TCG): geometric mean over the metadata phases of the mean-latency ratio, "
            "zpmfs over zuf.ko / ext4-DAX, 1 thread"),
    }
    mem = memory(other)
    figures["dram_bytes_per_inode"] = (
        mem.get("dram_bytes_per_inode"),
        "zus RssAnon growth per file once every file was stat'ed (inode state + directory entry), "
        "over an empty mount")
    figures["dram_bytes_per_extent"] = (
        mem.get("dram_bytes_per_extent"),
        "zus RssAnon growth per extent after 4 KiB writes at distinct non-adjacent random pages "
        "of one sparse file")
    value, n = scaled["scaling_inprocess_write"]
    n = n or "N"
    figures["scaling_inprocess_write"] = (
        value,
        f"4 KiB random writes per second through pmfs::Fs, {n} threads (one file each) / 1 thread; "
        f"goal {SCALING_SHARE} x {n} (the issue's 12 at 16 threads, at the threads this machine has)")
    value, n = scaled["scaling_fuse_write"]
    n = n or "N"
    figures["scaling_fuse_write"] = (
        value,
        f"fio 4 KiB randwrite O_DIRECT psync op/s, zpmfs over FUSE, {n} jobs (pinned, one per CPU) / 1 job; "
        f"goal as above")
    p50 = {
        "ratio_inprocess_vs_nova_floor":
            _ratio2(rows, ("zpmfs_inprocess", "randwrite_4k"), ("floor", "nova_append_4k"), key="p50_us"),
        "ratio_fuse_vs_null_fuse": ratio(rows, "zpmfs_fuse", "null_fuse", "randwrite_4k", key="p50_us"),
        "ratio_zuf_vs_ext4dax_lat": ratio(rows, "guest_zpmfs_zuf", "guest_ext4_dax", "randwrite_4k", key="p50_us"),
        "ratio_fuse_vs_zuf_guest": ratio(rows, "guest_zpmfs_fuse", "guest_zpmfs_zuf", "randwrite_4k", key="p50_us"),
    }
    out = {}
    for key, (value, what) in figures.items():
        op, goal = goals.get(key) or ("<=", None)
        passed = None if value is None or goal is None else (value <= goal if op == "<=" else value >= goal)
        out[key] = {"value": None if value is None else round(value, 3), "goal": goal,
                    "goal_op": op, "pass": passed, "what": what}
        if p50.get(key) is not None:
            # The same ratio of medians: steadier than the means on a loaded machine.
            out[key]["value_p50"] = round(p50[key], 3)
        if value is None:
            out[key]["note"] = "not measured in this run"
        elif goal is None:
            out[key]["note"] = "no goal set: reported only"
    return out, mem


def _ratio2(rows, a, b, threads=1, key="mean_us"):
    x, y = find(rows, a[0], a[1], threads), find(rows, b[0], b[1], threads)
    if not x or not y or not y[key]:
        return None
    return x[key] / y[key]


def uring_ratio(rows):
    """FUSE over io_uring against /dev/fuse, zpmfs behind both: informational, no goal."""
    mean = ratio(rows, "zpmfs_fuse_uring", "zpmfs_fuse", "randwrite_4k")
    if mean is None:
        return None
    p50 = ratio(rows, "zpmfs_fuse_uring", "zpmfs_fuse", "randwrite_4k", key="p50_us")
    return {"value": round(mean, 3), "value_p50": None if p50 is None else round(p50, 3), "goal": None,
            "what": "host: zpmfs over FUSE over io_uring / zpmfs over /dev/fuse, mean latency of fio 4 KiB "
                    "randwrite (O_DIRECT, psync), 1 job; below 1 means the rings are faster",
            "note": "no goal set: reported only"}


def locked_floor_ratio(rows):
    """zpmfs in-process against the NOVA append under a per-file lock: informational, no goal.
    The bare floor never executes an atomic read-modify-write, so it returns while its stores
    still drain to memory; any lock release (zpmfs releases the inode lock) waits for that."""
    mean = _ratio2(rows, ("zpmfs_inprocess", "randwrite_4k"), ("floor", "nova_append_4k_locked"))
    if mean is None:
        return None
    p50 = _ratio2(rows, ("zpmfs_inprocess", "randwrite_4k"), ("floor", "nova_append_4k_locked"), key="p50_us")
    bare = find(rows, "floor", "nova_append_4k")
    locked = find(rows, "floor", "nova_append_4k_locked")
    return {"value": round(mean, 3), "value_p50": None if p50 is None else round(p50, 3), "goal": None,
            "lock_release_us": round(locked["mean_us"] - bare["mean_us"], 3) if bare else None,
            "what": "mean latency of a 4 KiB write at a random offset through pmfs::Fs / the NOVA-style "
                    "append under a per-file mutex (locked before the data, released after the tail), 1 thread",
            "note": "no goal set: reported only"}


def unpinned_fuse_ratio(rows):
    """zpmfs over /dev/fuse against the null server with fio left where the scheduler puts it."""
    mean = ratio(rows, "zpmfs_fuse", "null_fuse", "randwrite_4k_unpinned")
    if mean is None:
        return None
    p50 = ratio(rows, "zpmfs_fuse", "null_fuse", "randwrite_4k_unpinned", key="p50_us")
    uring = ratio(rows, "zpmfs_fuse_uring", "null_fuse", "randwrite_4k_unpinned")
    return {"value": round(mean, 3), "value_p50": None if p50 is None else round(p50, 3),
            "uring_vs_null": None if uring is None else round(uring, 3), "goal": None,
            "what": "fio 4 KiB randwrite O_DIRECT psync mean latency, 1 job not pinned to a CPU, zpmfs "
                    "over /dev/fuse / null FUSE server (and zpmfs over io_uring / null)",
            "note": "no goal set: reported only; mostly the scheduler's placement of fio against the "
                    "serving thread"}


def zuf_poll_ratios(rows):
    """zpmfs over zuf.ko with the polling channel (`[zuf] poll_cpu`), guest: informational,
    beside the goals the default mode is held to."""
    write = ratio(rows, "guest_zpmfs_zuf_poll", "guest_ext4_dax", "randwrite_4k")
    if write is None:
        return None
    p50 = ratio(rows, "guest_zpmfs_zuf_poll", "guest_ext4_dax", "randwrite_4k", key="p50_us")
    meta = geomean_ratio(rows, "guest_zpmfs_zuf_poll", "guest_ext4_dax", "meta_")
    fuse = ratio(rows, "guest_zpmfs_fuse", "guest_zpmfs_zuf_poll", "randwrite_4k")
    default = ratio(rows, "guest_zpmfs_zuf", "guest_zpmfs_zuf_poll", "randwrite_4k")
    r = lambda v: None if v is None else round(v, 3)
    return {"zuf_poll_vs_ext4dax_lat": r(write), "zuf_poll_vs_ext4dax_lat_p50": r(p50),
            "meta_zuf_poll_vs_ext4dax": r(meta), "fuse_vs_zuf_poll": r(fuse),
            "zuf_default_vs_poll": r(default),
            "what": "guest (TCG): zpmfs over zuf.ko with its polling channel on the last vCPU (fio's "
                    "job and zbench meta on vCPU 0): the randwrite_4k mean-latency ratio against "
                    "ext4-DAX (and of medians), the metadata geometric mean against ext4-DAX, FUSE "
                    "against it, and the default mode (no poller) against it",
            "note": "no goal set: reported beside the default mode's headline figures"}


def zuf_write_breakdown(rows):
    """Where a zuf.ko 4 KiB write's time goes in the guest (informational, no goal): zpmfs's own
    work (in-process, same guest), the round trip between two processes on one vCPU (the floor
    under any hand-over to a server thread), and what remains (zuf.ko and zus beyond both)."""
    zuf = find(rows, "guest_zpmfs_zuf", "randwrite_4k")
    inproc = find(rows, "guest_zpmfs_inprocess", "randwrite_4k")
    rtt = find(rows, "guest_switch_floor", "pipe_process_rtt")
    ext4 = find(rows, "guest_ext4_dax", "randwrite_4k")
    if not zuf or not inproc or not rtt:
        return None
    out = {"what": "guest (TCG): mean latency in us of a fio 4 KiB randwrite over zuf.ko, 1 job, "
                   "against zpmfs in-process (zbench inproc) and a pipe round trip between two "
                   "processes on one vCPU (zbench switch); rest = zuf - in-process - round trip",
           "zuf_write_us": round(zuf["mean_us"], 3),
           "inprocess_write_us": round(inproc["mean_us"], 3),
           "process_round_trip_us": round(rtt["mean_us"], 3),
           "rest_us": round(zuf["mean_us"] - inproc["mean_us"] - rtt["mean_us"], 3)}
    if ext4:
        out["ext4_dax_write_us"] = round(ext4["mean_us"], 3)
        # The best any server round trip could do: ext4-DAX's time would need the round trip
        # and zpmfs's work to fit in it.
        out["floor_vs_ext4dax"] = round((inproc["mean_us"] + rtt["mean_us"]) / ext4["mean_us"], 3)
    return out


def extra_ratios(rows):
    """Informational ratios (no goals) for every thread count and workload both sides ran."""
    out = {}
    threads = sorted({r["threads"] for r in rows})
    for t in threads:
        for wl in ("randwrite_4k", "randwrite_4k_unpinned", "randread_4k", "append_4k_fdatasync",
                   "seqwrite_64k", "seqread_64k"):
            for num, den in (("zpmfs_fuse", "null_fuse"), ("zpmfs_fuse", "tmpfs"),
                             ("zpmfs_fuse_uring", "zpmfs_fuse"), ("zpmfs_fuse_uring", "null_fuse"),
                             ("guest_zpmfs_zuf", "guest_ext4_dax"), ("guest_zpmfs_zuf", "guest_xfs_dax"),
                             ("guest_zpmfs_zuf_poll", "guest_ext4_dax"),
                             ("guest_zpmfs_fuse", "guest_zpmfs_zuf")):
                v = ratio(rows, num, den, wl, t)
                if v is not None:
                    out[f"{num}_vs_{den}.{wl}.t{t}"] = round(v, 3)
        for num, den in (("zpmfs_inprocess", "floor"),):
            v = _ratio2(rows, (num, "randwrite_4k"), (den, "nova_append_4k"), t)
            if v is not None:
                out[f"inprocess_vs_nova_floor.t{t}"] = round(v, 3)
        for num, den in (("zpmfs_fuse", "null_fuse"), ("zpmfs_fuse", "tmpfs"),
                         ("zpmfs_fuse_uring", "zpmfs_fuse"), ("guest_zpmfs_zuf", "guest_ext4_dax"),
                         ("guest_zpmfs_zuf_poll", "guest_ext4_dax")):
            v = geomean_ratio(rows, num, den, "meta_", t)
            if v is not None:
                out[f"meta_{num}_vs_{den}.geomean.t{t}"] = round(v, 3)
    return out


# ---------------------------------------------------------------------------------------------
# SVG: grouped horizontal bars, no third-party libraries.

COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
          "#9c755f", "#bab0ac"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_bars(title, unit, groups, path, log_scale=False):
    """groups: [(group label, [(bar label, value)])]."""
    bars = sum(len(g[1]) for g in groups)
    row_h, left, width = 16, 230, 760
    height = 50 + bars * row_h + len(groups) * 10
    vals = [v for _, bl in groups for _, v in bl if v and v > 0]
    vmax = max(vals) if vals else 1
    vmin = min(vals) if vals else 1

    def scale(v):
        if not v or v <= 0:
            return 0
        if log_scale:
            lo = math.log10(vmin) - 0.3
            return (math.log10(v) - lo) / (math.log10(vmax) - lo) * (width - left - 90)
        return v / vmax * (width - left - 90)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="10" y="18" font-size="14" font-weight="bold">{esc(title)}</text>',
           f'<text x="10" y="34" fill="#555">{esc(unit)}{" (log scale)" if log_scale else ""}</text>']
    y = 44
    targets = sorted({b for _, bl in groups for b, _ in bl})
    color = {t: COLORS[i % len(COLORS)] for i, t in enumerate(targets)}
    for glabel, bl in groups:
        out.append(f'<text x="10" y="{y + row_h * len(bl) / 2 + 4:.0f}" font-weight="bold">{esc(glabel)}</text>')
        for label, v in bl:
            w = scale(v)
            out.append(f'<text x="{left - 4}" y="{y + 12}" text-anchor="end">{esc(label)}</text>')
            out.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" fill="{color[label]}"/>')
            txt = "n/a" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}">{txt}</text>')
            y += row_h
        y += 10
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def plots(rows, outdir):
    pdir = os.path.join(outdir, "plots")
    os.makedirs(pdir, exist_ok=True)
    made = []
    workloads = sorted({r["workload"] for r in rows})
    for wl in workloads:
        sel = [r for r in rows if r["workload"] == wl]
        threads = sorted({r["threads"] for r in sel})
        for metric, unit, log_scale in (("ops_per_s", "operations per second", False),
                                        ("mean_us", "mean latency, microseconds", True)):
            groups = []
            for t in threads:
                bl = sorted(((r["target"], r[metric]) for r in sel if r["threads"] == t), key=lambda x: x[0])
                groups.append((f"{t} thread{'s' if t > 1 else ''}", bl))
            name = f"{wl}.{metric}.svg"
            svg_bars(f"{wl}: {metric}", unit, groups, os.path.join(pdir, name), log_scale)
            made.append(name)
    # The 4 KiB random write across every target, host and guest, at one thread.
    bl = []
    for r in rows:
        if r["threads"] != 1:
            continue
        if r["workload"] == "randwrite_4k":
            bl.append((r["target"], r["mean_us"]))
        elif r["target"] == "floor" and r["workload"] in ("nova_append_4k", "nova_append_4k_locked"):
            bl.append((f"floor {r['workload']}", r["mean_us"]))
    if bl:
        svg_bars("4 KiB random write, 1 thread: every target", "mean latency, microseconds",
                 [("", sorted(bl))], os.path.join(pdir, "overview_randwrite_4k.svg"), True)
        made.append("overview_randwrite_4k.svg")
    return made


# ---------------------------------------------------------------------------------------------

def fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "PASS" if v else "FAIL"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 1000 else f"{v:.{digits}g}"
    return str(v)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench/report.py RESULTS_DIR")
    outdir = sys.argv[1]
    rows, other = load(outdir)
    rows.sort(key=lambda r: (r["workload"], r["threads"], r["target"]))
    machine = next((o for o in other if o.get("kind") == "machine"), {})
    guest_machine = next((o for o in other if o.get("kind") == "guest_machine"), None)
    done = next((o for o in other if o.get("kind") == "done"), {})
    mounts = {o["what"]: o for o in other if o.get("kind") == "mount"}
    populate = next((r for r in other if r.get("workload") == "populate"), None)
    heads, mem = headline(rows, other)

    fields = ["target", "workload", "threads", "ops_per_s", "mean_us", "p50_us", "p99_us", "ops"]
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(r[k], 3) if isinstance(r.get(k), float) else r.get(k)) for k in fields})

    made = plots(rows, outdir)
    summary = dict(heads)
    summary["mount_secs_clean"] = mounts.get("clean", {}).get("secs")
    summary["mount_secs_after_kill9"] = mounts.get("crash", {}).get("secs")
    summary["mount_files"] = mounts.get("clean", {}).get("files")
    summary["memory"] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in mem.items()}
    summary["populate"] = populate
    summary["ratio_fuse_uring_vs_fuse"] = uring_ratio(rows)
    summary["ratio_inprocess_vs_locked_floor"] = locked_floor_ratio(rows)
    summary["ratio_fuse_vs_null_fuse_unpinned"] = unpinned_fuse_ratio(rows)
    # What the machine itself allows: the persistence floor's scaling, bare and under a lock.
    bare, n = scaling(rows, "floor", "nova_append_4k")
    locked, _ = scaling(rows, "floor", "nova_append_4k_locked")
    summary["scaling_floor"] = None if bare is None else {
        "threads": n, "append": round(bare, 3), "append_locked": None if locked is None else round(locked, 3),
        "what": "the NOVA-style append's op/s at the most threads / at 1 thread (each thread its own "
                "region), bare and under a per-thread lock: the scaling the machine allows"}
    summary["other_ratios"] = extra_ratios(rows)
    summary["zuf_write_breakdown_guest"] = zuf_write_breakdown(rows)
    summary["zuf_poll_guest"] = zuf_poll_ratios(rows)
    summary["ratio_numa_remote_vs_local_host"] = numa_ratio(rows, "")
    summary["ratio_numa_remote_vs_local_guest"] = numa_ratio(rows, "guest_")
    summary["numa_spill"] = [o for o in other if o.get("kind") == "numa_spill"]
    summary["machine"] = machine
    summary["guest_machine"] = guest_machine
    summary["run_secs"] = done.get("secs")
    summary["host_secs"] = done.get("host_secs")
    summary["guest_status"] = next((o for o in other if o.get("kind") == "guest_status"), None)
    summary["loadavg_end"] = done.get("loadavg_end")
    summary["results"] = rows
    summary["plots"] = made
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=False)
        f.write("\n")

    md = [f"# zpmfs benchmarks ({machine.get('mode', '?')})", "",
          f"Run {machine.get('date', '?')} on {machine.get('host', '?')}: {machine.get('cpus', '?')} CPUs "
          f"({machine.get('cpu_model', '?')}), {machine.get('mem_gib', '?')} GiB, Linux {machine.get('kernel', '?')}, "
          f"{machine.get('fio', '')}, commit {machine.get('commit', '?')}; load average "
          f"{machine.get('loadavg_start', '?')} at the start, {done.get('loadavg_end', '?')} at the end; "
          f"{done.get('secs', '?')} s in all ({done.get('host_secs', '?')} s on the host). {machine.get('secs', '?')} s per measurement, "
          f"{machine.get('file_mib', '?')} MiB per file.", ""]
    if guest_machine:
        md += [f"Guest: {guest_machine.get('desc', '')}", ""]
    gstat = next((o for o in other if o.get("kind") == "guest_status"), None)
    if gstat and gstat.get("exit") != 0:
        md += [f"The guest part failed (exit {gstat.get('exit')}); see raw/guest/guest.log.", ""]
    md += ["| figure | value (means) | value (medians) | goal | result |", "|---|---|---|---|---|"]
    for key in GOALS:
        h = heads[key]
        goal = "none set" if h["goal"] is None else f"{h['goal_op']} {h['goal']}"
        res = "not run" if h["value"] is None else ("reported" if h["pass"] is None else fmt(h["pass"]))
        med = fmt(h.get("value_p50")) if "value_p50" in h else ""
        md.append(f"| `{key}` | {fmt(h['value'])} | {med} | {goal} | {res} |")
    md += ["", "| other figure | value |", "|---|---|",
           f"| mount after clean unmount, {summary['mount_files'] or '?'} files | {fmt(summary['mount_secs_clean'])} s |",
           f"| mount after kill -9, {summary['mount_files'] or '?'} files | {fmt(summary['mount_secs_after_kill9'])} s |"]
    def figure_row(label, figure, fields):
        """One row of an informational figure: its fields, in order, separated by '; '."""
        if figure:
            md.append(f"| {label} | {'; '.join(fmt(figure[f]) for f in fields)} |")

    figure_row("`ratio_fuse_uring_vs_fuse` (FUSE over io_uring / /dev/fuse, randwrite_4k 1 job, "
               "mean; median)", summary["ratio_fuse_uring_vs_fuse"], ("value", "value_p50"))
    figure_row("`ratio_inprocess_vs_locked_floor` (in-process / NOVA append under a per-file lock, "
               "mean; median; the lock release alone, us)", summary["ratio_inprocess_vs_locked_floor"],
               ("value", "value_p50", "lock_release_us"))
    figure_row("`ratio_fuse_vs_null_fuse_unpinned` (fio not pinned, mean; median; io_uring / null)",
               summary["ratio_fuse_vs_null_fuse_unpinned"], ("value", "value_p50", "uring_vs_null"))
    if summary["scaling_floor"]:
        figure_row(f"scaling of the persistence floor, {summary['scaling_floor']['threads']} threads / 1 "
                   "(NOVA append; the same under a lock)", summary["scaling_floor"], ("append", "append_locked"))
    figure_row("guest, zuf.ko with its polling channel: write / ext4-DAX (mean; median); metadata "
               "/ ext4-DAX; FUSE / it; default mode / it", summary["zuf_poll_guest"],
               ("zuf_poll_vs_ext4dax_lat", "zuf_poll_vs_ext4dax_lat_p50", "meta_zuf_poll_vs_ext4dax",
                "fuse_vs_zuf_poll", "zuf_default_vs_poll"))
    b = summary["zuf_write_breakdown_guest"]
    if b:
        md.append(f"| guest: zuf.ko 4 KiB write = zpmfs in-process + process round trip + rest (us) | "
                  f"{fmt(b['zuf_write_us'])} = {fmt(b['inprocess_write_us'])} + "
                  f"{fmt(b['process_round_trip_us'])} + {fmt(b['rest_us'])} |")
        if "floor_vs_ext4dax" in b:
            md.append(f"| guest: (in-process + round trip) / ext4-DAX write, the best a server round "
                      f"trip allows | {fmt(b['floor_vs_ext4dax'])} |")
    for k in ("dram_bytes_per_dentry_readdir_only", "dram_bytes_per_inode_after_crash_mount"):
        if mem.get(k) is not None:
            md.append(f"| `{k}` | {fmt(mem[k])} |")
    if populate:
        md.append(f"| in-process create (populate), files/s | {fmt(populate.get('ops_per_s'))} |")
    for where in ("host", "guest"):
        n = summary.get(f"ratio_numa_remote_vs_local_{where}")
        if n:
            md.append(f"| device set, remote / local placement latency ({where}) | {fmt(n['value'])} "
                      f"({fmt(n['remote_mean_us'])} / {fmt(n['local_mean_us'])} us) |")
    md += ["", "What each headline figure is:", ""]
    for key in GOALS:
        md.append(f"- `{key}`: {heads[key]['what']}.")
    md += ["", "## All results", "",
           "| workload | threads | target | op/s | mean us | p50 us | p99 us |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['workload']} | {r['threads']} | {r['target']} | {fmt(float(r['ops_per_s']))} | "
                  f"{fmt(r['mean_us'])} | {fmt(r['p50_us'])} | {fmt(r['p99_us'])} |")
    md += ["", "Plots: " + ", ".join(f"[{p}](plots/{p})" for p in made), ""]
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    main()
