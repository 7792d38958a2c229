"""Type stubs of the compiled bridge ``fastloss._core`` (fastloss/_core.pyx).

Hand-written: Cython does not emit stubs.  ``python -m mypy.stubtest fastloss``
(run by .ci/run) checks that they match the compiled module.

Each kernel takes one request: keyword arguments named as the fields of its
C argument struct (src_c/fastloss.h).  Array arguments are ``None`` or
ndarrays that the Python layer (_api.py) has already made C-contiguous,
aligned, native-endian and of the kernel's dtype (float32, float64, float16 or
ml_dtypes' bfloat16, as the first array; int64 labels; float64 class and sample
weights): the bridge only takes their data pointers.  For half predictions the
per-row / per-element losses and the elementwise weights are float32, the
gradient and Hessian in the half dtype, and ``target_dtype`` says whether the
floating target is of the predictions' half dtype (``TARGET_SAME``) or float32
(``TARGET_F32``); the float32 / float64 kernels ignore it.  ``reduction`` and ``mode`` are the C enums
(``fl_reduction``: 0 none, 1 sum, 2 mean, 3 batchmean, 4 fullmean; ``fl_hinge_mode``: 0 ovr,
1 weston_watkins, 2 crammer_singer); ``n_threads`` <= 0 means the OpenMP
default.  Each returns one :class:`Result`.
"""
from typing import Any, Callable, Dict, Optional, final

import numpy as np

_Array = Optional[np.ndarray]

FL_STATUS_OK: int
FL_STATUS_LABEL: int
FL_STATUS_NOMEM: int
FL_STATUS_ARG: int
FIELDS: Dict[int, str]
TARGET_SAME: int
TARGET_F32: int

@final
class Result:
    """What a kernel returned: its status and its fl_result, by name."""
    @property
    def status(self) -> int: ...
    @property
    def value(self) -> float: ...
    @property
    def loss_sum(self) -> float: ...
    @property
    def weight_sum(self) -> float: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_ignored(self) -> int: ...
    @property
    def n_top1(self) -> int: ...
    @property
    def n_topk(self) -> int: ...
    @property
    def bad_index(self) -> int: ...
    @property
    def bad_value(self) -> int: ...
    @property
    def bad_field(self) -> str:
        """With FL_STATUS_ARG: the name of the argument outside its domain (FIELDS)."""

def softmax_ce(
    *, logits: np.ndarray, labels: _Array = None, probs: _Array = None,
    class_weight: _Array = None, sample_weight: _Array = None, outer: int, n_classes: int,
    inner: int, ignore_index: int = -100, label_smoothing: float = 0.0, reduction: int = 2,
    top_k: int = 0, row_loss: _Array = None, grad: _Array = None, hess: _Array = None,
    n_threads: int = 0, z_loss: float = 0.0, softcap: float = 0.0, focal_gamma: float = 0.0,
    poly1_epsilon: float = 0.0, lse_out: _Array = None, batch_size: int = 0,
    target_dtype: int = 0, argmax_out: _Array = None, stats_out: _Array = None,
) -> Result: ...
def sigmoid_ce(
    *, logits: np.ndarray, target: np.ndarray, weight: _Array = None,
    weight_row_stride: int = 0, pos_weight: _Array = None, n_rows: int, row_len: int,
    reduction: int = 2, loss: _Array = None, grad: _Array = None, hess: _Array = None,
    n_threads: int = 0, focal_gamma: float = 0.0, focal_alpha: float = -1.0,
    poly1_epsilon: float = 0.0, batch_size: int = 0, has_ignore: bool = False,
    ignore_value: float = 0.0, target_dtype: int = 0,
    metrics: Optional[tuple[float, int, int, int, np.ndarray, np.ndarray, np.ndarray]] = None,
) -> Result: ...
def hinge(
    *, scores: np.ndarray, labels: _Array = None, target: _Array = None,
    class_weight: _Array = None, sample_weight: _Array = None, outer: int, n_classes: int,
    inner: int, margin: float = 1.0, squared: bool = False, mode: int = 0, reduction: int = 2,
    row_loss: _Array = None, grad: _Array = None, n_threads: int = 0, top_k: int = 0,
    batch_size: int = 0, target_dtype: int = 0, argmax_out: _Array = None,
) -> Result: ...
def mse(
    *, pred: np.ndarray, target: np.ndarray, weight: _Array = None, weight_row_stride: int = 0,
    n_rows: int, row_len: int, reduction: int = 2, loss: _Array = None, grad: _Array = None,
    hess: _Array = None, n_threads: int = 0, batch_size: int = 0, target_dtype: int = 0,
) -> Result: ...

