#!/usr/bin/env python3
"""Makes a conversation-like WAV from a speech WAV: SPEECH_S seconds of
the speech, then PAUSE_S seconds of digital silence (the other party's
turn, which a DTX sender fills with comfort-noise refreshes only), and
so on to the end of the speech.

Usage: jitter/scripts/turns_wav.py IN.wav OUT.wav [SPEECH_S [PAUSE_S]]
(defaults 4 and 3). 16-bit mono in, 16-bit mono out, same rate.
"""
import sys
import wave


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    speech_s = float(sys.argv[3]) if len(sys.argv) > 3 else 4.0
    pause_s = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    with wave.open(src) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{src}: need 16-bit mono")
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    turn = int(speech_s * rate) * 2
    silence = bytes(int(pause_s * rate) * 2)
    out = b"".join(pcm[i : i + turn] + silence for i in range(0, len(pcm), turn))
    with wave.open(dst, "wb") as o:
        o.setnchannels(1)
        o.setsampwidth(2)
        o.setframerate(rate)
        o.writeframes(out)


if __name__ == "__main__":
    main()
