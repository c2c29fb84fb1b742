"""Hand-made rollouts for scoring tests (no model involved)."""

from __future__ import annotations

import numpy as np
from factories import timed

from duplexalign.evaluate.rollout import Rollout, UserItem
from duplexalign.records import Word
from duplexalign.timebase import num_frames

words = timed


def fake_rollout(model_words: list[Word], user_words: list[Word], duration: float = 10.0,
                 **meta) -> Rollout:
    t = num_frames(duration)
    item = UserItem(id=meta.pop("id", "s"), user_codes=np.zeros((4, t), np.int64),
                    user_words=user_words, meta=meta)
    return Rollout(item=item, text_tokens=np.full(t, 3, np.int64),
                   model_codes=np.zeros((4, t), np.int64), model_words=model_words,
                   text_logprobs=np.zeros(t, np.float32), sampling={})
