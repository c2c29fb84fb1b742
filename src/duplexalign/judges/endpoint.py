"""The one configuration of an LLM endpoint, and how it becomes a client.

Owns `LLMEndpoint` (URL, model, API-key variable, timeouts, retries, answer cache, concurrency and
the local server's threads), the config shape that annotate (`annotate.llm`, which adds the judge's
own options), the pairs rewriter (`pairs.rewriter`), evaluation (`evaluate.judge`) and the demo all
use, `open_client`, which turns one into an `LLMClient`, starting the offline local server when
no URL is given (stopped when the caller's `ExitStack` closes), and `open_judge`, which builds a
registered content judge with such a client when it needs one (annotate and online training both
build their judge with it). It knows nothing about prompts.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from duplexalign.config import StageConfig

if TYPE_CHECKING:
    from duplexalign.judges.content import LLMJudgeConfig
    from duplexalign.judges.llm import LLMClient


class LLMEndpoint(StageConfig):
    """An OpenAI-compatible chat endpoint and how to talk to it."""

    url: str | None = None
    """OpenAI-compatible base URL (".../v1"); None starts the offline local server."""
    model: str = "qwen"
    """Model name for `url`; for the local server "qwen", "smollm2" or a .gguf path."""
    api_key_env: str | None = "DUPLEXALIGN_JUDGE_API_KEY"
    """Environment variable holding a bearer token for hosted endpoints (unset = no token)."""
    concurrency: int = Field(8, ge=1)
    """Requests in flight (a local CPU server queues them; a GPU server batches them)."""
    timeout: float = Field(300.0, gt=0)
    """Seconds per HTTP attempt (a CPU model needs tens of seconds for a long transcript)."""
    max_retries: int = Field(4, ge=0)
    """Retries on 429/5xx, timeouts, connection errors and unparseable answers."""
    cache_dir: str | None = None
    """Answer cache folder; None = the stage's default (e.g. RUN/judge_cache)."""
    threads: int | None = None
    """CPU threads of the local server (None: env LLM_THREADS, else 1; see reference/llm.md)."""
    slots: int = Field(1, ge=1)
    """Requests the local server decodes together (llama-server `-np`; each slot keeps the
    whole context window and its own prompt cache). Set it to `concurrency` on an idle
    machine: batched decoding shares each weight read between the slots."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        from duplexalign.judges.llm import check_base_url  # httpx, jsonschema: on first use

        return None if url is None else check_base_url(url)

    def endpoint(self) -> LLMEndpoint:
        """This endpoint alone (without the options a subclass adds)."""
        return LLMEndpoint.model_validate(self.model_dump(include=set(LLMEndpoint.model_fields)))


ENDPOINT_RUNTIME = ("concurrency", "timeout", "max_retries", "threads", "slots", "api_key_env",
                    "cache_dir")
"""Fields that change how the endpoint is reached, not what it answers (left out of digests)."""


def open_client(ep: LLMEndpoint, stack: ExitStack, cache_dir: str | Path | None = None
                ) -> LLMClient:
    """A client for `ep`; with no URL the local server is started and registered on `stack`.

    Args:
        ep: the endpoint.
        stack: owns the local server's lifetime.
        cache_dir: the answer cache when `ep.cache_dir` is None (None: no cache).
    """
    url, model = ep.url, ep.model
    if url is None:
        from duplexalign.judges.server import LocalLLMServer

        srv = stack.enter_context(LocalLLMServer(model, threads=ep.threads, slots=ep.slots))
        url, model = srv.base_url, srv.model_name
    key = os.environ.get(ep.api_key_env) if ep.api_key_env else None
    from duplexalign.judges.llm import LLMClient

    return LLMClient(url, model, cache_dir=ep.cache_dir or cache_dir, concurrency=ep.concurrency,
                     timeout=ep.timeout, max_retries=ep.max_retries, api_key=key)


def open_judge(name: str, llm: LLMJudgeConfig, stack: ExitStack,
               cache_dir: str | Path | None = None) -> Any:
    """The content judge registered as `name` (`judges.base.JUDGES`), given a client for `llm`
    when its factory `needs_llm` (the local server is then started and registered on `stack`
    when `llm.url` is None), else None for the client.

    Args:
        name: registry name ("llm", "oracle", ...).
        llm: the endpoint and the LLM judge's options.
        stack: owns the local server's lifetime.
        cache_dir: the answer cache when `llm.cache_dir` is None.

    Raises:
        ConfigError: no judge of that name (with did-you-mean).
    """
    from duplexalign.judges.base import JUDGES

    factory = JUDGES.get(name)
    client = open_client(llm, stack, cache_dir) if getattr(factory, "needs_llm", False) else None
    return factory(llm, client)
