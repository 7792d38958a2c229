"""One description per loss: its options, targets, forms, reference and oracle.

Everything that has to know which losses exist and which options they take
reads it from here: the Evaluator (fastloss/evaluate.py), ``fastloss eval``'s
flags and ``--help`` (fastloss/eval_cli.py), the Dask path (fastloss/dask.py),
and the tests' case table and fuzzer.  The public functions stay explicit
``def``\\ s in fastloss/_api.py (real signatures for IDEs, docs and type
checkers); a test checks that their signatures agree with this table.

``fastloss.losses`` is the read-only view of it::

    >>> import fastloss
    >>> sorted(fastloss.losses)
    ['hinge', 'mse', 'sigmoid_cross_entropy', 'softmax_cross_entropy']
    >>> fastloss.losses["softmax_cross_entropy"].options["label_smoothing"]
    0.0
    >>> fastloss.losses["mse"].functions["grad"] is fastloss.mse_grad
    True

Adding a loss is its C template (src_c/), its driver and public ``def``\\ s
(fastloss/_api.py), its row here and its reference function
(fastloss/reference.py); the Evaluator, the command line, Dask and the
tests pick it up from this table.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Optional, Tuple

__all__ = ["FORMS", "PRED_DTYPES", "TARGET_KINDS", "Option", "Loss", "LOSSES", "losses", "current", "using",
           "copy", "resolve"]

FORMS = ("value", "grad", "value_and_grad", "grad_hess")


@dataclass(frozen=True)
class Option:
    """One keyword option of a loss.

    kind: ``"float"``, ``"int"``, ``"bool"``, ``"choice"`` (one of ``choices``),
    ``"array"`` (array_like read as given), ``"out"`` (an output buffer).
    scope: ``"loss"`` (the same for every chunk of an evaluation), ``"row"``
    (one value per row: it travels with each chunk), ``"out"`` (an output).
    ``examples`` are valid non-default values (the tests' case table runs each
    of them against the reference); ``invalid`` are values the function must
    refuse with a ValueError naming the option.
    """

    name: str
    default: Any
    domain: str
    doc: str
    kind: str = "float"
    scope: str = "loss"
    choices: Tuple[Any, ...] = ()
    examples: Tuple[Any, ...] = ()
    invalid: Tuple[Any, ...] = ()
    beyond_torch: bool = False        # an option PyTorch's counterpart does not have
    shape: str = ""                   # arrays: "classes" (C,), "rows" the row shape, "pred"
    #                                   (broadcasts to pred's shape), "last" (pred's last axis)


@dataclass(frozen=True)
class Loss:
    """One loss: what every layer above the kernels needs to know about it.

    ``options`` maps each option name to its default and ``option_info`` to its
    :class:`Option`; ``functions`` maps a form (``"value"``, ``"grad"``,
    ``"value_and_grad"`` and, where it exists, ``"grad_hess"``) to the public
    callable; ``reference`` the same forms to the float64 NumPy twins.
    """

    name: str
    summary: str
    pred: str                          # the first argument's name: logits, scores, pred
    targets: Tuple[str, ...]           # target kinds it takes (see TARGET_KINDS)
    classes: bool                      # a class axis; rows along every other axis
    option_info: Mapping[str, Option]
    forms: Tuple[str, ...]
    aliases: Tuple[str, ...] = ()
    chunk_option: str = "sample_weight"    # the per-row array an Evaluator takes per chunk
    hits: bool = False                 # the kernel counts top-1 / top-k hits (integer labels)
    target_copies: int = 1             # target-sized conversions a call may allocate
    torch_oracle: str = ""             # the PyTorch function it equals (dotted name)
    module: str = "fastloss._api"      # where the public functions and the driver live
    driver_name: str = ""              # keyword-only driver: arguments -> _core -> named result
    reference_module: str = "fastloss.reference"
    # explicit callables (a loss defined outside the package, e.g. in a test), by form
    callables: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    driver_callable: Optional[Callable[..., Any]] = None

    @property
    def options(self) -> Mapping[str, Any]:
        """Option name -> default."""
        return MappingProxyType({k: o.default for k, o in self.option_info.items()})

    def function_name(self, form: str) -> str:
        return self.name if form == "value" else "%s_%s" % (self.name, form)

    @property
    def functions(self) -> Mapping[str, Callable[..., Any]]:
        """Form -> public callable."""
        if self.callables:
            return MappingProxyType(dict(self.callables))
        mod = importlib.import_module(self.module)
        return MappingProxyType({f: getattr(mod, self.function_name(f)) for f in self.forms})

    @property
    def reference(self) -> Mapping[str, Callable[..., Any]]:
        """Form -> float64 NumPy twin (fastloss.reference), for the forms it has."""
        mod = importlib.import_module(self.reference_module)
        return MappingProxyType({f: getattr(mod, self.function_name(f)) for f in self.forms
                                 if hasattr(mod, self.function_name(f))})

    @property
    def driver(self) -> Callable[..., Any]:
        """``driver(pred, target, *, reduction, n_threads, value, grad, top_k, **options)``
        -> a result with ``value``, ``grad``, ``hess`` and ``stats`` (loss_sum,
        weight_sum, n_rows, n_ignored, n_top1, n_topk)."""
        if self.driver_callable is not None:
            return self.driver_callable
        return getattr(importlib.import_module(self.module), self.driver_name)

    def __getitem__(self, key: str) -> Any:
        """The description read as a mapping too: ``losses[name]["options"]``."""
        if key in self.keys():
            return getattr(self, key)
        raise KeyError(key)

    def keys(self) -> Tuple[str, ...]:
        return ("name", "summary", "pred", "targets", "classes", "options", "option_info",
                "forms", "functions", "reference", "aliases", "chunk_option", "torch_oracle")

    def loss_options(self) -> Tuple[str, ...]:
        """Options that hold for a whole evaluation (the Evaluator's constructor options)."""
        return tuple(k for k, o in self.option_info.items() if o.scope == "loss")


# The prediction dtypes every loss and form takes, and what comes back for each (the same
# for every loss: half precision is a layout of the kernels' input, not a loss of its own).
PRED_DTYPES = {
    "float64": "computed in float64; 'none' losses, gradients and out= in float64",
    "float32": "computed in float32, sums in float64; 'none' losses, gradients and out= in "
               "float32",
    "float16": "read directly (no float32 copy), computed in float32, sums in float64; 'none' "
               "losses float32; gradients and out= float16, rounded once (nearest even); a "
               "floating target float16 or float32",
    "bfloat16": "ml_dtypes.bfloat16 arrays or torch tensors (ml_dtypes imported only when "
                "met): as float16, with bfloat16 gradients and targets",
}

TARGET_KINDS = {
    "labels": "integer class labels of the row shape (pred's shape without the class axis)",
    "probs": "floating class probabilities of pred's shape",
    "multilabel": "a {0, 1} (or +-1) target of pred's shape, one per class",
    "binary": "+-1 or {0, 1} targets of a 0-d or 1-D pred's shape",
    "same_shape": "a real target of pred's shape",
}


def _opts(*options: Option) -> Mapping[str, Option]:
    return MappingProxyType({o.name: o for o in options})


_NAN = float("nan")
_INF = float("inf")

_CLASS_WEIGHT = Option("weight", None, "None or an array of shape (C,)", "class weights",
                       kind="array", shape="classes")
_SAMPLE_WEIGHT = Option("sample_weight", None, "None or an array of the row shape",
                        "one weight per row", kind="array", scope="row", shape="rows")
_AXIS = Option("axis", -1, "an integer", "the class axis", kind="int", examples=(1,),
               invalid=(1.5, "x"))
_ELEM_WEIGHT = Option("weight", None, "None or an array that broadcasts to pred's shape",
                      "elementwise weight", kind="array", shape="pred")

_SOFTMAX = Loss(
    name="softmax_cross_entropy",
    summary="softmax cross-entropy over a class axis",
    pred="logits",
    targets=("labels", "probs"),
    classes=True,
    option_info=_opts(
        _CLASS_WEIGHT,
        _SAMPLE_WEIGHT,
        Option("ignore_index", -100, "an integer", "label to ignore", kind="int",
               examples=(1,), invalid=(1.5, None)),
        Option("label_smoothing", 0.0, "a number in [0, 1]", "label smoothing in [0, 1]",
               examples=(0.1,), invalid=(-0.1, 1.5, _NAN, "0.1")),
        _AXIS,
        Option("z_loss", 0.0, "a finite number >= 0", "z-loss coefficient (PaLM)",
               examples=(0.01,), invalid=(-1.0, _NAN, _INF, "x"), beyond_torch=True),
        Option("softcap", None, "None or a finite number > 0", "logit soft-capping (Gemma 2)",
               examples=(3.0,), invalid=(0.0, -1.0, _NAN, _INF), beyond_torch=True),
        Option("lse_out", None, "None or a float64 array of the row shape",
               "receives each row's log-sum-exp", kind="out", scope="out", shape="rows",
               beyond_torch=True),
        Option("focal_gamma", 0.0, "a finite number >= 0", "focal loss gamma",
               examples=(2.0,), invalid=(-1.0, _NAN, _INF), beyond_torch=True),
        Option("poly1_epsilon", 0.0, "a finite number", "poly-1 epsilon",
               examples=(1.0, -0.5), invalid=(_NAN, _INF), beyond_torch=True),
    ),
    forms=FORMS,
    aliases=("softmax", "cross_entropy", "ce"),
    hits=True,
    torch_oracle="torch.nn.functional.cross_entropy",
    driver_name="_softmax",
)

_SIGMOID = Loss(
    name="sigmoid_cross_entropy",
    summary="sigmoid cross-entropy, elementwise (binary and multi-label)",
    pred="logits",
    targets=("same_shape",),
    classes=False,
    option_info=_opts(
        _ELEM_WEIGHT,
        Option("pos_weight", None, "None or an array that broadcasts to pred's last axis",
               "weight of positives", kind="array", shape="last"),
        Option("focal_gamma", 0.0, "a finite number >= 0", "focal loss gamma",
               examples=(2.0,), invalid=(-1.0, _NAN, _INF), beyond_torch=True),
        Option("focal_alpha", None, "None or a number in [0, 1]", "focal loss alpha",
               examples=(0.25,), invalid=(-0.5, 2.0, _NAN), beyond_torch=True),
        Option("poly1_epsilon", 0.0, "a finite number", "poly-1 epsilon",
               examples=(1.0,), invalid=(_NAN, _INF), beyond_torch=True),
        Option("ignore_index", None,
               "None or a real number (e.g. -1 or 255) that pred's dtype holds exactly",
               "target value whose elements are ignored (Caffe's ignore_label)",
               examples=(-1,), invalid=(_NAN, True), beyond_torch=True),
    ),
    forms=FORMS,
    aliases=("sigmoid", "bce", "binary_cross_entropy", "binary_cross_entropy_with_logits"),
    chunk_option="weight",
    torch_oracle="torch.nn.functional.binary_cross_entropy_with_logits",
    driver_name="_sigmoid",
)

_HINGE = Loss(
    name="hinge",
    summary="hinge loss: binary, one-vs-rest, Weston-Watkins or Crammer-Singer",
    pred="scores",
    targets=("binary", "labels", "multilabel"),
    classes=True,
    option_info=_opts(
        Option("margin", 1.0, "a real number", "the margin", examples=(0.5,),
               invalid=("1", None)),
        Option("squared", False, "True or False", "squared hinge", kind="bool",
               examples=(True,)),
        Option("multiclass", "ovr", "'ovr', 'weston_watkins' or 'crammer_singer'",
               "the multi-class rule", kind="choice",
               choices=("ovr", "weston_watkins", "crammer_singer"),
               examples=("weston_watkins", "crammer_singer"), invalid=("OVR", None)),
        _CLASS_WEIGHT,
        _SAMPLE_WEIGHT,
        _AXIS,
    ),
    forms=FORMS[:3],
    hits=True,
    target_copies=3,       # np.unique and 2 t - 1 of the target, the hit mask
    torch_oracle="torch.nn.functional.multi_margin_loss",
    driver_name="_hinge",
)

_MSE = Loss(
    name="mse",
    summary="squared error, elementwise",
    pred="pred",
    targets=("same_shape",),
    classes=False,
    option_info=_opts(_ELEM_WEIGHT),
    forms=FORMS,
    aliases=("mean_squared_error",),
    chunk_option="weight",
    torch_oracle="torch.nn.functional.mse_loss",
    driver_name="_mse",
)

_TABLE = {loss.name: loss for loss in (_SOFTMAX, _SIGMOID, _HINGE, _MSE)}

#: The losses of this build, read-only: name -> :class:`Loss`.
LOSSES: Mapping[str, Loss] = MappingProxyType(_TABLE)
losses = LOSSES

_active: list = [LOSSES]


def current() -> Mapping[str, Loss]:
    """The registry in effect (``LOSSES``, or a copy put in place by :func:`using`)."""
    return _active[-1]


@contextlib.contextmanager
def using(table: Mapping[str, Loss]) -> Iterator[Mapping[str, Loss]]:
    """Put another registry (e.g. a copy of ``LOSSES`` with one more loss) in effect for
    everything that reads :func:`current`, for the duration of a ``with`` block."""
    view = MappingProxyType(dict(table))
    _active.append(view)
    try:
        yield view
    finally:
        _active.remove(view)


def copy(**more: Loss) -> dict:
    """A mutable copy of the registry in effect, with ``more`` losses added."""
    table = dict(current())
    table.update(more)
    return table


def resolve(loss: Any) -> str:
    """Canonical loss name of ``loss``: a name, an alias, or a fastloss loss function."""
    table = current()
    name = getattr(loss, "__name__", loss) if callable(loss) else loss
    if isinstance(name, str):
        key = name.strip().lower().replace("-", "_")
        for info in table.values():
            if key == info.name or key in info.aliases:
                return info.name
    aliases = sorted(a for info in table.values() for a in info.aliases)
    raise ValueError("unknown loss %r; expected one of %s (or an alias: %s)"
                     % (loss, ", ".join(table), ", ".join(aliases)))

