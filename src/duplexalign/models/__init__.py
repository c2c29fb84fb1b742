"""The moshi model backend: typed presets, building/loading `LMModel`, LoRA and text-stream forwards.

Public entry points: `PRESETS`, `ModelPreset`, `build_model`, `save_model`, `load_model` (presets.py),
`add_lora`, `lora_scale` (lora.py), `delayed_input`, `text_logits`, `rescore_text_logprobs`
(forward.py). Importing this package does not import moshi; the functions do.
"""
