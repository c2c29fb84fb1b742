"""Client for any OpenAI-compatible chat endpoint that must answer in JSON (judge and rewriter).

Owns three separable parts: a pure payload builder (`build_payload`, one per structured-output dialect:
OpenAI `json_schema`, llama-cpp-python's `json_object`+`schema`, and plain prompting), a pure response
parser (`parse_response`: tolerant JSON extraction, then validation against the schema), and an async
transport (`LLMClient`) with bounded concurrency, timeouts, retries with backoff on 429/5xx/timeouts/
garbage, a typed failure record (`LLMFailure`) and an on-disk cache keyed by the payload hash, so that a
rerun or a resume asks only what is missing. It knows nothing about conversations or categories; those
live in `content.py` (the content judge) and `rewriter.py`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import re
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from duplexalign.errors import JudgeError

log = logging.getLogger(__name__)

DIALECTS = ("json_schema", "json_object", "plain")
"""Structured-output dialects, tried in this order until one is accepted by the server."""

Messages = list[dict[str, str]]
_POOL_SIZE = 4


class ParseError(ValueError):
    """The response held no JSON object, or one that does not satisfy the schema."""

    def __init__(self, kind: str, detail: str):
        self.kind = kind
        super().__init__(f"{kind}: {detail}")


@dataclass(frozen=True)
class LLMRequest:
    """One structured chat request: messages, the JSON schema of the answer, decoding options."""

    messages: Messages
    schema: dict[str, Any]
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class LLMResult:
    """A validated answer: `data` satisfies the request's schema; `key` is the payload hash."""

    data: Any
    key: str
    model: str
    dialect: str
    cached: bool = False


@dataclass(frozen=True)
class LLMFailure:
    """Typed record of a request that failed for good (after retries).

    Attributes:
        key: payload hash of the request (also its cache key).
        kind: "timeout", "connect", "http_status", "parse" or "schema".
        detail: short human-readable detail.
        status: last HTTP status, if one was received.
        attempts: number of HTTP attempts made.
    """

    key: str
    kind: str
    detail: str
    status: int | None = None
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


class LLMCallFailed(JudgeError):
    """Raised by `LLMClient.chat_json`; carries the typed `LLMFailure`."""

    def __init__(self, failure: LLMFailure):
        self.failure = failure
        super().__init__(f"LLM call failed ({failure.kind}): {failure.detail}", failure.key)


def check_base_url(url: str) -> str:
    """`url` if it is an http(s) base URL with a host; ValueError naming the problem otherwise."""
    parsed = httpx.URL(url) if isinstance(url, str) and "://" in url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host "
                         "(e.g. http://127.0.0.1:8080/v1)")
    return url


