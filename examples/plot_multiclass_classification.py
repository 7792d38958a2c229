"""
Multi-class classification: softmax, Weston-Watkins and Crammer-Singer
======================================================================

The second sample problem: each example belongs to exactly one of ``C``
classes, and a model gives one score per class.  Three losses fit it:

- **softmax cross-entropy**, :func:`fastloss.softmax_cross_entropy`: the
  negative log-probability of the true class under the softmax of the scores;
- the **Weston-Watkins** multi-class hinge, ``fastloss.hinge(...,
  multiclass="weston_watkins")``: every other class whose score comes within
  the margin of the true class's pays, ``sum_{c != y} max(0, 1 - x_y + x_c) /
  C`` (PyTorch's ``multi_margin_loss``);
- the **Crammer-Singer** multi-class hinge, ``fastloss.hinge(...,
  multiclass="crammer_singer")``: only the strongest competitor pays,
  ``max(0, 1 + max_{c != y} x_c - x_y)``.

We train a linear classifier (a weight per pixel and class) with each loss
on scikit-learn's 8x8 handwritten digits, by mini-batch gradient descent in
NumPy with fastloss's gradients, then look at the three losses' decision
regions on a two-dimensional problem.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import train_test_split

import fastloss

# %%
# The three losses on one row of scores
# -------------------------------------
#
# Scores for 4 classes, true class 0.  Class 1 comes within the margin of
# class 0, class 2 beats it, class 3 is far below.
scores = np.array([[2.0, 1.5, 2.5, -1.0]])
label = np.array([0])
for mode in ("weston_watkins", "crammer_singer"):
    loss, grad = fastloss.hinge_value_and_grad(scores, label, multiclass=mode)
    print("%-15s loss %.3f  gradient %s" % (mode, loss, grad[0]))
loss, grad = fastloss.softmax_cross_entropy_value_and_grad(scores, label)
print("%-15s loss %.3f  gradient %s" % ("softmax CE", loss, np.round(grad[0], 3)))

# %%
# Weston-Watkins pushes down both classes that violate the margin (1 and 2)
# and averages over the ``C = 4`` classes; Crammer-Singer pushes down only
# class 2, the strongest competitor; the softmax pushes every class down in
# proportion to its probability, and never stops (its loss is never 0).
#
# Handwritten digits
# ------------------
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                    stratify=y)
mean, std = X_train.mean(0), X_train.std(0) + 0.1
X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
print("digits: %d train, %d test, %d features" % (len(X_train), len(X_test), X.shape[1]))

LOSSES = {
    "softmax cross-entropy": lambda s, t: fastloss.softmax_cross_entropy_value_and_grad(s, t),
    "Weston-Watkins hinge": lambda s, t: fastloss.hinge_value_and_grad(
        s, t, multiclass="weston_watkins"),
    "Crammer-Singer hinge": lambda s, t: fastloss.hinge_value_and_grad(
        s, t, multiclass="crammer_singer"),
}


def train(loss_fn, X, y, X_test, y_test, epochs=40, batch=64, lr=0.05, l2=1e-4, seed=0):
    """A linear classifier by mini-batch SGD; returns the weights and per-epoch curves."""
    rng = np.random.default_rng(seed)
    n_classes = y.max() + 1
    w = np.zeros((X.shape[1], n_classes), np.float32)
    b = np.zeros(n_classes, np.float32)
    curves = {"train loss": [], "test accuracy": []}
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            _, d_scores = loss_fn(X[idx] @ w + b, y[idx])   # fastloss: loss, d loss / d scores
            w -= lr * (X[idx].T @ d_scores + l2 * w)
            b -= lr * d_scores.sum(0)
        curves["train loss"].append(loss_fn(X @ w + b, y)[0])
        curves["test accuracy"].append(np.mean((X_test @ w + b).argmax(1) == y_test))
    return w, b, curves


curves = {}
for name, loss_fn in LOSSES.items():
    w, b, curves[name] = train(loss_fn, X_train, y_train, X_test, y_test)
    print("%-22s test accuracy %.3f" % (name, curves[name]["test accuracy"][-1]))

# %%
# All three reach about the same accuracy on this easy problem.  The hinge
# losses reach a training loss near 0 (most digits are classified with the
# margin, after which they contribute nothing), while the softmax
# cross-entropy keeps decreasing.
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
for name, c in curves.items():
    ax0.plot(np.arange(1, len(c["train loss"]) + 1), c["train loss"], label=name)
    ax1.plot(np.arange(1, len(c["test accuracy"]) + 1), c["test accuracy"], label=name)
ax0.set_yscale("log")
ax0.set_xlabel("epoch")
ax0.set_ylabel("training loss (mean)")
ax1.set_xlabel("epoch")
ax1.set_ylabel("test accuracy")
ax1.set_ylim(0.9, 1.0)
ax1.legend()
fig.suptitle("Linear classifier on the digits")
fig.tight_layout()

# %%
# Decision regions
# ----------------
#
# Four overlapping Gaussian classes in the plane, the same linear model.
# Each region is where one class scores highest; with a linear model the
# boundaries are straight lines.  The softmax weighs every example, the
# hinges only those inside the margin, yet on these balanced, symmetric
# classes the three boundaries nearly coincide: the choice of loss matters
# less than the model here, and shows in the scores (probabilities or not)
# and in what happens to outliers and imbalanced classes.
Xb, yb = make_blobs(n_samples=800, centers=[(-2, 0), (2, 0), (0, 2.5), (0, -2)],
                    cluster_std=1.2, random_state=1)
Xb = Xb.astype(np.float32)
xx, yy = np.meshgrid(np.linspace(-6, 6, 300), np.linspace(-6, 6.5, 300))
grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
for ax, (name, loss_fn) in zip(axes, LOSSES.items()):
    w, b, c = train(loss_fn, Xb, yb, Xb, yb, epochs=30, lr=0.02)
    regions = (grid @ w + b).argmax(1).reshape(xx.shape)
    accuracy = c["test accuracy"][-1]
    ax.contourf(xx, yy, regions, levels=np.arange(-0.5, 4), cmap="tab10", alpha=0.3, vmax=9)
    ax.scatter(Xb[:, 0], Xb[:, 1], c=yb, cmap="tab10", vmax=9, s=8, edgecolor="none")
    ax.set_title("%s\ntraining accuracy %.3f" % (name, accuracy), fontsize=10)
    ax.set_aspect("equal")
fig.tight_layout()
plt.show()
