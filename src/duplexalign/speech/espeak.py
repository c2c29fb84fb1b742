"""Speech from libespeak-ng: in this process, or from a pristine library state in a server process.

Owns the two ways the TTS reaches the binding in `speech.espeak_server`. libespeak-ng keeps state
between utterances that `espeak_Initialize` does not reset (output lengths drift by tens to
hundreds of samples, Klatt noise follows libc's generator, `espeak_Initialize` seeds one from the
clock), so the same text spoken after different earlier texts, or in another process, gives
different samples. `PristineEspeak` makes the same text, voice and settings give the same samples
in any process and any order: it runs the small server of `speech.espeak_server`, which forks a
child per utterance from one freshly initialised state. `LocalEspeak` is the library in this
process (faster, not reproducible). This module does not know about words or resampling
(`speech.tts`).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading

import numpy as np

from duplexalign.errors import BackendUnavailable, ConfigError
from duplexalign.speech import espeak_server
from duplexalign.speech.espeak_server import (
    EspeakLib,
    Events,
    InitFailed,
    UnknownVoice,
    read_msg,
    write_msg,
)

_HINT = "pip install espeakng-loader"


def _paths() -> tuple[str, str]:
    """libespeak-ng and its data folder, from the espeakng-loader package."""
    try:
        import espeakng_loader
    except ImportError as e:
        raise BackendUnavailable("espeak", _HINT, str(e)) from e
    return str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())


class LocalEspeak:
    """The library in this process, shared by its threads (one lock); its output depends on what
    this process spoke before."""

    _instance: LocalEspeak | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        try:
            self.lib = EspeakLib(*_paths())
        except InitFailed as e:
            raise BackendUnavailable("espeak", _HINT, str(e)) from None
        self.sample_rate = self.lib.sample_rate
        self.lock = threading.Lock()

    @classmethod
    def get(cls) -> LocalEspeak:
        """The process-wide instance (initialised on first use)."""
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def synth(self, text: str, voice: str, params: dict[int, int]) -> tuple[np.ndarray, Events]:
        """PCM int16 [S] at `self.sample_rate` and the events."""
        with self.lock:
            try:
                pcm, events = self.lib.synth_bytes(text, voice, params)
            except UnknownVoice as e:
                raise ConfigError(str(e)) from None
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16), events


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
        # -I -S: no site-packages, no user paths; the server needs only the standard library
        proc = subprocess.Popen([sys.executable, "-I", "-S", espeak_server.__file__, *_paths()],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
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
                    write_msg(self._proc.stdin, {"text": text, "voice": voice,
                                                  "params": sorted(params.items())})
                    header, payload = read_msg(self._proc.stdout)
                    break
                except (EOFError, OSError) as e:
                    self._proc = None
                    if attempt:
                        raise BackendUnavailable("espeak", _HINT, f"synthesis server failed ({e!r})"
                                                 ) from None
        if "error" in header:
            if header.get("unknown_voice"):
                raise ConfigError(header["error"])
            raise BackendUnavailable("espeak", _HINT, header["error"])
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
