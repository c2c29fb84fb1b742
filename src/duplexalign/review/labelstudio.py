"""Label Studio interop: export a run as Label Studio tasks, import its annotations as decisions.

Owns the mapping between our records and Label Studio's JSON. `export_tasks` writes two projects
under OUT: `issues/` (one task per conversation: split-channel audio, model left and user right,
silent when the user audio was dropped; the issues as pre-annotated regions, each with a per-region
confirm/reject choice and its improved reply in an editable text area; the two-lane transcript) and
`pairs/` (one task per pair: chosen and rejected window audio as a blind left/right pairwise choice,
plus "neither"), each with its `label_config.xml`. `import_annotations` reads a Label Studio JSON
export of those tasks and appends the same `Decision` records the web app writes (origin
"label-studio"): a predicted region's choice confirms or rejects its issue, a changed text edits
it, a region the annotator drew flags a missed issue on the reply there, a pairwise choice prefers
a side. Decision ids derive from the annotation, so importing the same export twice adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from duplexalign.errors import BadInput
from duplexalign.manifest import GroupReader, iter_dicts, read_manifest
from duplexalign.records import (
    CONTENT_CATEGORIES,
    TIMING_CATEGORIES,
    Conversation,
    Decision,
    Issue,
    PreferencePair,
)
from duplexalign.review.store import DecisionLog, shown_first
from duplexalign.runs import ANNOTATIONS, CONVERSATIONS, PAIRS, RunDir, atomic_write_text
from duplexalign.text import safe_id

LS_REVIEWER = "label-studio"


def issues_config() -> str:
    """The labeling config of the issues project."""
    labels = "\n".join(f'    <Label value="{c}"/>' for c in CONTENT_CATEGORIES + TIMING_CATEGORIES)
    return f"""<View>
  <Header value="$conversation_id"/>
  <Audio name="audio" value="$audio" splitchannels="true"/>
  <Labels name="issue" toName="audio">
{labels}
  </Labels>
  <Choices name="verdict" toName="audio" perRegion="true" choice="single-radio">
    <Choice value="confirm"/>
    <Choice value="reject"/>
  </Choices>
  <TextArea name="improved_reply" toName="audio" perRegion="true" editable="true"
            maxSubmissions="1" placeholder="improved reply"/>
  <TextArea name="reason" toName="audio" perRegion="true" maxSubmissions="1"
            placeholder="why (optional)"/>
  <Paragraphs name="transcript" value="$transcript" layout="dialogue" nameKey="speaker"
              textKey="text"/>
</View>
"""


def pairs_config() -> str:
    """The labeling config of the pairs project (blind A/B: left and right)."""
    return """<View>
  <Header value="$context"/>
  <Pairwise name="preference" toName="left,right"/>
  <View style="display: flex; gap: 2em;">
    <View><Header value="A: $left_text"/><Audio name="left" value="$left_audio"/></View>
    <View><Header value="B: $right_text"/><Audio name="right" value="$right_audio"/></View>
  </View>
  <Choices name="neither" toName="left" choice="single">
    <Choice value="neither"/>
  </Choices>
