"""Trainer behaviour on the tiny preset: learning, invariances, exact resume, DDP, frame weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from duplexalign.models.presets import build_model, load_model
from duplexalign.streams.shards import ShardReader, read_index
from duplexalign.train.data import collate
from duplexalign.train.logprobs import ScoreConfig, decision_window, frame_weights, score_pairs
from duplexalign.train.stage import TrainConfig, fit

from .helpers import make_streams

SCRIPT = Path(__file__).with_name("train_script.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> Path:
    return make_streams(tmp_path_factory.mktemp("s") / "streams", n_pairs=24)


def _metrics(out: Path) -> dict[int, dict]:
    by_step: dict[int, dict] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            by_step[rec["step"]] = rec  # the last record of a step wins (re-done after a resume)
    return by_step


def test_short_run_raises_margin_accuracy_and_changes_params(streams, tmp_path):
    cfg = TrainConfig(max_steps=12, batch_size=8, micro_batch_size=4, lr=3e-3,
                      loss={"dpo_ln": 1.0}, loss_params={"beta": 0.5},
                      val={"every": 6, "held_out": 8})
    fit(cfg, streams, tmp_path)
    m = _metrics(tmp_path)
    assert m[1]["rewards/margins"] == pytest.approx(0.0, abs=1e-3)  # policy == reference at start
    assert m[12]["rewards/margins"] > 0.5
    assert m[12]["rewards/accuracies"] == 1.0
    assert "rewards/margins/silence" in m[12] and "rewards/margins/content" in m[12]
    init, final = build_model("tiny"), load_model(tmp_path / "final")
    changed = [n for n, p in final.named_parameters()
               if not torch.equal(p, dict(init.named_parameters())[n])]
    assert any(n.startswith("transformer.") for n in changed)
    assert not any(n.startswith("depformer") for n in changed)  # text-only: depth frozen
    val = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
           if "val/accuracy" in x]
    assert val[-1]["val/accuracy"] == 1.0 and (tmp_path / "best" / "model.safetensors").exists()


def _final(out: Path) -> dict[str, torch.Tensor]:
    ck = sorted((out / "ckpt").glob("step-*"))[-1]
    return load_file(str(ck / "trainable.safetensors"))


def test_accumulation_1x8_equals_8x1(streams, tmp_path):
    base = {"max_steps": 2, "batch_size": 8, "lr": 1e-3, "checkpoint_every": 2}
    fit(TrainConfig(**base, micro_batch_size=8), streams, tmp_path / "a")
    fit(TrainConfig(**base, micro_batch_size=1), streams, tmp_path / "b")
    a, b = _final(tmp_path / "a"), _final(tmp_path / "b")
    assert a.keys() == b.keys()
    # Adam divides each gradient by its own running scale, so float32 summation-order noise in
    # near-zero gradients (1x8 and 8x1 add the same terms in another order) can move a weight by
    # a few 1e-6 (4.4e-6 seen on a loaded machine); a dropped or double-counted micro-batch changes
    # the direction of the update and moves weights by about lr = 1e-3.
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5), k


def test_shared_context_and_frame_weights(streams):
    model = build_model("tiny")
    items = list(enumerate(read_index(streams)))[:3]
    batch = collate(ShardReader(streams), items)
    plain = ScoreConfig(share_context=False)
    a = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split, plain)
    b = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split, ScoreConfig())
    assert torch.allclose(a.logps, b.logps, atol=1e-5)
    assert torch.allclose(a.floor_logp, b.floor_logp)  # no floor labels: 0
    # window frames 16..19: weights [3, 3, 1, 1] with the first 2 frames emphasised
    w = frame_weights(batch.window[:1], ScoreConfig(onset_frames=2, onset_weight=3.0))
    assert w[0, 15] == 0 and w[0, 16:20].tolist() == [3.0, 3.0, 1.0, 1.0]
    onset = ScoreConfig(onset_frames=2, onset_weight=3.0, share_context=False)
    c = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split, onset)
    from duplexalign.models.forward import rescore_text_logprobs

    per_frame = rescore_text_logprobs(model, batch.chosen)[:, 16:20]
    expected = (per_frame * torch.tensor([3.0, 3.0, 1.0, 1.0])).sum(1)
    assert torch.allclose(c.logps[:3], expected, atol=1e-5)
    assert c.lengths[:3].tolist() == [8.0, 8.0, 8.0]  # |y| = sum of weights (frames mode)
    tok = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split,
                      ScoreConfig(length_norm="tokens"))
    # chosen: EPAD + 3 word tokens -> 3 lexical tokens; rejected PAD only -> clamped to 1
    assert tok.lengths.tolist() == [3.0] * 3 + [1.0] * 3


def _script(streams: Path, out: Path, opts: dict, nproc: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO / "src")}
    if nproc == 1:
        cmd = [sys.executable, str(SCRIPT)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(29531 + os.getpid() % 1000), str(SCRIPT)]
    return subprocess.run(cmd + [str(streams), str(out), json.dumps(opts)], env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_sigkill_and_resume_reproduces_the_loss_curve(streams, tmp_path):
    opts = {"max_steps": 10, "batch_size": 4, "micro_batch_size": 2, "lr": 1e-3,
            "warmup_steps": 2, "checkpoint_every": 3, "val": {"every": 1, "metric": {"probe": 1}}}
    fit(TrainConfig.model_validate(opts), streams, tmp_path / "full",
        validators=[lambda model, step: {"probe": 0.0}])  # uninterrupted, in-process
    killed = _script(streams, tmp_path / "res", {**opts, "kill_at": 8})
    assert killed.returncode == -9  # SIGKILL at step 8, after the step-6 checkpoint
    assert (tmp_path / "res" / "ckpt" / "latest").read_text().strip() == "step-0000006"
    resumed = _script(streams, tmp_path / "res", opts)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _metrics(tmp_path / "full"), _metrics(tmp_path / "res")
    assert sorted(a) == sorted(b) == list(range(1, 11))
    for s in a:
        assert a[s]["loss"] == b[s]["loss"], s  # bit-exact
    fa, fb = _final(tmp_path / "full"), _final(tmp_path / "res")
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


@pytest.mark.slow
def test_ddp_two_processes_matches_one(streams, tmp_path):
    opts = {"max_steps": 2, "batch_size": 4, "micro_batch_size": 2, "lr": 1e-3,
            "checkpoint_every": 2}
    fit(TrainConfig.model_validate(opts), streams, tmp_path / "one")
    two = _script(streams, tmp_path / "two", opts, nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _final(tmp_path / "one"), _final(tmp_path / "two")
    # Adam divides each gradient by its own running scale, so float32 summation-order noise in
    # near-zero gradients (1x8 and 8x1 add the same terms in another order) can move a weight by
    # a few 1e-6 (4.4e-6 seen on a loaded machine); a dropped or double-counted micro-batch changes
    # the direction of the update and moves weights by about lr = 1e-3.
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5), k
    ma, mb = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert ma[2]["loss"] == pytest.approx(mb[2]["loss"], abs=1e-6)


@pytest.mark.slow
def test_fsdp_two_processes_matches_one(streams, tmp_path):
    opts = {"max_steps": 2, "batch_size": 4, "micro_batch_size": 2, "lr": 1e-3,
            "checkpoint_every": 2}
    fit(TrainConfig.model_validate(opts), streams, tmp_path / "one")
    two = _script(streams, tmp_path / "two", {**opts, "distributed": "fsdp"}, nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    a = dict(load_model(tmp_path / "one" / "final").named_parameters())
    b = dict(load_model(tmp_path / "two" / "final").named_parameters())
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_decision_window_scores_only_where_the_variants_part(streams):
    # hand-made texts over 8 frames, window = frames 2..6
    window = torch.zeros(3, 8, dtype=torch.bool)
    window[:, 2:7] = True
    chosen = torch.tensor([[3, 3, 3, 3, 0, 5, 5, 3],    # parts from rejected at frame 4
                           [3, 3, 3, 3, 3, 3, 3, 3],    # never parts: whole window kept
                           [3, 9, 3, 3, 3, 3, 0, 3]])   # differs at 1 (outside), parts at 6
    rejected = torch.tensor([[3, 3, 3, 3, 3, 3, 3, 3],
                             [3, 3, 3, 3, 3, 3, 3, 3],
                             [3, 3, 3, 3, 3, 3, 3, 3]])
    got = decision_window(chosen, rejected, window, 2)
    assert got.long().tolist() == [[0, 0, 0, 0, 1, 1, 0, 0],
                                   [0, 0, 1, 1, 1, 1, 1, 0],
                                   [0, 0, 0, 0, 0, 0, 1, 0]]
    # in the trainer's scoring: chosen (EPAD at 16, words from 17) parts from rejected (PAD) at
    # frame 16, so one decision frame sums exactly the log-probs at frame 16
    model = build_model("tiny")
    items = list(enumerate(read_index(streams)))[:3]
    batch = collate(ShardReader(streams), items)
    one = ScoreConfig(decision_frames=1, share_context=False)
    s = score_pairs(model, batch.chosen, batch.rejected, batch.window, batch.split, one)
    from duplexalign.models.forward import rescore_text_logprobs

    lp = rescore_text_logprobs(model, torch.cat([batch.chosen, batch.rejected]))
    assert torch.allclose(s.logps, lp[:, 16], atol=1e-5)
    assert s.lengths.tolist() == [1.0] * 6
