"""Benchmarks of every case x form x implementation in fastloss.bench.CASES.

Each test times one implementation with pytest-benchmark and then checks its result against
fastloss.reference on the same data (the limits: that they did their work), so a slip such as
timing the wrong function or loss fails here (with --benchmark-disable each runs once, on a
small size: the CI smoke mode). There are no timing assertions.
"""

import functools
import inspect
import json
import sys

import numpy as np
import pytest

import fastloss
from fastloss import bench

# implementation name in fastloss.bench -> test id (no brackets, spaces or '=' for -k)
IMPL_IDS = {bench.FASTLOSS: "fastloss", bench.FASTLOSS_OUT: "fastloss_out",
            bench.FASTLOSS_1T: "fastloss_1thread", bench.FASTLOSS_TORCH: "fastloss_torch",
            bench.MEMCPY: "memcpy",
            bench.READ: "read_pass", bench.NPCALL: "numpy_call",
            bench.EVAL_LOSS: "evaluator_loss_only",
            **{b: b for b in bench.BASELINES}}

PARAMS = [
    pytest.param(case, form, name,
                 id=f"{case.name}-{bench.FORM_SHORT[form]}-{IMPL_IDS[name]}")
    for case in bench.CASES
    for form in case.forms
    for name in bench.impl_names(case, form, n_threads=2)
]


@functools.lru_cache(maxsize=2)
def _data(case, size):
    return bench.make_data(case, size)


@functools.lru_cache(maxsize=4)
def _expected(case, form, size):
    from fastloss import reference

    pred, target = _data(case, size)
    if case.formula:   # options beyond PyTorch: the torch formula in float64 is the oracle
        try:
            impl = bench.build_impl("torch", case, form, pred.astype(np.float64), target)
        except bench.Unavailable as e:
            pytest.skip(str(e))
        loss, grad = impl.convert(impl.fn())
        return float(loss), None if grad is None else np.asarray(grad, dtype=np.float64)
    if form == "value":
        return float(getattr(reference, case.loss)(pred, target, **case.kwargs)), None
    f = getattr(reference, f"{case.loss}_{form}")
    loss, grad = f(pred, target, **case.kwargs)
    return float(loss), np.asarray(grad, dtype=np.float64)


@pytest.mark.parametrize(("case", "form", "name"), PARAMS)
def test_bench(benchmark, bench_size, case, form, name):
    pred, target = _data(case, bench_size)
    py_limit = bench.Settings.for_mode(quick=True).py_max_elements
    if name == "python" and bench_size != "check" and pred.size > py_limit:
        pytest.skip(f"plain Python only up to {py_limit} elements")
    try:
        impl = bench.build_impl(name, case, form, pred, target)
    except bench.Unavailable as e:
        pytest.skip(str(e))
    benchmark.group = f"{case.name} {bench.FORM_SHORT[form]} {'x'.join(map(str, pred.shape))}"
    benchmark.extra_info.update(shape=list(pred.shape), dtype=str(pred.dtype),
                                bytes=bench.moved_bytes(pred, target, form), note=impl.note)
    result = benchmark(impl.fn)
    if impl.convert is None:  # a limit: it did its work
        assert name in bench.LIMITS and impl.verify is not None
        assert impl.verify(result) is None
        return
    got = impl.convert(result)
    if form == "value":
        assert got[1] is None
    else:
        assert got[1] is not None and got[1].shape == pred.shape
    problem = bench.compare(got, _expected(case, form, bench_size), pred.dtype)
    assert problem is None, f"{name} on {case.name} ({form}): {problem}"


# ---- the case table and the command line (not benchmarks: skipped by --benchmark-only) ----

def test_cases_are_consistent():
    names = [c.name for c in bench.CASES]
    assert len(names) == len(set(names))
    for case in bench.CASES:
        assert case.forms and set(case.forms) <= set(bench.FORMS)
        for form in case.forms:   # the public callable exists and takes the case's options
            f = bench.loss_function(case.loss, form)
            params = inspect.signature(f).parameters
            assert set(case.kwargs) <= set(params), (case.name, form)
        registry_options = bench.loss_options(case.loss)
        if registry_options is not None:
            assert set(dict(case.options)) <= set(registry_options), case.name
        for size in ("full", "quick", "check"):
            shape = case.shape_for(size)
            assert len(shape) == len(case.shape) and all(n >= 1 for n in shape)
            ax = case.axis % len(shape)
            if case.target == "labels":   # the class count stays (but may shrink for check)
                assert shape[ax] >= 2
        pred, target = bench.make_data(case, "check")
        assert pred.shape == case.check_shape and pred.dtype == bench.case_dtype(case)
        assert target.dtype.kind in "iu" or target.dtype == pred.dtype


