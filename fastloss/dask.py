"""fastloss over Dask arrays: ``fastloss.dask.evaluate(pred, target, loss=..., **options)``.

Each block of rows is evaluated on the worker that holds it (``map_blocks``: one kernel call
per block, nothing but a few numbers leaves the worker); the blocks' evaluator states are then
added up in a tree (``dask.array.reduction``, ``split_every`` states per node) and the result
equals the in-memory call, to the float64 rounding of the block partials.

Runs on whatever scheduler is active: the local threaded one by default, or a cluster::

    from dask.distributed import Client
    client = Client("scheduler-address:8786")     # or LocalCluster(n_workers=2)
    fastloss.dask.evaluate(logits, labels, loss="softmax_cross_entropy", top_k=5)

Needs the optional ``dask[array]`` (``dask[array,distributed]`` for a cluster).
"""

from __future__ import annotations

import math
import re

import numpy as np

def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:                                  # pragma: no cover
        raise ImportError("fastloss.dask needs Dask: pip install 'dask[array,distributed]' "
                          "(%s)" % exc) from None
    return dask, da


dask, da = _import_dask()

from .evaluate import LOSSES, EvalResult, Evaluator, _neumaier, resolve_loss

__all__ = ["evaluate"]

_K = len(Evaluator._STATE_FIELDS)


def evaluate(pred, target, *, loss="softmax_cross_entropy", sample_weight=None, weight=None,
             split_every=None, compute=True, **options):
    """Loss and metrics of ``loss`` over Dask arrays chunked along rows (axis 0).

    Parameters
    ----------
    pred, target : dask.array.Array or array_like
        As the loss takes them, with rows on axis 0 (class losses: the class
        axis elsewhere).  Blocks along the other axes are merged (rechunked)
        so that each block holds whole rows; ``target`` and per-row weights
        are rechunked to pred's row blocks.
    loss : str or callable
        As for :class:`fastloss.Evaluator`.
    sample_weight : dask or NumPy array, optional
        Softmax cross-entropy and hinge: one weight per row (the row shape).
    weight : array_like, optional
        Softmax cross-entropy and hinge: class weights.  Sigmoid cross-entropy
        and MSE: an elementwise weight; one of pred's shape (a Dask array, or
        any array with pred's rows on axis 0) is split with the rows, a
        smaller one broadcasts to every block.
    split_every : int, optional
        Fan-in of the tree reduction of the block states (Dask's default).
    compute : bool, default True
        False returns a ``dask.delayed`` object whose ``compute()`` gives the
        result, to be computed together with other work.
    **options
        ``reduction``, ``top_k``, ``n_threads`` and the loss's options, as for
        :class:`fastloss.Evaluator`.

    Returns
    -------
    EvalResult
        The same as ``Evaluator(loss, **options).update(pred, target).result()``
        on the whole arrays in memory (to float64 rounding of the block sums).

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastloss, fastloss.dask
    >>> x = da.random.default_rng(0).standard_normal((10_000, 10), chunks=(2_500, 10))
    >>> y = da.random.default_rng(1).integers(0, 10, 10_000, chunks=2_500)
    >>> r = fastloss.dask.evaluate(x, y, loss="softmax_cross_entropy", top_k=3)
    >>> bool(np.isclose(r.loss, fastloss.softmax_cross_entropy(x.compute(), y.compute()),
    ...                 rtol=1e-12))
    True
    """
    loss = resolve_loss(loss)
    spec = LOSSES[loss]
    pred = da.asarray(pred)
    if pred.ndim == 0:
        pred = pred.reshape(1)
    if any(math.isnan(c) for c in pred.chunks[0]):
        raise ValueError("pred has unknown chunk sizes; call pred.compute_chunk_sizes() first")
    n = pred.shape[0]

    # Which weight is split with the rows, which goes to every block.
    per_row = None
    if spec.chunk_option == "sample_weight":
        per_row = sample_weight
        if weight is not None:
            options["weight"] = weight
    else:
        if sample_weight is not None:
            raise ValueError("%s takes no sample_weight; use weight (elementwise)" % loss)
        if weight is not None:
            w_ndim = np.ndim(weight) if not isinstance(weight, da.Array) else weight.ndim
            w_shape = weight.shape if hasattr(weight, "shape") else np.shape(weight)
            if isinstance(weight, da.Array) or (
                    w_ndim == pred.ndim and w_shape[0] == n and n != 1):
                per_row = weight
            else:
                options["weight"] = np.asarray(weight)

    proto = Evaluator(loss, **options)            # validates the loss and its options
    ctor = {"reduction": proto.reduction, "top_k": proto.top_k, "n_threads": proto.n_threads,
            **proto.options}

    class_ax = None
    if spec.classes and pred.ndim >= 2:
        class_ax = proto.options["axis"] % pred.ndim
        if class_ax == 0:
            raise ValueError("the class axis of pred (shape %s) is axis 0, which holds the "
                             "rows; give axis=1 or -1" % (pred.shape,))
    pred = pred.rechunk({i: -1 for i in range(1, pred.ndim)})
    row_chunks = pred.chunks[0]

    target, t_squeeze = _align(target, "target", pred, class_ax, row_chunks)
    arrays = [pred, target]
    squeeze = [None, t_squeeze]
    if per_row is not None:
        name = spec.chunk_option
        w, w_squeeze = _align(per_row, name, pred, class_ax, row_chunks)
        arrays.append(w)
        squeeze.append(w_squeeze)

    # Check dtypes, shapes and options on empty blocks, here, before any work is sent out.
    empties = [np.empty((0,) + a.shape[1:], a.dtype) for a in arrays]
    empties = [e if s is None else np.squeeze(e, axis=s) for e, s in zip(empties, squeeze)]
    check = Evaluator(loss, **ctor)
    check.update(*empties[:2], **({spec.chunk_option: empties[2]} if per_row is not None
                                  else {}))
    signature = check._signature

    nb = len(row_chunks)
    extra = {}
    if pred.ndim == 1:
        extra["new_axis"] = [1]
    elif pred.ndim > 2:
        extra["drop_axis"] = list(range(2, pred.ndim))
    states = da.map_blocks(
        _block_state, *arrays, loss=loss, ctor=ctor, squeeze=tuple(squeeze),
        key=spec.chunk_option if per_row is not None else None,
        chunks=((1,) * nb, (_K,)), dtype=np.float64, meta=np.empty((0, 0), np.float64),
        token="fastloss-eval-block", **extra)
    total = da.reduction(
        states, chunk=_merge_states, combine=_merge_states, aggregate=_merge_states,
        axis=0, keepdims=False, dtype=np.float64, split_every=split_every, concatenate=True,
        meta=np.empty((0,), np.float64), name="fastloss-eval-merge")
    finish = dask.delayed(_finish, pure=False)(total, loss, ctor, signature)
    if not compute:
        return finish
    return finish.compute()


