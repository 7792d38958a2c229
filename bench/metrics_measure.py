"""The cost of evaluation metrics in the kernel's pass; a script, not a test.

    python bench/metrics_measure.py                 # softmax CE 16384x1000 and 2048x32768 float32
    python bench/metrics_measure.py --smoke         # tiny sizes: checks that the script runs
    python bench/metrics_measure.py --repeat 5 --json out.json

For each shape, on the same float32 logits and int64 labels (best of ``--repeat`` runs):

- ``loss only``: ``Evaluator("softmax_cross_entropy")`` (loss, accuracy, top-5: the kernel's
  hit counts), one ``update`` and ``result``;
- ``metrics="all"``: the same with every softmax metric (accuracy, top-5, nll,
  perplexity, brier, ece, mce, entropy, per-class precision / recall / f1, macro-F1,
  balanced accuracy, and the confusion matrix for C <= 1024): target <= 1.3x loss only;
- ``scikit-learn``: the same metrics from the same logits with scikit-learn (softmax in
  NumPy float64, ``accuracy_score``, ``top_k_accuracy_score``, ``log_loss``,
  ``precision_recall_fscore_support``, ``f1_score``, ``balanced_accuracy_score``,
  ``confusion_matrix``) plus NumPy for Brier, entropy and ECE/MCE (torchmetrics' binning);
- ``torchmetrics`` (when installed): ``MulticlassAccuracy`` (top-1, top-5),
  ``MulticlassCalibrationError`` (l1, max), ``MulticlassPrecision/Recall/F1Score``
  (``average=None``), ``MulticlassConfusionMatrix`` on the same logits (as a tensor, no copy).

No assertion: the script prints a table, and ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

try:
    import fastloss  # noqa: F401
except ImportError:          # run from a source tree that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastloss
from fastloss import Evaluator
from fastloss.bench.metric_impls import sklearn_metrics
from fastloss.bench.metric_impls import torchmetrics_metrics as _tm_metrics

SHAPES = ((16384, 1000), (2048, 32768))
SMOKE_SHAPES = ((512, 100), (64, 2048))


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def torchmetrics_metrics(x, y):
    import torch
    return _tm_metrics(torch, torch.from_numpy(x), torch.from_numpy(y))


def measure(n, c, repeat, with_refs=True):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c), dtype=np.float32) * 2
    y = rng.integers(0, c, n)
    x[np.arange(n), y] += 2.0
    # loss only and all metrics alternate, so that other load hits both alike
    loss_only = every = float("inf")
    for _ in range(repeat):
        loss_only = min(loss_only, best_of(
            lambda: Evaluator("softmax_cross_entropy").update(x, y).result(), 1))
        every = min(every, best_of(
            lambda: Evaluator("softmax_cross_entropy", metrics="all").update(x, y).result(), 1))
    row = {"shape": [n, c], "loss_only_s": loss_only, "all_metrics_s": every,
           "ratio": every / loss_only, "gb_per_s_loss_only": x.nbytes / loss_only / 1e9}
    mine = Evaluator("softmax_cross_entropy", metrics="all").update(x, y).result().metrics
    if with_refs:
        try:
            row["sklearn_s"] = best_of(lambda: sklearn_metrics(x, y), 1)
            ref = sklearn_metrics(x, y)
            row["max_abs_diff_vs_sklearn"] = max(
                float(np.max(np.abs(np.asarray(mine[k], dtype=np.float64)
                                    - np.asarray(ref[k], dtype=np.float64))))
                for k in ref)
        except ImportError:
            row["sklearn_s"] = None
        try:
            import torchmetrics  # noqa: F401
            row["torchmetrics_s"] = best_of(lambda: torchmetrics_metrics(x, y), 1)
        except ImportError:
            row["torchmetrics_s"] = None
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--no-refs", action="store_true", help="skip scikit-learn / torchmetrics")
    a = ap.parse_args(argv)
    rows = [measure(n, c, a.repeat, not a.no_refs)
            for n, c in (SMOKE_SHAPES if a.smoke else SHAPES)]
    info = {"machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": fastloss._core.default_threads(),
            "simd": fastloss._core.simd_in_use(), "repeat": a.repeat}
    print("softmax CE float32, best of %d (%s, %d CPUs, SIMD %s)"
          % (a.repeat, info["machine"], info["cpus"], info["simd"]))
    print("%-12s %12s %12s %7s %12s %14s %10s"
          % ("shape", "loss only", "all metrics", "ratio", "scikit-learn", "torchmetrics",
             "max |diff|"))
    for r in rows:
        def ms(v):
            return "-" if v is None else "%.1f ms" % (1e3 * v)
        print("%-12s %12s %12s %6.2fx %12s %14s %10s"
              % ("%dx%d" % tuple(r["shape"]), ms(r["loss_only_s"]), ms(r["all_metrics_s"]),
                 r["ratio"], ms(r.get("sklearn_s")), ms(r.get("torchmetrics_s")),
                 "%.1e" % r["max_abs_diff_vs_sklearn"] if "max_abs_diff_vs_sklearn" in r
                 else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
