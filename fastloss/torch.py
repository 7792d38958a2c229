"""PyTorch drop-ins backed by the fastloss kernels (CPU; float32, float64, float16, bfloat16).

``cross_entropy``, ``binary_cross_entropy_with_logits``, ``multi_margin_loss`` and
``mse_loss`` take the arguments of their ``torch.nn.functional`` namesakes (same
defaults, same layouts: the class dimension is 1, ``(N, C, d1, ...)``) and return
the same values and gradients.  ``CrossEntropyLoss``, ``BCEWithLogitsLoss``,
``MultiMarginLoss`` and ``MSELoss`` subclass the torch modules of the same names
(same constructor, buffers, ``state_dict`` and ``isinstance`` checks) and only
replace ``forward``::

    import fastloss.torch as flt
    criterion = flt.CrossEntropyLoss(label_smoothing=0.1)   # was torch.nn.CrossEntropyLoss
    loss = criterion(model(x), y)
    loss.backward()

How it works: each loss is a ``torch.autograd.Function``.  Its forward runs the
fused value-and-gradient kernel once, on the tensors' memory (no copy for
C-contiguous CPU tensors), and saves that gradient (the input and target are kept
by reference for a ``create_graph`` backward, not copied).  Its backward scales the saved gradient by
the incoming one: a scalar for ``reduction="mean"``/``"sum"``; for
``reduction="none"`` the saved gradient is that of the sum and each row (each
element) is multiplied by its own incoming gradient.  When nothing needs a
gradient (``torch.no_grad()``, evaluation) only the value is computed.

Differences from torch, all raised as errors rather than silently changed:
tensors must be on the CPU (``RuntimeError`` otherwise) and the predictions
float32, float64, float16 or bfloat16 (``TypeError`` for others).  Half tensors are
read directly (math in float32, sums in float64, the gradient rounded once to the
input's dtype); the loss has the input's dtype, or float32 under
``torch.autocast("cpu")`` as torch's own losses there.  Class/element weights and ``pos_weight`` get no gradient
(``NotImplementedError`` if they require one).  Second derivatives (double
backward: ``create_graph=True``, ``torch.autograd.functional.hessian``, gradient
penalties) are supported: when the backward runs with ``create_graph=True`` it is
computed from the same loss written with differentiable torch ops instead of the
saved gradient, so its own gradient is exact (the first-order backward, and the
values, stay the kernel's).  ``pos_weight`` must broadcast to the last
dimension.  A floating target of the other float dtype is converted to the
input's dtype (torch promotes the result to float64 instead).  Values at
``+-inf`` logits are fastloss's (the limits, where they exist) where torch returns NaN.

This module imports torch; ``import fastloss`` does not.
"""
from typing import Literal, Optional

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as _F
from torch.nn._reduction import legacy_get_string as _legacy_get_string

from . import _api

__all__ = [
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "multi_margin_loss",
    "mse_loss",
    "sigmoid_focal_loss",
    "CrossEntropyLoss",
    "BCEWithLogitsLoss",
    "MultiMarginLoss",
    "MSELoss",
]

_FLOATS = (torch.float32, torch.float64)
_HALF = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------- tensors <-> arrays

def _check_device(t, name):
    if t.device.type != "cpu":
        raise RuntimeError(
            "fastloss.torch runs on CPU tensors only; %s is on %s. Use torch.nn.functional "
            "on that device, or move the tensors with .cpu()" % (name, t.device))


def _pred_array(t, name="input"):
    """A float32/float64/float16/bfloat16 CPU tensor as a NumPy array sharing its memory
    (bfloat16 as an ml_dtypes.bfloat16 view of the storage: read directly, never upcast)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s must be a torch.Tensor, not %s" % (name, type(t).__name__))
    _check_device(t, name)
    if t.dtype in _HALF:
        return _api._torch_half(t)
    if t.dtype not in _FLOATS:
        raise TypeError(
            "%s has dtype %s; fastloss.torch takes float32, float64, float16 or bfloat16 "
            "tensors (cast with .float())" % (name, t.dtype))
    return t.detach().resolve_conj().resolve_neg().numpy()


def _aux_array(t, name, half_ok=False):
    """A target or weight tensor (any real dtype) as a NumPy array, or None.  A half
    tensor is viewed as it is where the kernel reads it (``half_ok``: floating targets),
    otherwise converted to float32 (weights)."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        return np.asarray(t)
    _check_device(t, name)
    if t.dtype in _HALF:
        if half_ok:
            return _api._torch_half(t)
        return t.detach().float().numpy()
    return t.detach().resolve_conj().resolve_neg().numpy()


