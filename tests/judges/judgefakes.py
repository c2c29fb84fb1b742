"""A fake OpenAI-compatible chat server (stdlib http.server on 127.0.0.1) for client fault tests.

It answers `/v1/chat/completions` with a responder function and injects faults on demand: latency,
HTTP 500/429/404, hangs past the client timeout, garbage bodies, truncated JSON, rejection of the
`json_schema` dialect, and dying after N requests. Only for tests and benchmarks of the code around
the LLM; the real end-to-end tests use llama-server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], Any]


def payload_schema(payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema a payload asks for, in any of the three dialects."""
    rf = payload.get("response_format") or {}
    schema = rf.get("json_schema", {}).get("schema") or rf.get("schema")
    if schema is None:  # plain dialect: the schema is in the last system message
        schema = json.loads(payload["messages"][-1]["content"].split("\n", 1)[1])
    return schema


def schema_ids(payload: dict[str, Any]) -> list[str]:
    """The reply ids ("R1", ...) a content-judge payload asks for."""
    return payload_schema(payload)["properties"]["replies"]["items"]["properties"]["id"]["enum"]


def judge_responder(payload: dict[str, Any]) -> dict[str, Any]:
    """Flags factuality for replies containing "wrong" and tone for replies containing "stupid";
    answers rewrite requests with a fixed fresh reply."""
    if "replies" not in payload_schema(payload)["properties"]:
        return {"reply": "Here is a fresh answer."}
    last = payload["messages"][-1]["content"]
    if payload["messages"][-1]["role"] == "system":
        last = payload["messages"][-2]["content"]
    out = []
    for rid in schema_ids(payload):
        line = next((ln for ln in last.splitlines() if f"({rid})" in ln), "")
        problems = [c for c, w in (("factuality", "wrong"), ("tone", "stupid")) if w in line]
        scores = {c: 5 for c in ("helpfulness", "safety", "factuality", "instruction_adherence",
                                 "tone")}
        scores.update({c: 1 for c in problems})
        out.append({"id": rid, "problems": problems, "scores": scores,
                    "reason": "bad" if problems else "fine",
                    "improved_reply": "A better reply." if problems else ""})
    return {"replies": out}


class FakeOpenAI:
    """Threaded fake server. Set `faults` (a list consumed one per request: None = behave,
    "500", "429", "404", "hang", "garbage", "partial", "reject_schema") and `latency` (seconds).

    Args:
        responder: payload -> answer object (serialised as the message content).
        latency: seconds to sleep before answering each request.
        die_after: shut the server down after this many requests (None: never).
        hang_for: seconds a "hang" fault sleeps.
    """

    def __init__(self, responder: Responder = judge_responder, latency: float = 0.0,
                 die_after: int | None = None, hang_for: float = 2.0):
        self.responder = responder
        self.latency = latency
        self.die_after = die_after
        self.hang_for = hang_for
        self.faults: list[str | None] = []
        self.always: str | None = None
        self.payloads: list[dict[str, Any]] = []
        self.count = 0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, *a) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(n))
                if fake._stopped:  # a dead server answers nothing, even on kept-alive sockets
                    self.close_connection = True
                    return
                with fake._lock:
                    fake.count += 1
                    count = fake.count
                    fake.payloads.append(payload)
                    fault = fake.faults.pop(0) if fake.faults else fake.always
                    fake.active += 1
                    fake.max_active = max(fake.max_active, fake.active)
                try:
                    self._answer(payload, fault)
                finally:
                    with fake._lock:
                        fake.active -= 1
                if fake.die_after is not None and count >= fake.die_after:
                    threading.Thread(target=fake.stop, daemon=True).start()

            def _answer(self, payload: dict[str, Any], fault: str | None) -> None:
                if fake.latency:
                    time.sleep(fake.latency)
                if fault == "hang":
                    time.sleep(fake.hang_for)
                if fault == "500":
                    return self._send(500, b'{"error": "internal"}')
                if fault == "404":
                    return self._send(404, b'{"error": "no such model"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                if fault == "garbage":
                    return self._send(200, b"<html>502 Bad Gateway</html>")
                rf = payload.get("response_format", {})
                if fault == "reject_schema" and rf.get("type") == "json_schema":
                    return self._send(500, b'{"error": "response_format: Input should be '
                                           b"'text' or 'json_object'\"}")
                content = json.dumps(fake.responder(payload))
                if fault == "partial":
                    content = content[: len(content) // 2]
                body = {"id": "x", "object": "chat.completion", "model": payload.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}]}
                self._send(200, json.dumps(body).encode())

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 refuses bursts of connections
            def handle_error(self, request, client_address) -> None:
                pass  # clients that time out close their socket: expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL ("http://127.0.0.1:PORT/v1")."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if not self._stopped:
            self._stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
