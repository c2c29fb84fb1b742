"""The `insert` strategy (silence pairs): a reply where the model stayed mute.

Owns how an unresponsiveness issue becomes a pair: the silence starts at the user's turn end (the
issue's span start); the rewriter writes a reply for the dialogue so far (or a content issue's improved
reply is used), and the model voice speaks it after a natural gap. The rejected variant is the logged
model channel over the same window, i.e. the silence that happened.
"""

from __future__ import annotations

from duplexalign.errors import BadInput
from duplexalign.pairs.assemble import assemble
from duplexalign.pairs.base import STRATEGIES, Built, Candidate, PairEnv, natural_gap, speak


@STRATEGIES.register("insert")
def insert(cand: Candidate, env: PairEnv, voice: str | None = None) -> Built:
    """Silence pair: an inserted reply after the user's turn end + gap vs the logged silence."""
    user_end = cand.span[0]
    text = cand.improved_reply()
    if text is None and env.rewriter is not None:
        text = env.rewriter.write_reply(env.dialogue_before(user_end)).strip()
    if not text:
        raise BadInput("no_improved_reply", "no reply text and no rewriter configured")
    gap = natural_gap(env.cfg, cand.id)
    voice = voice or env.cfg.model_voice
    clip = speak(env, voice, text, user_end + gap)
    return assemble(cand, env, clip, anchor=user_end, rejected_end=user_end, voice=voice,
                    meta={"gap": round(gap, 3), "silence": [cand.span[0], cand.span[1]]})
