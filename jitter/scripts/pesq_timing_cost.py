#!/usr/bin/env python3
"""What one change of timing costs in PESQ-WB, by where it falls.

Takes the first 12 s of the evaluation's speech (16 kHz, unencoded) and
scores copies with a change of timing put in at random places (seeded):
silence of 10-120 ms in speech (loud 10 ms blocks) or in a pause (quiet
ones), once or twice; and the same time stretched into speech one pitch
period per 20 ms frame, or repeated from the 10 ms before as one fading
block. Prints one line per case with the four (or three) scores.

Usage: jitter/scripts/pesq_timing_cost.py  (with the `pesq` venv that
`cargo xtask setup` makes, e.g. /var/tmp/sotto-target/py-venv/bin/python3)
"""
import os
import wave

import numpy as np
from pesq import pesq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPEECH = os.path.join(ROOT, "testdata/speech/asterisk_en_16k_g722dec/dir-intro.wav")
BLOCK = 160  # 10 ms at 16 kHz


def load(seconds=12):
    with wave.open(SPEECH) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    return rate, x[: seconds * rate]


def blocks_by_energy(ref):
    """Indices of loud (top 30 %) and quiet (bottom 10 %) 10 ms blocks."""
    e = np.array([np.mean(ref[i : i + BLOCK] ** 2) for i in range(0, len(ref) - BLOCK, BLOCK)])
    inner = range(20, len(e) - 60)
    loud = [i for i in inner if e[i] > np.percentile(e, 70)]
    quiet = [i for i in inner if e[i] < np.percentile(e, 10)]
    return loud, quiet


def insert(d, at, piece):
    return np.concatenate([d[:at], piece, d[at:]])


def pitch_period(d, at):
    """Lag (2.5-15 ms) of the best normalised self-correlation at `at`."""
    best, best_c = 80, -1.0
    for t in range(40, 241):
        a, b = d[at : at + t], d[at + t : at + 2 * t]
        c = np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b) + 1e-9)
        if c > best_c:
            best, best_c = t, c
    return best


def stretch(d, first_block, ms, rate):
    """Adds `ms` by repeating one pitch period (cross-faded) per 20 ms frame."""
    added, frame = 0, 0
    while added < ms * rate / 1000 and frame < 40:
        at = (first_block + 2 * frame) * BLOCK + added
        t = pitch_period(d, at)
        fade = np.linspace(0, 1, t)
        a, b = d[at : at + t], d[at + t : at + 2 * t]
        d = insert(d, at + t, b * (1 - fade) + a * fade)
        added += t
        frame += 1
    return d


def main():
    rate, ref = load()
    score = lambda d: pesq(rate, ref, d, "wb")
    loud, quiet = blocks_by_energy(ref)
    print(f"unchanged {score(ref):.2f}")
    rng = np.random.default_rng(3)
    for where, pool in (("speech", loud), ("pause", quiet)):
        for ms in (10, 30, 60, 120):
            gap = np.zeros(ms * rate // 1000)
            once = [score(insert(ref, int(rng.choice(pool)) * BLOCK, gap)) for _ in range(4)]
            twice = []
            for _ in range(3):
                d = ref
                for b in sorted(rng.choice(pool, 2, replace=False))[::-1]:
                    d = insert(d, int(b) * BLOCK, gap)
                twice.append(score(d))
            print(f"silence in {where} {ms} ms: once", " ".join(f"{s:.2f}" for s in once),
                  " twice", " ".join(f"{s:.2f}" for s in twice))
    rng = np.random.default_rng(5)
    for ms in (30, 60, 120):
        stretched, repeated = [], []
        for _ in range(4):
            b = int(rng.choice(loud))
            stretched.append(score(stretch(ref, b, ms, rate)))
            n = ms * rate // 1000
            at = b * BLOCK
            piece = np.tile(ref[at - BLOCK : at], n // BLOCK + 1)[:n] * np.linspace(1, 0.2, n)
            repeated.append(score(insert(ref, at, piece)))
        print(f"{ms} ms into speech: stretched", " ".join(f"{s:.2f}" for s in stretched),
              " as one block", " ".join(f"{s:.2f}" for s in repeated))


if __name__ == "__main__":
    main()
