"""Evaluation metrics accumulated chunk by chunk: the state behind ``Evaluator(metrics=...)``.

Every metric is a function of a few per-row numbers that the loss's kernel pass already
has (softmax cross-entropy and hinge write the row's argmax and, for softmax, its
confidence ``max_k p_k``, ``sum_k p_k^2`` and entropy) plus counts and fixed histograms
kept here: per-class counts, the confusion matrix, calibration bins, probability
histograms.  Each update adds O(rows) work (one pass over the per-row arrays,
``fastloss._core.class_counts``, into the state's own counts), never O(rows * classes)
beyond the kernel's own pass, and no temporary of the classes' size.  Sigmoid cross-entropy's
statistics are per element: its kernel counts them in the loss's pass (see
:class:`SigmoidMetrics`).

States merge exactly: counts and histograms are integers, float sums are compensated
(Neumaier) pairs, so the order of chunks, workers and merges changes a result only by the
float64 rounding of the chunk partials.

Definitions (each equal to the scikit-learn / torchmetrics function named):

softmax cross-entropy and multi-class hinge (integer labels; rows whose label is
``ignore_index`` are left out; the predicted class is the first index of the row's
maximum, NumPy's ``argmax``):

- ``accuracy``: ``sklearn.metrics.accuracy_score(y, argmax)``.
- ``top_k_accuracy``: the fraction of rows whose target has fewer than ``top_k`` classes
  scoring strictly higher (ties count as hits); equal to
  ``sklearn.metrics.top_k_accuracy_score`` where no score ties the k-th highest.
- ``nll``: ``mean(-log p_y)`` (``sklearn.metrics.log_loss`` without its clipping);
  ``perplexity``: ``exp(nll)``.
- ``brier``: ``mean_i sum_k (p_ik - onehot_ik)^2`` (torchmetrics' / the original
  multi-class Brier score; ``sklearn.metrics.brier_score_loss`` for two classes is half
  of it).
- ``ece``, ``mce``: torchmetrics' ``MulticlassCalibrationError(n_bins, norm="l1" / "max")``:
  the confidence ``max_k p_k`` falls in bin ``j`` when ``j / n_bins <= conf <
  (j + 1) / n_bins`` (``torch.bucketize(..., right=True)``; a confidence of exactly 1 in a
  bin of its own), ``ece = sum_j n_j / n |acc_j - conf_j|``, ``mce = max_j |acc_j -
  conf_j|`` (empty bins count 0).
- ``entropy``: ``mean(-sum_k p_k log p_k)``.
- ``precision``, ``recall``, ``f1``: per class, ``sklearn.metrics.precision_recall_fscore_support
  (y, argmax, labels=range(C), average=None, zero_division=0)``.
- ``macro_f1``: ``sklearn.metrics.f1_score(y, argmax, average="macro", zero_division=0)``
  (the mean over the classes that occur in ``y`` or the predictions).
- ``balanced_accuracy``: ``sklearn.metrics.balanced_accuracy_score(y, argmax)``.
- ``confusion_matrix``: ``sklearn.metrics.confusion_matrix(y, argmax, labels=range(C))``,
  int64, rows true, columns predicted (in ``"all"`` only for ``C <= 1024``).

sigmoid cross-entropy (binary and multi-label; the label axis is the last, every other
axis holds rows; targets must be 0 or 1; predicted positive where ``p >= threshold``):

- ``accuracy``: per element; ``hamming_loss``: ``1 - accuracy``
  (``sklearn.metrics.hamming_loss``); ``subset_accuracy``: rows whose labels are all
  right (``sklearn.metrics.accuracy_score`` on indicator rows).
- ``precision``, ``recall``, ``f1`` per label, ``micro_f1``, ``macro_f1``: scikit-learn's
  on the indicator matrices, ``zero_division=0``.
- ``brier``: ``mean((p - t)^2)``; ``ece``: torchmetrics' ``BinaryCalibrationError``
  over all elements (bins of ``p``, accuracy = the mean target of the bin).
- ``roc_auc``, ``average_precision`` per label and their ``macro_`` means (over the
  labels where they are defined): from a histogram of ``auc_bins`` equal-width bins of
  ``p`` per label and class (Keras' ``AUC(num_thresholds)``).  See :func:`binned_auc` for
  the error bound.  NaN for a label without positives (and, for the AUC, without
  negatives).
- ``p`` is ``1 / (1 + exp(-x))`` in float64, computed by the kernel in the loss's pass; a
  NaN logit is predicted negative, falls in the last calibration bin and the top
  histogram bin, and makes ``brier`` NaN.

mse: ``rmse`` (``sqrt(mean((x - t)^2))``), ``mae``, ``r2``
(``sklearn.metrics.r2_score`` on the flattened arrays), unweighted.
"""