def _tensor(a):
    """A NumPy array from a kernel as a tensor on the same memory (bfloat16 included)."""
    if _api._is_bf16(a.dtype):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _autocast_cpu():
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:       # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _out_dtype(input):
    """The loss dtype torch gives: the input's, or float32 for a half input under
    torch.autocast("cpu") (the losses are on autocast's float32 list there; the half
    logits are still read directly, not cast)."""
    if input.dtype in _HALF and _autocast_cpu():
        return torch.float32
    return input.dtype


def _no_weight_grad(**weights):
    if not torch.is_grad_enabled():
        return
    for name, w in weights.items():
        if isinstance(w, torch.Tensor) and w.requires_grad:
            raise NotImplementedError(
                "fastloss.torch does not compute gradients with respect to %s; pass "
                "%s.detach() or use torch.nn.functional for a learned %s" % (name, name, name))


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _float_target(target):
    return isinstance(target, torch.Tensor) and target.is_floating_point()


def _reduction(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        return _legacy_get_string(size_average, reduce)
    return reduction


def _loss_tensor(value, dtype):
    """A kernel's loss (a float, or an ndarray for reduction='none') as a tensor."""
    if isinstance(value, np.ndarray):
        v = torch.from_numpy(value)        # half inputs: float32 per-row losses
        return v if v.dtype == dtype else v.to(dtype)
    return torch.tensor(value, dtype=dtype)


def _scale(grad, grad_output, row_dim):
    """The saved gradient scaled by the incoming one.

    ``row_dim`` is where the class dimension sits in grad (1) when each row of a
    class loss has one incoming value, None for a scalar or elementwise one.
    """
    if grad_output.ndim == 0 and grad_output.item() == 1.0:
        return grad                        # loss.backward(): the saved gradient as it is
    if row_dim is not None and grad_output.ndim:
        grad_output = grad_output.unsqueeze(row_dim)
    if grad.dtype in _HALF:                # one rounding to the half dtype, as torch
        return (grad.float() * grad_output.float()).to(grad.dtype)
    return grad * grad_output


def _as_tensor(a, like):
    """A NumPy weight as a tensor of like's dtype (None stays None)."""
    return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64)).to(like.dtype)


def _reduce(per, reduction, denominator=None):
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / (per.numel() if denominator is None else denominator)


def _graph_backward(ctx, grad_output, loss_of):
    """The backward under ``create_graph=True``: the loss is written again with
    differentiable torch ops from the saved input and target, and its gradient
    is taken with a graph, so that second derivatives (through the input, the
    target and grad_output) are exact.  Returns (grad_input, grad_target)."""
    input, target = ctx.saved_tensors[:2]
    wrt = [t for t, need in zip((input, target), ctx.needs_input_grad[:2]) if need]
    with torch.enable_grad():
        loss = loss_of(input, target)
        grads = list(torch.autograd.grad(loss, wrt, grad_output, create_graph=True,
                                         allow_unused=True))
    out = []
    for t, need in zip((input, target), ctx.needs_input_grad[:2]):
        g = None
        if need:
            g = grads.pop(0)
            if g is None:
                g = torch.zeros_like(t)
        out.append(g)
    return out


def _save(ctx, grad, input, target):
    """The kernel's gradient (the first-order backward) and the tensors a
    create_graph backward recomputes the loss from (read only there)."""
    ctx.save_for_backward(input, target if isinstance(target, torch.Tensor) else None,
                          _tensor(grad) if grad is not None else None)


