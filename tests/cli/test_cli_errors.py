"""The CLI's exit-code contract on bad invocations: one line on stderr, a non-zero exit, no traceback.

Each row of TABLE is a command line run through `duplexalign.cli.main.main` in-process (fast), with
the text its one error line must contain. A few rows run in a subprocess too, where logging and the
interpreter's own traceback printing would show. Fixture run folders are made by hand: a folder with
only a stage's files but not its DONE marker stands for a killed or failed stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import conversation, word

from duplexalign.cli.main import main
from duplexalign.manifest import write_manifest
from duplexalign.records import Conversation
from duplexalign.runs import RunDir

REPO = Path(__file__).resolve().parents[1]


def _conv(cid: str) -> Conversation:
    return conversation([word("paris", 2.5, 3.0)], [word("capital", 0.0, 1.0)], 5.0, id=cid)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A folder of bad inputs and half-finished runs; commands run with it as cwd."""
    root = tmp_path_factory.mktemp("cli")
    (root / "afile").write_text("not a folder\n")
    (root / "adir").mkdir()
    (root / "bin.yaml").write_bytes(b"\x00\xff\xfe\x80binary")
    (root / "nul.yaml").write_bytes(b"annotate:\n  judge: n\x00one\n")
    (root / "misspelt.yaml").write_text("anotate:\n  judge: none\n")
    (root / "trian.yaml").write_text("trian:\n  max_steps: 3\n")
    (root / "list.yaml").write_text("- annotate\n")
    (root / "broken.yaml").write_text("annotate: [\n")
    (root / "scalar.yaml").write_text("annotate: 3\n")
    (root / "badkey.yaml").write_text("annotate:\n  judje: none\n")
    (root / "rewriter.yaml").write_text("pairs:\n  rewriter: {base_url: http://x/v1, model: m}\n")
    (root / "empty_run").mkdir()
    # conversations written but ingest killed before its DONE marker
    write_manifest(root / "killed_ingest" / "conversations.jsonl.gz", [_conv("c1")])
    # ingest finished
    ingested = root / "ingested"
    write_manifest(ingested / "conversations.jsonl.gz", [_conv("c1")])
    RunDir(ingested).mark_done("ingest")
    # annotate ran but judge failures remain (no DONE marker)
    failed = root / "judge_failed"
    write_manifest(failed / "conversations.jsonl.gz", [_conv("c1")])
    write_manifest(failed / "annotations.jsonl.gz", [])
    RunDir(failed).mark_done("ingest")
    (failed / "stats.json").write_text(json.dumps({"annotate": {"judge_failures_pending": 3}}))
    # annotated but pairs not finished
    annotated = root / "annotated"
    write_manifest(annotated / "conversations.jsonl.gz", [_conv("c1")])
    write_manifest(annotated / "annotations.jsonl.gz", [])
    write_manifest(annotated / "pairs.jsonl.gz", [])
    RunDir(annotated).mark_done("ingest")
    RunDir(annotated).mark_done("annotate")
    # an index whose paths a file system cannot take
    idx = root / "badpaths"
    idx.mkdir()
    lines = [{"path": "a\x00b.wav", "duration": 3.0}, {"path": "\ud800.wav", "duration": 3.0}]
    (idx / "index.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


DEAD_URL = "http://127.0.0.1:9/v1"  # the discard port: connection refused at once

TABLE: list[tuple[list[str], str]] = [
    # argument parsing
    ([], "a COMMAND is required"),
    (["frobnicate"], "invalid choice"),
    (["--bogus"], "unrecognized arguments"),
    (["ingest"], "required: --out"),
    (["ingest", "--out", "o3"], "ingest.input: the input file or folder is required"),
    (["ingest", "x"], "required: --out"),
    (["annotate"], "required: run"),
    (["pairs"], "required: run"),
    (["streams"], "required: run"),
    (["train"], "required: run"),
    (["evaluate", "ckpt"], "required: --out"),
    (["report"], "required: run"),
    (["report", "ingested", "--worst", "many"], "invalid int value"),
    (["show", "c1"], "required: --run"),
    (["compare", "a"], "required: b"),
    (["codec"], "required"),
    (["codec", "fit", "adir"], "required: --out"),
    (["tokenizer", "fit", "ingested", "--out", "t.model", "--model-type", "wordpiece"],
     "invalid choice"),
    (["demo", "--loss", "ppo"], "invalid choice"),
    (["annotate", "ingested", "--no-such-flag"], "unrecognized arguments"),
    (["train", "ingested", "--set"], "expected one argument"),
    # config files
    (["annotate", "ingested", "--config", "missing.yaml"], "does not exist"),
    (["annotate", "ingested", "--config", "adir"], "is not a file"),
    (["annotate", "ingested", "--config", "bin.yaml"], "not a text file"),
    (["annotate", "ingested", "--config", "nul.yaml"], "not a text file"),
    (["annotate", "ingested", "--config", "misspelt.yaml"], "unknown section 'anotate'"),
    (["train", "ingested", "--config", "trian.yaml"], "did you mean 'train'"),
    (["annotate", "ingested", "--config", "list.yaml"], "top level must be a mapping"),
    (["annotate", "ingested", "--config", "broken.yaml"], "not valid YAML"),
    (["annotate", "ingested", "--config", "scalar.yaml"], "annotate: must be a mapping"),
    (["annotate", "ingested", "--config", "badkey.yaml"], "annotate.judje"),
    (["pairs", "annotated", "--config", "rewriter.yaml"], "pairs.rewriter.base_url"),
    # overrides
    (["annotate", "ingested", "--set", "in_flight"], "must look like key.path=value"),
    (["annotate", "ingested", "--set", "in_flight=abc"], "annotate.in_flight"),
    (["annotate", "ingested", "--set", "in_flight=0"], "annotate.in_flight"),
    (["annotate", "ingested", "--set", "nosuch=1"], "annotate.nosuch"),
    (["annotate", "ingested", "--judge", "nosuch"], "nosuch"),
    (["annotate", "ingested", "--judge-url", "ftp://example.org/v1"], "not an http"),
    (["annotate", "ingested", "--judge-url", "localhost:8080"], "not an http"),
    (["annotate", "ingested", "--set", "rules.enabled=[interuption]"], "interruption"),
    (["pairs", "annotated", "--set", "rewriter.bogus=1"], "pairs.rewriter.bogus"),
    (["pairs", "annotated", "--set", "rewriter={url: 'ftp://x', model: m}"], "not an http"),
    (["pairs", "annotated", "--set", "gap_min=2", "--set", "gap_max=1"], "gap_max"),
    (["ingest", "adir", "--out", "o1", "--format", "nosuch"], "nosuch"),
    (["train", "annotated", "--set", "train.loss=nosuch"], "train.loss"),
    # stages out of order, missing or wrong paths
    (["ingest", "missing_input", "--out", "o2", "--format", "jsonl"], "does not exist"),
    (["ingest", "adir", "--out", "afile", "--format", "jsonl"], "not a directory"),
    (["annotate", "missing_run", "--judge", "none"], "does not exist"),
    (["annotate", "afile", "--judge", "none"], "not a directory"),
    (["annotate", "empty_run", "--judge", "none"], "ingest"),
    (["annotate", "killed_ingest", "--judge", "none"], "no finished `ingest` stage"),
    (["pairs", "missing_run"], "does not exist"),
    (["pairs", "ingested"], "no finished `annotate` stage"),
    (["pairs", "judge_failed"], "3 judge failures pending"),
    (["streams", "missing_run"], "does not exist"),
    (["streams", "annotated", "--tokenizer", "t.model"], "no finished `pairs` stage"),
    (["train", "missing_run"], "does not exist"),
    (["train", "empty_run"], "no finished `streams` stage"),
    (["train", "afile"], "not a directory"),
    (["report", "missing_run"], "does not exist"),
    (["report", "ingested", "--out", "afile"], "not a directory"),
    (["evaluate", "missing_ckpt", "--out", "o3"], "missing_ckpt"),
    (["show", "c1", "--run", "missing_run"], "missing_run"),
    (["show", "nosuch", "--run", "ingested"], "nosuch"),
    (["validate", "missing_run"], "missing_run"),
    (["compare", "missing_a", "missing_b"], "missing_a"),
    (["codec", "fit", "missing_audio", "--out", "c.safetensors"], "missing_audio"),
    (["tokenizer", "fit", "empty_run", "--out", "t.model"], "no text"),
    # a stage that ran but did not do its job
    (["annotate", "ingested", "--judge-url", DEAD_URL, "--judge-model", "m", "--no-progress",
      "--set", "llm.max_retries=0", "--set", "llm.cache_dir=judge_cache_dead"],
     "1 judge call(s) failed in 1 conversation(s), first: connect"),
    (["ingest", "badpaths", "--out", "o4", "--format", "moshi-finetune"], "0 conversations from 2"),
]


def _run(argv: list[str], ws: Path, capsys) -> tuple[int, list[str]]:
    cwd = os.getcwd()
    os.chdir(ws)
    try:
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse exits; its code is the exit code
            rc = e.code
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.strip()]


