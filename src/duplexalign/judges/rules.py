"""Timing rules: interruption, unresponsiveness, no-yield and pause-takeover detectors.

Owns the pure functions that find timing problems in a conversation from the two channels' timed words
(and, when audio was present, VAD speech intervals that fill in what ASR missed), and the thresholds they
use (`TimingRulesConfig`, every default documented with its reason). Each finding is an `Issue` with
kind "timing", the span it concerns, the evidence behind it and a human-readable reason. The rules know
nothing about LLMs, audio files or frames. The paper gives no thresholds; the defaults follow
`reference/paper.md` section 7 and `reference/eval.md` section 3.6.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.judges.base import RULES, VadSegments
from duplexalign.records import Channel, Conversation, Issue, JudgeInfo, Segment
from duplexalign.runs import digest_json
from duplexalign.segments import to_segments

BACKCHANNELS = ("yeah", "yes", "yep", "mhm", "mm", "mmhmm", "mm-hmm", "hmm", "uh-huh", "uhhuh", "right",
                "okay", "ok", "oh", "wow", "sure", "i", "see", "exactly", "ah", "huh", "cool", "nice",
                "true", "totally", "alright")


class TimingRulesConfig(StageConfig):
    """Thresholds of the timing rules (seconds unless noted). Section `annotate.rules` of a preset."""

    enabled: list[str] = Field(default_factory=lambda: ["interruption", "unresponsiveness"])
    """Rules to run. The paper's two by default; add "no_yield" and "pause_takeover" to opt in."""
    segment_gap: float = Field(0.8, gt=0)
    """Words closer than this form one segment (a speaker still holds the floor across a breath
    pause); same value as `segments.DEFAULT_MAX_GAP` so replies match the rest of the pipeline."""
    backchannel_max_words: int = Field(2, ge=0)
    """A segment of at most this many words and shorter than `backchannel_max_duration` is a
    backchannel ("short token" rule of Full-Duplex-Bench)."""
    backchannel_max_duration: float = Field(1.0, ge=0)
    """See `backchannel_max_words` (Full-Duplex-Bench uses < 1 s)."""
    backchannel_words: list[str] = Field(default_factory=lambda: list(BACKCHANNELS))
    """A segment made only of these words is a backchannel whatever its length ("yeah yeah right")."""
    interruption_min_overlap: float = Field(0.5, ge=0)
    """Model and user speech must overlap this long: shorter overlaps are ordinary turn-taking
    jitter and ASR timestamp error (±0.2 s), not a cut-in (paper.md section 7)."""
    interruption_min_user_continue: float = Field(1.0, ge=0)
    """The user must keep talking this long after the model's onset: it shows the user had not
    finished (paper.md section 7)."""
    turn_end_silence: float = Field(1.0, gt=0)
    """User silence that ends a user turn (tau_end in eval.md 3.6); shorter gaps are mid-turn pauses."""
    unresponsive_after: float = Field(3.0, gt=0)
    """Silence after a user turn end that makes the model unresponsive (eval.md 3.6 suggests
    3-5 s; human gaps are well under 1 s, so 3 s is clearly a missed reply)."""
    no_yield_after: float = Field(2.0, gt=0)
    """The model should stop within this long after a user barge-in (upper end of the 1-2 s yield
    window of Full-Duplex-Bench)."""
    pause_min: float = Field(0.3, ge=0)
    """User pauses shorter than this are not counted as pauses (tau_p of Full-Duplex-Bench)."""
    ipu_gap: float = Field(0.2, gt=0)
    """Gap that splits user words into inter-pausal units for pause detection (Talking Turns)."""


def _norm(word: str) -> str:
    return re.sub(r"[^\w'-]", "", word.lower())


def is_backchannel(seg: Segment, cfg: TimingRulesConfig) -> bool:
    """True when `seg` is a short token or made only of backchannel words (VAD-only: by length)."""
    dur = seg.end - seg.start
    if not seg.words:
        return dur < cfg.backchannel_max_duration
    if len(seg.words) <= cfg.backchannel_max_words and dur < cfg.backchannel_max_duration:
        return True
    lex = {w.lower() for w in cfg.backchannel_words}
    return all(_norm(w.text) in lex for w in seg.words)


