"""`duplexalign show ID --run DIR`: print one conversation as a two-lane timed transcript."""

from __future__ import annotations

import argparse
import textwrap

from duplexalign.records import Conversation

LANE = 38


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `show` subcommand."""
    p = sub.add_parser("show", help="print one conversation as a timed two-lane transcript")
    p.add_argument("id", help="conversation id")
    p.add_argument("--run", required=True, help="run directory holding conversations.jsonl.gz")
    p.add_argument("--max-gap", type=float, default=None,
                   help="seconds of silence that split a lane into segments (default 0.8)")
    p.set_defaults(func=main)


def render(conv: Conversation, max_gap: float | None = None) -> str:
    """Two-lane transcript of `conv`: one row per segment, model on the left, user on the right.

    Args:
        conv: the conversation.
        max_gap: segment split gap in seconds (None = `segments.DEFAULT_MAX_GAP`).
    """
    from duplexalign.segments import DEFAULT_MAX_GAP, conversation_segments

    segs = conversation_segments(conv, DEFAULT_MAX_GAP if max_gap is None else max_gap)
    rows = sorted((s for ch in ("model", "user") for s in segs[ch]), key=lambda s: (s.start, s.end))
    audio = ", ".join(f"{ch}={getattr(conv.audio, ch)}" for ch in ("model", "user")
                      if getattr(conv.audio, ch))
    lines = [
        f"{conv.id}  {conv.duration:.2f} s  ({conv.source.reader}: {conv.source.path})",
        f"audio: {audio or 'none'}; user audio existed: {conv.user_audio_existed}",
        "",
        f"{'time':>15}  {'MODEL':<{LANE}}  USER",
    ]
    for s in rows:
        text = textwrap.wrap(s.text, LANE) or [""]
        for i, part in enumerate(text):
            when = f"{s.start:6.2f}-{s.end:6.2f} s" if i == 0 else ""
            left, right = (part, "") if s.channel == "model" else ("", part)
            lines.append(f"{when:>15}  {left:<{LANE}}  {right}".rstrip())
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Find the conversation in the run and print it."""
    from pathlib import Path

    from duplexalign.errors import BadInput
    from duplexalign.manifest import iter_dicts

    path = Path(args.run) / "conversations.jsonl.gz"
    for d in iter_dicts(path):
        if d.get("id") == args.id:
            print(render(Conversation.model_validate(d), args.max_gap))
            return 0
    raise BadInput("unknown_id", f"no conversation {args.id!r} in {path}")
