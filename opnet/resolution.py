"""A grid operator across resolutions: the nested protocol of the FNO papers and PDEBench.

    from opnet.resolution import resolution_evaluations
    rows = [e.row for e in resolution_evaluations("run/checkpoints/last.ckpt", [33, 65, 129])]

**Nested** (the standard protocol): ONE test set is generated at the finest requested
resolution F with the checkpoint's own generator configuration (cached under
``<data_root>/<name>_eval<F>_seed<seed>``) and every resolution r is its every s-th node, so
each resolution sees the same fields (only the sampling differs). Node grids that include the
boundary (x_i = i/(F−1), e.g. Darcy) need (F−1) % (r−1) == 0, s = (F−1)/(r−1); periodic grids
(x_i = i/F) need F % r == 0, s = F/r; the fine set's coordinates tell which (the domain is
[0, 1]: a last coordinate of 1 is a node grid, 1 − 1/F a periodic one). Rows carry
``protocol: "nested"``, ``fine_grid`` (F) and ``stride`` (s), and two error floors against the
same truth u_F[::s] (mean over samples of the relative L2 of :func:`opnet.metrics.rel_l2`):

* ``floor_rel_l2``, the solver's own discretisation error: the generator's ``solve_inputs``
  (:mod:`data_gen.pdes.base`) at r for the subsampled inputs a_F[::s], against u_F[::s]
  (0 at r = F; generators without ``solve_inputs`` have none: ``floor`` says so);
* ``interp_floor_rel_l2``, the error of the resample path (``Surrogate.predict(a,
  resample=True)``): u_F restricted to the training grid (when it is nested in F) and
  interpolated back to r (multilinear, node to node), against u_F[::s].

**Independent** (the fallback when some r is not nested in F): a fresh test set per resolution
(``<name>_eval<r>_seed<seed>``, different fields at each), ``protocol: "independent"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from opnet.data import h5
from opnet.families import family_of, load_object

if TYPE_CHECKING:  # opnet.evaluate imports this module (and re-exports its functions)
    from matplotlib.figure import Figure

    from opnet.evaluate import Evaluation, Operator

__all__ = ["evaluate_resolutions", "generator_config", "grid_kind", "interpolation_floor",
           "nested_strides", "protocol_notes", "resolution_evaluations", "resolution_figure",
           "solver_floor", "stride_for"]

DOMAIN_END = 1.0  # opnet's generators live on [0, 1]^d
NOT_NESTED = ("independent: a fresh test set per resolution (different fields at each; "
              "the resolutions are not all every s-th node of the finest)")


def grid_kind(x: np.ndarray) -> str | None:
    """``"nodes"`` (x_i = i/(n−1): the last coordinate is the domain end), ``"periodic"``
    (x_i = i/n: one spacing short of it) or None (neither, or fewer than 2 points)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or len(x) < 2:
        return None
    h = x[1] - x[0]
    if np.isclose(x[-1], DOMAIN_END, rtol=0.0, atol=1e-6 * h):
        return "nodes"
    if np.isclose(x[-1] + h, DOMAIN_END, rtol=0.0, atol=1e-6 * h):
        return "periodic"
    return None


def stride_for(kind: str, fine: int, r: int) -> int | None:
    """The stride s whose every s-th node of the ``fine`` grid (``kind``) gives ``r`` nodes,
    else None."""
    if kind == "nodes":
        ok = r >= 2 and (fine - 1) % (r - 1) == 0
        s = (fine - 1) // (r - 1) if ok else 0
    else:
        ok = r >= 1 and fine % r == 0
        s = fine // r if ok else 0
    return s if ok and len(range(0, fine, s)) == r else None


def nested_strides(coords: Mapping[str, np.ndarray], fine: int,
                   resolutions: Sequence[int]) -> tuple[str, dict[int, int]] | None:
    """The grid kind and ``{r: stride}`` when every r is nested in the ``fine`` grid whose
    spatial ``coords`` (x, y, z; all of ``fine`` points, one kind) are given, else None."""
    axes = [np.asarray(coords[a]) for a in h5.SPACE_AXES if a in coords]
    kinds = {grid_kind(x) for x in axes}
    if not axes or any(len(x) != fine for x in axes) or len(kinds) != 1 or None in kinds:
        return None
    kind = kinds.pop()
    strides = {int(r): stride_for(kind, fine, int(r)) for r in resolutions}
    return None if None in strides.values() else (kind, strides)


