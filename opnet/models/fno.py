"""Fourier neural operator, 2-D (Li et al., ICLR 2021): the baseline MgNO is compared with.

The architecture of the reference ``FNO2d`` (``fourier_2d.py``, also MgNO's
``baselines/fno2d.py``): the input field and the grid coordinates (x, y) are lifted
pointwise to ``width`` channels; ``layers`` Fourier layers ``u <- act(K u + W u)`` with
``K`` a truncated spectral convolution (``modes`` lowest frequencies per axis) and ``W`` a
1×1 conv (no activation after the last); a pointwise MLP ``width -> 128 -> out``.
Non-periodic data is zero-padded by ``domain_padding`` points on the right/bottom before the
Fourier layers and cropped after them. With modes 12, width 32, 4 layers and one input
channel it has 2,368,001 parameters, as the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FNO2d", "SpectralConv2d"]


class SpectralConv2d(nn.Module):
    """``[B, C_in, H, W] -> [B, C_out, H, W]``: multiply the ``modes`` lowest (positive and
    negative along H, non-negative along W) Fourier coefficients by learned complex weights
    and drop the rest. Weights are stored as real tensors ``[..., 2]`` (real, imaginary)."""

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, int]) -> None:
        super().__init__()
        self.modes = modes
        scale = 1.0 / (in_channels * out_channels)
        shape = (2, in_channels, out_channels, modes[0], modes[1], 2)  # [low/high H half, ...]
        self.weight = nn.Parameter(scale * torch.rand(shape))

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, C_in, H, W]`` -> ``[B, C_out, H, W]``: multiply the lowest ``modes`` Fourier
        coefficients (both signs of the first axis) by learned complex weights."""
        h, w = x.shape[-2:]
        m1, m2 = self.modes
        if 2 * m1 > h or m2 > w // 2 + 1:
            raise ValueError(f"grid {h}x{w} is too small for {m1}x{m2} Fourier modes "
                             f"(need H >= {2 * m1} and W >= {2 * (m2 - 1)})")
        x_ft = torch.fft.rfft2(x.float())  # spectral maths in float32 (bf16 FFTs are unsafe)
        weight = torch.view_as_complex(self.weight.float())
        out = torch.zeros(x.shape[0], weight.shape[2], h, w // 2 + 1, dtype=x_ft.dtype,
                          device=x.device)
        out[:, :, :m1, :m2] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, :m1, :m2], weight[0])
        out[:, :, -m1:, :m2] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, -m1:, :m2], weight[1])
        return torch.fft.irfft2(out, s=(h, w))


class FNO2d(nn.Module):
    """Maps ``x`` [B, in_channels, H, W] to ``y`` [B, out_channels, H, W] on any grid with
    H >= 2·modes and W >= 2·(modes − 1) (after padding)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: int = 12,
                 width: int = 32, layers: int = 4, domain_padding: int = 9,
                 positional: bool = True, projection: int = 128,
                 activation: str = "gelu") -> None:
        super().__init__()
        acts = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}
        if activation not in acts:
            raise ValueError(f"activation={activation!r}: expected one of {sorted(acts)}")
        self.domain_padding, self.positional = domain_padding, positional
        lift_in = in_channels + (2 if positional else 0)
        self.lift = nn.Conv2d(lift_in, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, (modes, modes))
                                      for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.act = acts[activation]()
        self.project = nn.Sequential(nn.Conv2d(width, projection, 1), acts[activation](),
                                     nn.Conv2d(projection, out_channels, 1))

    @staticmethod
    def grid(x: Tensor) -> Tensor:
        """Coordinates ``[B, 2, H, W]`` on [0, 1]² (nodes, boundary included)."""
        b, _, h, w = x.shape
        gx = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype)
        gy = torch.linspace(0, 1, w, device=x.device, dtype=x.dtype)
        return torch.stack(torch.meshgrid(gx, gy, indexing="ij")).expand(b, 2, h, w)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, in_channels, H, W]`` -> ``y [B, out_channels, H, W]`` (with ``positional``,
        the coordinates are appended as two extra input channels)."""
        h, w = x.shape[-2:]
        if self.positional:
            x = torch.cat([x, self.grid(x)], dim=1)
        u = self.lift(x)
        if self.domain_padding:
            u = F.pad(u, (0, self.domain_padding, 0, self.domain_padding))
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise,
                                                      strict=True)):
            u = spectral(u).to(u.dtype) + pointwise(u)
            if i < last:
                u = self.act(u)
        u = u[..., :h, :w]
        return self.project(u)
