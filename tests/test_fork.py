"""Fork and threads: a child made by os.fork() or by multiprocessing's "fork" start
method after the parent has used the OpenMP thread pool computes every loss (no hang, the same
bits); 8 Python threads at once get the bits of serial calls; threadpoolctl's
threadpool_limits(1) is honoured.

The fork checks run in a fresh interpreter (subprocess) that forks and waits for its child
with a timeout, so a hung child fails the test instead of hanging the suite, and the test
process itself (its threads, its OpenMP pool) is never forked."""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from .cases import assert_identical, public

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_TIMEOUT = 20          # seconds a child may take for every loss (it needs about 1)

# Shared by the scripts below: inputs big enough for every kernel to go parallel (> 32768
# elements), every public function, and a bitwise digest of its results.
COMMON = r'''
import os, sys, time
import numpy as np
import fastloss

def inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 100))
    labels = rng.integers(0, 100, 600)
    probs = rng.uniform(size=(300, 200))
    return {
        "softmax_cross_entropy": (x, labels, {"label_smoothing": 0.1,
                                              "weight": rng.uniform(0.5, 2, 100)}),
        "sigmoid_cross_entropy": (rng.standard_normal((300, 200)), probs,
                                  {"pos_weight": rng.uniform(0.5, 2, 200)}),
        "hinge": (x, labels, {"multiclass": "weston_watkins"}),
        "mse": (rng.standard_normal((300, 200)), probs, {"weight": rng.uniform(size=200)}),
    }

def digest(result):
    if isinstance(result, tuple):
        return tuple(digest(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.tobytes()
    return repr(result)

def every_loss(n_threads):
    """Every public loss function on parallel-sized inputs: name -> bitwise digest."""
    out = {}
    for loss, (pred, target, kwargs) in inputs().items():
        for suffix in ("", "_grad", "_value_and_grad", "_grad_hess"):
            fn = getattr(fastloss, loss + suffix, None)
            if fn is None:
                continue
            kw = dict(kwargs, n_threads=n_threads)
            if suffix == "_grad_hess" and loss == "hinge":
                continue
            for dtype in (np.float32, np.float64):
                out[(loss + suffix, np.dtype(dtype).name)] = digest(
                    fn(pred.astype(dtype), target, **kw))
    return out

def use_the_pool():
    """The parent uses the OpenMP thread pool: one call with n_threads=2 (and the default)."""
    pred, target, kwargs = inputs()["softmax_cross_entropy"]
    fastloss.softmax_cross_entropy_value_and_grad(pred, target, n_threads=2, **kwargs)
    fastloss.mse(pred, pred, n_threads=None)

def wait_for(pid, timeout):
    """Exit status of the child, or None when it is still running after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    return None
'''

OS_FORK = COMMON + r'''
use_parent_pool = sys.argv[1] == "1"
timeout = float(sys.argv[2])
if use_parent_pool:
    use_the_pool()
expected = every_loss(1)
pid = os.fork()
if pid == 0:
    code = 0
    try:
        for n_threads in (2, None, 1):
            if every_loss(n_threads) != expected:
                os.write(2, b"child: results differ with n_threads=%r\n" % (n_threads,))
                code = 1
    except BaseException as exc:
        os.write(2, ("child: %r\n" % (exc,)).encode())
        code = 2
    os._exit(code)
status = wait_for(pid, timeout)
if status is None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("HUNG: the forked child did not finish in %g s" % timeout)
    sys.exit(3)
print("child exit status", status)
sys.exit(status)
'''

MP_FORK = COMMON + r'''
import multiprocessing

def child_job(n_threads):
    return every_loss(n_threads)

if __name__ == "__main__":
    timeout = float(sys.argv[2])
    if sys.argv[1] == "1":
        use_the_pool()
    expected = every_loss(1)
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(2)
    try:
        results = pool.map_async(child_job, [2, None, 2, 1]).get(timeout)
    except multiprocessing.TimeoutError:
        pool.terminate()
        print("HUNG: the multiprocessing 'fork' workers did not finish in %g s" % timeout)
        sys.exit(3)
    pool.close()
    pool.join()
    bad = [i for i, r in enumerate(results) if r != expected]
    print("jobs with other bits:", bad)
    sys.exit(1 if bad else 0)
'''


