"""Codecs: MelRVQ fit/encode/decode/save/load, speech-vs-silence separation by codebook 0 on voices
not used to fit it, frame counts against `timebase`, Mimi shapes (tiny random config), the CLI."""

import copy
import json
from dataclasses import asdict

import numpy as np
import pytest

from duplexalign.cli.main import main as cli
from duplexalign.errors import ConfigError
from duplexalign.speech.asr import wer
from duplexalign.speech.audio import read_audio, write_audio
from duplexalign.speech.base import CODECS
from duplexalign.speech.melrvq import FORMAT as MELRVQ_FORMAT
from duplexalign.speech.melrvq import MelRVQ, augment_noise, mel_filterbank
from duplexalign.speech.voices import USER_VOICES_HELDOUT
from duplexalign.timebase import SAMPLES_PER_FRAME, samples_to_frames
from speech.helpers import monologue, speech_frames
from speech.sentences import SENTENCES


@pytest.mark.parametrize("n", [1, SAMPLES_PER_FRAME - 1, SAMPLES_PER_FRAME,
                               SAMPLES_PER_FRAME + 1, 24000])
def test_melrvq_frame_count_follows_timebase(small_melrvq, n):
    wav = np.random.default_rng(n).normal(0, 0.05, n).astype(np.float32)
    codes = small_melrvq.encode(wav)
    assert codes.shape == (8, samples_to_frames(n)) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 256
    out = small_melrvq.decode(codes)
    assert out.shape == (samples_to_frames(n) * SAMPLES_PER_FRAME,) and out.dtype == np.float32


def test_melrvq_codebook0_separates_speech_from_silence_on_unseen_voices(small_melrvq,
                                                                         train_monologues):
    # learn token -> speech/silence from the training voices (with fresh background noise)
    votes = np.zeros((small_melrvq.cardinality, 2))
    for i, (wav, words) in enumerate(train_monologues):
        codes = small_melrvq.encode(augment_noise(wav, np.random.default_rng(100 + i)))
        np.add.at(votes, (codes[0], speech_frames(words, codes.shape[1]).astype(int)), 1)
    is_speech = votes[:, 1] > votes[:, 0]
    for voice in (*USER_VOICES_HELDOUT, "model"):
        wav, words = monologue(voice, seed=42)
        noisy = wav + np.random.default_rng(1).normal(0, 10 ** (-55 / 20), len(wav))
        codes = small_melrvq.encode(noisy.astype(np.float32))
        truth = speech_frames(words, codes.shape[1])
        accuracy = float(np.mean(is_speech[codes[0]] == truth))
        assert accuracy >= 0.95, f"{voice}: {accuracy:.3f}"


def test_melrvq_decodes_to_speech_whisper_understands(small_melrvq, whisper):
    # the model voice was not used to fit the codec; measured WER 0.09 (original audio: 0.0)
    wav, _ = monologue("model", SENTENCES[:6], seed=5)
    decoded = small_melrvq.decode(small_melrvq.encode(wav))
    text = " ".join(w.text for w in whisper.transcribe(decoded, 24000))
    assert wer(" ".join(SENTENCES[:6]), text) <= 0.25, text
    # the first codebook alone is far less intelligible: the residual stages carry content
    coarse = small_melrvq.decode(small_melrvq.encode(wav)[:1])
    coarse_text = " ".join(w.text for w in whisper.transcribe(coarse, 24000))
    assert wer(" ".join(SENTENCES[:6]), coarse_text) > wer(" ".join(SENTENCES[:6]), text)


def test_melrvq_residual_stages_reduce_the_error(small_melrvq, train_monologues):
    wav = train_monologues[0][0]
    feats = small_melrvq.features.frames(wav)
    z = (feats - small_melrvq.mean) @ small_melrvq.components.T
    codes = small_melrvq.encode(wav)
    errors, recon = [], np.zeros_like(z)
    for q in range(small_melrvq.num_codebooks):
        recon += small_melrvq.codebooks[q][codes[q]]
        errors.append(float(np.mean((z - recon) ** 2)))
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))


def test_melrvq_save_load_round_trip(small_melrvq, tmp_path):
    path = small_melrvq.save(tmp_path / "codec.safetensors")
    assert (tmp_path / "codec.json").is_file()
    loaded = CODECS.get("melrvq")(path=path)
    wav = np.random.default_rng(0).normal(0, 0.1, 30000).astype(np.float32)
    np.testing.assert_array_equal(loaded.encode(wav), small_melrvq.encode(wav))
    assert loaded.stats["frames"] == small_melrvq.stats["frames"]


