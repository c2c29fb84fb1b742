"""Precision and recall of the PII redactor on labelled spoken-style sentences, and what it costs.

Run: PYTHONPATH=src .venv/bin/python bench/pii.py [--data tests/judges/data/pii_sentences.yaml]

Per kind, a hit counts as true when the sentence's label has that kind (at most as many hits as
labelled), so precision = true hits / hits and recall = true hits / labelled. "look-alikes touched"
is how many harmless sentences got any redaction. Cost: microseconds per sentence of `redact`, the
one-time import of python-stdnum's IBAN checker, and the same sentences through the redactor without
the IBAN detector, measured side by side in this run.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import yaml

from duplexalign.judges import redact as R

DATA = Path(__file__).resolve().parents[1] / "tests/judges/data/pii_sentences.yaml"
KINDS = ("name", "dob", "account", "phone", "card", "email", "address")


def score(rows: list[dict]) -> tuple[dict[str, tuple[int, int, int]], int, list[str]]:
    """Per kind (true hits, hits, labelled); look-alikes touched; the sentences with any error."""
    tp, pred, gold = Counter(), Counter(), Counter()
    touched, errors = 0, []
    for row in rows:
        _, found = R.redact(row["text"])
        want = Counter(row["pii"])
        for k in set(found) | set(want):
            tp[k] += min(found[k], want[k])
        pred.update(found)
        gold.update(want)
        touched += bool(not want and found)
        if found != want:
            errors.append(f"{row['text']!r}: want {dict(want)} got {dict(found)}")
    return {k: (tp[k], pred[k], gold[k]) for k in KINDS}, touched, errors


def per_sentence_us(texts: list[str], rounds: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(rounds):
        for t in texts:
            R.redact(t)
    return (time.perf_counter() - t0) / (rounds * len(texts)) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--errors", action="store_true", help="print every sentence scored wrong")
    args = ap.parse_args()
    data = yaml.safe_load(Path(args.data).read_text())
    rows = data["sentences"]
    t0 = time.perf_counter()
    from stdnum import iban  # noqa: F401 - the one-time cost of the library

    t_import = time.perf_counter() - t0
    per, touched, errors = score(rows)
    harmless = sum(not r["pii"] for r in rows)
    print(f"{len(rows)} sentences ({len(rows) - harmless} with PII, {harmless} look-alikes)\n")
    print("| kind | labelled | hits | precision | recall |\n|---|---|---|---|---|")
    tot = [0, 0, 0]
    for k, (tp, pred, gold) in per.items():
        tot = [tot[0] + tp, tot[1] + pred, tot[2] + gold]
        print(f"| {k} | {gold} | {pred} | {tp / pred if pred else 1:.2f} | "
              f"{tp / gold if gold else 1:.2f} |")
    print(f"| all | {tot[2]} | {tot[1]} | {tot[0] / tot[1]:.2f} | {tot[0] / tot[2]:.2f} |")
    print(f"\nlook-alikes touched: {touched}/{harmless}")
    held = data.get("heldout") or []
    if held:
        per_h, touched_h, errors_h = score(held)
        tp, pred, gold = (sum(v[i] for v in per_h.values()) for i in range(3))
        print(f"held-out ({len(held)} sentences, never used to change the redactor): precision "
              f"{tp / pred:.2f}, recall {tp / gold:.2f} ({gold} labelled hits), look-alikes touched "
              f"{touched_h}/{sum(not r['pii'] for r in held)}")
        errors += ["(held-out) " + e for e in errors_h]
    texts = [r["text"] for r in rows]
    R.redact(texts[0])
    with_iban = per_sentence_us(texts)
    saved = list(R.DETECTORS)
    R.DETECTORS[:] = [d for d in saved if d is not R._iban]
    without = per_sentence_us(texts)
    R.DETECTORS[:] = saved
    print(f"cost: {with_iban:.0f} us per sentence with the stdnum IBAN check, {without:.0f} us "
          f"without it ({with_iban / without:.2f}x); importing stdnum.iban took "
          f"{t_import * 1e3:.0f} ms once")
    if args.errors:
        print("\n" + "\n".join(errors))


if __name__ == "__main__":
    main()
