"""libespeak-ng through ctypes, and synthesis from a pristine library state.

Owns the binding (initialise, voice and parameter setting, synthesis with WORD and PHONEME events) and
why it runs out of process. libespeak-ng keeps state between utterances that `espeak_Initialize`
does not reset (output lengths drift by tens to hundreds of samples, Klatt noise follows libc's
a generator `espeak_Initialize` seeds from the clock), so the same text spoken after different
earlier texts, or in another process, gives different samples. To make the
same text, voice and settings give the same samples in any process and any order, `PristineEspeak`
runs a small server process (`python -m duplexalign.speech.espeak`) that initialises the library once
and never synthesises itself: it forks one child per utterance, so every utterance starts from the
same freshly initialised state, and the noise generators are reseeded with a constant before each
utterance. The server is single-threaded (forking it is safe) and imports only ctypes and this
module: numpy is imported by the functions that return arrays, in the client, because every loaded
page makes each fork dearer (fork + exit with numpy loaded: 1.7 ms instead of 1.2 ms), and the
server runs with the garbage collector off, so a child never walks (and copies) the pages of
objects it inherited. Together: 7.4 ms per utterance instead of 10.5 (bench/tts_fork.py). This module does not know about words or resampling
(`speech.tts`).
"""

from __future__ import annotations

import array
import atexit
import ctypes
import gc
import json
import os
import struct
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, BinaryIO

from duplexalign.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    import numpy as np

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
_HINT = "pip install espeakng-loader"
_VOICE_HINT = "try en-us, en-gb-x-rp, en-us+f3, en-us+m3, en-us+klatt4"


class EspeakLib:
    """One initialised libespeak-ng in this process (the library has global state: one lock)."""

    _instance: EspeakLib | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:
            raise BackendUnavailable("espeak", _HINT, str(e)) from e
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = str(espeakng_loader.get_data_path()).encode()
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, data,
                                                      _INIT_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise BackendUnavailable("espeak", _HINT, "espeak_Initialize failed")
        self.libc = ctypes.CDLL(None)  # libc's rand() also feeds some noise
        self.lock = threading.Lock()
        self._pcm: list[bytes] = []  # native-endian int16 chunks
        self._events: Events = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._cb)

    @classmethod
    def get(cls) -> EspeakLib:
        """The process-wide instance (initialised on first use)."""
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

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

    def synth(self, text: str, voice: str, params: dict[int, int]) -> tuple[np.ndarray, Events]:
        """PCM int16 [S] at `self.sample_rate` and the events, in this process (its output depends
        on what this process synthesised before)."""
        import numpy as np

        pcm, events = self.synth_bytes(text, voice, params)
        return np.frombuffer(pcm, dtype=np.int16).copy(), events

    def synth_bytes(self, text: str, voice: str, params: dict[int, int]) -> tuple[bytes, Events]:
        """`synth` without numpy: the PCM as little-endian int16 bytes."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(f"tts.voice: espeak-ng has no voice {voice!r} ({_VOICE_HINT})")
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


def _write_msg(f: BinaryIO, header: dict, payload: bytes = b"") -> None:
    head = json.dumps(header).encode()
    f.write(struct.pack("<II", len(head), len(payload)) + head + payload)
    f.flush()


def _read_exact(f: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _read_msg(f: BinaryIO) -> tuple[dict, bytes]:
    nh, npay = struct.unpack("<II", _read_exact(f, 8))
    return json.loads(_read_exact(f, nh)), _read_exact(f, npay)


def _reply(lib: EspeakLib, req: dict) -> tuple[dict, bytes]:
    try:
        pcm, events = lib.synth_bytes(req["text"], req["voice"],
                                      {int(k): v for k, v in req["params"]})
    except ConfigError as e:
        return {"error": str(e)}, b""
    return {"sample_rate": lib.sample_rate, "events": events}, pcm


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The server loop: initialise once, then one forked child per request (never synthesise here).

    Selecting the English voice once before forking loads the dictionary and phoneme tables into the
    state every child inherits (10 ms less per utterance); it is the same fixed step in every server,
    so children still start from one state. The collector stays off (the loop makes no cycles).
    """
    gc.disable()
    lib = EspeakLib.get()
    lib.lib.espeak_SetVoiceByName(b"en-us")
    while True:
        try:
            req, _ = _read_msg(stdin)
        except EOFError:
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: fresh library state, answer, exit without cleanup handlers
            os.close(r)
            code = 0
            try:
                with os.fdopen(w, "wb") as out:
                    _write_msg(out, *_reply(lib, req))
            except BaseException:  # noqa: BLE001 - the parent reports the missing answer
                code = 1
            os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as inp:
            data = inp.read()
        os.waitpid(pid, 0)
        if not data:
            _write_msg(stdout, {"error": "espeak-ng synthesis process died"})
        else:
            stdout.write(data)
            stdout.flush()


class PristineEspeak:
    """Client of the pristine-state server: `synth` gives the same answer for the same request in
    any process and any order. One server per client process, started on first use, restarted after
    a fork of the client or a crash; thread-safe (requests are served one at a time)."""

    _instance: PristineEspeak | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = -1

    @classmethod
    def get(cls) -> PristineEspeak:
        """The process-wide client."""
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
                atexit.register(cls._instance.close)
            return cls._instance

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
             os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        proc = subprocess.Popen([sys.executable, "-m", "duplexalign.speech.espeak"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
        self._pid = os.getpid()
        return proc

    def synth(self, text: str, voice: str, params: dict[int, int]
              ) -> tuple[np.ndarray, Events, int]:
        """PCM int16 [S], events and the sample rate, from a freshly initialised library."""
        with self.lock:
            for attempt in (0, 1):
                if self._proc is None or self._pid != os.getpid() or self._proc.poll() is not None:
                    self._proc = self._start()
                try:
                    assert self._proc.stdin is not None and self._proc.stdout is not None
                    _write_msg(self._proc.stdin, {"text": text, "voice": voice,
                                                  "params": sorted(params.items())})
                    header, payload = _read_msg(self._proc.stdout)
                    break
                except (EOFError, OSError) as e:
                    self._proc = None
                    if attempt:
                        raise BackendUnavailable("espeak", _HINT, f"synthesis server failed ({e!r})"
                                                 ) from None
        if "error" in header:
            if "no voice" in header["error"]:
                raise ConfigError(header["error"])
            raise BackendUnavailable("espeak", _HINT, header["error"])
        import numpy as np

        events = [tuple(e) for e in header["events"]]
        return np.frombuffer(payload, dtype="<i2").astype(np.int16), events, header["sample_rate"]

    def close(self) -> None:
        """Stop the server (it also exits by itself when this process goes away)."""
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing printed by a library can corrupt the answers
    try:
        serve(sys.stdin.buffer, answers)
    except BackendUnavailable as e:
        print(e, file=sys.stderr)
        sys.exit(1)