</View>
"""


def _region_id(issue_id: str) -> str:
    return "i" + hashlib.sha256(issue_id.encode()).hexdigest()[:10]


def _stereo(rd: RunDir, conv: Conversation) -> np.ndarray:
    """[2, S] float32 at 24 kHz: the model channel left, the user right (silence if absent)."""
    from duplexalign.speech.audio import read_audio

    n = int(round(conv.duration * 24_000))
    out = np.zeros((2, n), dtype=np.float32)
    for ch, path in enumerate((conv.audio.model, conv.audio.user)):
        if path is not None:
            wav = read_audio(rd.resolve(path))[:n]
            out[ch, :len(wav)] = wav
    return out


def issue_task(conv: Conversation, issues: list[Issue], audio_url: str) -> dict[str, Any]:
    """The Label Studio task of one conversation, its issues as pre-annotated regions."""
    result: list[dict[str, Any]] = []
    for i in issues:
        rid = _region_id(i.id)
        span = {"start": i.reply_span[0], "end": i.reply_span[1], "channel": 0}
        result.append({"id": rid, "from_name": "issue", "to_name": "audio", "type": "labels",
                       "value": {**span, "labels": [i.category]}})
        if i.improved_reply:
            result.append({"id": rid, "from_name": "improved_reply", "to_name": "audio",
                           "type": "textarea", "value": {**span, "text": [i.improved_reply]}})
    lines = sorted([(w.start, "model", w.text) for w in conv.words.model]
                   + [(w.start, "user", w.text) for w in conv.words.user])
    transcript = [{"speaker": s, "text": f"[{t:.2f}] {x}", "start": t} for t, s, x in lines]
    return {"data": {"conversation_id": conv.id, "audio": audio_url, "transcript": transcript,
                     "regions": {_region_id(i.id): i.id for i in issues},
                     "improved": {_region_id(i.id): i.improved_reply or "" for i in issues},
                     "reasons": {_region_id(i.id): i.reason for i in issues}},
            "predictions": [{"model_version": "duplexalign", "result": result}]}


def export_tasks(run_dir: str | Path, out: str | Path,
                 audio_prefix: str = "/data/local-files/?d=") -> Counter:
    """Write the issues and pairs projects of `run_dir` under `out` (see the module docstring).

    Args:
        run_dir: the run directory.
        out: the output folder (`issues/`, `pairs/`, `audio/`).
        audio_prefix: prepended to each audio path (relative to `out`'s parent) in the tasks.

    Returns:
        Counts of tasks and regions written.
    """
    from duplexalign.speech.audio import write_audio

    rd, out = RunDir(run_dir, create=False), Path(out)
    if not rd.path(CONVERSATIONS).is_file():
        raise BadInput("no_conversations", f"{rd.path(CONVERSATIONS)} does not exist")
    counts: Counter = Counter()

    def url(p: Path) -> str:
        return audio_prefix + str(p.relative_to(out.parent))

    tasks = []
    by_conv = GroupReader(read_manifest(rd.path(ANNOTATIONS), Issue), lambda i: i.conversation_id)
    for conv in read_manifest(rd.path(CONVERSATIONS), Conversation):
        issues = by_conv.take(conv.id)
        if not issues:
            continue
        wav = out / "audio" / "conversations" / f"{safe_id(conv.id)}.wav"
        write_audio(wav, _stereo(rd, conv))
        tasks.append(issue_task(conv, issues, url(wav)))
        counts["issue_tasks"] += 1
        counts["issue_regions"] += len(issues)
    (out / "issues").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "issues" / "tasks.json", json.dumps(tasks, indent=1))
    atomic_write_text(out / "issues" / "label_config.xml", issues_config())

    ptasks = []
    for p in read_manifest(rd.path(PAIRS), PreferencePair):
        first = shown_first(p.id, LS_REVIEWER)
        left, right = (p.chosen, p.rejected) if first == "chosen" else (p.rejected, p.chosen)
        data: dict[str, Any] = {"pair_id": p.id, "conversation_id": p.conversation_id,
                                "left": first, "context": f"{p.conversation_id} · {p.category} "
                                f"· {p.window[0]:.2f}-{p.window[1]:.2f} s",
                                "left_text": left.text or "(silence)",
                                "right_text": right.text or "(silence)"}
        for side, variant in (("left", left), ("right", right)):
            if variant.audio is None:
                continue
            dest = out / "audio" / "pairs" / safe_id(p.id) / f"{side}.wav"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(rd.resolve(variant.audio).read_bytes())
            data[f"{side}_audio"] = url(dest)
        ptasks.append({"data": data})
        counts["pair_tasks"] += 1
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "pairs" / "tasks.json", json.dumps(ptasks, indent=1))
    atomic_write_text(out / "pairs" / "label_config.xml", pairs_config())
    return counts


def _when(ann: dict[str, Any]) -> float:
    stamp = ann.get("updated_at") or ann.get("created_at")
    if not stamp:
        return 0.0
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def _who(ann: dict[str, Any]) -> str:
    by = ann.get("completed_by")
    if isinstance(by, dict):
        by = by.get("email") or by.get("username") or by.get("id")
    return f"{LS_REVIEWER}:{by}" if by is not None else LS_REVIEWER


def _decision_id(*parts: Any) -> str:
    return "ls-" + hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def _issue_decisions(task: dict[str, Any], ann: dict[str, Any], convs: dict[str, Conversation],
                     base: dict[str, Any]) -> list[Decision]:
    from duplexalign.segments import replies, silence_id

    data = task["data"]
    regions: dict[str, dict[str, Any]] = {}
    for r in ann.get("result", []):
        reg = regions.setdefault(str(r.get("id")), {})
        v = r.get("value", {})
        reg.setdefault("start", v.get("start"))
        if r.get("type") == "labels":
            reg["labels"] = v.get("labels", [])
        elif r.get("type") == "choices" and r.get("from_name") == "verdict":
            reg["verdict"] = (v.get("choices") or [None])[0]
        elif r.get("type") == "textarea":
            reg[r.get("from_name")] = " ".join(v.get("text", [])).strip()
    out = []
    conv_id = data["conversation_id"]
    for rid, reg in regions.items():
        issue_id = data.get("regions", {}).get(rid)
        key = {**base, "conversation_id": conv_id}
        if issue_id is not None:
            verdict, text = reg.get("verdict"), reg.get("improved_reply")
            changed = bool(text) and text != data.get("improved", {}).get(rid, "")
            if verdict == "confirm" and changed:
                verdict = "edit"
            elif verdict is None:
                if not changed:
                    continue  # the annotator left this region undecided
                verdict = "edit"
            out.append(Decision(id=_decision_id(base["id"], rid), target="issue",
                                target_id=issue_id, verdict=verdict,
                                text=text if verdict == "edit" else None,
                                reason=reg.get("reason", ""), **{k: v for k, v in key.items()
                                                                 if k != "id"}))
        elif reg.get("labels") and reg.get("start") is not None and conv_id in convs:
            conv, t = convs[conv_id], float(reg["start"])
            rep = next((r for r in replies(conv) if r.start - 0.05 <= t < r.end), None)
            target_id = rep.id if rep is not None else silence_id(conv_id, t)
            for cat in reg["labels"]:
                out.append(Decision(id=_decision_id(base["id"], rid, cat), target="reply",
                                    target_id=target_id, verdict="flag", category=cat,
                                    reason=reg.get("reason", ""),
                                    **{k: v for k, v in key.items() if k != "id"}))
    return out


def _pair_decision(task: dict[str, Any], ann: dict[str, Any], base: dict[str, Any]
                   ) -> Decision | None:
    data = task["data"]
    verdict = None
    for r in ann.get("result", []):
        v = r.get("value", {})
        if r.get("type") == "choices" and "neither" in (v.get("choices") or []):
            verdict = "neither"
            break
        if r.get("type") == "pairwise" and v.get("selected") in ("left", "right"):
            left = data["left"]
            right = "rejected" if left == "chosen" else "chosen"
            verdict = f"prefer_{left if v['selected'] == 'left' else right}"
    if verdict is None:
        return None
    return Decision(id=_decision_id(base["id"], "pair"), target="pair", target_id=data["pair_id"],
                    conversation_id=data["conversation_id"], verdict=verdict,
                    shown_first=data["left"],
                    **{k: v for k, v in base.items() if k not in ("id", "conversation_id")})


def import_annotations(run_dir: str | Path, export: str | Path) -> Counter:
    """Append the decisions in a Label Studio JSON export to the run's log (once each).

    Args:
        run_dir: the run directory.
        export: a Label Studio "JSON" export of tasks written by `export_tasks`.

    Returns:
        Counts: decisions imported, already present, annotations cancelled, tasks not ours.
    """
    rd = RunDir(run_dir, create=False)
    try:
        tasks = json.loads(Path(export).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BadInput("not_json", f"{export}: not a Label Studio JSON export ({e})") from e
    if not isinstance(tasks, list):
        raise BadInput("not_label_studio", f"{export}: expected a list of tasks")
    wanted = {t.get("data", {}).get("conversation_id") for t in tasks
              if "regions" in t.get("data", {})}
    convs = {d["id"]: Conversation.model_validate(d)
             for d in iter_dicts(rd.path(CONVERSATIONS)) if d["id"] in wanted}
    log = DecisionLog(rd.root)
    have = {d.id for d in log.read()}
    counts: Counter = Counter()
    new: list[Decision] = []
    for task in tasks:
        data = task.get("data", {})
        if "regions" not in data and "pair_id" not in data:
            counts["tasks_not_from_duplexalign"] += 1
            continue
        for ann in task.get("annotations", []):
            if ann.get("was_cancelled"):
                counts["cancelled"] += 1
                continue
            base = {"id": [task.get("id"), ann.get("id"), ann.get("updated_at")],
                    "reviewer": _who(ann), "time": _when(ann), "origin": LS_REVIEWER}
            if "pair_id" in data:
                d = _pair_decision(task, ann, base)
                found = [d] if d is not None else []
            else:
                found = _issue_decisions(task, ann, convs, base)
            for d in found:
                if d.id in have:
                    counts["already_imported"] += 1
                else:
                    have.add(d.id)
                    new.append(d)
                    counts[f"imported/{d.verdict}"] += 1
    log.append(new)
    return counts
