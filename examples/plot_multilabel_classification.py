"""
Multi-label classification: sigmoid per label, one-vs-all hinge, normalised softmax
===================================================================================

The third sample problem: each example carries any number of ``K`` labels
(a document's topics, the objects in an image), given as a {0, 1} matrix of
shape ``(N, K)``.  Three losses fit it:

- **sigmoid cross-entropy per label**, :func:`fastloss.sigmoid_cross_entropy`
  on the ``(N, K)`` scores and the {0, 1} targets: ``K`` independent yes/no
  questions;
- the **one-vs-all hinge**, ``fastloss.hinge(scores, targets,
  multiclass="ovr")`` with the {0, 1} target of the scores' shape: a binary
  hinge per label, summed over the labels (Caffe's ``HingeLoss``);
- **softmax cross-entropy with normalised multi-label targets**: the target
  row divided by its number of labels, a probability distribution spread
  evenly over the example's labels, given to
  :func:`fastloss.softmax_cross_entropy` as a probability target (the
  "multi-label softmax" of the Caffe literature).  The labels compete for one
  unit of probability, so its scores rank labels rather than answer each
  yes/no question.

We train a linear model (a weight per feature and label) with each loss on
generated data, by gradient descent in NumPy with fastloss's gradients, and
compare the per-label scores.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_multilabel_classification
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

import fastloss

# %%
# The data
# --------
#
# scikit-learn's generator of multi-label problems: 8 labels, about 2 per
# example, every example with at least one.
X, Y = make_multilabel_classification(n_samples=3000, n_features=40, n_classes=8, n_labels=2,
                                      allow_unlabeled=False, random_state=0)
X = np.log1p(X).astype(np.float32)          # word counts -> a tamer scale
Y = Y.astype(np.float32)
X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.3, random_state=0)
mean, std = X_train.mean(0), X_train.std(0) + 1e-3
X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
K = Y.shape[1]
print("train %d, test %d, %d features, %d labels, %.2f labels per example"
      % (len(X_train), len(X_test), X.shape[1], K, Y.sum(1).mean()))
print("label frequencies:", np.round(Y_train.mean(0), 2))

# %%
# The three losses
# ----------------
#
# Each returns ``(loss, d loss / d scores)`` from one fastloss call, and a
# rule that turns scores into a set of predicted labels: a probability of at
# least 1/2 for the sigmoid, a positive score for the hinge.  The softmax
# spreads one unit of probability over the labels, so it has no natural
# per-label threshold; here it predicts the labels whose probability is at
# least half of the largest one.


def normalised(targets):
    return targets / targets.sum(1, keepdims=True)


LOSSES = {
    "sigmoid CE per label": (
        lambda s, t: fastloss.sigmoid_cross_entropy_value_and_grad(s, t),
        lambda s: 1 / (1 + np.exp(-s)),
        lambda p: p >= 0.5),
    "one-vs-all hinge": (
        lambda s, t: fastloss.hinge_value_and_grad(s, t, multiclass="ovr"),
        lambda s: s,
        lambda s: s > 0),
    "softmax, normalised targets": (
        lambda s, t: fastloss.softmax_cross_entropy_value_and_grad(s, normalised(t)),
        lambda s: np.exp(s - s.max(1, keepdims=True)) / np.exp(s - s.max(1, keepdims=True)).sum(
            1, keepdims=True),
        lambda p: p >= 0.5 * p.max(1, keepdims=True)),
}


def train(loss_fn, steps=400, lr=0.5, momentum=0.9):
    w = np.zeros((X_train.shape[1], K), np.float32)
    b = np.zeros(K, np.float32)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    history = []
    for _ in range(steps):
        loss, d_scores = loss_fn(X_train @ w + b, Y_train)   # fastloss: loss, d loss / d scores
        history.append(loss)
        vw = momentum * vw - lr * (X_train.T @ d_scores)
        vb = momentum * vb - lr * d_scores.sum(0)
        w += vw
        b += vb
    return w, b, np.array(history)


results = {}
for name, (loss_fn, to_score, decide) in LOSSES.items():
    w, b, history = train(loss_fn)
    score = to_score(X_test @ w + b)
    predicted = decide(score)
    auc = np.array([roc_auc_score(Y_test[:, k], score[:, k]) for k in range(K)])
    f1 = f1_score(Y_test, predicted, average=None, zero_division=0)
    top1 = np.mean(Y_test[np.arange(len(Y_test)), score.argmax(1)] == 1)
    results[name] = dict(history=history, auc=auc, f1=f1, top1=top1)
    print("%-28s mean ROC AUC %.3f, micro F1 %.3f, top label correct %.3f"
          % (name, auc.mean(), f1_score(Y_test, predicted, average="micro"), top1))

# %%
# Per-label scores
# ----------------
#
# The ROC AUC of each label's scores (threshold-free: how well the model
# ranks the examples that carry the label above those that do not) and the
# F1 of the predicted label sets.
#
# On this data the normalised softmax ranks best.  That is the generator's
# doing: ``make_multilabel_classification`` draws each example's features
# (word counts) from a mixture of its labels' distributions, the labels share
# one budget of words the way they share one unit of probability in the
# softmax.  Its label sets need a threshold rule that the softmax does not
# supply (the one above gives an F1 like the others'); the per-label sigmoid
# and hinge answer each label's yes/no question directly, with their natural
# thresholds, and are the choice when the labels are independent.
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.4), sharex=True)
width = 0.27
for i, (name, r) in enumerate(results.items()):
    pos = np.arange(K) + (i - 1) * width
    ax0.bar(pos, r["auc"], width, label=name)
    ax1.bar(pos, r["f1"], width)
ax0.set_ylim(0.5, 1.0)
ax0.set_ylabel("ROC AUC on the test set")
ax0.set_title("ROC AUC per label (means %s)"
              % " / ".join("%.3f" % r["auc"].mean() for r in results.values()), fontsize=10)
ax1.set_ylim(0.0, 1.0)
ax1.set_ylabel("F1 on the test set")
ax1.set_title("F1 per label (means %s)"
              % " / ".join("%.3f" % r["f1"].mean() for r in results.values()), fontsize=10)
for ax in (ax0, ax1):
    ax.set_xticks(np.arange(K))
    ax.set_xlabel("label")
fig.legend(loc="upper center", ncol=3, frameon=False)
fig.tight_layout(rect=(0, 0, 1, 0.92))

# %%
# Training curves
# ---------------
#
# The three losses are on different scales (the hinge sums over the labels,
# the sigmoid averages over every element, the softmax has a floor: the
# entropy of the normalised target), so each gets its own panel.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
for ax, (name, r) in zip(axes, results.items()):
    ax.plot(r["history"])
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("gradient descent step")
axes[0].set_ylabel("training loss (mean)")
fig.tight_layout()
plt.show()
