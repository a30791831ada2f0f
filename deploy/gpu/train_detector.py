"""Device launcher: train the detector on the GPU with the project's own command, then export and time it.

The device image has no polars and cannot download the AMP-check weights; both are patched here only.
"""
import csv, sys, time
from pathlib import Path
sys.path.insert(0, ".")
from vision import training

WORK = Path("/tmp/vw")
training.configure_ultralytics_offline(WORK / "cfg")
import ultralytics.engine.trainer as trainer  # noqa: E402

def read_results_csv(self):
    try:
        with open(self.csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    return {k.strip(): [float(r[k]) for r in rows] for k in (rows[0] if rows else {})}

trainer.check_amp = lambda model: True
trainer.BaseTrainer.read_results_csv = read_results_csv
sys.argv = ["vision.training", "--work", str(WORK), "--dataset", ".gpu/vision/dataset"] + sys.argv[1:]
t = time.time()
training.main()
print(f"TRAIN+EXPORT {time.time() - t:.0f}s", flush=True)
