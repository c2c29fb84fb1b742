"""`duplexalign judge-server`: run the offline judge LLM on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `judge-server` subcommand."""
    p = sub.add_parser("judge-server", help="serve the local judge LLM (llama-server) on 127.0.0.1",
                       description="Start llama-server with a cached model and print its "
                                   "OpenAI-compatible URL; Ctrl-C stops it. Pass the URL to "
                                   "`annotate --judge-url` to share one server between runs.")
    p.add_argument("--model", default="qwen", help='"qwen", "smollm2" or a .gguf path')
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default LLM_THREADS or 1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from duplexalign.judges.server import LocalLLMServer

    with LocalLLMServer(args.model, threads=args.threads, port=args.port) as srv:
        print(f"serving {srv.model_name} at {srv.base_url} (pid {srv.proc.pid}); Ctrl-C to stop",
              flush=True)
        try:
            while srv.proc is not None and srv.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0