def _kernel_grad(ctx):
    """The kernel's gradient saved by forward.  Kept among the saved tensors (freed
    by autograd after the backward), so that loss.backward() hands it to .grad
    without a copy."""
    return ctx.saved_tensors[2]


# ---------------------------------------------------------------- cross-entropy

def _ce_kernel(x, t, weight, ignore_index, label_smoothing, reduction, want_grad, opts=None):
    kwargs = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
                  reduction=reduction, axis=1 if x.ndim >= 2 else -1, **(opts or {}))
    if want_grad:
        return _api.softmax_cross_entropy_value_and_grad(x, t, **kwargs)
    return _api.softmax_cross_entropy(x, t, **kwargs), None


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, label_smoothing, reduction, opts):
        x = _pred_array(input)
        t = _aux_array(target, "target", half_ok=True)
        value, grad = _ce_kernel(x, t, weight, ignore_index, label_smoothing, reduction,
                                 ctx.needs_input_grad[0], opts)
        ctx.reduction = reduction
        ctx.class_dim = 1 if input.ndim >= 2 else 0
        ctx.weight, ctx.label_smoothing = weight, label_smoothing
        ctx.ignore_index, ctx.opts = ignore_index, opts
        ctx.n_rows = x.size // x.shape[ctx.class_dim] if x.ndim else 1
        _save(ctx, grad, input, target)
        return _loss_tensor(value, _out_dtype(input))

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            grad_input, grad_target = _graph_backward(ctx, grad_output, lambda x, t: _ce_torch(
                x, t, ctx.weight, ctx.ignore_index, ctx.label_smoothing, ctx.reduction,
                ctx.opts))
            return grad_input, grad_target, None, None, None, None, None
        grad = _kernel_grad(ctx)
        row_dim = ctx.class_dim if ctx.reduction == "none" else None
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input = _scale(grad, grad_output, row_dim)
        if ctx.needs_input_grad[1]:
            input = ctx.saved_tensors[0]
            # l = -sum_k w_k ((1 - eps) t_k + eps / C) log_softmax(x)_k per row
            d = torch.log_softmax(input, dim=ctx.class_dim) * -(1.0 - ctx.label_smoothing)
            if ctx.weight is not None:
                shape = [1] * input.ndim
                shape[ctx.class_dim] = -1
                d = d * torch.from_numpy(np.asarray(ctx.weight, dtype=np.float64)).to(
                    input.dtype).reshape(shape)
            if ctx.reduction == "mean":
                d = d / ctx.n_rows
            grad_target = _scale(d, grad_output, row_dim)
        return grad_input, grad_target, None, None, None, None, None


def _ce_torch(x, t, weight, ignore_index, label_smoothing, reduction, opts):
    """The cross-entropy of the kernel (with its fused options) in torch ops."""
    w = _as_tensor(weight, x)
    if t.is_floating_point():
        t = t.to(x.dtype)
    if not opts:
        return _F.cross_entropy(x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
                                label_smoothing=label_smoothing)
    cap = opts.get("softcap")
    z_loss, gamma = opts.get("z_loss", 0.0), opts.get("focal_gamma", 0.0)
    poly1, eps = opts.get("poly1_epsilon", 0.0), label_smoothing
    cd = 1 if x.ndim >= 2 else 0
    z = torch.movedim(x, cd, -1)
    c, rows_shape = z.shape[-1], z.shape[:-1]
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    z = z.reshape(-1, c)
    lse = torch.logsumexp(z, -1)
    logp = z - lse[:, None]
    if w is None:
        w = torch.ones(c, dtype=x.dtype)
    if not t.is_floating_point():
        y = t.reshape(-1).long()
        keep = y != ignore_index
        ys = torch.where(keep, y, torch.zeros_like(y))
        tp = (1 - eps) * _F.one_hot(ys, c).to(x.dtype) + eps / c
        if gamma:
            lpy = logp.gather(1, ys[:, None])[:, 0]
            ce = -(1 - lpy.exp()) ** gamma * lpy * w[ys]
        else:
            ce = -(tp * w * logp).sum(-1)
        row_w = w[ys] * keep
        denominator = row_w.sum()
    else:
        tp = (1 - eps) * torch.movedim(t, cd, -1).reshape(-1, c) + eps / c
        ce = -(tp * w * logp).sum(-1)
        keep = torch.ones(z.shape[0], dtype=torch.bool)
        row_w = torch.ones(z.shape[0], dtype=x.dtype)
        denominator = z.shape[0]
    pt = (tp * logp.exp()).sum(-1)
    rows = ce + row_w * (z_loss * lse ** 2 + poly1 * (1 - pt))
    rows = torch.where(keep, rows, torch.zeros_like(rows))
    return _reduce(rows.reshape(rows_shape), reduction, denominator)


def cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                  size_average: Optional[bool] = None, ignore_index: int = -100,
                  reduce: Optional[bool] = None, reduction: str = "mean",
                  label_smoothing: float = 0.0, *, z_loss: float = 0.0,
                  softcap: Optional[float] = None, focal_gamma: float = 0.0,
                  poly1_epsilon: float = 0.0) -> Tensor:
    """``torch.nn.functional.cross_entropy`` on the fastloss kernel.

    Same arguments, defaults, layouts (``(C)``, ``(N, C)`` or ``(N, C, d1, ...)``
    with class indices of shape ``()``, ``(N)`` or ``(N, d1, ...)``, or class
    probabilities of input's shape) and results, values and gradients,
    including the gradient with respect to probability targets.  See the
    module docstring for what differs (CPU, float32/float64 only).

    Keyword-only extras, fused into the same kernel pass (see
    ``fastloss.softmax_cross_entropy``): ``z_loss``, ``softcap``,
    ``focal_gamma``, ``poly1_epsilon``.  With any of them on, a probability
    target that requires a gradient raises NotImplementedError.
    """
    reduction = _reduction(size_average, reduce, reduction)
    _no_weight_grad(weight=weight)
    w = _aux_array(weight, "weight")
    if not isinstance(target, torch.Tensor):
        raise TypeError("target must be a torch.Tensor, not %s" % type(target).__name__)
    opts = {k: v for k, v in (("z_loss", z_loss), ("softcap", softcap),
                              ("focal_gamma", focal_gamma), ("poly1_epsilon", poly1_epsilon))
            if v is not None and v != 0.0}
    if opts and _float_target(target) and target.requires_grad:
        raise NotImplementedError("the gradient with respect to probability targets is not "
                                  "computed with %s" % ", ".join(sorted(opts)))
    if _needs_grad(input, target if _float_target(target) else None):
        return _CrossEntropy.apply(input, target, w, ignore_index, label_smoothing, reduction,
                                   opts)
    x = _pred_array(input)
    value, _ = _ce_kernel(x, _aux_array(target, "target", half_ok=True), w, ignore_index, label_smoothing,
                          reduction, False, opts)
    return _loss_tensor(value, _out_dtype(input))


# ---------------------------------------------------------------- sigmoid cross-entropy

def _bce_kernel(x, t, weight, pos_weight, reduction, want_grad):
    kwargs = dict(weight=weight, pos_weight=pos_weight, reduction=reduction)
    if want_grad:
        return _api.sigmoid_cross_entropy_value_and_grad(x, t, **kwargs)
    return _api.sigmoid_cross_entropy(x, t, **kwargs), None


