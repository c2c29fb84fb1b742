"""`duplexalign train RUN --dry-run`: parameters and estimated memory per GPU, before spending any.

Owns the memory model of one training step of the text-only DPO path (what `train.stage` runs):
- weights: every parameter in its dtype; FSDP shards them over the world and gathers one
  transformer layer at a time (counted twice for prefetch, in the compute dtype);
- gradients and AdamW state (two moments): trainable parameters in their dtype, sharded by FSDP;
  DDP keeps a second copy of the gradients in its buckets;
- activations saved for the backward of one micro-batch: per token and layer `12 dim + 4 hidden`
  elements, counted op by op in moshi's layer (the two RMS norms' inputs, normalised products and
  outputs, about 5 dim, one input being the residual stream; the fused q/k/v projection kept alive
  by the v view, 3 dim; q and k after rope, 2 dim;
  the attention output and its re-layout, 2 dim; the gated FFN's input half pair, 2 hidden, SiLU
  output and product, 2 hidden), the boolean attention mask of every layer (`rows x queries x keys`
  bytes; moshi passes an explicit mask), on CPU also what the attention kernel keeps per head
  (`A_ATT_CPU`), the text logits with their fp32 log-softmax, and the embeddings' sum; with
  gradient checkpointing only each layer's input plus one layer's recomputation is kept;
- the reference cache: a `[N, 4]` float64 table on the device.
Token counts follow the scoring path: with a shared context, B context rows of C frames, then 2B
window rows of W frames attending to C + W keys; without, 2B rows of T = C + W frames. Parameter
counts come from building the model on the `meta` device (no memory, seconds for 7B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from duplexalign.models.presets import DTYPES, ModelPreset, build_model

GiB = 1 << 30
A_DIM, A_HID = 12, 4
"""Elements saved per token and layer: A_DIM x dim + A_HID x FFN hidden (see the module docstring)."""
A_ATT_CPU = 2
"""Bytes per head and query-key pair that torch 2.13's CPU attention keeps for the backward (measured
with the tests' tensor tracker; between the flash kernel's none and the math kernel's fp32
probabilities). CUDA's memory-efficient kernel keeps none: only the boolean mask is counted there."""


@dataclass(frozen=True)
class StepShape:
    """The frames of one micro-batch: B pairs, context C and window W frames, N pairs in all."""

    micro_batch: int
    context: int
    window: int
    pairs: int = 0


