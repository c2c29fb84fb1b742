"""Timing rules: interruption, unresponsiveness, no-yield and pause-takeover detectors.

Owns the pure functions that find timing problems in a conversation from the two channels' timed
words (and, when audio was present, VAD speech intervals that fill in what ASR missed), and the
thresholds they use (`TimingRulesConfig`, every default documented with its reason). Each finding is
an `Issue` with kind "timing", the reply it concerns (`reply_id`, from the replies the annotate
stage assigned once), the span, the evidence behind it and a human-readable reason. Segments, turns,
backchannels and onsets are the shared definitions of `segments.py`. The rules know nothing about
LLMs, audio files or frames. The paper gives no thresholds; the defaults follow `reference/paper.md`
section 7 and `reference/eval.md` section 3.6.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from duplexalign.config import StageConfig
from duplexalign.judges.base import RULES, VadSegments
from duplexalign.records import Channel, Conversation, Issue, JudgeInfo, Segment
from duplexalign.runs import digest_json
from duplexalign.segments import is_backchannel as _is_backchannel
from duplexalign.segments import (
    overlap,
    replies,
    silence_id,
    to_segments,
    turns,
    words_before,
)

BACKCHANNELS = ("yeah", "yes", "yep", "mhm", "mm", "mmhmm", "mm-hmm", "hmm", "uh-huh", "uhhuh", "right",
                "okay", "ok", "oh", "wow", "sure", "i", "see", "exactly", "ah", "huh", "cool", "nice",
                "true", "totally", "alright")


class TimingRulesConfig(StageConfig):
    """Thresholds of the timing rules (seconds unless noted). Section `annotate.rules` of a preset."""

    enabled: list[str] = Field(default_factory=lambda: ["interruption", "unresponsiveness"])
    """Rules to run. The paper's two by default; add "no_yield" and "pause_takeover" to opt in."""
    segment_gap: float = Field(0.8, gt=0)
    """Words closer than this form one segment (a speaker still holds the floor across a breath
    pause). It is the one reply gap of a run: the annotate stage splits the model's words into
    replies (and assigns their `reply_id`s) with it, for these rules and the content judge alike."""
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
    """User silence that ends a user turn (tau_end in eval.md 3.6); shorter gaps are mid-turn
    pauses, so interruption is judged per turn: a model onset in such a pause is inside the turn."""
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


def is_backchannel(seg: Segment, cfg: TimingRulesConfig) -> bool:
    """True when `seg` is a short token or made only of backchannel words (VAD-only: by length)."""
    return _is_backchannel(seg.words, seg.start, seg.end, cfg.backchannel_max_words,
                           cfg.backchannel_max_duration, cfg.backchannel_words)


def activity(conv: Conversation, channel: Channel, cfg: TimingRulesConfig,
             vad: VadSegments | None = None, segs: list[Segment] | None = None) -> list[Segment]:
    """Speech segments of `channel`: word segments, merged with VAD intervals when given.

    VAD intervals close the holes ASR leaves (a mumbled word still holds the floor); intervals closer
    than `cfg.segment_gap` are merged and keep the words they cover, and the id of the first
    segment they hold (the model's replies carry their `reply_id`).

    Args:
        segs: the channel's word segments when already made (the model's replies); None splits
            the channel's words at `cfg.segment_gap`.
    """
    if segs is None:
        segs = to_segments(conv.words.of(channel), channel, cfg.segment_gap)
    if not vad or not vad.get(channel):
        return segs
    items = [(s.start, s.end, list(s.words), s.id, s.first_word) for s in segs]
    items += [(float(a), float(b), [], "", -1) for a, b in vad[channel] if b > a]
    items.sort(key=lambda x: x[0])
    merged: list[tuple[float, float, list, str, int]] = []
    for a, b, ws, sid, first in items:
        if merged and a - merged[-1][1] <= cfg.segment_gap:
            pa, pb, pw, pid, pfirst = merged[-1]
            merged[-1] = (pa, max(pb, b), pw + ws, pid or sid, pfirst if pfirst >= 0 else first)
        else:
            merged.append((a, b, ws, sid, first))
    return [Segment(channel=channel, start=a, end=b, words=sorted(ws, key=lambda w: w.start),
                    id=sid, first_word=first if first >= 0 else words_before(
                        conv.words.of(channel), a))
            for a, b, ws, sid, first in merged]


