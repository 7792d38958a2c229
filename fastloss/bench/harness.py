"""Timing, memory and load probes, and the run loop of the bench.

All implementations of one case and form run in one process, interleaved round-robin (the order
rotates every round), each measurement repeated ``number`` times so that it lasts long enough
to time; the best of several rounds is kept. The machine's limits (memcpy, read pass, a NumPy
call) are implementations like the others, so they are measured in the same rounds.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import gc
import io
import itertools
import math
import os
import platform
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from .baselines import (BASELINES, FASTLOSS, FASTLOSS_1T, FASTLOSS_OUT, FASTLOSS_TORCH, LIMITS,
                        Impl, build_impl, compare, cpu_count, impl_names, moved_bytes)
from .cases import CASES, FORM_SHORT, Case, Unavailable, make_data, select_cases

__all__ = ["Settings", "run", "BUSY", "headline"]

BUSY = 0.10   # warn when other processes used more than this share of the CPU


@dataclasses.dataclass(frozen=True)
class Settings:
    min_time: float      # one measurement (number calls) lasts at least this long
    budget: float        # target seconds of timing rounds per case and form
    min_rounds: int
    max_rounds: int
    slow_limit: float    # skip numpy / python baselines estimated slower than this per call
    py_max_elements: int
    warm_below: float    # calls shorter than this get an untimed call before each measurement

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(0.002, 0.25, 3, 7, 0.4, 1 << 15, 0.01)
        return cls(0.02, 2.0, 5, 25, 4.0, 1 << 20, 0.1)


def _time_calls(fn, number: int) -> float:
    it = itertools.repeat(None, number)
    t0 = time.perf_counter()
    for _ in it:
        fn()
    return time.perf_counter() - t0


def _calibrate(fn, min_time: float) -> tuple[int, float]:
    """(number, seconds per call): calls per measurement so it lasts about min_time."""
    number = 1
    while True:
        t = _time_calls(fn, number)
        if t >= min_time / 4 or number >= 1 << 22:
            break
        number *= 10 if t < min_time / 100 else 2
    per_call = t / number
    return max(1, math.ceil(min_time / per_call)) if per_call < min_time else 1, per_call


def _estimate(name, case, form, pred, target, n_threads, max_elements) -> float:
    """Seconds per full call, extrapolated from one call on a slice of the rows."""
    rows = pred.shape[0] if pred.ndim else 1
    per_row = max(1, pred.size // max(rows, 1))
    sub = max(1, min(rows, max_elements // per_row))
    if sub >= rows:
        return 0.0
    impl = build_impl(name, case, form, pred[:sub], target[:sub], n_threads)
    t = _time_calls(impl.fn, 1)
    return t * rows / sub


class _Memory:
    """Peak extra resident memory of one call.

    Linux: reset the peak RSS (write 5 to /proc/self/clear_refs), give freed heap back to the
    OS (malloc_trim), call, read VmHWM - VmRSS-before. This sees every page the call touches,
    in C or Python, at page granularity; allocator reuse of memory already resident is not seen.
    Elsewhere: tracemalloc, which sees only allocations reported to it (NumPy's, Python's).
    """

    def __init__(self):
        self.method = "tracemalloc (Python/NumPy allocations only; C malloc not seen)"
        self._trim = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._status("VmHWM")
            self.method = ("peak RSS growth (VmHWM after /proc/self/clear_refs reset, "
                           "malloc_trim before)")
            self.rss = True
        except (OSError, ValueError, TypeError):
            self.rss = False
        try:
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            pass

    @staticmethod
    def _status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise ValueError(field)

    def measure(self, fn) -> tuple[int, int]:
        """(peak extra bytes during the call, bytes of the arrays it returned)."""
        gc.collect(1)  # a full collection costs ~0.1 s once torch and jax are loaded
        if self._trim is not None:
            self._trim(0)
        if self.rss:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            before = self._status("VmRSS")
            r = fn()
            peak = self._status("VmHWM") - before
        else:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            r = fn()
            peak = tracemalloc.get_traced_memory()[1] - before
            tracemalloc.stop()
        out = _result_nbytes(r)
        del r
        return peak, out


def _result_nbytes(r) -> int:
    if isinstance(r, (tuple, list)):
        return sum(_result_nbytes(v) for v in r)
    if isinstance(r, np.ndarray):
        return r.nbytes
    if hasattr(r, "element_size") and hasattr(r, "numel"):  # torch tensor
        return r.element_size() * r.numel()
    return 0


class _OtherLoad:
    """Share of the machine's CPU time used by other processes (and the hypervisor's steal)
    between two snapshots: /proc/stat busy time minus this process's own CPU time. A busy
    machine makes multi-threaded timings unreliable (a thread waits for a core)."""

    def __init__(self):
        self.ok = os.path.exists("/proc/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if self.ok else 100

    def snapshot(self):
        if not self.ok:
            return None
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = v[0] + v[1] + v[2] + sum(v[5:8])   # user nice system irq softirq steal
        total = busy + v[3] + v[4]                 # + idle iowait
        own = sum(os.times()[:2])
        return busy / self._tick, total / self._tick, own

    @staticmethod
    def share(a, b) -> float | None:
        if a is None or b is None or b[1] <= a[1]:
            return None
        return min(1.0, max(0.0, ((b[0] - a[0]) - (b[2] - a[2])) / (b[1] - a[1])))


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.total = total
        self.i = 0
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, file=sys.stderr, unit="case", leave=False,
                                dynamic_ncols=True)

    def step(self, label: str):
        self.i += 1
        self.label = label
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(label)
        else:
            print(f"[{self.i:>{len(str(self.total))}}/{self.total}] {label}", file=sys.stderr,
                  flush=True)

    def detail(self, text: str):
        if self.enabled and self.bar is not None:
            self.bar.set_postfix_str(text)

    def done_step(self):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _versions() -> dict:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version(),
                                  "numpy": np.__version__}
    try:
        import fastloss
        out["fastloss"] = getattr(fastloss, "__version__", None) or metadata.version("fastloss")
    except Exception:  # noqa: BLE001 - a version lookup must never stop the bench
        out["fastloss"] = "unknown"
    for dist, key in (("torch", "torch"), ("scikit-learn", "sklearn"), ("jax", "jax"),
                      ("jaxlib", "jaxlib"), ("torchmetrics", "torchmetrics")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fastloss_config():
    """fastloss.show_config(mode="dicts") if it exists, else its printed text, else None."""
    try:
        import fastloss
        show = fastloss.show_config
    except (ImportError, AttributeError):
        return None
    try:
        info = show(mode="dicts")
        if isinstance(info, dict):
            return jsonable(info)
    except Exception:  # noqa: BLE001 - fall back to the printed form
        pass
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            show()
    except Exception as e:  # noqa: BLE001
        return f"show_config() failed: {e!r}"
    return buf.getvalue().strip() or None


def _config_line(cfg) -> str | None:
    """One line from show_config's dict: SIMD path and OpenMP."""
    if not isinstance(cfg, dict):
        return None
    parts = []
    simd = cfg.get("simd")
    if isinstance(simd, dict) and simd.get("in_use"):
        built = simd.get("built")
        parts.append(f"SIMD path {simd['in_use']}"
                     + (f" (built: {', '.join(map(str, built))})" if built else "")
                     + (f", FASTLOSS_SIMD={simd['FASTLOSS_SIMD']}"
                        if simd.get("FASTLOSS_SIMD") else ""))
    omp = cfg.get("openmp")
    if isinstance(omp, dict):
        parts.append(f"OpenMP {'on' if omp.get('enabled') else 'OFF'}"
                     + (f", {omp['threads']} default threads" if omp.get("threads") else ""))
    return "; ".join(parts) or None


