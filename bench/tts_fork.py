"""What the reproducible espeak-ng path pays per utterance, and what the fork in it costs.

Run: NO_TORCH_COMPILE=1 OMP_NUM_THREADS=1 .venv/bin/python bench/tts_fork.py [--n 200]

`speech.espeak.PristineEspeak` forks one child of a small server per utterance so every utterance
starts from the same library state (same samples in any process and order). Prints, measured side
by side in this run:
- ms per utterance: the reproducible path (server + fork + pipe) against synthesis in this
  process (`LocalEspeak`, whose output depends on what it spoke before), and their ratio;
- ms per fork + exit of a child of a process holding the initialised library: the server as it
  runs (`python -I -S`, standard modules only) against one that also has numpy and the client's
  modules loaded (as the server had when it was `python -m duplexalign.speech.espeak`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from duplexalign.speech import espeak_server
from duplexalign.speech.espeak import LocalEspeak, PristineEspeak, _paths

TEXT = "the capital of france is paris, as note {} says"
VOICE, PARAMS = "en-us+m3", {1: 165, 3: 45}

FORKS = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from espeak_server import EspeakLib
EspeakLib(sys.argv[2], sys.argv[3]).lib.espeak_SetVoiceByName(b"en-us")
if sys.argv[5] == "heavy":  # what the server had loaded when it was `-m duplexalign.speech.espeak`
    import subprocess, threading, typing, numpy
n = int(sys.argv[4])
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


def fork_exit(n: int, heavy: bool) -> float:
    """Seconds per fork + exit of a process holding the initialised library: the server as it
    runs (`python -I -S`, standard modules only), or with numpy and the client's modules."""
    flags = [] if heavy else ["-I", "-S"]
    args = [os.path.dirname(espeak_server.__file__), *_paths(), str(n), "heavy" if heavy else "-"]
    out = subprocess.run([sys.executable, *flags, "-c", FORKS, *args], check=True,
                         capture_output=True, text=True)
    return float(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="utterances (and forks) per figure")
    args = ap.parse_args()
    pristine = per_utterance(PristineEspeak.get().synth, args.n)
    local = per_utterance(LocalEspeak.get().synth, args.n)
    bare, heavy = fork_exit(args.n, False), fork_exit(args.n, True)
    print(f"reproducible (server, one fork per utterance): {1e3 * pristine:6.2f} ms/utterance")
    print(f"in this process (not reproducible):            {1e3 * local:6.2f} ms/utterance")
    print(f"ratio reproducible / in process:               {pristine / local:6.2f}x")
    print(f"fork + exit, the server as it runs:            {1e3 * bare:6.2f} ms")
    print(f"fork + exit, with numpy and the client modules: {1e3 * heavy:5.2f} ms "
          f"({heavy / bare:.2f}x)")


if __name__ == "__main__":
    main()
