"""Training on runs that are too small or built for another model: it trains on what there is or
stops with one clear line before any step; it never loops or crashes inside torch."""

from __future__ import annotations

import json
import logging

import pytest

from duplexalign.errors import ConfigError
from duplexalign.train.data import GlobalBatches
from duplexalign.train.stage import TrainConfig, fit

from .helpers import make_streams


@pytest.fixture(scope="module")
def tiny_streams(tmp_path_factory):
    return make_streams(tmp_path_factory.mktemp("s") / "streams", n_pairs=3)


@pytest.mark.timeout(30)
def test_batch_larger_than_the_data_uses_every_pair(tiny_streams, caplog):
    data = GlobalBatches(tiny_streams, size=8, seed=1)
    with caplog.at_level(logging.WARNING):
        batches = [data.next() for _ in range(3)]
    assert [sorted(row for row, _ in b) for b in batches] == [[0, 1, 2]] * 3
    assert data.position() == {"epoch": 3, "consumed": 0}  # resume starts a fresh epoch
    warnings = [r for r in caplog.records if "larger than the 3 training pairs" in r.message]
    assert len(warnings) == 1  # said once, not per step
    # a position saved after such a batch resumes to the same next batch
    again = GlobalBatches(tiny_streams, size=8, seed=1, epoch=2, consumed=0)
    assert [row for row, _ in again.next()] == [row for row, _ in batches[2]]


@pytest.mark.timeout(120)  # the old loop restarted the epoch forever here
def test_training_with_fewer_pairs_than_one_batch_finishes(tiny_streams, tmp_path):
    cfg = TrainConfig(max_steps=2, batch_size=16, micro_batch_size=2, checkpoint_every=1)
    stats = fit(cfg, tiny_streams, tmp_path / "train")
    assert stats.counts["steps"] == 2
    lines = (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines if "loss" in json.loads(x)] == [1, 2]


def test_everything_held_out_is_one_line(tiny_streams):
    data = GlobalBatches(tiny_streams, size=2, skip_rows=3)
    with pytest.raises(ConfigError, match=r"no pairs to train on after holding out 3 "
                                          r"\(train.val.held_out\)"):
        data.next()


@pytest.mark.parametrize("meta, names", [
    ({"text_card": 128, "cardinality": 64, "num_codebooks": 4},
     ["128 text ids", "embeds 64", "model_updates.text_card", "streams.tokenizer"]),
    ({"text_card": 64, "cardinality": 2048, "num_codebooks": 4},
     ["2048 codes per codebook", "model_updates.card", "streams.codec"]),
    ({"text_card": 64, "cardinality": 64, "num_codebooks": 8},
     ["8 codebooks per speaker", "reads 4", "streams.codec"]),
])
def test_vocabulary_mismatch_stops_before_any_step(tmp_path, meta, names):
    streams = make_streams(tmp_path / "streams", n_pairs=4)
    (streams / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as e:
        fit(TrainConfig(max_steps=1, batch_size=2, micro_batch_size=2), streams, tmp_path / "t")
    assert len(e.value.problems) == 1
    for name in [*names, "train.model"]:
        assert name in e.value.problems[0]
    assert not (tmp_path / "t" / "metrics.jsonl").exists()
    assert not (tmp_path / "t" / "refcache").exists()


def test_streams_that_fit_train(tmp_path):
    streams = make_streams(tmp_path / "streams", n_pairs=4)
    (streams / "meta.json").write_text(json.dumps({"text_card": 64, "cardinality": 64,
                                                   "num_codebooks": 4}))
    assert fit(TrainConfig(max_steps=1, batch_size=2, micro_batch_size=2), streams,
               tmp_path / "t").counts["steps"] == 1


def test_missing_streams_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="run `duplexalign streams`"):
        fit(TrainConfig(max_steps=1), tmp_path / "nothing", tmp_path / "t")
