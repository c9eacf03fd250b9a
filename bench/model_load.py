"""Loading a trained model: the saved format against joblib's, which stiwatch wrote before.

    python bench/model_load.py --model-dir DIR [--repeat 5]     # DIR: from `stiwatch train`

Copies the model folder twice into a temporary folder: once as it is saved now
(classifier.artifacts.dump_payload, a gzip'd pickle) and once in joblib's own format
(`joblib.dump(..., compress=3)`, the baseline: how models were saved until 2026-11-27 22:00
UTC). Then it loads each copy REPEAT times in turn, each load in a new process (a command
loads the model once, cold), with the classifier's libraries imported before the clock starts:
the time is the unpickling alone. Prints the median of each, their sizes on disk, the peak
memory each load added (Linux: /proc/self/status), and the ratio.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from classifier.artifacts import SAVED_MODELS, dump_payload, load_payload  # noqa: E402

# Run in a new process: the libraries first, then the clock, then the two models as
# `stiwatch classify` loads them.
PROBE = """
import sys, time
def peak():  # VmHWM, in MB: ru_maxrss would carry over the parent's peak across exec
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
import classifier.countries, classifier.model, classifier.pipeline
import scipy.sparse, sklearn.ensemble, sklearn.feature_extraction.text, sklearn.linear_model
import sklearn.svm
from classifier.countries import load_country_model
from classifier.model import load_model
base = peak()
started = time.perf_counter()
load_model(sys.argv[1])
load_country_model(sys.argv[1])
seconds = time.perf_counter() - started
print(seconds, peak() - base)
"""


def copies(model_dir: Path, folder: Path) -> dict[str, Path]:
    """The model folder in each format: {"joblib (before)": ..., "saved now": ...}."""
    import joblib

    out = {"joblib (before)": folder / "joblib", "saved now": folder / "now"}
    for target in out.values():
        target.mkdir()
    for stem in SAVED_MODELS:
        if not (model_dir / f"{stem}.joblib").exists():
            continue
        payload = load_payload(model_dir / f"{stem}.joblib")
        joblib.dump(payload, out["joblib (before)"] / f"{stem}.joblib", compress=3)
        dump_payload(payload, out["saved now"] / f"{stem}.joblib")
        for target in out.values():
            shutil.copy(model_dir / f"{stem}.json", target / f"{stem}.json")
    return out


def load_once(model_dir: Path) -> tuple[float, float]:
    """(seconds, MB of peak memory added) of one load in a new process."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(model_dir)], check=True,
                          capture_output=True, text=True, cwd=HERE.parent)
    seconds, megabytes = done.stdout.split()
    return float(seconds), float(megabytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.environ.get("STIWATCH_MODEL_DIR"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.model_dir or not (Path(args.model_dir) / "model.json").exists():
        print("No trained model (--model-dir or $STIWATCH_MODEL_DIR): nothing to measure.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        formats = copies(Path(args.model_dir), Path(tmp))
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in formats}
        for _ in range(args.repeat):  # in turn, so a slow minute of the host hits both
            for name, folder in formats.items():
                runs[name].append(load_once(folder))
        medians = {}
        for name, folder in formats.items():
            size = sum(f.stat().st_size for f in folder.glob("*.joblib")) / 1e6
            medians[name] = statistics.median(s for s, _ in runs[name])
            memory = statistics.median(m for _, m in runs[name])
            print(f"{name:<16} {medians[name]:6.2f} s to load  {size:6.1f} MB on disk  "
                  f"+{memory:.0f} MB peak  ({args.repeat} loads)")
    print(f"saved now / joblib: {medians['saved now'] / medians['joblib (before)']:.2f}")


if __name__ == "__main__":
    main()
