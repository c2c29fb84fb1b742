"""Validation reasons, one per problem, and a property test: malformed inputs never crash the stage,
each is accepted or quarantined with a known reason, and good inputs in the same batch are unaffected."""

import copy
import json
import math
import random
import tempfile
from pathlib import Path

import pytest
from factories import conversation, word
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duplexalign.errors import BadInput
from duplexalign.ingest.base import IngestConfig
from duplexalign.ingest.moshi_finetune import parse_alignments
from duplexalign.ingest.validate import REASONS, check_conversation, make_word, parse_json_bytes
from duplexalign.manifest import iter_dicts, read_manifest
from duplexalign.records import Conversation
from ingest.helpers import ingest


def conv(model, user, duration=10.0, cid="c"):
    return conversation([word(*w) for w in model], [word(*w) for w in user], duration, id=cid)


OK_USER = [("u", 5.0, 5.5)]


@pytest.mark.parametrize("model,user,duration,reason", [
    ([("a", 1, 2), ("b", 0.5, 0.7)], OK_USER, 10, "words_unsorted"),
    ([("a", 1, 2), ("b", 1.5, 2.5)], OK_USER, 10, "words_overlap"),
    ([("a", 1, 2)], [("u", 9.0, 10.6)], 10, "words_past_end"),
    ([("a", 1, 2)], [], 10, "empty_channel_user"),
    ([], OK_USER, 10, "empty_channel_model"),
    ([("", 1, 2)], OK_USER, 10, "word_empty"),
    ([("a", 1, 40)], OK_USER, 50, "word_too_long"),
    ([("a", 1, 2)], OK_USER, 5 * 3600, "too_long"),
    ([("a\udc80", 1, 2)], OK_USER, 10, "bad_encoding"),
])
def test_each_problem_has_its_reason(model, user, duration, reason):
    probs = check_conversation(conv(model, user, duration), IngestConfig())
    assert [p.reason for p in probs] == [reason]
    assert reason in REASONS


def test_clean_conversation_and_tolerances():
    cfg = IngestConfig()
    # 10 ms overlap (ASR jitter) and a word 0.4 s past the end are tolerated by default
    c = conv([("a", 1, 2), ("b", 1.99, 3)], [("u", 9.0, 10.4)])
    assert check_conversation(c, cfg) == []
    assert [p.reason for p in check_conversation(c, cfg, audio_duration=9.5)] == ["words_past_end"]
    assert check_conversation(conv([("a", 1, 2)], []), IngestConfig(require_channels=["model"])) \
        == []
    many = conv([("a", i, i + 0.5) for i in range(20)], OK_USER, 30)
    assert [p.reason for p in check_conversation(many, IngestConfig(max_words=10))] == \
        ["too_many_words"]


@pytest.mark.parametrize("text,start,end,reason", [
    ("a", float("nan"), 1, "time_nan"), ("a", 0, float("inf"), "time_nan"),
    ("a", -1, 1, "time_negative"), ("a", 2, 1, "time_reversed"), ("a", "1", 2, "bad_schema"),
    ("a", True, 2, "bad_schema"), (3, 0, 1, "bad_schema"), ("a", None, 1, "bad_schema"),
])
def test_make_word_reasons(text, start, end, reason):
    with pytest.raises(BadInput) as e:
        make_word(text, start, end)
    assert e.value.reason == reason


def test_json_reasons():
    assert parse_json_bytes(b'{"a": 1}', "x") == {"a": 1}
    for raw, reason in [(b"\xff\xfe{", "bad_encoding"), (b"{nope", "bad_json"),
                        (b"[" * 100_000, "bad_json")]:
        with pytest.raises(BadInput) as e:
            parse_json_bytes(raw, "x")
        assert e.value.reason == reason


# ---------------------------------------------------------------- property tests

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["\udc80", "NaN", "model", "user", "SPEAKER_MAIN", ""]),
)
any_json = st.recursive(json_leaf, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=3)), max_leaves=5)
sane_time = st.floats(-1, 12)
time = st.one_of(sane_time, sane_time, sane_time, st.floats(allow_nan=True, allow_infinity=True),
                 json_leaf)
triple = st.tuples(st.text(max_size=6), time, time).map(list)
raw_word = st.one_of(triple, triple, triple,  # mostly well-shaped words with odd times
                     st.fixed_dictionaries({"text": json_leaf, "start": time, "end": time}), any_json)
