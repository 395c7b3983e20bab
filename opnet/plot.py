"""Figures of operator predictions: a few samples (input, truth, prediction, error), error
histograms, error against resolution and a rollout's error and correlation by step, as PNG
files or TensorBoard images.

Pure plotting on numpy arrays (no torch, no Lightning); matplotlib is the optional extra
``pip install 'opnet[plot]'``. The figures are :class:`matplotlib.figure.Figure` objects
built without pyplot's figure registry, so they need no display and no GUI backend;
:func:`save_figure` writes one as a PNG.

``sample_figure`` kinds (arrays are per sample; S samples, only the first ``max_samples``
are drawn):

* ``"grid2d"``: fields ``[S, H, W]``; one row per sample, columns input | truth |
  prediction | \\|error\\| as images with colour bars (truth and prediction share limits).
  ``field[i, j]`` is the value at ``(x_i, y_j)`` (opnet's grids, as the query points of
  the same data as DeepONet points): x to the right, y up, as in the scatter plots;
* ``"grid1d"``: functions ``[S, N]`` on a grid; columns input | truth and prediction |
  \\|error\\| as lines against ``coords["in"]`` / ``coords["out"]`` ([N], default the index);
* ``"points"``: DeepONet data; inputs ``[S, m]`` at sensors ``coords["in"]`` ([m] or
  [m, d_s]) or images ``[S, H, W]``, truth/prediction ``[S, Q]`` at query points
  ``coords["out"]`` ([Q, d] shared or [S, Q, d] per sample). 1-D points are drawn as
  lines; points in 2 or more dimensions as scatter plots of their first two coordinates
  coloured by value (truth | prediction | \\|error\\|);
* ``"trajectory"``: ODE trajectories; ``inputs`` the observed part ``[S, N_in, D]`` at
  times ``coords["in"]``, truth and prediction ``[S, N_out, D]`` at ``coords["out"]``
  (times [N] shared or [S, N] per sample). One panel per sample: every component's
  observations (dots), truth (line) and prediction (dashed), the decoded equation
  ``equations[i]`` above it. Components that are all NaN (padding) are skipped.

``inputs=None`` leaves the input out.
"""

from __future__ import annotations

import math
import os
import sys
import textwrap
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KINDS = ("grid2d", "grid1d", "points", "trajectory")
DPI = 80  # TensorBoard images and PNGs: small files, quick to render


def require_matplotlib() -> Any:
    """``matplotlib.pyplot``, with the Agg backend selected when pyplot was not imported
    yet (a backend the user already chose, e.g. in a notebook, is left alone).

    Raises ImportError naming the extra to install when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("opnet's figures need matplotlib, which is not installed: "
                          "pip install 'opnet[plot]'") from err
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float, height: float, layout: str | None = None) -> Figure:
    """A figure outside pyplot's registry. Constrained layout only for figures with few
    axes: with a dozen or more it costs more than drawing them."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


# ----------------------------------------------------------------------------- samples
def sample_figure(inputs: Any, truth: Any, pred: Any, *, kind: str,
                  coords: Mapping[str, Any] | None = None,
                  titles: Sequence[str] | None = None,
                  equations: Sequence[str | None] | None = None,
                  max_samples: int = 4) -> Figure:
    """Input, truth, prediction and error of the first ``max_samples`` samples.

    kind: one of :data:`KINDS` (shapes in the module docstring); coords: ``{"in": ...,
    "out": ...}`` positions of the inputs and of truth/prediction (all kinds but grid2d;
    a missing entry: sample indices); titles: one label per sample (default ``sample i``
    with its relative L2 error); equations: per-sample text shown with trajectories (None
    entries: "not decodable")."""
    if kind not in KINDS:
        raise ValueError(f"sample_figure: kind={kind!r}, expected one of {KINDS}")
    truth, pred = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    if truth.shape != pred.shape:
        raise ValueError(f"sample_figure: truth has shape {truth.shape} but pred "
                         f"{pred.shape}; they must match")
    s = min(len(truth), int(max_samples))
    if s < 1:
        raise ValueError(f"sample_figure: no samples to draw (truth {truth.shape}, "
                         f"max_samples={max_samples})")
    inputs = None if inputs is None else np.asarray(inputs, np.float64)[:s]
    truth, pred = truth[:s], pred[:s]
    coords = dict(coords or {})
    labels = list(titles)[:s] if titles is not None else [
        f"sample {i}: rel. L2 {_rel_l2(truth[i], pred[i]):.2%}" for i in range(s)]
    if kind == "trajectory":
        eqs = list(equations)[:s] if equations is not None else [None] * s
        return _trajectories(inputs, truth, pred, coords, labels, eqs,
                             show_equations=equations is not None)
    expect = 3 if kind == "grid2d" else 2
    if truth.ndim != expect:
        raise ValueError(f"sample_figure(kind={kind!r}): truth has shape {truth.shape}, "
                         f"expected {expect} dims ([S, {'H, W' if expect == 3 else 'N'}])")
    if kind == "grid2d":
        return _grid2d(inputs, truth, pred, labels)
    return _lines(inputs, truth, pred, coords, labels)