def _model(conv: Conversation, cfg: TimingRulesConfig, vad: VadSegments | None,
           reps: list[Segment] | None) -> list[Segment]:
    """The model's speech segments, each with the `reply_id` of the reply it holds ("" for
    VAD-only speech, which no pair can be built from)."""
    return activity(conv, "model", cfg, vad, reps if reps is not None
                    else replies(conv, cfg.segment_gap))


def _covering(segs: Sequence[Segment], t: float) -> Segment | None:
    """The segment that started strictly before `t` and is still running at `t`."""
    for s in segs:
        if s.start < t < s.end:
            return s
    return None


def _issue(conv: Conversation, category: str, reply: Segment | None, span: tuple[float, float],
           reason: str, evidence: dict, cfg: TimingRulesConfig,
           user_turn: tuple[float, float] | None = None,
           pause: tuple[float, float] | None = None) -> Issue:
    """A timing issue about the model segment `reply` (None: the silence `span`)."""
    key = digest_json(cfg.model_dump(mode="json"))
    if reply is None or not reply.id:
        k = words_before(conv.words.model, span[0])
        rid, rng = silence_id(conv.id, span[0]), (k, k)
    else:
        rid, rng = reply.id, reply.word_range
    return Issue(id=f"{conv.id}:{category}:{span[0]:.3f}", conversation_id=conv.id,
                 reply_id=rid, reply_words=rng, user_turn=user_turn, pause=pause,
                 reply_span=(round(span[0], 3), round(span[1], 3)), kind="timing",
                 category=category, reason=reason, evidence=evidence,
                 judge=JudgeInfo(name=f"rule:{category}", prompt_id="timing_rules_v1",
                                 cache_key=key))


@RULES.register("interruption")
def detect_interruptions(conv: Conversation, cfg: TimingRulesConfig | None = None,
                         vad: VadSegments | None = None,
                         reps: list[Segment] | None = None) -> list[Issue]:
    """Model replies that start while the user holds the floor, judged per user *turn*.

    A user turn is the user's speech up to a silence of `turn_end_silence` s (`segments.turns`), so
    a model onset in a shorter mid-turn pause is inside the turn (paper.md section 7). A
    non-backchannel model segment is an interruption when its onset falls inside a
    non-backchannel user turn, the model overlaps the turn's speech for at least
    `interruption_min_overlap` s and the user keeps talking at least
    `interruption_min_user_continue` s after the onset (so the onset came before the user's last
    word).

    Args:
        reps: the model's replies with their ids (`segments.replies`); None makes them with
            `cfg.segment_gap`.
    """
    cfg = cfg or TimingRulesConfig()
    model = _model(conv, cfg, vad, reps)
    user_turns = turns(activity(conv, "user", cfg, vad), cfg.turn_end_silence)
    out = []
    for m in model:
        if is_backchannel(m, cfg):
            continue
        turn = next((t for t in user_turns if t[0].start < m.start < t[-1].end), None)
        if turn is None:
            continue
        u0, u1 = turn[0].start, turn[-1].end
        words = [w for s in turn for w in s.words]
        if _is_backchannel(words, u0, u1, cfg.backchannel_max_words,
                           cfg.backchannel_max_duration, cfg.backchannel_words):
            continue
        ov = sum(overlap((m.start, m.end), (s.start, s.end)) for s in turn)
        cont = u1 - m.start
        if ov >= cfg.interruption_min_overlap and cont >= cfg.interruption_min_user_continue:
            out.append(_issue(
                conv, "interruption", m, (m.start, m.end),
                f"model started talking {m.start - u0:.1f}s into a user turn and overlapped it "
                f"for {ov:.1f}s while the user kept talking {cont:.1f}s",
                {"model_onset": m.start, "user_span": [u0, u1], "overlap": round(ov, 3),
                 "user_continues_for": round(cont, 3), "model_text": m.text,
                 "user_text": " ".join(w.text for w in words),
                 "min_overlap": cfg.interruption_min_overlap,
                 "min_user_continue": cfg.interruption_min_user_continue},
                cfg, user_turn=(u0, u1)))
    return out


