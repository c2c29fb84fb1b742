"""End to end: `duplexalign ingest DIR --format audio` on real stereo TTS speech with real whisper.

Channel 0 is the model (voice "model"), channel 1 the user (voice "user_0"); the turns overlap once
(a barge-in). The transcripts are compared with what was spoken and the word times with the
synthesiser's own. A corrupt file is quarantined with its reason, and a rerun is a no-op.
"""

from __future__ import annotations

import numpy as np
from speech.helpers import matched_start_errors

from duplexalign.cli.main import main as cli
from duplexalign.manifest import iter_dicts, read_manifest
from duplexalign.records import Conversation, Word
from duplexalign.speech.asr import wer
from duplexalign.speech.audio import merge_channels, place, write_audio
from duplexalign.speech.voices import get_voice

TURNS = [  # (channel, voice, start seconds, text)
    ("user", "user_0", 0.4, "Hi there, can you help me plan a trip to the mountains?"),
    ("model", "model", 4.2, "Of course. When would you like to go, and for how long?"),
    ("user", "user_0", 8.6, "Next weekend, just for two days."),
    ("model", "model", 11.0, "Then I suggest leaving early on Saturday morning to avoid traffic."),
    ("user", "user_0", 13.8, "Wait, actually I cannot leave before noon."),  # barge-in
    ("model", "model", 17.4, "No problem, an afternoon start works well too."),
]
DURATION = 21.0


def _recording() -> tuple[np.ndarray, dict[str, list[Word]], dict[str, str]]:
    clips = {"model": [], "user": []}
    words = {"model": [], "user": []}
    texts = {"model": [], "user": []}
    for channel, voice, start, text in TURNS:
        sp = get_voice(voice).synthesize(text)
        clips[channel].append((start, sp.wav))
        words[channel] += [w.model_copy(update={"start": w.start + start, "end": w.end + start})
                           for w in sp.words]
        texts[channel].append(text)
    stereo = merge_channels([place(clips["model"], DURATION), place(clips["user"], DURATION)])
    return stereo, words, {k: " ".join(v) for k, v in texts.items()}


def test_ingest_audio_transcribes_both_channels(tmp_path):
    stereo, truth, texts = _recording()
    rec = tmp_path / "recordings"
    write_audio(rec / "session_1.wav", stereo)
    (rec / "broken.wav").write_bytes(b"RIFF....not a wave file")
    out = tmp_path / "run"

    assert cli(["ingest", str(rec), "--format", "audio", "--out", str(out)]) == 0
    convs = list(read_manifest(out / "conversations.jsonl.gz", Conversation))
    assert [c.id for c in convs] == ["session_1"]
    conv = convs[0]
    assert abs(conv.duration - DURATION) < 1e-3
    for channel in ("model", "user"):
        words = conv.words.of(channel)
        error = wer(texts[channel], " ".join(w.text for w in words))
        assert error <= 0.15, f"{channel}: WER {error:.3f}"
        starts = matched_start_errors(truth[channel], words)
        assert len(starts) >= 0.8 * len(truth[channel])
        assert np.median(starts) <= 0.2
    # the barge-in: the user's "Wait" starts while the model is still speaking
    wait = next(w for w in conv.words.user if w.text.lower().startswith("wait"))
    assert any(w.start < wait.start < w.end + 0.3 for w in conv.words.model)

    quarantined = list(iter_dicts(out / "quarantine.jsonl.gz"))
    assert len(quarantined) == 1 and "broken" in quarantined[0]["item"]
    assert quarantined[0]["reason"]

    # rerun: nothing new is transcribed or written
    assert cli(["ingest", str(rec), "--format", "audio", "--out", str(out)]) == 0
    assert len(list(read_manifest(out / "conversations.jsonl.gz", Conversation))) == 1
