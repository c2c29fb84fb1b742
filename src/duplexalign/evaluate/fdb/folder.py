"""`duplexalign evaluate --fdb DIR`: score a Full-Duplex-Bench folder and write the table.

Owns the run over one folder: find the samples (`layout`), score each (`score.score_sample`), ask
the LLM judge for the judged columns only when some sample needs them (the endpoint of
`evaluate.judge`; without a URL the local server is started and stopped here, as annotate does),
aggregate rows with intervals, and write `OUT/fdb/samples.jsonl`, `OUT/fdb/results.json` (rows plus
provenance) and `OUT/fdb/table.md`. The answer cache lives in `OUT/judge_cache`, so a rerun costs
no judge calls.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from duplexalign.evaluate.fdb.layout import find_samples
from duplexalign.evaluate.fdb.score import FdbScorer, aggregate, judge_samples, score_sample
from duplexalign.evaluate.fdb.table import render
from duplexalign.runs import atomic_write_text, git_hash, package_versions

log = logging.getLogger(__name__)


def needs_judge(recs: list[dict[str, Any]]) -> bool:
    """True when a sample has a judged column (an interruption taken over, a v1.5 sample)."""
    return any(r["task"] == "v1.5" or (r["task"] == "user_interruption" and r.get("tor") == 1)
               for r in recs if "failure" not in r)


def score_folder(fdb_dir: str | Path, out_dir: str | Path, cfg: Any, task: str | None = None,
                 use_judge: bool = True) -> dict[str, Any]:
    """Score every sample under `fdb_dir`; write results under `out_dir/fdb/`.

    Args:
        fdb_dir: a folder in FDB's layout (one task folder, or a folder of task folders).
        out_dir: where `fdb/` and `judge_cache/` go.
        cfg: the `EvaluateConfig` (data_dir, asr, judge, resamples, seed).
        task: force one FDB task for every sample (default: detected per sample).
        use_judge: False leaves the judged columns out (no LLM call).

    Returns:
        {"rows": {group: row}, "table": markdown, ...provenance}.
    """
    from duplexalign.evaluate.stage import default_data_dir

    out = Path(out_dir)
    samples = find_samples(Path(fdb_dir), task)
    sc = FdbScorer(data_dir=Path(cfg.data_dir or default_data_dir()), asr_name=cfg.asr or "whisper")
    recs = [score_sample(s, sc) for s in samples]
    judge_name = None
    with ExitStack() as stack:
        if use_judge and needs_judge(recs):
            from duplexalign.judges.endpoint import open_client

            sc.judge = open_client(cfg.judge, stack, out / "judge_cache")
            judge_name = f"{sc.judge.model} at {cfg.judge.url or 'the local server'}"
            judge_samples(samples, recs, sc)
    rows = aggregate(recs, resamples=cfg.resamples, seed=cfg.seed)
    table = render(rows, judge_name)
    result = {"fdb_dir": str(fdb_dir), "rows": rows, "table": table, "judge": judge_name,
              "config": cfg.model_dump(mode="json"), "git": git_hash(),
              "packages": package_versions()}
    atomic_write_text(out / "fdb" / "samples.jsonl",
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    atomic_write_text(out / "fdb" / "results.json", json.dumps(result, indent=2, sort_keys=True))
    atomic_write_text(out / "fdb" / "table.md", table + "\n")
    return result
