"""Reference log-probs: computed once per (reference weights, data, scoring settings) and cached.

Owns the on-disk cache `RUN/train/refcache/<key>.safetensors`, a `[N, 4]` float64 tensor in index
order (row = position in the pair index): reference window log-prob sums and lengths of chosen and
rejected. The key digests the reference weights, the streams (index + shards) and the `ScoreConfig`, so changing any
of them recomputes it; loss settings (beta, which loss) do not change window sums and are not in the
key. Also provides the live reference: the LoRA-off policy (`lora_scale(model, 0)`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from duplexalign.runs import content_digest, digest_json, sha256_file
from duplexalign.streams.shards import INDEX_NAME, ShardReader, read_index
from duplexalign.train.data import collate
from duplexalign.train.logprobs import ScoreConfig, WindowScores

log = logging.getLogger(__name__)


def weights_digest(model: nn.Module) -> str:
    """Digest of the reference weights: every tensor except LoRA adapters (i.e. the base model)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if ".lora_" in name:
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def streams_digest(streams_dir: str | Path) -> str:
    """Digest of a streams directory's content: the index and every shard it names.

    The index alone is not enough: re-running `streams` on new audio or text can keep the pair ids
    and frames (so the index bytes) while the shards' tokens change.
    """
    d = Path(streams_dir)
    shards = sorted({e.shard for e in read_index(d)})
    return digest_json({"index": content_digest(d / INDEX_NAME),
                        "shards": {s: sha256_file(d / s) for s in shards}})


def cache_key(weights: str, streams_dir: str | Path, cfg: ScoreConfig) -> str:
    """The cache key of reference log-probs (weights digest, streams digest, scoring settings)."""
    return digest_json({"weights": weights, "streams": streams_digest(streams_dir),
                        "score": cfg.model_dump(mode="json")})


@torch.no_grad()
def compute_reference(score: Callable[..., WindowScores], streams_dir: str | Path,
                      batch_size: int = 8) -> torch.Tensor:
    """Reference sums for every pair in index order, `[N, 4]` (chosen, rejected logp; lengths).

    Args:
        score: `score(batch) -> WindowScores` under the reference model.
        streams_dir: streams directory.
        batch_size: pairs per forward.
    """
    reader = ShardReader(streams_dir)
    rows: list[torch.Tensor] = []
    items: list = []

    def flush() -> None:
        s = score(collate(reader, items))
        b = len(items)
        rows.append(torch.stack([s.logps[:b], s.logps[b:], s.lengths[:b], s.lengths[b:]], 1)
                    .double())
        items.clear()

    for item in tqdm(enumerate(read_index(streams_dir)), desc="reference log-probs",
                     unit="pair", leave=False):
        items.append(item)
        if len(items) == batch_size:
            flush()
    if items:
        flush()
    return torch.cat(rows) if rows else torch.zeros(0, 4, dtype=torch.float64)


def load_or_compute(cache_dir: str | Path, key: str, compute: Callable[[], torch.Tensor],
                    can_compute: bool = True) -> torch.Tensor:
    """Return the cached `[N, 4]` reference table for `key`, computing and storing it if absent.

    Raises:
        RuntimeError: the cache is missing and `can_compute` is false (e.g. a resumed full
            fine-tuning run whose starting weights are gone).
    """
    path = Path(cache_dir) / f"{key}.safetensors"
    if path.exists():
        log.info("reference log-probs from cache %s", path)
        return load_file(str(path))["ref"]
    if not can_compute:
        raise RuntimeError(f"reference cache {path} is missing and the reference model is no "
                           "longer available; delete the checkpoints to restart the run")
    table = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # ranks may write the same entry
    save_file({"ref": table.contiguous()}, str(tmp))
    tmp.replace(path)
    return table
