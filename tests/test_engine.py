"""The engine contract on the local engine: results in input order, skipped items passed through,
the worker built once and only when needed, errors raised as from a plain loop, and Ray never
imported (the Ray engine itself is tested on a two-node cluster in test_engine_ray.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from duplexalign.config import load_section
from duplexalign.engine import EngineConfig, call_size, digested, map_timings, ordered_map
from duplexalign.errors import ConfigError
from duplexalign.pairs.config import PairsConfig


class Square:
    built = 0

    def __init__(self):
        Square.built += 1

    def __call__(self, x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * x


def test_local_map_keeps_order_and_passes_skipped_items_through():
    Square.built = 0
    got = list(ordered_map(EngineConfig(), Square, [3, "a", 1, 2], skip=lambda x: x == "a"))
    assert got == [9, "a", 1, 4]
    assert Square.built == 1  # one worker for the whole map


def test_local_map_is_lazy_and_builds_no_worker_for_skipped_items_only():
    Square.built = 0
    assert list(ordered_map(EngineConfig(), Square, ["a", "b"], skip=lambda x: True)) == ["a", "b"]
    assert Square.built == 0
    seen = []

    def items():
        for i in range(3):
            seen.append(i)
            yield i

    it = ordered_map(EngineConfig(), Square, items())
    assert next(it) == 0 and seen == [0]  # item by item, as the stages always ran


def test_calls_are_full_while_the_input_goes_on_and_shrink_at_its_end():
    # input not read to its end: full calls (or what is queued, when less)
    assert call_size(8, 100, 2, exhausted=False) == 8
    assert call_size(8, 3, 2, exhausted=False) == 3
    # the tail: ceil(queued / (2 per worker * 2 workers)), at most the batch, at least 1
    assert call_size(8, 100, 2, exhausted=True) == 8
    assert call_size(8, 24, 2, exhausted=True) == 6  # 24 / 4
    assert call_size(8, 18, 2, exhausted=True) == 5  # ceil(18 / 4)
    assert call_size(8, 1, 2, exhausted=True) == 1
    assert call_size(8, 0, 2, exhausted=True) == 1
    # 24 slow recordings, batch 8, 2 workers each pulling the next call: the calls go out as
    # 6, 5, 4, 3, 2, 1, 1, 1, 1 (not 8, 8, 8, where one worker would do 16 of the 24)
    sizes, left = [], 24
    while left:
        sizes.append(call_size(8, left, 2, exhausted=True))
        left -= sizes[-1]
    assert sizes == [6, 5, 4, 3, 2, 1, 1, 1, 1]


def test_the_local_map_records_its_timing():
    map_timings(clear=True)
    list(ordered_map(EngineConfig(), Square, [1, "a", 2], skip=lambda x: x == "a"))
    (t,) = map_timings(clear=True)
    assert (t.kind, t.workers, t.items, t.calls) == ("local", 1, 2, 2)
    assert 0 <= t.startup_s <= t.wall_s
    list(ordered_map(EngineConfig(), Square, ["a"], skip=lambda x: True))
    assert map_timings()[0].workers == 0  # no worker was built


def test_a_worker_error_is_raised_as_from_a_loop():
    with pytest.raises(ValueError, match="negative"):
        list(ordered_map(EngineConfig(), Square, [1, -1]))


def test_the_engine_is_not_in_the_digest_and_bad_values_name_the_key():
    a = PairsConfig()
    b = PairsConfig(engine=EngineConfig(kind="ray", address="10.0.0.1:6379", workers=8))
    assert digested(a) == digested(b) and "engine" not in digested(a)
    with pytest.raises(ConfigError, match=r"pairs.engine.kind"):
        load_section(PairsConfig, "pairs", overrides=["engine.kind=spark"])
    with pytest.raises(ConfigError, match=r"pairs.engine.workers"):
        load_section(PairsConfig, "pairs", overrides=["engine.workers=0"])


def test_the_local_engine_never_imports_ray():
    code = ("import sys\n"
            "from duplexalign.engine import EngineConfig, ordered_map\n"
            "import duplexalign.ingest.stage, duplexalign.pairs.stage, duplexalign.streams.stage\n"
            "import duplexalign.annotate.stage\n"
            "assert list(ordered_map(EngineConfig(), lambda: abs, [-1, 2])) == [1, 2]\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_engine_flags_reach_every_map_stage_of_a_pipeline_run():
    from argparse import Namespace

    from duplexalign import pipeline
    from duplexalign.cli.common import engine_overrides

    args = Namespace(engine="ray", engine_address="10.0.0.1:6379")
    stages = ("ingest", "annotate", "pairs", "streams", "train", "evaluate")
    sets = engine_overrides(args, tuple(s for s in stages if s in pipeline.ENGINE_STAGES))
    configs = pipeline.load_configs(None, sets, stages)
    for s in pipeline.ENGINE_STAGES:
        assert configs[s].engine == EngineConfig(kind="ray", address="10.0.0.1:6379")
    assert not hasattr(configs["train"], "engine")
