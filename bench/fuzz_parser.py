"""Run the parser's property tests far longer than CI does.

The properties are the ``test_*`` functions of tests/test_parser_properties.py, which read
their example count from ``KB_HYPOTHESIS_EXAMPLES``. This script sets that count, runs each
property once, and prints the examples run, the time and any failure with its smallest
failing input. It exits with 1 when a property fails.

Usage: python bench/fuzz_parser.py [--examples 50000] [--seed N] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def load_properties(examples: int):
    """Import the property module with ``examples`` per property and return its tests."""
    os.environ["KB_HYPOTHESIS_EXAMPLES"] = str(examples)
    from hypothesis import settings

    # No example database: a long run would otherwise fill .hypothesis/ in the working folder.
    settings.register_profile("fuzz", database=None, print_blob=True)
    settings.load_profile("fuzz")
    sys.path.insert(0, str(TESTS))
    module = importlib.import_module("test_parser_properties")
    return [
        (name, function) for name, function in sorted(vars(module).items())
        if name.startswith("test_") and hasattr(function, "hypothesis")
    ]


def run_property(function, seed: int | None) -> tuple[int, float, str | None]:
    """Run one property and return (examples run, seconds, failure text or None)."""
    from hypothesis import seed as fixed_seed

    calls = 0
    inner = function.hypothesis.inner_test

    def counted(*args, **kwargs):
        nonlocal calls
        calls += 1
        return inner(*args, **kwargs)

    function.hypothesis.inner_test = counted
    test = fixed_seed(seed)(function) if seed is not None else function
    started = time.perf_counter()
    try:
        test()
        failure = None
    except Exception:  # a property failure: report it and go on with the next property
        failure = traceback.format_exc(limit=-3)
    finally:
        function.hypothesis.inner_test = inner
    return calls, time.perf_counter() - started, failure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000,
                        help="examples per property (default 50,000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed, to repeat a run (default: a new seed each run)")
    parser.add_argument("--only", default="",
                        help="run only the properties whose name contains this text")
    args = parser.parse_args(argv)

    properties = [(name, test) for name, test in load_properties(args.examples) if args.only in name]
    if not properties:
        print(f"no property matches --only {args.only!r}", file=sys.stderr)
        return 2
    print(f"{len(properties)} properties, up to {args.examples:,} examples each")
    failed = 0
    total = 0
    for name, function in properties:
        calls, seconds, failure = run_property(function, args.seed)
        total += calls
        # The count includes the calls hypothesis makes while it shrinks a failing input.
        status = "ok" if failure is None else "FAILED"
        print(f"{name}: {calls:,} examples in {seconds:.1f} s, {status}", flush=True)
        if failure is not None:
            failed += 1
            print(failure)
    print(f"total: {total:,} examples, {failed} failing properties")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
