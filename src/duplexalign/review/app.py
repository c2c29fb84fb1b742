"""The review web app: FastAPI routes over one run directory, pages rendered on the server.

Owns what the browser sees and may do: the conversation list (filters, pagination), the
conversation page (two-lane timeline, issues, audio, pairs A/B, ratings), the decisions endpoint
and the media endpoint. Security is here too: the app answers only Host headers it was started
for (no DNS rebinding), a token is required on every request when it listens beyond the loopback
(query `?token=` once, then an HttpOnly SameSite=Strict cookie), only files inside RUN are served,
every string reaches the page through Jinja's autoescape (and a Content-Security-Policy forbids
inline script), and a write needs a same-origin `Origin` header or the token in `X-Review-Token`.
What the JavaScript does lives in `static/review.js`; decisions are stored by `store.DecisionLog`.
"""

from __future__ import annotations

import hmac
import math
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from duplexalign.records import (
    CONTENT_CATEGORIES,
    TIMING_CATEGORIES,
    Conversation,
    Decision,
    PreferencePair,
    Rating,
)
from duplexalign.review.index import RunIndex, issue_source
from duplexalign.review.store import DecisionLog, make_decision, shown_first

HERE = Path(__file__).parent
PAGE_SIZE = 50
RATING_POINTS = (30, 90, 120)
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; media-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DecisionIn(BaseModel):
    """What the page posts to /api/decisions (the server adds id, reviewer, time, conversation)."""

    target: str
    target_id: str
    verdict: str
    reason: str = ""
    text: str | None = None
    category: str | None = None
    shown_first: str | None = None
    rating: dict[str, Any] | None = None


class ReviewState:
    """The app's view of one run for one reviewer: the index, and every reviewer's latest
    decisions per conversation, kept up to date by reading only what was appended to the log
    since the last request (by this app or by another reviewer's process)."""

    def __init__(self, run_dir: Path, reviewer: str):
        self.root = run_dir.resolve()
        self.reviewer = reviewer
        self.index = RunIndex(self.root)
        self.log = DecisionLog(self.root)
        self._offset = 0
        self._lock = threading.Lock()
        # conversation id -> target_key -> reviewer -> latest decision
        self._latest: dict[str, dict[str, dict[str, Decision]]] = {}

    def refresh(self) -> None:
        """Take in the decisions appended since the last call."""
        with self._lock:
            new, self._offset = self.log.read_new(self._offset)
            for d in new:
                per = self._latest.setdefault(d.conversation_id, {}).setdefault(d.target_key, {})
                old = per.get(d.reviewer)
                if old is None or d.time >= old.time:
                    per[d.reviewer] = d
            self.index.set_decided(d.target_id for d in new
                                   if d.target == "issue" and d.reviewer == self.reviewer)

    def decisions(self, conv_id: str) -> tuple[dict[str, Decision], dict[str, list[Decision]]]:
        """Of one conversation: target_key -> this reviewer's latest decision, and target_key ->
        the other reviewers' latest decisions."""
        self.refresh()
        per = self._latest.get(conv_id, {})
        mine = {k: v[self.reviewer] for k, v in per.items() if self.reviewer in v}
        others = {k: [d for r, d in sorted(v.items()) if r != self.reviewer]
                  for k, v in per.items()}
        return mine, others