# The fast path: the common call of each form (C-contiguous aligned native float32/float64
# predictions, int64 labels of the row shape or a target of the predictions' dtype and shape,
# every option at its default value, no out) computed in C; any other call, and an error,
# is handed to ``general`` with the same arguments (the general path then runs the same
# kernel and reports the error).  The options are passed positionally, as the public
# function received them.
FORM_VALUE: int
FORM_GRAD: int
FORM_VALUE_AND_GRAD: int
def softmax_ce_fast(
    general: Callable[..., Any], form: int, logits: object, target: object, weight: object, sample_weight: object,
    ignore_index: object, label_smoothing: object, reduction: object, axis: object,
    n_threads: object, z_loss: object, softcap: object, lse_out: object, focal_gamma: object,
    poly1_epsilon: object, out: object,
) -> Any:
    """A softmax_cross_entropy form: the common call here, any other by ``general``."""
def sigmoid_ce_fast(
    general: Callable[..., Any], form: int, logits: object, target: object, weight: object, pos_weight: object,
    reduction: object, n_threads: object, focal_gamma: object, focal_alpha: object,
    poly1_epsilon: object, ignore_index: object, out: object,
) -> Any:
    """A sigmoid_cross_entropy form: the common call here, any other by ``general``."""
def mse_fast(
    general: Callable[..., Any], form: int, pred: object, target: object, weight: object, reduction: object,
    n_threads: object, out: object,
) -> Any:
    """An mse form: the common call here, any other by ``general``."""
def parallel_copy(src: np.ndarray, dst: np.ndarray, n_threads: Optional[int] = None) -> None:
    """Copy C-contiguous src into dst (same byte size) with OpenMP threads."""
def parallel_read(src: np.ndarray, n_threads: Optional[int] = None) -> int:
    """Read every byte of C-contiguous src with OpenMP threads; returns a checksum of them."""
def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """For C-contiguous arrays: 0 if their bytes are disjoint, 1 if they overlap,
    2 if they are the same buffer (same start and size)."""
def class_counts(y: np.ndarray, pred: np.ndarray, tp: np.ndarray, n_true: np.ndarray,
                 n_pred: np.ndarray, confusion: Optional[np.ndarray] = None,
                 stats: Optional[np.ndarray] = None, nll: Optional[np.ndarray] = None,
                 edges: Optional[np.ndarray] = None, bin_count: Optional[np.ndarray] = None,
                 bin_correct: Optional[np.ndarray] = None,
                 bin_conf: Optional[np.ndarray] = None) -> tuple[float, float, float]:
    """One pass over a chunk's rows for the class metrics: adds to the per-class counts,
    the confusion matrix and the calibration bins in place; returns the chunk's entropy,
    NLL and Brier sums (NaN when not asked for)."""
def half_to_f32(kind: int, src: np.ndarray, dst: np.ndarray) -> None:
    """Convert C-contiguous 2-byte half bit patterns (kind 0 float16, 1 bfloat16)
    into the float32 array dst with the active SIMD path's conversion."""
def f32_to_half(kind: int, src: np.ndarray, dst: np.ndarray) -> None:
    """Round float32 src into 2-byte half bit patterns dst (nearest even)."""
def openmp_enabled() -> bool:
    """True when the extension was compiled with OpenMP."""
def default_threads() -> int:
    """omp_get_max_threads(); 1 without OpenMP."""
def simd_in_use() -> str:
    """The SIMD path the kernels run: "baseline", "avx2" or "avx512"."""
def simd_built() -> list[str]:
    """The SIMD paths compiled into this build."""
def simd_supported() -> list[str]:
    """The built paths this CPU can run."""
def set_simd(name: str) -> None:
    """Force a SIMD path ("baseline", "avx2", "avx512" or "best")."""
