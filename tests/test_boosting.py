"""fastloss.boosting: gradients and Hessians against finite differences of the losses written
in NumPy, both multiclass layouts, the adapters for LightGBM's and XGBoost's native and
scikit-learn APIs (with stand-in data objects), and, where the libraries import, models
trained with the fastloss objectives reaching the built-in objectives' accuracy on digits."""

import numpy as np
import pytest

import fastloss.boosting as flb

H = 1e-4        # central differences of ONE sample's loss (O(1)): error ~ H**2 + eps / H**2 ~ 1e-8


def _softmax_losses(x, y, s):
    """Per-sample -s * log softmax(x)_y for row-major (n, K) scores."""
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -s * logp[np.arange(len(y)), y]


def _logistic_losses(x, y, s):
    return s * (np.logaddexp(0.0, x) - y * x)


def _squared_losses(x, y, s):
    return s * (x - y) ** 2


def _numerical_grad_hess(loss, x):
    """Per element, the first and second central differences of the loss of the element's
    sample (the sum's derivatives: the other samples do not depend on the element)."""
    grad = np.empty_like(x)
    hess = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += H
        xm[i] -= H
        f0, fp, fm = loss(x)[i[0]], loss(xp)[i[0]], loss(xm)[i[0]]
        grad[i] = (fp - fm) / (2 * H)
        hess[i] = (fp - 2 * f0 + fm) / H ** 2
    return grad, hess


