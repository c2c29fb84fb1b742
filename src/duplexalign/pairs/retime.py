"""The `retime` strategy (interruption pairs): the same reply, moved after the user's turn.

Owns how an interruption becomes a pair: the end of the user turn that the reply cut into is found
(from the issue's `user_turn`, else from the user's turns; for a reply that took the floor
in a held mid-turn pause, from the pause's end: the user resumed, so the turn ends where the resumed
part ends, even when the pause was longer than the turn gap), and the chosen reply starts there
plus a natural gap drawn in `[gap_min, gap_max]`, so it stays silent through the pause. The chosen audio is the logged reply itself, moved
(or the improved reply spoken by the model voice when a content issue of the same reply has one and
`retime_rewrite` is on). The rejected variant is the logged, interrupting reply.
"""

from __future__ import annotations

from duplexalign.errors import BadInput
from duplexalign.pairs.assemble import assemble, logged_clip, shifted
from duplexalign.pairs.base import STRATEGIES, Built, Candidate, PairEnv, natural_gap, speak


def user_turn_end(cand: Candidate, env: PairEnv, onset: float) -> float:
    """End (s) of the user turn running at `onset`.

    A reply that started inside a held pause (a timing issue with a `pause` (start, end), as
    `pause_takeover` writes) belongs to the turn the user resumes at the pause's
    end: its end is the end of the user turn holding that resumption, however long the pause was.

    Raises:
        BadInput: "no_user_turn_at_onset" when the user is not in a turn at the reply's onset.
    """
    issue = cand.timing_issue()
    span = issue.user_turn if issue is not None else None
    pauses = [i.pause for i in cand.issues if i.pause is not None]
    for p0, p1 in pauses:
        if p0 - 1e-3 <= onset < p1:
            resumed = next((t for t in env.user_turns if t.end > p1), None)
            if resumed is not None:
                return resumed.end
    for turn in env.user_turns:
        if turn.start <= onset < turn.end:
            end = turn.end
            if span:
                end = max(end, span[1])
            return end
    if span and span[1] > onset:
        return span[1]
    raise BadInput("no_user_turn_at_onset", f"the user is not talking at {onset:.2f}s")


@STRATEGIES.register("retime")
def retime(cand: Candidate, env: PairEnv, voice: str | None = None) -> Built:
    """Interruption pair: the reply after the user's turn end + gap vs the logged interruption."""
    words = cand.words()
    if not words:
        raise BadInput("reply_not_found", f"reply {cand.reply_id} has no logged model words")
    onset = words[0].start
    gap = natural_gap(env.cfg, cand.id)
    new_onset = user_turn_end(cand, env, onset) + gap
    improved = cand.improved_reply() if env.cfg.retime_rewrite else None
    if improved or voice:
        voice = voice or env.cfg.model_voice
        text = improved or " ".join(w.text for w in words)
        clip = speak(env, voice, text, new_onset)
        how = "rewritten" if improved else "respoken"
    else:
        clip = shifted(logged_clip(env, words), new_onset)
        how = "moved"
        voice = "logged"
    return assemble(cand, env, clip, anchor=onset, rejected_end=max(w.end for w in words),
                    voice=voice, meta={"gap": round(gap, 3), "shift": round(new_onset - onset, 3),
                                       "chosen_audio": how})