KEYS = ("id", "duration", "words", "meta", "audio")


WORD_FAULTS = ("none", "nan", "inf", "negative", "reversed", "swap", "overlap", "past_end",
               "empty", "surrogate", "string_time", "huge")


def _fault(words: list, fault: str, draw) -> None:
    """Corrupt one word of a well-formed, sorted word list in place."""
    if not words or fault == "none":
        return
    i = draw(st.integers(0, len(words) - 1))
    w = words[i]
    if fault == "nan":
        w[1] = float("nan")
    elif fault == "inf":
        w[2] = float("inf")
    elif fault == "negative":
        w[1] = -0.5
    elif fault == "reversed":
        w[1], w[2] = w[2] + 0.1, w[1]
    elif fault == "swap" and len(words) > 1:
        words.reverse()
    elif fault == "overlap" and i > 0:
        w[1] = words[i - 1][1]
    elif fault == "past_end":
        w[2] = 10.0 + draw(st.floats(0.6, 20))
    elif fault == "empty":
        w[0] = " "
    elif fault == "surrogate":
        w[0] = "a\udc80"
    elif fault == "string_time":
        w[1] = str(w[1])
    elif fault == "huge":
        w[2] = 1e308


@st.composite
def word_list(draw) -> list:
    n = draw(st.sampled_from([0, 1, 2, 3, 4, 2, 3, 1]))
    starts = sorted(draw(st.lists(st.floats(0, 9), min_size=n, max_size=n)))
    words = [[draw(st.text(min_size=1, max_size=5).filter(str.strip)), s, s + 0.05]
             for s in starts]
    for a, b in zip(words, words[1:], strict=False):  # keep them disjoint
        b[1] = max(b[1], a[2])
        b[2] = b[1] + 0.05
    _fault(words, draw(st.sampled_from(("none",) * 4 + WORD_FAULTS)), draw)
    return words


@st.composite
def malformed_line(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "words", "words", "words", "key", "channel"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40)).replace(b"\n", b" ")
    if kind == "json":
        return json.dumps(draw(any_json)).encode()
    line = {"id": draw(st.text(min_size=1, max_size=6)), "duration": 10.0,
            "words": {"model": draw(word_list()), "user": draw(word_list())}}
    if kind == "key":
        line[draw(st.sampled_from(KEYS))] = draw(any_json)
    if kind == "channel":
        line["words"][draw(st.sampled_from(["model", "user"]))] = draw(
            st.lists(raw_word, max_size=3))
    text = json.dumps(line)  # NaN/Infinity become JSON literals, which Python's json accepts
    return text.encode("utf-8", "surrogatepass")


def good_line(i: int) -> dict:
    return {"id": f"good-{i}", "duration": 5.0, "meta": {"k": i},
            "words": {"model": [["hello", 0.5, 0.9], ["there", 1.0, 1.3]],
                      "user": [["hi", 2.0, 2.4]]}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.lists(malformed_line(), min_size=15, max_size=25), where=st.permutations(range(3)))
def test_stage_never_crashes_and_loses_nothing(bad, where):
    lines = list(bad)
    for k, i in enumerate(where):  # good lines at varying positions among the bad ones
        lines.insert(min(i * 7, len(lines)), json.dumps(good_line(k)).encode())
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_bytes(b"\n".join(lines) + b"\n")
        stats = ingest(IngestConfig(format="jsonl"), src, Path(tmp) / "run")
        convs = list(read_manifest(Path(tmp) / "run" / "conversations.jsonl.gz", Conversation))
        quarantined = list(iter_dicts(Path(tmp) / "run" / "quarantine.jsonl.gz"))
    n_items = sum(1 for x in lines if x.strip())
    assert len(convs) + len(quarantined) == n_items == stats.counts["read"]
    assert all(q["reason"] in REASONS and q["detail"] for q in quarantined)
    by_id = {c.id: c for c in convs}
    for k in range(3):  # good inputs come out exactly as they went in
        c = by_id[f"good-{k}"]
        assert c.meta == {"k": k} and [w.text for w in c.words.model] == ["hello", "there"]
    for c in convs:  # and nothing that slipped through is invalid
        assert check_conversation(c, IngestConfig()) == []
        assert all(math.isfinite(w.end) for w in c.words.model + c.words.user)