def _sub(u: np.ndarray, strides: Sequence[int]) -> np.ndarray:
    """``u [n, C, *grid]`` at every strides[a]-th node of grid axis a."""
    return u[(slice(None), slice(None), *(slice(None, None, s) for s in strides))]


def solver_floor(pde: Mapping[str, Any], fine_path: str | os.PathLike,
                 output_fields: Sequence[str], stride: int) -> float | None:
    """mean_b ‖u_r − u_F[::s]‖ / ‖u_F[::s]‖ with u_r the generator's ``solve_inputs`` for
    the inputs a_F[::s] of the fine split ``fine_path`` (0 for s = 1); None when the
    generator of ``pde`` (a ``{name, **params}`` mapping) has no ``solve_inputs``."""
    from data_gen.pdes import generator_key, get_pde, make_config
    from opnet.metrics import per_sample_rel_l2

    key = generator_key(pde)
    solve = getattr(get_pde(key), "solve_inputs", None)
    if solve is None:
        return None
    if stride == 1:
        return 0.0
    inputs = {name: h5.read_fields(fine_path, "inputs", [name], stride).astype(np.float64)
              for name in h5.field_names(fine_path)["inputs"]}
    params = {k: v for k, v in pde.items() if k not in ("name", "_target_")}
    grid = next(iter(inputs.values())).shape[2:]
    if "resolution" in params:
        params["resolution"] = int(grid[0])
    outputs = solve(make_config(key, params), inputs)
    coarse = np.concatenate([outputs[name] for name in output_fields], axis=1)
    truth = h5.read_fields(fine_path, "outputs", output_fields, stride)
    return float(per_sample_rel_l2(coarse, truth).mean())


def interpolation_floor(fine_path: str | os.PathLike, output_fields: Sequence[str],
                        kind: str, train_grid: Sequence[int], stride: int) -> float | None:
    """mean_b ‖I(u_F|train) − u_F[::s]‖ / ‖u_F[::s]‖: the fine truth restricted to the
    training grid, interpolated (multilinear, node to node) to the grid u_F[::s]; None when
    the training grid is not nested in the fine grid."""
    import torch

    from opnet.metrics import per_sample_rel_l2
    from opnet.models.layers.resample import resample_nodes

    u = h5.read_fields(fine_path, "outputs", output_fields).astype(np.float64)
    if len(train_grid) != u.ndim - 2:
        return None
    steps = [stride_for(kind, n, int(g)) for n, g in zip(u.shape[2:], train_grid, strict=True)]
    if None in steps:
        return None
    truth = _sub(u, [stride] * (u.ndim - 2))
    back = resample_nodes(torch.from_numpy(_sub(u, steps)), truth.shape[2:]).numpy()
    return float(per_sample_rel_l2(back, truth).mean())


def generator_config(op: Operator) -> dict:
    """The ``{name, **params}`` generator configuration recorded in ``op``'s checkpoint (a
    one-line ValueError when there is none or the data were imported)."""
    dataset = op.io["dataset"]
    if not dataset.get("generator_config"):
        raise ValueError("the checkpoint records no generator configuration; evaluate on an "
                         "existing dataset (data=<folder>) instead")
    pde = yaml.safe_load(dataset["generator_config"])
    if not isinstance(pde, dict) or "name" not in pde or "importer" in pde:
        raise ValueError("the checkpoint was trained on imported data (no opnet generator "
                         "to make new test sets); evaluate on existing datasets "
                         "(data=<folder>) instead")
    return pde


def _grid_evaluator(op: Operator) -> Callable[..., Evaluation]:
    """The grid family's evaluator (:mod:`opnet.families`: ``opnet.evaluate.evaluate_grid``)
    for a grid operator; other families are refused in one line."""
    family = family_of(op.metadata)
    if family.kind != "grid":
        raise ValueError(f"resolution=: only grid operators are evaluated across resolutions "
                         f"(this is a {family.kind} operator)")
    return load_object(family.evaluator, "the grid family's evaluator")


