#!/usr/bin/env python3
"""How PESQ-WB scores small changes of timing, the operations a jitter
buffer makes: the first 12 s of a speech WAV are scored against copies
with a few 10 ms edits, in speech or in pauses.

Usage: jitter/scripts/pesq_timing.py [WAV]   (16 kHz mono; default: the
evaluation's speech, testdata/speech/asterisk_en_16k_g722dec/dir-intro.wav)
Needs numpy and pesq (the venv that `cargo xtask setup` makes has both).

Edits (each at the start of a 10 ms block):
  gap        10 ms of silence inserted (a wait with nothing to play)
  repeat     the previous 10 ms played again, no cross-fade
  cut        10 ms removed, no cross-fade
  period+    one pitch period inserted, cross-faded (time stretching)
  period-    one pitch period removed, cross-faded (time stretching)
  lost       20 ms replaced by the 20 ms before it, fading out (a lost
             frame under a crude concealment: no change of timing)
Places: "speech" = blocks among the loudest 30 %; "pause" = blocks with
no sample above 300 within 20 ms either side.

Then longer changes, once per placement, to see whether the cost grows
with the length: a gap of 10, 30, 60 or 120 ms (silence) in speech or
in a pause, and the same time added to speech by stretching (one pitch
period, cross-faded, per 20 ms from the placement on).
"""
import sys
import wave
from pathlib import Path

import numpy as np
from pesq import pesq

RATE = 16_000
BLOCK = RATE // 100  # 10 ms
TRIALS = 4


def load(path):
    with wave.open(str(path)) as w:
        if w.getframerate() != RATE or w.getnchannels() != 1:
            sys.exit(f"{path}: need 16 kHz mono")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return x.astype(np.float64)[: 12 * RATE]


def pitch_period(x, at):
    """The lag (2.5-15 ms) at which x[at:] best repeats itself."""
    seg = x[at : at + 2 * 240]
    best, best_c = 40, -2.0
    for t in range(40, 241):
        a, b = seg[:t], seg[t : 2 * t]
        c = np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b) + 1e-9)
        if c > best_c:
            best, best_c = t, c
    return best


def edit(x, at, kind):
    if kind == "gap":
        return np.concatenate([x[:at], np.zeros(BLOCK), x[at:]])
    if kind == "repeat":
        return np.concatenate([x[:at], x[at - BLOCK : at], x[at:]])
    if kind == "cut":
        return np.concatenate([x[:at], x[at + BLOCK :]])
    if kind == "lost":
        y = x.copy()
        y[at : at + 2 * BLOCK] = x[at - 2 * BLOCK : at] * np.linspace(1.0, 0.0, 2 * BLOCK)
        return y
    t = pitch_period(x, at)
    a, b = x[at : at + t], x[at + t : at + 2 * t]
    up = np.linspace(0.0, 1.0, t)
    if kind == "period+":
        return np.concatenate([x[: at + t], b * (1 - up) + a * up, x[at + t :]])
    return np.concatenate([x[:at], a * (1 - up) + b * up, x[at + 2 * t :]])


def lengthen(x, at, kind, ms):
    """Adds `ms` at `at`: one gap of silence, or pitch periods stretched in
    (`period+`), one per 20 ms from `at` on, until at least `ms` is added."""
    n = ms * RATE // 1000
    if kind == "gap":
        return np.concatenate([x[:at], np.zeros(n), x[at:]])
    y, added = x, 0
    while added < n:
        before = len(y)
        y = edit(y, at + added, "period+")
        added += len(y) - before
        at += 2 * BLOCK
    return y


def main():
    default = Path(__file__).resolve().parents[2] / "testdata/speech/asterisk_en_16k_g722dec/dir-intro.wav"
    ref = load(sys.argv[1] if len(sys.argv) > 1 else default)
    blocks = len(ref) // BLOCK - 4
    power = np.array([np.mean(ref[i * BLOCK : (i + 1) * BLOCK] ** 2) for i in range(blocks)])
    peak = np.array([np.abs(ref[i * BLOCK : (i + 1) * BLOCK]).max() for i in range(blocks)])
    places = {
        "speech": [i for i in range(2, blocks) if power[i] > np.percentile(power, 70)],
        "pause": [i for i in range(2, blocks - 2) if peak[i - 2 : i + 3].max() < 300],
    }
    print(f"unedited: {pesq(RATE, ref, ref, 'wb'):.2f}")
    print("place   edit      k  PESQ-WB mean (min-max over", TRIALS, "placements)")
    rng = np.random.default_rng(1)
    for place, where in places.items():
        for kind in ("gap", "repeat", "cut", "period+", "period-", "lost"):
            for k in (1, 3):
                scores = []
                for _ in range(TRIALS):
                    y = ref
                    # From the end, so earlier positions stay where they were.
                    for b in sorted(rng.choice(where, k, replace=False), reverse=True):
                        y = edit(y, b * BLOCK, kind)
                    scores.append(pesq(RATE, ref, y, "wb"))
                print(f"{place:7} {kind:8} {k:2}  {np.mean(scores):.2f} "
                      f"({min(scores):.2f}-{max(scores):.2f})")
    print("place   change    ms  PESQ-WB mean (min-max over", TRIALS, "placements)")
    rng = np.random.default_rng(3)
    for place, kind in (("speech", "gap"), ("pause", "gap"), ("speech", "stretch")):
        for ms in (10, 30, 60, 120):
            scores = [pesq(RATE, ref, lengthen(ref, int(rng.choice(places[place])) * BLOCK, kind, ms), "wb")
                      for _ in range(TRIALS)]
            print(f"{place:7} {kind:8} {ms:3}  {np.mean(scores):.2f} "
                  f"({min(scores):.2f}-{max(scores):.2f})")


if __name__ == "__main__":
    main()
