"""Benchmark fastloss against the machine's limits and its baselines: ``fastloss bench``.

Each case (:mod:`.cases`: a loss by its public name, options, layout and sizes) is timed in
each form, in one process, beside:

* the machine's limit, measured in the same rounds: a memcpy of the predictions split over the
  threads for gradient forms, a read-only pass over them for value-only forms, and one NumPy
  ufunc call on the same array for the tiny call (:mod:`.baselines`);
* the baselines that are installed: PyTorch, JAX, scikit-learn, the NumPy reference and plain
  Python loops;
* the metrics cases (``metrics-*``): ``Evaluator(metrics="all")`` beside the loss-only
  Evaluator (its yardstick, "x loss only"), scikit-learn and torchmetrics computing the same
  metrics (:mod:`.metric_impls`).

The table reports fastloss's time, its ratio to the limit (fastloss / limit: 1 is the limit)
and each baseline's ratio to it (baseline / fastloss: above 1 fastloss is faster). The same
cases drive the pytest-benchmark suite in ``bench/``.

Layout: :mod:`.cases` (the case table and the one lookup of the public callables),
:mod:`.baselines` (fastloss, limits, baselines), :mod:`.harness` (timing, memory and load
probes, :func:`run`), :mod:`.report` (table and plot). :func:`main` is the command line,
:func:`run` the Python entry point (it returns the dict that ``--json`` writes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .baselines import (BASELINES, EVAL_LOSS, FASTLOSS, FASTLOSS_1T, FASTLOSS_OUT,
                        FASTLOSS_TORCH, LIMITS, MEMCPY, NPCALL, READ, Impl, build_impl, compare, impl_names, moved_bytes)
from .cases import (CASES, FORM_SHORT, FORMS, HALF_DTYPES, Case, Unavailable, case_dtype,
                    loss_function, loss_options, make_data, select_cases)
from .harness import Settings, headline, jsonable, run
from .report import format_table, write_plot

__all__ = ["CASES", "FORMS", "FORM_SHORT", "BASELINES", "LIMITS", "EVAL_LOSS", "FASTLOSS",
           "FASTLOSS_OUT", "FASTLOSS_1T", "FASTLOSS_TORCH", "HALF_DTYPES", "MEMCPY", "READ", "NPCALL", "Case",
           "Impl", "Unavailable", "Settings", "loss_function", "loss_options", "make_data",
           "case_dtype", "select_cases",
           "impl_names", "build_impl", "moved_bytes", "compare", "headline", "run",
           "format_table", "write_plot", "main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastloss bench",
        description="Time fastloss beside the machine's limits (memcpy, a read pass, a NumPy "
                    "call) and against PyTorch, JAX, scikit-learn, the NumPy reference and "
                    "plain Python (whichever are installed), in one process.")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer rounds (every case; about a minute)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="plot the ratios to the limits and to "
                   "PyTorch (needs matplotlib)")
    p.add_argument("--cases", metavar="PATTERN", help="comma-separated name patterns "
                   "(fnmatch or substring), e.g. 'softmax*,mse'")
    p.add_argument("--threads", type=int, metavar="N", help="n_threads for fastloss, the "
                   "limits, torch and sklearn (default: fastloss's default; all cores for the "
                   "others)")
    p.add_argument("--baselines", metavar="LIST", help=f"comma-separated subset of "
                   f"{','.join(BASELINES)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return p


def _print(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # e.g. `| head`: not an error of the benchmark
        sys.stdout = open(os.devnull, "w")


def main(argv=None) -> int:
    """``fastloss bench [options]``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.list:
        lines = []
        for c in select_cases(args.cases):
            opts = ", ".join(f"{k}={v!r}" for k, v in c.kwargs.items())
            lines.append(f"{c.name:<38} {c.loss}({opts}) {c.dtype} {'x'.join(map(str, c.shape))}"
                         f" (quick {'x'.join(map(str, c.quick_shape))})")
        _print("\n".join(lines))
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib, which is not installed: `pip install matplotlib` "
                  "(or drop --plot).", file=sys.stderr)
            return 2
    if args.threads is not None and args.threads < 1:
        print("fastloss bench: --threads must be >= 1", file=sys.stderr)
        return 2
    baselines = None
    if args.baselines is not None:
        baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    try:
        res = run(args.cases, quick=args.quick, n_threads=args.threads, baselines=baselines,
                  seed=args.seed, progress=not args.no_progress)
    except (RuntimeError, ValueError) as e:
        print(f"fastloss bench: {e}", file=sys.stderr)
        return 2
    _print(format_table(res))
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(jsonable(res), f, indent=1)
        os.replace(tmp, args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        write_plot(res, args.plot)
        print(f"wrote {args.plot}")
    # a case not run for want of an optional package (listed as NOT RUN) is no failure
    failed = any(row.get("fastloss_s") is None
                 and not all("skipped" in i and "error" not in i for i in row["impls"].values())
                 for row in res["results"])
    return 1 if failed else 0
