"""Text-stream forwards of a moshi `LMModel`: the delayed input, the text-only path, re-scoring.

Owns how text logits are obtained without the depth transformer. moshi's training forward delays the
streams (text and semantic codebooks by 0, acoustic by 1), prepends one frame of initial tokens and
drops the last frame; the temporal transformer on that input gives text logits aligned with `codes`.
`text_logits` reproduces exactly that with `forward_text` only. `shared_prefix_text_logits` computes a
context shared by several continuations once (a functional KV cache over the temporal transformer) and
then every continuation's window against it; it is exact (same attention, same positions).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


def delayed_input(model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """The temporal transformer's input for `codes [B, R, T]` (undelayed), as `[B, R, T]`.

    Position p holds codes[p-1] for delay-0 rows and codes[p-2] for delay-1 rows (initial tokens
    before the start), exactly as `LMModel.forward` builds it.
    """
    from moshi.models.lm_utils import _delay_sequence

    b = codes.shape[0]
    initial = model._get_initial_token().expand(b, -1, -1)
    delayed = _delay_sequence(model.delays, codes, initial)
    return torch.cat([initial, delayed], dim=2)[:, :, :-1]


def text_logits(model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """Text logits `[B, T, text_card]` for `codes [B, R, T]`, temporal transformer only.

    Equal to `model(codes).text_logits[:, 0]` (text delay is 0, so no NaN rows).
    """
    _, logits = model.forward_text(delayed_input(model, codes))
    return logits[:, 0]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probabilities `[B, T]` of `targets [B, T]` under `logits [B, T, V]` (-1 targets give 0)."""
    valid = targets >= 0
    lp = torch.log_softmax(logits.float(), dim=-1)
    tok = lp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, tok, torch.zeros_like(tok))


@torch.no_grad()
def rescore_text_logprobs(model: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """Per-frame log-probs `[B, T]` of the text row of `codes [B, R, T]` under `model`.

    Teacher-forced with the training forward's text path (no gradient). A rollout produced by
    `LMGen` with the first user frame fed twice, stacked as `codes`, re-scores to the log-probs of the
    logits it sampled from. Frames whose text is -1 get 0.
    """
    return token_logprobs(text_logits(model, codes), codes[:, 0])


class _PrefixKVCache:
    """A KV cache for moshi's streaming attention that keeps tensors in the autograd graph.

    The first call stores the context keys/values (batch 1 or B); later calls attend to the stored
    context (repeated over the continuations) plus their own keys/values, without writing in place.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def complete(self, k: torch.Tensor, v: torch.Tensor, exec_mask: torch.Tensor):
        from moshi.modules.transformer import KVCacheResult

        if self.k is None:
            self.k, self.v = k, v
            keys, values = k, v
        else:
            reps = k.shape[0] // self.k.shape[0]
            keys = torch.cat([self.k.repeat(reps, 1, 1, 1), k], dim=2)
            values = torch.cat([self.v.repeat(reps, 1, 1, 1), v], dim=2)
        pos = torch.arange(keys.shape[2], device=k.device, dtype=torch.long).view(1, -1)
        return KVCacheResult(keys, values, pos)

    def reset(self, reset_mask: torch.Tensor) -> None:
        self.k = self.v = None


@contextmanager
def _prefix_streaming(model: nn.Module, batch_size: int):
    from moshi.modules.transformer import StreamingMultiheadAttention

    tr = model.transformer
    if getattr(tr, "checkpointing", False):
        raise ValueError("shared-prefix scoring cannot run with gradient checkpointing "
                         "(set train.share_context=false or model.gradient_checkpointing=false)")
    with tr.streaming(batch_size):
        attns = [m for m in tr.modules() if isinstance(m, StreamingMultiheadAttention)]
        for m in attns:
            m._streaming_state.kv_cache = _PrefixKVCache()
        yield attns


def _expand_states(attns: list, batch_size: int) -> None:
    """Give every attention state `batch_size` offsets (same position) for the window call."""
    for m in attns:
        st = m._streaming_state
        st.offset = st.offset[:1].expand(batch_size).clone()
        st.exec_mask = torch.ones(batch_size, dtype=torch.bool, device=st.offset.device)


def shared_prefix_text_logits(model: nn.Module, codes: torch.Tensor, window_start: int,
                              num_variants: int, return_context: bool = False):
    """Text logits of the window frames of continuations sharing a context, context computed once.

    Args:
        model: the moshi `LMModel`.
        codes: `[V*B, R, T]`, variant-major (rows `v*B + b`); rows of one pair must be identical on
            frames `< window_start` (the shared context) and may differ from `window_start` on.
        window_start: first frame of the window (>= 1).
        num_variants: V (2 for chosen + rejected).

        return_context: also return the context's text logits `[B, window_start, text_card]`.

    Returns:
        Text logits `[V*B, T - window_start, text_card]` for frames `[window_start, T)`, equal to
        `text_logits(model, codes)[:, window_start:]` (and the context logits if asked).
    """
    vb = codes.shape[0]
    b = vb // num_variants
    delayed = delayed_input(model, codes)
    # input positions < window_start only contain frames < window_start: shared by the variants
    ctx = delayed[:b, :, :window_start]
    win = delayed[:, :, window_start:]
    with _prefix_streaming(model, b) as attns:
        _, ctx_logits = model.forward_text(ctx)
        _expand_states(attns, vb)
        _, logits = model.forward_text(win)
    return (logits[:, 0], ctx_logits[:, 0]) if return_context else logits[:, 0]
