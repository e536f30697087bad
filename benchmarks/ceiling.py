"""The Bayes ceiling of each synthetic task: the best accuracy any classifier can reach from the image.

Computed from the generators' own plans, without rendering (``diffmic.data.synthetic.ceiling``):
- ``bayes_test``: the Bayes rule's accuracy on the held-out test images of ``benchmarks/accuracy.py``
  (``n`` images from ``SYNTHETIC_TEST_START``, seed 0), exact;
- ``bayes_expected``: its expectation over fresh images, exact (a sum over every visible plan);
- ``bayes_fresh``: a Monte-Carlo check of it on ``n_fresh`` fresh plans drawn by the generators' own code.

    python benchmarks/ceiling.py [--tasks TASK ...] [--n 500] [--fresh 50000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.data.synthetic.ceiling import (  # noqa: E402
    best_possible,
    ceiling,
    expected_ceiling,
    tasks_with_law,
)

FRESH_START = 20_000_000  # beyond the training, test and example indices


def task_ceiling(task: str, n: int, fresh: int) -> dict:
    """The ceiling of one task on the n test images, in expectation, and on ``fresh`` fresh plans."""
    return {
        "bayes_test": round(best_possible(task, n), 4),
        "bayes_expected": round(expected_ceiling(task), 4),
        "n": n,
        "bayes_fresh": round(ceiling(task, range(FRESH_START, FRESH_START + fresh), seed=0), 4),
        "n_fresh": fresh,
    }


def table(results: dict) -> str:
    """A markdown table of the ceilings."""
    n = next(iter(results.values()))["n"]
    lines = [
        f"| task | best possible (Bayes, these {n}) | expected, fresh images (exact) | Monte Carlo check |",
        "|---|---|---|---|",
    ]
    for task, r in results.items():
        lines.append(
            f"| {task} | {r['bayes_test']:.3f} | {r['bayes_expected']:.3f} | "
            f"{r['bayes_fresh']:.3f} ({r['n_fresh']:,} plans) |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=tasks_with_law())
    p.add_argument("--n", type=int, default=500, help="test images (accuracy.py's: 500)")
    p.add_argument("--fresh", type=int, default=50_000, help="fresh plans for the Monte-Carlo check")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = {task: task_ceiling(task, args.n, args.fresh) for task in args.tasks}
    print(json.dumps(results) if args.json else table(results))


if __name__ == "__main__":
    main()
