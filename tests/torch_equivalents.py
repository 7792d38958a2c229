"""Each case of ``cases.CASES`` written with PyTorch (float64, autograd).

Where torch has the loss, its own function is used: ``cross_entropy``,
``binary_cross_entropy_with_logits``, ``multi_margin_loss`` (Weston-Watkins hinge) and
``mse_loss``. Options torch lacks (``sample_weight``) and the hinge variants it lacks
(binary, one-vs-rest, Crammer-Singer) are written with torch ops, as SPEC defines them. Only
import this module after ``pytest.importorskip("torch")``.
"""

import numpy as np
import torch
import torch.nn.functional as F


def uses_torch_function(case):
    """Whether the case's value comes straight from a torch.nn.functional loss (sample weights
    aside), rather than from a formula written with torch ops."""
    if case.beyond_torch:
        return False
    if case.loss == "hinge":
        return case.options.get("multiclass") == "weston_watkins"
    return True


def _t(array):
    return torch.from_numpy(np.array(array))


def _reduce(per_row, sample_weight, denominator, reduction):
    """Apply sample weights to torch's reduction="none" values and reduce them."""
    if sample_weight is not None:
        per_row = per_row * sample_weight
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    return per_row.sum() / denominator


def torch_loss(case, x, target, kwargs, reduction):
    """The loss of ``case`` at the float64 tensor ``x`` (pred's layout), reduced as the public
    API reduces it."""
    kwargs = dict(kwargs)
    if case.loss == "softmax_cross_entropy":
        return _cross_entropy(case, x, target, kwargs, reduction)
    if case.loss == "sigmoid_cross_entropy":
        weight = kwargs.get("weight")
        pos_weight = kwargs.get("pos_weight")
        return F.binary_cross_entropy_with_logits(
            x, _t(target).double(),
            weight=None if weight is None else _t(weight),
            pos_weight=None if pos_weight is None else _t(pos_weight),
            reduction=reduction,
        )
    if case.loss == "mse":
        weight = kwargs.get("weight")
        if weight is not None:  # torch insists on pred's shape
            weight = _t(np.broadcast_to(weight, x.shape).copy())
        return F.mse_loss(x, _t(target).double(), reduction=reduction, weight=weight)
    if case.loss == "hinge":
        return _hinge(case, x, target, kwargs, reduction)
    raise AssertionError(case.loss)


def _cross_entropy(case, x, target, kwargs, reduction):
    axis = kwargs.get("axis", -1) % x.ndim
    weight = kwargs.get("weight")
    sample_weight = kwargs.get("sample_weight")
    ignore_index = kwargs.get("ignore_index", -100)
    integer_target = np.issubdtype(np.asarray(target).dtype, np.integer)
    if x.ndim > 1:  # torch's class dim is 1; the row dims keep their order
        x = torch.movedim(x, axis, 1)
    if integer_target:
        t = _t(target).long()
    else:
        t = _t(target).double()
        if t.ndim > 1:
            t = torch.movedim(t, axis, 1)
    options = dict(
        weight=None if weight is None else _t(weight),
        ignore_index=ignore_index,
        label_smoothing=kwargs.get("label_smoothing", 0.0),
    )
    if sample_weight is None:
        return F.cross_entropy(x, t, reduction=reduction, **options)
    # torch's rule extended: mean = sum(s_i l_i) / sum(w[y_i] s_i) over non-ignored rows
    s = _t(sample_weight)
    per_row = F.cross_entropy(x, t, reduction="none", **options)
    if integer_target:
        kept = t != ignore_index
        w = torch.ones(x.shape[1 if x.ndim > 1 else 0], dtype=torch.float64) if weight is None \
            else _t(weight)
        denominator = (w[torch.where(kept, t, 0)] * s * kept).sum()
    else:
        denominator = s.sum()
    return _reduce(per_row, s, denominator, reduction)


def _hinge(case, x, target, kwargs, reduction):
    margin = float(kwargs.get("margin", 1.0))
    squared = kwargs.get("squared", False)
    multiclass = kwargs.get("multiclass", "ovr")
    weight = kwargs.get("weight")
    sample_weight = kwargs.get("sample_weight")
    s = None if sample_weight is None else _t(sample_weight)

    def h(v):
        return F.relu(v) ** 2 if squared else F.relu(v)

    if case.is_binary_hinge:
        t = _t(target).double()
        t = torch.where(t == 0, -1.0, t)
        per = h(margin - t * x)
        denominator = per.numel() if s is None else s.sum()
        return _reduce(per, s, denominator, reduction)

    axis = kwargs.get("axis", -1) % x.ndim
    row_shape = case.row_shape
    rows = torch.movedim(x, axis, -1).reshape(-1, x.shape[axis])
    n_rows, n_classes = rows.shape
    w = torch.ones(n_classes, dtype=torch.float64) if weight is None else _t(weight)
    target = np.asarray(target)
    if target.shape == tuple(x.shape):  # multi-label {0, 1}
        signs = 2.0 * torch.movedim(_t(target).double(), axis, -1).reshape(n_rows, n_classes) - 1
        labels = None
    else:
        labels = _t(target).long().reshape(n_rows)
        signs = 2.0 * F.one_hot(labels, n_classes).double() - 1.0

    if multiclass == "weston_watkins":
        per_row = F.multi_margin_loss(rows, labels, p=2 if squared else 1, margin=margin,
                                      weight=None if weight is None else w, reduction="none")
    elif multiclass == "ovr":
        per_row = (w * h(margin - signs * rows)).sum(dim=1)
    elif multiclass == "crammer_singer":
        others = torch.where(signs > 0, -torch.inf, rows)
        x_y = rows.gather(1, labels[:, None])[:, 0]
        per_row = w[labels] * h(margin + others.max(dim=1).values - x_y)
    else:
        raise AssertionError(multiclass)
    per_row = per_row.reshape(row_shape)
    denominator = n_rows if s is None else s.sum()
    return _reduce(per_row, s, denominator, reduction)


def torch_value_and_grad(case, pred, target, kwargs, reduction):
    """(loss, gradient) from torch autograd at float64 ``pred``, as numpy: a float for
    mean/sum, an array for none (its gradient is that of the sum)."""
    if case.beyond_torch:      # options torch lacks: the composition a user writes
        from .test_options import _torch_sigmoid, _torch_softmax
        if case.loss == "softmax_cross_entropy":
            return _torch_softmax(pred, target, reduction=reduction, **kwargs)[:2]
        return _torch_sigmoid(pred, target, reduction=reduction, **kwargs)
    x = torch.tensor(np.asarray(pred, dtype=np.float64), requires_grad=True)
    value = torch_loss(case, x, target, kwargs, reduction)
    value.sum().backward()
    if reduction == "none":
        loss = value.detach().numpy().copy()
    else:
        loss = float(value.detach())
    return loss, x.grad.numpy().copy()
