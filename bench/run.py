"""Run every benchmark in bench/ (each bench/*.py script except this one), one after another.

    python bench/run.py            # full size (the first run builds bench/.cache/, gitignored)
    python bench/run.py --quick    # small N: a smoke test that every script still runs
    python bench/run.py store_scale --quick   # only the scripts whose name contains a word

Each script prints its own measures with a ratio against a baseline measured in the same run;
results worth keeping go to docs/benchmarks.md with the date and the machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import platform
import subprocess
import sys
import time

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every bench/*.py script.")
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("only", nargs="*", help="run only scripts whose name contains this")
    args = parser.parse_args()
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run.py"
                     and not p.name.startswith("_"))
    if args.only:
        scripts = [p for p in scripts if any(word in p.stem for word in args.only)]
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')} · {platform.node()} · Python "
          f"{platform.python_version()} · SQLite {__import__('sqlite3').sqlite_version}",
          flush=True)
    failed = []
    for script in scripts:
        # Scripts without a --quick mode are already small; run them as they are.
        quick = args.quick and "--quick" in script.read_text(encoding="utf-8")
        command = [sys.executable, str(script)] + (["--quick"] if quick else [])
        print(f"\n## {script.name}", flush=True)
        started = time.monotonic()
        result = subprocess.run(command, cwd=HERE.parent)
        print(f"({script.name}: exit {result.returncode}, {time.monotonic() - started:.0f}s)",
              flush=True)
        if result.returncode:
            failed.append(script.name)
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
