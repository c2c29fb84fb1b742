"""The offline default judge: a real llama.cpp `llama-server` on 127.0.0.1, started and stopped by PID.

Owns where the server binary and the GGUF models live (built and verified by `scripts/setup_llm.sh`
under `$DUPLEXALIGN_CACHE`, default `~/.cache/duplexalign`), how the server is started (free port,
one slot and `-t 1` unless told otherwise because llama.cpp threads spin at barriers and collapse on a
shared CPU), health polling, and shutdown of exactly the process it started. It knows nothing about
prompts; clients talk to `base_url` like any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from duplexalign.errors import BackendUnavailable

log = logging.getLogger(__name__)

LLAMA_VERSION = "11434.0.0"
MODELS = {
    "qwen": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
}
INSTALL_HINT = "bash scripts/setup_llm.sh  (builds llama-server and assembles the models, ~8 min)"


def cache_root() -> Path:
    """Root of the local LLM cache (env DUPLEXALIGN_CACHE, default ~/.cache/duplexalign)."""
    return Path(os.environ.get("DUPLEXALIGN_CACHE", Path.home() / ".cache" / "duplexalign"))


def server_binary() -> Path:
    """Path of the cached llama-server binary (may not exist)."""
    return cache_root() / f"llama-server-{LLAMA_VERSION}" / "llama-server"


def model_path(model: str) -> Path:
    """GGUF path for a short model name ("qwen", "smollm2") or an explicit .gguf path."""
    if model in MODELS:
        return cache_root() / "models" / MODELS[model]
    return Path(model).expanduser()


def default_threads() -> int:
    """Server threads: env LLM_THREADS, else 1 (safe on a shared CPU; see reference/llm.md)."""
    return int(os.environ.get("LLM_THREADS", "1"))


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalLLMServer:
    """Context manager running llama-server on 127.0.0.1 for one model.

    Args:
        model: "qwen" (default judge), "smollm2" (fast plumbing model) or a .gguf path.
        threads: CPU threads (None: `default_threads()`).
        ctx: context window in tokens, per slot.
        slots: requests decoded together (`-np`); the server's window is `ctx * slots`.
        port: TCP port (None: a free one).
        startup_timeout: seconds to wait for /health before giving up.

    Example:
        with LocalLLMServer("qwen") as srv:
            client = LLMClient(srv.base_url, srv.model_name)
    """

    def __init__(self, model: str = "qwen", threads: int | None = None, ctx: int = 8192,
                 port: int | None = None, startup_timeout: float = 120.0, slots: int = 1):
        self.model = model
        self.threads = threads or default_threads()
        self.ctx = ctx
        self.slots = slots
        self.port = port
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def model_name(self) -> str:
        """The name the server answers to (its --alias)."""
        return model_path(self.model).stem if self.model not in MODELS else self.model

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL ("http://127.0.0.1:PORT/v1")."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalLLMServer:
        """Start the server and wait until it is healthy.

        Raises:
            BackendUnavailable: binary or model missing, or the server died or never became healthy.
        """
        binary, gguf = server_binary(), model_path(self.model)
        for p in (binary, gguf):
            if not p.exists():
                raise BackendUnavailable("llama-server", INSTALL_HINT, f"{p} is missing")
        self.port = self.port or free_port()
        fd, log_name = tempfile.mkstemp(prefix="duplexalign-llama-", suffix=".log")
        self.log_path = Path(log_name)
        cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
               "-c", str(self.ctx * self.slots), "-np", str(self.slots), "-t", str(self.threads),
               "--alias", self.model_name, "--no-webui"]
        log.info("starting %s", " ".join(cmd))
        with os.fdopen(fd, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-800:]
                self.proc = None
                raise BackendUnavailable("llama-server", INSTALL_HINT, f"server exited: {tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2,
                             trust_env=False).status_code == 200:
                    log.info("llama-server ready on %s (pid %d)", self.base_url, self.proc.pid)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BackendUnavailable("llama-server", INSTALL_HINT,
                                 f"not healthy after {self.startup_timeout}s")

    def stop(self) -> None:
        """Stop the process this object started (by PID); a no-op if it is not running."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.info("llama-server pid %d stopped", proc.pid)

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
