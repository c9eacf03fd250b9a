"""`stiwatch run` on the demo site with a trained model: the run process's memory and time.

    python bench/run_memory.py --model-dir DIR            # a model from `stiwatch train`
    python bench/run_memory.py --model-dir DIR --src OLD  # the same with another checkout's code

Serves the demo site on 127.0.0.1, syncs its registry into a new store and runs `stiwatch run`
as cron does (a new process): once with every article new (crawl, then classify with the
model), then REPEAT times with nothing new. For each run it prints the wall time, the run
process's largest resident set while it crawled (until the step's "crawl:" line on stderr) and
its peak (VmHWM) over the whole run; the crawler's own child process is not counted. The run
process is sampled from /proc every 20 ms (Linux only).

The commands run in a temporary folder (`python -m` would put the current folder first on the
path). ``--src OLD`` runs the code in the folder OLD (e.g. `git archive main | tar -x -C OLD`) with
this virtualenv's packages, so that two versions are compared on the same site, model and
machine. Without a model (no --model-dir, no $STIWATCH_MODEL_DIR) there is nothing to
measure: the script says so and exits 0.
"""

from __future__ import annotations

import argparse
from datetime import date
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from crawler.registry import dump_registry  # noqa: E402
from stiwatch.demo import build_site, serve  # noqa: E402


def _kib(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured_run(db: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `stiwatch run` (not --quiet: its "crawl:" line marks the end of the crawl)."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "stiwatch", "--db", str(db), "run"],
                               env=env, cwd=db.parent, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    crawled = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if line.startswith(("crawl: ", "Error: crawl: ")):
                crawled.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    during_crawl = peak = 0
    status_file = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            status = status_file.read_text()
        except OSError:
            break
        rss, peak = _kib(status, "VmRSS"), max(peak, _kib(status, "VmHWM"))
        if not crawled.is_set():
            during_crawl = max(during_crawl, rss)
        time.sleep(0.02)
    process.wait()
    seconds = time.monotonic() - started
    reader.join()
    if process.returncode:
        sys.exit(f"stiwatch run exited {process.returncode}:\n{''.join(lines)}")
    summary = next((line.strip() for line in lines if line.startswith("classify: ")), "?")
    return {"seconds": seconds, "crawl_mb": during_crawl / 1024, "peak_mb": peak / 1024,
            "classify": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.environ.get("STIWATCH_MODEL_DIR"))
    parser.add_argument("--src", help="run the code in this folder instead of this checkout's")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs with nothing new (default: 3)")
    args = parser.parse_args()
    if not args.model_dir or not (Path(args.model_dir) / "model.json").exists():
        print("skipped: no trained model (give --model-dir DIR, a folder `stiwatch train` "
              "wrote)")
        return 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIWATCH_")}
    env.update(STIWATCH_MODEL_DIR=str(Path(args.model_dir).resolve()),
               STIWATCH_DOWNLOAD_DELAY="0", STIWATCH_AUTOTHROTTLE="false")
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    with tempfile.TemporaryDirectory(prefix="run-memory-") as folder:
        root = Path(folder)
        env["STIWATCH_LOG_FILE"] = str(root / "stiwatch.log")
        db = root / "stiwatch.db"
        with serve(root / "site") as server:
            records = build_site(root / "site", server.url, date.today())
            registry = root / "sources.toml"
            registry.write_text(dump_registry(records), encoding="utf-8")
            subprocess.run([sys.executable, "-m", "stiwatch", "--db", str(db), "--quiet",
                            "sources", "sync", str(registry)], env=env, cwd=root, check=True)
            first = measured_run(db, env)
            again = [measured_run(db, env) for _ in range(args.repeat)]
    code = args.src or str(HERE.parent)
    print(f"code: {code}; model: {args.model_dir}")
    print(f"run with every article new: {first['seconds']:.1f} s, run process "
          f"{first['crawl_mb']:.0f} MB while crawling, peak {first['peak_mb']:.0f} MB "
          f"({first['classify']})")
    print("runs with nothing new: "
          f"{statistics.median(r['seconds'] for r in again):.2f} s median "
          f"({', '.join(format(r['seconds'], '.2f') for r in again)}), peak "
          f"{max(r['peak_mb'] for r in again):.0f} MB ({again[-1]['classify']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