def _data(n=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, k)) * 2, rng.integers(0, k, n),
            rng.uniform(0.2, 2.0, n))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_softmax_against_finite_differences(weighted):
    x, y, s = _data()
    sw = s if weighted else None
    grad, hess = flb.softmax_grad_hess(x, y, sw)
    ngrad, nhess = _numerical_grad_hess(
        lambda z: _softmax_losses(z, y, s if weighted else np.ones_like(s)), x)
    np.testing.assert_allclose(grad, ngrad, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hess, nhess, rtol=1e-5, atol=1e-6)
    # and the closed forms
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    w = (s if weighted else np.ones_like(s))[:, None]
    np.testing.assert_allclose(grad, w * (p - np.eye(x.shape[1])[y]), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(hess, w * p * (1 - p), rtol=1e-13, atol=1e-15)


def test_softmax_layouts_agree():
    x, y, s = _data(n=9, k=5, seed=1)
    row_grad, row_hess = flb.softmax_grad_hess(x, y, s)                  # (n, K)
    flat_grad, flat_hess = flb.softmax_grad_hess(x.ravel(), y, s)        # flat, row by row
    assert flat_grad.shape == (45,)
    np.testing.assert_array_equal(flat_grad, row_grad.ravel())
    np.testing.assert_array_equal(flat_hess, row_hess.ravel())
    cm = np.ascontiguousarray(x.T).ravel()                                # LightGBM < 4
    cm_grad, cm_hess = flb.softmax_grad_hess(cm, y, s, layout="class_major")
    np.testing.assert_array_equal(cm_grad, row_grad.T.ravel())
    np.testing.assert_array_equal(cm_hess, row_hess.T.ravel())


def test_float32_scores_and_float_labels():
    x, y, s = _data()
    grad, hess = flb.softmax_grad_hess(x.astype(np.float32), y.astype(np.float32), s)
    assert grad.dtype == hess.dtype == np.float32
    ref_grad, ref_hess = flb.softmax_grad_hess(x, y, s)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hess, ref_hess, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_logistic_against_finite_differences(weighted):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(15) * 3
    y = rng.integers(0, 2, 15).astype(np.float64)
    s = rng.uniform(0.2, 2.0, 15)
    grad, hess = flb.logistic_grad_hess(x, y, s if weighted else None)
    ngrad, nhess = _numerical_grad_hess(
        lambda z: _logistic_losses(z, y, s if weighted else np.ones_like(s)), x)
    np.testing.assert_allclose(grad, ngrad, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hess, nhess, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_squared_error_against_finite_differences(weighted):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(10), rng.standard_normal(10)
    s = rng.uniform(0.2, 2.0, 10)
    grad, hess = flb.squared_error_grad_hess(x, y, s if weighted else None)
    ngrad, nhess = _numerical_grad_hess(
        lambda z: _squared_losses(z, y, s if weighted else np.ones_like(s)), x)
    np.testing.assert_allclose(grad, ngrad, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(hess, nhess, rtol=1e-5, atol=1e-6)


def test_multi_output_with_sample_weights():
    """2-D scores of several binary / regression outputs: one weight per sample (row)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3))
    y = rng.integers(0, 2, (6, 3)).astype(np.float64)
    s = rng.uniform(0.5, 2.0, 6)
    grad, _ = flb.logistic_grad_hess(x, y.ravel(), s)    # XGBoost gives flat labels
    np.testing.assert_allclose(grad, s[:, None] * (1 / (1 + np.exp(-x)) - y), rtol=1e-13)
    grad, hess = flb.squared_error_grad_hess(x, y, s)
    np.testing.assert_allclose(grad, 2 * s[:, None] * (x - y), rtol=1e-14)
    np.testing.assert_allclose(hess, np.broadcast_to(2 * s[:, None], x.shape), rtol=1e-14)


class _FakeLightGBMDataset:
    def __init__(self, label, weight=None):
        self._label, self._weight = np.asarray(label, dtype=np.float32), weight

    def get_label(self):
        return self._label

    def get_weight(self):
        return self._weight


class _FakeDMatrix(_FakeLightGBMDataset):
    def get_weight(self):        # XGBoost: an empty array when there are no weights
        return np.empty(0, np.float32) if self._weight is None else self._weight


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_native_adapters(weighted):
    x, y, s = _data(n=8, k=3, seed=5)
    sw = s if weighted else None
    expected = flb.softmax_grad_hess(x, y, sw)
    for got in (flb.lightgbm_softmax(x, _FakeLightGBMDataset(y, sw)),
                flb.xgboost_softmax(x.astype(np.float32), _FakeDMatrix(y, sw)),
                flb.xgboost_softmax(x.ravel(), _FakeDMatrix(y, sw))):
        for a, e in zip(got, expected):
            np.testing.assert_allclose(a.reshape(e.shape), e, rtol=1e-6, atol=1e-7)
    # LightGBM < 4: flat, class-major in and out
    g, h = flb.lightgbm_softmax(np.ascontiguousarray(x.T).ravel(), _FakeLightGBMDataset(y, sw))
    np.testing.assert_allclose(g, expected[0].T.ravel(), rtol=1e-14)
    np.testing.assert_allclose(h, expected[1].T.ravel(), rtol=1e-14)
    # binary and regression
    b = (y == 1).astype(np.float64)
    for fn, data in [(flb.lightgbm_logistic, _FakeLightGBMDataset(b, sw)),
                     (flb.xgboost_logistic, _FakeDMatrix(b, sw))]:
        for a, e in zip(fn(x[:, 0], data), flb.logistic_grad_hess(x[:, 0], b, sw)):
            np.testing.assert_allclose(a, e, rtol=1e-14)
    for fn, data in [(flb.lightgbm_squared_error, _FakeLightGBMDataset(x[:, 1], sw)),
                     (flb.xgboost_squared_error, _FakeDMatrix(x[:, 1], sw))]:
        for a, e in zip(fn(x[:, 0], data), flb.squared_error_grad_hess(x[:, 0], x[:, 1], sw)):
            np.testing.assert_allclose(a, e, rtol=1e-6)


def test_sklearn_api_signatures():
    """LightGBM's scikit-learn wrapper counts the parameters (3: weight passed third);
    XGBoost's looks for one named sample_weight."""
    import inspect
    for fn in (flb.softmax_objective, flb.logistic_objective, flb.squared_error_objective):
        params = list(inspect.signature(fn).parameters)
        assert params == ["y_true", "y_pred", "sample_weight"]
    x, y, s = _data(n=8, k=3, seed=6)
    for a, e in zip(flb.softmax_objective(y.astype(np.float32), x, s),
                    flb.softmax_grad_hess(x, y, s)):
        np.testing.assert_array_equal(a, e)


def test_errors():
    x, y, _ = _data(n=8, k=3)
    with pytest.raises(ValueError, match="not n_classes times"):
        flb.softmax_grad_hess(x.ravel()[:-1], y)
    with pytest.raises(ValueError, match="whole class numbers"):
        flb.softmax_grad_hess(x, y + 0.5)
    with pytest.raises(ValueError, match="outside"):
        flb.softmax_grad_hess(x, y + 3)
    with pytest.raises(ValueError, match="sample_weight has 3 values"):
        flb.softmax_grad_hess(x, y, np.ones(3))
    with pytest.raises(ValueError, match="layout"):
        flb.softmax_grad_hess(x, y, layout="column")


# ---------------------------------------------------------------- real libraries

def _digits():
    load_digits = pytest.importorskip("sklearn.datasets").load_digits
    train_test_split = pytest.importorskip("sklearn.model_selection").train_test_split
    x, y = load_digits(return_X_y=True)
    # sample weights: make the fastloss objective read them from the data object
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(y))
    return train_test_split(x, y, w, test_size=0.3, random_state=0, stratify=y)


ROUNDS = 40


def test_lightgbm_multiclass_matches_builtin():
    lgb = pytest.importorskip("lightgbm")
    x_tr, x_te, y_tr, y_te, w_tr, _ = _digits()
    params = dict(num_class=10, learning_rate=0.2, num_leaves=15, verbose=-1, seed=0,
                  num_threads=1, deterministic=True, force_row_wise=True)
    builtin = lgb.train(dict(params, objective="multiclass"),
                        lgb.Dataset(x_tr, y_tr, weight=w_tr), ROUNDS)
    ours = lgb.train(dict(params, objective=flb.lightgbm_softmax),
                     lgb.Dataset(x_tr, y_tr, weight=w_tr), ROUNDS)
    acc_builtin = (builtin.predict(x_te).argmax(1) == y_te).mean()
    acc_ours = (ours.predict(x_te).argmax(1) == y_te).mean()     # raw scores: argmax is enough
    assert acc_builtin > 0.9
    assert abs(acc_ours - acc_builtin) <= 0.02, (acc_ours, acc_builtin)
    # the scikit-learn API, weights passed as the third argument
    clf = lgb.LGBMClassifier(objective=flb.softmax_objective, n_estimators=ROUNDS,
                             learning_rate=0.2, num_leaves=15, verbose=-1, random_state=0,
                             n_jobs=1)
    clf.fit(x_tr, y_tr, sample_weight=w_tr)
    with pytest.warns(UserWarning, match="raw scores"):   # custom objective: no probabilities
        raw = clf.predict(x_te)
    acc_sklearn = (raw.argmax(1) == y_te).mean()
    assert abs(acc_sklearn - acc_builtin) <= 0.02, (acc_sklearn, acc_builtin)


def test_lightgbm_binary_and_regression_match_builtin():
    lgb = pytest.importorskip("lightgbm")
    x_tr, x_te, y_tr, y_te, w_tr, _ = _digits()
    params = dict(learning_rate=0.2, num_leaves=15, verbose=-1, seed=0, num_threads=1)
    b_tr, b_te = (y_tr >= 5).astype(float), (y_te >= 5).astype(float)
    acc = {}
    for name, objective in (("builtin", "binary"), ("fastloss", flb.lightgbm_logistic)):
        booster = lgb.train(dict(params, objective=objective, boost_from_average=False),
                            lgb.Dataset(x_tr, b_tr, weight=w_tr), ROUNDS)
        raw = booster.predict(x_te, raw_score=True)
        acc[name] = ((raw > 0) == b_te).mean()
    assert acc["builtin"] > 0.9 and abs(acc["fastloss"] - acc["builtin"]) <= 0.02, acc
    mse = {}
    for name, objective in (("builtin", "regression"), ("fastloss", flb.lightgbm_squared_error)):
        booster = lgb.train(dict(params, objective=objective, boost_from_average=False),
                            lgb.Dataset(x_tr, y_tr.astype(float), weight=w_tr), ROUNDS)
        mse[name] = np.mean((booster.predict(x_te) - y_te) ** 2)
    assert mse["fastloss"] <= 1.2 * mse["builtin"], mse


def test_xgboost_multiclass_matches_builtin():
    xgb = pytest.importorskip("xgboost")
    x_tr, x_te, y_tr, y_te, w_tr, _ = _digits()
    params = dict(num_class=10, eta=0.3, max_depth=4, tree_method="hist", seed=0, nthread=1)
    dtrain = xgb.DMatrix(x_tr, y_tr, weight=w_tr)
    dtest = xgb.DMatrix(x_te)
    builtin = xgb.train(dict(params, objective="multi:softprob"), dtrain, ROUNDS)
    ours = xgb.train(dict(params, disable_default_eval_metric=True), dtrain, ROUNDS,
                     obj=flb.xgboost_softmax)
    acc_builtin = (builtin.predict(dtest).argmax(1) == y_te).mean()
    acc_ours = (ours.predict(dtest, output_margin=True).argmax(1) == y_te).mean()
    assert acc_builtin > 0.9
    assert abs(acc_ours - acc_builtin) <= 0.02, (acc_ours, acc_builtin)
    # the scikit-learn API: sample_weight passed by keyword
    clf = xgb.XGBClassifier(objective=flb.softmax_objective, n_estimators=ROUNDS,
                            learning_rate=0.3, max_depth=4, tree_method="hist",
                            random_state=0, n_jobs=1)
    clf.fit(x_tr, y_tr, sample_weight=w_tr)
    acc_sklearn = (clf.predict(x_te) == y_te).mean()
    assert abs(acc_sklearn - acc_builtin) <= 0.02, (acc_sklearn, acc_builtin)


def test_xgboost_binary_matches_builtin():
    xgb = pytest.importorskip("xgboost")
    x_tr, x_te, y_tr, y_te, w_tr, _ = _digits()
    b_tr, b_te = (y_tr >= 5).astype(float), (y_te >= 5).astype(float)
    params = dict(eta=0.3, max_depth=4, tree_method="hist", seed=0, nthread=1, base_score=0.5)
    dtrain, dtest = xgb.DMatrix(x_tr, b_tr, weight=w_tr), xgb.DMatrix(x_te)
    acc = {}
    for name, kw in (("builtin", dict(params=dict(params, objective="binary:logistic"))),
                     ("fastloss", dict(params=dict(params, disable_default_eval_metric=True),
                                       obj=flb.xgboost_logistic))):
        booster = xgb.train(kw["params"], dtrain, ROUNDS, obj=kw.get("obj"))
        acc[name] = ((booster.predict(dtest, output_margin=True) > 0) == b_te).mean()
    assert acc["builtin"] > 0.9 and abs(acc["fastloss"] - acc["builtin"]) <= 0.02, acc
