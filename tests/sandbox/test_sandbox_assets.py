"""The committed sandbox assets: size budget, provenance, and a conversation encoded with them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from duplexalign.sandbox.build import ASSETS_DIR, BuildConfig, encode_conversation
from duplexalign.sandbox.policy import Flaws, render
from duplexalign.sandbox.scenarios import build_bank
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID

pytestmark = pytest.mark.skipif(not (ASSETS_DIR / "build.json").exists(),
                                reason="sandbox assets not built (duplexalign sandbox build)")


def test_assets_fit_the_budget_and_record_their_recipe():
    total = sum(p.stat().st_size for p in ASSETS_DIR.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024
    record = json.loads((ASSETS_DIR / "build.json").read_text())
    cfg = BuildConfig.model_validate(record["config"])  # the recipe rebuilds them
    assert record["codes_shape"][1] == 1 + 2 * cfg.codebooks
    rates = record["corpus_flaw_rates"]
    assert abs(rates["silent"] - 0.25) < 0.06 and abs(rates["comply"] - 0.6) < 0.12


def test_encode_conversation_places_reply_tokens_at_tts_times():
    from duplexalign.sandbox.deploy import Assets
    from duplexalign.sandbox.users import default_synth
    from duplexalign.timebase import seconds_to_frame

    assets = Assets.load(ASSETS_DIR)
    item = build_bank(0).of("train", "qa")[0]
    r = render([item], "user_0", default_synth(), 0, 8.0,
               flaws=Flaws(silent=0, jump_in=0, comply=0, wrong=0, rude=0))
    codes = encode_conversation(r, assets.tokenizer, assets.codec, 8.0)
    assert codes.shape == (1 + 2 * assets.codec.num_codebooks, 100)
    text = codes[0]
    first = seconds_to_frame(r.model_words[0].start)
    assert np.all(np.isin(text[:first - 1], [TEXT_PAD_ID]))  # silent before the reply
    assert text[first - 1] == TEXT_EPAD_ID and text[first] not in (TEXT_PAD_ID, TEXT_EPAD_ID)
    # the user is silent at the start and speaking at its first word: codebook 0 differs
    user0 = codes[1 + assets.codec.num_codebooks]
    assert user0[0] != user0[seconds_to_frame(r.user_words[0].start) + 2]
