"""Error rates and iterations of the fixed-15 analysis vs the sequential test, by simulation.

Simulates model pairs with KNOWN true differences: every level is a Bernoulli with a fixed true pass
probability per preset; the candidate's probabilities are the baseline's shifted down by the same
number of percentage points on every level, so its expected score is lower by exactly that many pp.

Scenarios per margin δ:

* equal            — candidate truly equal: any "not swapped" is a missed swap (goal ≤ 20 %);
* worse by margin  — truly worse by exactly δ: any "swapped" is a false swap (goal ≤ 5 %);
* worse by 2·margin — truly worse by 2δ: false swaps should be ~0 and the sequential test should stop early.

Goal for the sequential test: mean iterations ≤ 9 in the equal and worse-by-margin scenarios.

Both designs use the library code (``quality_noninferiority``'s vectorised core and
``SequentialTest.simulate``), so the numbers describe what users get. Never asserts; prints a table.

    .venv/bin/python benchmarks/bench_sequential.py              # 10,000 trials per cell
    .venv/bin/python benchmarks/bench_sequential.py --trials 2000 --margins 5,15
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from pytest_quantgate.inference import SequentialTest, stratified_difference_bounds

POINTS = (25.0, 25.0, 25.0, 15.0, 10.0)
BASELINE_P = (1.00, 0.95, 0.90, 0.80, 0.70)
MAX_ITERATIONS = 15
GOAL_FALSE_SWAP = 0.05
GOAL_MISSED_SWAP = 0.20
GOAL_MEAN_ITERATIONS = 9.0


def _floats(text):
    return tuple(float(x) for x in text.split(",") if x.strip())


def simulate_cell(test, p_base, shift_pp, trials, rng, points):
    """Return (fixed swap rate, sequential swap rate, sequential mean iterations)."""
    p_base = np.asarray(p_base)
    p_cand = np.clip(p_base - shift_pp / 100.0, 0.0, 1.0)
    shape = (trials, MAX_ITERATIONS, p_base.size)
    base = rng.random(shape) < p_base
    cand = rng.random(shape) < p_cand
    n = np.full(p_base.size, float(MAX_ITERATIONS))
    _d, lower, _u = stratified_difference_bounds(
        base.sum(axis=1), n, cand.sum(axis=1), n, points, stats.norm.isf(test.alpha)
    )
    fixed_swap = float(np.mean(lower > -test.margin))
    swapped, used = test.simulate(base, cand, points)
    return fixed_swap, float(swapped.mean()), float(used.mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000, help="simulated model pairs per cell")
    parser.add_argument("--margins", type=_floats, default=(2.0, 10.0, 18.0), help="margins in pp, comma-separated")
    parser.add_argument("--baseline-p", type=_floats, default=BASELINE_P, help="true pass probability per level")
    parser.add_argument("--points", type=_floats, default=POINTS, help="points per level")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--beta", type=float, default=0.10, help="futility error (power lost to early 'keep')")
    parser.add_argument("--min-iterations", type=int, default=3)
    parser.add_argument("--efficacy-gamma", type=float, default=0.0)
    parser.add_argument("--futility-gamma", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    if len(args.baseline_p) != len(args.points):
        parser.error("--baseline-p and --points need one value per level")

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(
        f"levels: points {'/'.join(f'{p:g}' for p in args.points)}, baseline pass probabilities "
        f"{'/'.join(f'{p:.2f}' for p in args.baseline_p)}; candidate = baseline shifted by the true "
        f"difference on every level"
    )
    print(
        f"{args.trials} trials per cell; alpha {args.alpha:g} (one-sided), futility beta {args.beta:g}, "
        f"looks after n = {args.min_iterations}..{MAX_ITERATIONS}, HSD gamma "
        f"{args.efficacy_gamma:g}/{args.futility_gamma:g}; fixed design: MOVER-Wilson at n = {MAX_ITERATIONS}"
    )
    header = (
        f"{'margin':>7} {'scenario':<18} {'true diff':>9} {'design':<11} {'swapped':>8} "
        f"{'false-swap':>10} {'missed-swap':>11} {'mean iters':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    verdicts = []
    for margin in args.margins:
        test = SequentialTest.create(
            margin,
            alpha=args.alpha,
            beta=args.beta,
            min_iterations=args.min_iterations,
            max_iterations=MAX_ITERATIONS,
            efficacy_gamma=args.efficacy_gamma,
            futility_gamma=args.futility_gamma,
        )
        failures = []
        for name, shift in (("equal", 0.0), ("worse by margin", margin), ("worse by 2*margin", 2 * margin)):
            fixed, seq, seq_iters = simulate_cell(test, args.baseline_p, shift, args.trials, rng, args.points)
            for design, rate, iters in (
                ("fixed-15", fixed, float(MAX_ITERATIONS)),
                ("sequential", seq, seq_iters),
            ):
                false_swap = f"{rate:10.3f}" if shift > 0 else f"{'-':>10}"
                missed = f"{1 - rate:11.3f}" if shift == 0 else f"{'-':>11}"
                print(
                    f"{margin:5.1f}pp {name:<18} {(-shift or 0.0):+6.1f} pp {design:<11} {rate:8.3f} "
                    f"{false_swap} {missed} {iters:10.2f}"
                )
                if design == "sequential" and shift == margin and rate > GOAL_FALSE_SWAP:
                    failures.append(f"false-swap {rate:.3f} > {GOAL_FALSE_SWAP}")
                if design == "sequential" and shift == 0 and 1 - rate > GOAL_MISSED_SWAP:
                    failures.append(f"missed-swap {1 - rate:.3f} > {GOAL_MISSED_SWAP}")
                if design == "sequential" and shift <= margin and iters > GOAL_MEAN_ITERATIONS:
                    failures.append(f"mean iterations {iters:.2f} > {GOAL_MEAN_ITERATIONS:g} ({name})")
        verdicts.append((margin, failures))
        print()
    print("sequential goals (false-swap <= 5 %, missed-swap <= 20 %, mean iterations <= 9):")
    for margin, failures in verdicts:
        print(f"  margin {margin:g} pp: " + ("met" if not failures else "NOT met - " + "; ".join(failures)))
    print(f"\n({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