def activity(conv: Conversation, channel: Channel, cfg: TimingRulesConfig,
             vad: VadSegments | None = None) -> list[Segment]:
    """Speech segments of `channel`: word segments, merged with VAD intervals when given.

    VAD intervals close the holes ASR leaves (a mumbled word still holds the floor); intervals closer
    than `cfg.segment_gap` are merged and keep the words they cover.
    """
    segs = to_segments(conv.words.of(channel), channel, cfg.segment_gap)
    if not vad or not vad.get(channel):
        return segs
    items = [(s.start, s.end, list(s.words)) for s in segs]
    items += [(float(a), float(b), []) for a, b in vad[channel] if b > a]
    items.sort(key=lambda x: x[0])
    merged: list[tuple[float, float, list]] = []
    for a, b, ws in items:
        if merged and a - merged[-1][1] <= cfg.segment_gap:
            pa, pb, pw = merged[-1]
            merged[-1] = (pa, max(pb, b), pw + ws)
        else:
            merged.append((a, b, ws))
    return [Segment(channel=channel, start=a, end=b, words=sorted(ws, key=lambda w: w.start))
            for a, b, ws in merged]


def _covering(segs: Sequence[Segment], t: float) -> Segment | None:
    """The segment that started strictly before `t` and is still running at `t`."""
    for s in segs:
        if s.start < t < s.end:
            return s
    return None


def _issue(conv: Conversation, category: str, span: tuple[float, float], reason: str,
           evidence: dict, cfg: TimingRulesConfig) -> Issue:
    key = digest_json(cfg.model_dump(mode="json"))
    return Issue(id=f"{conv.id}:{category}:{span[0]:.3f}", conversation_id=conv.id,
                 reply_span=(round(span[0], 3), round(span[1], 3)), kind="timing",
                 category=category, reason=reason, evidence=evidence,
                 judge=JudgeInfo(name=f"rule:{category}", prompt_id="timing_rules_v1",
                                 cache_key=key))


@RULES.register("interruption")
def detect_interruptions(conv: Conversation, cfg: TimingRulesConfig | None = None,
                         vad: VadSegments | None = None) -> list[Issue]:
    """Model replies that start while the user holds the floor.

    A non-backchannel model segment is an interruption when a non-backchannel user segment began
    before its onset and is still running at it, the two overlap for at least
    `interruption_min_overlap` s and the user keeps talking at least `interruption_min_user_continue`
    s after the onset.
    """
    cfg = cfg or TimingRulesConfig()
    model, user = activity(conv, "model", cfg, vad), activity(conv, "user", cfg, vad)
    out = []
    for m in model:
        if is_backchannel(m, cfg):
            continue
        u = _covering(user, m.start)
        if u is None or is_backchannel(u, cfg):
            continue
        ov = min(m.end, u.end) - m.start
        cont = u.end - m.start
        if ov >= cfg.interruption_min_overlap and cont >= cfg.interruption_min_user_continue:
            out.append(_issue(
                conv, "interruption", (m.start, m.end),
                f"model started talking {m.start - u.start:.1f}s into a user turn and overlapped it "
                f"for {ov:.1f}s while the user kept talking {cont:.1f}s",
                {"model_onset": m.start, "user_span": [u.start, u.end], "overlap": round(ov, 3),
                 "user_continues_for": round(cont, 3), "model_text": m.text, "user_text": u.text,
                 "min_overlap": cfg.interruption_min_overlap,
                 "min_user_continue": cfg.interruption_min_user_continue},
                cfg))
    return out


