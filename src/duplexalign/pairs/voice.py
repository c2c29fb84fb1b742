"""The `voice` strategy (the paper's M-Alt-Vox experiment): both variants in another model voice.

Owns voice transfer: the pair is built by the strategy that serves the candidate's category (rewrite,
retime or insert) with the chosen reply spoken by `alt_voice`; then the rejected reply's words are
re-spoken by the same voice from their original onset (a silence stays the logged silence) and the pair
is reassembled, so the window may grow to fit the re-spoken reply. Context and user stream stay as
logged.
"""

from __future__ import annotations

from duplexalign.errors import BadInput
from duplexalign.pairs.assemble import ASSEMBLY_META, assemble
from duplexalign.pairs.base import STRATEGIES, Built, Candidate, PairEnv, speak
from duplexalign.segments import to_segments

BASE_STRATEGY = {"content": "rewrite", "interruption": "retime", "silence": "insert"}
"""Which strategy builds the underlying pair of each category."""


@STRATEGIES.register("voice")
def voice_transfer(cand: Candidate, env: PairEnv) -> Built:
    """Build the category's pair with `alt_voice` speaking both variants.

    Raises:
        BadInput: "rejected_not_one_reply" when the rejected window holds several logged replies.
    """
    alt = env.cfg.alt_voice
    base = STRATEGIES.get(BASE_STRATEGY[cand.category])(cand, env, voice=alt)
    p = base.pair
    if not p.rejected.words:  # a silence stays the logged silence
        return base
    segs = to_segments(p.rejected.words, "model", env.cfg.turn_gap)
    if len(segs) > 1:
        raise BadInput("rejected_not_one_reply", "the window holds several logged model replies")
    rejected = speak(env, alt, segs[0].text, segs[0].start)
    assert base.chosen_clip is not None
    meta = {k: v for k, v in p.meta.items() if k not in ASSEMBLY_META}
    return assemble(cand, env, base.chosen_clip, anchor=min(base.anchor, rejected.start),
                    rejected_end=max(w.end for w in rejected.words), rejected=rejected, voice=alt,
                    meta={**meta, "base_strategy": BASE_STRATEGY[cand.category]})
