"""The rewriter: writes the better reply for a flagged one, or the missing reply after a silence.

Owns the "regenerate with guidance" method measured in reference/llm.md (8/9 acceptable rewrites with
the small local model, against 4/9 when asked to edit the bad draft): the LLM answers the conversation
afresh with one hint per detected problem and a note about the rejected draft; a rewrite that is nearly
identical to the rejected reply, or that the content judge still flags, is refused and retried with a
new sample. Used by the pairs stage. It knows nothing about timing or audio.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections import Counter
from collections.abc import Sequence

from duplexalign.errors import JudgeError
from duplexalign.judges.content import ContentJudge
from duplexalign.judges.llm import LLMClient
from duplexalign.judges.redact import redact
from duplexalign.judges.templates import load_rewrite_template
from duplexalign.text import normalize

REPLY_SCHEMA = {"type": "object", "properties": {"reply": {"type": "string", "minLength": 1,
                                                           "maxLength": 400}},
                "required": ["reply"], "additionalProperties": False}


class RewriteRejected(JudgeError):
    """No acceptable rewrite after all attempts; `reason` is "near_identical" or "still_flagged"."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"rewrite rejected ({reason}) {detail}".strip())


def similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two replies after lower-casing and dropping punctuation."""
    return difflib.SequenceMatcher(None, normalize(a), normalize(b)).ratio()


class Rewriter:
    """Regenerate-with-guidance rewriter over an `LLMClient`.

    Args:
        client: the LLM endpoint.
        judge: content judge used to re-judge each rewrite (None: no re-judging).
        template: rewriter prompt template id or YAML path.
        max_similarity: rewrites at least this similar to the rejected reply are refused.
        attempts: samples tried before giving up (the first greedy, then temperature 0.7).
        redact: redact PII in the context before sending it.
    """

    def __init__(self, client: LLMClient, judge: ContentJudge | None = None,
                 template: str = "rewrite_v1", max_similarity: float = 0.85, attempts: int = 3,
                 redact: bool = True):
        self.client = client
        self.judge = judge
        self.template = load_rewrite_template(template)
        self.max_similarity = max_similarity
        self.attempts = attempts
        self.redact = redact
        self.redactions: Counter = Counter()

    def _text(self, text: str) -> str:
        if not self.redact:
            return text
        out, counts = redact(text)
        self.redactions.update(counts)
        return out

    def messages(self, context: Sequence[tuple[str, str]], problems: Sequence[str],
                 bad_reply: str | None, retry: bool = False) -> list[dict[str, str]]:
        """Chat messages asking for a fresh reply to the last user turn of `context`.

        Args:
            context: (speaker, text) turns, speaker "user" or "model", oldest first.
            problems: problem categories to steer away from (hints come from the template).
            bad_reply: the rejected draft, or None when the model stayed silent.
            retry: add the "too close to the draft" note.
        """
        t = self.template
        system = [t.system]
        system += [t.hints[p] for p in problems if p in t.hints]
        if bad_reply:
            system.append(t.rejected.format(problems=", ".join(problems) or "low quality",
                                            draft=re.sub(r"[<>\"]", "", bad_reply)))
        if retry:
            system.append(t.retry)
        msgs = [{"role": "system", "content": "\n".join(system)}]
        for who, text in context:
            role = "user" if who == "user" else "assistant"
            content = (f"<user_speech>{re.sub(r'[<>]', '', self._text(text))}</user_speech>"
                       if role == "user" else self._text(text))
            if msgs[-1]["role"] == role:
                msgs[-1] = {"role": role, "content": msgs[-1]["content"] + " " + content}
            else:
                msgs.append({"role": role, "content": content})
        if msgs[-1]["role"] != "user":
            msgs.append({"role": "user", "content": "<user_speech>...</user_speech>"})
        return msgs

    async def arewrite(self, context: Sequence[tuple[str, str]], problems: Sequence[str],
                       bad_reply: str | None) -> str:
        """Async `rewrite`; `bad_reply=None` writes a reply where the model stayed silent."""
        last = ""
        for attempt in range(self.attempts):
            retry = attempt > 0 and bool(last) and bad_reply is not None
            res = await self.client.chat_json(
                self.messages(context, problems, bad_reply, retry=retry), REPLY_SCHEMA,
                max_tokens=200, temperature=0.0 if attempt == 0 else 0.7, seed=attempt)
            reply = " ".join(res.data["reply"].split())
            if bad_reply and similarity(reply, bad_reply) >= self.max_similarity:
                last = "near_identical"
                continue
            if self.judge is not None:
                v = await self.judge.judge_reply(context, reply)
                still = [c for c in v.flagged if c in problems or c == "safety"]
                if still:
                    last = f"still_flagged:{','.join(still)}"
                    continue
            return reply
        reason, _, detail = last.partition(":")
        raise RewriteRejected(reason or "no_answer", detail)

    def rewrite(self, context: Sequence[tuple[str, str]], problems: list[str],
                bad_reply: str) -> str:
        """A better reply to replace `bad_reply` after `context`.

        Args:
            context: (speaker, text) turns before the bad reply, speaker "user" or "model".
            problems: the content categories the judge flagged in `bad_reply`.
            bad_reply: the rejected reply text.

        Raises:
            RewriteRejected: every attempt was near-identical to `bad_reply` or still flagged.
            LLMCallFailed: the endpoint failed after retries.
        """
        return asyncio.run(self.arewrite(context, problems, bad_reply))

    def write_reply(self, context: Sequence[tuple[str, str]]) -> str:
        """A reply to insert where the model stayed silent after the last user turn of `context`."""
        return asyncio.run(self.arewrite(context, ["unresponsiveness"], None))
