"""The measures of batch evaluation at scale (``fastloss eval``, Dask); a script, not a test.

    python bench/eval_measure.py                  # both measures, full size (needs ~9 GiB disk+RAM)
    python bench/eval_measure.py --smoke          # tiny sizes: checks that the script runs
    python bench/eval_measure.py --skip-dask --gib 2 --dir /data/tmp --json out.json

1. ``fastloss eval`` on a GIB GiB float32 .npy of logits (1000 classes, int64 labels beside it),
   run as a child process under a memory cap of CAP (``RLIMIT_AS``, the address space: stricter
   than RSS, so nothing mapped or allocated may exceed it), against the in-memory throughput
   (the whole array loaded, one ``Evaluator.update`` call: the same kernel with top-5 hits).
   Reports the child's peak RSS and both throughputs.  Target: peak RSS < 1 GiB and >= 70%
   of the in-memory throughput.  The file is freshly written, so it sits in the page cache
   (warm): the figure measures fastloss eval, not the disk.
2. ``fastloss.dask.evaluate`` on a ``LocalCluster`` with 2 worker processes (1 thread each) over
   ELEMENTS float32 logits (1000 classes), the blocks persisted on the workers first, against
   the in-memory call on the same data in this process (all cores).  Target: >= 50%.

Timings are the best of ``--repeat`` runs.  No assertion: the script prints the figures, and
``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import fastloss  # noqa: F401
except ImportError:          # run from a source tree that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N_CLASSES = 1000


def write_logits(path_x, path_y, n_bytes, n_classes=N_CLASSES, seed=0, block_rows=16384):
    """A float32 .npy of (n, n_classes) standard-normal logits written block by block (bounded
    memory), and int64 labels; returns the number of rows."""
    n = max(1, n_bytes // (4 * n_classes))
    rng = np.random.default_rng(seed)
    with open(path_x, "wb") as f:
        np.lib.format.write_array_header_2_0(
            f, {"descr": np.dtype(np.float32).str, "fortran_order": False,
                "shape": (n, n_classes)})
        for i in range(0, n, block_rows):
            rows = min(block_rows, n - i)
            rng.standard_normal((rows, n_classes), dtype=np.float32).tofile(f)
    np.save(path_y, rng.integers(0, n_classes, n))
    return n


def _best(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def in_memory_once(x, y, n_threads=None):
    """Seconds and result of one Evaluator.update over the whole arrays, in RAM."""
    import fastloss
    t0, cpu0 = time.perf_counter(), time.process_time()
    res = fastloss.Evaluator("softmax_cross_entropy", top_k=5, n_threads=n_threads) \
        .update(x, y).result()
    return time.perf_counter() - t0, res, time.process_time() - cpu0


def cli_run(path_x, path_y, cap_bytes, memory_arg, extra=()):
    """Run `python -m fastloss eval` in a child that caps its own address space
    (RLIMIT_AS = cap) before it imports fastloss; returns its JSON (with its own peak RSS,
    VmHWM) and the wall time."""
    argv = ["eval", str(path_x), str(path_y), "--json", "--no-progress", "--memory", memory_arg,
            *extra]
    code = ("import resource, runpy, sys\n"
            "cap = %d\n"
            "if cap:\n"
            "    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))\n"
            "sys.argv = ['fastloss'] + %r\n"
            "runpy.run_module('fastloss', run_name='__main__', alter_sys=True)\n"
            % (cap_bytes or 0, argv))
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("fastloss eval failed (%d): %s" % (p.returncode, p.stderr.decode()))
    res = json.loads(p.stdout)
    res["wall_seconds"] = wall
    return res


def measure_file(directory, n_bytes, cap_bytes, repeat=3, keep=False, n_threads=None):
    """Write the file, then alternate the in-memory call and the capped `fastloss eval` child
    `repeat` times (interleaved, so that a busy machine slows both alike); best of each."""
    path_x = os.path.join(directory, "eval_logits.npy")
    path_y = os.path.join(directory, "eval_labels.npy")
    t0 = time.perf_counter()
    n = write_logits(path_x, path_y, n_bytes)
    written = time.perf_counter() - t0
    try:
        x, y = np.load(path_x), np.load(path_y)
        mem_times, mem_cpu, runs, mem_res = [], [], [], None
        for _ in range(repeat):
            sec, mem_res, cpu = in_memory_once(x, y, n_threads)
            mem_times.append(sec)
            mem_cpu.append(cpu)
            extra = ["--threads", str(n_threads)] if n_threads else []
            runs.append(cli_run(path_x, path_y, cap_bytes, str(cap_bytes), extra))
        nbytes = x.nbytes
        del x, y
        mem_best = min(mem_times)
        best = min(runs, key=lambda r: r["seconds"])
        peak = max(r["peak_rss_bytes"] for r in runs)
        return {
            "rows": n, "file_bytes": os.path.getsize(path_x), "write_seconds": written,
            "n_threads": n_threads, "load_average": os.getloadavg(),
            "cap_bytes": cap_bytes, "cap_kind": "RLIMIT_AS (address space)",
            "in_memory": {"seconds": mem_best, "all_seconds": mem_times,
                          "cpu_seconds": min(mem_cpu), "all_cpu_seconds": mem_cpu,
                          "rows_per_second": n / mem_best, "bytes_per_second": nbytes / mem_best,
                          "loss": mem_res.loss},
            "cli": {"seconds": best["seconds"], "all_seconds": [r["seconds"] for r in runs],
                    "cpu_seconds": min(r["cpu_seconds"] for r in runs),
                    "all_cpu_seconds": [r["cpu_seconds"] for r in runs],
                    "wall_seconds": best["wall_seconds"],
                    "rows_per_second": best["rows_per_second"],
                    "bytes_per_second": best["bytes_per_second"],
                    "chunks": best["chunks"], "chunk_rows": best["chunk_rows"],
                    "loss": best["loss"], "peak_rss_bytes": peak},
            "ratio_loop": mem_best / best["seconds"],
            "ratio_wall": mem_best / best["wall_seconds"],
            "ratio_cpu": min(mem_cpu) / min(r["cpu_seconds"] for r in runs),
            "same_loss_rel_diff": abs(best["loss"] - mem_res.loss) / abs(mem_res.loss),
        }
    finally:
        if not keep:
            for p in (path_x, path_y):
                if os.path.exists(p):
                    os.remove(p)


def measure_dask(n_elements, repeat=3, n_classes=N_CLASSES, blocks=8, n_threads=None):
    import dask.array as da
    from dask import distributed

    import fastloss
    import fastloss.dask as fdask

    n = max(1, n_elements // n_classes)
    rows = -(-n // blocks)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        x = da.random.default_rng(0).standard_normal((n, n_classes), chunks=(rows, n_classes),
                                                     dtype=np.float32)
        y = da.random.default_rng(1).integers(0, n_classes, n, chunks=rows)
        x, y = client.persist([x, y])
        distributed.wait([x, y])
        xn, yn = client.compute([x, y], sync=True)
        fdask.evaluate(x, y, top_k=5)                                  # warm the workers
        dask_times, mem_times = [], []
        for _ in range(max(repeat, 3 * repeat if n_elements >= 10**7 else 1)):  # interleaved
            sec, res = _best(lambda: fdask.evaluate(x, y, top_k=5), 1)
            dask_times.append(sec)
            sec, mem = _best(lambda: fastloss.Evaluator("softmax_cross_entropy", top_k=5,
                                                        n_threads=n_threads)
                             .update(xn, yn).result(), 1)
            mem_times.append(sec)
    seconds, mem_seconds = min(dask_times), min(mem_times)
    return {"elements": n * n_classes, "rows": n, "blocks": blocks, "n_threads": n_threads,
            "load_average": os.getloadavg(),
            "dask_seconds": seconds, "dask_rows_per_second": n / seconds,
            "in_memory_seconds": mem_seconds, "in_memory_rows_per_second": n / mem_seconds,
            "ratio": mem_seconds / seconds, "all_dask_seconds": dask_times,
            "all_in_memory_seconds": mem_times,
            "same_loss_rel_diff": abs(res.loss - mem.loss) / abs(mem.loss)}


def _gib(b):
    return "%.2f GiB" % (b / 2**30)


def report(out):
    lines = ["fastloss eval measures on %s, %d CPUs, Python %s"
             % (platform.machine(), os.cpu_count(), platform.python_version())]
    f = out.get("file")
    if f:
        m, c = f["in_memory"], f["cli"]
        lines += [
            "1. fastloss eval, %s float32 .npy (%d x %d), cap %s (%s):"
            % (_gib(f["file_bytes"]), f["rows"], N_CLASSES, _gib(f["cap_bytes"]),
               f["cap_kind"]),
            "   in memory : %.3f s  %.4g rows/s  %.2f GB/s"
            % (m["seconds"], m["rows_per_second"], m["bytes_per_second"] / 1e9),
            "   eval (loop): %.3f s  %.4g rows/s  %.2f GB/s   ratio %.0f%% (target >= 70%%)"
            % (c["seconds"], c["rows_per_second"], c["bytes_per_second"] / 1e9,
               100 * f["ratio_loop"]),
            "   eval (wall, with start-up): %.3f s   ratio %.0f%%"
            % (c["wall_seconds"], 100 * f["ratio_wall"]),
            "   CPU time (robust to a busy machine): in memory %.3f s, eval %.3f s: ratio %.0f%%"
            % (m["cpu_seconds"], c["cpu_seconds"], 100 * f["ratio_cpu"]),
            "   peak RSS %s (target < 1 GiB), %d chunks of %d rows; loss rel. diff %.1e"
            % (_gib(c["peak_rss_bytes"]), c["chunks"], c["chunk_rows"],
               f["same_loss_rel_diff"]),
            "   threads %s; load average at the end %s"
            % (f["n_threads"] or "all", ", ".join("%.1f" % v for v in f["load_average"])),
        ]
    d = out.get("dask")
    if d:
        lines += [
            "2. fastloss.dask.evaluate, %d elements (%d x %d) in %d blocks, LocalCluster "
            "2 processes x 1 thread:" % (d["elements"], d["rows"], N_CLASSES, d["blocks"]),
            "   in memory %.3f s (threads %s), dask %.3f s: ratio %.0f%% (target >= 50%%); "
            "loss rel. diff %.1e" % (d["in_memory_seconds"], d["n_threads"] or "all",
                                     d["dask_seconds"], 100 * d["ratio"],
                                     d["same_loss_rel_diff"]),
            "   load average at the end %s" % ", ".join("%.1f" % v for v in d["load_average"]),
        ]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=4.0, help="size of the .npy of logits")
    p.add_argument("--cap", default="1GiB", help="memory cap of the fastloss eval child")
    p.add_argument("--elements", type=float, default=1e8, help="elements of the Dask array")
    p.add_argument("--dir", default=None, help="where to write the file (default: a temp dir)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None,
                   help="threads of the in-memory calls and of fastloss eval (default: all)")
    p.add_argument("--skip-file", action="store_true")
    p.add_argument("--skip-dask", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    from fastloss.eval_cli import parse_size
    cap = parse_size(a.cap)
    n_bytes = int(a.gib * 2**30)
    if a.smoke:
        n_bytes, a.elements, a.repeat = 8 << 20, 1e6, 1
    out = {}
    if not a.skip_file:
        if a.dir:
            out["file"] = measure_file(a.dir, n_bytes, cap, a.repeat, a.keep, a.threads)
        else:
            with tempfile.TemporaryDirectory() as d:
                out["file"] = measure_file(d, n_bytes, cap, a.repeat, a.keep, a.threads)
    if not a.skip_dask:
        try:
            out["dask"] = measure_dask(int(a.elements), a.repeat, n_threads=a.threads)
        except ImportError as e:
            print("dask measure skipped: %s" % e, file=sys.stderr)
    print(report(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
