"""The multi-stream token layout shared by streams, train and evaluate.

Owns the row order and the special ids of Moshi's token tensors. A conversation is `codes [R, T]` with
R = 1 + 2K rows at 12.5 Hz: row 0 is text, rows 1..K the model's own audio codebooks (semantic first),
rows K+1..2K the user's. Moshi uses K = 8 (17 rows); tiny sandbox models may use fewer codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT_PAD_ID = 3
"""Text id meaning "no new text token in this frame"."""
TEXT_EPAD_ID = 0
"""Text id in the frame just before a word's first token when that frame would be padding."""
ZERO_TOKEN_ID = -1
"""Any stream: no input (zero embedding) and no loss."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Row layout of a `codes [R, T]` tensor with `num_codebooks` (K) audio codebooks per speaker."""

    num_codebooks: int = 8

    @property
    def num_rows(self) -> int:
        """R = 1 + 2K."""
        return 1 + 2 * self.num_codebooks

    @property
    def text_row(self) -> int:
        return 0

    @property
    def model_rows(self) -> slice:
        """Rows of the model's audio codebooks."""
        return slice(1, 1 + self.num_codebooks)

    @property
    def user_rows(self) -> slice:
        """Rows of the user's audio codebooks."""
        return slice(1 + self.num_codebooks, 1 + 2 * self.num_codebooks)

    @property
    def variant_rows(self) -> slice:
        """Rows that differ between chosen and rejected: text and the model's audio."""
        return slice(0, 1 + self.num_codebooks)
