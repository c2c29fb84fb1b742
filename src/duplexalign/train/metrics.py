"""Training metrics: per-step aggregation (overall and per pair category) and their sinks.

Owns the metric names (TRL's: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
logps/chosen, logps/rejected, plus kl_estimate = mean per-frame log(pi_ref/pi) on chosen), their
reduction across micro-batches and ranks, and writing `metrics.jsonl` and TensorBoard events.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch
import torch.distributed as dist


def step_metrics(per_example: list, world: int) -> dict[str, float]:
    """Aggregate `(categories, loss [b], LossOutput, PreferenceLogps)` tuples of one step."""
    rows = []
    for cats, loss, out, lp in per_example:
        for i, c in enumerate(cats):
            rows.append((c, float(loss[i]), float(out.chosen_rewards[i]),
                         float(out.rejected_rewards[i]), float(lp.policy_chosen[i].detach()),
                         float(lp.policy_rejected[i].detach()),
                         float((lp.ref_chosen[i] - lp.policy_chosen[i].detach()) / lp.chosen_len[i])))
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = [r for g in gathered for r in g]
    groups: dict[str, list] = defaultdict(list)
    for r in rows:
        groups[""].append(r)
        groups["/" + r[0]].append(r)
    out: dict[str, float] = {}
    for suffix, rs in groups.items():
        t = torch.tensor([r[1:] for r in rs], dtype=torch.float64)
        loss, rw, rl, lw, ll, kl = t.mean(0).tolist()
        acc = (t[:, 1] > t[:, 2]).double().mean().item()
        out.update({f"loss{suffix}": loss, f"rewards/chosen{suffix}": rw,
                    f"rewards/rejected{suffix}": rl, f"rewards/margins{suffix}": rw - rl,
                    f"rewards/accuracies{suffix}": acc, f"logps/chosen{suffix}": lw,
                    f"logps/rejected{suffix}": ll, f"kl_estimate{suffix}": kl})
    return out


class MetricsLog:
    """Appends `{"step": n, ...}` lines to `metrics.jsonl` and scalars to TensorBoard (if present)."""

    def __init__(self, out_dir: Path, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tb"))
            except ImportError:  # tensorboard is an optional extra
                self.tb = None

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Record `metrics` at `step`."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}, sort_keys=True) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