def _rel_l2(truth: np.ndarray, pred: np.ndarray) -> float:
    ok = np.isfinite(truth)
    den = np.linalg.norm(truth[ok])
    return float(np.linalg.norm((pred - truth)[ok]) / den) if den > 0 else float("nan")


def _image(fig: Figure, ax: Axes, field: np.ndarray, title: str,
           limits: tuple[float, float] | None = None, cmap: str = "viridis",
           colorbar: Any = True) -> Any:
    """imshow of ``field`` without axis decorations; a colour bar beside ``ax`` (or beside
    the axes listed in ``colorbar``; False: none). Returns the AxesImage."""
    vmin, vmax = limits if limits is not None else (None, None)
    im = ax.imshow(field.T, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")  # field[i, j] at (x_i, y_j): x right, y up
    if colorbar is not False:
        _colorbar(fig, im, ax if colorbar is True else colorbar)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    return im


def _colorbar(fig: Figure, mappable: Any, ax: Any) -> None:
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator, ScalarFormatter

    cb = fig.colorbar(mappable, ax=ax, shrink=0.85, fraction=0.05, pad=0.03)
    cb.ax.tick_params(labelsize=7)
    cb.locator = MaxNLocator(4)  # few ticks: every tick label costs drawing time
    if isinstance(cb.formatter, ScalarFormatter):  # "2e-05", not an offset text over the title
        cb.formatter = FormatStrFormatter("%.3g")


def _row_label(ax: Axes, label: str) -> None:
    if ax.axison:
        ax.set_ylabel(label, fontsize=8)
    else:  # an image panel
        ax.text(-0.08, 0.5, label, transform=ax.transAxes, rotation=90, ha="right",
                va="center", fontsize=8)


def _grid2d(inputs: np.ndarray | None, truth: np.ndarray, pred: np.ndarray,
            labels: list[str]) -> Figure:
    s, cols = len(truth), 3 + (inputs is not None)
    fig = _figure(2.5 * cols + 0.6, 2.2 * s)
    axes = fig.subplots(s, cols, squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.94, bottom=0.02, top=0.95, wspace=0.25,
                        hspace=0.3)
    for i in range(s):
        row = list(axes[i])
        if inputs is not None:
            _image(fig, row.pop(0), inputs[i], "input")
        both = np.concatenate([truth[i].ravel(), pred[i].ravel()])
        limits = (float(np.nanmin(both)), float(np.nanmax(both)))
        # truth and prediction: the same limits and one colour bar for both
        _image(fig, row[0], truth[i], "truth", limits, colorbar=False)
        _image(fig, row[1], pred[i], "prediction", limits, colorbar=[row[0], row[1]])
        _image(fig, row[2], np.abs(pred[i] - truth[i]), "|error|", cmap="magma")
        _row_label(axes[i][0], labels[i])
    return fig


def _positions(coords: Mapping[str, Any], key: str, i: int, n: int) -> np.ndarray:
    """Sample i's n positions as [n, d]: ``coords[key]`` is shared ([n] or [n, d]) or per
    sample ([S, n] or [S, n, d]); missing: the indices 0..n-1."""
    c = coords.get(key)
    if c is None:
        return np.arange(n, dtype=np.float64)[:, None]
    c = np.asarray(c, np.float64)
    if c.ndim == 3 or (c.ndim == 2 and c.shape[0] != n):
        c = c[i]
    c = c.reshape(len(c), -1) if c.ndim in (1, 2) else c
    if c.ndim != 2 or c.shape[0] != n:
        raise ValueError(f"sample_figure: coords[{key!r}] has shape "
                         f"{np.shape(coords[key])}; expected [{n}], [{n}, d], [S, {n}] or "
                         f"[S, {n}, d] for {n} values per sample")
    return c


def _lines(inputs: np.ndarray | None, truth: np.ndarray, pred: np.ndarray,
           coords: Mapping[str, Any], labels: list[str]) -> Figure:
    s, q = truth.shape
    scatter = _positions(coords, "out", 0, q).shape[1] >= 2
    cols = (3 if scatter else 2) + (inputs is not None)
    fig = _figure(3.0 * cols + 0.6, 2.2 * s)
    axes = fig.subplots(s, cols, squeeze=False)
    fig.subplots_adjust(left=0.09, right=0.95, bottom=0.06, top=0.94, wspace=0.35,
                        hspace=0.45)
    for i in range(s):
        row = list(axes[i])
        if inputs is not None:
            _input_panel(fig, row.pop(0), inputs[i], coords, i)
        y = _positions(coords, "out", i, q)
        err = np.abs(pred[i] - truth[i])
        if scatter:
            both = np.concatenate([truth[i], pred[i]])
            limits = (float(np.nanmin(both)), float(np.nanmax(both)))
            _scatter(fig, row[0], y, truth[i], "truth", limits)
            _scatter(fig, row[1], y, pred[i], "prediction", limits)
            _scatter(fig, row[2], y, err, "|error|", cmap="magma")
        else:
            x = y[:, 0]
            order = np.argsort(x, kind="stable")
            row[0].plot(x[order], truth[i][order], "k-", lw=1.2, label="truth")
            row[0].plot(x[order], pred[i][order], "C1--", lw=1.2, label="prediction")
            if i == 0:
                row[0].legend(fontsize=7)
            row[0].set_title("truth and prediction", fontsize=8)
            row[1].plot(x[order], err[order], "C3-", lw=1.0)
            row[1].set_title("|error|", fontsize=8)
        _row_label(axes[i][0], labels[i])
        for ax in axes[i]:
            if ax.axison:
                ax.tick_params(labelsize=7)
                ax.locator_params(nbins=4)
    return fig


def _input_panel(fig: Figure, ax: Axes, u: np.ndarray, coords: Mapping[str, Any],
                 i: int) -> None:
    if u.ndim == 2:  # an image (a CNN branch's input)
        _image(fig, ax, u, "input")
        return
    x = _positions(coords, "in", i, len(u))
    if x.shape[1] >= 2:
        _scatter(fig, ax, x, u, "input")
        return
    order = np.argsort(x[:, 0], kind="stable")
    ax.plot(x[order, 0], u[order], "C0-", lw=1.0)
    ax.set_title("input", fontsize=8)


def _scatter(fig: Figure, ax: Axes, pts: np.ndarray, values: np.ndarray, title: str,
             limits: tuple[float, float] | None = None, cmap: str = "viridis") -> None:
    vmin, vmax = limits if limits is not None else (None, None)
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=values, s=8, cmap=cmap, vmin=vmin, vmax=vmax,
                    linewidths=0)
    _colorbar(fig, sc, ax)
    ax.set_title(title, fontsize=8)
    ax.set_aspect("equal", adjustable="box")


