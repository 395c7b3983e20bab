"""PROSE encoders: the data embedder and encoder, and the symbol encoder.

* :class:`DataEmbedder`: one token per time sample, ``MLP([t, u_1..u_D])`` =
  Linear(1 + D, d) -> GELU -> Linear(d, d); time is a feature, not a position.
* :class:`DataEncoder`: a self-attention :class:`~opnet.models.prose.layers.Stack` without
  positional encoding (the time is in the token).
* :class:`SymbolEncoder`: token embedding (init N(0, d^-0.5), the padding row zero) plus fixed
  sinusoidal positions, then a self-attention stack; its input is the (possibly corrupted)
  prefix skeleton *without* ``<BOS>``/``<EOS>``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opnet.models.prose.layers import Stack, embed_tokens, init_embedding, sinusoidal_table

__all__ = ["DataEmbedder", "DataEncoder", "SymbolEncoder"]


class DataEmbedder(nn.Module):
    """``[t, u_1..u_D]`` -> d: t [B, N], u [B, N, D] -> [B, N, d]."""

    def __init__(self, max_dim: int, dim: int) -> None:
        super().__init__()
        self.max_dim = int(max_dim)
        self.lin1 = nn.Linear(1 + self.max_dim, dim)
        self.lin2 = nn.Linear(dim, dim)

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        """u may have fewer than ``max_dim`` components: the missing ones are zero."""
        if u.size(-1) > self.max_dim:
            raise ValueError(f"u has {u.size(-1)} components, more than max_dim={self.max_dim}")
        if u.size(-1) < self.max_dim:
            u = F.pad(u, (0, self.max_dim - u.size(-1)))
        x = torch.cat([t[..., None].to(u.dtype), u], dim=-1)
        return self.lin2(F.gelu(self.lin1(x)))


class DataEncoder(nn.Module):
    """Self-attention over the data tokens, no positions: x [B, N, d] -> [B, N, d]."""

    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float = 0.0,
                 attention_dropout: float = 0.0, norm_first: bool = False,
                 unpad: bool = True) -> None:
        super().__init__()
        self.stack = Stack(layers, dim, heads, ffn, dropout, attention_dropout, norm_first,
                           unpad=unpad)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """mask: [B, N] bool, True = a real sample (None: all real)."""
        return self.stack(x, mask)


class SymbolEncoder(nn.Module):
    """Token embedding + sinusoidal positions -> self-attention: [B, L] ids -> [B, L, d]."""

    def __init__(self, vocab_size: int, pad_id: int, layers: int, dim: int, heads: int,
                 ffn: int, dropout: float = 0.0, attention_dropout: float = 0.0,
                 norm_first: bool = False, max_positions: int = 512,
                 unpad: bool = True) -> None:
        super().__init__()
        self.embedding = init_embedding(nn.Embedding(vocab_size, dim, padding_idx=pad_id))
        self.register_buffer("positions", sinusoidal_table(max_positions, dim),
                             persistent=False)
        self.stack = Stack(layers, dim, heads, ffn, dropout, attention_dropout, norm_first,
                           unpad=unpad)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """tokens: [B, L] ids; mask: [B, L] bool, True = a real token (None: all real)."""
        return self.stack(embed_tokens(self.embedding, self.positions, tokens, 0,
                                       "symbol-encoder"), mask)
