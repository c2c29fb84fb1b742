"""Scenario bank splits, simulated-user timing and the flawed policy's corpus (fake and real TTS)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from duplexalign.records import Word
from duplexalign.sandbox.build import corpus_flaw_rates
from duplexalign.sandbox.policy import Flaws, render, write_conversation
from duplexalign.sandbox.scenarios import REFUSAL, build_bank
from duplexalign.sandbox.users import UserBehaviour, plan_user
from duplexalign.speech.base import Speech


def fake_synth(text: str, voice: str) -> Speech:
    """0.3 s per word, 0.05 s gaps, silence-free constant tone: timings are easy to check."""
    words, t = [], 0.0
    for w in text.split():
        words.append(Word(text=w, start=round(t, 3), end=round(t + 0.3, 3)))
        t += 0.35
    return Speech(wav=np.full(int(t * 24000), 0.1, np.float32), sample_rate=24000, words=words)


def test_splits_hold_out_combinations_but_keep_every_verb_and_object():
    bank = build_bank(seed=3)
    train = {it.group for it in bank.of("train", "harmful")}
    test = {it.group for it in bank.of("test", "harmful")}
    val = {it.group for it in bank.of("validation", "harmful")}
    assert test and val and not (test & train) and not (val & train) and not (val & test)
    assert {g.split("|")[0] for g in test} <= {g.split("|")[0] for g in train}
    assert {g.split("|")[1] for g in test} <= {g.split("|")[1] for g in train}
    # QA phrasings of test/validation are never trained on; the facts are
    assert {it.group for it in bank.of("train", "qa")} == {"t0", "t1"}
    assert {it.group for it in bank.of("test", "qa")} == {"t2"}
    assert all(it.good_reply == REFUSAL and it.must_refuse for it in bank.of("test", "harmful"))
    assert build_bank(seed=3).items == bank.items


def test_user_turns_have_pauses_and_waits():
    bank = build_bank(0)
    items = [it for it in bank.of("train", "qa") if len(it.text.split()) >= 5][:3]
    beh = UserBehaviour(pause_prob=1.0, barge_in_prob=0.0, wait_after_turn=(2.0, 2.0),
                        first_start=(0.5, 0.5), pause_len=(0.8, 0.8))
    turns = plan_user(items, "user_0", fake_synth, random.Random(0), duration=30.0, behaviour=beh)
    assert len(turns) == 3 and turns[0].start == 0.5
    for a, b in zip(turns, turns[1:], strict=False):
        assert b.start == pytest.approx(a.end + 2.0, abs=1e-3)
    for t in turns:
        ps, pe = t.pause
        assert pe - ps == pytest.approx(0.8 + 0.05, abs=1e-3)
        said = [w.text for w in t.words]
        assert said.count("um") == 1 and [w for w in said if w != "um"] == t.item.text.split()
        # the hesitation word is the last thing said before the pause
        assert next(w for w in t.words if w.text == "um").end == pytest.approx(ps, abs=1e-3)
    bare = UserBehaviour(pause_prob=1.0, pause_filler=None)
    [t] = plan_user(items[:1], "user_0", fake_synth, random.Random(0), 30.0, bare)
    assert [w.text for w in t.words] == t.item.text.split() and t.pause is not None


def test_policy_flaws_follow_their_rates():
    bank = build_bank(0)
    rng = random.Random(1)
    metas = []
    for i in range(300):
        items = [rng.choice(bank.of("train")) for _ in range(2)]
        metas.append(render(items, "user_0", fake_synth, i, 12.0).meta)
    rates = corpus_flaw_rates(metas)
    assert 0.18 < rates["silent"] < 0.32
    assert 0.10 < rates["jump_in"] < 0.30
    assert 0.45 < rates["comply"] < 0.75
    assert 0.18 < rates["wrong"] < 0.42
    assert 0.04 < rates["rude"] < 0.17


def test_flawless_policy_replies_after_the_user_and_says_the_good_reply():
    bank = build_bank(0)
    item = bank.of("train", "qa")[0]
    r = render([item], "user_0", fake_synth, 0, 10.0,
               flaws=Flaws(silent=0, jump_in=0, comply=0, wrong=0, rude=0))
    turn = r.meta["sandbox"]["turns"][0]
    assert turn["policy"]["content"] == "good"
    assert " ".join(w.text for w in r.model_words) == item.good_reply
    assert r.model_words[0].start - turn["end"] == pytest.approx(0.45, abs=0.151)
    assert len(r.model_wav) == len(r.user_wav) == 240000


def test_write_conversation_is_moshi_finetune_layout(tmp_path):
    bank = build_bank(0)
    r = render(bank.of("train")[:2], "user_1", fake_synth, 5, 10.0)
    line = write_conversation(tmp_path, "c0", r)
    doc = json.loads((tmp_path / "c0.json").read_text())
    assert line == {"path": "c0.wav", "duration": 10.0}
    speakers = {a[2] for a in doc["alignments"]}
    assert speakers <= {"SPEAKER_MAIN", "SPEAKER_1"} and "SPEAKER_1" in speakers
    starts = [a[1][0] for a in doc["alignments"]]
    assert starts == sorted(starts)
    assert doc["meta"]["sandbox"]["turns"][0]["item"]["text"] == bank.of("train")[0].text
    import soundfile as sf
    wav, sr = sf.read(tmp_path / "c0.wav")
    assert sr == 24000 and wav.shape == (240000, 2)


def test_real_tts_conversation_has_words_inside_duration():
    from duplexalign.sandbox.users import default_synth

    bank = build_bank(0)
    r = render(bank.of("train")[:3], "user_2", default_synth(), 7, 12.0)
    assert r.user_words and all(w.end <= 12.0 for w in r.user_words + r.model_words)
    assert np.abs(r.user_wav).max() > 0.01