def _check_fastloss():
    try:
        import fastloss
        fastloss.softmax_cross_entropy  # noqa: B018 - fails if the extension is not built
    except (ImportError, AttributeError) as e:
        raise RuntimeError(
            f"fastloss cannot be imported ({e}). Build it first: "
            "`pip install .` or `python setup.py build_ext --inplace`.") from e




def jsonable(o: Any) -> Any:
    """``o`` with NumPy scalars as Python numbers and non-finite floats as None."""
    if isinstance(o, dict):
        return {k: jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        o = float(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def run(cases=None, *, quick: bool = False, n_threads: int | None = None,
        baselines=None, seed: int = 0, progress: bool = True) -> dict:
    """Run the benchmark and return its results (the dict that ``--json`` writes).

    Parameters
    ----------
    cases : str, list of str or Case, or None
        Comma-separated name patterns (fnmatch or substring) or Case objects; None for all.
    quick : bool
        Smaller sizes and fewer rounds (every case still runs).
    n_threads : int or None
        Threads for fastloss, the limits, torch and sklearn. None: fastloss's own default
        (``n_threads=None``), and the CPU count for the others.
    baselines : iterable of str or None
        Subset of ``BASELINES`` to run; None for all that are installed.
    seed : int
        Seed of the generated data.
    progress : bool
        Show progress on stderr.
    """
    _check_fastloss()
    selected = select_cases(cases)
    if not selected:
        raise ValueError(f"no case matches {cases!r}; cases: {', '.join(c.name for c in CASES)}")
    baselines = tuple(BASELINES if baselines is None else baselines)
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from "
                         f"{', '.join(BASELINES)}")
    settings = Settings.for_mode(quick)
    size = "quick" if quick else "full"
    mem = _Memory()
    threads_used = n_threads or cpu_count()

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "cpu": _cpu_name(),
        "cpu_count": cpu_count(),
        "n_threads": n_threads,
        "threads_used": threads_used,
        "platform": platform.platform(),
        "versions": _versions(),
        "show_config": _fastloss_config(),
        "memory_method": mem.method,
        "settings": dataclasses.asdict(settings),
        "seed": seed,
    }
    results = []
    steps = sum(len(c.forms) for c in selected)
    prog = _Progress(steps, progress)
    load = _OtherLoad()
    snap = load.snapshot()
    t0 = time.perf_counter()
    try:
        for case in selected:
            try:
                pred, target = make_data(case, size, seed)
            except Unavailable as e:     # e.g. bfloat16 without ml_dtypes
                for form in case.forms:
                    prog.step(f"{case.name} {FORM_SHORT[form]}")
                    results.append({
                        "case": case.name, "loss": case.loss, "options": dict(case.options),
                        "axis": case.axis, "form": form, "shape": list(case.shape_for(size)),
                        "dtype": case.dtype, "impls": {headline(form): {"skipped": str(e)}}})
                    prog.done_step()
                continue
            for form in case.forms:
                label = f"{case.name} {FORM_SHORT[form]} {'x'.join(map(str, pred.shape))}"
                prog.step(label)
                t1 = time.perf_counter()
                row = _run_one(case, form, pred, target, n_threads, baselines, settings, mem,
                               prog)
                row["wall_s"] = time.perf_counter() - t1
                results.append(row)
                prog.done_step()
            del pred, target
            gc.collect()
    finally:
        prog.close()
    meta["wall_s"] = time.perf_counter() - t0
    meta["other_load"] = load.share(snap, load.snapshot())
    return {"meta": meta, "results": results}


