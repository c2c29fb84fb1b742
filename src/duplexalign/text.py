"""Text normalisation and file-safe ids: the one definition of each, used by every stage.

Owns `normalize` (how two spellings of the same words compare: lower case, typographic apostrophes
made plain, every character but letters, digits and apostrophes turned into a space, single spaces),
which the timing rules (backchannel lexicon), the sandbox's outcomes and oracle, the rewriter's
similarity, the pairs' rewrite check, ASR word error rates and the QA answer matcher build on, and
`safe_id` (a record id made safe as a file or folder name, unique because a short hash is appended
whenever a character had to be replaced). It knows nothing about records or stages.
"""

from __future__ import annotations

import hashlib
import re

_NOT_WORD = re.compile(r"[^\w']|_")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME = 120
"""Longest safe id kept whole (file systems allow 255 bytes; pair ids append a suffix)."""


def normalize(text: str) -> str:
    """`text` lower-cased, with `’` as `'`, punctuation (except apostrophes) as spaces, and single
    spaces between words: "Mm-hmm, OK’s!" -> "mm hmm ok's"."""
    return " ".join(_NOT_WORD.sub(" ", text.lower().replace("\u2019", "'")).split())


def safe_id(text: str) -> str:
    """`text` made safe as a file name: characters other than letters, digits, `.`, `_` and `-`
    become `_`, and a 6-hex-digit hash of `text` is appended when anything was replaced, the name
    would be empty, "." or "..", or it was cut to `MAX_NAME` characters, so two ids never share a
    file name."""
    clean = _SAFE.sub("_", text)
    if clean != text or clean in ("", ".", "..") or len(clean) > MAX_NAME:
        digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        clean = clean[:MAX_NAME] + "_" + digest[:6]
    return clean
