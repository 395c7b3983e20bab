"""PDE residuals owned by the problems: the equations the generators solve, as differentiable
torch functions (physics-informed training, the residual metric of ``evaluate``, and the
tests that hold each one to its generator: ≈ 0 on the stored solutions).

One module per problem family, registered by generator name in :data:`RESIDUALS`;
:func:`residual_for` builds the residual of a dataset from its generator configuration (the
``generator_config`` a dataset records). Two kinds, by the data layout:

* :class:`GridResidual` -- fields on the generator's grid: ``inputs [B, C_in, *grid]`` and
  ``outputs [B, C_out, *grid]`` (physical units, the dataset's fields in order) ->
  ``{term: [B, ...]}`` residual values per sample (e.g. ``pde`` at the interior nodes,
  ``bc`` on the boundary), computed in float32 at least (float64 in, float64 out); grid
  spacing from the array's shape, so a strided grid works (residual then O(h²), not 0).
* :class:`PointResidual` -- DeepONet problems: input functions at the sensors and a
  differentiable map ``s(y) -> [B, P, C_out]`` at collocation points ``y [P, d]`` (the same
  points for every function) -> ``{term: [B, P']}``; derivatives in y by forward-mode AD
  (:func:`derivative`), so one pass serves the whole batch.

Each residual also gives :meth:`scale` ``[B]``: the RMS of the equation's data (e.g. of the
source f, of an ODE's forcing u) so that ``RMS(r_pde) / scale`` is a relative residual
comparable across problems (and independent of the number of points), its ``terms``
(names, in order) and, optionally, ``default_weights`` (term -> weight; 1 where absent) that
training and refinement use unless the user gives others. Imports torch: import this
package only where residuals are used (the generators do not).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["RESIDUALS", "GridResidual", "PointResidual", "derivative", "residual_for"]

#: generator name -> residual class path (built with the generator's config as keywords)
RESIDUALS: dict[str, str] = {
    "darcy": "data_gen.physics.darcy.DarcyResidual",
    "helmholtz": "data_gen.physics.helmholtz.HelmholtzResidual",
    "antiderivative": "data_gen.physics.deeponet.AntiderivativeResidual",
    "nonlinear_ode": "data_gen.physics.deeponet.NonlinearODEResidual",
    "pendulum": "data_gen.physics.deeponet.PendulumResidual",
    "diffusion_reaction": "data_gen.physics.deeponet.DiffusionReactionResidual",
    "advection": "data_gen.physics.deeponet.AdvectionResidual",
    "burgers": "data_gen.physics.burgers.BurgersResidual",
}


class GridResidual(Protocol):
    """Residual of a grid problem (see the module docstring)."""

    terms: tuple[str, ...]

    def __call__(self, inputs: Tensor, outputs: Tensor) -> dict[str, Tensor]: ...

    def scale(self, inputs: Tensor) -> Tensor: ...


class PointResidual(Protocol):
    """Residual of a DeepONet problem (see the module docstring). ``collocation(n, gen)``:
    ``n`` points ``[n, d]`` in the problem's domain where the ``pde`` term is evaluated
    (seeded by the torch generator ``gen``)."""

    terms: tuple[str, ...]

    def collocation(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def __call__(self, u: Tensor, sensors: Tensor, y: Tensor,
                 s: Callable[[Tensor], Tensor]) -> dict[str, Tensor]: ...

    def scale(self, u: Tensor) -> Tensor: ...


def derivative(s: Callable[[Tensor], Tensor], y: Tensor, axis: int,
               order: int = 1) -> tuple[Tensor, Tensor]:
    """``(s(y), ∂^order s/∂y_axis^order)`` for a map ``s`` of shared points ``y [P, d]`` to
    ``[B, P, C]`` in which each output point depends on its own input point only (a DeepONet
    trunk): forward-mode AD along ``axis`` for every point at once; both results keep the
    autograd graph to the parameters (train through them)."""
    from torch.func import jvp

    tangent = torch.zeros_like(y)
    tangent[..., axis] = 1.0
    if order == 1:
        return jvp(s, (y,), (tangent,))
    if order == 2:
        value = s(y)

        def first(points: Tensor) -> Tensor:
            return jvp(s, (points,), (tangent,))[1]

        return value, jvp(first, (y,), (tangent,))[1]
    raise ValueError(f"derivative: order={order}, expected 1 or 2")


def residual_for(generator_config: Mapping[str, Any] | str | None) -> Any | None:
    """The residual of a dataset's generator (its config as a mapping or the YAML text a
    dataset records), or None when the problem has none (or the data were imported)."""
    if generator_config is None or generator_config == "":
        return None
    if isinstance(generator_config, str):
        import yaml

        generator_config = yaml.safe_load(generator_config)
    if not isinstance(generator_config, Mapping):
        return None
    config = dict(generator_config)
    name = config.pop("name", None) or config.pop("_target_", None)
    if name not in RESIDUALS:
        return None
    module_name, _, cls_name = RESIDUALS[name].rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls.from_config(config)
