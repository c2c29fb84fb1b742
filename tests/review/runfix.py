"""A tiny annotated run folder for the review tests: two conversations with model audio, issues
(one of them carrying an XSS payload in its words and reason) and DONE markers up to annotate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from factories import conversation, issue, timed

from duplexalign.manifest import write_manifest
from duplexalign.records import ChannelAudio, Conversation, Issue
from duplexalign.runs import ANNOTATIONS, CONVERSATIONS, RunDir
from duplexalign.speech.audio import write_audio

SR = 24_000
XSS_WORD = '<img src=x onerror="window.__xss=1">'
XSS_REASON = "<script>window.__xss=2</script> rude"


def tone_under(words, duration: float, freq: float) -> np.ndarray:
    """[S] float32 24 kHz: a tone under every word, silence elsewhere."""
    wav = np.zeros(int(duration * SR), dtype=np.float32)
    for w in words:
        a, b = int(w.start * SR), int(w.end * SR)
        wav[a:b] = 0.2 * np.sin(2 * np.pi * freq * np.arange(b - a) / SR)
    return wav


def conversations() -> list[Conversation]:
    """conv-a: two model replies (a wrong answer, a rude one with the payload); conv-b: a
    silence after the user's question."""
    rude = timed("go away X now", 6.0)
    rude[2] = rude[2].model_copy(update={"text": XSS_WORD})  # one word holding the payload
    a_model = timed("i do not know", 3.0) + rude
    a_user = timed("what is the capital of france", 0.5) + timed("tell me a joke", 5.0)
    b_user = timed("are you there", 1.0)
    b_model = timed("hello", 0.2)
    return [conversation(a_model, a_user, 10.0, id="conv-a",
                         audio=ChannelAudio(model="audio/conv-a/model.wav"),
                         user_audio_existed=True),
            conversation(b_model, b_user, 8.0, id="conv-b",
                         audio=ChannelAudio(model="audio/conv-b/model.wav",
                                            user="audio/conv-b/user.wav"))]


def issues(convs: list[Conversation]) -> list[Issue]:
    """Two content issues in conv-a (one per reply), a silence in conv-b."""
    a, b = convs
    return [issue(a, "content", "factuality", (3.0, 3.85), score=1, id="a-fact",
                  reason="does not say paris", improved_reply="the capital of france is paris",
                  judge={"name": "llm", "prompt_id": "p", "model": "m"}),
            issue(a, "content", "tone", (6.0, 7.15), score=1, id="a-tone", reason=XSS_REASON,
                  improved_reply="here is one: why did the chicken cross the road",
                  judge={"name": "llm", "prompt_id": "p", "model": "m"}),
            issue(b, "timing", "unresponsiveness", (1.85, 8.0), id="b-silence",
                  reason="the model stayed silent", judge={"name": "rule:unresponsiveness"})]


def make_run(root: Path) -> Path:
    """Write the run folder (conversations, annotations, audio, markers) and return it."""
    rd = RunDir(root)
    convs = conversations()
    for c, freq in zip(convs, (440.0, 330.0), strict=True):
        write_audio(rd.resolve(c.audio.model), tone_under(c.words.model, c.duration, freq))
        if c.audio.user:
            write_audio(rd.resolve(c.audio.user), tone_under(c.words.user, c.duration, 220.0))
    write_manifest(rd.path(CONVERSATIONS), convs)
    write_manifest(rd.path(ANNOTATIONS), issues(convs))
    rd.mark_done("ingest")
    rd.mark_done("annotate")
    return root
