"""Tiny hand-made conversations, a fake TTS and a fake rewriter for the pair unit tests."""

from __future__ import annotations

import numpy as np
from factories import conversation as make_conversation
from factories import issue as factory_issue
from factories import timed

from duplexalign.records import (
    ChannelAudio,
    Conversation,
    Issue,
)
from duplexalign.speech.base import Speech

SR = 24_000


words = timed


class FakeVoice:
    """Each word lasts 0.3 s (0.25 s of tone at `freq` Hz + 0.05 s pause)."""

    def __init__(self, freq: float = 200.0):
        self.freq = freq
        self.calls: list[str] = []

    def synthesize(self, text: str) -> Speech:
        self.calls.append(text)
        ws = words(text, 0.0)
        n = int(round(0.3 * len(ws) * SR))
        t = np.arange(n) / SR
        wav = (0.1 * np.sin(2 * np.pi * self.freq * t)).astype(np.float32)
        return Speech(wav=wav, sample_rate=SR, words=ws)


class FakeRewriter:
    def __init__(self):
        self.calls: list[tuple] = []

    def rewrite(self, context, problems, bad_reply):
        self.calls.append(("rewrite", context, problems, bad_reply))
        return "a better answer"

    def write_reply(self, context):
        self.calls.append(("write_reply", context))
        return "yes i am here"


def conversation() -> Conversation:
    model = words("i do not know", 3.0) + words("sure here is one", 6.0)
    user = (words("what is the capital of france", 0.5) + words("tell me a joke please", 5.0)
            + words("are you there", 9.0))
    return make_conversation(model, user, 14.0, id="conv/1",
                             audio=ChannelAudio(model="model.wav"))


def model_audio(conv: Conversation) -> np.ndarray:
    """A logged model channel: a 440 Hz tone under every model word, silence elsewhere."""
    wav = np.zeros(int(conv.duration * SR), dtype=np.float32)
    for w in conv.words.model:
        a, b = int(w.start * SR), int(w.end * SR)
        wav[a:b] = 0.2 * np.sin(2 * np.pi * 440 * np.arange(b - a) / SR)
    return wav


def issue(kind: str, category: str, span: tuple[float, float], conv: Conversation | None = None,
          **kw) -> Issue:
    """An issue about the reply (or silence) of `conv` (default `conversation()`) at `span`."""
    return factory_issue(conv or conversation(), kind, category, span, **kw)


def issues() -> list[Issue]:
    return [issue("content", "helpfulness", (3.0, 4.15), score=1, improved_reply="paris it is"),
            issue("timing", "interruption", (6.0, 7.15), user_turn=[5.0, 6.45]),
            issue("timing", "unresponsiveness", (9.85, 14.0))]
