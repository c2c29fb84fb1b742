"""Full-Duplex-Bench parity: FDB's own evaluation code and `evaluate --fdb` on the same folders.

    python bench/fdb_parity.py --fdb-repo /path/to/Full-Duplex-Bench --work /tmp/fdb_parity

Builds sample folders from FDB's bundled examples (`v1_v1.5/evaluation/example_data`, audio
included) plus variants whose expected outcome differs (no words, a short "yeah", a null end, a
24 kHz copy for the backchannel VAD quirk), then runs, in this process, FDB's
`eval_pause_handling`, `eval_smooth_turn_taking`, `eval_user_interruption` (with a canned judge:
only TOR and latency are compared), `eval_backchannel` and `get_timing.process_folder`, and our
`evaluate.fdb` scoring, and prints both numbers side by side with their difference. FDB's scripts
need torchaudio (a 20-line stand-in over soundfile/soxr is installed on `sys.path` for the run:
identical loads; its resampler is soxr, like ours, where FDB's is torchaudio's sinc) and load
silero through torch.hub (redirected to the packaged model). Nothing touches the network.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SHIM = {
    "__init__.py": (
        "import numpy as np, soundfile as sf, torch\nfrom . import functional  # noqa\n"
        "def load(path):\n"
        "    d, sr = sf.read(str(path), dtype='float32', always_2d=True)\n"
        "    return torch.from_numpy(np.ascontiguousarray(d.T)), sr\n"),
    "functional.py": (
        "import numpy as np, soxr, torch\n"
        "def resample(wav, sr, tgt):\n"
        "    y = soxr.resample(wav.numpy().T, sr, tgt).T.astype(np.float32)\n"
        "    return torch.from_numpy(np.ascontiguousarray(y))\n"),
}


def build(examples: Path, work: Path) -> dict[str, Path]:
    """Task folders of FDB examples and hand-made variants; returns {task: folder}."""
    import soundfile as sf
    import soxr

    if work.exists():
        shutil.rmtree(work)
    ex = {t: examples / f"{t}_example" / "1"
          for t in ("pause_handling", "smooth_turn_taking", "user_interruption")}
    words = {t: json.loads((p / "output.json").read_text()) for t, p in ex.items()}

    def variant(task: str, name: str, chunks: list | None) -> None:
        dst = work / task / name
        shutil.copytree(ex[task], dst)
        if chunks is not None:
            doc = {"text": " ".join(c["text"] for c in chunks), "chunks": chunks}
            (dst / "output.json").write_text(json.dumps(doc))
        for f in ("rating.json",):
            (dst / f).unlink(missing_ok=True)

    for task, doc in words.items():
        ch = doc["chunks"]
        t0 = ch[0]["timestamp"][0]
        variant(task, "1", None)
        variant(task, "2", [])  # silent model
        variant(task, "3", [{"text": "yeah", "timestamp": [t0, t0 + 0.4]}])  # short token
        # a null end: only pause handling reads it (the other two scripts stop with a TypeError;
        # we use the start there too)
        end = None if task == "pause_handling" else t0 + 2.1
        variant(task, "4", ch[:2] + [{"text": "so", "timestamp": [t0 + 2.0, end]}])
        variant(task, "5", ch[:4])
    bc = work / "backchannel"
    for i, task in enumerate(ex):  # clips "0".."2": FDB examples' model audio and words at 16 kHz
        shutil.copytree(ex[task], bc / str(i))
    wav, sr = sf.read(str(ex["user_interruption"] / "output.wav"), dtype="float32")
    (bc / "3").mkdir(parents=True)  # the same clip at 24 kHz (FDB's VAD reads it as 16 kHz)
    sf.write(str(bc / "3" / "output.wav"), soxr.resample(wav, sr, 24000), 24000, subtype="PCM_16")
    shutil.copy(ex["user_interruption"] / "output.json", bc / "3" / "output.json")
    return {t: work / t for t in ("pause_handling", "smooth_turn_taking", "user_interruption",
                                  "backchannel")}


def run_fdb(code: Path, dirs: dict[str, Path], data_dir: Path) -> dict[str, dict[str, float]]:
    """FDB's own numbers (parsed from what its functions print)."""
    import torch
    from silero_vad import load_silero_vad

    shim = Path(tempfile.mkdtemp()) / "torchaudio"
    shim.mkdir()
    for name, text in SHIM.items():
        (shim / name).write_text(text)
    sys.path[:0] = [str(shim.parent), str(code)]
    torch.hub.load = lambda *a, **k: (load_silero_vad(), None)  # FDB's get_timing uses torch.hub
    out: dict[str, dict[str, float]] = {}

    def capture(fn, *args) -> str:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            fn(*args)
        return buf.getvalue()

    def num(text: str, label: str) -> float:
        return float(re.findall(rf"{label}:?\s+([-\d.eE]+)", text)[-1])

    import eval_pause_handling
    import eval_smooth_turn_taking
    import eval_user_interruption

    t = capture(eval_pause_handling.eval_pause_handling, str(dirs["pause_handling"]))
    out["pause_handling"] = {"tor": num(t, "Average take turn")}
    t = capture(eval_smooth_turn_taking.eval_smooth_turn_taking, str(dirs["smooth_turn_taking"]))
    out["smooth_turn_taking"] = {"tor": num(t, "Average take turn"),
                                 "latency": num(t, "Average latency")}

    class Canned:  # the judge is not compared: a fixed rating keeps FDB's loop going
        class chat:  # noqa: N801
            class completions:  # noqa: N801
                @staticmethod
                def create(**_):
                    msg = type("M", (), {"content": "Analysis: x.\nI would rate the AI's "
                                                    "response as 3"})
                    return type("R", (), {"choices": [type("C", (), {"message": msg})]})

    t = capture(eval_user_interruption.eval_user_interruption, str(dirs["user_interruption"]),
                Canned)
    out["user_interruption"] = {"tor": num(t, "Average take turn"),
                                "latency": num(t, "Average latency")}
    gt = code / "icc_gt_distribution.json"
    if not gt.exists():
        shutil.copy(data_dir / "full_duplex_bench" / "v1_v1.5" / "icc_gt_distribution.json", gt)
    import eval_backchannel

    cwd = Path.cwd()
    try:
        import os

        os.chdir(code)
        t = capture(eval_backchannel.eval_backchannel, str(dirs["backchannel"]))
    finally:
        os.chdir(cwd)
    # the summary prints 4 decimals: the JSD mean is taken from the per-clip lines instead
    per_clip = [float(x) for x in re.findall(r"^JSD: ([-\d.eE]+)$", t, re.M)]
    out["backchannel"] = {"tor": num(t, "TOR - Mean"), "frequency": num(t, "Frequency - Mean"),
                          "jsd": float(np.mean(per_clip))}
    import get_timing

    stops, resps = [], []
    for task in ("pause_handling", "smooth_turn_taking", "user_interruption"):
        for fld in sorted(dirs[task].iterdir()):
            if fld.name != "1":
                continue  # the variants share the audio of sample 1
            capture(get_timing.process_folder, fld)
            iv = json.loads((fld / "latency_intervals.json").read_text())
            (fld / "latency_intervals.json").unlink()
            stops.append(np.mean([e - s for s, e in iv["latency_stop_list"]])
                         if iv["latency_stop_list"] else np.nan)
            resps.append(np.mean([e - s for s, e in iv["latency_resp_list"]])
                         if iv["latency_resp_list"] else np.nan)
            out[f"{task}/timing"] = {"stop_latency": stops[-1], "response_latency": resps[-1]}
    return out


