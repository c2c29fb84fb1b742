"""One more on-policy round of a finished sandbox demo, through the library loop (docs/sandbox.md 5).

Usage: PYTHONPATH=src python scripts/sandbox_round.py OUT ROUND STEPS [--set SECTION.KEY=VALUE ...]
Round ROUND starts from OUT's previous round's checkpoint (`OUT/run/train/best` for round 2),
deploys it on fresh training conversations, trains STEPS steps and writes the held-out table
against the base model to OUT/round<ROUND>_results.json. `duplexalign demo --rounds N` does the same
with the preset's number of steps.
"""

import json
import sys
import time
from pathlib import Path

from duplexalign.models.presets import load_model
from duplexalign.sandbox.demo import assets_dir, load_demo
from duplexalign.sandbox.deploy import Assets, deploy, user_items
from duplexalign.sandbox.loop import align_round, round_dir
from duplexalign.sandbox.table import before_after, goals

out, r, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
overrides = [x for x in sys.argv[4:] if x != "--set"]
overrides += ["annotate.judge=oracle", f"train.max_steps={steps}",
              f"train.checkpoint_every={steps}"]
cfg, stages = load_demo("configs/sandbox.yaml", overrides)
assets = Assets.load(assets_dir(cfg))
t0 = time.time()
items = user_items(cfg.test, assets, progress=False)
base = deploy(load_model(assets.instruct), cfg.test, assets, items=items, decode_audio=False,
              progress=False)
start = round_dir(out, r - 1) / "run" / "train" / "best"
res = align_round(cfg, r, start, assets.instruct, assets, stages, out, progress=False)
after = deploy(load_model(res.checkpoint), cfg.test, assets, items=items, decode_audio=False,
               progress=False)
table = before_after([d.outcomes for d in base], [d.outcomes for d in after])
record = {"rounds": [{"round": r, "table": table, "goals": goals(table),
                      "checkpoint": str(res.checkpoint),
                      "validation_history": res.validation_history, "timings": res.timings}],
          "seconds": round(time.time() - t0, 1)}
(out / f"round{r}_results.json").write_text(json.dumps(record, indent=2, default=str))
print(json.dumps({k: v["after"]["value"] for k, v in table.items()}, indent=1))
