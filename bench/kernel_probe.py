"""Kernel speed probe: fastloss against the machine's limits and PyTorch, in ONE process.

Run from the repository root:  PYTHONPATH=$PWD python bench/kernel_probe.py [--list] [case ...]

For each case it prints the fastloss time (best of a few repeats), the time of a 2-thread
memcpy of the same bytes (fastloss._core.parallel_copy; for value-only cases a 2-thread
read-only pass, fastloss._core.parallel_read), and PyTorch's time for the same computation,
with the ratios.
Not part of the package and not a test: a tool for the kernel work.
"""
import sys
import time

import numpy as np
import torch

import fastloss
from fastloss import _core

THREADS = 2
torch.set_num_threads(THREADS)


def best(fn, reps=7, min_time=0.05):
    fn()
    ts = []
    for _ in range(reps):
        n = 0
        t0 = time.perf_counter()
        while True:
            fn()
            n += 1
            t = time.perf_counter() - t0
            if t >= min_time:
                break
        ts.append(t / n)
    return min(ts)


def memcpy_time(a):
    dst = np.empty_like(a)
    return best(lambda: _core.parallel_copy(a, dst, THREADS))


def read_time(a):
    return best(lambda: _core.parallel_read(a, THREADS))


def softmax_case(shape, dtype=np.float32, axis=-1, value_only=False, fresh=False, **opts):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    tshape = tuple(s for i, s in enumerate(shape) if i != (axis % len(shape)))
    y = rng.integers(0, C, tshape)
    out = np.empty_like(x)
    fo = {k: v for k, v in opts.items()}
    if value_only:
        f = lambda: fastloss.softmax_cross_entropy(x, y, axis=axis, n_threads=THREADS, **fo)
    elif fresh:
        f = lambda: fastloss.softmax_cross_entropy_value_and_grad(x, y, axis=axis,
                                                                  n_threads=THREADS, **fo)
    else:
        f = lambda: fastloss.softmax_cross_entropy_value_and_grad(x, y, axis=axis, out=out,
                                                                  n_threads=THREADS, **fo)
    tx = torch.from_numpy(x.copy())
    ty = torch.from_numpy(y)
    tax = axis % len(shape)
    if tax != 1 and len(shape) > 2:
        raise ValueError("torch baseline needs classes on axis 1")
    softcap = opts.get("softcap")
    z_loss = opts.get("z_loss", 0.0)

    def torch_fn():
        if value_only:
            with torch.no_grad():
                torch.nn.functional.cross_entropy(tx, ty)
            return
        xr = tx.detach().requires_grad_(True)
        z = softcap * torch.tanh(xr / softcap) if softcap else xr
        loss = torch.nn.functional.cross_entropy(z, ty)
        if z_loss:
            loss = loss + z_loss * (torch.logsumexp(z, dim=1) ** 2).mean()
        loss.backward()
    limit = read_time(x) if value_only else memcpy_time(x)
    return f, torch_fn, limit


def sigmoid_case(shape, focal=False):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    t = (rng.random(shape) < 0.3).astype(np.float32)
    out = np.empty_like(x)
    kw = {"focal_gamma": 2.0, "focal_alpha": 0.25} if focal else {}
    f = lambda: fastloss.sigmoid_cross_entropy_value_and_grad(x, t, out=out, n_threads=THREADS,
                                                              **kw)
    tx, tt = torch.from_numpy(x.copy()), torch.from_numpy(t)

    def torch_fn():
        xr = tx.detach().requires_grad_(True)
        if focal:
            p = torch.sigmoid(xr)
            ce = torch.nn.functional.binary_cross_entropy_with_logits(xr, tt, reduction="none")
            pt = p * tt + (1 - p) * (1 - tt)
            loss = ce * ((1 - pt) ** 2.0)
            loss = (0.25 * tt + 0.75 * (1 - tt)) * loss
            loss = loss.mean()
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(xr, tt)
        loss.backward()
    return f, torch_fn, memcpy_time(x)


def mse_case(n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    t = rng.standard_normal(n).astype(np.float32)
    out = np.empty_like(x)
    f = lambda: fastloss.mse_value_and_grad(x, t, out=out, n_threads=THREADS)
    tx, tt = torch.from_numpy(x.copy()), torch.from_numpy(t)

    def torch_fn():
        xr = tx.detach().requires_grad_(True)
        torch.nn.functional.mse_loss(xr, tt).backward()
    return f, torch_fn, memcpy_time(x)


def hinge_case(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, shape[1], shape[0])
    out = np.empty_like(x)
    f = lambda: fastloss.hinge_value_and_grad(x, y, multiclass="weston_watkins", out=out,
                                              n_threads=THREADS)
    tx, ty = torch.from_numpy(x.copy()), torch.from_numpy(y)

    def torch_fn():
        xr = tx.detach().requires_grad_(True)
        torch.nn.functional.multi_margin_loss(xr, ty).backward()
    return f, torch_fn, memcpy_time(x)


CASES = {
    "sce_2048x32768": lambda: softmax_case((2048, 32768)),
    "sce_16384x1000": lambda: softmax_case((16384, 1000)),
    "sce_262144x10": lambda: softmax_case((262144, 10)),
    "sce_nchw_axis1": lambda: softmax_case((16, 21, 256, 256), axis=1),
    "sce_value_2048x32768": lambda: softmax_case((2048, 32768), value_only=True),
    "sce_value_16384x1000": lambda: softmax_case((16384, 1000), value_only=True),
    "sce_value_262144x10": lambda: softmax_case((262144, 10), value_only=True),
    "sce_value_nchw_axis1": lambda: softmax_case((16, 21, 256, 256), axis=1, value_only=True),
    "sce_f64_2048x8192": lambda: softmax_case((2048, 8192), dtype=np.float64),
    "sce_softcap_zloss": lambda: softmax_case((2048, 32768), softcap=30.0, z_loss=1e-4),
    "sce_default_fresh": lambda: softmax_case((2048, 32768), fresh=True),
    "sig_262144x100": lambda: sigmoid_case((262144, 100)),
    "sig_focal_262144x100": lambda: sigmoid_case((262144, 100), focal=True),
    "mse_16M": lambda: mse_case(1 << 24),
    "hinge_ww_65536x100": lambda: hinge_case((65536, 100)),
}


def main(names):
    names = names or list(CASES)
    print("simd %s, threads %d" % (_core.simd_in_use(), THREADS))
    print("%-22s %10s %10s %8s %10s %8s" % ("case", "fastloss", "limit", "x limit", "torch",
                                          "x torch"))
    for name in names:
        f, tf, limit = CASES[name]()
        t = best(f)
        tt = best(tf, reps=3)
        print("%-22s %8.2fms %8.2fms %8.2f %8.2fms %8.2f" % (
            name, t * 1e3, limit * 1e3, t / limit, tt * 1e3, tt / t), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if "-h" in args or "--help" in args or "--list" in args:
        print(__doc__)
        print("cases:", " ".join(CASES))
        sys.exit(0)
    unknown = [a for a in args if a not in CASES]
    if unknown:
        sys.exit("unknown case(s) %s; cases: %s" % (" ".join(unknown), " ".join(CASES)))
    main(args)
