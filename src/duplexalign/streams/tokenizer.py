"""The text tokenizer of the text stream: SentencePiece, loaded from a local file or fitted here.

Owns loading Moshi's 32k SentencePiece model from a path the user gives (nothing is downloaded) and
fitting a small SentencePiece model for the sandbox with Moshi's reserved ids: 0 = EPAD (a control
piece `<epad>`), 1 = BOS, 2 = EOS, 3 = PAD, unknown = 4, so that encoding a word never yields PAD or
EPAD. It does not know about frames; `text.py` places the ids in time.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.streams.layout import TEXT_EPAD_ID, TEXT_PAD_ID

log = logging.getLogger(__name__)


class TextTokenizer:
    """A SentencePiece model used word by word.

    Args:
        path: a `.model` file (Moshi's `tokenizer_spm_32k_3.model` or one made by `fit_tokenizer`).
    """

    def __init__(self, path: str | Path):
        try:
            import sentencepiece as spm
        except ImportError as e:  # pragma: no cover - sentencepiece is a core dependency
            raise BackendUnavailable("sentencepiece", "pip install sentencepiece") from e
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"tokenizer: no SentencePiece model at {self.path} (streams.tokenizer)")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of text ids (Moshi's `text_card`)."""
        return int(self.sp.vocab_size())

    def encode_word(self, word: str) -> list[int]:
        """Token ids of one word (stripped, no BOS/EOS); cached."""
        word = word.strip()
        ids = self._cache.get(word)
        if ids is None:
            ids = [int(i) for i in self.sp.encode(word)] if word else []
            self._cache[word] = ids
        return list(ids)

    __call__ = encode_word

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, skipping PAD, EPAD and ids < 0."""
        keep = [int(i) for i in ids if int(i) not in (TEXT_PAD_ID, TEXT_EPAD_ID) and int(i) >= 0]
        return self.sp.decode(keep)


@lru_cache(maxsize=4)
def load_tokenizer(path: str | Path) -> TextTokenizer:
    """Load (and cache) the tokenizer at `path`."""
    return TextTokenizer(path)


def fit_tokenizer(texts: Iterable[str], out: str | Path, vocab_size: int = 1000,
                  model_type: str = "unigram", byte_fallback: bool = False) -> Path:
    """Train a small SentencePiece model with Moshi's reserved ids and write `out` (a `.model` file).

    Args:
        texts: training sentences.
        out: destination path of the model file.
        vocab_size: target vocabulary size (an upper bound: small corpora give fewer pieces).
        model_type: "unigram" or "bpe".
        byte_fallback: map unknown characters to byte pieces instead of the unknown id 4.

    Returns:
        The path written.
    """
    import sentencepiece as spm

    sentences = [t.strip() for t in texts if t and t.strip()]
    if not sentences:
        raise ConfigError("tokenizer fit: no text to train on")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size,
        model_type=model_type, unk_id=4, bos_id=1, eos_id=2, pad_id=3,
        control_symbols=["<epad>"], byte_fallback=byte_fallback, hard_vocab_limit=False,
        character_coverage=1.0, minloglevel=2, num_threads=1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    tok = TextTokenizer(out)
    if tok.sp.piece_to_id("<epad>") != TEXT_EPAD_ID or tok.sp.pad_id() != TEXT_PAD_ID:
        raise RuntimeError("fitted tokenizer does not reserve EPAD=0 and PAD=3")
    log.info("fitted tokenizer: %d pieces from %d sentences -> %s", tok.vocab_size,
             len(sentences), out)
    return out
