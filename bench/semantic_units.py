"""Can the codec's units tell what was asked? A linear hearing probe, measured side by side in one run.

Run: NO_TORCH_COMPILE=1 .venv/bin/python bench/semantic_units.py [--fit 240] [--out codec.safetensors]

Renders sandbox conversations (training scenarios with the six training voices; test scenarios,
whose verb/object pairings and question templates were never trained on, with the two held-out
voices), fits a `semantic` codec on the training ones (or loads `--codec`), then trains a
multinomial logistic regression on a tf-idf bag of unit unigrams+bigrams of each user turn (train
voices) and reports its accuracy on the held-out turns, for four kinds of units: the committed
sandbox MelRVQ (all codebooks), the Whisper teacher's k-means units (non-causal), the causal
student's units (codebook 0 of the semantic codec), and the student's units cut 2 frames after the
verb ends (so they cannot see the object word). Labels: request verb (10), harmful vs benign, QA
answer (24), and "um"-pause vs turn end (the 4 frames before and 4 after the pause start or the
turn's end). Also prints the codec's encode speed (x real time) next to MelRVQ's.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch

from duplexalign.sandbox.build import ASSETS_DIR, CODEC_NAME, conversation_specs
from duplexalign.sandbox.policy import render
from duplexalign.sandbox.scenarios import BENIGN_VERBS, HARMFUL_VERBS, build_bank
from duplexalign.sandbox.users import HELDOUT_VOICES, MODEL_VOICE, TRAIN_VOICES, default_synth
from duplexalign.speech.codec import load_codec_file
from duplexalign.speech.semantic import SemanticCodec, WhisperTeacher
from duplexalign.speech.semantic_fit import fit_semantic, nearest_unit
from duplexalign.timebase import FRAME_SECONDS

VERBS = HARMFUL_VERBS + list(BENIGN_VERBS)


def rendered(split: str, voices, n: int, seed: int):
    bank = build_bank(0)
    synth = default_synth()
    out = []
    for s in conversation_specs(bank, split, voices, n, seed, (2, 3)):
        out.append(render(s["items"], s["voice"], synth, s["seed"], 12.0,
                          model_voice=MODEL_VOICE))
    return out


def turn_examples(convs, units_of) -> dict[str, list[tuple[list[str], str]]]:
    """(bag tokens, label) per task from each user turn; `units_of(conv_index)` -> [T] or [K, T]."""
    tasks: dict[str, list] = {"verb": [], "harmful": [], "answer": [], "pause_vs_end": []}
    for ci, r in enumerate(convs):
        u = np.atleast_2d(units_of(ci))
        for tm in r.meta["sandbox"]["turns"]:
            item = tm["item"]
            a, b = int(tm["start"] / FRAME_SECONDS), int(np.ceil(tm["end"] / FRAME_SECONDS))
            toks = bag(u[:, a:b])
            if item["kind"] in ("harmful", "benign"):
                verb = item["group"].split("|")[0]
                tasks["verb"].append((toks, verb))
                tasks["harmful"].append((toks, item["kind"]))
            if item["kind"] == "qa":
                tasks["answer"].append((toks, item["answers"][0]))
            if tm["pause"]:
                p = int(tm["pause"][0] / FRAME_SECONDS)
                tasks["pause_vs_end"].append((bag(u[:, max(0, p - 4): p + 4]), "pause"))
                e = int(tm["end"] / FRAME_SECONDS)
                tasks["pause_vs_end"].append((bag(u[:, max(0, e - 4): e + 4]), "end"))
    return tasks


def verb_cut_examples(convs, units_of, words_of) -> list[tuple[list[str], str]]:
    """Verb labels from units of the turn cut 2 frames (160 ms) after the verb's last word ends."""
    out = []
    for ci, r in enumerate(convs):
        u = np.atleast_2d(units_of(ci))
        words = words_of(r)
        for tm in r.meta["sandbox"]["turns"]:
            item = tm["item"]
            if item["kind"] not in ("harmful", "benign"):
                continue
            verb = item["group"].split("|")[0]
            vw = verb.split()[-1]
            ends = [w.end for w in words if tm["start"] - 0.01 <= w.start <= tm["end"]
                    and w.text.lower().strip(".,?") == vw]
            if not ends:
                continue
            a, b = int(tm["start"] / FRAME_SECONDS), int(ends[0] / FRAME_SECONDS) + 2
            out.append((bag(u[:, a:b]), verb))
    return out


def bag(u: np.ndarray) -> list[str]:
    """Unigram + bigram tokens of units [K, T] (codebook index prefixed)."""
    toks = []
    for k, row in enumerate(u):
        row = [int(x) for x in row]
        toks += [f"{k}:{x}" for x in row]
        toks += [f"{k}:{x}>{y}" for x, y in zip(row, row[1:], strict=False)]
    return toks


