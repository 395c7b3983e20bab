"""DeepONet and POD-DeepONet (Lu, Jin, Pang, Zhang & Karniadakis, Nature Machine Intelligence
3, 218-229, 2021, arXiv 1910.03193; POD-DeepONet and the CMAME set-ups: Lu, Meng, Cai, Mao,
Goswami, Zhang & Karniadakis, CMAME 393, 114778, 2022, arXiv 2111.05512).

``G(u)(y) ~ sum_k b_k(u) t_k(y) + b_0``: a *branch* net maps the input function ``u`` (sampled
at m fixed sensors, or a grid for a CNN branch) to p coefficients ``b_k``; a *trunk* net maps a
query point ``y`` (dimension d) to p basis values ``t_k``; ``b_0`` is a trainable scalar per
output, initialised to 0. As in DeepXDE (``nn/pytorch/deeponet.py``, ``deeponet_strategy.py``)
and the original ``OpNN``: the last branch layer is linear, every trunk layer is activated
*including the last* (``trunk_last_activation=False`` gives the MIONet / Darcy-notch form), and
``bias=False`` removes ``b_0`` *and* the last branch bias (tf.compat.v1 ``use_bias``).

Shapes (:meth:`DeepONet.forward`):

* ``u`` [B, m] sensor values; a CNN branch takes [B, C, H, W] or the flattened [B, C*H*W];
* ``y`` [N, d] *aligned* (Cartesian product: every function at the same N points, merge
  ``einsum("bi,ni->bn")``) or [B, N, d] *unaligned* (each function its own points,
  ``einsum("bi,bni->bn")``; the DeepXDE triples are N = 1);
* output [B, N, num_outputs].

Multi-output strategies (``num_outputs`` = n > 1; DeepXDE's table): ``"independent"`` (n
branch/trunk pairs, computed as one batched op over grouped weights [n, in, out] and a grouped
convolution for a CNN branch), ``"split_both"`` (one branch and one trunk of width p, output k
uses the k-th contiguous slice of p/n), ``"split_branch"`` (branch width n x trunk width, shared
trunk), ``"split_trunk"`` (trunk width n x branch width, shared branch). ``strategy=None`` needs
n = 1 (DeepXDE warns and falls back to "independent"; here it is an error).

``stacked=True`` is the paper's stacked DeepONet: p branch MLPs m -> ... -> 1 (the hidden
widths of ``branch``), held as grouped weights [p, in, out] and evaluated in one einsum.

Trunk ``features`` (applied to the trunk input only, as DeepXDE's feature transform):
``{"name": "fourier", "periods": [P, ...], "modes": K, "coordinates": [c, ...], "keep": False}``
replaces each listed coordinate (default: the first ``len(periods)``) by
``[cos(2 pi k y_c / P), sin(2 pi k y_c / P) for k = 1..K]``, so the network is exactly
P-periodic in y_c; other coordinates pass through. ``trunk[0]`` is always the raw coordinate
dimension d (what ``y`` carries); the first trunk layer is sized for the expanded features.
The CMAME Burgers trunk is ``trunk=[1, 128, 128, 128]`` with fourier ``periods=[1], modes=2``
(4 features: cos 2 pi x, sin 2 pi x, cos 4 pi x, sin 4 pi x).

``output_transform`` (applied last, to the full output incl. ``b_0``; y is the raw query):
``{"name": "scale", "scale": s, "shift": c}`` -> ``s * G + c`` (floats or one per output);
``{"name": "zero_at", "coordinate": c, "value": v}`` -> ``G * (y_c - v)``, a hard constraint
``G(u)(y) = 0`` wherever ``y_c = v`` (e.g. the antiderivative's ``s(0) = 0``, or a zero initial
condition with c = the time coordinate); ``{"name": "dirichlet_box", "coordinate": c | [c, ...],
"low": a | [...], "high": b | [...]}`` -> ``G * prod_c (y_c - a_c)(b_c - y_c)``: zero on the
faces of the box (``x (1 - x) G`` on [0, 1]).

Parameter counts (reference, computed from the layer sizes): the paper default
``branch=[100, 40, 40], trunk=[1, 40, 40]`` has 7,401; CMAME Burgers (branch [128] x 5, tanh,
Fourier trunk [1 -> 4, 128, 128, 128]) 99,713; CMAME Darcy CNN-DeepONet (:data:`DARCY_CNN_BRANCH`,
trunk [2, 128, 128, 128, 128]) 682,753.

:class:`PODDeepONet` replaces the trunk by a fixed POD basis of the training outputs
(``fit_basis``), as the CMAME scripts: basis = eigenvectors of the covariance of the
mean-subtracted outputs x sqrt(N_points), output = branch . basis^T / n_modes + mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from opnet.models.layers.cnn import CNNBranch
from opnet.models.layers.features import FourierFeatures
from opnet.models.layers.mlp import (
    INITIALIZERS,  # noqa: F401  (moved to opnet.models.layers; still importable from here)
    GroupedLinear,
    GroupedMLP,
    Sin,  # noqa: F401  (moved to opnet.models.layers; still importable from here)
    check_initializer,
)
from opnet.models.layers.mlp import activation as activation_module

__all__ = ["DARCY_CNN_BRANCH", "CNNBranch", "DeepONet", "FourierFeatures", "GroupedLinear",
           "GroupedMLP", "PODDeepONet"]

STRATEGIES = (None, "independent", "split_both", "split_branch", "split_trunk")
FEATURES = ("identity", "fourier")
OUTPUT_TRANSFORMS = ("identity", "scale", "zero_at", "dirichlet_box")

#: The CMAME Darcy (piecewise-constant, 29x29) CNN branch: Conv(64, 5x5, s2) -> Conv(128, 5x5,
#: s2), both ReLU and unpadded (29 -> 13 -> 5, flatten 3,200), Dense 128 ReLU -> Dense 128.
#: With ``trunk=[2, 128, 128, 128, 128]`` and ReLU: 682,753 parameters, as the reference.
DARCY_CNN_BRANCH: dict[str, Any] = {
    "name": "cnn", "in_channels": 1, "channels": [64, 128], "kernel_size": 5, "stride": 2,
    "padding": 0, "mlp": [128, 128], "input_size": [29, 29]}


def _features(spec: Mapping | None, d: int) -> nn.Module | None:
    if spec is None:
        return None
    spec = dict(spec)
    name = spec.pop("name", None)
    if name == "identity":
        if spec:
            raise ValueError(f"features: 'identity' takes no options, got {sorted(spec)}")
        return None
    if name == "fourier":
        try:
            return FourierFeatures(d, **spec)
        except TypeError as err:
            raise ValueError(f"features: fourier options are periods, modes, coordinates, "
                             f"keep; got {sorted(spec)}") from err
    raise ValueError(f"features: name={name!r} is not supported; allowed values: {FEATURES}")


def _check_sizes(sizes: Any, key: str) -> list[int]:
    if (not isinstance(sizes, Sequence) or isinstance(sizes, str) or len(sizes) < 2
            or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes)):
        raise ValueError(f"{key}={sizes!r}: need a list of at least two positive layer sizes "
                         f"[in, ..., out]")
    return list(sizes)


def _build_branch(branch: Sequence[int] | Mapping, groups: int, stacked: bool, activation: str,
                  last_bias: bool, initializer: str) -> tuple[nn.Module, int, tuple[int, ...]]:
    """-> (net giving [B, groups * (p if stacked else 1), p or 1], p, input shape without B)."""
    if isinstance(branch, Mapping):
        spec = dict(branch)
        name = spec.pop("name", None)
        if name != "cnn":
            raise ValueError(f"branch: dict name={name!r} is not supported; use 'cnn' or a list "
                             f"of MLP sizes")
        if stacked:
            raise ValueError("stacked=True needs an MLP branch (a list of sizes), not a CNN")
        spec.setdefault("activation", activation)
        required = {"in_channels", "channels", "kernel_size", "stride", "mlp", "input_size"}
        allowed = required | {"padding", "activation"}
        if not required <= spec.keys() or not spec.keys() <= allowed:
            raise ValueError(f"branch: a CNN needs keys {sorted(required)} (optional: padding, "
                             f"activation); got {sorted(spec)}")
        net = CNNBranch(groups=groups, last_bias=last_bias, initializer=initializer, **spec)
        return net, net.out_features, (net.in_channels, *net.input_size)
    sizes = _check_sizes(branch, "branch")
    if stacked:
        net = GroupedMLP(groups * sizes[-1], [*sizes[:-1], 1], activation, activate_last=False,
                         last_bias=last_bias, initializer=initializer)
    else:
        net = GroupedMLP(groups, sizes, activation, activate_last=False, last_bias=last_bias,
                         initializer=initializer)
    return net, sizes[-1], (sizes[0],)


def _check_u(owner: str, u: Tensor, shape: tuple[int, ...]) -> Tensor:
    """[B, m] for an MLP branch; [B, C, H, W] or flattened [B, C*H*W] for a CNN branch."""
    if len(shape) == 1:
        if u.dim() != 2 or u.shape[1] != shape[0]:
            raise ValueError(f"{owner}: u has shape {tuple(u.shape)}, the branch expects "
                             f"[B, {shape[0]}] ({shape[0]} sensor values per function)")
        return u
    flat = math.prod(shape)
    if u.dim() == 2 and u.shape[1] == flat:
        return u.reshape(u.shape[0], *shape)
    if u.dim() != 4 or tuple(u.shape[1:]) != shape:
        raise ValueError(f"{owner}: u has shape {tuple(u.shape)}, the CNN branch expects "
                         f"[B, {', '.join(map(str, shape))}] (input_size={list(shape[1:])}, "
                         f"in_channels={shape[0]}) or flattened [B, {flat}]")
    return u


def _check_y(owner: str, y: Tensor, batch: int, d: int | None) -> bool:
    """-> aligned? ``y`` [N, d] (aligned) or [B, N, d] (unaligned, B = u's batch)."""
    expected = "[N, d] (aligned: the same N points for every function) or [B, N, d] (unaligned)"
    if d is not None:
        expected = expected.replace("d]", f"{d}]")
    if y.dim() not in (2, 3) or (d is not None and y.shape[-1] != d):
        raise ValueError(f"{owner}: y has shape {tuple(y.shape)}, expected {expected}")
    if y.dim() == 3 and y.shape[0] != batch:
        raise ValueError(f"{owner}: unaligned y has shape {tuple(y.shape)} but u holds {batch} "
                         f"functions: y must be [{batch}, N, {y.shape[-1]}] (or [N, "
                         f"{y.shape[-1]}] when all functions share the points)")
    return y.dim() == 2


class DeepONet(nn.Module):
    """Deep operator network: ``G(u)(y) = sum_k b_k(u) t_k(y) + b_0`` (see the module doc).

    ``branch``: MLP sizes [m, ..., p] (last layer linear) or a CNN dict (keys ``name="cnn"``,
    ``in_channels``, ``channels``, ``kernel_size``, ``stride``, ``mlp`` (dense widths after the
    flatten, which is computed), ``input_size`` [H, W], optional ``padding`` (default 0) and
    ``activation`` (default: ``activation``)); :data:`DARCY_CNN_BRANCH` is the CMAME one.
    ``trunk``: MLP sizes [d, ..., p] with d the raw coordinate dimension (before ``features``).
    """

    def __init__(self, branch: list[int] | dict, trunk: list[int], num_outputs: int = 1,
                 strategy: str | None = None, stacked: bool = False, activation: str = "relu",
                 trunk_last_activation: bool = True, bias: bool = True,
                 initializer: str = "glorot_normal", features: dict | None = None,
                 output_transform: dict | None = None) -> None:
        super().__init__()
        trunk = _check_sizes(trunk, "trunk")
        activation_module(activation)  # the name is refused here, before any layer is built
        check_initializer(initializer)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not supported; allowed values: "
                             f"{STRATEGIES}")
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise ValueError(f"num_outputs={num_outputs!r}: need a positive int")
        n = num_outputs
        if strategy is None and n > 1:
            raise ValueError(f"num_outputs={n} needs a multi-output strategy: one of "
                             f"{STRATEGIES[1:]}")
        groups = n if strategy == "independent" else 1
        self.num_outputs, self.strategy, self.stacked = n, strategy, stacked
        self.coord_dim = trunk[0]
        self.features = _features(features, trunk[0])
        d_in = trunk[0] if self.features is None else self.features.out_features
        self.branch, p_b, self.input_shape = _build_branch(
            branch, groups, stacked, activation, bias, initializer)
        p_t = trunk[-1]
        self.trunk = GroupedMLP(groups, [d_in, *trunk[1:]], activation,
                                activate_last=trunk_last_activation, initializer=initializer)
        # [B, Gb, k] . [N, Gt, k] -> [B, N, n]; G = n splits the width into n contiguous slices.
        if strategy in (None, "independent"):
            ok, need = p_b == p_t, "the branch and trunk output widths must be equal"
            self._gb = self._gt = groups
        elif strategy == "split_both":
            ok = p_b == p_t and p_b % n == 0
            need = (f"the branch and trunk output widths must be equal and divisible by "
                    f"num_outputs={n}")
            self._gb = self._gt = n
        elif strategy == "split_branch":
            ok, need = p_b == n * p_t, f"branch width = num_outputs={n} x trunk width"
            self._gb, self._gt = n, 1
        else:
            ok, need = p_t == n * p_b, f"trunk width = num_outputs={n} x branch width"
            self._gb, self._gt = 1, n
        if not ok:
            raise ValueError(f"strategy={strategy!r}: branch output width {p_b} and trunk output "
                             f"width {p_t} do not fit ({need})")
        self.b0 = nn.Parameter(torch.zeros(n)) if bias else None
        self._transform = _output_transform(output_transform, trunk[0], n)

    @property
    def num_sensors(self) -> int:
        """Values per input function (m; C*H*W for a CNN branch)."""
        return math.prod(self.input_shape)

    def branch_forward(self, u: Tensor) -> Tensor:
        """u -> coefficients [B, Gb, k] (k = per-output width)."""
        b = self.branch(_check_u("DeepONet", u, self.input_shape))
        return b.reshape(b.shape[0], self._gb, -1)

    def trunk_forward(self, y: Tensor) -> Tensor:
        """y [..., d] -> basis values [..., Gt, k]."""
        t = self.trunk(y if self.features is None else self.features(y))
        return t.reshape(*t.shape[:-2], self._gt, -1)

    def forward(self, u: Tensor, y: Tensor) -> Tensor:
        """u [B, m] (or [B, C, H, W]), y [N, d] or [B, N, d] -> [B, N, num_outputs]."""
        u = _check_u("DeepONet", u, self.input_shape)
        aligned = _check_y("DeepONet", y, u.shape[0], self.coord_dim)
        out = _merge(self.branch_forward(u), self.trunk_forward(y), aligned)
        if self.b0 is not None:
            out = out + self.b0.to(out.dtype)
        return _apply_transform(self._transform, out, y)


