"""`fastloss eval`: files in, the loss and metrics of one call over the whole arrays out."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss
from fastloss import eval_cli
from fastloss.eval_cli import main, parse_size, plan_chunk_rows

RTOL = 1e-12


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(argv, capsys):
    rc, out, err = run([*argv, "--json", "--no-progress"], capsys)
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 13)).astype(np.float32)
    y = rng.integers(0, 13, 1000)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, x, y


def _hits(x, y, k):
    xy = np.take_along_axis(x, y[:, None], axis=1)
    higher = (x > xy).sum(axis=1)
    return (higher < 1).mean(), (higher < k).mean()


def test_softmax_npy_json(data, capsys):
    d, x, y = data
    r = run_json([d / "x.npy", d / "y.npy", "--chunk-rows", 77, "--top-k", 3], capsys)
    assert r["loss"] == pytest.approx(fastloss.softmax_cross_entropy(x, y), rel=RTOL)
    acc, top3 = _hits(x, y, 3)
    assert (r["accuracy"], r["top_k_accuracy"], r["top_k"]) == (acc, top3, 3)
    assert (r["n_rows"], r["n_ignored"], r["rows"]) == (1000, 0, 1000)
    assert r["chunks"] == math.ceil(1000 / 77) and r["chunk_rows"] == 77
    assert r["rows_per_second"] > 0 and r["loss_name"] == "softmax_cross_entropy"


def test_text_output(data, capsys):
    d, x, y = data
    rc, out, err = run([d / "x.npy", d / "y.npy", "--loss", "ce", "--no-progress"], capsys)
    assert rc == 0 and err == ""
    want = fastloss.softmax_cross_entropy(x, y)
    assert "loss            %.10g" % want in out
    assert "top-5 accuracy" in out and "rows/s" in out and "rows            1000" in out


def test_npz_stored_is_mapped_compressed_is_streamed(data, capsys):
    d, x, y = data
    np.savez(d / "s.npz", logits=x, labels=y)
    np.savez_compressed(d / "c.npz", a=x, b=y)
    want = fastloss.softmax_cross_entropy(x, y, reduction="sum")
    r = run_json([d / "s.npz", "--reduction", "sum", "--chunk-rows", 100], capsys)
    assert r["loss"] == pytest.approx(want, rel=RTOL)
    assert (r["pred"], r["target"]) == (f"{d / 's.npz'}:logits", f"{d / 's.npz'}:labels")
    r = run_json([f"{d / 'c.npz'}:a", f"{d / 'c.npz'}:b", "--reduction", "sum",
                  "--chunk-rows", 100], capsys)
    assert r["loss"] == pytest.approx(want, rel=RTOL)
    src = eval_cli._Source(str(d / "s.npz"), "pred", eval_cli._PRED_KEYS)
    try:
        assert src._mapped and src._stream is None
        np.testing.assert_array_equal(src.rows(10, 20), x[10:20])
        src.release(10, 20)
        assert not src._windows
    finally:
        src.close()
    src = eval_cli._Source(f"{d / 'c.npz'}:a", "pred")
    try:
        assert not src._mapped and src._stream is not None
        np.testing.assert_array_equal(src.rows(0, 5), x[:5])
    finally:
        src.close()


def test_softmax_options_and_axis1_layout(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 6, 4))
    y = rng.integers(0, 6, (300, 4))
    y[::7, 1] = 2
    w = rng.uniform(0.5, 2, 6)
    sw = rng.uniform(0.1, 1, (300, 4))
    for name, a in dict(x=x, y=y, w=w, sw=sw).items():
        np.save(tmp_path / f"{name}.npy", a)
    r = run_json([tmp_path / "x.npy", tmp_path / "y.npy", "--axis", 1, "--weight",
                  tmp_path / "w.npy", "--sample-weight", tmp_path / "sw.npy", "--ignore-index",
                  2, "--label-smoothing", 0.1, "--chunk-rows", 33], capsys)
    want = fastloss.softmax_cross_entropy(x, y, axis=1, weight=w, sample_weight=sw,
                                          ignore_index=2, label_smoothing=0.1)
    assert r["loss"] == pytest.approx(want, rel=RTOL)
    assert r["n_rows"] == 1200 and r["n_ignored"] == (y == 2).sum()


def test_options_beyond_pytorch(data, capsys):
    d, x, y = data
    if "z_loss" not in eval_cli.LOSSES["softmax_cross_entropy"].extra:
        pytest.skip("this build's softmax kernel has no z_loss")
    r = run_json([d / "x.npy", d / "y.npy", "--z-loss", 1e-3, "--softcap", 3, "--focal-gamma",
                  2, "--poly1-epsilon", 0.5, "--chunk-rows", 300], capsys)
    want = fastloss.softmax_cross_entropy(x, y, z_loss=1e-3, softcap=3.0, focal_gamma=2.0,
                                          poly1_epsilon=0.5)
    assert r["loss"] == pytest.approx(want, rel=RTOL)


@pytest.mark.parametrize("weight_shape", [None, (500, 8), (8,)])
def test_sigmoid_and_mse(tmp_path, capsys, weight_shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    t = (rng.random((500, 8)) < 0.3).astype(np.float32)
    pw = rng.uniform(0.5, 2, 8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    np.save(tmp_path / "pw.npy", pw)
    extra, kw = [], {}
    if weight_shape is not None:
        w = rng.uniform(0, 1, weight_shape)
        np.save(tmp_path / "w.npy", w)
        extra, kw = ["--weight", tmp_path / "w.npy"], {"weight": w}
    r = run_json([tmp_path / "x.npy", tmp_path / "t.npy", "--loss", "bce", "--pos-weight",
                  tmp_path / "pw.npy", "--chunk-rows", 64, *extra], capsys)
    assert r["loss"] == pytest.approx(
        fastloss.sigmoid_cross_entropy(x, t, pos_weight=pw, **kw), rel=RTOL)
    assert r["accuracy"] is None and r["n_rows"] == x.size
    r = run_json([tmp_path / "x.npy", tmp_path / "t.npy", "--loss", "mse", "--chunk-rows", 64,
                  *extra], capsys)
    assert r["loss"] == pytest.approx(fastloss.mse(x, t, **kw), rel=RTOL)


def test_hinge(tmp_path, capsys):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 5))
    y = rng.integers(0, 5, 400)
    sw = rng.uniform(0.1, 1, 400)
    for name, a in dict(x=x, y=y, sw=sw).items():
        np.save(tmp_path / f"{name}.npy", a)
    r = run_json([tmp_path / "x.npy", tmp_path / "y.npy", "--loss", "hinge", "--multiclass",
                  "crammer_singer", "--margin", 0.5, "--squared", "--sample-weight",
                  tmp_path / "sw.npy", "--chunk-rows", 50, "--top-k", 2], capsys)
    want = fastloss.hinge(x, y, multiclass="crammer_singer", margin=0.5, squared=True,
                          sample_weight=sw)
    assert r["loss"] == pytest.approx(want, rel=RTOL)
    assert (r["accuracy"], r["top_k_accuracy"]) == _hits(x, y, 2)


def test_memory_budget_sets_the_chunks(data, capsys):
    d, x, y = data
    r = run_json([d / "x.npy", d / "y.npy"], capsys)
    assert r["chunks"] == 1
    # room for some rows but not all (each row takes >= 2 x 60 bytes: 120 KB in all),
    # with slack for the pages this process touches before the command reads its RSS
    rss = eval_cli._rss_bytes()
    r = run_json([d / "x.npy", d / "y.npy", "--memory", rss + 60_000], capsys)
    assert r["chunks"] > 1
    assert r["loss"] == pytest.approx(fastloss.softmax_cross_entropy(x, y), rel=RTOL)


def test_plan_chunk_rows():
    # two mapped chunks (computed + read ahead) and the copies fit in memory - baseline
    rows = plan_chunk_rows(4000, 8000, 10**9, 1 << 30, 100 << 20)
    assert rows * 4000 <= eval_cli.MAX_CHUNK_BYTES
    rows = plan_chunk_rows(4 << 20, 8 << 20, 10**9, 1 << 30, 100 << 20)
    assert rows * (2 * (4 << 20) + (8 << 20)) <= (1 << 30) - (100 << 20) and rows >= 1
    assert plan_chunk_rows(100, 0, 7, 1 << 30, 0) == 7
    with pytest.raises(eval_cli.UsageError, match="no room for one row"):
        plan_chunk_rows(1 << 20, 0, 10, 2 << 20, 1 << 20)


def test_parse_size():
    assert parse_size("1GiB") == parse_size("1g") == 1 << 30
    assert parse_size("512M") == 512 << 20 and parse_size("1.5k") == 1536
    assert parse_size("1000") == 1000 and parse_size("2GB") == 2 * 10**9
    for bad in ("lots", "1X", "0", "-5M", ""):
        with pytest.raises(Exception, match="size"):
            parse_size(bad)


def test_empty_file(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.empty((0, 4), np.float32))
    np.save(tmp_path / "y.npy", np.empty(0, np.int64))
    r = run_json([tmp_path / "x.npy", tmp_path / "y.npy"], capsys)
    assert r["loss"] is None and r["n_rows"] == 0 and r["accuracy"] is None   # NaN -> null


def _write_bad(d, x, y):
    np.save(d / "c64.npy", x.astype(np.complex64))
    np.save(d / "int.npy", (x * 10).astype(np.int32))
    np.save(d / "short.npy", y[:-1])
    np.save(d / "ylab.npy", np.where(np.arange(1000) == 777, 13, y))
    np.save(d / "fort.npy", np.asfortranarray(x))
    np.save(d / "obj.npy", np.array([None] * 1000, dtype=object), allow_pickle=True)
    np.save(d / "w3.npy", np.ones(3))
    np.savez(d / "two.npz", a=x, b=y)
    (d / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "data.txt").write_text("1 2 3")
    _write_damaged_npz(d, x, y)


def _npy_bytes(a, header_shape=None):
    """The bytes of a .npy of `a` whose header may claim another shape."""
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(a.dtype),
                                             "fortran_order": False,
                                             "shape": header_shape or a.shape})
    return f.getvalue() + a.tobytes()


def _write_damaged_npz(d, x, y):
    """.npz files whose damage np.load refuses: a short member (the zip itself intact, the
    next member and the directory right behind it), and flipped bytes in compressed data."""
    import zipfile
    n = len(y)
    for name, kind in (("short_stored.npz", zipfile.ZIP_STORED),
                       ("short_compressed.npz", zipfile.ZIP_DEFLATED)):
        with zipfile.ZipFile(d / name, "w", kind) as zf:
            zf.writestr("pred.npy", _npy_bytes(x[:n - 8], header_shape=(n,) + x.shape[1:]))
            zf.writestr("target.npy", _npy_bytes(y))
    np.savez(d / "short_target.npz", pred=x)
    with zipfile.ZipFile(d / "short_target.npz", "a") as zf:
        zf.writestr("target.npy", _npy_bytes(y[:n - 1], header_shape=(n,)))
    np.savez(d / "stored.npz", pred=x, target=y)
    raw = bytearray((d / "stored.npz").read_bytes())
    at = raw.find(x[500].tobytes())            # a byte of row 500 of pred, in the file
    raw[at + 1] ^= 0x01
    (d / "flip_stored.npz").write_bytes(bytes(raw))
    np.savez_compressed(d / "packed.npz", pred=x, target=y)
    raw = bytearray((d / "packed.npz").read_bytes())
    with zipfile.ZipFile(d / "packed.npz") as zf:
        info = zf.getinfo("pred.npy")
    name_len, extra_len = np.frombuffer(raw[info.header_offset + 26:info.header_offset + 30],
                                        "<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    for name, pos in (("flip_header.npz", start + 40), ("flip_start.npz", start + 300),
                      ("flip_end.npz", start + info.compress_size - 20)):
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        (d / name).write_bytes(bytes(bad))


BAD = [
    # (argv after the files, exit status, words of the one-line message)
    (["missing.npy", "y.npy"], 1, "pred file"),
    (["x.npy", "missing.npy"], 1, "target file"),
    (["x.npy", "short.npy"], 1, "1000 rows against 999"),
    (["c64.npy", "y.npy"], 1, "dtype complex64"),
    (["int.npy", "y.npy"], 1, "dtype int32"),
    (["x.npy", "ylab.npy", "--chunk-rows", "100"], 1, "label 13 at position (777,)"),
    (["fort.npy", "y.npy"], 1, "Fortran order"),
    (["obj.npy", "y.npy"], 1, "dtype object"),
    (["junk.npy", "y.npy"], 1, "cannot be read"),
    (["data.txt", "y.npy"], 1, "not a .npy or .npz"),
    (["two.npz"], 1, "none is named"),
    (["two.npz:zz", "y.npy"], 1, "no array 'zz'"),
    (["x.npy", "y.npy", "--weight", "w3.npy"], 1, "one value per class, shape (13,)"),
    (["x.npy", "y.npy", "--loss", "mse"], 1, "they must be equal"),
    (["x.npy", "y.npy", "--axis", "0"], 1, "not a class axis"),
    (["x.npy", "x.npy"], 1, "same array"),
    (["short_stored.npz"], 1, "truncated"),
    (["short_compressed.npz"], 1, "truncated"),
    (["short_target.npz"], 1, "truncated"),
    (["flip_stored.npz"], 1, "pred in"),
    (["flip_stored.npz", "--chunk-rows", "64"], 1, "CRC"),
    (["flip_header.npz"], 1, "pred file"),
    (["flip_start.npz"], 1, "pred in"),
    (["flip_end.npz"], 1, "pred in"),
    (["flip_end.npz", "--chunk-rows", "300"], 1, "pred in"),
    # option domains are command-line errors (2), found before any file is opened
    (["x.npy", "missing.npy", "--z-loss", "-1"], 2, "--z-loss must be a finite number >= 0"),
    (["x.npy", "missing.npy", "--softcap", "0"], 2, "--softcap must be"),
    (["x.npy", "missing.npy", "--softcap", "inf"], 2, "--softcap must be"),
    (["x.npy", "missing.npy", "--softcap", "nan"], 2, "--softcap must be"),
    (["x.npy", "missing.npy", "--poly1-epsilon", "inf"], 2, "--poly1-epsilon must be"),
    (["x.npy", "missing.npy", "--focal-gamma", "inf"], 2, "--focal-gamma must be"),
    (["x.npy", "missing.npy", "--loss", "sigmoid", "--focal-alpha", "2"], 2,
     "--focal-alpha must be"),
    (["x.npy", "missing.npy", "--loss", "hinge", "--margin", "nan"], 2, "--margin must be"),
    (["x.npy"], 2, "give TARGET"),
    (["x.npy", "y.npy", "--loss", "cosine"], 2, "unknown loss 'cosine'"),
    (["x.npy", "y.npy", "--loss", "mse", "--label-smoothing", "0.1"], 2,
     "--label-smoothing applies to softmax_cross_entropy"),
    (["x.npy", "y.npy", "--margin", "2"], 2, "--margin applies to hinge"),
    (["x.npy", "y.npy", "--label-smoothing", "1.5"], 2, "in [0, 1]"),
    (["x.npy", "x.npy", "--loss", "mse", "--z-loss", "0.1"], 2, "--z-loss applies to"),
    (["x.npy", "y.npy", "--top-k", "-2"], 2, "--top-k must be >= 0"),
    (["x.npy", "y.npy", "--chunk-rows", "0"], 2, "--chunk-rows must be >= 1"),
    (["x.npy", "y.npy", "--threads", "0"], 2, "--threads must be >= 1"),
    (["x.npy", "y.npy", "--memory", "lots"], 2, "not a size"),
    (["x.npy", "y.npy", "--memory", "1K"], 2, "no room for one row"),
    (["x.npy", "y.npy", "--reduction", "none"], 2, "invalid choice"),
    (["x.npy", "y.npy", "--frobnicate"], 2, "unrecognized arguments"),
]


@pytest.mark.parametrize("argv, status, words", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_errors_are_one_line(data, capsys, argv, status, words):
    d, x, y = data
    _write_bad(d, x, y)
    argv = [str(d / a) if a.split(":")[0].endswith((".npy", ".npz", ".txt")) else a
            for a in argv]
    rc, out, err = run(argv, capsys)
    assert rc == status, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fastloss eval: error: ")
    assert words in err


def test_progress_bar(data, capsys):
    pytest.importorskip("tqdm")
    d = data[0]
    rc, _, err = run([d / "x.npy", d / "y.npy", "--progress", "--chunk-rows", 100], capsys)
    assert rc == 0 and "row/s" in err and "1.00k/1.00k" in err
    rc, _, err = run([d / "x.npy", d / "y.npy", "--no-progress"], capsys)
    assert rc == 0 and err == ""


def test_progress_without_tqdm(data, capsys, monkeypatch):
    d = data[0]
    monkeypatch.setitem(sys.modules, "tqdm", None)          # import tqdm -> ImportError
    rc, out, err = run([d / "x.npy", d / "y.npy", "--progress"], capsys)
    assert rc == 0 and "needs tqdm" in err and "loss" in out


def test_python_m_fastloss_eval(data):
    d, x, y = data
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastloss.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    p = subprocess.run([sys.executable, "-m", "fastloss", "eval", str(d / "x.npy"),
                        str(d / "y.npy"), "--json"], capture_output=True, text=True, env=env,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["loss"] == pytest.approx(
        fastloss.softmax_cross_entropy(x, y), rel=RTOL)
    p = subprocess.run([sys.executable, "-m", "fastloss", "eval", str(d / "nope.npy"),
                        str(d / "y.npy")], capture_output=True, text=True, env=env, timeout=120,
                       check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "nope.npy" in p.stderr


def test_bench_eval_measure_smoke(tmp_path):
    """bench/eval_measure.py runs (tiny sizes, no timing checked): it cannot rot unseen."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench",
                        "eval_measure.py")
    if not os.path.exists(path):
        pytest.skip("no bench/ beside the tests")
    spec = importlib.util.spec_from_file_location("eval_measure", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.measure_file(str(tmp_path), 1 << 20, 1 << 30, repeat=1)
    assert out["rows"] == (1 << 20) // 4000 and out["same_loss_rel_diff"] < 1e-12
    assert out["cli"]["peak_rss_bytes"] > 0 and not os.listdir(tmp_path)
    assert "fastloss eval" in mod.report({"file": out})