@settings(max_examples=200, deadline=None)
@given(doc=st.one_of(any_json, st.fixed_dictionaries({"alignments": st.lists(st.one_of(
    st.tuples(st.text(max_size=5), st.tuples(time, time).map(list),
              st.sampled_from(["SPEAKER_MAIN", "SPEAKER_1", "x", 3])).map(list), any_json),
    max_size=5)})))
def test_alignment_parser_accepts_or_names_a_reason(doc):
    try:
        words = parse_alignments(doc, IngestConfig())
    except BadInput as e:
        assert e.reason in REASONS
    else:
        check_conversation(conv([], [], 10.0).model_copy(update={"words": words}), IngestConfig())



HOSTILE_AUDIO = ["a.wav", "../a.wav", "/proc/self/environ", "/dev/zero", "", "sub/../a.wav",
                 "x\x00y.wav", "\udc80.wav", "/etc/passwd", "../../outside/secret.wav", 3, None]
ODD_VALUES = [None, True, -1, 0, 1e308, float("nan"), float("inf"), "", "\udc80", "1.0", [], {},
              [[]], {"text": "a"}, "a" * 300, -0.0]


def _odd(rng):
    """A fresh copy of one of ODD_VALUES (a shared list or dict put into a line and then mutated
    by a later op could change the table, or become a circular reference)."""
    return copy.deepcopy(rng.choice(ODD_VALUES))


def hostile_line(rng: random.Random) -> bytes:
    """One JSONL line: a valid conversation with up to three random mutations (odd values in any
    field, unknown channel keys, hostile audio paths), or its bytes cut or flipped."""
    t = sorted(rng.uniform(0, 9) for _ in range(6))
    line: dict = {"id": rng.choice(["c", "c/1", "..", "\udc80", "x" * 90]), "duration": 10.0,
                  "words": {"model": [["hi", t[0], t[1]], ["there", t[2], t[3]]],
                            "user": [["yo", t[4], t[5]]]}}
    for _ in range(rng.randint(0, 3)):
        op = rng.randrange(7)
        if op == 0:
            line[rng.choice(["id", "duration", "words", "meta", "audio"])] = _odd(rng)
        elif op == 1 and isinstance(line.get("words"), dict):
            line["words"][rng.choice(["assistant", "MODEL", "", "user ", "model"])] = \
                rng.choice([[], [["w", 1.0, 1.1]], _odd(rng)])
        elif op == 2 and isinstance(line.get("words"), dict):
            ws = line["words"].get(rng.choice(["model", "user"]))
            if isinstance(ws, list) and ws and isinstance(ws[0], list) and len(ws[0]) == 3:
                ws[0][rng.randrange(3)] = _odd(rng)
        elif op == 3:
            line["audio"] = rng.choice([rng.choice(HOSTILE_AUDIO),
                                        {"model": rng.choice(HOSTILE_AUDIO)},
                                        {"user": rng.choice(HOSTILE_AUDIO), "bot": "a.wav"}])
        elif op == 4:
            line.pop(rng.choice(list(line)), None)
        elif op == 5:
            line["meta"] = {"k": _odd(rng)}
        else:
            line["duration"] = rng.choice([-1.0, 0.0, 1e-9, 4 * 3600 + 1, "10"])
    raw = json.dumps(line).encode("utf-8", "surrogatepass")
    cut = rng.random()
    if cut < 0.1:
        raw = raw[: rng.randrange(len(raw))]
    elif cut < 0.2:
        i = rng.randrange(len(raw))
        raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]
    return raw


@pytest.fixture(scope="module")
def jsonl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "a.wav").write_bytes(b"RIFF")
    return root


@settings(max_examples=50, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_jsonl_parser_accepts_or_names_a_reason(jsonl_root, seed):
    """1,000 lines per run (50 seeds x 20 lines): each parses or raises BadInput with a known
    reason (never a reader bug), and no accepted line names audio outside the input folder."""
    from duplexalign.ingest.base import Found
    from duplexalign.ingest.jsonl import parse_line

    rng, root = random.Random(seed), jsonl_root.resolve()
    for _ in range(20):
        raw = hostile_line(rng)
        try:
            got = parse_line(raw, jsonl_root / "log.jsonl", "log.jsonl:1", IngestConfig(), root)
        except BadInput as e:
            assert e.reason in REASONS, raw
        else:
            assert set(json.loads(raw)["words"]) <= {"model", "user"}, raw
            if isinstance(got, Found):
                assert all(s.path.is_relative_to(root) for s in got.audio.values()), raw
