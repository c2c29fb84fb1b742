"""Compatibility of a streams directory with the model about to train on it.

Owns the check run before any training step: the vocabularies recorded in `streams/meta.json` by the
streams stage (tokenizer `text_card`, codec `cardinality`, `num_codebooks`) must fit the model's
preset, else ids beyond the model's embedding tables would crash deep inside `torch.embedding` (or,
with fewer codebooks, train on the wrong rows). It knows nothing about the training loop.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from duplexalign.errors import ConfigError
from duplexalign.models.presets import ModelPreset
from duplexalign.streams.shards import INDEX_NAME, read_index

log = logging.getLogger(__name__)
def check_streams_fit(streams_dir: str | Path, preset: ModelPreset) -> None:
    """Check, before any step, that the streams' vocabularies fit the model.

    Compares `streams/meta.json` (written by the streams stage: tokenizer `text_card`, codec
    `cardinality`, `num_codebooks`) and the first index entry's `num_codebooks` with the model's
    preset. Ids beyond the model's embedding tables would crash deep inside `torch.embedding`.

    Raises:
        ConfigError: no pair index, or one line per mismatch naming the setting to change.
    """
    d = Path(streams_dir)
    meta_path = d / "meta.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{meta_path} is unreadable ({e}): rerun `duplexalign streams`") from None
    if not (d / INDEX_NAME).is_file():
        raise ConfigError(f"{d} holds no pair index ({INDEX_NAME}): run `duplexalign streams` "
                          "on this run first")
    first = next(iter(read_index(d)), None)
    k = meta.get("num_codebooks", first.num_codebooks if first is not None else None)
    where = f"the model (train.model={preset.name!r}"
    fix = "set train.model / train.model_updates (or train.init) to the model the streams were " \
          "built for, or rebuild the streams with this model's"
    problems = []
    if k is not None and k != preset.num_codebooks:
        problems.append(f"streams have {k} codebooks per speaker but {where}) reads "
                        f"{preset.num_codebooks}: {fix} codec (streams.codec)")
    text_card = meta.get("text_card")
    if text_card is not None and text_card > preset.text_card:
        problems.append(f"streams' tokenizer has {text_card} text ids but {where}) embeds "
                        f"{preset.text_card} (model_updates.text_card): {fix} tokenizer "
                        "(streams.tokenizer)")
    card = meta.get("cardinality")
    if card is not None and card > preset.card:
        problems.append(f"streams' codec has {card} codes per codebook but {where}) embeds "
                        f"{preset.card} (model_updates.card): {fix} codec (streams.codec)")
    if problems:
        raise ConfigError(problems)
    for what, have, model in (("text ids", text_card, preset.text_card),
                              ("codes per codebook", card, preset.card)):
        if have is not None and have < model:
            log.warning("streams use %d %s, the model has %d: is this the model the streams "
                        "were built for?", have, what, model)
