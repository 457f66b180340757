#!/usr/bin/env python3
"""Where a buffer's PESQ-WB goes: changes of timing inside speech per window.

For each trace directory of an `eval_all.sh` run (packets.csv and
summary.json), counts in each PESQ window (`pesq_wb_windows`; taken here
as equal runs of frames: the evaluation cuts its windows of about 12 s
in pauses, so a change near a window's edge may be counted in the
window next to it) the buffer's changes of timing between two speech
frames (the `quiet` column
is 0 for both): waits (delay up by 5 ms or more) and runs of
acceleration (delay down), each run of consecutive frames counted once,
and the frames it did not play. Then fits, over all windows, PESQ-WB =
base + a * waits + b * acceleration runs + c * frames not played, by
least squares, and prints the fit and the totals.

Usage: jitter/scripts/window_events.py OUT_DIR [BUFFER] [TRACE_PREFIX...]
(BUFFER defaults to sotto; prefixes default to the LTE traces and rural;
needs numpy, e.g. the `pesq` venv's python)
"""
import csv
import json
import os
import sys

import numpy as np

DEFAULT_TRACES = ("ATT-LTE", "TMobile-LTE", "Verizon-LTE", "rural")
FRAME_MS = 20


def windows(trace_dir, buffer):
    """(PESQ-WB, waits, acceleration runs, frames not played) per window."""
    with open(os.path.join(trace_dir, "summary.json")) as f:
        scores = json.load(f)["buffers"][buffer]["pesq_wb_windows"]
    n = len(scores)
    waits, runs, lost = [0] * n, [0] * n, [0] * n
    column = f"{buffer}_playout_delay_ms"
    with open(os.path.join(trace_dir, "packets.csv")) as f:
        rows = list(csv.DictReader(f))
    window_frames = len(rows) / n
    previous_event = None
    for before, row in zip(rows, rows[1:]):
        w = min(int(int(row["frame"]) / window_frames), n - 1)
        a, b = before[column], row[column]
        if b in ("", "nan"):
            lost[w] += 1
            continue
        if a in ("", "nan"):
            continue
        change = float(b) - float(a)
        speech = before["quiet"] == "0" and row["quiet"] == "0"
        event = None
        if speech and change >= 5:
            event = "wait"
        elif speech and change <= -1:
            event = "accelerate"
        if event and event != previous_event:
            (waits if event == "wait" else runs)[w] += 1
        previous_event = event
    return list(zip(scores, waits, runs, lost))


def main():
    out = sys.argv[1]
    buffer = sys.argv[2] if len(sys.argv) > 2 else "sotto"
    prefixes = tuple(sys.argv[3:]) or DEFAULT_TRACES
    rows = []
    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if os.path.isdir(d) and name.startswith(prefixes):
            rows += windows(d, buffer)
    y = np.array([r[0] for r in rows])
    x = np.array([[1.0, r[1], r[2], r[3]] for r in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    print(f"{len(rows)} windows of {buffer}: PESQ-WB = {coef[0]:.2f}"
          f" {coef[1]:+.3f} per wait {coef[2]:+.3f} per acceleration run"
          f" {coef[3]:+.4f} per frame not played")
    print(f"totals: {int(x[:, 1].sum())} waits, {int(x[:, 2].sum())} acceleration runs,"
          f" {int(x[:, 3].sum())} frames not played")


if __name__ == "__main__":
    main()