def _merge(b: Tensor, t: Tensor, aligned: bool) -> Tensor:
    """b [B, Gb, k], t [N, Gt, k] or [B, N, Gt, k] (Gb, Gt in {1, G}) -> [B, N, G]."""
    pre = "n" if aligned else "bn"
    if aligned and b.shape[1] == 1 and t.shape[-2] == 1:  # the common case: one matmul
        return torch.mm(b.view(b.shape[0], -1), t.view(t.shape[0], -1).t()).unsqueeze(-1)
    if t.shape[-2] == 1:
        return torch.einsum(f"bgi,{pre}i->bng", b, t.squeeze(-2))
    if b.shape[1] == 1:
        return torch.einsum(f"bi,{pre}gi->bng", b.squeeze(1), t)
    return torch.einsum(f"bgi,{pre}gi->bng", b, t)


def _floats(value: Any, n: int, key: str) -> list[float]:
    values = [value] * n if isinstance(value, (int, float)) else list(value)
    if len(values) != n:
        raise ValueError(f"output_transform: {key}={value!r} needs a number or {n} of them")
    return [float(v) for v in values]


def _output_transform(spec: Mapping | None, d: int, n: int) -> dict | None:
    """Validate an output transform -> a normalised plain dict (None = identity)."""
    if spec is None:
        return None
    spec = dict(spec)
    name = spec.get("name")
    keys = {"identity": set(), "scale": {"scale", "shift"}, "zero_at": {"coordinate", "value"},
            "dirichlet_box": {"coordinate", "low", "high"}}
    if name not in keys:
        raise ValueError(f"output_transform: name={name!r} is not supported; allowed values: "
                         f"{OUTPUT_TRANSFORMS}")
    if not set(spec) - {"name"} <= keys[name]:
        raise ValueError(f"output_transform {name!r} takes {sorted(keys[name])}; got "
                         f"{sorted(set(spec) - {'name'})}")
    if name == "identity":
        return None
    if name == "scale":
        return {"name": name, "scale": _floats(spec.get("scale", 1.0), n, "scale"),
                "shift": _floats(spec.get("shift", 0.0), n, "shift")}
    coords = spec.get("coordinate", 0)
    coords = [coords] if isinstance(coords, int) else [int(c) for c in coords]
    if not coords or any(not 0 <= c < d for c in coords):
        raise ValueError(f"output_transform {name!r}: coordinate={spec.get('coordinate')!r} "
                         f"must be in [0, {d}) (the trunk's coordinate dimension)")
    if name == "zero_at":
        if len(coords) != 1:
            raise ValueError("output_transform 'zero_at': one coordinate")
        return {"name": name, "coordinate": coords, "value": float(spec.get("value", 0.0))}
    low = _floats(spec.get("low", 0.0), len(coords), "low")
    high = _floats(spec.get("high", 1.0), len(coords), "high")
    if any(lo >= hi for lo, hi in zip(low, high, strict=True)):
        raise ValueError(f"output_transform 'dirichlet_box': need low < high, got {low}, {high}")
    return {"name": name, "coordinate": coords, "low": low, "high": high}


