"""Evaluation: streaming full-duplex rollouts, registered tasks, metrics with CIs, and comparisons."""
