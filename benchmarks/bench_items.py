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
    .venv/bin/python benchmarks/bench_items.py --alternatives      # other bounds, and the best any test can do

``--alternatives`` compares, on the fixed-15 design, the library's bound with less conservative ones for
pass/fail items (Tango's score, the signed likelihood ratio, a studentized bound) on the table's cells and
on the same cells with ``--agreement 1`` (a few items broken outright, all others answered identically),
and prints the power of the most powerful test that keeps the false-swap rate ≤ alpha for every rate of
discordant items (a linear program over tests of one pass/fail pair per item): a bound for every method.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pytest_quantgate.inference.item_sequential import ItemSequentialTest
from pytest_quantgate.inference.items import clustered_difference_bounds, clustered_moments, item_quantile

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


def _tango_rmle(b, c, n, theta):
    """Restricted MLE of P(item lost) for pass/fail pairs under P(won) - P(lost) = theta (Tango 1998)."""
    m = n - b - c
    lin = b * (1.0 - 3.0 * theta) + c * (1.0 - theta) - 2.0 * m * theta
    root = np.sqrt(np.maximum(lin * lin + 8.0 * n * b * theta * (1.0 - theta), 0.0))
    return np.clip((lin + root) / (4.0 * n), max(0.0, -theta), (1.0 - theta) / 2.0)


def _trinomial_loglik(b, c, n, lost, won):
    m = n - b - c
    tiny = 1e-300
    return (
        np.where(b > 0, b * np.log(np.maximum(lost, tiny)), 0.0)
        + np.where(c > 0, c * np.log(np.maximum(won, tiny)), 0.0)
        + np.where(m > 0, m * np.log(np.maximum(1.0 - lost - won, tiny)), 0.0)
    )


def alternative_swaps(d, margin, q, alpha=0.05):
    """Swap decisions (bool per trial) of each alternative bound on per-item mean differences *d* (trials, items).

    Pass/fail methods use b = Σ max(-dᵢ, 0) items lost and c = Σ max(dᵢ, 0) items won (exact counts when
    every item repeats one answer; fractional for the few that vary)."""
    from scipy.special import ndtri

    n = d.shape[1]
    weights = np.ones(n)
    theta = -margin / 100.0
    z = float(ndtri(1.0 - alpha))
    _diff, lower, _upper = clustered_difference_bounds(d, weights, q)
    b = np.sum(np.maximum(-d, 0.0), axis=1)
    c = np.sum(np.maximum(d, 0.0), axis=1)
    lost = _tango_rmle(b, c, n, theta)
    null_sd = np.sqrt(n * (2.0 * lost + theta - theta * theta))
    with np.errstate(divide="ignore", invalid="ignore"):
        tango = (c - b - n * theta) / null_sd
        tango_half = (c - b + 0.5 - n * theta) / null_sd
    lr = 2.0 * (_trinomial_loglik(b, c, n, b / n, c / n) - _trinomial_loglik(b, c, n, lost, lost + theta))
    signed_lr = np.where(c - b > n * theta, 1.0, -1.0) * np.sqrt(np.maximum(lr, 0.0))
    diff, variance = clustered_moments(d, weights)
    studentized = (diff - theta) / np.sqrt(np.maximum(variance, 1.0 / n**2))
    return {
        "library: score bound, worst-case mass at ±1, t": lower > -margin,
        "Tango score on lost/won items, z": tango > z,
        "signed likelihood ratio (same model), z": signed_lr > z,
        "Tango score, half-item continuity shift": tango_half > z,
        "studentized, variance floor 1/n², t": studentized > q,
        "studentized, floor 1/n², q = 2.10 (tuned)": studentized > 2.10,
    }


def best_valid_power(items, margin, discordant, alpha=0.05):
    """Power of the most powerful (randomised) test of 'candidate worse by margin' against a truly equal
    candidate with P(lost) = P(won) = *discordant*, among tests whose false-swap rate is ≤ alpha for every
    rate of discordant items (one pass/fail pair per item; a linear program over the test's rejection
    probability per (lost, won) count). No method on such data can do better."""
    from scipy.optimize import linprog

    top = 40
    lost, won = (x.ravel() for x in np.meshgrid(np.arange(top + 1), np.arange(top + 1), indexing="ij"))
    ok = lost + won <= items
    lost, won = lost[ok], won[ok]

    def probability(p_lost, p_won):
        return _trinomial_probability(items, lost, won, p_lost, p_won)

    delta = margin / 100.0
    nulls = np.concatenate([np.linspace(0.0, 0.1, 401), np.linspace(0.1, (1.0 - delta) / 2.0 - 1e-3, 200)])
    sizes = np.array([probability(p_won + delta, p_won) for p_won in nulls])
    res = linprog(-probability(discordant, discordant), A_ub=sizes, b_ub=np.full(nulls.size, alpha), bounds=(0, 1))
    return -float(res.fun)


def _trinomial_probability(items, lost, won, p_lost, p_won):
    from scipy.special import gammaln

    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = (
            gammaln(items + 1) - gammaln(lost + 1) - gammaln(won + 1) - gammaln(items - lost - won + 1)
            + (np.where(lost > 0, lost * np.log(p_lost), 0.0) if p_lost > 0 else np.where(lost > 0, -np.inf, 0.0))
            + (np.where(won > 0, won * np.log(p_won), 0.0) if p_won > 0 else np.where(won > 0, -np.inf, 0.0))
            + (items - lost - won) * np.log(1.0 - p_lost - p_won)
        )  # fmt: skip
    return np.where(lost + won <= items, np.exp(log_p), 0.0)


def tango_worst_size(items, margin, alpha=0.05):
    """Exact false-swap rate of Tango's score test on *items* pass/fail pairs, worst over the rate of discordant
    items, for a candidate worse by exactly *margin* pp."""
    from scipy.special import ndtri

    lost, won = (x.ravel().astype(np.float64) for x in np.meshgrid(np.arange(81), np.arange(81), indexing="ij"))
    theta = -margin / 100.0
    p_lost = _tango_rmle(lost, won, items, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        swap = (won - lost - items * theta) / np.sqrt(items * (2.0 * p_lost + theta - theta * theta)) > ndtri(1 - alpha)
    nulls = np.linspace(0.0, (1.0 + theta) / 2.0 - 1e-3, 1601)
    return max(float(_trinomial_probability(items, lost, won, p - theta, p)[swap].sum()) for p in nulls)


def alternatives(args):
    """Print the alternatives table (fixed-15 design): swap rates per method and cell."""
    rng = np.random.default_rng(args.seed)
    weights = np.ones(args.items)
    q = float(item_quantile(args.alpha, weights))
    cells = []
    for agreement in (args.agreement, 1.0):
        cell_args = argparse.Namespace(**{**vars(args), "agreement": agreement})
        for margin in args.margins:
            for model in args.models:
                for name, shift, loss in (
                    ("equal", 0.0, "spread"),
                    ("-margin, spread", -margin, "spread"),
                    ("-margin, few", -margin, "concentrated"),
                ):
                    if shift == 0.0 and agreement != args.agreement:
                        continue
                    swaps = {}
                    done = 0
                    while done < args.trials:
                        n = min(max(1, CHUNK_CELLS // args.items), args.trials - done)
                        base, cand = simulate_scores(model, n, args.items, shift, cell_args, rng, loss)
                        d = cand.mean(axis=1) - base.mean(axis=1)
                        for method, swapped in alternative_swaps(d, margin, q, args.alpha).items():
                            swaps[method] = swaps.get(method, 0) + int(swapped.sum())
                        done += n
                    cells.append((agreement, margin, model, name, {k: v / done for k, v in swaps.items()}))
    methods = list(cells[0][4])
    print(
        f"fixed-15, {args.trials} trials per cell; 'equal': share swapped (1 - missed-swap) at the largest margin; "
        "'false-swap': the worst cell (model x spread/few) per margin, at the table's agreement and at agreement 1"
    )
    top = max(args.margins)
    agreements = (args.agreement, 1.0)
    head = [f"equal {m}, {top:g}pp" for m in args.models] + [
        f"fs {m:g}pp a={a:g}" for a in agreements for m in args.margins
    ]
    print(f"\n{'method':<46} " + " ".join(f"{h:>15}" for h in head))
    for method in methods:
        row = [
            rates[method]
            for agreement, margin, model, name, rates in cells
            for m in args.models
            if name == "equal" and margin == top and model == m
        ]
        for a in agreements:
            for m in args.margins:
                row.append(
                    max(
                        rates[method]
                        for agreement, margin, _model, name, rates in cells
                        if name != "equal" and agreement == a and margin == m
                    )
                )
        print(f"{method:<46} " + " ".join(f"{x:15.3f}" for x in row))
    a = args.mean_p * args.concentration
    mean_sq = a * (a + 1.0) / (args.concentration * (args.concentration + 1.0))
    discordant = (1.0 - args.agreement) * (args.mean_p - mean_sq)
    print(
        f"\nbest test valid for every discordance rate, {args.items} pass/fail pairs, "
        f"P(lost) = P(won) = {discordant:.4f} (a bound for every method, not a method):"
    )
    for margin in args.margins:
        power = best_valid_power(args.items, margin, discordant)
        print(f"  margin {margin:g} pp: swaps a truly equal candidate {power:.3f}, misses {1.0 - power:.3f}")
    # Relaxed bounds for the two repeat models: a test also told the exact effect of what is not one repeated
    # answer per item (greedy: which items vary, and that they are neutral; cache: the cold first iteration's
    # true effect) faces pass/fail pairs with a shifted margin, so these bound every real test from above.
    stable = round(args.items * args.greedy)
    for margin in args.margins:
        greedy = best_valid_power(stable, margin * args.items / stable, discordant)
        cache = best_valid_power(args.items, margin * MAX_ITERATIONS / (MAX_ITERATIONS - 1), discordant)
        print(
            f"  margin {margin:g} pp, relaxed: greedy ({stable} stable items) {greedy:.3f}, "
            f"cache (first iteration's effect known) {cache:.3f}"
        )
    top = max(args.margins)
    needed = args.items
    while best_valid_power(needed, top, discordant) < 1.0 - GOAL_MISSED_SWAP and needed < 10 * args.items:
        needed += 5
    print(f"  margin {top:g} pp: the bound reaches {1.0 - GOAL_MISSED_SWAP:.0%} swaps at {needed} items (steps of 5)")
    print(
        f"Tango's score on {args.items} pass/fail pairs, margin {top:g} pp: worst false-swap rate over the rate of "
        f"discordant items {tango_worst_size(args.items, top, args.alpha):.4f} (exact)"
    )


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
    parser.add_argument("--alternatives", action="store_true", help="compare other bounds instead (see above)")
    args = parser.parse_args(argv)
    if args.alternatives:
        alternatives(args)
        return

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