def resolution_evaluations(operator: Operator | str | os.PathLike, resolutions: Sequence[int],
                           n: int = 100, seed: int = 1, data_root: str | os.PathLike = "data",
                           workers: int = 1, keep: int = 0, batch_size: int | None = None,
                           resample: bool = False) -> list[Evaluation]:
    """Errors of a grid operator at each resolution (nodes per side) by the nested protocol
    (one fine test set, subsampled; with the solver and interpolation floors), or by
    independent fresh test sets when the resolutions are not nested (module docstring).
    ``resample``: predict through the training grid (``Surrogate.predict(resample=True)``)."""
    from data_gen import generate  # only this function needs the generators
    from opnet.surrogate import load_operator

    op = load_operator(operator) if isinstance(operator, str | os.PathLike) else operator
    evaluator, pde = _grid_evaluator(op), generator_config(op)
    if "resolution" not in pde:
        raise ValueError(f"generator '{pde['name']}' has no 'resolution' parameter; evaluate "
                         "on existing datasets (data=<folder>) instead")
    name = op.io["dataset"].get("name", pde["name"])
    res = [int(r) for r in resolutions]

    def fresh(r: int) -> Path:
        out = Path(data_root) / f"{name}_eval{r}_seed{seed}"
        generate({**pde, "resolution": r}, out=out, n_train=0, n_val=0, n_test=n, seed=seed,
                 workers=workers, progress=False)
        return out

    def run(data: Path, stride: int = 1) -> Evaluation:
        return evaluator(op, data, "test", stride, None, keep, batch_size,
                         **({"resample": True} if resample else {}))

    fine = max(res)
    fine_dir = fresh(fine)
    fine_path = h5.split_path(fine_dir, "test")
    nested = nested_strides(h5.read_coords(fine_path), fine, res)
    if nested is None:
        results = [run(fresh(r)) for r in res]
        for e in results:
            e.row["protocol"] = "independent"
        return results
    kind, strides = nested
    outputs, stepping = op.io["output_fields"], bool(op.io["dataset"].get("trajectory_field"))
    results = []
    for r in res:
        e = run(fine_dir, strides[r])
        e.row.update({"protocol": "nested", "fine_grid": fine, "stride": strides[r]})
        floor = None if stepping else solver_floor(pde, fine_path, outputs, strides[r])
        if floor is None:
            e.row["floor"] = f"not available for {pde['name']}"
        else:
            e.row["floor_rel_l2"] = floor
        interp = None if stepping else interpolation_floor(fine_path, outputs, kind,
                                                           op.io["grid"], strides[r])
        if interp is None:
            e.row["interp_floor"] = (f"not available: training grid {op.io['grid']} not "
                                     f"nested in {fine}" if not stepping else
                                     "not available for time-stepping operators")
        else:
            e.row["interp_floor_rel_l2"] = interp
        results.append(e)
    return results


def evaluate_resolutions(operator: Operator | str | os.PathLike, resolutions: Sequence[int],
                         n: int = 100, seed: int = 1, data_root: str | os.PathLike = "data",
                         workers: int = 1) -> list[dict]:
    """:func:`resolution_evaluations`' metrics rows."""
    return [e.row for e in resolution_evaluations(operator, resolutions, n, seed, data_root,
                                                   workers)]


def protocol_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines for under the table: which protocol gave ``rows`` and which floors are missing
    (none for rows of no resolution protocol)."""
    kinds = {row.get("protocol") for row in rows} - {None}
    if not kinds:
        return []
    if kinds != {"nested"}:
        return [f"protocol: {NOT_NESTED}"]
    first = rows[0]
    ladder = ", ".join(f"{row['grid'][0]} (s={row['stride']})" for row in rows)
    lines = [f"protocol: nested: one test set at {first['fine_grid']} points per side, every s-th "
             f"node: {ladder}"]
    for key in ("floor", "interp_floor"):
        lines += [f"{key}: {note}" for note in sorted({str(r[key]) for r in rows if key in r})]
    return lines


def _positive(values: Sequence[float]) -> np.ndarray:
    """NaN where a value is not positive and finite (a log axis skips NaN points)."""
    v = np.asarray(values, np.float64)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


SERIES = {"rel_l2": "rel_l2", "h1": "h1", "floor_rel_l2": "solver floor",
          "interp_floor_rel_l2": "interpolation floor"}


def resolution_figure(results: Sequence[Evaluation]) -> Figure | None:
    """Model errors (``rel_l2``, ``h1``) and the floors against the resolution, log-log
    (non-positive points, e.g. the floor 0 at the fine grid, skipped); None for fewer than
    two grid evaluations."""
    from opnet import plot

    rows = sorted((r.row for r in results if "grid" in r.row), key=lambda row: row["grid"][0])
    if len(rows) < 2:
        return None
    series = {}
    for key, label in SERIES.items():
        if any(key in row for row in rows):
            values = _positive([row.get(key, np.nan) for row in rows])
            if np.isfinite(values).any():
                series[label] = values
    if not series:
        return None
    return plot.error_vs_resolution([row["grid"][0] for row in rows], series)