from __future__ import annotations

import math

import numpy as np

from . import _core

__all__ = ["METRICS", "CONFUSION_MATRIX_MAX_CLASSES", "binned_auc", "binned_average_precision"]

CONFUSION_MATRIX_MAX_CLASSES = 1024   # "all" includes the confusion matrix up to this C

_CLASS = ("accuracy", "top_k_accuracy", "precision", "recall", "f1", "macro_f1",
          "balanced_accuracy", "confusion_matrix")
_PROB = ("nll", "perplexity", "brier", "ece", "mce", "entropy")

METRICS = {
    "softmax_cross_entropy": _CLASS[:2] + _PROB + _CLASS[2:],
    "hinge": _CLASS,
    "sigmoid_cross_entropy": ("accuracy", "subset_accuracy", "hamming_loss", "precision",
                              "recall", "f1", "micro_f1", "macro_f1", "brier", "ece",
                              "roc_auc", "average_precision", "macro_roc_auc",
                              "macro_average_precision"),
    "mse": ("rmse", "mae", "r2"),
}


def resolve_metrics(loss, metrics):
    """The tuple of metric names that ``metrics`` (None, "all" or names) asks of ``loss``."""
    if metrics is None:
        return ()
    have = METRICS[loss]
    if isinstance(metrics, str):
        if metrics == "all":
            return have
        metrics = [m for m in metrics.split(",") if m.strip()]
    try:
        names = [str(m).strip().lower() for m in metrics]
    except TypeError:
        raise ValueError("metrics must be None, 'all' or a list of metric names, not %r"
                         % (metrics,)) from None
    for m in names:
        if m not in have:
            raise ValueError("%s has no metric %r; its metrics are %s (or 'all')"
                             % (loss, m, ", ".join(have)))
    return tuple(m for m in have if m in names)          # canonical order, no repeats


# ------------------------------------------------------------ compensated sums

def _comp():
    return np.zeros(2)


def _comp_add(sc, x):
    """Add x (scalar or array) to the compensated pair sc[0] (sum), sc[1] (correction)."""
    s = sc[0]
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        t = s + x
        big = np.abs(s) >= np.abs(x)
        corr = np.where(big, (s - t) + x, (x - t) + s)
        sc[1] = sc[1] + np.where(np.isfinite(corr), corr, 0.0)
    sc[0] = t


def _comp_merge(sc, other):
    _comp_add(sc, other[0])
    _comp_add(sc, other[1])


def _comp_total(sc):
    s = sc[0]
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(s), s + sc[1], s)


def _f(x):
    return float(x)


