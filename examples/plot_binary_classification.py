"""
Binary classification: sigmoid, two-class softmax and hinge
===========================================================

The first of the three sample problems: each example belongs to one of two
classes.  Three losses fit it:

- **sigmoid cross-entropy** on one score per example,
  :func:`fastloss.sigmoid_cross_entropy` with targets in {0, 1};
- **softmax cross-entropy with two classes**, two scores per example,
  :func:`fastloss.softmax_cross_entropy` with integer labels;
- the **binary hinge** of a support vector machine, :func:`fastloss.hinge`
  with targets in {-1, +1}.

We train the same small neural network (2 inputs, 32 tanh units) three
times on scikit-learn's two moons, once per loss, by full-batch gradient
descent written in NumPy.  fastloss gives each step's loss and its gradient
with respect to the network's outputs in one call
(``*_value_and_grad``); the rest of the backward pass is two matrix
products.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

import fastloss

# %%
# Two classes, two ways to score them
# -----------------------------------
#
# A softmax over two scores ``(z0, z1)`` is the sigmoid of their difference:
# ``softmax([z0, z1])[1] == sigmoid(z1 - z0)``.  So softmax cross-entropy with
# two classes *is* sigmoid cross-entropy of the score difference, and its
# gradient with respect to ``(z0, z1)`` is ``(-g, g)`` where ``g`` is the
# sigmoid's.  The two parameterisations describe the same models; the softmax
# one has a redundant output.
rng = np.random.default_rng(0)
z = rng.standard_normal((6, 2))
y = np.array([0, 1, 1, 0, 1, 0])
loss_softmax, g_softmax = fastloss.softmax_cross_entropy_value_and_grad(z, y)
loss_sigmoid, g_sigmoid = fastloss.sigmoid_cross_entropy_value_and_grad(z[:, 1] - z[:, 0], y)
print("softmax, 2 classes: %.12f" % loss_softmax)
print("sigmoid of z1 - z0: %.12f" % loss_sigmoid)
assert np.isclose(loss_softmax, loss_sigmoid, rtol=1e-12)
assert np.allclose(g_softmax, np.stack([-g_sigmoid, g_sigmoid], axis=1), rtol=1e-12)

# %%
# The data
# --------
#
# Two interleaved half circles with noise; a quarter is held out.
X, y = make_moons(n_samples=600, noise=0.25, random_state=0)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
print("train %d, test %d examples" % (len(X_train), len(X_test)))

# %%
# The network and the three losses
# --------------------------------
#
# Each loss function below takes the network's outputs and the labels and
# returns ``(loss, d loss / d outputs)``, one fastloss call each.  The
# network has one output for the sigmoid and the hinge, two for the softmax.
# Each loss also says which class a score predicts: the sign of the score for
# the sigmoid and the hinge, the larger score for the softmax.

N_HIDDEN = 32


def sigmoid_ce(out, labels):
    loss, grad = fastloss.sigmoid_cross_entropy_value_and_grad(out[:, 0], labels)
    return loss, grad[:, None]


def softmax_ce(out, labels):
    return fastloss.softmax_cross_entropy_value_and_grad(out, labels)


def binary_hinge(out, labels):
    loss, grad = fastloss.hinge_value_and_grad(out[:, 0], 2 * labels - 1)   # {0,1} -> {-1,+1}
    return loss, grad[:, None]


LOSSES = {
    "sigmoid cross-entropy": (sigmoid_ce, 1, lambda out: (out[:, 0] > 0).astype(int)),
    "softmax cross-entropy, 2 classes": (softmax_ce, 2, lambda out: out.argmax(1)),
    "binary hinge": (binary_hinge, 1, lambda out: (out[:, 0] > 0).astype(int)),
}


def init(n_out, seed=0):
    r = np.random.default_rng(seed)
    return [r.normal(0, 1.0, (2, N_HIDDEN)).astype(np.float32), np.zeros(N_HIDDEN, np.float32),
            r.normal(0, 0.3, (N_HIDDEN, n_out)).astype(np.float32), np.zeros(n_out, np.float32)]


def forward(params, x):
    w1, b1, w2, b2 = params
    h = np.tanh(x @ w1 + b1)
    return h, h @ w2 + b2


def train(loss_fn, n_out, steps=600, lr=0.2, momentum=0.9):
    params = init(n_out)
    velocity = [np.zeros_like(p) for p in params]
    history = []
    for _ in range(steps):
        h, out = forward(params, X_train)
        loss, d_out = loss_fn(out, y_train)      # fastloss: the loss and d loss / d out
        history.append(loss)
        w1, b1, w2, b2 = params
        d_h = (d_out @ w2.T) * (1 - h * h)       # back through the tanh layer
        grads = [X_train.T @ d_h, d_h.sum(0), h.T @ d_out, d_out.sum(0)]
        for p, v, g in zip(params, velocity, grads):
            v *= momentum
            v -= lr * g
            p += v
    return params, np.array(history)


results = {}
for name, (loss_fn, n_out, predict) in LOSSES.items():
    params, history = train(loss_fn, n_out)
    accuracy = np.mean(predict(forward(params, X_test)[1]) == y_test)
    results[name] = params, history, accuracy
    print("%-34s final training loss %.4f, test accuracy %.3f" % (name, history[-1], accuracy))

# %%
# Training curves
# ---------------
#
# The sigmoid and the two-class softmax follow nearly the same curve: they
# are the same family of models (above), and the softmax's extra output only
# changes the parameterisation.  The hinge loss reaches 0 on examples
# classified with a margin of at least 1 and stops learning from them.
fig, ax = plt.subplots(figsize=(7, 4))
for name, (_, history, accuracy) in results.items():
    ax.plot(history, label="%s (test accuracy %.3f)" % (name, accuracy))
ax.set_xlabel("gradient descent step")
ax.set_ylabel("training loss (mean)")
ax.set_yscale("log")
ax.legend()
ax.set_title("Two moons, 32 tanh units, full-batch gradient descent")
fig.tight_layout()

# %%
# Decision boundaries
# -------------------
#
# The probability of class 1 for the cross-entropies, the score for the
# hinge (whose scores are not probabilities: only their sign and the margin
# band ``|score| < 1`` mean something).  The black line is the decision
# boundary.
xx, yy = np.meshgrid(np.linspace(-2.0, 3.0, 200), np.linspace(-1.5, 2.0, 200))
grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
for ax, (name, (params, _, accuracy)) in zip(axes, results.items()):
    out = forward(params, grid)[1]
    if name.startswith("softmax"):
        value = 1 / (1 + np.exp(out[:, 0] - out[:, 1]))        # softmax(out)[:, 1]
        levels, label = np.linspace(0, 1, 11), "p(class 1)"
    elif name.startswith("sigmoid"):
        value = 1 / (1 + np.exp(-out[:, 0]))
        levels, label = np.linspace(0, 1, 11), "p(class 1)"
    else:
        value = np.clip(out[:, 0], -2, 2)
        levels, label = np.linspace(-2, 2, 9), "score (clipped to [-2, 2])"
    value = value.reshape(xx.shape)
    cs = ax.contourf(xx, yy, value, levels=levels, cmap="RdBu_r", alpha=0.8)
    ax.contour(xx, yy, value, levels=[0.5 if "p(" in label else 0.0], colors="k")
    ax.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap="RdBu_r", edgecolor="k", s=18)
    ax.set_title("%s\ntest accuracy %.3f" % (name, accuracy), fontsize=10)
    fig.colorbar(cs, ax=ax, label=label, shrink=0.85)
fig.tight_layout()
plt.show()
