"""Full-Duplex-Bench's view of the sandbox instruct model on held-out users (docs/sandbox.md 9).

Usage: PYTHONPATH=src python scripts/sandbox_fdb_view.py [CONVERSATIONS]
Deploys the committed instruct checkpoint against CONVERSATIONS (default 60) held-out simulated
users, at temperature 1 and with the deployment sampling, and prints the FDB rows of the sandbox
table (`fdb_rules` per user turn: take-over at paused turns, the model's backchannels per second of
user speech and their JSD against the sandbox listener) next to the designed jump-in and
interruption rates, each pooled with its 95 % interval.
"""

import json
import sys

from duplexalign.models.presets import load_model
from duplexalign.sandbox.demo import assets_dir, demo_config
from duplexalign.sandbox.deploy import Assets, deploy, user_items
from duplexalign.sandbox.table import flaw_rates

ROWS = ("pause_takeover_fdb", "jump_in_at_pause", "backchannel_frequency", "backchannel_jsd",
        "interruption")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    cfg = demo_config("configs/sandbox.yaml", [f"sandbox.test.conversations={n}"])
    assets = Assets.load(assets_dir(cfg))
    model = load_model(assets.instruct)
    items = user_items(cfg.test, assets, progress=False)
    runs = {"temperature_1": cfg.test,
            "deployment": cfg.test.model_copy(update={"sampling": cfg.deployment_sampling})}
    out = {}
    for name, c in runs.items():
        rates = flaw_rates([d.outcomes for d in deploy(model, c, assets, items=items,
                                                       decode_audio=False, progress=False)])
        out[name] = {k: rates[k] for k in ROWS}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