def _apply_transform(spec: dict | None, out: Tensor, y: Tensor) -> Tensor:
    """out [B, N, n]; y [N, d] or [B, N, d] (its [..., N, 1] factors broadcast)."""
    if spec is None:
        return out
    if spec["name"] == "scale":
        scale = torch.tensor(spec["scale"], dtype=out.dtype, device=out.device)
        shift = torch.tensor(spec["shift"], dtype=out.dtype, device=out.device)
        return out * scale + shift
    if spec["name"] == "zero_at":
        factor = y[..., spec["coordinate"][0]] - spec["value"]
    else:
        yc = y[..., spec["coordinate"]]
        low = torch.tensor(spec["low"], dtype=y.dtype, device=y.device)
        high = torch.tensor(spec["high"], dtype=y.dtype, device=y.device)
        factor = ((yc - low) * (high - yc)).prod(-1)
    return out * factor.unsqueeze(-1).to(out.dtype)


class PODDeepONet(nn.Module):
    """POD-DeepONet (CMAME 2022): the trunk is a fixed POD basis of the training outputs.

    ``G(u) = (b(u) . basis^T [+ b_t(u) . t(y) + b_0]) / n_modes + mean`` on the ``n_points``
    output points the basis was fitted on. ``branch``: MLP sizes [m, ..., n_modes (+ p)] or a
    CNN dict as :class:`DeepONet`'s; optional extra ``trunk`` [d, ..., p] (activated as in
    DeepONet; the basis becomes concat(POD basis, trunk(y)) and ``b_0`` is added when
    ``bias``). ``bias=False`` also drops the last branch bias.

    Buffers (in the state dict, pre-allocated from ``n_points``/``n_modes`` so checkpoints
    load): ``pod_basis`` [n_points, n_modes], ``pod_mean`` [n_points], ``pod_fitted``.
    ``mode_scaling=True`` is the authors' scaling (basis = orthonormal eigenvectors x
    sqrt(n_points), output divided by n_modes); False: orthonormal basis, no division.
    """

    def __init__(self, branch: list[int] | dict, n_points: int, n_modes: int,
                 trunk: list[int] | None = None, activation: str = "relu",
                 trunk_last_activation: bool = True, bias: bool = True,
                 initializer: str = "glorot_normal", features: dict | None = None,
                 mode_scaling: bool = True) -> None:
        super().__init__()
        if n_points < 1 or n_modes < 1 or n_modes > n_points:
            raise ValueError(f"n_points={n_points}, n_modes={n_modes}: need "
                             f"1 <= n_modes <= n_points")
        activation_module(activation)  # the name is refused here, before any layer is built
        check_initializer(initializer)
        self.n_points, self.n_modes, self.mode_scaling = n_points, n_modes, mode_scaling
        self.branch, p_b, self.input_shape = _build_branch(
            branch, 1, False, activation, bias, initializer)
        self.trunk: GroupedMLP | None = None
        self.features: nn.Module | None = None
        self.coord_dim: int | None = None
        p_t = 0
        if trunk is not None:
            trunk = _check_sizes(trunk, "trunk")
            self.coord_dim = trunk[0]
            self.features = _features(features, trunk[0])
            d_in = trunk[0] if self.features is None else self.features.out_features
            self.trunk = GroupedMLP(1, [d_in, *trunk[1:]], activation,
                                    activate_last=trunk_last_activation, initializer=initializer)
            p_t = trunk[-1]
        elif features is not None:
            raise ValueError("features act on the trunk input: PODDeepONet needs a trunk")
        if p_b != n_modes + p_t:
            raise ValueError(f"branch output width {p_b} must be n_modes={n_modes}"
                             + (f" + trunk width {p_t}" if p_t else ""))
        self.b0 = nn.Parameter(torch.zeros(1)) if bias and trunk is not None else None
        self.register_buffer("pod_basis", torch.zeros(n_points, n_modes))
        self.register_buffer("pod_mean", torch.zeros(n_points))
        self.register_buffer("pod_fitted", torch.tensor(False))

    @property
    def num_sensors(self) -> int:
        """Sensor values per function the branch takes (m)."""
        return math.prod(self.input_shape)

    @torch.no_grad()
    def fit_basis(self, outputs: Tensor) -> float:
        """Fit ``pod_mean`` and ``pod_basis`` from training outputs [N_funcs, n_points] (or
        [N_funcs, n_points, 1]); returns the fraction of the variance the n_modes capture.

        Mean-subtracted outputs, SVD in float64 (right singular vectors = eigenvectors of the
        covariance, decreasing variance), each mode's largest entry made positive.
        """
        y = torch.as_tensor(outputs)
        if y.dim() == 3 and y.shape[-1] == 1:
            y = y[..., 0]
        if y.dim() != 2 or y.shape[1] != self.n_points:
            raise ValueError(f"PODDeepONet.fit_basis: outputs have shape {tuple(y.shape)}, "
                             f"expected [N_funcs, {self.n_points}] (n_points={self.n_points})")
        if self.n_modes > y.shape[0]:
            raise ValueError(f"PODDeepONet.fit_basis: {y.shape[0]} functions cannot give "
                             f"n_modes={self.n_modes} modes")
        y = y.detach().to("cpu", torch.float64)
        mean = y.mean(0)
        _, s, vh = torch.linalg.svd(y - mean, full_matrices=False)
        basis = vh[: self.n_modes].T
        rows = basis.abs().argmax(0)
        basis = basis * torch.sign(basis[rows, torch.arange(self.n_modes)])
        if self.mode_scaling:
            basis = basis * math.sqrt(self.n_points)
        self.pod_basis.copy_(basis)
        self.pod_mean.copy_(mean)
        self.pod_fitted.fill_(True)
        var = s.square()
        total = float(var.sum())
        return float(var[: self.n_modes].sum()) / total if total > 0 else 1.0

    def forward(self, u: Tensor, y: Tensor | None = None) -> Tensor:
        """u [B, m] (or [B, C, H, W]) -> [B, n_points, 1]. ``y`` ([n_points, d] or
        [B, n_points, d]) is needed only with a trunk; otherwise it only checks N."""
        if not bool(self.pod_fitted):
            raise RuntimeError("PODDeepONet: the POD basis is not fitted; call "
                               "fit_basis(train outputs) or load a checkpoint")
        u = _check_u("PODDeepONet", u, self.input_shape)
        if y is not None:
            _check_y("PODDeepONet", y, u.shape[0], self.coord_dim)
            if y.shape[-2] != self.n_points:
                raise ValueError(f"PODDeepONet: y has {y.shape[-2]} points (shape "
                                 f"{tuple(y.shape)}), the POD basis fixes n_points="
                                 f"{self.n_points}")
        elif self.trunk is not None:
            raise ValueError("PODDeepONet with a trunk needs the query points y "
                             f"[{self.n_points}, {self.coord_dim}]")
        b = self.branch(u)[:, 0]
        out = b[:, : self.n_modes] @ self.pod_basis.T.to(b.dtype)  # [B, n_points]
        if self.trunk is not None:
            assert y is not None
            t = self.trunk(y if self.features is None else self.features(y)).squeeze(-2)
            coeff = b[:, self.n_modes:]
            out = out + (torch.einsum("bi,ni->bn", coeff, t) if y.dim() == 2
                         else torch.einsum("bi,bni->bn", coeff, t))
            if self.b0 is not None:
                out = out + self.b0.to(out.dtype)
        out = out.to(self.pod_mean.dtype)  # the mean in the buffer's precision (autocast)
        if self.mode_scaling:
            out = out / self.n_modes
        return (out + self.pod_mean).unsqueeze(-1)
