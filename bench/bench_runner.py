"""Benchmark the snippet runner: cold runs at -j 1 and -j 2, a warm run, and plain python.

    python bench/bench_runner.py                 # the project's snippets/
    python bench/bench_runner.py --synthetic 8   # 8 tiny generated snippets: per-unit overhead

The snippets are copied to a temporary project first, and each cold run uses a fresh cache
there, so every snippet executes. The warm run repeats the
-j 1 run against its filled cache. "plain python" runs each file with ``python FILE`` in the
snippet's folder with the project root on PYTHONPATH, one after another, which is the floor the
kernel-based runner is compared with. Timings are wall-clock seconds on whatever machine runs the
script; the table prints the CPU count so numbers from different machines are not mixed up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kb.runner import Runner  # noqa: E402
from kb.snippets import RunUnit, read_snippet, snippet_files  # noqa: E402

SYNTHETIC = """\
# kb: timeout=60
# %% Compute
import numpy as np

values = np.arange({index} + 10, dtype=float)
print(values.mean())
"""


def timed_run(units: list[RunUnit], root: Path, cache_dir: Path, jobs: int) -> tuple[float, list]:
    runner = Runner(root, cache_dir=cache_dir, jobs=jobs)
    started = time.perf_counter()
    results = runner.run(units)
    return time.perf_counter() - started, results


def plain_python(units: list[RunUnit], root: Path) -> tuple[float, int]:
    """Run each snippet file with plain python; return wall seconds and the number that failed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"  # no display; plt.show() returns at once
    failures = 0
    started = time.perf_counter()
    for unit in units:
        completed = subprocess.run(
            [sys.executable, str(unit.path)],
            cwd=unit.cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=unit.timeout + 60,
            check=False,
        )
        failures += completed.returncode != 0
    return time.perf_counter() - started, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="benchmark N generated tiny snippets instead of the project's")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as scratch:
        scratch_dir = Path(scratch)
        if args.synthetic:
            root = scratch_dir / "project"
            snippets = root / "snippets"
            snippets.mkdir(parents=True)
            for index in range(args.synthetic):
                (snippets / f"tiny_{index}.py").write_text(SYNTHETIC.format(index=index))
        else:
            # A frozen copy, so edits to snippets/ during the benchmark cannot change cache keys
            # between the cold and the warm run.
            root = scratch_dir / "project"
            snippets = root / "snippets"
            shutil.copytree(ROOT / "snippets", snippets, ignore=shutil.ignore_patterns("__pycache__"))
        units = [read_snippet(path, root) for path in snippet_files(snippets)]

        rows: list[tuple[str, float, str]] = []
        cold_1, results = timed_run(units, root, scratch_dir / "cache-j1", jobs=1)
        failed = sum(result.status != "passed" for result in results)
        rows.append(("cold, -j 1", cold_1, f"{failed} not passed"))

        cold_2, _ = timed_run(units, root, scratch_dir / "cache-j2", jobs=2)
        rows.append(("cold, -j 2", cold_2, f"speed-up {cold_1 / cold_2:.2f}x over -j 1"))

        warm, warm_results = timed_run(units, root, scratch_dir / "cache-j1", jobs=1)
        executed = sum(result.executed for result in warm_results)
        rows.append(("warm, -j 1", warm, f"{executed} executed"))

        plain, plain_failed = plain_python(units, root)
        overhead = (cold_1 - plain) / len(units) if units else 0.0
        rows.append(("plain python", plain, f"{plain_failed} failed; kb -j 1 adds {overhead:.2f} s per snippet"))

    print(f"{len(units)} snippets, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'run':<14} {'wall s':>8}  note")
    for name, seconds, note in rows:
        print(f"{name:<14} {seconds:>8.2f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
