"""Benchmark kb's vault loading against obsidiantools and a bare regex scan.

Each measurement runs in a fresh Python process, so imports and caches of one run cannot
help another, and the peak memory is that process's max RSS (interpreter included). Times
cover the load alone, after imports: reading every note, parsing it and resolving its
links. Rates use CPU seconds of the child process, because wall-clock time on a shared
machine depends on the other load; both are printed.

- kb: ``Vault.load`` (front matter, code and math masking, links, tags, blocks, resolution).
- obsidiantools: ``Vault(path).connect()`` (its wikilink, Markdown link and tag pass).
- bare regex: read the same files and run one wikilink pattern over them; the floor for
  any parser written in Python.

Usage: python bench/bench_parse.py [--ml-notes DIR] [--sizes 1000 2000 5000 10000]
       [--skip-obsidiantools]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_vault import write_vault  # noqa: E402

ML_NOTES = Path(__file__).resolve().parent.parent.parent / "shared" / "vaults" / "ml-notes"

# Each snippet loads the vault at sys.argv[1] and prints seconds and the link count.
LOADERS = {
    "kb": """
import sys, time
from kb.vault import Vault
started = time.perf_counter()
cpu_started = time.process_time()
vault = Vault.load(sys.argv[1])
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu_started
links = sum(len(note.links) for note in vault.notes.values())
""",
    "obsidiantools": """
import sys, time, logging, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
import obsidiantools.api as otools
from pathlib import Path
started = time.perf_counter()
cpu_started = time.process_time()
vault = otools.Vault(Path(sys.argv[1])).connect()
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu_started
links = sum(len(v) for v in vault.wikilinks_index.values())
""",
    "regex": """
import re, sys, time
from pathlib import Path
pattern = re.compile(r"!?\\[\\[([^\\[\\]\\n]+)\\]\\]")
started = time.perf_counter()
cpu_started = time.process_time()
links = 0
for path in sorted(Path(sys.argv[1]).rglob("*.md")):
    links += len(pattern.findall(path.read_bytes().decode("utf-8", "replace")))
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu_started
""",
}
REPORT = """
import json, resource
print(json.dumps({"seconds": seconds, "cpu": cpu, "links": links,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(tool: str, vault: Path) -> dict:
    """Load ``vault`` with ``tool`` in a child process and return its timing and memory."""
    result = subprocess.run(
        [sys.executable, "-c", LOADERS[tool] + REPORT, str(vault)],
        capture_output=True, text=True, timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{tool} failed on {vault}:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def vault_size(vault: Path) -> tuple[int, float]:
    files = list(vault.rglob("*.md"))
    return len(files), sum(path.stat().st_size for path in files) / 1e6


def row(name: str, tool: str, notes: int, megabytes: float, result: dict) -> str:
    seconds = result["cpu"]
    return (
        f"| {name} | {tool} | {notes} | {result['seconds']:.2f} | {seconds:.2f} | "
        f"{notes / seconds:,.0f} | {megabytes / seconds:.2f} | {result['max_rss_mb']:.0f} | "
        f"{result['links']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml-notes", type=Path, default=ML_NOTES, help="sample vault to measure")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000],
                        help="synthetic vault sizes in notes for the growth table")
    parser.add_argument("--skip-obsidiantools", action="store_true",
                        help="leave out obsidiantools (over a minute on 2,000 notes)")
    args = parser.parse_args()

    header = (
        "| vault | tool | notes | wall s | CPU s | notes/s | MB/s | max RSS (MB) | links |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory() as scratch:
        vaults = {}
        if args.ml_notes.is_dir():
            vaults["ml-notes"] = args.ml_notes
        for size in sorted(set(args.sizes) | {2000}):
            folder = Path(scratch) / f"synthetic-{size}"
            write_vault(folder, size, seed=0)
            vaults[f"synthetic {size}"] = folder

        print("## kb against obsidiantools\n")
        print(header)
        for name in ["ml-notes", "synthetic 2000"]:
            if name not in vaults or args.skip_obsidiantools:
                continue
            notes, megabytes = vault_size(vaults[name])
            ours = measure("kb", vaults[name])
            theirs = measure("obsidiantools", vaults[name])
            print(row(name, "kb", notes, megabytes, ours))
            print(row(name, "obsidiantools", notes, megabytes, theirs))
            print(f"| {name} | obsidiantools / kb | | | {theirs['cpu'] / ours['cpu']:.0f}x | | | | |")

        print("\n## kb against a bare regex scan, and growth with vault size\n")
        print(header)
        previous = None
        for size in sorted(set(args.sizes) | {2000}):
            name = f"synthetic {size}"
            notes, megabytes = vault_size(vaults[name])
            ours = measure("kb", vaults[name])
            bare = measure("regex", vaults[name])
            print(row(name, "kb", notes, megabytes, ours))
            print(row(name, "regex", notes, megabytes, bare))
            growth = ""
            if previous is not None:
                growth = f"; kb CPU x{ours['cpu'] / previous[1]:.2f} for notes x{notes / previous[0]:.2f}"
            print(f"| {name} | kb / regex | | | {ours['cpu'] / bare['cpu']:.1f}x{growth} | | | | |")
            previous = (notes, ours["cpu"])


if __name__ == "__main__":
    main()
