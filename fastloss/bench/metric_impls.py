"""The metrics case family: ``Evaluator(metrics="all")`` beside the loss-only Evaluator,
scikit-learn and torchmetrics computing the same metrics from the same logits.

``fastloss`` (the headline) is one ``Evaluator(loss, metrics="all")``: construction, one
``update`` over the whole array and ``result``; ``evaluator loss only`` is the same without
metrics (the loss, accuracy and top-5 accuracy of the kernel's pass): the yardstick of the
row ("x loss only" = fastloss's time / its time).  ``sklearn`` computes every metric of
"all" that scikit-learn has from the same float32 logits (softmax in NumPy float64,
``accuracy_score``, ``top_k_accuracy_score``, ``log_loss``,
``precision_recall_fscore_support``, ``f1_score``, ``balanced_accuracy_score``,
``confusion_matrix``) and the rest (Brier, entropy, ECE / MCE with torchmetrics' binning)
in NumPy.  ``torchmetrics`` computes its classification metrics (accuracy, top-5,
calibration error l1 / max, per-class precision / recall / F1, the confusion matrix) and
the loss with ``torch.nn.functional.cross_entropy`` on the same tensor.  Each result reads
as (mean loss, None), so the harness checks every one against fastloss's loss.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np

from .cases import Case, Unavailable

__all__ = ["EVAL_LOSS", "METRIC_BASELINES", "sklearn_metrics", "torchmetrics_metrics",
           "build_metric_impl"]

EVAL_LOSS = "evaluator loss only"
METRIC_BASELINES = ("sklearn", "torchmetrics")
N_BINS = 15
TOP_K = 5


def _softmax64(x):
    xd = x.astype(np.float64)
    p = np.exp(xd - xd.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p


def sklearn_metrics(x, y, n_bins=N_BINS, top_k=TOP_K, confusion=None):
    """Every metric of softmax cross-entropy's "all", with scikit-learn where it has the
    metric and NumPy where it has not (Brier, entropy, ECE / MCE); the confusion matrix
    where "all" has it (confusion=None)."""
    from sklearn import metrics as M  # type: ignore[import-untyped, unused-ignore]
    C = x.shape[1]
    confusion = _confusion(C) if confusion is None else confusion
    labels = np.arange(C)
    p = _softmax64(x)
    pred = x.argmax(axis=1)
    out = {"accuracy": M.accuracy_score(y, pred),
           "top_k_accuracy": M.top_k_accuracy_score(y, p, k=top_k, labels=labels),
           "nll": M.log_loss(y, p, labels=labels)}
    out["perplexity"] = np.exp(out["nll"])
    py = p[np.arange(len(y)), y]
    out["brier"] = float(np.mean(np.sum(p * p, axis=1) - 2 * py + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["entropy"] = float(np.mean(-np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)))
    conf = p.max(axis=1)
    b = np.clip(np.searchsorted(np.linspace(0, 1, n_bins + 1), conf, side="right") - 1, 0,
                n_bins)
    cnt = np.bincount(b, minlength=n_bins + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.nan_to_num(np.bincount(b, weights=pred == y, minlength=n_bins + 1) / cnt)
        cb = np.nan_to_num(np.bincount(b, weights=conf, minlength=n_bins + 1) / cnt)
    out["ece"] = float(np.sum(np.abs(acc - cb) * cnt / cnt.sum()))
    out["mce"] = float(np.max(np.abs(acc - cb)))
    prec, rec, f1, _ = M.precision_recall_fscore_support(y, pred, labels=labels, average=None,
                                                         zero_division=0)
    with warnings.catch_warnings():    # "y_pred contains classes not in y_true": as defined
        warnings.simplefilter("ignore", UserWarning)
        bal = M.balanced_accuracy_score(y, pred)
    out.update(precision=prec, recall=rec, f1=f1,
               macro_f1=M.f1_score(y, pred, average="macro", zero_division=0),
               balanced_accuracy=bal)
    if confusion:
        out["confusion_matrix"] = M.confusion_matrix(y, pred, labels=labels)
    return out


def torchmetrics_metrics(torch, x, y, n_bins=N_BINS, top_k=TOP_K, confusion=None):
    """torchmetrics' classification metrics of "all" and the loss, on torch tensors."""
    from torchmetrics.functional import classification as F  # type: ignore[import-untyped]
    C = x.shape[1]
    confusion = _confusion(C) if confusion is None else confusion
    with torch.no_grad():
        out = {"nll": torch.nn.functional.cross_entropy(x, y)}
        p = x.softmax(dim=1)
        out.update(
            accuracy=F.multiclass_accuracy(p, y, C, average="micro"),
            top_k_accuracy=F.multiclass_accuracy(p, y, C, average="micro", top_k=top_k),
            ece=F.multiclass_calibration_error(p, y, C, n_bins=n_bins, norm="l1"),
            mce=F.multiclass_calibration_error(p, y, C, n_bins=n_bins, norm="max"),
            precision=F.multiclass_precision(p, y, C, average=None),
            recall=F.multiclass_recall(p, y, C, average=None),
            f1=F.multiclass_f1_score(p, y, C, average=None))
        if confusion:
            out["confusion_matrix"] = F.multiclass_confusion_matrix(p, y, C)
    return out


def _confusion(C):
    from fastloss.metrics import CONFUSION_MATRIX_MAX_CLASSES
    return C <= CONFUSION_MATRIX_MAX_CLASSES


def build_metric_impl(name: str, case: Case, pred, target, n_threads=None):
    """An implementation of the metrics case ``case`` (an :class:`~.baselines.Impl`)."""
    from .baselines import FASTLOSS, Impl, cpu_count

    def conv_eval(r):
        return float(r.loss), None

    if case.loss != "softmax_cross_entropy" or pred.ndim != 2 or case.options:
        raise Unavailable("the metrics cases are plain softmax cross-entropy on (N, C)")
    if name in (FASTLOSS, EVAL_LOSS):
        from fastloss import Evaluator
        metrics = "all" if name == FASTLOSS else None

        def fn():
            ev = Evaluator(case.loss, metrics=metrics, n_bins=N_BINS, top_k=TOP_K,
                           n_threads=n_threads)
            return ev.update(pred, target).result()
        return Impl(name, fn, conv_eval,
                    note='Evaluator(metrics="all")' if metrics else "Evaluator(), loss only")
    if name == "sklearn":
        try:
            importlib.import_module("sklearn.metrics")
        except ImportError:
            raise Unavailable("scikit-learn is not installed") from None
        return Impl(name, lambda: sklearn_metrics(pred, target),
                    lambda r: (float(r["nll"]), None),
                    note="sklearn.metrics (+ NumPy for Brier, entropy, ECE/MCE), one thread")
    if name == "torchmetrics":
        try:
            torch = importlib.import_module("torch")
            importlib.import_module("torchmetrics")
        except ImportError:
            raise Unavailable("torchmetrics is not installed") from None
        torch.set_num_threads(n_threads or cpu_count())
        xt, yt = torch.from_numpy(pred), torch.from_numpy(target)
        return Impl(name, lambda: torchmetrics_metrics(torch, xt, yt),
                    lambda r: (float(r["nll"]), None), note="torchmetrics.functional")
    raise Unavailable(f"{name} has no metrics baseline here")
