#!/usr/bin/env python3
"""Print the PESQ MOS-LQO of a degraded WAV against a reference WAV.

Usage: pesq_score.py REFERENCE.wav DEGRADED.wav [wb|nb]

Both files must be mono 16-bit PCM at the same rate (16 kHz for wb,
8 or 16 kHz for nb). Uses the PyPI `pesq` package (ITU-T P.862 reference
code) and numpy. Prints one number on stdout.

Exit codes: 0 ok, 1 usage or file error, 2 `pesq`/numpy missing,
3 PESQ could not score the pair (e.g. no speech found).
"""

import sys
import wave


def read_wav(path):
    import numpy as np

    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need mono 16-bit PCM")
        rate = w.getframerate()
        data = w.readframes(w.getnframes())
    # Same scaling as soundfile's float read: int16 / 32768.
    return rate, np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] not in ("wb", "nb")):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 1
    mode = argv[3] if len(argv) == 4 else "wb"
    try:
        import numpy  # noqa: F401
        from pesq import pesq
    except ImportError as e:
        print(f"missing Python module: {e}", file=sys.stderr)
        return 2
    try:
        ref_rate, ref = read_wav(argv[1])
        deg_rate, deg = read_wav(argv[2])
    except (OSError, ValueError, EOFError, wave.Error) as e:
        print(f"cannot read input: {e}", file=sys.stderr)
        return 1
    if ref_rate != deg_rate:
        print(f"rates differ: {ref_rate} vs {deg_rate}", file=sys.stderr)
        return 1
    try:
        score = pesq(ref_rate, ref, deg, mode)
    except Exception as e:  # the package raises its own error classes
        print(f"PESQ failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(repr(float(score)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