def headline(form: str) -> str:
    """The fastloss call a row reports: ``out=`` for gradient forms, else the default call."""
    return FASTLOSS if form == "value" else FASTLOSS_OUT


def _setup(name, case, form, pred, target, n_threads, settings):
    """Build ``name`` and run it once (warm-up, JIT compile); None when it cannot run."""
    if name == "python" and pred.size > settings.py_max_elements:
        raise Unavailable(f"plain Python runs only up to {settings.py_max_elements} elements")
    if name in ("numpy", "python"):
        est = _estimate(name, case, form, pred, target, n_threads,
                        1 << 12 if name == "python" else 1 << 18)
        if est > settings.slow_limit:
            raise Unavailable(f"skipped: one call estimated at {est:.1f} s")
    impl = build_impl(name, case, form, pred, target, n_threads)
    return impl, impl.fn()


def _run_one(case: Case, form: str, pred, target, n_threads, baselines, settings, mem, prog):
    names = [n for n in impl_names(case, form, n_threads)
             if n not in BASELINES or n in baselines]
    row: dict[str, Any] = {
        "case": case.name, "loss": case.loss, "options": dict(case.options), "axis": case.axis,
        "form": form, "shape": list(pred.shape), "dtype": str(pred.dtype),
        "elements": int(pred.size), "bytes": moved_bytes(pred, target, form),
        "pred_bytes": int(pred.nbytes), "impls": {},
    }
    impls: list[Impl] = []
    expected = None
    for name in names:
        info = row["impls"].setdefault(name, {})
        prog.detail(f"setting up {name}")
        try:
            impl, result = _setup(name, case, form, pred, target, n_threads, settings)
            if impl.convert is not None:
                converted = impl.convert(result)
                if expected is None:        # the first fastloss call is the reference
                    expected = (converted[0], None if converted[1] is None
                                else np.array(converted[1], dtype=np.float64))
                else:
                    info["check"] = compare(converted, expected, pred.dtype) or "ok"
            elif impl.verify is not None:
                info["check"] = impl.verify(result) or "ok"
            del result
        except Unavailable as e:
            info["skipped"] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - one failing implementation must not stop all
            info["error"] = f"{type(e).__name__}: {e}"
            if name == headline(form):
                break
            continue
        if impl.note:
            info["note"] = impl.note
        impls.append(impl)
    del expected
    gc.collect(1)

    if not impls or impls[0].name != headline(form):
        return row

    # calibrate: calls per measurement, and the rounds that fit the budget
    numbers, per_call = {}, {}
    for impl in impls:
        prog.detail(f"calibrating {impl.name}")
        numbers[impl.name], per_call[impl.name] = _calibrate(impl.fn, settings.min_time)
    # One untimed call before each measurement of a short call: it absorbs the switch from
    # the previous implementation (another OpenMP runtime's threads still spinning, caches).
    warm = {name: t < settings.warm_below for name, t in per_call.items()}
    round_time = sum(per_call[n] * (numbers[n] + warm[n]) for n in per_call)
    rounds = max(settings.min_rounds,
                 min(settings.max_rounds, int(settings.budget / max(round_time, 1e-9))))

    # A slow call (a baseline many times slower than fastloss) is timed in fewer rounds: the
    # best of three of a 1 s call is as good as the best of five, and the run stays short.
    cap = {n: rounds if t < 0.1 else min(rounds, 3) for n, t in per_call.items()}
    times: dict[str, list[float]] = {impl.name: [] for impl in impls}
    load = _OtherLoad()
    snap = load.snapshot()
    gcold = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            prog.detail(f"round {r + 1}/{rounds}")
            k = r % len(impls)
            for impl in impls[k:] + impls[:k]:
                if len(times[impl.name]) >= cap[impl.name]:
                    continue
                n = numbers[impl.name]
                if warm[impl.name]:
                    impl.fn()
                times[impl.name].append(_time_calls(impl.fn, n) / n)
    finally:
        if gcold:
            gc.enable()
    row["other_load"] = load.share(snap, load.snapshot())
    row["rounds"] = rounds

    for impl in impls:
        info = row["impls"][impl.name]
        info["number"] = numbers[impl.name]
        info["times_s"] = times[impl.name]
        info["best_s"] = min(times[impl.name])
        if impl.name not in LIMITS:
            info["gbps"] = row["bytes"] / info["best_s"] / 1e9
    prog.detail("memory")
    for impl in impls:
        if impl.name in (FASTLOSS, FASTLOSS_OUT, "torch", FASTLOSS_TORCH):
            peak, out = mem.measure(impl.fn)
            out = out if impl.fresh_output else 0
            row["impls"][impl.name].update(peak_extra_bytes=peak, output_bytes=out)
    _derive(row)
    return row


def _best(row, name):
    return row["impls"].get(name, {}).get("best_s")


def _ratios(row, fl):
    """limit name -> fastloss time / limit time; baseline -> baseline time / fastloss time."""
    lim = {n: fl / _best(row, n) for n in LIMITS if _best(row, n)}
    base = {b: _best(row, b) / fl for b in BASELINES if _best(row, b)}
    return lim, base


def _derive(row):
    fl = _best(row, headline(row["form"]))
    row["fastloss_s"] = fl
    row["x_limits"], row["ratios"] = _ratios(row, fl)
    one = _best(row, FASTLOSS_1T)
    row["scaling"] = one / fl if one else None
    dropin, torch_t = _best(row, FASTLOSS_TORCH), _best(row, "torch")
    if dropin:
        row["dropin_s"] = dropin
        # the PyTorch drop-in against torch's own function on the same half tensor
        row["dropin_vs_torch"] = torch_t / dropin if torch_t else None
    default = _best(row, FASTLOSS) if row["form"] != "value" else None
    if default:
        lim, base = _ratios(row, default)
        row["default_call"] = {"fastloss_s": default, "x_limits": lim, "ratios": base}