def _trajectories(inputs: np.ndarray | None, truth: np.ndarray, pred: np.ndarray,
                  coords: Mapping[str, Any], labels: list[str], equations: list,
                  show_equations: bool) -> Figure:
    if truth.ndim != 3:
        raise ValueError(f"sample_figure(kind='trajectory'): truth has shape {truth.shape}, "
                         "expected [S, N_out, D]")
    s, n_out, d = truth.shape
    texts = [_equation_text(e) if show_equations else "" for e in equations]
    lines = max((t.count("\n") + 1 for t in texts if t), default=0)
    cols = min(s, 2)
    rows = math.ceil(s / cols)
    fig = _figure(5.0 * cols, (2.8 + 0.16 * (lines + 1)) * rows, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i in range(s):
        ax = axes[i]
        t_out = _positions(coords, "out", i, n_out)[:, 0]
        t_in = None if inputs is None else _positions(coords, "in", i, inputs.shape[1])[:, 0]
        for k in range(d):
            if np.all(np.isnan(truth[i, :, k])):
                continue  # padded component
            color = f"C{k % 10}"
            if t_in is not None:
                ax.plot(t_in, inputs[i, :, k], ".", color=color, ms=2.5)
            ax.plot(t_out, truth[i, :, k], "-", color=color, lw=1.2, label=f"u_{k}")
            ax.plot(t_out, pred[i, :, k], "--", color=color, lw=1.2, alpha=0.9)
        if t_in is not None and len(t_in):
            ax.axvline(float(np.max(t_in)), color="0.6", lw=0.8, ls=":")
        title = labels[i] + (f"\n{texts[i]}" if texts[i] else "")
        ax.set_title(title, fontsize=7, loc="left")
        ax.set_xlabel("t", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=5)
        ax.legend(fontsize=6, ncol=min(d, 4), title="line: truth, dashed: prediction",
                  title_fontsize=6, loc="best")
    for ax in axes[s:]:
        ax.set_visible(False)
    return fig


def _equation_text(eq: str | None, width: int = 70) -> str:
    if eq is None:
        return "equation: not decodable"
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ")
                     for line in str(eq).splitlines() or [""])


