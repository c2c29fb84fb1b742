"""The espeak-ng binding and the pristine-state synthesis server (stdlib only).

Owns the ctypes binding of libespeak-ng (initialise, voice and parameter setting, synthesis with WORD
and PHONEME events) and the server that `speech.espeak.PristineEspeak` runs in its own process:
`python -I -S espeak_server.py LIBRARY DATA` initialises the library once, selects the English
voice (loading the dictionary and phoneme tables into the state every child inherits), and then
forks one child per request, so every utterance starts from the same freshly initialised state;
the noise generators are reseeded with a constant before each utterance. The server is
single-threaded (forking it is safe), runs with the garbage collector off (a child never walks,
and so copies, the pages of objects it inherited) and imports only a few standard modules: every
page it holds makes each fork dearer (fork + exit with numpy loaded took 1.6 ms, with this module
and the library alone 0.7 ms; bench/tts_fork.py). Each child writes its answer to the client
itself. Messages are length-prefixed JSON headers with
a binary payload over the server's stdin/stdout. Nothing here knows about words or resampling.
"""

from __future__ import annotations

import array
import ctypes
import gc
import json
import os
import struct
import sys

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs every fork pages
if TYPE_CHECKING:
    from typing import BinaryIO

Events = list[tuple[int, int, int, str]]
"""(type, text_position, sample, phoneme name) per espeak event."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
EV_LIST_TERMINATED, EV_WORD, EV_PHONEME = 0, 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS, _INIT_PHONEME_EVENTS = 2, 1
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
_CHARS_UTF8 = 1
_VOICE_HINT = "try en-us, en-gb-x-rp, en-us+f3, en-us+m3, en-us+klatt4"


class UnknownVoice(ValueError):
    """espeak-ng has no voice of that name."""


class InitFailed(RuntimeError):
    """espeak_Initialize failed."""


class EspeakLib:
    """One initialised libespeak-ng in this process (the library has global state; the caller
    serialises the calls).

    Args:
        library: path of libespeak-ng.so.
        data: its espeak-ng-data folder.
    """

    def __init__(self, library: str, data: str) -> None:
        self.lib = ctypes.CDLL(library)
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200,
                                                      data.encode(), _INIT_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise InitFailed("espeak_Initialize failed")
        self.libc = ctypes.CDLL(None)  # libc's rand() also feeds some noise
        self._pcm: list[bytes] = []  # native-endian int16 chunks
        self._events: Events = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._pcm.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while events[i].type != EV_LIST_TERMINATED:
            e = events[i]
            name = e.id.string.decode(errors="replace") if e.type == EV_PHONEME else ""
            self._events.append((e.type, e.text_position, e.sample, name))
            i += 1
        return 0

    def synth_bytes(self, text: str, voice: str, params: dict[int, int]) -> tuple[bytes, Events]:
        """Speak `text` in this process: the PCM as little-endian int16 bytes at
        `self.sample_rate`, and the events (what it gives depends on what it spoke before)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise UnknownVoice(f"tts.voice: espeak-ng has no voice {voice!r} ({_VOICE_HINT})")
        for key, value in params.items():
            self.lib.espeak_SetParameter(key, int(value), 0)
        self._pcm, self._events = [], []
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(0))  # Initialize seeds it from the clock
        self.libc.srand(1)
        buf = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(buf, len(buf), 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        pcm = b"".join(self._pcm)
        if sys.byteorder == "big":
            samples = array.array("h", pcm)
            samples.byteswap()
            pcm = samples.tobytes()
        return pcm, list(self._events)


# --------------------------------------------------------------------------------------------------
# the pristine-state server: length-prefixed messages over the server's stdin/stdout


def _pack(header: dict, payload: bytes = b"") -> bytes:
    """One message: header and payload lengths (little-endian u32 each), JSON header, payload."""
    head = json.dumps(header).encode()
    return struct.pack("<II", len(head), len(payload)) + head + payload


def write_msg(f: BinaryIO, header: dict, payload: bytes = b"") -> None:
    """Send one message on `f` and flush it."""
    f.write(_pack(header, payload))
    f.flush()


def _read_exact(f: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def read_msg(f: BinaryIO) -> tuple[dict, bytes]:
    """Receive one message from `f` (EOFError when `f` ends first)."""
    nh, npay = struct.unpack("<II", _read_exact(f, 8))
    return json.loads(_read_exact(f, nh)), _read_exact(f, npay)


def _reply(lib: EspeakLib, req: dict) -> tuple[dict, bytes]:
    try:
        pcm, events = lib.synth_bytes(req["text"], req["voice"],
                                      {int(k): v for k, v in req["params"]})
    except UnknownVoice as e:
        return {"error": str(e), "unknown_voice": True}, b""
    return {"sample_rate": lib.sample_rate, "events": events}, pcm


def serve(lib: EspeakLib, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The server loop: one forked child per request (`lib` never synthesises here).

    Selecting the English voice once before forking loads the dictionary and phoneme tables into the
    state every child inherits (10 ms less per utterance); it is the same fixed step in every server,
    so children still start from one state. The collector stays off (the loop makes no cycles).
    """
    gc.disable()
    lib.lib.espeak_SetVoiceByName(b"en-us")
    out = stdout.fileno()
    while True:
        try:
            req, _ = read_msg(stdin)
        except EOFError:
            return
        pid = os.fork()
        if pid == 0:  # the child: fresh library state, answer, exit without cleanup handlers
            code = NOT_ANSWERED
            try:
                msg = _pack(*_reply(lib, req))  # whole before the first byte goes out
                code = CUT_SHORT
                view = memoryview(msg)
                while view:
                    view = view[os.write(out, view):]
                code = ANSWERED
            except BaseException:  # noqa: BLE001 - the parent reports what the code says
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == NOT_ANSWERED:
            write_msg(stdout, {"error": "espeak-ng synthesis failed"})
        elif code != ANSWERED:  # part of an answer may be out: stop, the client starts a new server
            return


ANSWERED, NOT_ANSWERED, CUT_SHORT = 0, 3, 4
"""Exit codes of a child: it wrote its whole answer to the client itself (one hand-off less than
through the server, and the client goes on while the child is torn down); it failed before
writing a byte; it failed while writing."""


def main(argv: list[str]) -> int:
    """`espeak_server.py LIBRARY DATA`: serve stdin/stdout until stdin closes."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing printed by a library can corrupt the answers
    try:
        serve(EspeakLib(argv[1], argv[2]), sys.stdin.buffer, answers)
    except (OSError, InitFailed) as e:
        print(f"espeak-ng: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
