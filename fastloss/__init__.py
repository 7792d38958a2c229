"""fastloss: loss functions and their gradients, fast, in C with OpenMP.

Every loss comes in three forms: ``L`` (the value), ``L_grad`` (the gradient
with respect to the predictions) and ``L_value_and_grad`` (both, in one pass).
``fastloss.losses`` describes every loss: its options and defaults, its target
kinds and its functions by form.  The documentation (user guide, API
reference, examples) is built from the repository's ``docs/`` with Sphinx.
"""
from ._version import __version__
from ._api import (
    hinge,
    hinge_grad,
    hinge_value_and_grad,
    mse,
    mse_grad,
    mse_grad_hess,
    mse_value_and_grad,
    sigmoid_cross_entropy,
    sigmoid_cross_entropy_grad,
    sigmoid_cross_entropy_grad_hess,
    sigmoid_cross_entropy_value_and_grad,
    softmax_cross_entropy,
    softmax_cross_entropy_grad,
    softmax_cross_entropy_grad_hess,
    softmax_cross_entropy_value_and_grad,
)
from ._config import show_config
from ._registry import LOSSES as losses


def get_include() -> str:
    """The directory of fastloss's C headers, for extensions that call the kernels.

    ``fastloss.h`` declares the kernels and their argument structs (raw
    pointers, int64 sizes, status codes); ``fastloss_api.h`` gives other
    extension modules the function table exported by ``fastloss._core``
    (``fl_import()`` then ``FL_API->softmax_ce_f64(&args, &result)``).
    Compile with ``-I`` this directory.  The documentation's "C and Cython
    API" page describes the structs, the outputs and the statuses.
    """
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "include"),                       # installed
                      os.path.join(os.path.dirname(here), "src_c")):       # source tree
        if os.path.isfile(os.path.join(candidate, "fastloss_api.h")):
            return candidate
    raise RuntimeError("fastloss's C headers are not installed next to %s" % here)
from .evaluate import Evaluator

__all__ = [
    "__version__",
    "get_include",
    "show_config",
    "losses",
    "Evaluator",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "softmax_cross_entropy_value_and_grad",
    "sigmoid_cross_entropy",
    "sigmoid_cross_entropy_grad",
    "sigmoid_cross_entropy_value_and_grad",
    "hinge",
    "hinge_grad",
    "hinge_value_and_grad",
    "mse",
    "mse_grad",
    "mse_value_and_grad",
    "softmax_cross_entropy_grad_hess",
    "sigmoid_cross_entropy_grad_hess",
    "mse_grad_hess",
]