@RULES.register("unresponsiveness")
def detect_unresponsiveness(conv: Conversation, cfg: TimingRulesConfig | None = None,
                            vad: VadSegments | None = None) -> list[Issue]:
    """User turn ends followed by model silence of at least `unresponsive_after` seconds.

    A user turn ends at the end of a non-backchannel user segment followed by at least
    `turn_end_silence` s of user silence (or the end of the log) while the model is not speaking.
    The silence runs until the model's next word, the user's next word or the end of the log,
    whichever comes first; the issue's span is that silence.
    """
    cfg = cfg or TimingRulesConfig()
    model, user = activity(conv, "model", cfg, vad), activity(conv, "user", cfg, vad)
    out = []
    for i, u in enumerate(user):
        if is_backchannel(u, cfg):
            continue
        e = u.end
        nxt_user = user[i + 1].start if i + 1 < len(user) else conv.duration
        if nxt_user - e < cfg.turn_end_silence:
            continue
        if any(m.start <= e < m.end for m in model):
            continue
        nxt_model = min((m.start for m in model if m.start >= e), default=conv.duration)
        stop = min(nxt_model, nxt_user, conv.duration)
        silence = stop - e
        if silence >= cfg.unresponsive_after:
            why = ("the model never spoke again" if stop >= conv.duration and nxt_model >= stop
                   else "the user spoke again first" if nxt_user <= nxt_model
                   else "then the model replied")
            out.append(_issue(
                conv, "unresponsiveness", (e, stop),
                f"user finished a turn and the model stayed silent for {silence:.1f}s ({why})",
                {"user_turn": [u.start, u.end], "user_text": u.text, "silence": round(silence, 3),
                 "next_model_onset": None if nxt_model >= conv.duration else nxt_model,
                 "threshold": cfg.unresponsive_after},
                cfg))
    return out


@RULES.register("no_yield")
def detect_no_yield(conv: Conversation, cfg: TimingRulesConfig | None = None,
                    vad: VadSegments | None = None) -> list[Issue]:
    """Model replies that keep going more than `no_yield_after` s after a user barge-in.

    A barge-in is a non-backchannel user segment that starts while a model segment is running.
    """
    cfg = cfg or TimingRulesConfig()
    model, user = activity(conv, "model", cfg, vad), activity(conv, "user", cfg, vad)
    out, seen = [], set()
    for u in user:
        if is_backchannel(u, cfg):
            continue
        m = _covering(model, u.start)
        if m is None or m.start in seen:
            continue
        kept = m.end - u.start
        if kept > cfg.no_yield_after:
            seen.add(m.start)
            out.append(_issue(
                conv, "no_yield", (m.start, m.end),
                f"user barged in at {u.start:.1f}s but the model kept talking for {kept:.1f}s",
                {"barge_in": [u.start, u.end], "user_text": u.text, "kept_talking": round(kept, 3),
                 "threshold": cfg.no_yield_after},
                cfg))
    return out


@RULES.register("pause_takeover")
def detect_pause_takeover(conv: Conversation, cfg: TimingRulesConfig | None = None,
                          vad: VadSegments | None = None) -> list[Issue]:
    """Model replies that start inside a mid-turn user pause.

    A pause is a gap between consecutive user inter-pausal units (split at `ipu_gap`) of at least
    `pause_min` and less than `turn_end_silence` seconds, after which the user resumes.
    """
    cfg = cfg or TimingRulesConfig()
    model = activity(conv, "model", cfg, vad)
    ipus = to_segments(conv.words.user, "user", cfg.ipu_gap)
    out = []
    for a, b in zip(ipus, ipus[1:], strict=False):
        p0, p1 = a.end, b.start
        if not (cfg.pause_min <= p1 - p0 < cfg.turn_end_silence):
            continue
        for m in model:
            if p0 <= m.start < p1 and not is_backchannel(m, cfg):
                out.append(_issue(
                    conv, "pause_takeover", (m.start, m.end),
                    f"model took the floor {m.start - p0:.1f}s into a {p1 - p0:.1f}s user pause "
                    "and the user went on with their turn",
                    {"pause": [p0, p1], "before": a.text, "after": b.text, "model_text": m.text,
                     "pause_min": cfg.pause_min, "turn_end_silence": cfg.turn_end_silence},
                    cfg))
    return out