def test_every_case_has_its_limit_and_torch():
    for case in bench.CASES:
        for form in case.forms:
            names = bench.impl_names(case, form, n_threads=2)
            assert names[0] == bench.headline(form)
            limits = [n for n in names if n in bench.LIMITS]
            if case.metrics:     # the loss-only Evaluator is the yardstick; sklearn beside it
                assert limits == [bench.EVAL_LOSS] and "sklearn" in names, case.name
                continue
            want = bench.NPCALL if case.tiny else (bench.READ if form == "value"
                                                   else bench.MEMCPY)
            assert limits == [want], (case.name, form)
            assert "torch" in names


def test_loss_function_uses_the_registry_when_present(monkeypatch):
    def fake(pred, target):
        return 0.0

    registry = {"softmax_cross_entropy": {"options": {}, "functions": {"value": fake}}}
    monkeypatch.setattr(fastloss, "losses", registry, raising=False)
    assert bench.loss_function("softmax_cross_entropy", "value") is fake
    with pytest.raises(bench.Unavailable, match="no form 'grad_hess'"):
        bench.loss_function("softmax_cross_entropy", "grad_hess")
    with pytest.raises(bench.Unavailable, match="no loss 'nope'"):
        bench.loss_function("nope", "value")
    monkeypatch.delattr(fastloss, "losses")
    assert bench.loss_function("mse", "value_and_grad") is fastloss.mse_value_and_grad
    with pytest.raises(bench.Unavailable):
        bench.loss_function("nope", "value")


def test_select_cases():
    assert bench.select_cases("tiny") == [c for c in bench.CASES if "tiny" in c.name]
    assert bench.select_cases("mse-*") == [c for c in bench.CASES if c.name.startswith("mse-")]
    assert bench.select_cases("nothing-matches") == []


