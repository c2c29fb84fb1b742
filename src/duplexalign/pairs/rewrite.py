"""The `rewrite` strategy (content pairs): same onset, better words.

Owns how a content issue becomes a pair: the chosen text is the judge's improved reply, or a rewriter
call when the judge wrote none; the model voice speaks it from the original reply's onset. The rejected
variant is the logged reply (its audio and words).
"""

from __future__ import annotations

from duplexalign.errors import BadInput
from duplexalign.pairs.assemble import assemble
from duplexalign.pairs.base import STRATEGIES, Built, Candidate, PairEnv, problems_of, speak
from duplexalign.text import normalize


def chosen_text(cand: Candidate, env: PairEnv, bad_reply: str) -> str:
    """The improved reply text: the judge's, else the rewriter's.

    Raises:
        BadInput: "no_improved_reply" when neither is available, "same_as_rejected" when the text
            does not change.
    """
    text = cand.improved_reply()
    if text is None and env.rewriter is not None:
        content = [i for i in cand.issues if i.kind == "content"] or list(cand.issues)
        text = env.rewriter.rewrite(env.dialogue_before(cand.span[0]), problems_of(content),
                                    bad_reply).strip()
    if not text:
        raise BadInput("no_improved_reply", "no judge rewrite and no rewriter configured")
    if normalize(text) == normalize(bad_reply):
        raise BadInput("same_as_rejected", "the improved reply equals the original")
    return text


@STRATEGIES.register("rewrite")
def rewrite(cand: Candidate, env: PairEnv, voice: str | None = None) -> Built:
    """Content pair: the improved reply spoken from the original onset vs the logged reply."""
    words = cand.words()
    if not words:
        raise BadInput("reply_not_found", f"reply {cand.reply_id} has no logged model words")
    bad = " ".join(w.text for w in words)
    voice = voice or env.cfg.model_voice
    onset = words[0].start
    clip = speak(env, voice, chosen_text(cand, env, bad), onset)
    return assemble(cand, env, clip, anchor=onset, rejected_end=max(w.end for w in words),
                    voice=voice, meta={"original_text": bad})