def run_ours(dirs: dict[str, Path], data_dir: Path) -> dict[str, dict[str, float]]:
    """Our numbers for the same folders (`evaluate.fdb.score`)."""
    from duplexalign.evaluate.fdb.layout import find_samples
    from duplexalign.evaluate.fdb.score import FdbScorer, aggregate, score_sample

    sc = FdbScorer(data_dir=data_dir)
    out: dict[str, dict[str, float]] = {}
    for task, d in dirs.items():
        recs = [score_sample(s, sc) for s in find_samples(d, task)]
        row = next(iter(aggregate(recs, resamples=10).values()))["metrics"]
        out[task] = {k: v["value"] for k, v in row.items()
                     if k in ("tor", "latency", "frequency", "jsd")}
        if task != "backchannel":
            one = next(r for r in recs if r["id"] == "1")
            out[f"{task}/timing"] = {k: one.get(k) for k in ("stop_latency", "response_latency")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fdb-repo", required=True, help="a checkout of Full-Duplex-Bench")
    ap.add_argument("--work", default="/tmp/fdb_parity", help="scratch folder (recreated)")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent
                                              / "shared" / "data"))
    args = ap.parse_args()
    repo, work, data = Path(args.fdb_repo), Path(args.work), Path(args.data_dir)
    code = work.parent / (work.name + "_code")
    if code.exists():
        shutil.rmtree(code)
    shutil.copytree(repo / "v1_v1.5" / "evaluation", code)
    dirs = build(code / "example_data", work)
    fdb, ours = run_fdb(code, dirs, data), run_ours(dirs, data)
    print(f"{'row':34s} {'metric':18s} {'FDB code':>12s} {'ours':>12s} {'|diff|':>10s}")
    worst = 0.0
    for row, vals in fdb.items():
        for k, v in vals.items():
            o = ours.get(row, {}).get(k)
            d = abs(v - o) if o is not None and not np.isnan(v) else float("nan")
            worst = max(worst, 0.0 if np.isnan(d) else d)
            print(f"{row:34s} {k:18s} {v:12.6f} {float('nan') if o is None else o:12.6f} "
                  f"{d:10.2e}")
    print(f"largest difference: {worst:.2e} (FDB prints the backchannel frequency mean with 4 "
          "decimals)")
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"FDB code at {rev or '(not a git checkout)'}")


if __name__ == "__main__":
    main()
