"""Preference training of a moshi model on its text stream: losses, log-probs, data, loop.

`stage.run(config, run_dir)` is the stage (`stage.fit(config, streams_dir, out_dir)` the loop); `losses.LOSSES` the loss registry.
"""