def test_cli_quick_tiny(tmp_path, capsys):
    out = tmp_path / "r.json"
    status = bench.main(["--quick", "--cases", "tiny", "--no-progress", "--json", str(out),
                         "--baselines", "numpy,python"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "tiny-softmax_ce" in text and "x np call" in text
    assert "issue" not in text.lower()
    res = json.loads(out.read_text())
    assert [r["form"] for r in res["results"]] == ["value", "value_and_grad"]
    for row in res["results"]:
        assert row["fastloss_s"] > 0
        assert row["x_limits"]["numpy call"] > 0
        assert row["impls"]["numpy call"]["check"] == "ok"
        assert row["impls"]["numpy"]["check"] == "ok"
        assert row["impls"]["python"]["check"] == "ok"
    assert res["results"][1]["default_call"]["fastloss_s"] > 0


def test_cli_limits_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    status = bench.main(["--quick", "--cases", "mse", "--no-progress", "--json", str(out),
                         "--plot", str(png), "--baselines", "numpy", "--threads", "2"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "x memcpy" in text and "x read" in text and "issue" not in text.lower()
    res = json.loads(out.read_text())
    vg, value = res["results"]
    assert vg["form"] == "value_and_grad" and value["form"] == "value"
    assert set(vg["x_limits"]) == {"memcpy"} and vg["impls"]["memcpy"]["check"] == "ok"
    assert set(value["x_limits"]) == {"read pass"}
    assert value["impls"]["read pass"]["check"] == "ok"
    assert png.stat().st_size > 0


def test_cli_errors(capsys):
    assert bench.main(["--cases", "nothing-matches", "--no-progress"]) == 2
    assert "no case matches" in capsys.readouterr().err
    assert bench.main(["--threads", "0"]) == 2
    assert bench.main(["--baselines", "nope", "--cases", "tiny", "--no-progress"]) == 2
    assert "unknown baselines" in capsys.readouterr().err


def test_cli_no_args_and_help(capsys):
    from fastloss.__main__ import main

    assert main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
    assert main(["bench", "--list"]) == 0
    assert "softmax_ce-nchw-axis1" in capsys.readouterr().out


def test_every_subpackage_is_installed():
    """pyproject.toml lists packages by name: a subpackage missing there is missing from the
    wheel, and `fastloss bench` fails after `pip install .` while working in a checkout."""
    import os

    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("no pyproject.toml beside bench/")
    with open(path, "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(d, root).replace(os.sep, ".")
             for d, _, files in os.walk(os.path.join(root, "fastloss")) if "__init__.py" in files}
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"


def test_parallel_read_reads_every_byte():
    from fastloss import _core

    rng = np.random.default_rng(0)
    for n in (0, 1, 31, 33, (1 << 20) + 7, 3 * (1 << 20) + 100):
        a = rng.integers(0, 256, n, dtype=np.uint8)
        ref = _core.parallel_read(a, 1)
        assert _core.parallel_read(a, 2) == ref == _core.parallel_read(a)
        if n:
            for i in (0, n // 2, n - 1):   # a changed byte anywhere changes the checksum
                b = a.copy()
                b[i] ^= 1
                assert _core.parallel_read(b, 2) != ref, (n, i)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.parallel_read(np.zeros((4, 4))[:, ::2])


def test_cli_case_without_its_optional_package_is_not_a_failure(monkeypatch, capsys):
    """A bfloat16 case without ml_dtypes is listed as not run, and the run still succeeds
    (the README's main command runs every case in whatever environment it finds)."""
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)      # import ml_dtypes fails
    status = bench.main(["--quick", "--cases", "softmax_ce-bf16", "--no-progress",
                         "--baselines", "numpy"])
    out = capsys.readouterr().out
    assert status == 0
    assert "NOT RUN (an optional package is not installed):" in out
    assert "bfloat16 arrays need the ml_dtypes package" in out
    assert "FAILED" not in out


def test_metrics_cases_compute_the_same_metrics_as_sklearn():
    """The metrics family at its small size: Evaluator(metrics="all") (the headline), the
    loss-only Evaluator and the scikit-learn baseline run, agree on the loss, and the
    baseline's metrics are fastloss's."""
    pytest.importorskip("sklearn")
    cases = [c for c in bench.CASES if c.metrics]
    assert {c.shape for c in cases} == {(16384, 1000), (2048, 32768)}
    for case in cases:
        pred, target = bench.make_data(case, "check")
        assert pred.dtype == np.float32
        impls = {n: bench.build_impl(n, case, "value", pred, target)
                 for n in (bench.FASTLOSS, bench.EVAL_LOSS, "sklearn")}
        res = {n: impl.fn() for n, impl in impls.items()}
        loss = impls[bench.FASTLOSS].convert(res[bench.FASTLOSS])
        for n in (bench.EVAL_LOSS, "sklearn"):
            assert bench.compare(impls[n].convert(res[n]), loss, pred.dtype) is None, n
        mine, ref = res[bench.FASTLOSS].metrics, res["sklearn"]
        assert set(ref) <= set(mine) and "confusion_matrix" in ref
        for k, v in ref.items():
            if k == "confusion_matrix":
                np.testing.assert_array_equal(mine[k], v)
            else:
                np.testing.assert_allclose(mine[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
        assert res[bench.EVAL_LOSS].metrics == {}
        with pytest.raises(bench.Unavailable):
            bench.build_impl("torch", case, "value", pred, target)


def test_metrics_case_table_shows_the_ratios():
    """A metrics row reports x loss only (fastloss / the loss-only Evaluator) and the
    baselines' ratios; a missing torchmetrics is a skipped baseline, not a failure."""
    case = next(c for c in bench.CASES if c.metrics)
    row = {"case": case.name, "loss": case.loss, "options": {}, "axis": -1, "form": "value",
           "shape": [8, 10], "dtype": "float32", "bytes": 1000,
           "impls": {bench.FASTLOSS: {"best_s": 0.013, "gbps": 1.0},
                     bench.EVAL_LOSS: {"best_s": 0.010},
                     "sklearn": {"best_s": 0.52},
                     "torchmetrics": {"skipped": "torchmetrics is not installed"}}}
    from fastloss.bench.harness import _derive
    _derive(row)
    assert row["x_limits"] == {bench.EVAL_LOSS: pytest.approx(1.3)}
    assert row["ratios"] == {"sklearn": pytest.approx(40.0)}
    meta = {"quick": True, "date": "-", "cpu": "-", "cpu_count": 2, "n_threads": None,
            "threads_used": 2, "versions": {"python": "3", "fastloss": "x", "numpy": "y"},
            "memory_method": "-", "wall_s": 1.0}
    text = bench.format_table({"meta": meta, "results": [row]})
    assert "x loss only" in text and "1.30" in text and "40.0" in text
    assert "FAILED" not in text
