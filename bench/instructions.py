"""Instructions per W4 start/end pair, counted by valgrind: a figure machine noise cannot move.

    python bench/instructions.py              # every W4 case, 2,000 pairs each (about 5 minutes)
    python bench/instructions.py --pairs 500  # quicker, slightly less exact

Needs ``valgrind`` (the Debian package). Each case runs in a fresh interpreter under
``valgrind --tool=callgrind`` twice: once with 200 warm-up pairs only, once with the warm-up and
``--pairs`` more. The difference divided by ``--pairs`` is the cost of one pair, interpreter
start-up and warm-up excluded, every thread included (the export thread's share too).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import span_cases

WARM_UP = 200
CASES = (
    "spanhooks (current)",
    "raw SDK (current)",
    "raw SDK (current, by hand)",
    "raw SDK (not current)",
    "langchain-core",
)


def run_case(name: str, pairs: int) -> None:
    """The child's side: warm the case up, then run ``pairs`` more pairs."""
    case = next(c for c in span_cases() if c.name == name)
    for _ in range(WARM_UP + pairs):
        case.run()


def instructions(name: str, pairs: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            name,
            "--pairs",
            str(pairs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        run_case(options.child, options.pairs)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    per_pair = {
        name: (instructions(name, options.pairs) - instructions(name, 0)) / options.pairs
        for name in CASES
    }
    raw = per_pair["raw SDK (current)"]
    print(f"{'W4 case':30} {'instructions per pair':>22} {'vs raw current':>15}")
    for name, count in per_pair.items():
        print(f"{name:30} {count:>22,.0f} {count / raw:>15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
