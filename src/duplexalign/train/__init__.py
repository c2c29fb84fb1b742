"""Preference training of a moshi model on its text stream: losses, log-probs, data, loop.

`stage.run(config, streams_dir, out_dir)` is the entry point; `losses.LOSSES` the loss registry.
"""
