"""`duplexalign tokenizer fit INPUT... --out FILE`: fit a small SentencePiece model (EPAD 0, PAD 3)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `tokenizer` subcommand."""
    p = sub.add_parser("tokenizer", help="fit a small SentencePiece text tokenizer")
    s = p.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    f = s.add_parser("fit", help="train on text files and/or conversation manifests",
                     description="Train a SentencePiece model with Moshi's reserved ids "
                                 "(0 = EPAD, 3 = PAD). Inputs: .txt files (one sentence a line) "
                                 "or conversations.jsonl.gz manifests / run directories.")
    f.add_argument("inputs", nargs="+", help="text files, manifests or run directories")
    f.add_argument("--out", required=True, help="destination .model file")
    f.add_argument("--vocab-size", type=int, default=1000)
    f.add_argument("--model-type", choices=["unigram", "bpe"], default="unigram")
    f.add_argument("--byte-fallback", action="store_true")
    f.set_defaults(func=fit)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _texts(inputs: list[str]) -> Iterator[str]:
    from duplexalign.manifest import read_manifest
    from duplexalign.records import Conversation
    from duplexalign.segments import to_segments

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            path = path / "conversations.jsonl.gz"
        if path.name.endswith(".jsonl.gz") or path.name.endswith(".jsonl"):
            for conv in read_manifest(path, Conversation):
                for ch in ("model", "user"):
                    for seg in to_segments(conv.words.of(ch), ch):
                        yield seg.text
        else:
            yield from path.read_text(encoding="utf-8").splitlines()


def fit(args: argparse.Namespace) -> int:
    """Fit and write the tokenizer."""
    from duplexalign.streams.tokenizer import TextTokenizer, fit_tokenizer

    out = fit_tokenizer(_texts(args.inputs), args.out, args.vocab_size, args.model_type,
                        args.byte_fallback)
    print(f"wrote {out} ({TextTokenizer(out).vocab_size} pieces)")
    return 0
