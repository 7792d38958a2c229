"""Benchmarks of every case x form x implementation in fastloss.bench.CASES.

Each test times one implementation with pytest-benchmark and then checks its result against
fastloss.reference on the same data, so a slip such as timing the wrong function or loss fails
here (with --benchmark-disable each runs once, on a small size: the CI smoke mode). There are no
timing assertions.
"""

import functools
import json

import numpy as np
import pytest

from fastloss import bench

# implementation name in fastloss.bench -> test id (no brackets or '=' for -k)
IMPL_IDS = {bench.FASTLOSS: "fastloss", bench.FASTLOSS_OUT: "fastloss_out",
            bench.FASTLOSS_1T: "fastloss_1thread", bench.COPY: "copy",
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
    spec = bench.LOSSES[case.loss]
    if spec.extended:   # options beyond PyTorch: the torch composition is the oracle
        try:
            impl = bench.build_impl("torch", case, form, pred.astype(np.float64), target)
        except bench.Unavailable as e:
            pytest.skip(str(e))
        loss, grad = impl.convert(impl.fn())
        return float(loss), None if grad is None else np.asarray(grad, dtype=np.float64)
    if form == "value":
        return float(getattr(reference, spec.func)(pred, target, **spec.kwargs)), None
    loss, grad = getattr(reference, spec.func + "_value_and_grad")(pred, target, **spec.kwargs)
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
    if impl.convert is None:  # the copy
        np.testing.assert_array_equal(impl.dst, pred)
        return
    got = impl.convert(result)
    if form == "value":
        assert got[1] is None
    else:
        assert got[1] is not None and got[1].shape == pred.shape
    problem = bench.compare(got, _expected(case, form, bench_size), pred.dtype)
    assert problem is None, f"{name} on {case.name} ({form}): {problem}"


# ---- the registry and the command line (not benchmarks: skipped by --benchmark-only) ----

def test_registry_is_consistent():
    names = [c.name for c in bench.CASES]
    assert len(names) == len(set(names))
    for case in bench.CASES:
        assert case.loss in bench.LOSSES
        assert case.forms and set(case.forms) <= set(bench.FORMS)
        for t in case.targets:
            assert t.kind in ("vs_torch", "copy", "us_per_call", "scaling")
            assert t.form in case.forms
            if t.kind == "scaling":
                assert case.scaling
        for size in ("full", "quick", "check"):
            shape = case.shape_for(size)
            assert len(shape) == len(case.shape) and all(n >= 1 for n in shape)
            assert shape[1:] == case.shape[1:] or (case.group in ("issue3", "issue9")
                                                   and size == "check")
    issue3 = {c.name for c in bench.CASES if c.group == "issue3"}
    assert len(issue3) == 8
    issue9 = {c.name for c in bench.CASES if c.group == "issue9"}
    assert len(issue9) == 2 and all(bench.LOSSES[c.loss].extended
                                    for c in bench.CASES if c.group == "issue9")


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
    assert "tiny-softmax_ce" in text and "issue-3 targets" in text
    res = json.loads(out.read_text())
    assert [r["form"] for r in res["results"]] == ["value", "value_and_grad"]
    for row in res["results"]:
        assert row["fastloss_s"] > 0
        assert row["impls"]["numpy"]["check"] == "ok"
        assert row["impls"]["python"]["check"] == "ok"
    assert [t["kind"] for t in res["results"][0]["targets"]] == ["us_per_call", "vs_torch"]


def test_cli_no_args_and_help(capsys):
    from fastloss.__main__ import main

    assert main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
