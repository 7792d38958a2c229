"""The bench's output: the text table (with what each ratio means above it) and the plot."""

from __future__ import annotations

import textwrap

from .baselines import BASELINES, EVAL_LOSS, FASTLOSS, MEMCPY, NPCALL, READ
from .cases import FORM_SHORT
from .harness import BUSY, _config_line, headline

__all__ = ["format_table", "write_plot"]

_MIB = 1 << 20
_LIMIT_COLS = ((MEMCPY, "x memcpy"), (READ, "x read"), (NPCALL, "x np call"),
               (EVAL_LOSS, "x loss only"))


def _fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_x(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def _ratio_cell(row, ratios, name):
    info = row["impls"].get(name)
    if info is None:
        return "-"
    if "error" in info:
        return "ERR"
    if "skipped" in info:
        return "skip" if info["skipped"].startswith("skipped") else "-"
    r = ratios.get(name)
    cell = "-" if r is None else (f"{r:.0f}" if r >= 100 else f"{r:.1f}")
    if info.get("check", "ok") != "ok":
        cell += "!"
    return cell


def _mib(info):
    pk = info.get("peak_extra_bytes")
    if pk is None:
        return "-"
    return f"{max(pk - info.get('output_bytes', 0), 0) / _MIB:.1f}"  # < 0: pages reused


def _header(meta) -> list[str]:
    v = meta["versions"]
    ver = ", ".join(f"{k} {v[k]}" for k in ("fastloss", "numpy", "torch", "sklearn", "jax")
                    if v.get(k)) or "-"
    missing = [k for k in ("torch", "sklearn", "jax") if not v.get(k)]
    nt = meta["threads_used"]
    lines = [
        f"fastloss bench{' --quick' if meta['quick'] else ''}   {meta['date']}",
        f"versions: {ver}, python {v['python']}"
        + (f"   (not installed: {', '.join(missing)})" if missing else ""),
        f"cpu: {meta['cpu']}, {meta['cpu_count']} usable cores; "
        + (f"n_threads={meta['n_threads']}" if meta["n_threads"] else
           f"fastloss's default threads, {nt}") + " for the limits, torch and sklearn",
    ]
    cfg = _config_line(meta.get("show_config"))
    if cfg:
        lines.append(f"fastloss: {cfg}")
    if meta.get("other_load") is not None:
        lines.append(f"other processes used {meta['other_load']:.0%} of the CPU time during the "
                     f"{meta['wall_s']:.0f} s run"
                     + ("  <-- BUSY MACHINE: multi-threaded timings are unreliable"
                        if meta["other_load"] > BUSY else ""))
    lines += [
        "",
        "How to read it (every figure from this one process; implementations interleaved",
        "round-robin, best of several rounds):",
        "  fastloss    time of one call; v+g writes the gradient into a preallocated out= array;",
        "              'v+g new' is the default call, which returns a freshly allocated gradient",
        f"  x memcpy    fastloss time / time to copy the predictions into a preallocated array "
        f"with {nt}",
        "              threads: the bytes a gradient pass must read and write at least "
        "(1.00 = at that",
        "              limit; dense float targets, as in MSE and sigmoid CE, add a read of the "
        "same size)",
        f"  x read      fastloss time / time of a read-only pass over the predictions with {nt} "
        "threads:",
        "              the floor of a value-only call",
        "  x np call   fastloss time / time of np.exp on the same array: the cost of one NumPy "
        "call",
        f"  1->{nt} thr    time with n_threads=1 / time with {nt} threads",
        "  torch..     baseline time / fastloss time: above 1 fastloss is faster. torch = "
        "forward + autograd",
        "              .grad (v+g) or a no_grad forward (value), the same tensor and threads; "
        "for options",
        "              beyond PyTorch's functions the loss written with torch operations. jax = "
        "jit(value_and",
        "              _grad), compile excluded. sklearn = sklearn._loss Half* losses. numpy = "
        "fastloss.reference",
        "              (one thread). python = plain-Python loops (small sizes). '!' its result "
        "disagrees",
        "              with fastloss (see PROBLEMS); skip: estimated too slow; -: not installed "
        "or no equivalent",
        "  GB/s        bytes the call reads and writes (predictions + targets, + gradient for "
        "v+g) / time",
        "  fl.torch    half-precision cases: torch's time / the fastloss.torch drop-in's time on "
        "the same",
        "              half tensor (forward + autograd.grad; above 1 the drop-in is faster)",
        "  metrics-*   fastloss = Evaluator(metrics=\"all\") (construction, one update, result);",
        "              x loss only = its time / the loss-only Evaluator's (loss, accuracy, top-5);",
        "              sklearn = the same metrics with sklearn.metrics (+ NumPy for Brier, "
        "entropy,",
        "              ECE/MCE), torchmetrics = its classification metrics, each / fastloss's "
        "time",
        "  +MiB        peak extra memory of the call beyond the gradient it returns, measured as",
        f"              {meta['memory_method']}",
        "",
    ]
    return lines


def format_table(res: dict) -> str:
    """The results as the text table ``main`` prints."""
    meta, rows = res["meta"], res["results"]
    lines = _header(meta)
    timed = [r for r in rows if r.get("fastloss_s")]
    limit_cols = [(n, t) for n, t in _LIMIT_COLS if any(n in r.get("x_limits", {})
                                                         for r in timed)]
    base_cols = [b for b in BASELINES if any(b in r.get("ratios", {}) or
                                             b in r.get("default_call", {}).get("ratios", {})
                                             for r in timed)]
    scaling = any(r.get("scaling") for r in rows)
    dropin = any(r.get("dropin_s") for r in rows)
    nt = meta["threads_used"]
    header = (["case", "shape", "dtype", "form", "fastloss", "GB/s"] + [t for _, t in limit_cols]
              + ([f"1->{nt} thr"] if scaling else []) + base_cols
              + (["fl.torch"] if dropin else []) + ["+MiB"])
    table = [header]
    failed = []
    skipped = []
    for row in rows:
        base = [row["case"], "x".join(map(str, row["shape"])), row["dtype"].replace("float", "f")]
        fl = row.get("fastloss_s")
        name = headline(row["form"])
        if fl is None:
            info = row["impls"].get(name, {})
            if "skipped" in info and "error" not in info:   # an optional package is missing
                skipped.append(f"  {row['case']} {FORM_SHORT[row['form']]}: {info['skipped']}")
            else:
                failed.append(f"  {row['case']} {FORM_SHORT[row['form']]}: FAILED: "
                              + (info.get("error") or "not timed"))
            continue
        views = [(FORM_SHORT[row["form"]], name, fl, row["x_limits"], row["ratios"])]
        d = row.get("default_call")
        if d:
            views.append(("v+g new", FASTLOSS, d["fastloss_s"], d["x_limits"], d["ratios"]))
        for k, (form, impl, t, lim, ratios) in enumerate(views):
            info = row["impls"][impl]
            gbps = info.get("gbps")
            cells = base + [form, _fmt_time(t), f"{gbps:.1f}" if gbps else "-"]
            cells += [_fmt_x(lim.get(n)) for n, _ in limit_cols]
            if scaling:
                cells.append(_fmt_x(row.get("scaling")) if k == 0 else "")
            cells += [_ratio_cell(row, ratios, b) for b in base_cols]
            if dropin:
                cells.append(_fmt_x(row.get("dropin_vs_torch"), 1) if k == 0 else "")
            cells.append(_mib(info))
            table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for k, r in enumerate(table):
        lines.append("  ".join(c.rjust(w) if i >= 4 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("-" * len(lines[-1]))
    if meta["quick"]:
        lines.append("(--quick: smaller sizes and fewer rounds; `fastloss bench` for the full "
                     "sizes)")

    problems = list(failed)
    loads = [r["other_load"] for r in rows if (r.get("other_load") or 0) > BUSY]
    busy = [f"{r['case']} {FORM_SHORT[r['form']]} ({r['other_load']:.0%})" for r in rows
            if (r.get("other_load") or 0) > BUSY]
    if busy and len(busy) == len(rows):
        problems.append(f"  every case was timed while other processes used {min(loads):.0%} to "
                        f"{max(loads):.0%} of the CPU: rerun on a quiet machine")
    elif busy:
        problems.extend(textwrap.wrap(
            f"timed while other processes used more than {BUSY:.0%} of the CPU (their share in "
            "brackets; rerun on a quiet machine): " + ", ".join(busy), width=100,
            initial_indent="  ", subsequent_indent="    "))
    for row in rows:
        for name, info in row["impls"].items():
            if info.get("check", "ok") != "ok":
                problems.append(f"  {row['case']} {FORM_SHORT[row['form']]}: {name} disagrees "
                                f"with fastloss: {info['check']}")
            if "error" in info:
                problems.append(f"  {row['case']} {FORM_SHORT[row['form']]}: {name} failed: "
                                f"{info['error']}")
    if skipped:
        lines += ["", "NOT RUN (an optional package is not installed):", *skipped]
    if problems:
        lines += ["", "PROBLEMS:", *problems]
    return "\n".join(lines)


def _log_xlim(ax, values) -> None:
    """Log x axis from below the smallest bar (and 1) to room for the labels of the largest."""
    ax.set_xscale("log")
    lo, hi = min(values + [1.0]), max(values + [1.0])
    ax.set_xlim(lo / 1.6, hi * 2.2)


def write_plot(res: dict, path: str) -> None:
    """Two panels, one bar per case and form: fastloss time over the machine's limit, and
    PyTorch's time over fastloss's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res["results"] if r.get("fastloss_s")]
    labels = [f"{r['case']} {FORM_SHORT[r['form']]}" for r in rows]
    meta = res["meta"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.32 * len(rows) + 1.8), sharey=True)
    ys = list(range(len(rows)))[::-1]
    colors = {MEMCPY: "tab:blue", READ: "tab:green", NPCALL: "tab:purple", EVAL_LOSS: "tab:gray"}
    ax = axes[0]
    for y, r in zip(ys, rows):
        for name, x in r["x_limits"].items():
            ax.barh(y, x, color=colors[name], label=name)
            ax.text(x, y, f" {x:.2f}", va="center", fontsize=7)
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    ax.legend(uniq.values(), [f"x {n}" for n in uniq], fontsize=8, loc="upper right")
    ax.axvline(1.0, color="k", lw=0.8)
    _log_xlim(ax, [x for r in rows for x in r["x_limits"].values()])
    ax.set_xlabel("fastloss time / the machine's limit (1 = at the limit; lower is better)")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax = axes[1]
    for y, r in zip(ys, rows):
        x = r["ratios"].get("torch")
        if x:
            ax.barh(y, x, color="tab:orange")
            ax.text(x, y, f" {x:.1f}x", va="center", fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8)
    _log_xlim(ax, [r["ratios"]["torch"] for r in rows if r["ratios"].get("torch")])
    ax.set_xlabel("PyTorch time / fastloss time (higher is better)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    busy = meta.get("other_load")
    fig.suptitle(f"fastloss bench{' --quick' if meta['quick'] else ''}: {meta['cpu']}, "
                 f"{meta['threads_used']} threads; v+g with out="
                 + (f" (BUSY machine: other processes used {busy:.0%} of the CPU)"
                    if busy is not None and busy > BUSY else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