def _div(a, b):
    """a / b elementwise in float64, 0 where b == 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=np.asarray(b) != 0)
    return out


def _per_class_scores(tp, n_true, n_pred):
    """(precision, recall, f1) per class or label from the true positives, the true and
    the predicted counts: scikit-learn's ``precision_recall_fscore_support(average=None,
    zero_division=0)``."""
    return _div(tp, n_pred), _div(tp, n_true), _div(2 * tp, n_true + n_pred)


def _calibration(count, conf_sum, acc_sum):
    """(ece, mce) from per-bin counts, confidence sums and accuracy sums (torchmetrics)."""
    n = count.sum()
    if n == 0:
        return math.nan, math.nan
    gap = np.abs(_div(acc_sum, count) - _div(conf_sum, count))
    return float(np.sum(gap * (count / n))), float(np.max(gap))


def _bin_edges(n_bins):
    """The calibration bin edges, np.linspace(0, 1, n_bins + 1)."""
    return np.linspace(0.0, 1.0, n_bins + 1)


# ------------------------------------------------------------------ states

class _State:
    """Arrays of a metric state: counts (int64) and compensated pairs (float64, shape
    (2, ...)); merged, flattened and restored generically."""

    _COMP: "tuple[str, ...]" = ()        # names of the compensated arrays

    def arrays(self):
        return self.__dict__["_arrays"]

    def _own(self):
        """Copy the arrays handed out by result() before changing them (copy on write:
        result() itself copies nothing, a big confusion matrix included)."""
        shared = self.__dict__.get("_shared")
        if shared:
            a = self.arrays()
            for k in shared:
                a[k] = a[k].copy()
            self.__dict__["_shared"] = ()

    def _hand_out(self, key):
        """A read-only view of array `key` for a result, copied before the next change."""
        v = self.arrays()[key].view()
        v.flags.writeable = False
        self.__dict__["_shared"] = tuple(self.__dict__.get("_shared", ())) + (key,)
        return v

    def merge(self, other):
        self._own()
        a, b = self.arrays(), other.arrays()
        for k in a:
            if k in self._COMP:
                _comp_merge(a[k], b[k])
            else:
                a[k] += b[k]

    def vector(self):
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel()
                               for v in self.arrays().values()]) \
            if self.arrays() else np.zeros(0)

    def size(self):
        return sum(v.size for v in self.arrays().values())

    def add_vector(self, v):
        self._own()
        v = np.asarray(v, dtype=np.float64)
        pos = 0
        for k, a in self.arrays().items():
            part = v[pos:pos + a.size].reshape(a.shape)
            pos += a.size
            if k in self._COMP:
                _comp_merge(a, part)
            else:
                a += part.astype(a.dtype)
        return pos

    @staticmethod
    def merge_vectors(rows, layout):
        """Rows of flattened states with the given layout [(name, shape, comp)] -> one."""
        out = []
        pos = 0
        for name, shape, comp in layout:
            size = int(np.prod(shape)) if shape else 1
            part = rows[:, pos:pos + size]
            pos += size
            if comp:
                acc = np.zeros((2,) + tuple(shape[1:]))
                for r in part:
                    _comp_merge(acc, r.reshape(shape))
                out.append(acc.ravel())
            else:
                out.append(part.sum(axis=0))
        return np.concatenate(out) if out else np.zeros(0)

    def layout(self):
        return [(k, a.shape, k in self._COMP) for k, a in self.arrays().items()]


class ClassMetrics(_State):
    """Softmax cross-entropy / multi-class hinge: per-row argmax (and softmax statistics)
    of the kernel's pass -> counts, calibration bins and sums.

    An update is one pass over the chunk's per-row arrays (``_core.class_counts``: the
    counts, the confusion matrix and the calibration bins added in place, the float sums
    compensated), no temporary of the classes' size; the per-class scores are formed in
    :meth:`result`.
    """

    _COMP = ("nll", "brier", "entropy", "ece_conf")

    def __init__(self, names, n_classes, n_bins, confusion):
        self.names = names
        self.n_classes = C = n_classes
        self.n_bins = n_bins
        arr = {"n": np.zeros(1, np.int64), "tp": np.zeros(C, np.int64),
               "n_true": np.zeros(C, np.int64), "n_pred": np.zeros(C, np.int64)}
        if confusion:
            arr["confusion"] = np.zeros((C, C), np.int64)
        self.probs = self.wants_probs(names)
        if self.probs:
            self._edges = _bin_edges(n_bins)
            for k in ("nll", "brier", "entropy"):
                arr[k] = _comp()
            arr["ece_count"] = np.zeros(n_bins + 1, np.int64)
            arr["ece_correct"] = np.zeros(n_bins + 1, np.int64)
            arr["ece_conf"] = np.zeros((2, n_bins + 1))
        self.__dict__["_arrays"] = arr

    @staticmethod
    def wants_probs(names):
        """Whether metrics `names` need the softmax statistics of each row."""
        return any(m in names for m in _PROB)

    @staticmethod
    def wants_nll(names):
        """Whether metrics `names` need -log p_y of each row (the kernel's log-sum-exp)."""
        return any(m in names for m in ("nll", "perplexity", "brier"))

    @property
    def needs_lse(self):
        return self.wants_nll(self.names)

    def update(self, y, pred, stats=None, nll_rows=None):
        """One chunk: valid labels y and predictions (int64, rows kept), stats (n, 3) of
        the kept rows (softmax), nll_rows = -log p_y of the kept rows."""
        self._own()
        a = self.arrays()
        a["n"] += y.size
        cm = a.get("confusion")
        cm = None if cm is None else cm.reshape(-1)
        if not (self.probs and y.size):
            _core.class_counts(y, pred, a["tp"], a["n_true"], a["n_pred"], cm)
            return
        conf_sums = np.zeros(self.n_bins + 1)
        ent, nll, brier = _core.class_counts(
            y, pred, a["tp"], a["n_true"], a["n_pred"], cm, stats, nll_rows, self._edges,
            a["ece_count"], a["ece_correct"], conf_sums)
        _comp_add(a["ece_conf"], conf_sums)
        _comp_add(a["entropy"], ent)
        if nll_rows is not None:
            _comp_add(a["nll"], nll)
            _comp_add(a["brier"], brier)

    def result(self, n_topk=None):
        a = self.arrays()
        n = int(a["n"][0])
        tp, nt, npred = a["tp"], a["n_true"], a["n_pred"]
        scores = None
        if any(m in self.names for m in ("precision", "recall", "f1", "macro_f1")):
            scores = dict(zip(("precision", "recall", "f1"), _per_class_scores(tp, nt, npred)))
        out = {}
        for m in self.names:
            if m == "accuracy":
                out[m] = tp.sum() / n if n else math.nan
            elif m == "top_k_accuracy":
                out[m] = n_topk / n if n else math.nan
            elif m in ("precision", "recall", "f1"):
                out[m] = scores[m]
            elif m == "macro_f1":
                present = (nt + npred) > 0
                out[m] = float(scores["f1"][present].mean()) if present.any() else math.nan
            elif m == "balanced_accuracy":
                present = nt > 0
                out[m] = float((tp[present] / nt[present]).mean()) if present.any() \
                    else math.nan
            elif m == "confusion_matrix":
                out[m] = self._hand_out("confusion")
            elif m in ("nll", "perplexity", "brier", "entropy"):
                key = "nll" if m == "perplexity" else m
                v = float(_comp_total(a[key])) / n if n else math.nan
                out[m] = math.exp(v) if m == "perplexity" and v == v else v
            elif m in ("ece", "mce"):
                ece, mce = _calibration(a["ece_count"], _comp_total(a["ece_conf"]),
                                        a["ece_correct"])
                out[m] = ece if m == "ece" else mce
        return {k: (float(v) if isinstance(v, (np.floating, np.integer, float)) else v)
                for k, v in out.items()}

    def reliability(self):
        """(bin edges, per-bin count, mean confidence, accuracy) for a reliability diagram."""
        a = self.arrays()
        if not self.probs:
            return None
        count = a["ece_count"]
        return (np.linspace(0.0, 1.0, self.n_bins + 1), count.copy(),
                _div(_comp_total(a["ece_conf"]), count), _div(a["ece_correct"], count))


def binned_auc(pos, neg):
    """ROC AUC from histograms of the scores of positives and negatives over the same
    increasing bins (last axis): returns (auc, low, high).

    A positive-negative pair in different bins is ordered exactly by the bins; a pair in
    the same bin is not.  Counting those pairs as losses gives the lower step sum
    ``low``, as wins the upper step sum ``high``, so the exact AUC (ties counted one half,
    as scikit-learn's ``roc_auc_score``) lies in ``[low, high]``; the trapezoid over the
    bin edges (``auc``, Keras' interpolation) is their midpoint, so its error is at most
    ``(high - low) / 2 = sum_b pos_b neg_b / (2 P N)``: half the fraction of
    positive-negative pairs that fall in the same bin.  With ``auc_bins`` bins and scores
    spread over many bins that is O(1 / auc_bins).  NaN without positives or negatives.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    P = pos.sum(axis=-1)
    N = neg.sum(axis=-1)
    # negatives strictly below each bin, for the positives of that bin
    below = np.cumsum(neg, axis=-1) - neg
    wins = (pos * below).sum(axis=-1)
    same = (pos * neg).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pn = P * N
        low = np.where(pn > 0, wins / np.where(pn > 0, pn, 1), np.nan)
        high = np.where(pn > 0, (wins + same) / np.where(pn > 0, pn, 1), np.nan)
    return (low + high) / 2, low, high


def binned_average_precision(pos, neg):
    """Average precision from the histograms (thresholds at the bin edges, from the top):
    ``sum_b (R_b - R_{b+1}) P_b`` as scikit-learn's ``average_precision_score`` over the
    bin-edge thresholds.  NaN without positives."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    tp = np.cumsum(pos[..., ::-1], axis=-1)       # predicted positive: bins >= b
    fp = np.cumsum(neg[..., ::-1], axis=-1)
    P = tp[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 1.0)
        dr = pos[..., ::-1] / np.where(P > 0, P, 1)
        ap = (dr * prec).sum(axis=-1)
    return np.where(P[..., 0] > 0, ap, np.nan)


_AUC = ("roc_auc", "average_precision", "macro_roc_auc", "macro_average_precision")


class SigmoidMetrics(_State):
    """Sigmoid cross-entropy: per-label counts, calibration bins and per-label histograms
    of ``p = sigmoid(x)`` (in float64) for positives and negatives.

    The kernel gathers them in the loss's pass (per-thread integer counts, per-block
    float sums added in block order: the same bits for any n_threads); each chunk adds
    O(labels * auc_bins) here.
    """

    _COMP = ("brier", "ece_conf")

    def __init__(self, names, n_labels, n_bins, threshold, auc_bins):
        self.names = names
        self.n_labels = L = n_labels
        self.n_bins, self.threshold, self.auc_bins = n_bins, threshold, auc_bins
        arr = {"n": np.zeros(1, np.int64), "n_rows": np.zeros(1, np.int64),
               "rows_right": np.zeros(1, np.int64), "tp": np.zeros(L, np.int64),
               "n_true": np.zeros(L, np.int64), "n_pred": np.zeros(L, np.int64),
               "brier": _comp(), "ece_count": np.zeros(n_bins + 1, np.int64),
               "ece_pos": np.zeros(n_bins + 1, np.int64), "ece_conf": np.zeros((2, n_bins + 1))}
        self.auc = any(m in names for m in _AUC)
        if self.auc:
            arr["hist"] = np.zeros((L, 2, auc_bins), np.int64)    # [label, negative/positive, bin]
        self.__dict__["_arrays"] = arr

    @staticmethod
    def check_target(t, ignore_index=None):
        t = np.asarray(t)
        ok = (t == 0) | (t == 1)
        if ignore_index is not None:
            ok |= t == ignore_index
        if t.dtype.kind in "biuf" and not np.all(ok):
            bad = t[~ok].ravel()[0]
            raise ValueError("the metrics of sigmoid_cross_entropy need targets that are 0 or "
                             "1%s; target has %r"
                             % ("" if ignore_index is None else " (or ignore_index)",
                                bad.item()))

    @staticmethod
    def kernel_request(names, n_labels, n_bins, threshold, auc_bins):
        """The sigmoid kernel's metrics request for a chunk: (threshold, n_bins,
        auc_bins, n_labels, label_counts, counts, sums), the fields of fastloss.h's
        fl_sigmoid_metrics, with fresh output arrays.  n_labels is the last axis
        (1 for 1-d predictions: every element a row of its own)."""
        B = auc_bins if any(m in names for m in _AUC) else 0
        nb1 = n_bins + 1
        return (float(threshold), n_bins, B, n_labels,
                np.empty(n_labels * (3 + 2 * B), np.int64), np.empty(3 + 2 * nb1, np.int64),
                np.empty(1 + nb1, np.float64))

    def update(self, outs):
        """One chunk's statistics from the kernel's pass (a :meth:`kernel_request`
        after the call)."""
        self._own()
        a = self.arrays()
        L = self.n_labels
        B = outs[2]
        lc, cnt, sums = outs[4], outs[5], outs[6]
        nb1 = self.n_bins + 1
        lc = lc.reshape(-1, 3 + 2 * B)
        a["tp"] += lc[:, 0]
        a["n_true"] += lc[:, 1]
        a["n_pred"] += lc[:, 2]
        if self.auc:
            a["hist"] += lc[:, 3:].reshape(L, 2, B)
        a["n"] += cnt[0]
        a["n_rows"] += cnt[1]
        a["rows_right"] += cnt[2]
        a["ece_count"] += cnt[3:3 + nb1]
        a["ece_pos"] += cnt[3 + nb1:]
        _comp_add(a["brier"], sums[0])
        _comp_add(a["ece_conf"], sums[1:])

    def result(self, n_topk=None):
        a = self.arrays()
        n = int(a["n"][0])
        tp, nt, npred = a["tp"], a["n_true"], a["n_pred"]
        right = n - int((nt + npred - 2 * tp).sum())         # elements predicted right
        scores = dict(zip(("precision", "recall", "f1"), _per_class_scores(tp, nt, npred)))
        out = {}
        auc = ap = None
        if self.auc:
            auc = binned_auc(a["hist"][:, 1], a["hist"][:, 0])[0]
            ap = binned_average_precision(a["hist"][:, 1], a["hist"][:, 0])
        for m in self.names:
            if m == "accuracy":
                out[m] = right / n if n else math.nan
            elif m == "hamming_loss":
                out[m] = 1.0 - right / n if n else math.nan
            elif m == "subset_accuracy":
                rows = int(a["n_rows"][0])
                out[m] = int(a["rows_right"][0]) / rows if rows else math.nan
            elif m in ("precision", "recall", "f1"):
                out[m] = scores[m]
            elif m == "micro_f1":
                out[m] = float(_div(2 * tp.sum(), nt.sum() + npred.sum()))
            elif m == "macro_f1":
                out[m] = float(scores["f1"].mean()) if tp.size else math.nan
            elif m == "brier":
                out[m] = float(_comp_total(a["brier"])) / n if n else math.nan
            elif m == "ece":
                out[m] = _calibration(a["ece_count"], _comp_total(a["ece_conf"]),
                                      a["ece_pos"])[0]
            elif m == "roc_auc":
                out[m] = auc
            elif m == "average_precision":
                out[m] = ap
            elif m == "macro_roc_auc":
                out[m] = _nanmean(auc)
            elif m == "macro_average_precision":
                out[m] = _nanmean(ap)
        return {k: (float(v) if isinstance(v, (np.floating, np.integer, float)) else v)
                for k, v in out.items()}

    def reliability(self):
        a = self.arrays()
        count = a["ece_count"]
        return (np.linspace(0.0, 1.0, self.n_bins + 1), count.copy(),
                _div(_comp_total(a["ece_conf"]), count), _div(a["ece_pos"], count))


def _nanmean(v):
    v = np.asarray(v, dtype=np.float64)
    ok = ~np.isnan(v)
    return float(v[ok].mean()) if ok.any() else math.nan


class MseMetrics(_State):
    """MSE: rmse, mae and r2 from sums (unweighted); the target's sum of squared
    deviations merges by Chan's rule (count, mean, M2)."""

    _COMP = ("ss_res", "abs")

    def __init__(self, names):
        self.names = names
        self.__dict__["_arrays"] = {"n": np.zeros(1, np.int64), "ss_res": _comp(),
                                    "abs": _comp(), "mean_m2": np.zeros(2)}

    def update(self, x, t, ss_res=None):
        a = self.arrays()
        x = np.asarray(x, dtype=np.float64).ravel()
        t = np.asarray(t, dtype=np.float64).ravel()
        d = x - t
        _comp_add(a["ss_res"], np.dot(d, d) if ss_res is None else ss_res)
        _comp_add(a["abs"], np.abs(d).sum())
        if t.size:
            m = t.mean()
            e = t - m
            self._chan(int(a["n"][0]), a["mean_m2"], t.size, m, float(np.dot(e, e)))
        a["n"] += t.size

    @staticmethod
    def _chan(n_a, mm, n_b, mean_b, m2_b):
        n = n_a + n_b
        delta = mean_b - mm[0]
        mm[1] = mm[1] + m2_b + delta * delta * n_a * n_b / n
        mm[0] = mm[0] + delta * n_b / n

    def merge(self, other):
        a, b = self.arrays(), other.arrays()
        nb = int(b["n"][0])
        if nb:
            self._chan(int(a["n"][0]), a["mean_m2"], nb, b["mean_m2"][0], b["mean_m2"][1])
        a["n"] += b["n"]
        _comp_merge(a["ss_res"], b["ss_res"])
        _comp_merge(a["abs"], b["abs"])

    def add_vector(self, v):
        other = MseMetrics(self.names)
        pos = _State.add_vector(other, v)
        self.merge(other)
        return pos

    @staticmethod
    def merge_vectors(rows, layout):
        acc = MseMetrics(())
        for r in rows:
            acc.add_vector(r)
        return acc.vector()

    def result(self, n_topk=None):
        a = self.arrays()
        n = int(a["n"][0])
        ss = float(_comp_total(a["ss_res"]))
        out = {}
        for m in self.names:
            if m == "rmse":
                out[m] = math.sqrt(ss / n) if n else math.nan
            elif m == "mae":
                out[m] = float(_comp_total(a["abs"])) / n if n else math.nan
            elif m == "r2":
                tot = float(a["mean_m2"][1])
                if n < 2:
                    out[m] = math.nan
                elif tot == 0:                     # scikit-learn's force_finite rule
                    out[m] = 1.0 if ss == 0 else 0.0
                else:
                    out[m] = 1.0 - ss / tot
        return out

    def reliability(self):
        return None
