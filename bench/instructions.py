"""Instructions per unit of work, counted by valgrind: a figure machine noise cannot move.

    python bench/instructions.py                  # W4: every span-pair case, 2,000 pairs each
    python bench/instructions.py --workload W5    # W5: the agent > turn > tool tree
    python bench/instructions.py --workload W2    # W2: dispatch to one callback (W3: to five)
    python bench/instructions.py --units 500      # quicker, slightly less exact

Needs ``valgrind`` (the Debian package). Each case runs in a fresh interpreter under
``valgrind --tool=callgrind`` twice: once with 200 warm-up units only, once with the warm-up and
``--units`` more. The difference divided by ``--units`` is the cost of one unit (a W4 pair, a
W5 tree, a W2 or W3 emit), interpreter start-up and warm-up excluded, every thread included (the
export thread's share too). Each workload's ratio is to its reference case, the one its bar
in issue 17 names.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import Case, dispatch_cases, span_cases, tree_cases

WARM_UP = 200
WORKLOADS: dict[str, tuple[Callable[[], list[Case]], tuple[str, ...], str]] = {
    # workload: (its cases, the ones counted, the reference its ratio is to)
    "W2": (lambda: dispatch_cases(1), ("spanhooks", "pyee", "blinker", "pluggy"), "pyee"),
    "W3": (lambda: dispatch_cases(5), ("spanhooks", "pyee", "blinker", "pluggy"), "pyee"),
    "W4": (
        span_cases,
        (
            "spanhooks (current)",
            "raw SDK (current)",
            "raw SDK (current, by hand)",
            "raw SDK (not current)",
            "langchain-core",
        ),
        "raw SDK (current)",
    ),
    "W5": (tree_cases, ("spanhooks", "raw SDK", "langchain-core"), "raw SDK"),
}


def run_case(workload: str, name: str, units: int) -> None:
    """The child's side: warm the case up, then run ``units`` more units."""
    case = next(c for c in WORKLOADS[workload][0]() if c.name == name)
    for _ in range(WARM_UP + units):
        case.run()


def instructions(workload: str, name: str, units: int) -> int:
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--workload",
            workload,
            "--child",
            name,
            "--units",
            str(units),
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
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="W4")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    workload, units = options.workload, options.units
    if options.child:
        run_case(workload, options.child, units)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    factory, names, reference = WORKLOADS[workload]
    available = {case.name for case in factory()}  # a peer that is not installed is left out
    per_unit = {
        name: (instructions(workload, name, units) - instructions(workload, name, 0)) / units
        for name in names
        if name in available
    }
    print(f"{workload + ' case':30} {'instructions per unit':>22} {'vs ' + reference:>20}")
    for name, count in per_unit.items():
        print(f"{name:30} {count:>22,.0f} {count / per_unit[reference]:>20.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