@RULES.register("unresponsiveness")
def detect_unresponsiveness(conv: Conversation, cfg: TimingRulesConfig | None = None,
                            vad: VadSegments | None = None,
                            reps: list[Segment] | None = None) -> list[Issue]:
    """User turn ends followed by model silence of at least `unresponsive_after` seconds.

    A user turn ends at the end of a non-backchannel user segment followed by at least
    `turn_end_silence` s of user silence (or the end of the log) while the model is not speaking.
    The silence runs until the model's next word, the user's next word or the end of the log,
    whichever comes first; the issue's span is that silence and its `reply_id` names the missing
    reply (`segments.silence_id`).
    """
    cfg = cfg or TimingRulesConfig()
    model, user = _model(conv, cfg, vad, reps), activity(conv, "user", cfg, vad)
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
                conv, "unresponsiveness", None, (e, stop),
                f"user finished a turn and the model stayed silent for {silence:.1f}s ({why})",
                {"user_turn": [u.start, u.end], "user_text": u.text, "silence": round(silence, 3),
                 "next_model_onset": None if nxt_model >= conv.duration else nxt_model,
                 "threshold": cfg.unresponsive_after},
                cfg, user_turn=(u.start, u.end)))
    return out


@RULES.register("no_yield")
def detect_no_yield(conv: Conversation, cfg: TimingRulesConfig | None = None,
                    vad: VadSegments | None = None,
                    reps: list[Segment] | None = None) -> list[Issue]:
    """Model replies that keep going more than `no_yield_after` s after a user barge-in.

    A barge-in is a non-backchannel user segment that starts while a model segment is running.
    """
    cfg = cfg or TimingRulesConfig()
    model, user = _model(conv, cfg, vad, reps), activity(conv, "user", cfg, vad)
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
                conv, "no_yield", m, (m.start, m.end),
                f"user barged in at {u.start:.1f}s but the model kept talking for {kept:.1f}s",
                {"barge_in": [u.start, u.end], "user_text": u.text, "kept_talking": round(kept, 3),
                 "threshold": cfg.no_yield_after},
                cfg, user_turn=(u.start, u.end)))
    return out


@RULES.register("pause_takeover")
def detect_pause_takeover(conv: Conversation, cfg: TimingRulesConfig | None = None,
                          vad: VadSegments | None = None,
                          reps: list[Segment] | None = None) -> list[Issue]:
    """Model replies that start inside a mid-turn user pause.

    A pause is a gap between consecutive user inter-pausal units (split at `ipu_gap`) of at least
    `pause_min` and less than `turn_end_silence` seconds, after which the user resumes.
    """
    cfg = cfg or TimingRulesConfig()
    model = _model(conv, cfg, vad, reps)
    ipus = to_segments(conv.words.user, "user", cfg.ipu_gap)
    out = []
    for a, b in zip(ipus, ipus[1:], strict=False):
        p0, p1 = a.end, b.start
        if not (cfg.pause_min <= p1 - p0 < cfg.turn_end_silence):
            continue
        for m in model:
            if p0 <= m.start < p1 and not is_backchannel(m, cfg):
                out.append(_issue(
                    conv, "pause_takeover", m, (m.start, m.end),
                    f"model took the floor {m.start - p0:.1f}s into a {p1 - p0:.1f}s user pause "
                    "and the user went on with their turn",
                    {"pause": [p0, p1], "before": a.text, "after": b.text, "model_text": m.text,
                     "pause_min": cfg.pause_min, "turn_end_silence": cfg.turn_end_silence},
                    cfg, pause=(p0, p1)))
    return out
