"""Threads: the result does not depend on n_threads (bitwise), and concurrent Python threads
(the GIL is released in the kernels) get the same bits as serial calls."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from .cases import DTYPES, REDUCTIONS, Case, assert_identical, call, public

DTYPE_IDS = [np.dtype(d).name for d in DTYPES]
N_THREADS = (1, 2, 3, 8)

# Big enough that every kernel goes parallel (1.5 million elements, 3000 rows), with options
# that exercise every code path of the reduction (weights, ignored rows, smoothing).
N, C = 3000, 500
BIG_CASES = [
    Case("softmax_cross_entropy", "big_all_options", (N, C), "labels_ignored",
         {"label_smoothing": 0.1}, {"weight": "classes", "sample_weight": "rows"}),
    Case("softmax_cross_entropy", "big_probs", (N, C), "probs", arrays={"weight": "classes"}),
    Case("softmax_cross_entropy", "big_axis1", (N // 10, C, 10), "labels", {"axis": 1}),
    Case("sigmoid_cross_entropy", "big_weights", (N, C), "probs01", {},
         {"weight": "col", "pos_weight": "last"}),
    Case("hinge", "big_binary", (N * C,), "pm1", arrays={"sample_weight": "pred"}),
    Case("hinge", "big_ovr", (N, C), "labels", arrays={"weight": "classes"}),
    Case("hinge", "big_ww", (N, C), "labels", {"multiclass": "weston_watkins", "squared": True}),
    Case("hinge", "big_cs", (N, C), "labels", {"multiclass": "crammer_singer"}),
    Case("mse", "big_weight", (N, C), "real", arrays={"weight": "last"}),
]
BIG_IDS = [case.id for case in BIG_CASES]


@pytest.fixture(scope="module")
def big_inputs():
    cache = {}

    def get(case, dtype):
        key = (case.id, np.dtype(dtype).name)
        if key not in cache:
            cache[key] = case.make(dtype)
        return cache[key]

    return get


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", BIG_CASES, ids=BIG_IDS)
def test_n_threads_gives_identical_bits(case, dtype, big_inputs):
    fl = public()
    pred, target, kwargs = big_inputs(case, dtype)
    for reduction in REDUCTIONS:
        serial = call(fl, case.loss, "value_and_grad", pred, target, kwargs,
                      reduction=reduction, n_threads=1)
        for n_threads in N_THREADS[1:] + (None,):
            parallel = call(fl, case.loss, "value_and_grad", pred, target, kwargs,
                            reduction=reduction, n_threads=n_threads)
            assert_identical(parallel, serial,
                             err_msg=f"{case.id} {reduction} n_threads={n_threads}")
        # the value form and the gradient form reduce the same way
        value, _ = call(fl, case.loss, "value", pred, target, kwargs, reduction=reduction,
                        n_threads=3)
        assert_identical((value, None), serial)


@pytest.mark.parametrize("case", BIG_CASES[:1] + BIG_CASES[3:4], ids=BIG_IDS[:1] + BIG_IDS[3:4])
def test_n_threads_with_out_is_pred(case, big_inputs):
    fl = public()
    pred, target, kwargs = big_inputs(case, np.float64)
    expected = call(fl, case.loss, "grad", pred, target, kwargs, n_threads=1)
    for n_threads in N_THREADS:
        buffer = pred.copy()
        result = call(fl, case.loss, "grad", buffer, target, kwargs, n_threads=n_threads,
                      out=buffer)
        assert result[1] is buffer
        assert_identical(result, expected)


@pytest.mark.parametrize("n_threads", [0, -1, 1.5, "2"])
def test_bad_n_threads(n_threads):
    with pytest.raises((ValueError, TypeError)):
        public().mse(np.zeros(3), np.zeros(3), n_threads=n_threads)


def test_concurrent_python_threads_match_serial_calls(big_inputs):
    """4 Python threads call every loss at once, several times; each result has the bits of the
    same call made serially."""
    fl = public()
    jobs = []
    for case in BIG_CASES:
        for dtype in DTYPES:
            pred, target, kwargs = big_inputs(case, dtype)
            for reduction in ("mean", "none"):
                jobs.append((case.loss, pred, target, kwargs, reduction))

    def run(job):
        loss, pred, target, kwargs, reduction = job
        return call(fl, loss, "value_and_grad", pred, target, kwargs, reduction=reduction)

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, jobs * 2))
    for i, result in enumerate(concurrent):
        assert_identical(result, serial[i % len(jobs)], err_msg=f"job {i % len(jobs)}")


GIL_CASES = [
    Case("softmax_cross_entropy", "gil", (8000, 4000), "labels"),
    Case("sigmoid_cross_entropy", "gil", (8000, 4000), "probs01"),
    Case("hinge", "gil_ww", (8000, 4000), "labels", {"multiclass": "weston_watkins"}),
    Case("mse", "gil", (8000, 4000), "real"),
]


@pytest.mark.parametrize("case", GIL_CASES, ids=[case.id for case in GIL_CASES])
def test_gil_is_released_while_the_kernel_runs(case):
    """While a thread runs one single-threaded call, the main thread (woken by ``started``, set
    just before the call) runs Python code early in the call. Were the GIL held by the kernel,
    the main thread could only run once the call had returned."""
    import threading
    import time

    fl = public()
    pred, target, kwargs = case.make(np.float64)
    started = threading.Event()
    call_times = []

    def work():
        started.set()
        start = time.perf_counter()
        call(fl, case.loss, "value_and_grad", pred, target, kwargs, n_threads=1)
        call_times.extend([start, time.perf_counter()])

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    main_ran_at = time.perf_counter()
    worker.join()
    start, end = call_times
    assert end - start > 0.02, "the call is too short to tell"
    assert main_ran_at < start + 0.5 * (end - start), (
        f"the main thread ran only {main_ran_at - start:.3f} s into a {end - start:.3f} s call")


def _rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc")
def test_threads_that_end_give_their_kept_scratch_back():
    """A small call keeps its scratch in the calling thread for the next call; a thread that
    ends frees it.  400 short-lived threads, each touching its scratch once: kept buffers that
    outlived their threads would hold about 400 x 130 KB of touched pages."""
    import threading

    import fastloss

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype(np.float32)   # tile driver: ~130 KB of scratch
    y = rng.integers(0, 10, 64)
    expected = fastloss.softmax_cross_entropy_value_and_grad(x, y)

    def one(results, i):
        results[i] = fastloss.softmax_cross_entropy_value_and_grad(x, y)

    def run(n):
        results = [None] * n
        for i in range(n):
            t = threading.Thread(target=one, args=(results, i))
            t.start()
            t.join()
        return results

    run(20)                                  # warm the allocator and thread machinery
    before = _rss_bytes()
    results = run(400)
    grown = _rss_bytes() - before
    for v, g in results:
        assert v == expected[0] and g.tobytes() == expected[1].tobytes()
    assert grown < 16 << 20, "RSS grew by %d MiB over 400 ended threads" % (grown >> 20)


def test_concurrent_small_calls_each_get_their_own_scratch():
    """Threads that call at the same time each get a scratch of their own: the same bits as a
    serial call, for the tile and long-row drivers."""
    import fastloss

    rng = np.random.default_rng(1)
    cases = [(rng.standard_normal((r, c)).astype(np.float32), rng.integers(0, c, r))
             for r, c in [(8, 10), (33, 7), (5, 300), (2, 4000)]]
    expected = [fastloss.softmax_cross_entropy_value_and_grad(x, y) for x, y in cases]

    def work(k):
        out = []
        for _ in range(200):
            i = k % len(cases)
            v, g = fastloss.softmax_cross_entropy_value_and_grad(*cases[i])
            out.append(v == expected[i][0] and g.tobytes() == expected[i][1].tobytes())
            k += 1
        return all(out)

    with ThreadPoolExecutor(8) as ex:
        assert all(ex.map(work, range(16)))
