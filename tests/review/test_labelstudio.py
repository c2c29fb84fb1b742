"""Label Studio round trip: export a run's tasks, answer them as Label Studio would, import the
annotations back as the same decision records the web app writes (and only once)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from factories import timed  # noqa: E402
from runfix import make_run  # noqa: E402

from duplexalign.cli.main import main  # noqa: E402
from duplexalign.manifest import write_manifest  # noqa: E402
from duplexalign.records import PreferencePair, ReplyVariant  # noqa: E402
from duplexalign.review.store import DecisionLog, resolved  # noqa: E402
from duplexalign.runs import PAIRS  # noqa: E402
from duplexalign.speech.audio import write_audio  # noqa: E402


def add_pair(run: Path) -> None:
    import numpy as np

    for side in ("chosen", "rejected"):
        write_audio(run / f"pairs/audio/p1/{side}.wav", np.zeros(24_000, dtype=np.float32))
    write_manifest(run / PAIRS, [PreferencePair(
        id="p1", conversation_id="conv-a", reply_id="conv-a#r0", window=(2.96, 3.96),
        context_start=0.0,
        chosen=ReplyVariant(words=timed("paris", 3.0), audio="pairs/audio/p1/chosen.wav"),
        rejected=ReplyVariant(words=timed("i do not know", 3.0),
                              audio="pairs/audio/p1/rejected.wav"),
        issue_ids=["a-fact"], strategy="rewrite", category="content")])


def answer(task: dict, result: list[dict], who: int = 7, ann_id: int = 1) -> dict:
    """The task as a Label Studio JSON export holds it once annotator `who` submitted."""
    return {**task, "id": 100 + ann_id, "annotations": [
        {"id": ann_id, "completed_by": who, "was_cancelled": False, "result": result,
         "created_at": "2026-11-30T08:00:00Z", "updated_at": "2026-11-30T08:05:00.5Z"}]}


def test_export_then_import_round_trip(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    add_pair(run)
    out = tmp_path / "ls"
    assert main(["review", "export", str(run), "--format", "label-studio", "--out",
                 str(out)]) == 0
    tasks = json.loads((out / "issues/tasks.json").read_text())
    assert [t["data"]["conversation_id"] for t in tasks] == ["conv-a", "conv-b"]
    assert 'splitchannels="true"' in (out / "issues/label_config.xml").read_text()
    # split-channel audio: model left, user right (silent where the run dropped it)
    wav, sr = sf.read(str(out / "audio/conversations/conv-a.wav"))
    assert sr == 24_000 and wav.shape == (240_000, 2)
    assert abs(wav[:, 0]).max() > 0.1 and abs(wav[:, 1]).max() == 0
    assert abs(sf.read(str(out / "audio/conversations/conv-b.wav"))[0][:, 1]).max() > 0.1
    assert tasks[0]["data"]["audio"] == "/data/local-files/?d=ls/audio/conversations/conv-a.wav"
    # issue regions pre-annotated, with the improved reply in the per-region text area
    pred = tasks[0]["predictions"][0]["result"]
    labels = [r for r in pred if r["type"] == "labels"]
    assert [(r["value"]["start"], r["value"]["labels"]) for r in labels] == [
        (3.0, ["factuality"]), (6.0, ["tone"])]
    fact, tone = (r["id"] for r in labels)
    assert tasks[0]["data"]["regions"] == {fact: "a-fact", tone: "a-tone"}
    ptask = json.loads((out / "pairs/tasks.json").read_text())[0]
    left = ptask["data"]["left"]
    assert Path(out.parent / ptask["data"]["left_audio"].split("?d=")[1]).is_file()
    assert ptask["data"]["left_text"] == ("paris" if left == "chosen" else "i do not know")

    # the annotator: confirms a-fact with a new text, rejects a-tone, draws a missed safety
    # region over the second reply, prefers the right-hand (B) variant of the pair
    span = {"start": 3.0, "end": 3.85, "channel": 0}
    result = [
        {"id": fact, "from_name": "issue", "to_name": "audio", "type": "labels",
         "value": {**span, "labels": ["factuality"]}},
        {"id": fact, "from_name": "verdict", "to_name": "audio", "type": "choices",
         "value": {**span, "choices": ["confirm"]}},
        {"id": fact, "from_name": "improved_reply", "to_name": "audio", "type": "textarea",
         "value": {**span, "text": ["paris, the capital"]}},
        {"id": tone, "from_name": "verdict", "to_name": "audio", "type": "choices",
         "value": {"start": 6.0, "end": 7.15, "choices": ["reject"]}},
        {"id": tone, "from_name": "reason", "to_name": "audio", "type": "textarea",
         "value": {"start": 6.0, "end": 7.15, "text": ["just blunt"]}},
        {"id": "drawn1", "from_name": "issue", "to_name": "audio", "type": "labels",
         "value": {"start": 6.3, "end": 7.0, "channel": 0, "labels": ["safety"]}}]
    pair_result = [{"id": "x", "from_name": "preference", "to_name": "left", "type": "pairwise",
                    "value": {"selected": "right"}}]
    export = [answer(tasks[0], result), answer(tasks[1], [], ann_id=2),
              answer(ptask, pair_result, who=8, ann_id=3), {"data": {"text": "not ours"}}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert main(["review", "import", str(run), str(tmp_path / "export.json")]) == 0
    got = resolved(DecisionLog(run).read())
    fact_d, tone_d = got["issue:a-fact"], got["issue:a-tone"]
    assert (fact_d.verdict, fact_d.text, fact_d.reviewer) == ("edit", "paris, the capital",
                                                              "label-studio:7")
    assert (tone_d.verdict, tone_d.reason, tone_d.origin) == ("reject", "just blunt",
                                                              "label-studio")
    flag = got["reply:conv-a#r1/safety"]
    assert (flag.verdict, flag.conversation_id) == ("flag", "conv-a")
    right = "rejected" if left == "chosen" else "chosen"
    pair = got["pair:p1"]
    assert (pair.verdict, pair.shown_first, pair.reviewer) == (f"prefer_{right}", left,
                                                               "label-studio:8")
    assert fact_d.time == 1796025900.5  # updated_at
    # importing the same export again adds nothing
    before = DecisionLog(run).path.read_bytes()
    assert main(["review", "import", str(run), str(tmp_path / "export.json")]) == 0
    assert DecisionLog(run).path.read_bytes() == before
    assert "already_imported" in capsys.readouterr().out


def test_import_of_a_file_that_is_not_an_export_is_one_line(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    (tmp_path / "x.json").write_text("{nope")
    assert main(["review", "import", str(run), str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not_json") and err.count("\n") == 1
