"""The two LLM-judged Full-Duplex-Bench columns: interruption relevance and v1.5 behaviour tags.

Owns the requests (pure payloads: chat messages plus a JSON schema) and the parsers of their
answers. Relevance rates, 0 to 5, how well the model's reply after a user interruption relates to
the interrupting turn, given the user's first turn, the interruption and the reply (FDB asks
GPT-4-turbo for the same rating in free text; our rubric is worded by us and answered as JSON). The
behaviour tag sends FDB's own instruction file (`instruction/behavior.txt`, read from the data
folder, not restated here) with the four word-timed transcripts, as FDB does, and accepts one of
its C-axis tags. Any client with `run_many([LLMRequest])` answers them (`judges.endpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from duplexalign.errors import BadInput
from duplexalign.judges.llm import LLMRequest

RELEVANCE_PROMPT_ID = "fdb_relevance_v1"
BEHAVIOUR_PROMPT_ID = "fdb_behavior_txt"
TAGS = ("C_RESPOND", "C_RESUME", "C_UNCERTAIN_HANDLING", "C_UNKNOWN")

RELEVANCE_SYSTEM = (
    "You grade one moment of a spoken conversation between a user and an AI assistant. The user "
    "made a request, the assistant started to answer, and then the user cut in with a new turn. "
    "Grade the assistant's speech after that cut-in by how closely it relates to the cut-in turn, "
    "as an integer from 0 to 5: 0 = nothing to do with it, 1 = barely connected, 2 = loosely "
    "connected, 3 = connected, 4 = clearly connected and useful, 5 = exactly what the cut-in asked "
    "for. First write a short analysis, then the grade. Answer with JSON only."
)
RELEVANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"analysis": {"type": "string"},
                   "rating": {"type": "integer", "minimum": 0, "maximum": 5}},
    "required": ["analysis", "rating"],
}
BEHAVIOUR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"behaviour": {"type": "array", "items": {"enum": list(TAGS)},
                                 "minItems": 1, "maxItems": 1}},
    "required": ["behaviour"],
}


def relevance_request(context: str, interrupt: str, reply: str) -> LLMRequest:
    """The relevance request for one interruption sample (texts as FDB stores them)."""
    user = (f"User's first turn: {context}\nUser's cut-in turn: {interrupt}\n"
            f"Assistant's speech after the cut-in: {reply}")
    return LLMRequest(messages=[{"role": "system", "content": RELEVANCE_SYSTEM},
                                {"role": "user", "content": user}], schema=RELEVANCE_SCHEMA)


def parse_relevance(data: Any) -> int:
    """The 0-5 rating of a relevance answer (a dict or its JSON text)."""
    if isinstance(data, str):
        data = json.loads(data)
    r = int(data["rating"])
    if not 0 <= r <= 5:
        raise ValueError(f"rating {r} outside 0..5")
    return r


def behaviour_instruction(data_dir: Path) -> str:
    """FDB's behaviour instruction, read from `full_duplex_bench/v1_v1.5/instruction/behavior.txt`."""
    path = Path(data_dir) / "full_duplex_bench" / "v1_v1.5" / "instruction" / "behavior.txt"
    if not path.is_file():
        raise BadInput("missing_benchmark_file", f"{path} not found: set evaluate.data_dir")
    return path.read_text(encoding="utf-8")


def behaviour_request(instruction: str, transcripts: dict[str, Any]) -> LLMRequest:
    """The behaviour request: `transcripts` maps input_clean / input_noisy / output_clean /
    output_noisy to the parsed JSON documents, sent compact as FDB sends them."""
    def compact(x: Any) -> str:
        return json.dumps(x, separators=(",", ":"), ensure_ascii=False)

    body = "{\n" + ",\n".join(f'"{k}": {compact(transcripts[k])}' for k in
                              ("input_clean", "input_noisy", "output_clean", "output_noisy")) + "\n}"
    return LLMRequest(messages=[{"role": "system", "content": instruction},
                                {"role": "user", "content": body}], schema=BEHAVIOUR_SCHEMA)


def parse_behaviour(data: Any) -> str:
    """The one C-axis tag of a behaviour answer."""
    if isinstance(data, str):
        data = json.loads(data)
    tags = data["behaviour"]
    tag = tags[0] if isinstance(tags, list) and tags else tags
    if tag not in TAGS:
        raise ValueError(f"unknown behaviour tag {tag!r}")
    return str(tag)
