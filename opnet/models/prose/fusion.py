"""PROSE fusion: joint self-attention over the concatenated [data ; symbol] features.

No positional encoding; a learned modality embedding ``Embedding(2, d)`` (0 = data,
1 = symbol, init N(0, d^-0.5)) is added to each half before the embedding LayerNorm. The key
mask is the data mask followed by the *symbol* mask (the reference's first versions built the
symbol half from the data lengths; fixed there in 0771b9f, correct here by construction).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from opnet.models.prose.layers import Stack, init_embedding

__all__ = ["Fusion", "concat_masks"]


def concat_masks(data_mask: Tensor | None, symbol_mask: Tensor | None, n_data: int,
                 n_symbol: int, batch: int, device: torch.device) -> Tensor | None:
    """[B, N] and [B, L] bool masks (None = all real) -> [B, N + L], or None if both are None."""
    if data_mask is None and symbol_mask is None:
        return None
    if data_mask is None:
        data_mask = torch.ones(batch, n_data, dtype=torch.bool, device=device)
    if symbol_mask is None:
        symbol_mask = torch.ones(batch, n_symbol, dtype=torch.bool, device=device)
    return torch.cat([data_mask, symbol_mask], dim=1)


class Fusion(nn.Module):
    """data [B, N, d], symbols [B, L, d] -> fused [B, N + L, d] (data first)."""

    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float = 0.0,
                 attention_dropout: float = 0.0, norm_first: bool = False,
                 unpad: bool = True) -> None:
        super().__init__()
        self.modality = init_embedding(nn.Embedding(2, dim))
        self.stack = Stack(layers, dim, heads, ffn, dropout, attention_dropout, norm_first,
                           unpad=unpad)

    def forward(self, data: Tensor, symbols: Tensor, data_mask: Tensor | None = None,
                symbol_mask: Tensor | None = None) -> Tensor:
        """data_mask [B, N], symbol_mask [B, L]: bool, True = real (None: all real)."""
        x = torch.cat([data + self.modality.weight[0], symbols + self.modality.weight[1]], dim=1)
        mask = concat_masks(data_mask, symbol_mask, data.size(1), symbols.size(1), x.size(0),
                            x.device)
        return self.stack(x, mask)
