"""Export back to the moshi-finetune layout (round trip through the reader) and the ls, validate
and show subcommands."""

import json

import numpy as np
import pytest
import soundfile as sf

from duplexalign.cli.main import main as cli
from duplexalign.ingest.base import IngestConfig
from duplexalign.ingest.export import export_moshi_finetune
from duplexalign.manifest import read_manifest
from duplexalign.records import Conversation
from ingest.helpers import DIALOGUES, ingest, speak, write_index, write_moshi


@pytest.fixture(scope="module")
def dialogue():
    return speak(DIALOGUES[0])


def _ingest(tmp_path, dialogue, keep_user):
    data = tmp_path / "data"
    index = write_index(data, [write_moshi(data, "a", dialogue)])
    out = tmp_path / "run"
    ingest(IngestConfig(keep_user_audio=keep_user), index, out)
    return out, list(read_manifest(out / "conversations.jsonl.gz", Conversation))


@pytest.mark.parametrize("keep_user", [True, False])
def test_export_round_trips_through_the_reader(tmp_path, dialogue, keep_user):
    out, convs = _ingest(tmp_path, dialogue, keep_user)
    counts = export_moshi_finetune(convs, out, tmp_path / "export")
    assert counts["exported"] == 1 and counts["user_silence"] == (0 if keep_user else 1)
    index = tmp_path / "export" / "index.jsonl"
    (entry,) = [json.loads(x) for x in index.read_text().splitlines()]
    stereo, sr = sf.read(str(tmp_path / "export" / entry["path"]))
    assert sr == 24000 and stereo.shape == (len(dialogue.stereo), 2)
    assert entry["duration"] == pytest.approx(dialogue.duration)
    assert np.abs(stereo[:, 0] - dialogue.stereo[:, 0]).max() < 2e-3
    if keep_user:
        assert np.abs(stereo[:, 1] - dialogue.stereo[:, 1]).max() < 2e-3
    else:
        assert not stereo[:, 1].any()
    side = json.loads((tmp_path / "export" / entry["path"]).with_suffix(".json").read_text())
    assert side["duplexalign"]["user_audio"] == ("original" if keep_user else "silence")
    starts = [a[1][0] for a in side["alignments"]]
    assert starts == sorted(starts)
    # reading the export back gives the same words on the same channels
    again = tmp_path / "again"
    ingest(IngestConfig(), index, again)
    (back,) = read_manifest(again / "conversations.jsonl.gz", Conversation)
    assert back.words == convs[0].words


def test_export_skips_conversations_without_model_audio(tmp_path, dialogue):
    _, convs = _ingest(tmp_path, dialogue, False)
    bare = convs[0].model_copy(update={"audio": convs[0].audio.model_copy(update={"model": None})})
    assert export_moshi_finetune([bare], tmp_path, tmp_path / "x")["skipped/no_model_audio"] == 1
    assert (tmp_path / "x" / "index.jsonl").read_text() == ""


def test_ls_lists_every_registry(capsys):
    assert cli(["ls"]) == 0
    out = capsys.readouterr().out
    assert "ingest format: audio, fdb, jsonl, moshi-finetune" in out
    assert "asr backend:" in out


def test_validate_and_show(tmp_path, dialogue, capsys):
    out, convs = _ingest(tmp_path, dialogue, False)
    assert cli(["validate", str(out)]) == 0
    assert "ok: no problems" in capsys.readouterr().out

    assert cli(["show", "audio/a", "--run", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    model_text = " ".join(t for t, _, _ in dialogue.words["model"])
    user_first = dialogue.words["user"][0][0]
    header = next(i for i, line in enumerate(shown) if "MODEL" in line)
    lane = shown[header].index("USER")
    rows = shown[header + 1:]
    assert any(model_text in r[:lane] for r in rows)  # model words in the left lane
    assert any(r[lane:].startswith(user_first) for r in rows)  # user words in the right lane
    assert cli(["show", "nope", "--run", str(out)]) == 2

    (out / convs[0].audio.model).unlink()
    assert cli(["validate", str(out)]) == 1
    assert "audio_missing: 1" in capsys.readouterr().out


def test_ingest_cli_flags_and_preset(tmp_path, dialogue):
    data = tmp_path / "data"
    doc = {"alignments": [[t, [s, e], "BOT"] for t, s, e in dialogue.words["model"]]}
    index = write_index(data, [write_moshi(data, "a", dialogue, doc=doc)])
    preset = tmp_path / "preset.yaml"
    preset.write_text("ingest:\n  format: jsonl\n  speaker_map: {BOT: model}\n")
    out = tmp_path / "run"
    assert cli(["ingest", str(index), "--format", "moshi-finetune", "--out", str(out),
                "--config", str(preset), "--keep-user-audio",
                "--set", "require_channels=[model]"]) == 0
    (c,) = read_manifest(out / "conversations.jsonl.gz", Conversation)
    assert len(c.words.model) == len(dialogue.words["model"]) and c.words.user == []
    assert c.audio.user is not None  # --keep-user-audio
    prov = json.loads((out / "provenance.json").read_text())["ingest"]
    assert prov["config"]["format"] == "moshi-finetune"  # the flag wins over the preset
    assert prov["config"]["speaker_map"] == {"BOT": "model"}
    assert cli(["ingest", str(index), "--out", str(out), "--set", "no_such_key=1"]) == 2
