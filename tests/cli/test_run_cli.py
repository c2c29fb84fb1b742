"""`duplexalign run`: the pipeline over a preset's top-level sections, one-line errors for
overrides nothing reads, the `--help` example, and which log lines reach the terminal."""

from __future__ import annotations

import json
import logging
import re

import pytest

from duplexalign.cli.main import build_parser, main, setup_logging

LINE = {"id": "c1", "duration": 6.0,
        "words": {"user": [["hello", 0.2, 0.6], ["there", 0.7, 1.0]],
                  "model": [["hi", 3.0, 3.3]]}}


@pytest.fixture
def preset(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps(LINE) + "\n")
    p = tmp_path / "preset.yaml"
    p.write_text(f"ingest:\n  input: {tmp_path / 'log.jsonl'}\n  format: jsonl\n"
                 "  require_audio: false\nannotate:\n  judge: none\n  progress: false\n")
    return p


def test_run_reads_the_top_level_sections_and_reruns_nothing(preset, tmp_path, capsys):
    argv = ["run", "--config", str(preset), "--out", str(tmp_path / "run"),
            "--stages", "annotate,ingest"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["ingest", "annotate"]  # pipeline order, whatever the order asked
    assert out["ingest"]["conversations"] == 1 and out["annotate"]["conversations/annotated"] == 1
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["ingest"]["skipped"] and again["annotate"]["skipped"]
    assert again["ingest"]["conversations"] == 1  # the finished run's counts


@pytest.mark.parametrize("argv, expect", [
    (["--set", "train.lr=1e-5"], "train.lr: not read by this command"),
    (["--set", "trian.lr=1e-5"], "unknown section 'trian'"),
    (["--set", "ingest.formatt=jsonl"], "ingest.formatt"),
    (["--stages", "ingest,tran"], "'tran'"),
])
def test_bad_overrides_and_stages_are_one_line_naming_the_key(preset, tmp_path, capsys, argv,
                                                               expect):
    rc = main(["run", "--config", str(preset), "--out", str(tmp_path / "run"),
               "--stages", "ingest,annotate", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and "Traceback" not in err


def test_the_set_example_in_help_is_a_valid_override(capsys):
    from duplexalign.annotate.stage import AnnotateConfig
    from duplexalign.config import load_section

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["annotate"].format_help()
    example = re.search(r"e\.g\. --set (\S+=\S+)", " ".join(text.split())).group(1)
    section = example.split(".", 1)[0]
    assert load_section(AnnotateConfig, section, None, [example]) is not None


def test_library_info_lines_stay_off_the_terminal_unless_verbose():
    root, ours = logging.getLogger(), logging.getLogger("duplexalign")
    saved = root.level, ours.level
    try:
        setup_logging(False)
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("duplexalign.pipeline").isEnabledFor(logging.INFO)
        setup_logging(True)
        assert logging.getLogger("httpx").isEnabledFor(logging.INFO)
    finally:
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
