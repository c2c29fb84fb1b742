"""How many of the sandbox users' held pauses keep their "um" through the user-channel ASR?

The timing pairs are built on the ASR transcript of the user channel (user audio is dropped by
default and re-spoken by the streams stage), so a filler the ASR drops is a cue the pairs never carry.
Reads a deployment's logs (`RUN/logs`: stereo wavs, the user on channel 1, and the sandbox meta with
each turn's pause), transcribes the user channels of the first N conversations laid end to end, and
prints the fillers found per held pause, with and without a filler-rich `initial_prompt`, with and
without faster-whisper's VAD filter. Same machine, same audio, one run:

    NO_TORCH_COMPILE=1 .venv/bin/python bench/asr_fillers.py runs/demo/logs [--n 40]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from duplexalign.speech.asr import ASR_RATE, bundled_whisper_dir
from duplexalign.speech.audio import read_audio

FILLERS = {"um", "umm", "uh", "hmm", "erm"}
PROMPT = "Umm, let me think like, hmm... Okay, um, here's what I'm, uh, thinking."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", type=Path, help="a deployment's logs folder (train-*.wav/.json)")
    ap.add_argument("--n", type=int, default=40, help="conversations")
    args = ap.parse_args()
    from faster_whisper import WhisperModel

    model = WhisperModel(str(bundled_whisper_dir()), device="cpu", compute_type="int8",
                         cpu_threads=1)
    pieces, pauses = [], 0
    for wav_path in sorted(args.logs.glob("*.wav"))[:args.n]:
        meta = json.loads(wav_path.with_suffix(".json").read_text())["meta"]["sandbox"]
        pauses += sum(1 for t in meta["turns"] if t.get("pause"))
        pieces += [read_audio(wav_path, ASR_RATE, channel=1), np.zeros(2 * ASR_RATE, np.float32)]
    audio = np.concatenate(pieces)
    print(f"{len(pieces) // 2} conversations, {pauses} held pauses (each said with 'um')")
    print("| initial_prompt | VAD filter | words | fillers | fillers per pause |")
    print("|---|---|---|---|---|")
    for prompt in (None, PROMPT):
        for vad in (True, False):
            segs, _ = model.transcribe(audio, language="en", word_timestamps=True, vad_filter=vad,
                                       beam_size=5, condition_on_previous_text=False,
                                       initial_prompt=prompt)
            words = [w.word.strip().lower().strip(".,?!") for s in segs for w in (s.words or [])]
            n = sum(w in FILLERS for w in words)
            print(f"| {'fillers' if prompt else 'none'} | {vad} | {len(words)} | {n} | "
                  f"{n / max(pauses, 1):.2f} |")


if __name__ == "__main__":
    main()