def _align(a, name, pred, class_ax, row_chunks):
    """`a` as a Dask array of pred's ndim with pred's row blocks; returns (array, axis to
    squeeze in each block or None)."""
    a = da.asarray(a)
    if a.ndim == 0 and pred.ndim == 1:
        a = a.reshape(1)
    if a.ndim == 0 or a.shape[0] != pred.shape[0]:
        raise ValueError("%s has shape %s but pred has shape %s: they must have the same "
                         "number of rows (axis 0)" % (name, a.shape, pred.shape))
    squeeze = None
    if a.ndim == pred.ndim - 1 and class_ax is not None:
        a = da.expand_dims(a, class_ax)            # line the blocks up with pred's
        squeeze = class_ax
    elif a.ndim != pred.ndim:
        raise ValueError("%s has shape %s, which does not line up with pred's shape %s"
                         % (name, a.shape, pred.shape))
    a = a.rechunk({0: row_chunks, **{i: -1 for i in range(1, a.ndim)}})
    return a, squeeze


def _block_state(x, t, *w, loss, ctor, squeeze, key, block_info=None):
    """One block of rows -> the (1, K) float64 state of an Evaluator that saw it."""
    if squeeze[1] is not None:
        t = np.squeeze(t, axis=squeeze[1])
    kw = {}
    if w:
        kw[key] = w[0] if squeeze[2] is None else np.squeeze(w[0], axis=squeeze[2])
    ev = Evaluator(loss, **ctor)
    try:
        ev.update(x, t, **kw)
    except ValueError as e:
        start = block_info[0]["array-location"][0][0] if block_info else 0
        if start:       # a position inside the block -> the position in the array
            msg = re.sub(r"at position \((\d+)",
                         lambda m: "at position (%d" % (int(m.group(1)) + start), str(e))
            raise ValueError(msg) from None
        raise
    return ev._state_vector()[None, :]


def _merge_states(x, axis=None, keepdims=False):
    """Rows of states (n, K) -> one state: compensated sums and counts."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, _K)
    loss = (0.0, 0.0)
    weight = (0.0, 0.0)
    counts = np.zeros(_K - 4)
    for row in x:
        loss = _neumaier(*_neumaier(*loss, float(row[0])), float(row[1]))
        weight = _neumaier(*_neumaier(*weight, float(row[2])), float(row[3]))
        counts += row[4:]
    out = np.concatenate([[loss[0], loss[1], weight[0], weight[1]], counts])
    return out[None, :] if keepdims else out


def _finish(state, loss, ctor, signature) -> EvalResult:
    ev = Evaluator(loss, **ctor)
    ev._merge_state_vector(np.asarray(state).reshape(_K))
    ev._signature = signature
    return ev.result()