class _BCEWithLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, pos_weight, reduction):
        x = _pred_array(input)
        t = _aux_array(target, "target", half_ok=True)
        value, grad = _bce_kernel(x, t, weight, pos_weight, reduction, ctx.needs_input_grad[0])
        ctx.reduction = reduction
        ctx.weight, ctx.pos_weight = weight, pos_weight
        _save(ctx, grad, input, target)
        return _loss_tensor(value, _out_dtype(input))

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            grad_input, grad_target = _graph_backward(
                ctx, grad_output, lambda x, t: _F.binary_cross_entropy_with_logits(
                    x, t.to(x.dtype), weight=_as_tensor(ctx.weight, x),
                    pos_weight=_as_tensor(ctx.pos_weight, x), reduction=ctx.reduction))
            return grad_input, grad_target, None, None, None
        grad = _kernel_grad(ctx)
        grad_input = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_input = _scale(grad, grad_output, None)
        if ctx.needs_input_grad[1]:
            input = ctx.saved_tensors[0]
            # l = w (pw t softplus(-x) + (1 - t) softplus(x))
            # dl/dt = w (pw softplus(-x) - softplus(x))   (= -w x without pos_weight)
            if ctx.pos_weight is None:
                d = -input
            else:
                pw = torch.from_numpy(np.asarray(ctx.pos_weight, dtype=np.float64)).to(input.dtype)
                d = pw * _F.softplus(-input) - _F.softplus(input)
            if ctx.weight is not None:
                d = d * torch.from_numpy(np.asarray(ctx.weight, dtype=np.float64)).to(input.dtype)
            if ctx.reduction == "mean":
                d = d / max(input.numel(), 1)
            grad_target = _scale(d, grad_output, None)
        return grad_input, grad_target, None, None, None


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Optional[Tensor] = None,
                                     size_average: Optional[bool] = None,
                                     reduce: Optional[bool] = None, reduction: str = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    """``torch.nn.functional.binary_cross_entropy_with_logits`` on the fastloss kernel.

    Same arguments and results, values and gradients (with respect to input and
    to a floating target).  ``weight`` broadcasts to input's shape,
    ``pos_weight`` to its last dimension.
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not isinstance(target, torch.Tensor):
        raise TypeError("target must be a torch.Tensor, not %s" % type(target).__name__)
    if target.shape != input.shape:
        raise ValueError("Target size (%s) must be the same as input size (%s)"
                         % (tuple(target.shape), tuple(input.shape)))
    _no_weight_grad(weight=weight, pos_weight=pos_weight)
    w = _aux_array(weight, "weight")
    pw = _aux_array(pos_weight, "pos_weight")
    if _needs_grad(input, target):
        return _BCEWithLogits.apply(input, target, w, pw, reduction)
    value, _ = _bce_kernel(_pred_array(input), _aux_array(target, "target", half_ok=True), w, pw, reduction,
                           False)
    return _loss_tensor(value, _out_dtype(input))


# ---------------------------------------------------------------- sigmoid focal loss

class _SigmoidFocal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, targets, alpha, gamma, reduction):
        x = _pred_array(inputs)
        t = _aux_array(targets, "targets", half_ok=True)
        kwargs = dict(reduction=reduction, focal_gamma=float(gamma),
                      focal_alpha=None if alpha < 0 else float(alpha))
        value, grad = _api.sigmoid_cross_entropy_value_and_grad(x, t, **kwargs)
        ctx.alpha, ctx.gamma, ctx.reduction = alpha, gamma, reduction
        _save(ctx, grad, inputs, targets)
        return _loss_tensor(value, _out_dtype(inputs))

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            grad_input, _ = _graph_backward(ctx, grad_output, lambda x, t: _focal_torch(
                x, t.to(x.dtype), ctx.alpha, ctx.gamma, ctx.reduction))
            return grad_input, None, None, None, None
        return _scale(_kernel_grad(ctx), grad_output, None), None, None, None, None


def _focal_torch(x, t, alpha, gamma, reduction):
    """torchvision's sigmoid_focal_loss in torch ops."""
    p = torch.sigmoid(x)
    ce = _F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return _reduce(loss, reduction)


