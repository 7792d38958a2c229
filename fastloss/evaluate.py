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

import inspect
import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from . import _api

__all__ = ["Evaluator", "EvalResult", "LOSSES", "resolve_loss"]


# --------------------------------------------------------------- the losses

class _Spec:
    """What the Evaluator needs to know about one loss."""

    def __init__(self, name, defaults, chunk_option, classes):
        self.name = name
        self.defaults = defaults          # constructor options and their defaults
        self.chunk_option = chunk_option  # the per-row array that update() takes
        self.classes = classes            # a class loss: accuracy, rows along axis 0
        self.extra = ()                   # keyword options of the kernel call beyond these


LOSSES = {
    "softmax_cross_entropy": _Spec(
        "softmax_cross_entropy",
        {"weight": None, "ignore_index": -100, "label_smoothing": 0.0, "axis": -1},
        "sample_weight", True),
    "sigmoid_cross_entropy": _Spec(
        "sigmoid_cross_entropy", {"weight": None, "pos_weight": None}, "weight", False),
    "hinge": _Spec(
        "hinge",
        {"margin": 1.0, "squared": False, "multiclass": "ovr", "weight": None, "axis": -1},
        "sample_weight", True),
    "mse": _Spec("mse", {"weight": None}, "weight", False),
}

# Options beyond PyTorch's (SPEC): passed through to the kernels that have them.
_EXTRA_OPTIONS = {
    "softmax_cross_entropy": (_api._softmax, {"z_loss": 0.0, "softcap": None,
                                              "focal_gamma": 0.0, "poly1_epsilon": 0.0}),
    "sigmoid_cross_entropy": (_api._sigmoid, {"focal_gamma": 0.0, "focal_alpha": None,
                                              "poly1_epsilon": 0.0, "ignore_index": None}),
}
for _name, (_fn, _extra) in _EXTRA_OPTIONS.items():
    _params = inspect.signature(_fn).parameters
    LOSSES[_name].extra = tuple(k for k in _extra if k in _params)
    LOSSES[_name].defaults.update({k: _extra[k] for k in LOSSES[_name].extra})

_ALIASES = {
    "softmax": "softmax_cross_entropy", "cross_entropy": "softmax_cross_entropy",
    "ce": "softmax_cross_entropy",
    "sigmoid": "sigmoid_cross_entropy", "bce": "sigmoid_cross_entropy",
    "binary_cross_entropy": "sigmoid_cross_entropy",
    "binary_cross_entropy_with_logits": "sigmoid_cross_entropy",
    "mean_squared_error": "mse",
}

_ARRAY_OPTIONS = ("weight", "pos_weight")
# The reductions an Evaluator can finish with: each chunk's kernel call uses
# the same one, so its weight_sum is that reduction's denominator for the chunk
# (batchmean: the chunk's rows along axis 0; fullmean: its output locations).
_REDUCTIONS = ("mean", "sum", "batchmean", "fullmean")   # compared with np.array_equal in merge()


