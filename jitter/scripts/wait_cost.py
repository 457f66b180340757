#!/usr/bin/env python3
"""What one wait inside speech costs in PESQ-WB, through the real pipeline.

Runs `sotto-jitter eval` on a steady link (a mahimahi trace with a delivery
opportunity every ms: 30 ms of propagation and nothing else), then on the
same link with a capacity gap of GAP ms starting under a word about every
6 s (19 gaps in 120 s; the packet sent into the gap and those behind it
queue, as on LTE). A buffer that plays below GAP waits at each; fixed
200 ms does not. Prints each buffer's PESQ-WB, Sotto's waits inside speech
(as `window_events.py` counts them: delay up by 5 ms or more between two
speech frames of `packets.csv`)
and the PESQ-WB each costs, against the steady link.

Usage: jitter/scripts/wait_cost.py OUT_DIR [GAP_MS ...]   (default 30 60 120)
Needs the `pesq` venv (`cargo xtask setup`); builds the eval binary first.
"""
import csv
import json
import os
import subprocess
import sys

from window_events import windows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "sotto-jitter")
SECONDS = 120
EVERY_MS = 6_000


def trace(path, gaps, gap_ms):
    holes = {t for g in gaps for t in range(g, g + gap_ms)}
    with open(path, "w") as f:
        f.writelines(f"{t}\n" for t in range(1, (SECONDS + 5) * 1000) if t not in holes)


def run(out, trace_path):
    """Runs the eval into `out`: (buffers of summary.json, packets.csv rows,
    Sotto's waits inside speech)."""
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    env.setdefault("SOTTO_PYTHON", os.path.join(TARGET, "py-venv", "bin", "python3"))
    subprocess.run(
        [BIN, "eval", "--trace", trace_path, "--format", "mahimahi", "--seconds", str(SECONDS),
         "--out", out, "--json", "--fixed-ms", "200"],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        buffers = json.load(f)["buffers"]
    with open(os.path.join(out, "packets.csv")) as f:
        rows = list(csv.DictReader(f))
    waits = sum(w for _, w, _, _ in windows(out, "sotto"))
    return buffers, rows, waits


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    gap_lengths = [int(g) for g in sys.argv[2:]] or [30, 60, 120]
    os.makedirs(out, exist_ok=True)
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "sotto-jitter", "--features", "eval",
                    "--bin", "sotto-jitter"], check=True, cwd=ROOT,
                   env=dict(os.environ, CARGO_TARGET_DIR=TARGET))
    steady = os.path.join(out, "steady.trace")
    trace(steady, [], 0)
    base, rows, base_waits = run(os.path.join(out, "steady"), steady)
    # Gap starts: a frame with 200 ms of speech either side, every 6 s.
    quiet = {int(r["frame"]): r["quiet"] == "1" for r in rows}
    send = {int(r["frame"]): float(r["send_ms"]) for r in rows}
    gaps, last = [], -EVERY_MS
    for f in sorted(quiet):
        t = send[f]
        if t - last >= EVERY_MS and 3_000 <= t <= (SECONDS - 2) * 1000 and all(
                quiet.get(g) is False for g in range(f - 10, f + 11)):
            gaps.append(int(t))
            last = t
    names = ("sotto", "speex", "fixed_200")
    print("link        " + "".join(f"{n:>11}" for n in names) + "   sotto waits  PESQ-WB per wait")
    print("steady      " + "".join(f"{base[n]['pesq_wb']:>11.3f}" for n in names)
          + f"   {base_waits:>11}")
    for gap in gap_lengths:
        path = os.path.join(out, f"gap{gap}.trace")
        trace(path, gaps, gap)
        buffers, _, waits = run(os.path.join(out, f"gap{gap}"), path)
        cost = (base["sotto"]["pesq_wb"] - buffers["sotto"]["pesq_wb"]) / max(waits, 1)
        windows = len(buffers["sotto"]["pesq_wb_windows"])
        print(f"{len(gaps)} x {gap:>3} ms " + "".join(f"{buffers[n]['pesq_wb']:>11.3f}" for n in names)
              + f"   {waits:>11}  {cost * windows:.2f} of a window's score")


if __name__ == "__main__":
    main()