def test_the_table_has_at_least_50_rows():
    assert len(TABLE) >= 50


@pytest.mark.parametrize(("argv", "expect"), TABLE, ids=[" ".join(a) or "<none>" for a, _ in TABLE])
def test_bad_invocation_is_one_line_and_nonzero(argv, expect, ws, capsys):
    rc, lines = _run(argv, ws, capsys)
    assert rc not in (0, None), f"exit code {rc}"
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "internal error" not in lines[0], lines[0]
    assert "Traceback" not in lines[0]
    assert expect in lines[0], lines[0]


def test_bad_paths_are_quarantined_with_a_reason_and_no_traceback(ws, capsys, caplog):
    _run(["ingest", "badpaths", "--out", "o5", "--format", "moshi-finetune"], ws, capsys)
    from duplexalign.manifest import iter_dicts

    reasons = [d["reason"] for d in iter_dicts(ws / "o5" / "quarantine.jsonl.gz")]
    assert reasons == ["bad_path", "bad_path"], reasons
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("argv", [
    [],
    ["train", "missing_run"],
    ["annotate", "ingested", "--judge-url", DEAD_URL, "--judge-model", "m", "--no-progress",
     "--set", "llm.max_retries=0", "--set", "llm.cache_dir=judge_cache_sub"],
], ids=["no-command", "train-missing-run", "annotate-dead-judge"])
def test_subprocess_stderr_is_exactly_one_line(argv, ws):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_TORCH_COMPILE": "1"}
    out = subprocess.run([sys.executable, "-m", "duplexalign.cli.main", *argv], cwd=ws, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr


def test_a_finished_annotate_lets_pairs_start(ws, capsys):
    """The refusal is about the marker: with it, the same run gets past the check."""
    rc, lines = _run(["pairs", "annotated"], ws, capsys)
    assert rc == 1 and "0 pairs written" in lines[-1], lines