def sigmoid_focal_loss(inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2,
                       reduction: Literal["none", "mean", "sum"] = "none") -> Tensor:
    """Drop-in for ``torchvision.ops.sigmoid_focal_loss`` on the fastloss kernel.

    ``alpha_t * (1 - p_t)**gamma * bce(inputs, targets)`` elementwise, with
    ``p_t = p t + (1 - p)(1 - t)`` and ``alpha_t = alpha t + (1 - alpha)(1 - t)``
    (no alpha weighting when ``alpha < 0``), computed in one fused pass from
    log-space quantities; same defaults and reductions as torchvision.  The
    targets get no gradient (NotImplementedError if they require one).
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError("Invalid Value for arg 'reduction': '%s' \n Supported reduction modes: "
                         "'none', 'mean', 'sum'" % (reduction,))
    if not isinstance(targets, torch.Tensor):
        raise TypeError("targets must be a torch.Tensor, not %s" % type(targets).__name__)
    if targets.requires_grad:
        raise NotImplementedError("sigmoid_focal_loss gives no gradient for the targets")
    if targets.shape != inputs.shape:
        raise ValueError("targets have shape %s but inputs have shape %s"
                         % (tuple(targets.shape), tuple(inputs.shape)))
    if _needs_grad(inputs):
        return _SigmoidFocal.apply(inputs, targets, float(alpha), float(gamma), reduction)
    x = _pred_array(inputs)
    value = _api.sigmoid_cross_entropy(x, _aux_array(targets, "targets", half_ok=True), reduction=reduction,
                                       focal_gamma=float(gamma),
                                       focal_alpha=None if alpha < 0 else float(alpha))
    return _loss_tensor(value, _out_dtype(inputs))


# ---------------------------------------------------------------- multi-margin (hinge)

def _hinge_kernel(x, t, p, margin, weight, reduction, want_grad):
    kwargs = dict(margin=margin, squared=p == 2, multiclass="weston_watkins", weight=weight,
                  reduction=reduction)
    if want_grad:
        return _api.hinge_value_and_grad(x, t, **kwargs)
    return _api.hinge(x, t, **kwargs), None


class _MultiMargin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, p, margin, weight, reduction):
        x = _pred_array(input)
        value, grad = _hinge_kernel(x, target, p, margin, weight, reduction, True)
        ctx.row_dim = 1 if (reduction == "none" and input.ndim == 2) else None
        ctx.p, ctx.margin, ctx.weight, ctx.reduction = p, margin, weight, reduction
        _save(ctx, grad, input, torch.from_numpy(np.asarray(target)))
        return _loss_tensor(value, _out_dtype(input))

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            grad_input, _ = _graph_backward(ctx, grad_output, lambda x, t: _multi_margin_torch(
                x, t, ctx.p, ctx.margin, ctx.weight, ctx.reduction))
            return grad_input, None, None, None, None, None
        return _scale(_kernel_grad(ctx), grad_output, ctx.row_dim), None, None, None, None, None


def _multi_margin_torch(x, t, p, margin, weight, reduction):
    """Weston-Watkins hinge (torch's multi_margin_loss) in elementary torch ops."""
    x2 = x.reshape(-1, x.shape[-1])
    y = t.reshape(-1).long()
    c = x2.shape[1]
    h = torch.relu(margin - x2.gather(1, y[:, None]) + x2)
    if p == 2:
        h = h * h
    h = torch.where(_F.one_hot(y, c).bool(), torch.zeros_like(h), h)
    per = h.sum(1) / c
    if weight is not None:
        per = per * _as_tensor(weight, x)[y]
    return _reduce(per.reshape(t.shape), reduction)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
                      reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``torch.nn.functional.multi_margin_loss`` on the fastloss kernel.

    Weston-Watkins hinge, ``p=1`` or ``p=2`` (squared), per-class ``weight``;
    input of shape ``(C)`` or ``(N, C)`` with integer targets ``()`` or ``(N)``.
    """
    reduction = _reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if not isinstance(target, torch.Tensor):
        raise TypeError("target must be a torch.Tensor, not %s" % type(target).__name__)
    if input.ndim not in (1, 2):
        raise ValueError("multi_margin_loss expects input of shape (C) or (N, C), got %s"
                         % (tuple(input.shape),))
    _no_weight_grad(weight=weight)
    w = _aux_array(weight, "weight")
    t = _aux_array(target, "target")
    out_shape = None
    if input.ndim == 1 and t.shape == (1,):      # torch accepts (1,) for one sample
        t, out_shape = t.reshape(()), (1,)
    if _needs_grad(input):
        loss = _MultiMargin.apply(input, t, p, margin, w, reduction)
    else:
        value, _ = _hinge_kernel(_pred_array(input), t, p, margin, w, reduction, False)
        loss = _loss_tensor(value, _out_dtype(input))
    if out_shape is not None and reduction == "none":
        loss = loss.reshape(out_shape)
    return loss


# ---------------------------------------------------------------- squared error

def _mse_kernel(x, t, weight, reduction, want_grad):
    if want_grad:
        return _api.mse_value_and_grad(x, t, weight=weight, reduction=reduction)
    return _api.mse(x, t, weight=weight, reduction=reduction), None


class _MSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, reduction):
        x = _pred_array(input)
        t = _pred_array(target, "target")
        value, grad = _mse_kernel(x, t, weight, reduction, True)
        ctx.weight, ctx.reduction = weight, reduction
        _save(ctx, grad, input, target)
        return _loss_tensor(value, _out_dtype(input))

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():
            grad_input, grad_target = _graph_backward(ctx, grad_output, lambda x, t: _mse_torch(
                x, t, ctx.weight, ctx.reduction))
            return grad_input, grad_target, None, None
        g = _scale(_kernel_grad(ctx), grad_output, None)
        grad_input = g if ctx.needs_input_grad[0] else None
        grad_target = -g if ctx.needs_input_grad[1] else None   # d/dt (x - t)^2 = -d/dx
        return grad_input, grad_target, None, None


def _mse_torch(x, t, weight, reduction):
    """The (weighted) squared error of the kernel in torch ops."""
    per = (x - t) ** 2
    if weight is None:
        return _reduce(per, reduction)
    w = torch.broadcast_to(_as_tensor(weight, x), x.shape)
    return _reduce(w * per, reduction, w.sum())


def mse_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None,
             reduce: Optional[bool] = None, reduction: str = "mean",
             weight: Optional[Tensor] = None) -> Tensor:
    """``torch.nn.functional.mse_loss`` on the fastloss kernel.

    Same arguments and results, values and gradients (with respect to input and
    target).  As in torch, a target of another shape is broadcast with a
    warning; ``weight`` may broadcast to input's shape (torch requires it).
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not isinstance(target, torch.Tensor):
        raise TypeError("target must be a torch.Tensor, not %s" % type(target).__name__)
    if target.shape != input.shape:
        import warnings
        warnings.warn(
            "Using a target size (%s) that is different to the input size (%s). This will "
            "likely lead to incorrect results due to broadcasting. Please ensure they have the "
            "same size." % (target.size(), input.size()), stacklevel=2)
        # differentiable broadcast: autograd sums the gradients back to each shape
        input, target = torch.broadcast_tensors(input, target)
    _no_weight_grad(weight=weight)
    w = _aux_array(weight, "weight")
    if target.dtype != input.dtype:
        _pred_array(target, "target")       # the same dtype check as the input's
        target = target.to(input.dtype)
    if _needs_grad(input, target):
        return _MSE.apply(input, target, w, reduction)
    value, _ = _mse_kernel(_pred_array(input), _pred_array(target, "target"), w, reduction,
                           False)
    return _loss_tensor(value, _out_dtype(input))


# ---------------------------------------------------------------- modules

class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` computed by :func:`fastloss.torch.cross_entropy`.

    Same constructor, buffers and behaviour; only ``forward`` differs.
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """``torch.nn.BCEWithLogitsLoss`` computed by
    :func:`fastloss.torch.binary_cross_entropy_with_logits`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                pos_weight=self.pos_weight,
                                                reduction=self.reduction)


class MultiMarginLoss(torch.nn.MultiMarginLoss):
    """``torch.nn.MultiMarginLoss`` computed by :func:`fastloss.torch.multi_margin_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                 reduction=self.reduction)


class MSELoss(torch.nn.MSELoss):
    """``torch.nn.MSELoss`` computed by :func:`fastloss.torch.mse_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)