def create_app(run_dir: str | Path, *, reviewer: str, host: str = "127.0.0.1",
               port: int = 8765, token: str | None = None) -> FastAPI:
    """The review app for `run_dir`.

    Args:
        run_dir: the run directory (conversations.jsonl.gz, annotations.jsonl.gz, pairs.jsonl.gz).
        reviewer: the name stored in every decision made through this app.
        host / port: where it listens (the Host headers it answers).
        token: required on every request when given (the CLI makes one for non-loopback hosts).
    """
    state = ReviewState(Path(run_dir), reviewer)
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["sec"] = lambda v: f"{v:.2f}"
    app = FastAPI(title="duplexalign review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state
    hosts = {f"{h}:{port}" for h in ((host, *LOOPBACK) if host in LOOPBACK else (host,))}
    hosts |= {f"[::1]:{port}"} if host in LOOPBACK else set()
    any_host = host in ("0.0.0.0", "::")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if not any_host and request.headers.get("host", "") not in hosts:
            return Response("unknown host", status_code=421)
        given = request.query_params.get("token") or request.cookies.get("review_token")
        header = request.headers.get("x-review-token")
        if token is not None and not any(_same(v, token) for v in (given, header)):
            return Response("a token is required: use the URL the review command printed",
                            status_code=401)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            same = origin == f"{request.url.scheme}://{request.headers.get('host')}"
            if not same and not (token is not None and _same(header, token)):
                return Response("cross-origin write refused", status_code=403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie("review_token", token, httponly=True, samesite="strict")
        return response

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(name: str, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(reviewer=reviewer, **ctx))

    @app.get("/", response_class=HTMLResponse)
    def conversations(category: str = "", source: str = "", undecided: bool = False,
                      id: str = "", page: int = 1) -> HTMLResponse:
        state.refresh()
        page = max(1, page)
        rows, total = state.index.page(category=category, source=source, undecided=undecided,
                                       conv_id=id, offset=(page - 1) * PAGE_SIZE,
                                       limit=PAGE_SIZE)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        filters = {"category": category, "source": source, "id": id,
                   "undecided": "1" if undecided else ""}

        def link(p: int) -> str:
            return "/?" + urlencode({**{k: v for k, v in filters.items() if v}, "page": p})

        return render("list.html", rows=rows, total=total, page=page, pages=pages,
                      filters=filters, categories=state.index.categories(),
                      prev_link=link(page - 1) if page > 1 else None,
                      next_link=link(page + 1) if page < pages else None,
                      conv_link=lambda cid: "/conversation?" + urlencode({"id": cid}))

    @app.get("/conversation", response_class=HTMLResponse)
    def conversation(id: str) -> HTMLResponse:
        conv = state.index.conversation(id)
        if conv is None:
            raise HTTPException(404, f"no conversation {id!r} in this run")
        mine, others = state.decisions(id)
        issues = state.index.issues(id)
        pairs = state.index.pairs(id)
        prev_id, next_id = state.index.neighbours(id)
        rows = stack_rows([i.reply_span for i in issues])
        return render(
            "conversation.html", conv=conv,
            pps=round(max(20.0, min(200.0, 1300.0 / conv.duration)), 1),
            issue_rows=max(rows, default=0) + 1,
            issues=[{"issue": i, "source": issue_source(i), "row": row,
                     "mine": mine.get(f"issue:{i.id}"),
                     "others": others.get(f"issue:{i.id}", [])}
                    for i, row in zip(issues, rows, strict=True)],
            replies=_replies(conv, mine),
            pairs=[_pair_view(p, reviewer, mine.get(f"pair:{p.id}")) for p in pairs],
            ratings=[{"at": at, "mine": mine.get(f"conversation:{conv.id}@{at}")}
                     for at in _rating_points(conv.duration)],
            audio_model=_media_url(conv.audio.model),
            audio_user=_media_url(conv.audio.user),
            categories=CONTENT_CATEGORIES + TIMING_CATEGORIES,
            prev_link=_conv_link(prev_id), next_link=_conv_link(next_id))

    @app.get("/media")
    def media(path: str) -> FileResponse:
        return FileResponse(_inside(state.root, path))

    @app.post("/api/decisions")
    def decide(body: DecisionIn) -> JSONResponse:
        conv_id = _target_conversation(state, body)
        fields: dict[str, Any] = {"reason": body.reason.strip()[:2000]}
        if body.text is not None:
            fields["text"] = body.text.strip()
        if body.category is not None:
            fields["category"] = body.category
        if body.shown_first is not None:
            fields["shown_first"] = body.shown_first
        try:
            if body.rating is not None:
                fields["rating"] = Rating.model_validate(body.rating)
            d = make_decision(reviewer, body.target, body.target_id, conv_id, body.verdict,
                              **fields)
        except ValidationError as e:
            raise HTTPException(422, "; ".join(x["msg"] for x in e.errors())) from e
        state.log.append([d])
        state.refresh()
        return JSONResponse({"ok": True, "decision": d.to_dict()})

    @app.get("/api/decisions")
    def decisions(conversation: str) -> JSONResponse:
        return JSONResponse({k: d.to_dict() for k, d in state.decisions(conversation)[0].items()})

    return app


def _same(given: str | None, token: str) -> bool:
    """True when `given` is the token (constant-time; any text may be given)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def stack_rows(spans: list[tuple[float, float]]) -> list[int]:
    """A lane row per span (in the given order) so that no two spans of a row overlap: each
    span takes the first row whose last span ended before it starts."""
    ends: list[float] = []
    out = []
    for start, end in spans:
        row = next((k for k, e in enumerate(ends) if e <= start), len(ends))
        if row == len(ends):
            ends.append(end)
        ends[row] = end
        out.append(row)
    return out


def _conv_link(conv_id: str | None) -> str | None:
    return None if conv_id is None else "/conversation?" + urlencode({"id": conv_id})


def _media_url(path: str | None) -> str | None:
    return None if path is None else "/media?" + urlencode({"path": path})


def _inside(root: Path, path: str) -> Path:
    """The file `path` (relative to the run, or absolute) if it lies inside the run and is audio."""
    p = Path(path)
    full = (p if p.is_absolute() else root / p).resolve()
    if not full.is_relative_to(root) or full.suffix.lower() not in AUDIO_SUFFIXES \
            or not full.is_file():
        raise HTTPException(404, "not a file of this run")
    return full


def _rating_points(duration: float) -> list[int]:
    """Rating points up to the first that covers the whole conversation."""
    out = []
    for at in RATING_POINTS:
        out.append(at)
        if at >= duration:
            break
    return out


def _replies(conv: Conversation, mine: dict[str, Decision]) -> list[dict[str, Any]]:
    from duplexalign.segments import replies

    return [{"reply": r, "flags": [d.category for k, d in mine.items()
                                   if k.startswith(f"reply:{r.id}/")]} for r in replies(conv)]


def _pair_view(p: PreferencePair, reviewer: str, mine: Decision | None) -> dict[str, Any]:
    first = shown_first(p.id, reviewer)
    a, b = (p.chosen, p.rejected) if first == "chosen" else (p.rejected, p.chosen)
    pref = None
    if mine is not None:
        pref = {"neither": "neither", f"prefer_{first}": "a"}.get(mine.verdict, "b")
    return {"pair": p, "shown_first": first, "a": a, "b": b, "a_url": _media_url(a.audio),
            "b_url": _media_url(b.audio), "pref": pref}


def _target_conversation(state: ReviewState, body: DecisionIn) -> str:
    """The conversation a posted decision is about (404 when its target is unknown)."""
    if body.target == "issue":
        conv = state.index.issue_conversation(body.target_id)
    elif body.target == "pair":
        conv = state.index.pair_conversation(body.target_id)
    elif body.target == "reply":
        conv = body.target_id.rsplit("#", 1)[0]
        conv = conv if state.index.conversation(conv) is not None else None
    elif body.target == "conversation":
        conv = body.target_id if state.index.conversation(body.target_id) is not None else None
    else:
        raise HTTPException(422, f"unknown target {body.target!r}")
    if conv is None:
        raise HTTPException(404, f"no {body.target} {body.target_id!r} in this run")
    return conv
