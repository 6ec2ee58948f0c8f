"""Fail when a snippet executed more than once for the same code in this CI run.

Reads kb's execution log (one tab-separated line per execution: time, unit, cache key, pid)
and prints one line per unit with its execution count.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def main(log_path: str) -> int:
    path = Path(log_path)
    if not path.is_file():
        print(f"check_run_log: {path} not found; did any snippet run?", file=sys.stderr)
        return 1
    counts: Counter[tuple[str, str]] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 3:
            counts[(fields[1], fields[2])] += 1

    repeated = {unit: count for unit, count in counts.items() if count > 1}
    for (unit, key), count in sorted(counts.items()):
        print(f"{count}x {unit} {key[:12]}")
    if repeated:
        print(f"check_run_log: {len(repeated)} snippets executed more than once", file=sys.stderr)
        return 1
    print(f"check_run_log: {len(counts)} snippets, each executed once")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else ".kb/run.log"))
