"""The cost of the tiny call, in one process: fastloss's value of an 8x10 float32 batch
against a NumPy ufunc call on the same array and PyTorch's forward on the same tensors.

    python bench/tiny_call.py [--repeat 21] [--number 20000] [--json]

Each figure is the median over ``repeat`` rounds of the mean time of ``number`` calls
(timeit), in microseconds; the ratios are of those medians.  Targets: fastloss <= 3x the
ufunc call, and PyTorch's forward >= 5x fastloss.
"""

import argparse
import json
import statistics
import sys
import timeit

import numpy as np

import fastloss


def measure(fn, repeat, number):
    fn()                                     # warm up (first call: imports, caches)
    times = timeit.repeat(fn, repeat=repeat, number=number)
    return statistics.median(times) / number * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--number", type=int, default=20000)
    p.add_argument("--shape", default="8x10")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    n, c = (int(v) for v in args.shape.split("x"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    t = rng.uniform(size=(n, c)).astype(np.float32)
    r, k = args.repeat, args.number
    sce, sig, mse = (fastloss.softmax_cross_entropy, fastloss.sigmoid_cross_entropy,
                     fastloss.mse)
    out = {
        "shape": [n, c],
        "fastloss.softmax_cross_entropy": measure(lambda: sce(x, y), r, k),
        "fastloss.sigmoid_cross_entropy": measure(lambda: sig(x, t), r, k),
        "fastloss.mse": measure(lambda: mse(x, t), r, k),
        "np.exp": measure(lambda: np.exp(x), r, k),
        "np.add": measure(lambda: np.add(x, x), r, k),
    }
    try:
        import torch
        torch.set_num_threads(1)
        xt, yt, tt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(t)
        F = torch.nn.functional
        with torch.no_grad():
            out["torch cross_entropy"] = measure(lambda: F.cross_entropy(xt, yt), r, k)
            out["torch bce_with_logits"] = measure(
                lambda: F.binary_cross_entropy_with_logits(xt, tt), r, k)
            out["torch mse_loss"] = measure(lambda: F.mse_loss(xt, tt), r, k)
        out["torch"] = torch.__version__
    except ImportError:                      # pragma: no cover
        pass
    fl = out["fastloss.softmax_cross_entropy"]
    out["ratio fastloss / np.exp"] = fl / out["np.exp"]
    out["ratio fastloss / np.add"] = fl / out["np.add"]
    if "torch cross_entropy" in out:
        out["ratio torch / fastloss"] = out["torch cross_entropy"] / fl
        out["ratio torch bce / fastloss sigmoid"] = (out["torch bce_with_logits"]
                                                    / out["fastloss.sigmoid_cross_entropy"])
        out["ratio torch mse / fastloss mse"] = out["torch mse_loss"] / out["fastloss.mse"]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print("%-40s %s" % (key, "%.3f" % value if isinstance(value, float) else value))
    return 0


if __name__ == "__main__":
    sys.exit(main())
