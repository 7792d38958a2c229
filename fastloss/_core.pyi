"""Type stubs of the compiled bridge ``fastloss._core`` (fastloss/_core.pyx).

Hand-written: Cython does not emit stubs.  ``python -m mypy.stubtest fastloss``
(run by .ci/run) checks that they match the compiled module.

Array arguments are ``None`` or ndarrays that the Python layer (_api.py) has
already made C-contiguous, aligned, native-endian and of the kernel's dtype
(float32, or float64 when ``f64``; int64 labels; float64 class and sample
weights): the bridge only takes their data pointers.  ``reduction`` and
``mode`` are the C enums (``fl_reduction``: 0 none, 1 sum, 2 mean;
``fl_hinge_mode``: 0 ovr, 1 weston_watkins, 2 crammer_singer); ``n_threads``
<= 0 means the OpenMP default.
"""
from typing import Optional, Tuple

import numpy as np

_Array = Optional[np.ndarray]

# The kernel's fl_result: (status, value, loss_sum, weight_sum, n_ignored,
# n_top1, n_topk, bad_index, bad_value); status is one of FL_STATUS_*.
_Result = Tuple[int, float, float, float, int, int, int, int, int]

FL_STATUS_OK: int
FL_STATUS_LABEL: int
FL_STATUS_NOMEM: int
FL_STATUS_ARG: int

def softmax_ce(
    f64: bool, logits: _Array, labels: _Array, probs: _Array, class_weight: _Array,
    sample_weight: _Array, outer: int, n_classes: int, inner: int, ignore_index: int,
    label_smoothing: float, reduction: int, top_k: int, row_loss: _Array, grad: _Array,
    hess: _Array, n_threads: int, z_loss: float = 0.0, softcap: float = 0.0,
    focal_gamma: float = 0.0, poly1_epsilon: float = 0.0, lse_out: _Array = None,
    batch_size: int = 0, argmax_out: _Array = None, stats_out: _Array = None,
) -> _Result: ...
def sigmoid_ce(
    f64: bool, logits: _Array, target: _Array, weight: _Array, weight_row_stride: int,
    pos_weight: _Array, n_rows: int, row_len: int, reduction: int, loss: _Array, grad: _Array,
    hess: _Array, n_threads: int, focal_gamma: float = 0.0, focal_alpha: float = -1.0,
    poly1_epsilon: float = 0.0, batch_size: int = 0, ignore_value: Optional[float] = None,
) -> _Result: ...
def hinge(
    f64: bool, scores: _Array, labels: _Array, target: _Array, class_weight: _Array,
    sample_weight: _Array, outer: int, n_classes: int, inner: int, margin: float,
    squared: bool, mode: int, reduction: int, row_loss: _Array, grad: _Array, n_threads: int,
    top_k: int = 0, batch_size: int = 0, argmax_out: _Array = None,
) -> _Result: ...
def mse(
    f64: bool, pred: _Array, target: _Array, weight: _Array, weight_row_stride: int,
    n_rows: int, row_len: int, reduction: int, loss: _Array, grad: _Array, hess: _Array,
    n_threads: int, batch_size: int = 0,
) -> _Result: ...
def parallel_copy(src: np.ndarray, dst: np.ndarray, n_threads: Optional[int] = None) -> None:
    """Copy C-contiguous src into dst (same byte size) with OpenMP threads."""
def parallel_read(src: np.ndarray, n_threads: Optional[int] = None) -> int:
    """Read every byte of C-contiguous src with OpenMP threads; returns a checksum of them."""
def overlap(a: np.ndarray, b: np.ndarray) -> int:
    """For C-contiguous arrays: 0 if their bytes are disjoint, 1 if they overlap,
    2 if they are the same buffer (same start and size)."""
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