# ------------------------------------------------------------------------------ errors
def error_histogram(errors: Any, *, label: str = "relative L2", bins: int = 30) -> Figure:
    """Histogram of per-sample errors with their mean and median; logarithmic x axis when
    the positive errors spread over more than a factor 100."""
    e = np.asarray(errors, np.float64).ravel()
    e = e[np.isfinite(e)]
    if not len(e):
        raise ValueError("error_histogram: no finite errors to draw")
    fig = _figure(5.0, 3.2, layout="constrained")
    ax = fig.subplots()
    pos = e[e > 0]
    log = len(pos) == len(e) and pos.max() > 100 * pos.min()
    edges = (np.geomspace(pos.min(), pos.max(), bins + 1) if log else bins)
    ax.hist(e, bins=edges, color="C0", alpha=0.8)
    if log:
        ax.set_xscale("log")
    ax.axvline(float(e.mean()), color="C3", lw=1.2, label=f"mean {e.mean():.3g}")
    ax.axvline(float(np.median(e)), color="C2", lw=1.2, ls="--",
               label=f"median {np.median(e):.3g}")
    ax.set_xlabel(label)
    ax.set_ylabel("samples")
    ax.set_title(f"{label}: {len(e)} samples", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def error_vs_resolution(resolutions: Sequence[float], errors: Mapping[str, Sequence[float]],
                        *, xlabel: str = "resolution", ylabel: str = "error") -> Figure:
    """One line per metric (``errors[name]``, one value per resolution) on log-log axes."""
    res = np.asarray(resolutions, np.float64)
    if res.ndim != 1 or not len(res) or not errors:
        raise ValueError("error_vs_resolution: expected resolutions [R] and at least one "
                         "metric")
    fig = _figure(5.0, 3.4, layout="constrained")
    ax = fig.subplots()
    for name, values in errors.items():
        v = np.asarray(values, np.float64)
        if v.shape != res.shape:
            raise ValueError(f"error_vs_resolution: errors[{name!r}] has {v.size} values for "
                             f"{res.size} resolutions")
        ax.plot(res, v, "o-", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(res, [f"{r:g}" for r in res])
    ax.set_xticks([], minor=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def error_vs_step(rel_l2: Sequence[float], correlation: Sequence[float], *,
                  threshold: float = 0.9) -> Figure:
    """A rollout's mean relative L2 (left) and correlation (right) against the step
    1..R, the correlation ``threshold`` as a dashed line and the correlation time (leading
    steps with correlation >= threshold) in the title."""
    err = np.asarray(rel_l2, np.float64).ravel()
    corr = np.asarray(correlation, np.float64).ravel()
    if not len(err) or err.shape != corr.shape:
        raise ValueError(f"error_vs_step: expected rel_l2 and correlation with the same "
                         f"number (>= 1) of steps, got {err.size} and {corr.size}")
    steps = np.arange(1, len(err) + 1)
    below = np.flatnonzero(~(corr >= threshold))
    ctime = int(below[0]) if len(below) else len(corr)
    fig = _figure(8.0, 3.2, layout="constrained")
    ax_err, ax_corr = fig.subplots(1, 2)
    ax_err.plot(steps, err, "o-", color="C0")
    if np.all(err[np.isfinite(err)] > 0) and np.nanmax(err) > 100 * np.nanmin(err):
        ax_err.set_yscale("log")
    ax_err.set_ylabel("relative L2")
    ax_err.set_title("error by rollout step", fontsize=9)
    ax_corr.plot(steps, corr, "o-", color="C1", label="correlation")
    ax_corr.axhline(threshold, color="C3", lw=1.0, ls="--", label=f"threshold {threshold:g}")
    if 0 < ctime < len(corr):
        ax_corr.axvline(ctime + 0.5, color="0.5", lw=0.8, ls=":")
    ax_corr.set_ylabel("correlation")
    ax_corr.set_title(f"correlation time: {ctime} of {len(corr)} steps", fontsize=9)
    ax_corr.legend(fontsize=8)
    for ax in (ax_err, ax_corr):
        ax.set_xlabel("step")
        ax.set_xticks(steps if len(steps) <= 20 else steps[:: math.ceil(len(steps) / 10)])
        ax.grid(True, alpha=0.3)
    return fig


# ------------------------------------------------------------------------------- files
def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` (PNG unless the suffix names another format matplotlib
    knows) atomically: a temporary file in the same folder, then ``os.replace``; the
    figure is closed. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            fig.savefig(f, format=fmt, dpi=fig.dpi)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        close_figure(fig)
    return path


def close_figure(fig: Figure) -> None:
    """Drop ``fig`` from pyplot's registry if pyplot made it (the figures of this module
    are not registered and need nothing more)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)
