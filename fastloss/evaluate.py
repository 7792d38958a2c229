"""Streaming evaluation: a loss and its metrics over any number of chunks.

:class:`Evaluator` keeps what the kernels return with each call (the float64
loss sum, the ``mean`` denominator, the row counts and, for class losses, the
top-1 / top-k hit counts) and adds them up, so that a loss over data that
arrives in pieces (batches of a data loader, chunks of a memory-mapped file,
blocks of a Dask array, workers of a cluster) equals the one call over the
concatenation.  ``fastloss eval`` (fastloss/eval_cli.py) and
``fastloss.dask.evaluate`` are built on it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _registry
from . import metrics as _metrics

__all__ = ["Evaluator", "EvalResult", "LOSSES", "resolve_loss"]


# --------------------------------------------------------------- the losses

class _Spec:
    """What the Evaluator needs to know about one loss, read off its registry entry
    (fastloss/_registry.py)."""

    def __init__(self, info):
        self.info = info
        self.name = info.name
        # constructor options and their defaults: the options that hold for every chunk
        self.defaults = {k: info.option_info[k].default for k in info.loss_options()}
        self.chunk_option = info.chunk_option    # the per-row array that update() takes
        self.classes = info.classes              # a class loss: accuracy, rows along axis 0
        # keyword options beyond PyTorch's (those without a torch counterpart)
        self.extra = tuple(k for k in self.defaults if info.option_info[k].beyond_torch)


class _Specs(Mapping):
    """Loss name -> :class:`_Spec`, derived from the registry in effect."""

    def __getitem__(self, name):
        return _Spec(_registry.current()[name])

    def __iter__(self):
        return iter(_registry.current())

    def __len__(self):
        return len(_registry.current())


LOSSES = _Specs()


def resolve_loss(loss: Any) -> str:
    """Canonical loss name of ``loss``: a name, an alias, or a fastloss loss function."""
    return _registry.resolve(loss)


_ARRAY_OPTIONS = ("weight", "pos_weight")   # compared with np.array_equal in merge()
# The reductions an Evaluator can finish with: each chunk's kernel call uses
# the same one, so its weight_sum is that reduction's denominator for the chunk
# (batchmean: the chunk's rows along axis 0; fullmean: its output locations).
_REDUCTIONS = ("mean", "sum", "batchmean", "fullmean")


# ------------------------------------------------------------- the result

@dataclass(frozen=True)
class EvalResult:
    """What :meth:`Evaluator.result` returns.

    Attributes
    ----------
    loss : float
        ``loss_sum / weight_sum`` for ``reduction="mean"`` (NaN when nothing
        was counted), ``loss_sum`` for ``"sum"``.
    loss_name, reduction : str
    loss_sum : float
        Weighted sum of the per-row (per-element) losses, float64.
    weight_sum : float
        The ``mean`` denominator of the loss (the user guide's "What ``mean``
        means").
    n_rows : int
        Rows seen (class losses: positions of the row shape; elementwise
        losses: elements).
    n_ignored : int
        Rows whose label was ``ignore_index`` (softmax cross-entropy).
    accuracy, top_k_accuracy : float or None
        Fraction of the counted rows (not ignored) whose target class has
        fewer than 1 (top-1) or ``top_k`` classes scoring strictly higher;
        ties count as hits, a NaN target score as a miss.  Unweighted.  NaN
        when no row was counted; None where it does not apply (elementwise
        losses, probability or multi-label targets, binary hinge, or
        ``top_k=None``).
    top_k : int or None
    metrics : dict
        The metrics asked for with ``Evaluator(metrics=...)``: name -> float or ndarray
        (per-class arrays, the confusion matrix); empty without ``metrics``.
    """

    loss: float
    loss_name: str
    reduction: str
    loss_sum: float
    weight_sum: float
    n_rows: int
    n_ignored: int
    accuracy: Optional[float]
    top_k: Optional[int]
    top_k_accuracy: Optional[float]
    metrics: dict = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """The fields as a dict (NaN kept as float('nan'))."""
        return asdict(self)


# --------------------------------------------------- float64 sums of partials

def _neumaier(s, c, x):
    """Add x to the compensated sum (s, c) (Neumaier's variant of Kahan)."""
    t = s + x
    if abs(s) >= abs(x):
        c += (s - t) + x
    else:
        c += (x - t) + s
    return t, c


def _total(s, c):
    return s + c if math.isfinite(s) else s


# ------------------------------------------------------------ the evaluator

def _check_scalar_options(loss, opts):
    """The checks a kernel call makes on the scalar options, made once, up front: the
    loss's driver on zero rows with them (array options are checked against each chunk's
    shapes, the class axis against its dimensions)."""
    info = _registry.current()[loss]
    scalars = {k: v for k, v in opts.items()
               if info.option_info[k].kind not in ("array", "out") and k != "axis"}
    x = np.zeros((0, 1))
    t = np.zeros((0,), np.int64) if "labels" in info.targets else np.zeros((0, 1))
    info.driver(x, t, reduction="sum", **scalars)


class Evaluator:
    """Streaming loss and metrics: ``update`` over chunks, ``result`` at the end.

    ``Evaluator(loss, **options)`` accumulates, chunk after chunk, what one
    call of ``loss`` over the concatenation of the chunks (along axis 0, the
    rows) would return, together with accuracy and top-k accuracy for class
    losses:

    .. math:: \\text{mean} = \\frac{\\sum_{\\text{chunks}} \\text{loss\\_sum}}
                                   {\\sum_{\\text{chunks}} \\text{weight\\_sum}}

    where each chunk's ``loss_sum`` (weighted loss sum) and ``weight_sum``
    (the ``mean`` denominator of that loss: class weights of the non-ignored
    labels times sample weights for softmax cross-entropy, the number of
    elements for sigmoid cross-entropy, and so on) come from the same kernel
    pass that computes the loss, in float64.  The chunk partials are added
    with compensated (Neumaier) summation, so the result differs from the
    single call only by the float64 rounding of the chunk partials (a few
    ULP of float64; the loss itself is never computed in a lower precision
    than in the single call).  The top-1 and top-k hit counts of
    ``softmax_cross_entropy`` and of multi-class ``hinge`` (integer labels)
    come from the kernel, in the same pass over the logits as the loss.

    Parameters
    ----------
    loss : str or callable
        ``"softmax_cross_entropy"``, ``"sigmoid_cross_entropy"``, ``"hinge"``
        or ``"mse"`` (aliases: ``softmax``, ``ce``, ``cross_entropy``,
        ``sigmoid``, ``bce``, ...), or the fastloss function itself.
    reduction : {"mean", "sum", "batchmean", "fullmean"}, default "mean"
        How :meth:`result` reduces, as the loss function does over the
        concatenated chunks (``"batchmean"`` divides by the rows along axis
        0, ``"fullmean"`` by every output location; ``"none"`` keeps per-row
        values, which an evaluator does not store).
    top_k : int or None, default 5
        k of the top-k accuracy (class losses with integer labels).  None
        turns the hit counts off (for ``softmax_cross_entropy`` with at most
        32 classes that leaves its fastest kernel path on).
    n_threads : int, optional
        Threads of each kernel call; results do not depend on it.
    metrics : None, "all" or list of str
        Evaluation metrics computed from the same kernel pass (the row's argmax and,
        for softmax cross-entropy, its confidence, ``sum_k p_k^2`` and entropy) plus
        per-class counts and fixed histograms; ``result().metrics`` maps each name to
        a float or an ndarray.  softmax CE: ``accuracy``, ``top_k_accuracy``, ``nll``,
        ``perplexity``, ``brier``, ``ece``, ``mce``, ``entropy``, ``precision``,
        ``recall``, ``f1`` (per class), ``macro_f1``, ``balanced_accuracy``,
        ``confusion_matrix`` (in ``"all"`` for at most 1024 classes); multi-class
        hinge: the same without the probability metrics; sigmoid CE: ``accuracy``,
        ``subset_accuracy``, ``hamming_loss``, ``precision``, ``recall``, ``f1`` (per
        label), ``micro_f1``, ``macro_f1``, ``brier``, ``ece``, ``roc_auc``,
        ``average_precision`` (per label, binned) and their ``macro_`` means; mse:
        ``rmse``, ``mae``, ``r2``.  Unweighted; rows with ``ignore_index`` left out;
        the prediction is the first maximum of the row.  The definitions, and the
        scikit-learn / torchmetrics function each equals, are in
        :mod:`fastloss.metrics`; the binned AUC's error bound in
        :func:`fastloss.metrics.binned_auc`.
    n_bins : int, default 15
        Equal-width confidence bins of ``ece`` / ``mce``.
    threshold : float, default 0.5
        Sigmoid CE: an element is predicted positive where ``p >= threshold``.
    auc_bins : int, default 1000
        Sigmoid CE: probability bins of ``roc_auc`` / ``average_precision``.
    **options
        The loss's options that hold for every chunk: ``weight`` (class
        weights; for sigmoid CE and MSE an elementwise weight that broadcasts
        to every chunk, e.g. one value per column), ``ignore_index``,
        ``label_smoothing``, ``axis`` (the class axis; it may not be 0, the
        axis chunks are stacked along), ``pos_weight``, ``margin``,
        ``squared``, ``multiclass``, and the options beyond PyTorch's where
        the loss has them (``z_loss``, ``softcap``, ``focal_gamma``,
        ``focal_alpha``, ``poly1_epsilon``).  Per-row weights go with their
        chunk to :meth:`update`.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.standard_normal((1000, 10))
    >>> labels = rng.integers(0, 10, 1000)
    >>> ev = fastloss.Evaluator("softmax_cross_entropy", top_k=3)
    >>> for i in range(0, 1000, 300):
    ...     _ = ev.update(logits[i:i + 300], labels[i:i + 300])   # returns ev
    >>> r = ev.result()
    >>> bool(np.isclose(r.loss, fastloss.softmax_cross_entropy(logits, labels), rtol=1e-12))
    True
    >>> r.n_rows, r.top_k
    (1000, 3)
    """

    def __init__(self, loss: Any = "softmax_cross_entropy", *, reduction: str = "mean",
                 top_k: Optional[int] = 5, n_threads: Optional[int] = None,
                 metrics: Any = None, n_bins: int = 15, threshold: float = 0.5,
                 auc_bins: int = 1000, **options: Any) -> None:
        self.loss = resolve_loss(loss)
        spec = LOSSES[self.loss]
        self._init_metrics(metrics, n_bins, threshold, auc_bins, top_k)
        self.metrics = metrics if metrics is None or isinstance(metrics, str) \
            else tuple(metrics)
        if reduction not in _REDUCTIONS:
            if reduction == "none":
                raise ValueError("reduction='none' gives per-row losses, which an Evaluator "
                                 "does not keep; use 'mean' or 'sum'")
            raise ValueError("reduction must be %s, not %r"
                             % (", ".join(repr(r) for r in _REDUCTIONS), reduction))
        self.reduction = reduction
        if top_k is not None:
            try:
                top_k = _api._int(top_k)
            except TypeError:
                raise ValueError("top_k must be a positive integer or None, not %r"
                                 % (top_k,)) from None
            if top_k < 1:
                raise ValueError("top_k must be a positive integer or None, not %r" % (top_k,))
        self.top_k = top_k
        _api._threads(n_threads)                       # validates
        self.n_threads = n_threads
        unknown = sorted(set(options) - set(spec.defaults))
        if unknown:
            name = unknown[0]
            if name == spec.chunk_option:
                raise ValueError("%s is per row: pass it with each chunk, "
                                 "update(pred, target, %s=...)" % (name, name))
            raise ValueError("%s takes no option %r; its options are %s (per chunk: %s)"
                             % (self.loss, name, ", ".join(spec.defaults), spec.chunk_option))
        opts = dict(spec.defaults)
        opts.update(options)
        if spec.classes:
            try:
                opts["axis"] = _api._int(opts["axis"])
            except TypeError:
                raise ValueError("axis must be an integer, not %r" % (opts["axis"],)) from None
        _check_scalar_options(self.loss, opts)   # before any chunk: a bad option is no data error
        for name in _ARRAY_OPTIONS:
            if opts.get(name) is not None:
                opts[name] = np.array(opts[name])      # a private copy: merge() compares it
        self.options = opts
        self._signature = None       # (pred dtype, pred.shape[1:], target kind) of the chunks
        self.reset()

    # --------------------------------------------------------- metrics

    def _init_metrics(self, metrics, n_bins, threshold, auc_bins, top_k):
        names = _metrics.resolve_metrics(self.loss, metrics)
        self._metrics_all = isinstance(metrics, str) and metrics == "all"
        if "top_k_accuracy" in names and top_k is None:
            if not self._metrics_all:
                raise ValueError("metric 'top_k_accuracy' needs top_k (an integer), not None")
            names = tuple(m for m in names if m != "top_k_accuracy")
        for name, v, lo in (("n_bins", n_bins, 1), ("auc_bins", auc_bins, 2)):
            try:
                v = _api._int(v)
            except TypeError:
                raise ValueError("%s must be an integer, not %r" % (name, v)) from None
            if not lo <= v <= 1 << 20:
                raise ValueError("%s must be in [%d, %d], not %d" % (name, lo, 1 << 20, v))
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(
                threshold, (int, float, np.integer, np.floating)) or not 0 <= threshold <= 1:
            raise ValueError("threshold must be a number in [0, 1], not %r" % (threshold,))
        self.metric_names = names
        self.n_bins = _api._int(n_bins)
        self.threshold = float(threshold)
        self.auc_bins = _api._int(auc_bins)

    def _metric_width(self, sig):
        """Classes (class losses) or labels (sigmoid) of chunks with signature sig."""
        rest = sig[1]
        if LOSSES[self.loss].classes:
            if not rest:
                return 1
            ax = self.options["axis"] % (len(rest) + 1)
            return rest[ax - 1]
        return rest[-1] if rest else 1

    def _new_metric_state(self, width):
        names = self.metric_names
        if self.loss in ("softmax_cross_entropy", "hinge"):
            confusion = "confusion_matrix" in names
            if confusion and self._metrics_all and width > _metrics.CONFUSION_MATRIX_MAX_CLASSES:
                names = tuple(m for m in names if m != "confusion_matrix")
                confusion = False
            return _metrics.ClassMetrics(names, width, self.n_bins, confusion)
        if self.loss == "sigmoid_cross_entropy":
            return _metrics.SigmoidMetrics(names, width, self.n_bins, self.threshold,
                                           self.auc_bins)
        return _metrics.MseMetrics(names)

    def _metric_state(self, sig):
        if self._mstate is None and self.metric_names:
            self._mstate = self._new_metric_state(self._metric_width(sig))
        return self._mstate

    def _metrics_target_check(self, x, t, sig):
        if not self.metric_names:
            return
        if self.loss in ("softmax_cross_entropy", "hinge") and sig[2] != "integer labels":
            raise ValueError("the metrics of %s need integer class labels; target holds %s"
                             % (self.loss, sig[2]))
        if self.loss == "sigmoid_cross_entropy":
            _metrics.SigmoidMetrics.check_target(t, self.options.get("ignore_index"))

    def reliability(self):
        """(bin edges, count, mean confidence, accuracy) per calibration bin for a
        reliability diagram, or None (no calibration metrics asked, or MSE)."""
        st = self._mstate
        if st is None:
            return None
        return st.reliability()

    # ----------------------------------------------------------- state

    def reset(self) -> Evaluator:
        """Forget every chunk seen (the options stay)."""
        self._mstate = None
        self._loss = (0.0, 0.0)
        self._weight = (0.0, 0.0)
        self.n_rows = 0
        self.n_ignored = 0
        self.n_top1 = 0
        self.n_topk = 0
        self._signature = None
        return self

    def _config(self):
        return (self.loss, self.reduction, self.top_k,
                tuple((k, v) for k, v in self.options.items() if k not in _ARRAY_OPTIONS),
                self.metric_names, self.n_bins, self.threshold, self.auc_bins)

    def _add_stats(self, loss_sum, weight_sum, n_rows, n_ignored, n_top1, n_topk):
        self._loss = _neumaier(*self._loss, float(loss_sum))
        self._weight = _neumaier(*self._weight, float(weight_sum))
        self.n_rows += int(n_rows)
        self.n_ignored += int(n_ignored)
        self.n_top1 += int(n_top1)
        self.n_topk += int(n_topk)

    @property
    def loss_sum(self) -> float:
        """The float64 weighted loss sum so far."""
        return _total(*self._loss)

    @property
    def weight_sum(self) -> float:
        """The ``mean`` denominator so far."""
        return _total(*self._weight)

    # ---------------------------------------------------------- update

    def _check_signature(self, sig):
        if self._signature is None:
            self._signature = sig
            return
        old = self._signature
        if sig[0] != old[0]:
            raise ValueError("pred has dtype %s but the earlier chunks had %s; the result "
                             "equals one call over the concatenation, so every chunk needs "
                             "the same dtype" % (sig[0], old[0]))
        if sig[1] != old[1]:
            raise ValueError("pred has shape (n, %s) but the earlier chunks had (n, %s): "
                             "chunks are stacked along axis 0 and must agree on the other "
                             "axes" % (", ".join(map(str, sig[1])), ", ".join(map(str, old[1]))))
        if sig[2] != old[2]:
            raise ValueError("target holds %s but the earlier chunks held %s"
                             % (sig[2], old[2]))

    def _target_kind(self, x, t):
        info = LOSSES[self.loss].info
        if not info.classes:
            return "targets"
        if "probs" in info.targets:
            return "integer labels" if t.dtype.kind in "iu" else "probabilities"
        if "binary" in info.targets and x.ndim == 1:
            return "binary targets"
        if "multilabel" in info.targets and t.shape == x.shape:
            return "multi-label targets"
        return "integer labels"

    def update(self, pred: ArrayLike, target: ArrayLike, *,
               sample_weight: Optional[ArrayLike] = None,
               weight: Optional[ArrayLike] = None) -> Evaluator:
        """Add one chunk of rows (axis 0): predictions, targets and per-row weights.

        Parameters
        ----------
        pred, target : array_like
            As the loss function takes them; any number of rows (0 included).
        sample_weight : array_like, optional
            Softmax cross-entropy and hinge: one weight per row of this chunk.
        weight : array_like, optional
            Sigmoid cross-entropy and MSE: an elementwise weight that
            broadcasts to this chunk's pred (when no ``weight`` was given to
            the constructor).

        A chunk that fails a check (shape, dtype, a label out of range)
        raises and leaves the evaluator as it was.  Returns ``self``.
        """
        spec = LOSSES[self.loss]
        given = {"sample_weight": sample_weight, "weight": weight}
        for name, value in given.items():
            if value is not None and name != spec.chunk_option:
                raise ValueError("%s takes no per-chunk %s (per chunk it takes %s)"
                                 % (self.loss, name, spec.chunk_option))
        per_chunk = given[spec.chunk_option]
        if per_chunk is not None and spec.chunk_option == "weight" \
                and self.options["weight"] is not None:
            raise ValueError("weight was given to the Evaluator; a chunk cannot give another")

        x = pred if isinstance(pred, np.ndarray) else np.asarray(pred)
        t = target if isinstance(target, np.ndarray) else np.asarray(target)
        opts = self.options
        if spec.classes and not ("binary" in spec.info.targets and x.ndim <= 1
                                 and t.shape == x.shape):
            if x.ndim < 2 or opts["axis"] % x.ndim == 0:
                raise ValueError(
                    "pred has shape %s with the class axis %d; an Evaluator stacks chunks "
                    "along axis 0, so pred needs rows on axis 0 and the class axis "
                    "elsewhere (e.g. (N, C) or (N, C, d1, ...) with axis=1)"
                    % (x.shape, opts["axis"]))
        elif x.ndim == 0:                   # one element: a chunk of one row
            x = x.reshape(1)
            t = t.reshape(1) if t.ndim == 0 else t
            if per_chunk is not None and np.ndim(per_chunk) == 0:
                per_chunk = np.reshape(per_chunk, 1)
        sig = (x.dtype.newbyteorder("="), x.shape[1:], self._target_kind(x, t))
        if self._signature is not None and (x.dtype.kind == "f" and x.dtype.itemsize in (2, 4, 8)
                                            or _api._is_bf16(x.dtype)):
            self._check_signature(sig)     # other dtypes: the kernel's TypeError says more

        # one driver call, the same for every loss: its options, this chunk's per-row array
        kw = dict(opts)
        if per_chunk is not None or spec.chunk_option not in kw:
            kw[spec.chunk_option] = per_chunk
        k = (self.top_k or 0) if spec.info.hits else 0
        red = "sum" if self.reduction == "mean" else self.reduction
        self._metrics_target_check(x, t, sig)
        mout = self._metric_outputs(x, sig)
        r = spec.info.driver(x, t, reduction=red, n_threads=self.n_threads, top_k=k, **kw,
                             **mout)
        hits = (r.stats["n_top1"], r.stats["n_topk"]) if k else (0, 0)
        st = r.stats
        self._check_signature(sig)
        if self.metric_names:            # nothing raises here: the targets were checked
            self._update_metrics(self._metric_state(sig), x, t, mout, st,
                                 per_chunk is not None)
        self._add_stats(st["loss_sum"], st["weight_sum"], st["n_rows"], st["n_ignored"], *hits)
        return self

    def _metric_outputs(self, x, sig):
        """The per-row output arrays the kernel fills for the metrics."""
        if self.metric_names and self.loss == "sigmoid_cross_entropy":
            return {"metrics_out": _metrics.SigmoidMetrics.kernel_request(
                self.metric_names, self._metric_width(sig), self.n_bins, self.threshold,
                self.auc_bins)}
        if not self.metric_names or self.loss not in ("softmax_cross_entropy", "hinge"):
            return {}
        ax = self.options["axis"] % x.ndim
        row_shape = x.shape[:ax] + x.shape[ax + 1:]
        out = {"argmax_out": np.empty(row_shape, np.int64)}
        if self.loss == "softmax_cross_entropy":
            if _metrics.ClassMetrics.wants_probs(self.metric_names):
                out["stats_out"] = np.empty(row_shape + (3,), np.float64)
            if _metrics.ClassMetrics.wants_nll(self.metric_names):
                out["lse_out"] = np.empty(row_shape, np.float64)
        return out

    def _update_metrics(self, state, x, t, mout, kstats, chunk_weighted=False):
        if self.loss in ("softmax_cross_entropy", "hinge"):
            ax = self.options["axis"] % x.ndim
            y = np.asarray(t)
            valid = None
            if self.loss == "softmax_cross_entropy":
                valid = y != self.options["ignore_index"]
            yv = y.astype(np.int64, copy=False)
            pred = mout["argmax_out"]
            stats = mout.get("stats_out")
            nll = None
            if "lse_out" in mout:
                ysafe = yv if valid is None else np.where(valid, yv, 0)
                zy = _target_logits(x, ysafe, ax).astype(np.float64)
                cap = self.options.get("softcap")
                if cap:
                    zy = cap * np.tanh(zy / cap)
                with np.errstate(invalid="ignore"):
                    nll = mout["lse_out"] - zy
            if valid is not None and not valid.all():
                yv, pred = yv[valid], pred[valid]
                stats = None if stats is None else stats[valid]
                nll = None if nll is None else nll[valid]
            state.update(yv.ravel(), pred.ravel(),
                         None if stats is None else stats.reshape(-1, 3),
                         None if nll is None else nll.ravel())
        elif self.loss == "sigmoid_cross_entropy":
            state.update(mout["metrics_out"])
        else:
            plain = self.options["weight"] is None and not chunk_weighted   # unweighted sum
            state.update(x, t, ss_res=kstats["loss_sum"] if plain else None)

    # ----------------------------------------------------------- merge

    def merge(self, other: Evaluator) -> Evaluator:
        """Add the chunks another evaluator has seen (e.g. a worker's); returns ``self``.

        Both must have the same loss, reduction, top_k and options, and have
        seen chunks of the same dtype and row shape.
        """
        if not isinstance(other, Evaluator):
            raise TypeError("can only merge an Evaluator, not %s" % type(other).__name__)
        if self._config() != other._config() or any(
                not _same_array(self.options.get(n), other.options.get(n))
                for n in _ARRAY_OPTIONS):
            raise ValueError("cannot merge evaluators with different settings: %s vs %s"
                             % (self._describe(), other._describe()))
        if other._signature is not None:
            self._check_signature(other._signature)
        if other._mstate is not None:
            if self._mstate is None:
                self._mstate = self._new_metric_state(other._mstate_width())
            self._mstate.merge(other._mstate)
        self._add_stats(other._loss[0], other._weight[0], other.n_rows, other.n_ignored,
                        other.n_top1, other.n_topk)
        self._loss = _neumaier(*self._loss, other._loss[1])
        self._weight = _neumaier(*self._weight, other._weight[1])
        return self

    def _mstate_width(self):
        st = self._mstate
        return getattr(st, "n_classes", None) or getattr(st, "n_labels", None) or 1

    def _describe(self):
        opts = ", ".join("%s=%r" % (k, v) for k, v in self.options.items())
        return "%s(reduction=%r, top_k=%r, %s)" % (self.loss, self.reduction, self.top_k, opts)

    def __repr__(self) -> str:
        return "Evaluator(%r, reduction=%r, top_k=%r, rows=%d)" % (
            self.loss, self.reduction, self.top_k, self.n_rows)

    # -------------------------------------------------- state as numbers

    # The state as a float64 vector, for the Dask path (fastloss/dask.py), where
    # per-block states travel between workers and are summed in a tree.  Counts
    # are exact in float64 up to 2**53.
    _STATE_FIELDS = ("loss_s", "loss_c", "weight_s", "weight_c", "n_rows", "n_ignored",
                     "n_top1", "n_topk")

    # With metrics, the metric state follows the fields above (counts, histograms and
    # compensated pairs as float64, exact up to 2**53), its layout set by the signature.

    def _state_vector(self):
        base = np.array([self._loss[0], self._loss[1], self._weight[0], self._weight[1],
                         self.n_rows, self.n_ignored, self.n_top1, self.n_topk],
                        dtype=np.float64)
        if not self.metric_names:
            return base
        if self._mstate is None:
            if self._signature is None:
                raise ValueError("an Evaluator with metrics has no state layout before its "
                                 "first update")
            self._metric_state(self._signature)
        return np.concatenate([base, self._mstate.vector()])

    def _merge_state_vector(self, v):
        v = np.asarray(v, dtype=np.float64)
        if self.metric_names and v.size > len(self._STATE_FIELDS):
            if self._mstate is None:
                if self._signature is None:
                    raise ValueError("set the signature before merging a metric state")
                self._metric_state(self._signature)
            self._mstate.add_vector(v[len(self._STATE_FIELDS):])
        v = [float(a) for a in v[:len(self._STATE_FIELDS)]]
        self._loss = _neumaier(*_neumaier(*self._loss, v[0]), v[1])
        self._weight = _neumaier(*_neumaier(*self._weight, v[2]), v[3])
        self.n_rows += int(v[4])
        self.n_ignored += int(v[5])
        self.n_top1 += int(v[6])
        self.n_topk += int(v[7])
        return self

    # ---------------------------------------------------------- result

    def _has_accuracy(self):
        if not self.top_k or not LOSSES[self.loss].classes:
            return False
        if self._signature is None:            # nothing seen yet: label losses say NaN
            return True
        return self._signature[2] == "integer labels"

    def result(self) -> EvalResult:
        """The loss over every chunk seen, and the metrics: an :class:`EvalResult`."""
        loss_sum, weight_sum = self.loss_sum, self.weight_sum
        if self.reduction == "sum":
            loss = loss_sum
        else:
            loss = loss_sum / weight_sum if weight_sum != 0 else math.nan
        acc = topk = None
        if self._has_accuracy():
            counted = self.n_rows - self.n_ignored
            acc = self.n_top1 / counted if counted else math.nan
            topk = self.n_topk / counted if counted else math.nan
        metrics = {}
        if self.metric_names:
            st = self._mstate
            if st is None:       # nothing seen: the metrics of an empty state (NaN, zeros)
                width = self._metric_width(self._signature) if self._signature else 1
                st = self._new_metric_state(width)
            metrics = st.result(self.n_topk)
        return EvalResult(loss=loss, loss_name=self.loss, reduction=self.reduction,
                          loss_sum=loss_sum, weight_sum=weight_sum, n_rows=self.n_rows,
                          n_ignored=self.n_ignored, accuracy=acc,
                          top_k=self.top_k if acc is not None else None,
                          top_k_accuracy=topk, metrics=metrics)


def _target_logits(x, y, ax):
    """x[..., y, ...]: each row's logit of its label y (class axis ax), in x's dtype.
    Rows of a C-contiguous (n, C) x are gathered from the flat array: n reads, no index
    arrays of x's shape."""
    if ax == x.ndim - 1 and x.ndim == 2 and x.flags.c_contiguous:
        C = x.shape[1]
        idx = np.arange(0, x.shape[0] * C, C, dtype=np.intp)
        idx += y
        return x.reshape(-1).take(idx)
    return np.squeeze(np.take_along_axis(x, np.expand_dims(y, ax), ax), ax)


def _same_array(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
