"""The "user holds the floor" anchor: its arithmetic, both forward paths, and what training does."""

from __future__ import annotations

import math

import pytest
import torch

from duplexalign.errors import ConfigError
from duplexalign.models.forward import rescore_text_logprobs
from duplexalign.models.presets import build_model, load_model
from duplexalign.streams.shards import ShardReader, read_index
from duplexalign.train.data import collate
from duplexalign.train.logprobs import ScoreConfig, floor_logp, floor_mask, score_pairs
from duplexalign.train.stage import TrainConfig, fit

from .helpers import FLOOR_FRAMES, make_streams

PAD = 3


def test_floor_logp_arithmetic():
    # two sequences of 5 frames; text ids, per-frame log-probs and floor labels by hand
    text = torch.tensor([[3, 3, 7, 3, 0],
                         [3, 5, 3, 3, 3]])
    lp = torch.tensor([[-0.1, -0.2, -4.0, -0.3, -2.0],
                       [-1.0, -3.0, -0.5, -0.7, -9.0]])
    floor = torch.tensor([[True, True, True, False, True],
                          [False, False, False, False, False]])
    # row 0: floor frames 0, 1, 2, 4; text PAD only on 0 and 1 (2 is a word, 4 an EPAD)
    assert floor_mask(floor, text).tolist() == [[True, True, False, False, False],
                                                [False] * 5]
    got = floor_logp(lp, text, floor)
    assert got[0].item() == pytest.approx((-0.1 - 0.2) / 2)
    assert got[1].item() == 0.0  # no floor frame: the anchor adds nothing


@pytest.fixture(scope="module")
def floor_streams(tmp_path_factory):
    return make_streams(tmp_path_factory.mktemp("f") / "streams", n_pairs=16, floor=True)


def test_floor_labels_reach_the_batch_and_both_forward_paths_agree(floor_streams):
    items = list(enumerate(read_index(floor_streams)))[:3]
    batch = collate(ShardReader(floor_streams), items)
    expect = torch.zeros_like(batch.floor)
    expect[:, FLOOR_FRAMES] = True
    assert torch.equal(batch.floor, expect)
    model = build_model("tiny")
    plain = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split,
                        ScoreConfig(share_context=False), batch.floor)
    shared = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split,
                         ScoreConfig(), batch.floor)
    assert torch.allclose(plain.floor_logp, shared.floor_logp, atol=1e-5)
    # = mean teacher-forced log p(PAD) over the floor frames whose chosen text is PAD
    per_frame = rescore_text_logprobs(model, batch.chosen)
    m = floor_mask(batch.floor, batch.chosen[:, 0])
    assert m.any(1).all()
    expected = (per_frame * m).sum(1) / m.sum(1)
    assert torch.allclose(shared.floor_logp, expected, atol=1e-5)


def test_floor_anchor_raises_pad_probability_on_the_users_turn(floor_streams, tmp_path):
    cfg = TrainConfig(max_steps=4, batch_size=8, micro_batch_size=8, lr=3e-3,
                      loss={"dpo_ln": 0.0}, floor_anchor_weight=1.0, checkpoint_every=4)
    fit(cfg, floor_streams, tmp_path)
    items = list(enumerate(read_index(floor_streams)))[:8]
    batch = collate(ShardReader(floor_streams), items)
    m = floor_mask(batch.floor, batch.chosen[:, 0])

    def mean_pad_logp(model):
        return float((rescore_text_logprobs(model, batch.chosen) * m).sum() / m.sum())

    before, after = mean_pad_logp(build_model("tiny")), mean_pad_logp(load_model(tmp_path / "final"))
    assert after > before + 0.1
    assert math.exp(after) > math.exp(before)


def test_floor_anchor_needs_floor_labels(tmp_path):
    streams = make_streams(tmp_path / "streams", n_pairs=8)
    with pytest.raises(ConfigError, match="floor labels"):
        fit(TrainConfig(max_steps=1, batch_size=8, micro_batch_size=8, floor_anchor_weight=1.0),
            streams, tmp_path / "train")
