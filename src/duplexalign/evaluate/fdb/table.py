"""The printed Full-Duplex-Bench table: one row per task folder, FDB's columns, 95 % intervals.

Owns formatting the rows of `score.aggregate` as a markdown table (value and bootstrap interval per
cell, "-" where the task has no such column) and the notes under it (where the words came from,
failures, the judge). Knows nothing about how the numbers were computed.
"""

from __future__ import annotations

import math
from typing import Any

COLUMNS = (("tor", "TOR"), ("frequency", "BC freq (/s)"), ("jsd", "BC JSD"),
           ("latency", "latency (s)"), ("relevance", "relevance (0-5)"),
           ("stop_latency", "stop lat. (s)"), ("response_latency", "resp. lat. (s)"),
           ("behaviour/C_RESPOND", "C_RESPOND"), ("behaviour/C_RESUME", "C_RESUME"),
           ("behaviour/C_UNCERTAIN_HANDLING", "C_UNCERTAIN"), ("behaviour/C_UNKNOWN", "C_UNKNOWN"))


def cell(est: dict[str, Any] | None) -> str:
    """`0.985 [0.962, 1.000]`, or "-" for a missing or empty estimate."""
    if not est or est.get("value") is None or (isinstance(est["value"], float)
                                                and math.isnan(est["value"])):
        return "-"
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def render(rows: dict[str, dict[str, Any]], judge: str | None = None) -> str:
    """The markdown table of `rows` (group -> row) and its notes."""
    used = [(k, h) for k, h in COLUMNS if any(k in r["metrics"] for r in rows.values())]
    head = ["task folder", "task", "n", *[h for _, h in used]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g, r in rows.items():
        lines.append("| " + " | ".join([g, r["task"], str(r["num_samples"]),
                                        *[cell(r["metrics"].get(k)) for k, _ in used]]) + " |")
    notes = []
    asr = sum(r["words_from_asr"] for r in rows.values())
    if asr:
        notes.append(f"{asr} sample(s) had no output.json: their words come from our ASR, not "
                     "FDB's parakeet-tdt-0.6b-v2")
    bad = sum(r["failures"] for r in rows.values())
    if bad:
        notes.append(f"{bad} sample(s) failed (reasons in fdb/samples.jsonl)")
    if judge:
        notes.append(f"judged columns: {judge} (FDB used GPT-4-turbo / GPT-4o)")
    elif any(k == "relevance" for k, _ in used):
        notes.append("judged columns not scored (no judge)")
    notes.append("values are means over samples with bootstrap 95 % intervals")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])
