"""Physics-informed training: the problem's residual (:mod:`data_gen.physics`) as loss terms
next to the data loss, with fixed or adaptive (ReLoBRaLo) weights.

``module.physics``::

    weight: 0.0          # λ, the physics terms' total weight (0: off)
    terms: {}            # per-term weights, e.g. {pde: 1.0, bc: 10.0} (default: the
                         # residual's default_weights, else 1)
    balance: fixed       # fixed | relobralo (Bischof & Kraus 2021, arXiv 2110.09813)
    points: 1024         # DeepONet: collocation points per iteration (seeded)
    temperature: 0.1     # relobralo: softmax temperature T
    alpha: 0.999         # relobralo: memory of the running weights
    rho: 0.999           # relobralo: the look-back to the first losses (its expectation;
                         # the paper draws it as a Bernoulli variable)

Each term is a mean square made relative to the size of the equation's data: for a term of
per-sample residual values ``r_b`` and the problem's scale ``σ_b`` (the RMS of the
equation's data, e.g. of the source f), ``L = mean_b mean(r_b²) / σ_b²``: the squared
relative residual for the equation itself, its boundary/initial conditions in the same
units. Computed in float32 at least (under bf16 autocast too).

With ``balance: fixed`` the loss is ``data + λ Σ_k w_k L_k``. ReLoBRaLo rebalances all
terms (the data loss included when the batch has labels) every step:
``w_k(t) = α (ρ w_k(t−1) + (1−ρ) ŵ_k(t, 0)) + (1−α) ŵ_k(t, t−1)`` with
``ŵ_k(t, t') = K · softmax_k(L_k(t) / (T L_k(t')))``, so a term that falls more slowly
than the others gains weight; the weights (and the first and last losses) are buffers,
saved in checkpoints and restored on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

BALANCES = ("fixed", "relobralo")
HALF = (torch.float16, torch.bfloat16)
DEFAULTS: dict[str, Any] = {"weight": 0.0, "terms": {}, "balance": "fixed", "points": 1024,
                            "temperature": 0.1, "alpha": 0.999, "rho": 0.999}


def physics_options(physics: Mapping[str, Any] | None) -> dict[str, Any]:
    """``module.physics`` with defaults filled in, checked (a ValueError naming the key)."""
    given = {k: v for k, v in dict(physics or {}).items() if v is not None}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"module.physics: unknown option(s) {unknown}; it takes "
                         f"{sorted(DEFAULTS)}")
    options = {**DEFAULTS, **given}
    if not float(options["weight"]) >= 0:
        raise ValueError(f"module.physics.weight={options['weight']}: expected a number >= 0")
    if options["balance"] not in BALANCES:
        raise ValueError(f"module.physics.balance={options['balance']!r}: expected one of "
                         f"{', '.join(BALANCES)}")
    if int(options["points"]) < 1:
        raise ValueError(f"module.physics.points={options['points']}: expected an integer >= 1")
    for key in ("alpha", "rho"):
        if not 0.0 <= float(options[key]) <= 1.0:
            raise ValueError(f"module.physics.{key}={options[key]}: expected a number in [0, 1]")
    if not float(options["temperature"]) > 0:
        raise ValueError(f"module.physics.temperature={options['temperature']}: expected > 0")
    return options


def relative_terms(residuals: Mapping[str, Tensor], scale: Tensor) -> dict[str, Tensor]:
    """``{term: L}`` (scalars, float32+): each term's mean square relative to the squared
    RMS of the equation's data (see the module docstring). ``scale`` [B]: that RMS."""
    ref = (scale.float() ** 2).clamp_min(torch.finfo(torch.float32).tiny)
    out = {}
    for name, r in residuals.items():
        r = r.float().reshape(len(r), -1)
        out[name] = (r.square().mean(dim=1) / ref).mean()
    return out


