"""Judges: timing rules over timed words and an LLM content judge/rewriter over any OpenAI-compatible
endpoint (with an offline local default), plus the reference scorers used by evaluation."""