def payload_key(model: str, req: LLMRequest) -> str:
    """Hex sha256 of the canonical request (model, messages, schema, decoding options)."""
    canon = {"model": model, "messages": req.messages, "schema": req.schema,
             "max_tokens": req.max_tokens, "temperature": req.temperature, "seed": req.seed}
    return hashlib.sha256(json.dumps(canon, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def build_payload(model: str, req: LLMRequest, dialect: str = "json_schema") -> dict[str, Any]:
    """The JSON body of a `/chat/completions` request in one structured-output dialect.

    Args:
        model: model name the server knows.
        req: messages, schema and decoding options.
        dialect: one of DIALECTS. "plain" puts the schema into a trailing system message instead.

    Returns:
        The request body (a new dict; `req` is not modified).
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    messages = [dict(m) for m in req.messages]
    body: dict[str, Any] = {"model": model, "messages": messages, "temperature": req.temperature,
                            "max_tokens": req.max_tokens, "seed": req.seed, "stream": False}
    if dialect == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": req.schema, "strict": True}}
    elif dialect == "json_object":
        body["response_format"] = {"type": "json_object", "schema": req.schema}
    else:
        messages.append({"role": "system", "content": (
            "Answer with ONE JSON object and nothing else. It must satisfy this JSON schema:\n"
            + json.dumps(req.schema, separators=(",", ":")))})
    return body


def extract_json(text: str) -> Any:
    """The first JSON object in `text`, tolerating code fences and prose around it.

    Raises:
        ParseError: kind "parse" when no complete JSON object is found.
    """
    text = re.sub(r"```(?:json)?", "", text)
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ParseError("parse", f"no complete JSON object in {text[:120]!r}")


def parse_response(body: Any, schema: dict[str, Any]) -> Any:
    """Extract, parse and validate the answer of a chat completion response body.

    Args:
        body: the decoded JSON body of the HTTP response.
        schema: the JSON schema the answer must satisfy.

    Raises:
        ParseError: kind "parse" (no usable content/JSON) or "schema" (JSON violates the schema).
    """
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as e:
        raise ParseError("parse", f"no choices[0].message.content ({e!r})") from None
    if not isinstance(content, str):
        raise ParseError("parse", "message content is not a string")
    data = extract_json(content)
    error = jsonschema.exceptions.best_match(
        _validator(json.dumps(schema, sort_keys=True)).iter_errors(data))
    if error is not None:
        raise ParseError("schema", error.message[:200])
    return data


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    """A compiled validator per schema (checking the schema itself costs ~10 ms: do it once)."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


class ResponseCache:
    """Validated answers on disk, one JSON file per payload hash (`<dir>/<k[:2]>/<k>.json`)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry for `key`, or None (a corrupt entry counts as missing)."""
        p = self._path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store `entry` atomically."""
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{random.getrandbits(32)}.tmp")
        tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, p)


def _dialect_rejected(status: int, text: str) -> bool:
    return status in (400, 422, 500) and bool(
        re.search(r"response_format|json_schema|json_object|schema", text, re.I))


@dataclass
class LLMClient:
    """Async client for an OpenAI-compatible `/chat/completions` endpoint returning JSON.

    Args:
        base_url: e.g. "http://127.0.0.1:8080/v1" (the part before `/chat/completions`).
        model: model name sent to the server (and part of the cache key).
        cache_dir: directory of the answer cache, or None for no cache.
        concurrency: maximum requests in flight.
        timeout: seconds per HTTP attempt.
        max_retries: retries after the first attempt on 429/5xx/timeouts/connect errors/bad JSON.
        api_key: bearer token for hosted endpoints (None for local servers).
        backoff: first retry delay in seconds; doubles per retry with jitter, capped at backoff_max.
        backoff_max: longest delay between retries.
    """

    base_url: str
    model: str
    cache_dir: str | Path | None = None
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 4
    api_key: str | None = None
    backoff: float = 0.5
    backoff_max: float = 8.0
    stats: Counter = field(default_factory=Counter)
    _dialect: int = 0

    def __post_init__(self) -> None:
        self.cache = ResponseCache(self.cache_dir) if self.cache_dir else None
        self._sem: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        # one TLS context for every pool: building one loads the CA store (~30 ms each time)
        self._ssl = ssl.create_default_context()

    @property
    def dialect(self) -> str:
        """The structured-output dialect currently used (falls back when a server rejects one)."""
        return DIALECTS[self._dialect]

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem[0] is not loop:
            self._sem = (loop, asyncio.Semaphore(self.concurrency))
        return self._sem[1]

    def _http(self, connections: int | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        n = connections or self.concurrency
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        return httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                                 limits=limits, headers=headers, trust_env=False, verify=self._ssl)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.backoff_max, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(self.backoff_max, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)

    async def chat_json(self, messages: Messages, schema: dict[str, Any], *, max_tokens: int = 512,
                        temperature: float = 0.0, seed: int = 0,
                        http: httpx.AsyncClient | None = None) -> LLMResult:
        """Ask for a JSON answer satisfying `schema`.

        Args:
            messages: chat messages (`role`, `content`).
            schema: JSON schema of the answer; the answer is validated against it.
            max_tokens: generation limit (leave headroom for free-text fields).
            temperature: sampling temperature (0 = greedy, reproducible).
            seed: sampling seed (part of the cache key, so a different seed asks again).
            http: an open httpx client to reuse; a private one is opened otherwise.

        Raises:
            LLMCallFailed: after retries, carrying the typed `LLMFailure`.
        """
        req = LLMRequest(messages, schema, max_tokens, temperature, seed)
        if http is None:
            async with self._http() as h:
                return await self._call(h, req)
        return await self._call(http, req)

    async def _call(self, http: httpx.AsyncClient, req: LLMRequest) -> LLMResult:
        key = payload_key(self.model, req)
        if (hit := self._cached(key)) is not None:
            return hit
        async with self._semaphore():
            # looked up again: an identical request queued before this one may have been
            # answered while this one waited for a slot (e.g. two attacks the injection filter
            # turned into the same transcript), and temperature 0 would give the same answer
            if (hit := self._cached(key)) is not None:
                return hit
            result = await self._attempts(http, req, key)
        if self.cache:
            self.cache.put(key, {"data": result.data, "model": result.model,
                                 "dialect": result.dialect, "time": time.time()})
        return result

    def _cached(self, key: str) -> LLMResult | None:
        if not self.cache or (hit := self.cache.get(key)) is None:
            return None
        self.stats["cache_hits"] += 1
        return LLMResult(hit["data"], key, hit.get("model", self.model), hit.get("dialect", ""),
                         cached=True)

    async def _attempts(self, http: httpx.AsyncClient, req: LLMRequest, key: str) -> LLMResult:
        url = self.base_url.rstrip("/") + "/chat/completions"
        attempts, status, retry = 0, None, 0
        while True:
            dialect = self.dialect
            attempts += 1
            self.stats["requests"] += 1
            retry_after = None
            try:
                resp = await http.post(url, json=build_payload(self.model, req, dialect))
                status = resp.status_code
                if status == 200:
                    data = parse_response(resp.json(), req.schema)
                    return LLMResult(data, key, self.model, dialect)
                text = resp.text[:300]
                if _dialect_rejected(status, text) and self._dialect < len(DIALECTS) - 1:
                    if self.dialect == dialect:
                        self._dialect += 1
                        log.warning("server rejected %s output (%s); falling back to %s",
                                    dialect, status, self.dialect)
                    self.stats["dialect_fallbacks"] += 1
                    continue
                if status != 429 and status < 500:
                    raise LLMCallFailed(LLMFailure(key, "http_status", text, status, attempts))
                kind, detail = "http_status", f"HTTP {status}: {text}"
                retry_after = resp.headers.get("retry-after")
            except httpx.TimeoutException as e:
                kind, detail = "timeout", f"{type(e).__name__} after {self.timeout}s"
            except httpx.TransportError as e:
                kind, detail = "connect", f"{type(e).__name__}: {e}"[:300]
            except json.JSONDecodeError as e:
                kind, detail = "parse", f"response body is not JSON ({e})"
            except ParseError as e:
                kind, detail = e.kind, str(e)
            if retry >= self.max_retries:
                self.stats[f"failed/{kind}"] += 1
                raise LLMCallFailed(LLMFailure(key, kind, detail, status, attempts))
            self.stats[f"retries/{kind}"] += 1
            await asyncio.sleep(self._delay(retry, retry_after))
            retry += 1

    async def stream_json(self, requests: Sequence[LLMRequest]
                          ) -> AsyncIterator[tuple[int, LLMResult | LLMFailure]]:
        """Run `requests` concurrently; yield `(index, result or failure)` as each completes."""
        # httpcore's pool rescans every connection on each event (quadratic in its size), so large
        # concurrency is spread over several small pools.
        n_pools = -(-self.concurrency // _POOL_SIZE)
        async with AsyncExitStack() as stack:
            pools = [await stack.enter_async_context(self._http(_POOL_SIZE))
                     for _ in range(n_pools)]

            async def one(i: int, r: LLMRequest) -> tuple[int, LLMResult | LLMFailure]:
                try:
                    return i, await self._call(pools[i % n_pools], r)
                except LLMCallFailed as e:
                    return i, e.failure
            tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(requests)]
            try:
                for fut in asyncio.as_completed(tasks):
                    yield await fut
            finally:
                for t in tasks:
                    t.cancel()

    async def chat_json_many(self, requests: Sequence[LLMRequest]
                             ) -> list[LLMResult | LLMFailure]:
        """All results of `requests` in input order (failures as `LLMFailure` records)."""
        out: list[LLMResult | LLMFailure | None] = [None] * len(requests)
        async for i, r in self.stream_json(requests):
            out[i] = r
        return out  # type: ignore[return-value]

    def run_many(self, requests: Sequence[LLMRequest]) -> list[LLMResult | LLMFailure]:
        """Synchronous `chat_json_many` (runs its own event loop)."""
        return asyncio.run(self.chat_json_many(requests))

    def chat_json_sync(self, messages: Messages, schema: dict[str, Any], **kw: Any) -> LLMResult:
        """Synchronous `chat_json` (runs its own event loop); raises LLMCallFailed."""
        return asyncio.run(self.chat_json(messages, schema, **kw))

