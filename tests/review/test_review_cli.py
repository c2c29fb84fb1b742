"""`duplexalign review RUN` serves the app: on the loopback without a token, beyond it only with
the token the command prints."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from runfix import make_run  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(run: Path, *args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "duplexalign.cli.main", "review", str(run),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    line = proc.stdout.readline()
    m = re.search(r"at (http://\S+)", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, m.group(1)


def wait_get(url: str, **kw) -> httpx.Response:
    deadline = time.time() + 20
    while True:
        try:
            return httpx.get(url, **kw)
        except httpx.ConnectError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_serves_on_loopback_and_needs_a_token_beyond(tmp_path):
    run = make_run(tmp_path / "run")
    port = _free_port()
    proc, url = serve(run, "--port", str(port), "--reviewer", "ann")
    try:
        assert url == f"http://127.0.0.1:{port}/"
        r = wait_get(url)
        assert r.status_code == 200 and "conv-a" in r.text and "reviewer: ann" in r.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    port = _free_port()
    proc, url = serve(run, "--host", "0.0.0.0", "--port", str(port))
    try:
        token = url.split("?token=")[1]
        assert len(token) >= 24
        assert wait_get(f"http://127.0.0.1:{port}/").status_code == 401
        assert wait_get(f"http://127.0.0.1:{port}/?token={token}").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    r = subprocess.run([sys.executable, "-m", "duplexalign.cli.main", "review", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: no_conversations") and r.stderr.count("\n") == 1