@dataclass
class MemoryPlan:
    """Parameter counts and estimated bytes per GPU (or per process on CPU)."""

    total_params: int
    trainable_params: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    reference_cache: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Sum of the components (they coexist during the backward of a steady-state step)."""
        return (self.weights + self.gradients + self.optimizer + self.activations
                + self.reference_cache)

    def table(self) -> str:
        """A Markdown table of the plan (GiB)."""
        rows = [("weights", self.weights), ("gradients", self.gradients),
                ("optimizer (AdamW)", self.optimizer), ("activations", self.activations),
                ("reference cache", self.reference_cache), ("total", self.total)]
        lines = [f"parameters: {self.total_params:,} total, {self.trainable_params:,} trainable",
                 "", "| memory per GPU | GiB |", "|---|---:|"]
        lines += [f"| {name} | {b / GiB:.2f} |" for name, b in rows]
        return "\n".join(lines + [f"- {n}" for n in self.notes])


def count_params(preset: ModelPreset, text_only: bool = True) -> tuple[int, int, int]:
    """(total, trainable, largest layer) parameter counts, with LoRA and text-only freezing."""
    from moshi.modules.transformer import StreamingTransformerLayer

    from duplexalign.models.lora import freeze_for_text_only

    p = preset.model_copy(update={"weights": None, "requires_weights": False})
    model = build_model(p, device="meta")
    if text_only:
        freeze_for_text_only(model)
    total = sum(t.numel() for t in model.parameters())
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    layer = max((sum(t.numel() for t in m.parameters()) for m in model.modules()
                 if isinstance(m, StreamingTransformerLayer)), default=0)
    return total, trainable, layer


def _ffn_hidden(p: ModelPreset) -> int:
    ff = int(p.hidden_scale * p.dim)
    return 21 * p.dim // 8 if ff == 4 * p.dim else 2 * ff // 3


def activation_bytes(p: ModelPreset, shape: StepShape, share_context: bool, bf16: bool,
                     cuda: bool) -> int:
    """Estimated bytes saved for the backward of one micro-batch (see the module docstring)."""
    e = 2 if bf16 else 4
    b, c, w = shape.micro_batch, shape.context, shape.window
    # (rows, queries per row, keys per query) of each temporal-transformer call
    calls = [(b, c, c), (2 * b, w, c + w)] if share_context and c > 0 else [(2 * b, c + w, c + w)]
    tokens = sum(r * q for r, q, _ in calls)
    pairs_qk = sum(r * q * k for r, q, k in calls)
    per_token_layer = A_DIM * p.dim + A_HID * _ffn_hidden(p)
    if p.lora.enabled and "temporal" in p.lora.targets:
        per_token_layer += 4 * p.lora.rank  # lora_A outputs of the in, out, FFN in and out linears
    attn_layer = pairs_qk * (1 + (0 if cuda else A_ATT_CPU * p.num_heads))
    if p.gradient_checkpointing:
        one = max(r * q for r, q, _ in calls)
        layers = tokens * p.dim * e * p.num_layers + one * per_token_layer * e + attn_layer
    else:
        layers = (tokens * per_token_layer * e + attn_layer) * p.num_layers
    head = tokens * p.text_card * (e + 4 + (4 if bf16 else 0))  # logits, fp32 copy, log-softmax
    embed = tokens * 2 * p.dim * 4
    return layers + head + embed


def plan_memory(preset: ModelPreset, shape: StepShape, *, world: int = 1,
                distributed: str = "ddp", device: str = "cuda", bf16: bool | None = None,
                share_context: bool = True, text_only: bool = True) -> MemoryPlan:
    """Estimate memory per process for training `preset` on micro-batches of `shape`.

    Args:
        preset: the model (LoRA and gradient checkpointing settings included).
        shape: micro-batch size and frames.
        world: number of processes (GPUs).
        distributed: `ddp` or `fsdp` (used when world > 1).
        device: `cuda` or `cpu` (attention kernel, bf16 default).
        bf16: autocast to bf16; None = on for CUDA.
        share_context: the shared-context scoring path (train.score.share_context).
        text_only: the depth transformer is frozen (train.score.audio_weight == 0).
    """
    cuda = device.startswith("cuda")
    bf16 = cuda if bf16 is None else bf16
    total, trainable, layer = count_params(preset, text_only)
    pb = torch.finfo(DTYPES[preset.dtype]).bits // 8
    fsdp = world > 1 and distributed == "fsdp"
    shard = world if fsdp else 1
    notes = []
    weights = math.ceil(total / shard) * pb
    if fsdp:
        weights += 2 * layer * (2 if bf16 else pb)
        notes.append(f"FSDP over {world}: weights, gradients and AdamW state sharded; two "
                     "gathered transformer layers in flight")
    grads = math.ceil(trainable / shard) * pb
    if world > 1 and not fsdp:
        grads *= 2
        notes.append(f"DDP over {world}: full replica per GPU, gradient buckets double the "
                     "gradients")
    optim = 2 * math.ceil(trainable / shard) * pb
    acts = activation_bytes(preset, shape, share_context, bf16, cuda)
    ref = shape.pairs * 4 * 8
    notes.append(f"micro-batch {shape.micro_batch} pairs, context {shape.context} + window "
                 f"{shape.window} frames, {'shared context' if share_context else 'naive'} "
                 f"scoring, {'bf16 autocast' if bf16 else preset.dtype}, {device}"
                 + (", gradient checkpointing" if preset.gradient_checkpointing else ""))
    return MemoryPlan(total, trainable, weights, grads, optim, acts, ref, notes)


def step_shape_from_streams(streams_dir: str | Path, micro_batch: int) -> StepShape | None:
    """The largest context/window of the pairs in `streams_dir`, or None without an index."""
    from duplexalign.streams.shards import INDEX_NAME, read_index

    if not (Path(streams_dir) / INDEX_NAME).is_file():
        return None
    ctx = win = n = 0
    for e in read_index(streams_dir):
        ctx = max(ctx, e.window_start_frame - e.context_start_frame)
        win = max(win, e.window_end_frame - e.window_start_frame)
        n += 1
    return StepShape(micro_batch, ctx, win, n)


DEFAULT_CONTEXT, DEFAULT_WINDOW = 1000, 125
"""Frames planned for when the run has no streams yet: 80 s of context, a 10 s reply (8:1)."""


def plan_train(cfg, run_dir: str | Path | None = None, world: int = 1,
               context: int | None = None, window: int | None = None) -> MemoryPlan:
    """The memory plan of a `TrainConfig` (`duplexalign train RUN --dry-run`).

    Frames come from `context`/`window`, else the largest pair in `RUN/streams`, else 1000 + 125.
    The device is the configured one (`auto` = this machine's), so a CPU machine can plan a GPU
    run with `train.device=cuda`.
    """
    shape = step_shape_from_streams(Path(run_dir) / "streams", 1) if run_dir else None
    micro = max(1, min(cfg.micro_batch_size, math.ceil(cfg.batch_size / world)))
    shape = StepShape(micro, context or (shape.context if shape else DEFAULT_CONTEXT),
                      window or (shape.window if shape else DEFAULT_WINDOW),
                      shape.pairs if shape else 0)
    dev = cfg.device.lower()
    device = "cuda" if dev.startswith("cuda") or (dev == "auto" and torch.cuda.is_available()) \
        else "cpu"
    return plan_memory(cfg.preset(), shape, world=world, distributed=cfg.distributed,
                       device=device, bf16=cfg.bf16, share_context=cfg.score.share_context,
                       text_only=cfg.score.audio_weight == 0)
