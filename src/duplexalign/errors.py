"""The few typed errors of duplexalign.

Owns the exception hierarchy every stage raises for data, config, judge and backend problems. Asserts
are kept for internal shape invariants only; anything a user can cause raises one of these.
"""

from __future__ import annotations


class DuplexAlignError(Exception):
    """Base class of every error raised on purpose by duplexalign."""


class ConfigError(DuplexAlignError):
    """Invalid configuration. Aggregates every problem found, each naming the key to change."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(self.problems))


class ManifestError(DuplexAlignError):
    """A record or manifest is malformed. Carries the record id and the offending field."""

    def __init__(self, message: str, record_id: str | None = None, field: str | None = None):
        self.record_id = record_id
        self.field = field
        where = ", ".join(x for x in (f"id={record_id}" if record_id else "",
                                      f"field={field}" if field else "") if x)
        super().__init__(f"{message} ({where})" if where else message)


class StageNotDone(DuplexAlignError):
    """A stage was asked to run on a run directory whose previous stage has not finished."""

    def __init__(self, stage: str, needs: str, run_dir: str, why: str = ""):
        self.stage = stage
        self.needs = needs
        why = f" ({why})" if why else ""
        command = f"ingest INPUT --out {run_dir}" if needs == "ingest" else f"{needs} {run_dir}"
        super().__init__(f"{stage}: {run_dir} has no finished `{needs}` stage{why}; run "
                         f"`duplexalign {command}` first")


class BadInput(ManifestError):
    """An input item that must be quarantined; `reason` is a short stable key counted in stats."""

    def __init__(self, reason: str, detail: str = "", record_id: str | None = None,
                 field: str | None = None):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason, record_id, field)


class JudgeError(DuplexAlignError):
    """An LLM judge call failed for good. Carries the payload digest (the cache key)."""

    def __init__(self, message: str, payload_digest: str | None = None):
        self.payload_digest = payload_digest
        super().__init__(f"{message} (payload {payload_digest})" if payload_digest else message)


class BackendUnavailable(DuplexAlignError):
    """An optional backend cannot be used; carries the command that installs it."""

    def __init__(self, backend: str, install_hint: str, cause: str = ""):
        self.backend = backend
        self.install_hint = install_hint
        msg = f"backend {backend!r} is unavailable"
        if cause:
            msg += f" ({cause})"
        super().__init__(f"{msg}; install it with: {install_hint}")


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (a `ConfigError`'s problems joined by "; ")."""
    text = "; ".join(error.problems) if isinstance(error, ConfigError) else str(error)
    return " ".join(text.split()) or type(error).__name__
