"""Each strategy on a hand-made conversation with a fake voice and rewriter (no TTS, no LLM)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pairfakes import SR, FakeRewriter, FakeVoice, conversation, issues, model_audio

from duplexalign.errors import BadInput
from duplexalign.pairs.base import STRATEGIES, PairEnv
from duplexalign.pairs.config import PairsConfig
from duplexalign.pairs.policy import candidates, check_invariant
from duplexalign.timebase import SAMPLES_PER_FRAME, seconds_to_frame


def make_env(cfg=None, rewriter=None):
    conv = conversation()
    voices = {"model": FakeVoice(200.0), "model_alt": FakeVoice(300.0)}
    env = PairEnv(conv, cfg or PairsConfig(max_pairs_per_conversation=3),
                  lambda: model_audio(conv), voices.__getitem__, rewriter)
    return env, voices


def cand(env, category):
    cs, _ = candidates(env.conversation, issues(), env.cfg)
    return next(c for c in cs if c.category == category)


def window(pair):
    return seconds_to_frame(pair.window[0]), seconds_to_frame(pair.window[1])


def test_rewrite_speaks_improved_reply_from_original_onset():
    env, voices = make_env()
    c = cand(env, "content")
    b = STRATEGIES.get("rewrite")(c, env)
    p = b.pair
    assert voices["model"].calls == ["paris it is"]
    assert [w.text for w in p.chosen.words] == ["paris", "it", "is"]
    assert p.chosen.words[0].start == pytest.approx(3.0)
    assert [w.text for w in p.rejected.words] == ["i", "do", "not", "know"]
    ws, we = window(p)
    assert ws == seconds_to_frame(3.0) - 1  # one frame before the first word (its EPAD frame)
    # the logged reply ends at 4.15 s (the spoken chosen one at 3.9 s), plus the 0.24 s tail
    assert we == int(np.ceil((4.15 + 0.24) * 12.5))
    assert len(b.chosen_wav) == len(b.rejected_wav) == (we - ws) * SAMPLES_PER_FRAME
    logged = model_audio(env.conversation)
    np.testing.assert_array_equal(b.rejected_wav, logged[ws * 1920:we * 1920])
    assert check_invariant(p, env.cfg.max_context_frames) == []
    assert p.rejected_source == "logged" and p.category == "content"


def test_rewrite_uses_rewriter_when_judge_gave_no_reply_and_drops_without_one():
    env, _ = make_env(rewriter=FakeRewriter())
    c = cand(env, "content")
    no_reply = dataclasses.replace(c, issues=tuple(i.model_copy(update={"improved_reply": None})
                                                   for i in c.issues))
    p = STRATEGIES.get("rewrite")(no_reply, env).pair
    assert p.chosen.text == "a better answer"
    kind, context, problems, bad = env.rewriter.calls[0]
    assert bad == "i do not know" and problems == ["helpfulness"]
    assert context == [("user", "what is the capital of france")]
    env2, _ = make_env()
    with pytest.raises(BadInput) as e:
        STRATEGIES.get("rewrite")(no_reply, env2)
    assert e.value.reason == "no_improved_reply"


def test_retime_moves_logged_reply_after_user_turn_end():
    env, voices = make_env()
    c = cand(env, "interruption")
    b = STRATEGIES.get("retime")(c, env)
    p = b.pair
    assert voices["model"].calls == []  # the logged audio itself is moved
    gap = p.meta["gap"]
    assert 0.2 <= gap <= 0.5
    # user turn "tell me a joke please" ends at 5.0 + 4 * 0.3 + 0.25 = 6.45
    shift = p.chosen.words[0].start - 6.0
    assert shift == pytest.approx(6.45 + gap - 6.0, abs=1e-3)
    assert [w.start for w in p.chosen.words] == pytest.approx(
        [w.start + shift for w in env.conversation.words.model[4:]], abs=1e-3)
    ws, _ = window(p)
    logged = model_audio(env.conversation)
    a = round((6.0 + shift) * SR) - ws * 1920
    np.testing.assert_allclose(b.chosen_wav[a:a + 1000], logged[6 * SR:6 * SR + 1000], atol=1e-6)
    assert not b.chosen_wav[: round(6.0 * SR) - ws * 1920].any()  # silent until the new onset
    assert check_invariant(p, env.cfg.max_context_frames) == []


def test_retime_waits_out_a_held_pause_longer_than_the_turn_gap():
    """The user says "um" and pauses 0.95 s (> turn_gap 0.8: two user segments); the model
    jumped in at 2.0 s. The chosen reply starts only after the resumed words end."""
    from pairfakes import issue, words

    from duplexalign.records import ChannelWords

    conv = conversation()
    user = words("what is the um", 0.5) + words("capital of france", 2.5)  # pause 1.65 -> 2.5
    model = words("i do not know", 2.0)
    conv = conv.model_copy(update={"words": ChannelWords(model=model, user=user)})
    env = PairEnv(conv, PairsConfig(), lambda: model_audio(conv), {"model": FakeVoice()}.get)
    assert len(env.user_turns) == 2  # the pause splits the turn at the 0.8 s turn gap
    it = issue("timing", "pause_takeover", (2.0, 3.15), conv=conv, pause=[1.65, 2.5])
    (c,), _ = candidates(conv, [it], env.cfg)
    assert c.category == "interruption" and c.strategy == "retime"
    p = STRATEGIES.get("retime")(c, env).pair
    # resumed part "capital of france" ends at 2.5 + 2 * 0.3 + 0.25 = 3.35
    assert p.chosen.words[0].start == pytest.approx(3.35 + p.meta["gap"], abs=1e-3)
    assert all(w.start >= 3.35 for w in p.chosen.words)
    assert check_invariant(p, env.cfg.max_context_frames) == []


def test_insert_places_written_reply_after_silence_start():
    env, voices = make_env(rewriter=FakeRewriter())
    c = cand(env, "silence")
    p = STRATEGIES.get("insert")(c, env).pair
    assert p.chosen.text == "yes i am here" and p.rejected.words == []
    assert p.chosen.words[0].start == pytest.approx(9.85 + p.meta["gap"], abs=1e-3)
    assert seconds_to_frame(p.window[0]) == seconds_to_frame(9.85) - 1
    assert check_invariant(p, env.cfg.max_context_frames) == []


def test_voice_transfer_respeaks_both_variants():
    env, voices = make_env(PairsConfig(voice_transfer=True, max_pairs_per_conversation=3))
    c = cand(env, "content")
    assert c.strategy == "voice"
    b = STRATEGIES.get("voice")(c, env)
    assert voices["model"].calls == []
    assert voices["model_alt"].calls[:2] == ["paris it is", "i do not know"]
    assert b.pair.voice == "model_alt" and b.pair.rejected_source == "tts"
    assert b.pair.rejected.text == "i do not know"
    assert len(b.chosen_wav) == len(b.rejected_wav)
    assert check_invariant(b.pair, env.cfg.max_context_frames) == []


def test_context_is_bounded():
    env, _ = make_env(PairsConfig(max_context_frames=40, max_pairs_per_conversation=3))
    p = STRATEGIES.get("rewrite")(cand(env, "content"), env).pair
    ws, we = window(p)
    assert (ws, we) == (36, 55)
    assert seconds_to_frame(p.context_start) == 55 - 40
    env, _ = make_env(PairsConfig(max_context_frames=10, max_pairs_per_conversation=3))
    with pytest.raises(BadInput) as e:
        STRATEGIES.get("rewrite")(cand(env, "content"), env)
    assert e.value.reason == "window_too_long"
