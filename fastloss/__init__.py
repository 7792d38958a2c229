"""fastloss: loss functions and their gradients, fast, in C with OpenMP.

Every loss comes in three forms: ``L`` (the value), ``L_grad`` (the gradient
with respect to the predictions) and ``L_value_and_grad`` (both, in one pass).
The contract is the project's SPEC: see README.md.
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
from .evaluate import Evaluator

__all__ = [
    "__version__",
    "show_config",
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