def resolve_loss(loss):
    """Canonical loss name of ``loss``: a name, an alias, or a fastloss loss function."""
    name = getattr(loss, "__name__", loss) if callable(loss) else loss
    if isinstance(name, str):
        key = name.strip().lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key in LOSSES:
            return key
    raise ValueError("unknown loss %r; expected one of %s (or an alias: %s)"
                     % (loss, ", ".join(LOSSES), ", ".join(sorted(_ALIASES))))


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
        The ``mean`` denominator of the loss (see the README's "What ``mean``
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

    def as_dict(self):
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
    """The checks the kernel call would make on the scalar options, made once, up front."""
    if loss == "softmax_cross_entropy":
        _api._ignore_index(opts["ignore_index"])
        eps = opts["label_smoothing"]
        try:
            ok = 0.0 <= float(eps) <= 1.0
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ValueError("label_smoothing must be a number in [0, 1], not %r" % (eps,))
        _api._softmax_options(*(opts.get(k, 0.0) if k != "softcap" else opts.get(k)
                                for k in ("z_loss", "softcap", "focal_gamma", "poly1_epsilon")))
    elif loss == "sigmoid_cross_entropy":
        _api._sigmoid_options(opts.get("focal_gamma", 0.0), opts.get("focal_alpha"),
                              opts.get("poly1_epsilon", 0.0))
    elif loss == "hinge":
        _api._margin(opts["margin"])


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
    ``softmax_cross_entropy`` come from the same pass over the logits as the
    loss; for multi-class ``hinge`` (integer labels) the hinge kernel has no
    hit counter yet and the counts are taken with NumPy in a second pass over
    each chunk.

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

    def __init__(self, loss="softmax_cross_entropy", *, reduction="mean", top_k=5,
                 n_threads=None, **options):
        self.loss = resolve_loss(loss)
        spec = LOSSES[self.loss]
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

    # ----------------------------------------------------------- state

    def reset(self):
        """Forget every chunk seen (the options stay)."""
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
                tuple((k, v) for k, v in self.options.items() if k not in _ARRAY_OPTIONS))

    def _add_stats(self, loss_sum, weight_sum, n_rows, n_ignored, n_top1, n_topk):
        self._loss = _neumaier(*self._loss, float(loss_sum))
        self._weight = _neumaier(*self._weight, float(weight_sum))
        self.n_rows += int(n_rows)
        self.n_ignored += int(n_ignored)
        self.n_top1 += int(n_top1)
        self.n_topk += int(n_topk)

    @property
    def loss_sum(self):
        """The float64 weighted loss sum so far."""
        return _total(*self._loss)

    @property
    def weight_sum(self):
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
        if self.loss == "softmax_cross_entropy":
            return "integer labels" if t.dtype.kind in "iu" else "probabilities"
        if self.loss == "hinge":
            if x.ndim == 1:
                return "binary targets"
            return "multi-label targets" if t.shape == x.shape else "integer labels"
        return "targets"

    def update(self, pred, target, *, sample_weight=None, weight=None):
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
        if spec.classes and not (self.loss == "hinge" and x.ndim <= 1 and t.shape == x.shape):
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
        if self._signature is not None and x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):
            self._check_signature(sig)     # other dtypes: the kernel's TypeError says more

        nt = self.n_threads
        red = "sum" if self.reduction == "mean" else self.reduction
        k = self.top_k or 0
        if self.loss == "softmax_cross_entropy":
            r = _api._softmax(x, t, opts["weight"], per_chunk, opts["ignore_index"],
                              opts["label_smoothing"], red, opts["axis"], nt, True, False,
                              None, top_k=k, full=True, **{e: opts[e] for e in spec.extra})
            hits = (r.stats["n_top1"], r.stats["n_topk"])
        elif self.loss == "hinge":
            r = _api._hinge(x, t, opts["margin"], opts["squared"], opts["multiclass"],
                            opts["weight"], per_chunk, red, opts["axis"], nt, True, False,
                            None, full=True, top_k=k if sig[2] == "integer labels" else 0)
            hits = (r.stats["n_top1"], r.stats["n_topk"])
        elif self.loss == "sigmoid_cross_entropy":
            w = opts["weight"] if per_chunk is None else per_chunk
            r = _api._sigmoid(x, t, w, opts["pos_weight"], red, nt, True, False, None,
                              full=True, **{e: opts[e] for e in spec.extra})
            hits = (0, 0)
        else:
            w = opts["weight"] if per_chunk is None else per_chunk
            r = _api._mse(x, t, w, red, nt, True, False, None, full=True)
            hits = (0, 0)
        st = r.stats
        self._check_signature(sig)
        self._add_stats(st["loss_sum"], st["weight_sum"], st["n_rows"], st["n_ignored"], *hits)
        return self

    # ----------------------------------------------------------- merge

    def merge(self, other):
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
        self._add_stats(other._loss[0], other._weight[0], other.n_rows, other.n_ignored,
                        other.n_top1, other.n_topk)
        self._loss = _neumaier(*self._loss, other._loss[1])
        self._weight = _neumaier(*self._weight, other._weight[1])
        return self

    def _describe(self):
        opts = ", ".join("%s=%r" % (k, v) for k, v in self.options.items())
        return "%s(reduction=%r, top_k=%r, %s)" % (self.loss, self.reduction, self.top_k, opts)

    def __repr__(self):
        return "Evaluator(%r, reduction=%r, top_k=%r, rows=%d)" % (
            self.loss, self.reduction, self.top_k, self.n_rows)

    # -------------------------------------------------- state as numbers

    # The state as a float64 vector, for the Dask path (fastloss/dask.py), where
    # per-block states travel between workers and are summed in a tree.  Counts
    # are exact in float64 up to 2**53.
    _STATE_FIELDS = ("loss_s", "loss_c", "weight_s", "weight_c", "n_rows", "n_ignored",
                     "n_top1", "n_topk")

    def _state_vector(self):
        return np.array([self._loss[0], self._loss[1], self._weight[0], self._weight[1],
                         self.n_rows, self.n_ignored, self.n_top1, self.n_topk],
                        dtype=np.float64)

    def _merge_state_vector(self, v):
        v = [float(a) for a in v]
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

    def result(self):
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
        return EvalResult(loss=loss, loss_name=self.loss, reduction=self.reduction,
                          loss_sum=loss_sum, weight_sum=weight_sum, n_rows=self.n_rows,
                          n_ignored=self.n_ignored, accuracy=acc,
                          top_k=self.top_k if acc is not None else None,
                          top_k_accuracy=topk)


def _same_array(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