class PhysicsLoss(nn.Module):
    """Combines the data loss and the residual terms of ``residual`` (a
    :mod:`data_gen.physics` residual) into the training loss; see the module docstring."""

    def __init__(self, residual: Any, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.residual = residual
        self.options = physics_options(options)
        unknown = sorted(set(self.options["terms"]) - set(residual.terms))
        if unknown:
            raise ValueError(f"module.physics.terms: {unknown} are not terms of this problem's "
                             f"residual (it has {list(residual.terms)})")
        names = ("data", *residual.terms)
        self.names = names
        self.register_buffer("weights", torch.ones(len(names), dtype=torch.float64))
        # ReLoBRaLo's first and previous losses (0: not seen yet; finite, so checkpoints pass
        # the non-finite guard)
        self.register_buffer("first", torch.zeros(len(names), dtype=torch.float64))
        self.register_buffer("last", torch.zeros(len(names), dtype=torch.float64))

    @property
    def weight(self) -> float:
        return float(self.options["weight"])

    def terms(self, *args: Any) -> dict[str, Tensor]:
        """``{term: L}`` of the residual called with ``args`` (grid: inputs, outputs;
        points: u, sensors, y, s), in float32 even under bf16/fp16 autocast."""
        device = args[0].device.type
        with torch.autocast(device_type=device, enabled=False):
            args = tuple(a.float() if isinstance(a, Tensor) and a.dtype in HALF else a
                         for a in args)
            residuals = self.residual(*args)
            return relative_terms(residuals, self.residual.scale(args[0]))

    def combine(self, data: Tensor | None, terms: Mapping[str, Tensor],
                train: bool = True) -> Tensor:
        """The training loss of ``data`` (None: no labelled sample in the batch) and the
        physics ``terms``; ReLoBRaLo updates its weights when ``train``."""
        lam = self.weight
        losses = [data] + [lam * term_weight(self.residual, self.options["terms"], k) * terms[k]
                           for k in self.residual.terms]
        if self.options["balance"] == "fixed":
            return sum(x for x in losses if x is not None)
        return self._relobralo(losses, train)

    def _relobralo(self, losses: list[Tensor | None], train: bool) -> Tensor:
        present = torch.tensor([x is not None for x in losses])
        values = torch.stack([x.detach().double() if x is not None else
                              torch.zeros((), dtype=torch.float64, device=self.weights.device)
                              for x in losses]).to(self.weights.device)
        if train:
            with torch.no_grad():
                self._update(values, present.to(values.device))
        weights = self.weights.to(torch.float32)
        return sum(weights[i] * x.float() for i, x in enumerate(losses) if x is not None)

    def _update(self, values: Tensor, present: Tensor) -> None:
        o = self.options
        unseen = (self.first == 0) & present
        self.first[unseen] = values[unseen]
        unseen = (self.last == 0) & present
        self.last[unseen] = values[unseen]
        ok = present & (self.first > 0) & (self.last > 0)
        if int(ok.sum()) >= 2:
            k, temp = float(ok.sum()), float(o["temperature"])

            def balanced(ref: Tensor) -> Tensor:
                z = torch.full_like(values, -torch.inf)
                z[ok] = values[ok] / (temp * ref[ok])
                return k * torch.softmax(z, dim=0)

            alpha, rho = float(o["alpha"]), float(o["rho"])
            new = alpha * (rho * self.weights + (1 - rho) * balanced(self.first)) + \
                (1 - alpha) * balanced(self.last)
            self.weights[ok] = new[ok]
        self.last[present] = values[present]


def term_weight(residual: Any, given: Mapping[str, float] | None, term: str) -> float:
    """The weight of ``term``: the user's (``given``), else the residual's
    ``default_weights``, else 1."""
    if given and term in given:
        return float(given[term])
    return float(getattr(residual, "default_weights", {}).get(term, 1.0))


def build_physics(options: Mapping[str, Any] | None, io: Mapping[str, Any],
                  where: str = "module.physics") -> PhysicsLoss | None:
    """The :class:`PhysicsLoss` of the data described by ``io`` (its generator's residual)
    when ``weight`` > 0, else None; a ValueError naming the data when physics is asked for
    a problem without a residual."""
    opts = physics_options(options)
    if opts["weight"] == 0:
        return None
    residual = problem_residual(io)
    if residual is None:
        dataset = io.get("dataset", {})
        raise ValueError(f"{where}.weight={opts['weight']} but data '{dataset.get('name')}' "
                         f"(generator '{dataset.get('pde')}') has no residual "
                         "(data_gen.physics.RESIDUALS); set it to 0")
    return PhysicsLoss(residual, opts)


def problem_residual(io: Mapping[str, Any]) -> Any | None:
    """The residual of the generator that made the data of ``io`` (None if it has none)."""
    from data_gen.physics import residual_for

    return residual_for((io.get("dataset") or {}).get("generator_config"))


def relative_residual(residual: Any, *args: Any) -> Tensor:
    """Per-sample relative residual ``RMS(r_pde,b) / scale_b`` ``[B]`` (the metric; float64
    stays float64)."""
    r = residual(*args)["pde"]
    r = (r if r.dtype == torch.float64 else r.float()).reshape(len(args[0]), -1)
    rms = r.square().mean(dim=1).sqrt()
    return rms / residual.scale(args[0]).to(rms.dtype).clamp_min(1e-30)


Residual = Callable[..., dict[str, Tensor]]


def dataset_residual(path: Any) -> Any | None:
    """The residual of the generator recorded in the HDF5 split ``path`` (None: none)."""
    from data_gen.physics import residual_for
    from opnet.data import h5

    return residual_for(h5.read_attrs(path).get("generator_config"))


def grid_residual_metrics(path: Any, inputs: Any, pred: Any, truth: Any,
                          batch: int = 64) -> dict[str, float]:
    """``residual`` (mean relative residual ``‖r_pde‖/‖f‖`` of the predictions) and
    ``residual_truth`` (the same of the stored outputs: the floor set by float32 storage
    and the grid) on the problem of the split ``path``; {} when it has no residual.
    inputs/pred/truth: ``[N, C, *grid]`` arrays, evaluated in float64."""
    residual = dataset_residual(path)
    if residual is None:
        return {}
    sums = {"residual": 0.0, "residual_truth": 0.0}
    for start in range(0, len(inputs), batch):
        x = torch.as_tensor(inputs[start:start + batch], dtype=torch.float64)
        for key, out in (("residual", pred), ("residual_truth", truth)):
            u = torch.as_tensor(out[start:start + batch], dtype=torch.float64)
            sums[key] += float(relative_residual(residual, x, u).sum())
    return {k: v / max(len(inputs), 1) for k, v in sums.items()}


def point_residual_metrics(path: Any, operator: nn.Module, u: Any, sensors: Any,
                           points: int = 1024, batch: int = 256) -> dict[str, float]:
    """``residual``: the mean relative residual of a DeepONet (``operator(u, y)``, physical)
    at ``points`` collocation points (seed 0) on the problem of the split ``path``; {} when
    it has none."""
    residual = dataset_residual(path)
    if residual is None:
        return {}
    param = next(operator.parameters())
    y = residual.collocation(points, torch.Generator().manual_seed(0)).to(param)
    sensors = torch.as_tensor(sensors).to(param)
    total = 0.0
    with torch.enable_grad():
        for start in range(0, len(u), batch):
            ub = torch.as_tensor(u[start:start + batch]).to(param)
            r = relative_residual(residual, ub, sensors, y,
                                  lambda pts, ub=ub: operator(ub, pts))
            total += float(r.detach().sum())
    return {"residual": total / max(len(u), 1)}
