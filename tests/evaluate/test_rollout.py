"""Rollouts: the training forward re-scores exactly what LMGen sampled; words come from the stream."""

from __future__ import annotations

import numpy as np
import torch

from duplexalign.evaluate.rollout import SamplingConfig, UserItem, rollout, text_stream_words
from duplexalign.models.forward import rescore_text_logprobs


def _items(n: int, t: int, seed: int = 0) -> list[UserItem]:
    g = np.random.default_rng(seed)
    return [UserItem(id=f"i{i}", user_codes=g.integers(0, 64, size=(4, t - i)))
            for i in range(n)]


def test_training_forward_rescores_sampled_text_logits(lm, spm_tokenizer):
    items = _items(3, 20)
    outs = rollout(lm, items, spm_tokenizer, SamplingConfig(temp_text=1.0, top_k_text=0, seed=3),
                   progress=False)
    for r in outs:
        codes = r.codes()[None]  # [1, 9, T]
        assert codes.shape == (1, 9, r.item.num_frames)
        with torch.no_grad():
            out = lm(codes)
        lp = out.text_logits[0, 0].float().log_softmax(-1)  # [T, V]
        rescored = lp.gather(-1, codes[0, 0, :, None])[:, 0].numpy()
        np.testing.assert_allclose(rescored, r.text_logprobs, atol=1e-4)
        assert abs(rescored.sum() - r.text_logprobs.sum()) < 1e-3
        # the trainer's text-only path gives the same numbers
        trainer = rescore_text_logprobs(lm, codes)[0].numpy()
        np.testing.assert_allclose(trainer, r.text_logprobs, atol=1e-4)


def test_batching_does_not_change_a_greedy_rollout(lm, spm_tokenizer):
    items = _items(3, 16)
    greedy = SamplingConfig(use_sampling=False, batch_size=3)
    together = rollout(lm, items, spm_tokenizer, greedy, progress=False)
    alone = rollout(lm, items[1:2], spm_tokenizer, greedy, progress=False)
    np.testing.assert_array_equal(together[1].text_tokens, alone[0].text_tokens)
    np.testing.assert_array_equal(together[1].model_codes, alone[0].model_codes)
    assert together[1].sampling["use_sampling"] is False


def test_text_stream_words_are_timed_by_frame(spm_tokenizer):
    ids = spm_tokenizer.encode_word("paris") + spm_tokenizer.encode_word("is")
    pieces = [spm_tokenizer.sp.id_to_piece(i) for i in ids]
    # frames: 0 PAD, 1 EPAD, 2.. the pieces of "paris is", then PAD
    stream = [3, 0, *ids, 3, 3]
    words = text_stream_words(stream, spm_tokenizer)
    assert [w.text for w in words] == ["paris", "is"]
    n_paris = sum(1 for p in pieces[: pieces.index(next(p for p in pieces[1:]
                                                         if p.startswith("\u2581")))])
    assert words[0].start == 0.16  # frame 2
    assert abs(words[0].end - (2 + n_paris) * 0.08) < 1e-9
    assert abs(words[1].start - (2 + n_paris) * 0.08) < 1e-9