def probe(train: list, test: list, epochs: int = 300) -> float:
    """Accuracy on `test` of a tf-idf + softmax regression trained on `train` (token lists, label)."""
    if not train or not test:
        return float("nan")
    df = Counter(t for toks, _ in train for t in set(toks))
    vocab = {t: i for i, t in enumerate(t for t, c in df.items() if c >= 2)}
    idf = torch.tensor([np.log((1 + len(train)) / (1 + df[t])) + 1 for t in vocab],
                       dtype=torch.float32)
    labels = sorted({y for _, y in train})
    lab = {y: i for i, y in enumerate(labels)}

    def mat(rows):
        x = torch.zeros(len(rows), len(vocab))
        for i, (toks, _) in enumerate(rows):
            for t in toks:
                if t in vocab:
                    x[i, vocab[t]] += 1
        x = torch.log1p(x) * idf
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)

    xtr, xte = mat(train), mat(test)
    ytr = torch.tensor([lab[y] for _, y in train])
    w = torch.zeros(len(vocab), len(labels), requires_grad=True)
    b = torch.zeros(len(labels), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(xtr @ w + b, ytr) + 1e-4 * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = (xte @ w + b).argmax(1)
    truth = torch.tensor([lab.get(y, -1) for _, y in test])
    return float((pred == truth).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", type=int, default=240, help="conversations to fit the codec on")
    ap.add_argument("--probe-train", type=int, default=600)
    ap.add_argument("--probe-test", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--codec", default=None, help="an existing semantic codec (skips the fit)")
    ap.add_argument("--out", default=None, help="save the fitted codec here")
    ap.add_argument("--baseline", default=str(ASSETS_DIR / CODEC_NAME),
                    help="codec to compare against (default: the committed sandbox codec)")
    args = ap.parse_args()
    torch.manual_seed(0)

    t0 = time.time()
    teacher = WhisperTeacher()
    centroids = None
    if args.codec:
        codec = SemanticCodec.load(args.codec)
    else:
        fit = rendered("train", TRAIN_VOICES, args.fit, seed=100)
        wavs = [w for r in fit for w in (r.user_wav, r.model_wav)]
        codec, centroids = fit_semantic(wavs, units=args.units, steps=args.steps,
                                        teacher=teacher, progress=False)
        print(f"fit: {time.time() - t0:.0f} s, stats {codec.stats}")
        if args.out:
            codec.save(args.out)
    tr = rendered("train", TRAIN_VOICES, args.probe_train, seed=200)
    te = rendered("test", HELDOUT_VOICES, args.probe_test, seed=300)
    old = load_codec_file(args.baseline)

    def user(convs):
        return [r.user_wav for r in convs]

    t = time.time()
    sem = {s: [codec.semantic(w) for w in user(c)] for s, c in (("tr", tr), ("te", te))}
    t_sem = time.time() - t
    t = time.time()
    mel = {s: [old.encode(w) for w in user(c)] for s, c in (("tr", tr), ("te", te))}
    t_mel = time.time() - t
    audio_s = sum(len(w) for w in user(tr) + user(te)) / 24000
    print(f"encode speed: semantic units {audio_s / t_sem:.0f}x real time, baseline codec "
          f"{audio_s / t_mel:.0f}x real time (same {audio_s:.0f} s of audio)")
    rows = {"baseline codec (all codebooks)": mel}
    if isinstance(old, SemanticCodec):
        rows["baseline codec, units only (codebook 0)"] = {k: [c[0] for c in v]
                                                           for k, v in mel.items()}
    rows["causal student units"] = sem
    if centroids is not None:
        feats = {s: teacher.features(user(c)) for s, c in (("tr", tr), ("te", te))}
        rows["Whisper teacher units (non-causal)"] = {
            s: [nearest_unit(f, centroids) for f in feats[s]] for s in feats}
    print("| units | verb (10) | harmful vs benign | QA answer (24) | um-pause vs turn end | "
          "verb, cut 160 ms after it |")
    print("|---|---|---|---|---|---|")
    for name, units in rows.items():
        a = turn_examples(tr, lambda i, u=units: u["tr"][i])
        b = turn_examples(te, lambda i, u=units: u["te"][i])
        cut = probe(verb_cut_examples(tr, lambda i, u=units: u["tr"][i], lambda r: r.user_words),
                    verb_cut_examples(te, lambda i, u=units: u["te"][i], lambda r: r.user_words))
        accs = [probe(a[k], b[k]) for k in ("verb", "harmful", "answer", "pause_vs_end")]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in accs) + f" | {cut:.2f} |")
    print(f"(test turns: {len(turn_examples(te, lambda i: sem['te'][i])['verb'])} verb, chance "
          f"0.10 / 0.50 / 0.04 / 0.50; total {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
