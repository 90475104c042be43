"""Error rates and iterations of item-level decisions, fixed-15 vs sequential, by simulation.

Simulates model pairs answering the same items with KNOWN true differences. Each item has a
difficulty: the baseline answers item i correctly with probability pᵢ ~ Beta (mean 0.7 by default);
the candidate so that over the population of items its expected score differs by exactly Δ pp (see
the scenarios below). Outcomes are pass/fail per item and iteration, drawn from uniforms: baseline right iff
U < pᵢ, candidate right iff V < pᵢᶜ, where the candidate reuses the baseline's U with probability
``--agreement`` (similar quantizations give the same answer) and draws its own otherwise.

Data models (what an item does across iterations):

* beta    — every iteration is a fresh draw (sampling at temperature > 0): repeats of an item are
            correlated through its difficulty pᵢ, not identical;
* greedy  — each item is identical across all iterations with probability ``--greedy`` (0.9), else
            a fresh draw per iteration (greedy decoding that is not bit-stable on a few items);
* cache   — greedy with a cold prompt cache: iterations 2.. repeat one answer, iteration 1 is a
            separate draw with probability ``--cache-differs`` (0.5).

Scenarios per margin δ: "equal" (Δ = 0: any "keep" is a missed swap) and worse by the margin
(Δ = -δ: any "swap" is a false swap) in two ways: "spread" — every item loses the same share of its
pass probability, pᵢᶜ = pᵢ·(1 - δ/70); "few" — a random δ/70 share of the items is broken outright
(pᵢᶜ = 0) and the rest are untouched, the way a bad quantization tends to fail.

Goals: false-swap ≤ 5 % everywhere, missed-swap ≤ 20 % at δ = 5 with 100 items, sequential mean
iterations ≤ 9. Both designs use the library code (``clustered_difference_bounds`` and
``ItemSequentialTest.simulate``), so the numbers describe what users get. Never asserts; prints a table.

    .venv/bin/python benchmarks/bench_items.py                 # 10,000 trials per cell
    .venv/bin/python benchmarks/bench_items.py --trials 1000 --models greedy
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pytest_quantgate.inference.item_sequential import ItemSequentialTest
from pytest_quantgate.inference.items import clustered_difference_bounds, item_quantile

MAX_ITERATIONS = 15
GOAL_FALSE_SWAP = 0.05
GOAL_MISSED_SWAP = 0.20
GOAL_MEAN_ITERATIONS = 9.0
CHUNK_CELLS = 100_000  # trials x items per batch: bounds the memory of one batch (~1 GB)


def _floats(text):
    return tuple(float(x) for x in text.split(",") if x.strip())


def _names(text):
    return tuple(x.strip() for x in text.split(",") if x.strip())


def simulate_scores(model, trials, items, shift_pp, args, rng, loss="spread"):
    """(baseline, candidate) pass/fail as floats, shape (trials, MAX_ITERATIONS, items)."""
    a = args.mean_p * args.concentration
    p = rng.beta(a, args.concentration - a, (trials, 1, items))
    if loss == "spread":
        p_cand = np.clip(p * (1.0 + shift_pp / (100.0 * args.mean_p)), 0.0, 1.0)
    else:  # concentrated: a random share of items is broken outright, the rest untouched
        broken = rng.random((trials, 1, items)) < -shift_pp / (100.0 * args.mean_p)
        p_cand = np.where(broken, 0.0, p)
    shape = (trials, MAX_ITERATIONS, items)
    u = rng.random(shape)
    same = rng.random(shape) < args.agreement
    own = rng.random(shape)
    if model in ("greedy", "cache"):
        if model == "greedy":
            fixed = rng.random((trials, 1, items)) < args.greedy
            first = 0
        else:
            fixed = np.ones((trials, 1, items), dtype=bool)
            first = 1
        # One draw per item repeated over the iterations it is fixed for.
        for arr in (u, same, own):
            arr[:, first:] = np.where(fixed, arr[:, first : first + 1], arr[:, first:])
        if model == "cache":
            cold = rng.random((trials, 1, items)) < args.cache_differs
            for arr in (u, same, own):
                arr[:, :1] = np.where(cold, arr[:, :1], arr[:, 1:2])
    v = np.where(same, u, own)
    return (u < p).astype(np.float64), (v < p_cand).astype(np.float64)


def run_cell(test, model, shift_pp, loss, args, rng):
    """Return (fixed swap rate, sequential swap rate, sequential mean iterations)."""
    weights = np.ones(args.items)
    q = item_quantile(test.alpha, weights)
    fixed_swaps = seq_swaps = seq_iters = 0.0
    done = 0
    while done < args.trials:
        n = min(max(1, CHUNK_CELLS // args.items), args.trials - done)
        base, cand = simulate_scores(model, n, args.items, shift_pp, args, rng, loss)
        d = cand.mean(axis=1) - base.mean(axis=1)
        _diff, lower, _upper = clustered_difference_bounds(d, weights, q)
        fixed_swaps += float(np.sum(lower > -test.margin))
        swapped, used = test.simulate(base, cand, weights)
        seq_swaps += float(swapped.sum())
        seq_iters += float(used.sum())
        done += n
    return fixed_swaps / done, seq_swaps / done, seq_iters / done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000, help="simulated model pairs per cell")
    parser.add_argument("--items", type=int, default=100, help="items per iteration")
    parser.add_argument("--margins", type=_floats, default=(2.0, 5.0), help="margins in pp, comma-separated")
    parser.add_argument("--models", type=_names, default=("beta", "greedy", "cache"), help="data models")
    parser.add_argument("--mean-p", type=float, default=0.7, help="mean item pass probability (Beta mean)")
    parser.add_argument("--concentration", type=float, default=3.0, help="Beta a + b (small: items easy or hard)")
    parser.add_argument("--agreement", type=float, default=0.9, help="P(candidate reuses the baseline's draw)")
    parser.add_argument("--greedy", type=float, default=0.9, help="greedy model: P(item identical over iterations)")
    parser.add_argument("--cache-differs", type=float, default=0.5, help="cache model: P(iteration 1 redrawn)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--beta", type=float, default=0.10, help="futility error (power lost to early 'keep')")
    parser.add_argument("--stop-information", type=float, default=0.8, help="final look at this information fraction")
    parser.add_argument("--seed", type=int, default=20240602)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(
        f"{args.items} items, item pass probability ~ Beta(mean {args.mean_p:g}, a+b {args.concentration:g}); "
        f"candidate reuses the baseline's draw with probability {args.agreement:g}; greedy items fixed with "
        f"probability {args.greedy:g}; cache model: iteration 1 redrawn with probability {args.cache_differs:g}"
    )
    print(
        f"{args.trials} trials per cell; alpha {args.alpha:g} (one-sided), futility beta {args.beta:g}, "
        f"looks after n = 3..{MAX_ITERATIONS}, final look when information >= {args.stop_information:g}; "
        f"fixed design: item score bound at n = {MAX_ITERATIONS}"
    )
    header = (
        f"{'margin':>7} {'model':<7} {'truth':<16} {'design':<11} {'swapped':>8} "
        f"{'false-swap':>10} {'missed-swap':>11} {'mean iters':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    failures = []
    for margin in args.margins:
        test = ItemSequentialTest.create(
            margin, alpha=args.alpha, beta=args.beta, max_iterations=MAX_ITERATIONS,
            stop_information=args.stop_information,
        )  # fmt: skip
        for model in args.models:
            for name, shift, loss in (
                ("equal", 0.0, "spread"),
                ("-margin, spread", -margin, "spread"),
                ("-margin, few", -margin, "concentrated"),
            ):
                fixed, seq, seq_iters = run_cell(test, model, shift, loss, args, rng)
                for design, rate, iters in (("fixed-15", fixed, float(MAX_ITERATIONS)), ("sequential", seq, seq_iters)):
                    false_swap = f"{rate:10.3f}" if shift < 0 else f"{'-':>10}"
                    missed = f"{1 - rate:11.3f}" if shift == 0 else f"{'-':>11}"
                    print(
                        f"{margin:5.1f}pp {model:<7} {name:<16} {design:<11} {rate:8.3f} "
                        f"{false_swap} {missed} {iters:10.2f}"
                    )
                    cell = f"margin {margin:g}, {model}, {name}, {design}"
                    if shift < 0 and rate > GOAL_FALSE_SWAP:
                        failures.append(f"{cell}: false-swap {rate:.3f} > {GOAL_FALSE_SWAP}")
                    if shift == 0 and margin >= 5 and 1 - rate > GOAL_MISSED_SWAP:
                        failures.append(f"{cell}: missed-swap {1 - rate:.3f} > {GOAL_MISSED_SWAP}")
                    if design == "sequential" and iters > GOAL_MEAN_ITERATIONS:
                        failures.append(f"{cell}: mean iterations {iters:.2f} > {GOAL_MEAN_ITERATIONS:g}")
            print()
    print("goals (false-swap <= 5 % everywhere, missed-swap <= 20 % at margin >= 5, sequential mean iterations <= 9):")
    print("  all met" if not failures else "  NOT met:\n    " + "\n    ".join(failures))
    print(f"\n({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
