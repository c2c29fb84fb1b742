"""`duplexalign codec`: fit a MelRVQ or semantic codec on a folder of audio, and encode/decode files with any
codec. Argument parsing only; the work is in `duplexalign.speech.codec`.

    duplexalign codec fit AUDIO_DIR --out codec.safetensors [--num-codebooks 8 --codebook-size 2048]
    duplexalign codec fit AUDIO_DIR --out codec.safetensors --semantic-units 256 --num-codebooks 4
    duplexalign codec encode IN.wav --path codec.safetensors --out codes.npy
    duplexalign codec decode codes.npy --path codec.safetensors --out OUT.wav
"""

from __future__ import annotations

import argparse


def _fit(args: argparse.Namespace) -> int:
    from duplexalign.speech.codec import fit_melrvq_dir

    if args.threads:
        import faiss
        import torch

        faiss.omp_set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    codec = fit_melrvq_dir(args.audio_dir, args.out, num_codebooks=args.num_codebooks,
                           codebook_size=args.codebook_size, pca_dim=args.pca_dim,
                           seed=args.seed, niter=args.niter, augment=not args.no_augment,
                           semantic_units=args.semantic_units, semantic_steps=args.semantic_steps)
    s = codec.stats
    if args.semantic_units:
        print(f"wrote {args.out}: {args.semantic_units} semantic units + "
              f"{codec.num_codebooks - 1} x {args.codebook_size} acoustic codebooks, fitted on "
              f"{s['frames']} frames; student agrees with the teacher on "
              f"{s['teacher_agreement_heldout']:.3f} of held-out frames")
    else:
        print(f"wrote {args.out}: {codec.num_codebooks} x {codec.cardinality} codebooks, fitted "
              f"on {s['seconds']:.1f} s ({s['frames']} frames), PCA keeps "
              f"{s['pca_variance_kept']:.3f}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import numpy as np

    from duplexalign.speech.audio import read_audio, to_mono
    from duplexalign.speech.base import CODECS

    codec = CODECS.get(args.backend)(path=args.path)
    codes = codec.encode(to_mono(read_audio(args.audio)))
    np.save(args.out, codes)
    print(f"wrote {args.out}: codes {list(codes.shape)}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    import numpy as np

    from duplexalign.speech.audio import write_audio
    from duplexalign.speech.base import CODECS

    codec = CODECS.get(args.backend)(path=args.path)
    wav = codec.decode(np.load(args.codes))
    write_audio(args.out, wav)
    print(f"wrote {args.out}: {len(wav) / 24000:.2f} s")
    return 0


def register(subparsers) -> None:
    """Add the `codec` subcommand with `fit`, `encode` and `decode`."""
    p = subparsers.add_parser("codec", help="fit MelRVQ on audio; encode/decode with a codec")
    sub = p.add_subparsers(dest="codec_command", metavar="ACTION", required=True)

    f = sub.add_parser("fit", help="fit a MelRVQ codec on every audio file under AUDIO_DIR")
    f.add_argument("audio_dir", help="folder of wav/flac/ogg/mp3 files (searched recursively)")
    f.add_argument("--out", required=True, help="output .safetensors (a .json sidecar is added)")
    f.add_argument("--num-codebooks", type=int, default=8)
    f.add_argument("--codebook-size", type=int, default=2048)
    f.add_argument("--pca-dim", type=int, default=128)
    f.add_argument("--niter", type=int, default=20, help="k-means iterations per codebook")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=None,
                   help="CPU threads for k-means and PCA (1 is fastest on a busy shared machine)")
    f.add_argument("--semantic-units", type=int, default=0,
                   help="make codebook 0 semantic (causal units distilled from Whisper tiny.en "
                        "encoder features; 256 in the sandbox); 0 = plain MelRVQ")
    f.add_argument("--semantic-steps", type=int, default=800,
                   help="training steps of the causal unit student")
    f.add_argument("--no-augment", action="store_true",
                   help="skip background-noise augmentation (hurts speech/silence separation)")
    f.set_defaults(func=_fit)

    for name, func, arg, helptext in (("encode", _encode, "audio", "audio file to encode"),
                                      ("decode", _decode, "codes", ".npy of codes [K, T]")):
        e = sub.add_parser(name, help=f"{name} with a codec")
        e.add_argument(arg, help=helptext)
        e.add_argument("--backend", default="melrvq", help="codec name (melrvq, semantic or mimi)")
        e.add_argument("--path", required=True, help="codec weights file")
        e.add_argument("--out", required=True)
        e.set_defaults(func=func)