def test_a_codec_saved_again_gives_the_same_bytes_and_older_files_still_load(small_melrvq,
                                                                             tmp_path):
    from safetensors.numpy import save_file

    from duplexalign.speech.codec import codec_kind

    files = [small_melrvq.save(tmp_path / str(i) / "codec.safetensors").read_bytes()
             for i in range(6)]  # safetensors orders several metadata keys at random
    assert all(f == files[0] for f in files)
    # a file written before (format and json as two metadata keys) loads as it did
    meta = {"format": MELRVQ_FORMAT, "config": asdict(small_melrvq.config),
            "stats": small_melrvq.stats}
    old = tmp_path / "old.safetensors"
    save_file({"mean": small_melrvq.mean, "components": small_melrvq.components,
               "codebooks": small_melrvq.codebooks}, str(old),
              metadata={"format": meta["format"], "json": json.dumps(meta)})
    assert codec_kind(old) == "melrvq"
    wav = np.random.default_rng(1).normal(0, 0.1, 24000).astype(np.float32)
    np.testing.assert_array_equal(CODECS.get("melrvq")(path=old).encode(wav),
                                  small_melrvq.encode(wav))


def test_melrvq_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="codec.path"):
        CODECS.get("melrvq")(path=None)
    with pytest.raises(ConfigError, match="codec.path"):
        CODECS.get("melrvq")(path=tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="codec.path"):
        CODECS.get("melrvq")(path=tmp_path / "junk.safetensors")
    with pytest.raises(ConfigError, match="codebook_size"):
        MelRVQ.fit([np.zeros(24000, np.float32)], num_codebooks=1, codebook_size=64,
                   pca_dim=8, progress=False)


def test_mel_filterbank_has_unit_area_triangles():
    fb = mel_filterbank(1024, 80, 24000, 12000.0)
    assert fb.shape == (80, 513) and (fb >= 0).all()
    bin_hz = 24000 / 1024
    areas = fb[10:].sum(1) * bin_hz  # the lowest filters span too few bins to measure
    np.testing.assert_allclose(areas, 1.0, rtol=0.1)
    assert abs(areas.mean() - 1.0) < 0.01


def _tiny_mimi_config():
    from moshi.models import loaders

    cfg = copy.deepcopy(loaders._mimi_config)
    cfg["seanet"].update(dimension=128, n_filters=16)
    cfg["quantizer"].update(dimension=64, input_dimension=128, output_dimension=128)
    cfg["transformer"].update(d_model=128, num_layers=2, dim_feedforward=256, num_heads=4,
                              input_dimension=128, output_dimensions=[128])
    return cfg


def test_mimi_shapes_agree_with_timebase():
    from duplexalign.speech.codec import MimiCodec

    codec = MimiCodec.from_config(_tiny_mimi_config(), num_codebooks=8)  # random: shapes only
    assert (codec.num_codebooks, codec.cardinality) == (8, 2048)
    for n in (SAMPLES_PER_FRAME * 5, SAMPLES_PER_FRAME * 5 + 1):
        codes = codec.encode(np.random.default_rng(0).normal(0, 0.1, n).astype(np.float32))
        assert codes.shape == (8, samples_to_frames(n)) and codes.dtype == np.int64
        assert codec.decode(codes).shape == (samples_to_frames(n) * SAMPLES_PER_FRAME,)


def test_mimi_needs_a_local_path(tmp_path):
    with pytest.raises(ConfigError, match="codec.path"):
        CODECS.get("mimi")(path=None)
    with pytest.raises(ConfigError, match="codec.path"):
        CODECS.get("mimi")(path=tmp_path)  # a folder without the checkpoint


def test_cli_codec_fit_encode_decode(tmp_path, train_monologues, capsys):
    audio = tmp_path / "audio"
    for i, (wav, _) in enumerate(train_monologues[:3]):
        write_audio(audio / f"{i}.wav", wav)
    out = tmp_path / "codec.safetensors"
    assert cli(["codec", "fit", str(audio), "--out", str(out), "--num-codebooks", "2",
                "--codebook-size", "32", "--pca-dim", "16", "--niter", "5", "--threads", "1"]) == 0
    assert "2 x 32 codebooks" in capsys.readouterr().out
    clip = train_monologues[0][0][:50_000]
    write_audio(tmp_path / "clip.wav", clip)
    assert cli(["codec", "encode", str(tmp_path / "clip.wav"), "--path", str(out),
                "--out", str(tmp_path / "c.npy")]) == 0
    codes = np.load(tmp_path / "c.npy")
    assert codes.shape == (2, samples_to_frames(len(clip)))
    assert cli(["codec", "decode", str(tmp_path / "c.npy"), "--path", str(out),
                "--out", str(tmp_path / "d.wav")]) == 0
    assert len(read_audio(tmp_path / "d.wav")) == codes.shape[1] * SAMPLES_PER_FRAME
    assert cli(["codec", "fit", str(tmp_path / "nothing"), "--out", str(out)]) == 2
