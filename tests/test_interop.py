"""Any array in, no copy: objects that speak DLPack, the buffer protocol or
__array__ are used as they are, and `out` may be such an object when it is writable."""

import numpy as np
import pytest

import fastloss
from fastloss import _api


class DLPackOnly:
    """An array that speaks only DLPack (no __array__, no buffer protocol)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 6)), rng.integers(0, 6, 20)


def test_dlpack_only_inputs_are_viewed_without_a_copy():
    x, y = _data()
    view = _api._array(DLPackOnly(x))
    assert np.shares_memory(view, x)
    assert fastloss.softmax_cross_entropy(DLPackOnly(x), DLPackOnly(y)) == \
        fastloss.softmax_cross_entropy(x, y)


def test_memory_mapped_inputs(tmp_path):
    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert fastloss.softmax_cross_entropy(mm, y) == fastloss.softmax_cross_entropy(x, y)
    assert _api._float_array(mm, "logits") is mm or np.shares_memory(
        _api._float_array(mm, "logits"), mm)


def test_torch_tensors_in_and_out_without_copies():
    torch = pytest.importorskip("torch")
    x, y = _data()
    xt = torch.from_numpy(x.copy())
    yt = torch.from_numpy(y)
    assert np.shares_memory(_api._float_array(xt, "logits"), xt.numpy())
    g = torch.empty_like(xt)
    value, grad = fastloss.softmax_cross_entropy_value_and_grad(xt, yt, out=g)
    assert grad is g                                  # the caller's tensor, written in place
    ev, eg = fastloss.softmax_cross_entropy_value_and_grad(x, y)
    assert value == ev
    np.testing.assert_array_equal(g.numpy(), eg)
    # in place on the tensor itself
    grad2 = fastloss.softmax_cross_entropy_grad(xt, yt, out=xt)
    assert grad2 is xt
    np.testing.assert_array_equal(xt.numpy(), eg)
    # elementwise losses and a float32 tensor
    p = torch.randn(7, 3)
    t = torch.rand(7, 3)
    out = torch.empty_like(p)
    fastloss.mse_grad(p, t, out=out)
    np.testing.assert_allclose(out.numpy(), fastloss.mse_grad(p.numpy(), t.numpy()))


def test_a_copying_out_is_refused():
    x, y = _data()
    with pytest.raises(ValueError, match="out"):
        fastloss.softmax_cross_entropy_grad(x, y, out=x.tolist())