def _run(script, use_parent_pool, timeout=CHILD_TIMEOUT):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script),
                           "1" if use_parent_pool else "0", str(timeout)],
                          capture_output=True, text=True, timeout=timeout + 60, env=env,
                          cwd=ROOT, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _needs_openmp():
    from fastloss import _core

    if not _core.openmp_enabled():
        pytest.skip("built without OpenMP: no thread pool to inherit")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_fork_before_the_pool_is_used_control():
    """Control: a child forked before the parent ever used the pool runs every loss."""
    rc, out = _run(OS_FORK, use_parent_pool=False)
    assert rc == 0, out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_os_fork_child_after_the_parent_used_the_pool():
    """calling any loss in a child made by os.fork() after the parent has used
    the thread pool completes, with the parent's bits (n_threads 2, default and 1)."""
    _needs_openmp()
    rc, out = _run(OS_FORK, use_parent_pool=True)
    assert rc == 0, out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_multiprocessing_fork_workers_after_the_parent_used_the_pool():
    """The same through multiprocessing's "fork" start method (a Pool of 2 workers)."""
    _needs_openmp()
    rc, out = _run(MP_FORK, use_parent_pool=True)
    assert rc == 0, out


# ------------------------------------------------------------------------------- threads

def _thread_jobs():
    """(function name, pred, target, kwargs) for every form of every loss, both dtypes,
    several thread counts, options on; big enough to go parallel."""
    rng = np.random.default_rng(7)
    fl = public()
    x = rng.standard_normal((700, 90))
    labels = rng.integers(0, 90, 700)
    labels[::9] = -100
    probs = rng.uniform(size=(700, 90))
    base = [
        ("softmax_cross_entropy", x, labels, {"weight": rng.uniform(0.5, 2, 90),
                                              "label_smoothing": 0.1}),
        ("softmax_cross_entropy", x, probs / probs.sum(1, keepdims=True), {}),
        ("sigmoid_cross_entropy", x, probs, {"pos_weight": rng.uniform(0.5, 2, 90)}),
        ("hinge", x, np.where(labels < 0, 0, labels), {"multiclass": "crammer_singer"}),
        ("hinge", x, np.where(labels < 0, 0, labels), {"squared": True}),
        ("mse", x, probs, {"weight": rng.uniform(size=(700, 1))}),
    ]
    import inspect

    extra = {"z_loss": 1e-3, "softcap": 10.0, "poly1_epsilon": 0.5}
    sce = inspect.signature(fl.softmax_cross_entropy).parameters
    opts = {k: v for k, v in extra.items() if k in sce}
    if opts:
        base.append(("softmax_cross_entropy", x, labels, opts))
    jobs = []
    for loss, pred, target, kwargs in base:
        for dtype in (np.float32, np.float64):
            p = pred.astype(dtype)
            for suffix in ("", "_grad", "_value_and_grad"):
                for n_threads in (None, 1, 2):
                    jobs.append((loss + suffix, p, target, dict(kwargs, n_threads=n_threads)))
    return jobs


def _call(job):
    name, pred, target, kwargs = job
    result = getattr(public(), name)(pred, target, **kwargs)
    return result if isinstance(result, tuple) else (result, None)


def test_eight_python_threads_give_the_serial_bits():
    """8 Python threads call every loss at once (the GIL is released in the kernels, OpenMP
    regions nest inside Python threads): each result has the bits of the serial call."""
    jobs = _thread_jobs()
    serial = [_call(job) for job in jobs]
    order = list(range(len(jobs))) * 3
    np.random.default_rng(0).shuffle(order)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: _call(jobs[i]), order))
    for i, result in zip(order, results):
        assert_identical(result, serial[i], err_msg="%s %s" % (jobs[i][0], jobs[i][3]))


# --------------------------------------------------------------------------- threadpoolctl

def test_threadpool_limits_is_honoured():
    """threadpoolctl.threadpool_limits(1) reaches the OpenMP runtime fastloss uses: inside it
    the default thread count (omp_get_max_threads) is 1 and results keep their bits; on exit
    the previous count is back."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastloss import _core

    _needs_openmp()
    job = _thread_jobs()[2]
    before_threads = _core.default_threads()
    expected = _call((job[0], job[1], job[2], dict(job[3], n_threads=2)))
    openmp = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "openmp"]
    assert openmp, "threadpoolctl finds no OpenMP runtime in this process"
    with threadpoolctl.threadpool_limits(limits=1):
        assert _core.default_threads() == 1
        assert_identical(_call((job[0], job[1], job[2], dict(job[3], n_threads=None))),
                         expected)
    assert _core.default_threads() == before_threads
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _core.default_threads() == 1
    assert _core.default_threads() == before_threads
