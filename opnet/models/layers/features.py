"""Coordinate feature maps applied before a network (DeepXDE's feature transforms)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["FourierFeatures"]


class FourierFeatures(nn.Module):
    """Periodic features of chosen coordinates: ``[..., d] -> [..., out_features]``.

    Output order: the other coordinates (unchanged), the raw periodic ones if ``keep``, then
    per periodic coordinate and k = 1..modes: ``cos(2 pi k y_c / P_c), sin(2 pi k y_c / P_c)``.
    """

    def __init__(self, in_features: int, periods: Sequence[float], modes: int,
                 coordinates: Sequence[int] | None = None, keep: bool = False) -> None:
        super().__init__()
        periods = [float(p) for p in periods]
        coords = list(range(len(periods))) if coordinates is None else [int(c) for c in coordinates]
        if (not periods or len(coords) != len(periods) or len(set(coords)) != len(coords)
                or any(not 0 <= c < in_features for c in coords) or any(p <= 0 for p in periods)
                or modes < 1):
            raise ValueError(f"features: fourier needs positive 'periods' (one per coordinate), "
                             f"distinct 'coordinates' in [0, {in_features}) and modes >= 1; got "
                             f"periods={periods}, coordinates={coords}, modes={modes}")
        self.in_features, self.modes, self.keep = in_features, modes, keep
        self.coordinates = coords
        self.others = [c for c in range(in_features) if c not in coords]
        k = torch.arange(1, modes + 1, dtype=torch.float64)
        harmonics = k[None, :] / torch.tensor(periods, dtype=torch.float64)[:, None]  # k / P
        self.register_buffer("harmonics", harmonics.to(torch.get_default_dtype()),
                             persistent=False)  # [c, modes]; exact for periods like 1, 0.5
        self.out_features = (len(self.others) + (len(coords) if keep else 0)
                             + 2 * modes * len(coords))

    def forward(self, y: Tensor) -> Tensor:
        """Coordinates ``y [..., d]`` -> ``[..., out_features]``: the untouched coordinates,
        then cos/sin of the periodic ones for each mode."""
        periodic = y[..., self.coordinates]
        # phases in float32 at least (float64 for float64 y), also in a pure-bf16 model
        dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
        phase = (2 * math.pi) * (periodic[..., :, None].to(dtype) * self.harmonics.to(dtype))
        waves = torch.stack((torch.cos(phase), torch.sin(phase)), dim=-1).flatten(-3)
        waves = waves.to(y.dtype)
        parts = [y[..., self.others]] + ([periodic] if self.keep else []) + [waves]
        return torch.cat(parts, dim=-1)
