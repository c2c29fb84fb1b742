"""What the reproducible espeak-ng path pays per utterance, and what the fork in it costs.

Run: NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 .venv/bin/python bench/tts_fork.py [--n 200]

`speech.espeak.PristineEspeak` forks one child of a small server per utterance so every utterance
starts from the same library state (same samples in any process and order). Prints, measured side
by side in this run:
- ms per utterance: the reproducible path (server + fork + pipe) against synthesis in this
  process (`EspeakLib`, whose output depends on what it spoke before), and their ratio;
- ms per fork + exit of a child of a process holding the initialised library, without and with
  numpy loaded (why the server never imports numpy), and their ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from duplexalign.speech.espeak import EspeakLib, PristineEspeak

TEXT = "the capital of france is paris, as note {} says"
VOICE, PARAMS = "en-us+m3", {1: 165, 3: 45}

FORKS = """
import os, sys, time
from duplexalign.speech.espeak import EspeakLib
EspeakLib.get().lib.espeak_SetVoiceByName(b"en-us")
if sys.argv[2] == "numpy":
    import numpy
n = int(sys.argv[1])
t = time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print((time.perf_counter() - t) / n)
"""


def per_utterance(synth, n: int) -> float:
    synth(TEXT.format("warm"), VOICE, PARAMS)
    t = time.perf_counter()
    for i in range(n):
        synth(TEXT.format(i), VOICE, PARAMS)
    return (time.perf_counter() - t) / n


def fork_exit(n: int, numpy: bool) -> float:
    out = subprocess.run([sys.executable, "-c", FORKS, str(n), "numpy" if numpy else "-"],
                         check=True, capture_output=True, text=True, env=os.environ)
    return float(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="utterances (and forks) per figure")
    args = ap.parse_args()
    pristine = per_utterance(PristineEspeak.get().synth, args.n)
    local = per_utterance(EspeakLib.get().synth, args.n)
    bare, numpy = fork_exit(args.n, False), fork_exit(args.n, True)
    print(f"reproducible (server, one fork per utterance): {1e3 * pristine:6.2f} ms/utterance")
    print(f"in this process (not reproducible):            {1e3 * local:6.2f} ms/utterance")
    print(f"ratio reproducible / in process:               {pristine / local:6.2f}x")
    print(f"fork + exit, espeak loaded:                    {1e3 * bare:6.2f} ms")
    print(f"fork + exit, espeak and numpy loaded:          {1e3 * numpy:6.2f} ms "
          f"({numpy / bare:.2f}x)")


if __name__ == "__main__":
    main()
