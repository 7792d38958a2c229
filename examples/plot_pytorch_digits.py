"""
A PyTorch model trained with ``fastloss.torch.CrossEntropyLoss``
=================================================================

:class:`fastloss.torch.CrossEntropyLoss` is a subclass of
``torch.nn.CrossEntropyLoss`` whose forward runs fastloss's fused
value-and-gradient kernel, so swapping it in changes one line of a training
script.  Here the same 2-layer MLP is trained twice on scikit-learn's digits
from the same seed, once with ``torch.nn.CrossEntropyLoss`` and once with
its fastloss drop-in; both runs see the same batches in the same order.

The script prints each run's test accuracy (they match: the losses agree to
rounding) and two time ratios, fastloss over torch (below 1 means fastloss
is faster):

- "step": a whole training step (forward, loss, backward, optimiser update).
  The loss is a small part of a step here, so this ratio stays near 1.
- "loss": the loss's own forward + backward on a batch of logits.

Run it as a script too: ``python examples/plot_pytorch_digits.py`` (fastloss,
torch, scikit-learn and matplotlib installed; a few seconds).
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastloss
import fastloss.torch

SEED = 0
EPOCHS = 30
BATCH = 64
LABEL_SMOOTHING = 0.05


def load():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-3
    return (torch.from_numpy((x_train - mean) / std), torch.from_numpy(y_train).long(),
            torch.from_numpy((x_test - mean) / std), torch.from_numpy(y_test).long())


def train(criterion, data):
    """Train the MLP with `criterion`; return test accuracy, median step time, epoch losses."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(SEED)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(SEED)
    step_times, epoch_losses = [], []
    for _ in range(EPOCHS):
        losses = []
        for idx in torch.randperm(len(x_train), generator=order).split(BATCH):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            step_times.append(time.perf_counter() - start)
            losses.append(loss.item())
        epoch_losses.append(np.mean(losses))
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return accuracy, float(np.median(step_times)), np.array(epoch_losses)


def loss_time(criterion, n=BATCH, c=10, repeats=2000):
    """Median time of the loss's forward + backward on (n, c) float32 logits."""
    gen = torch.Generator().manual_seed(SEED)
    logits = torch.randn(n, c, generator=gen, requires_grad=True)
    target = torch.randint(0, c, (n,), generator=gen)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        criterion(logits, target).backward()
        times.append(time.perf_counter() - start)
        logits.grad = None
    return float(np.median(times))


# %%
# Train with each criterion
# -------------------------
#
# One thread for both, for a fair and quiet comparison.
threads = torch.get_num_threads()
torch.set_num_threads(1)
data = load()
print("digits: %d train / %d test samples, 64 features, 10 classes; torch %s, fastloss %s"
      % (len(data[0]), len(data[2]), torch.__version__, fastloss.__version__))
results = {}
for name, criterion in [
        ("torch.nn.CrossEntropyLoss",
         torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)),
        ("fastloss.torch.CrossEntropyLoss",
         fastloss.torch.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING))]:
    accuracy, step, epoch_losses = train(criterion, data)
    results[name] = (accuracy, step, loss_time(criterion), epoch_losses)
    print("%-32s test accuracy %.4f  final epoch loss %.6f  median step %.1f us"
          % (name, accuracy, epoch_losses[-1], step * 1e6))
torch.set_num_threads(threads)
(acc_t, step_t, loss_t, curve_t), (acc_f, step_f, loss_f, curve_f) = results.values()
print("accuracy difference: %.4f" % abs(acc_f - acc_t))
print("time ratio fastloss / torch: step %.2f, loss forward+backward %.2f "
      "(%.1f us vs %.1f us; batch %d x 10 classes)"
      % (step_f / step_t, loss_f / loss_t, loss_f * 1e6, loss_t * 1e6, BATCH))
assert abs(acc_f - acc_t) <= 0.01, "the two runs should reach the same accuracy"

# %%
# The two training runs
# ---------------------
#
# The curves lie on top of each other: the drop-in computes the same values
# and gradients, so the optimiser takes the same steps (up to float32
# rounding, which the long run can amplify a little).
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(np.arange(1, EPOCHS + 1), curve_t, lw=3, alpha=0.5, label="torch.nn.CrossEntropyLoss")
ax.plot(np.arange(1, EPOCHS + 1), curve_f, "k--", label="fastloss.torch.CrossEntropyLoss")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("mean training loss of the epoch's batches")
ax.set_title("MLP on the digits, label smoothing %.2f" % LABEL_SMOOTHING)
ax.legend()
fig.tight_layout()
plt.show()
