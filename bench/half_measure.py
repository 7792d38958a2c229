"""Half-precision measures; a script, not a test.

    python bench/half_measure.py                 # full size (2048 x 32768)
    python bench/half_measure.py --smoke         # tiny sizes: checks that the script runs
    python bench/half_measure.py --json out.json

1. softmax cross-entropy value and gradient (``out=`` preallocated) on 2048 x 32768 logits in
   float32, float16 and bfloat16 (integer labels), and the workaround without half support:
   ``x.astype(np.float32)`` followed by the float32 call.  Targets: a half call <= 0.8x the
   float32 time and >= 3x faster than the workaround.
2. sigmoid cross-entropy value and gradient on the same logits in the three dtypes.
3. ``fastloss.torch.cross_entropy`` forward + backward on bfloat16 logits against
   ``torch.nn.functional.cross_entropy`` on the same tensor.  Target: >= 8x.

Timings are the best of ``--repeat`` rounds, the cases interleaved in each round, all threads.  No assertion: the script prints the
figures, and ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import fastloss  # noqa: F401
except ImportError:          # run from a source tree that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastloss as fl


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=32768)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rows, args.classes, args.repeat = 16, 1000, 1
    import ml_dtypes
    rng = np.random.default_rng(0)
    n, c = args.rows, args.classes
    x32 = (rng.standard_normal((n, c), dtype=np.float32) * 3).astype(np.float32)
    y = rng.integers(0, c, n)
    t32 = (rng.random((n, c), dtype=np.float32) < 0.01).astype(np.float32)
    res = {"rows": n, "classes": c, "threads": fl._core.default_threads(),
           "simd": fl._core.simd_in_use()}
    dtypes = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    # every case is timed in the same rounds, interleaved (the best of each): a busy moment
    # of the machine then slows all cases alike instead of one
    cases = {}
    for name, dt in dtypes.items():
        x = x32.astype(dt)
        g = np.empty_like(x)
        t = t32.astype(dt)
        cases["softmax_vg_" + name] = (
            lambda x=x, g=g: fl.softmax_cross_entropy_value_and_grad(x, y, out=g))
        cases["sigmoid_vg_" + name] = (
            lambda x=x, t=t, g=g: fl.sigmoid_cross_entropy_value_and_grad(x, t, out=g))
        if name != "float32":
            g32 = np.empty(x.shape, np.float32)
            cases["softmax_vg_astype_" + name] = (
                lambda x=x, g32=g32: fl.softmax_cross_entropy_value_and_grad(
                    x.astype(np.float32), y, out=g32))
    if not args.skip_torch:
        import torch

        import fastloss.torch as flt
        xt = torch.from_numpy(x32).to(torch.bfloat16).requires_grad_(True)
        yt = torch.from_numpy(y)

        def step(f):
            def run():
                xt.grad = None
                f(xt, yt).backward()
            return run
        cases["torch_ce_bf16_fwd_bwd"] = step(torch.nn.functional.cross_entropy)
        cases["fastloss_torch_ce_bf16_fwd_bwd"] = step(flt.cross_entropy)
    times = {k: [] for k in cases}
    for fn in cases.values():
        fn()                                   # warm up (page faults, thread pool)
    for _ in range(args.repeat):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    for k, ts in times.items():
        res[k] = min(ts)
    for name in ("float16", "bfloat16"):
        res["ratio_vs_f32_" + name] = res["softmax_vg_" + name] / res["softmax_vg_float32"]
        res["speedup_vs_astype_" + name] = (res["softmax_vg_astype_" + name]
                                            / res["softmax_vg_" + name])
    if not args.skip_torch:
        res["torch_speedup_bf16"] = (res["torch_ce_bf16_fwd_bwd"]
                                     / res["fastloss_torch_ce_bf16_fwd_bwd"])
    for k, v in res.items():
        print("%-34s %s" % (k, ("%.4f" % v) if isinstance(v, float) else v))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
