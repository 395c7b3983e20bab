"""Transformer building blocks shared by the PROSE stacks.

* :class:`Attention`: multi-head attention on ``F.scaled_dot_product_attention`` with the
  q/k/v projections stacked in one ``in_proj`` Linear(d, 3d) (the layout and parameter count
  of ``nn.MultiheadAttention``: 4d^2 + 4d), self- or cross-attention, boolean key masks,
  an optional key/value :class:`KVCache` for incremental decoding.
* :class:`FeedForward`: Linear(d, f) -> GELU -> Linear(f, d) -> dropout.
* :class:`Block`: [self-attention] [cross-attention] FFN, each a residual sub-layer with its
  own LayerNorm (eps 1e-12): post-LN ``x = LN(x + f(x))`` (the reference, XLM style) or
  pre-LN ``x = x + f(LN(x))`` (``norm_first=True``).
* :class:`Stack`: embedding LayerNorm, blocks, padded positions zero; :class:`Packing`
  drops the padded rows from the position-wise work (``unpad=True``).
* :func:`sinusoidal_table`: the fixed positions ``sin/cos(pos / 10000^(2(j//2)/d))``.

Masks are boolean, ``True`` = a real token that may be attended to; a key mask has shape
[B, 1, 1, S] (see :func:`key_mask`) so that it broadcasts over heads and queries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LN_EPS", "Attention", "Block", "FeedForward", "KVCache", "init_embedding",
           "Packing", "Stack", "key_mask", "sinusoidal_table"]

#: LayerNorm epsilon of every norm in the reference (XLM heritage).
LN_EPS = 1e-12


def sinusoidal_table(positions: int, dim: int) -> Tensor:
    """[positions, dim] float32: column j holds ``sin`` (even j) or ``cos`` (odd j) of
    ``pos / 10000^(2 (j // 2) / dim)``; computed in float64 as the reference (numpy)."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.empty(positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


def key_mask(mask: Tensor | None) -> Tensor | None:
    """[B, S] bool (True = real) -> [B, 1, 1, S] for attention; None (no padding) stays None."""
    return None if mask is None else mask[:, None, None, :]


class Packing:
    """The real rows of a padded [B, L, ...] batch as one [T, ...] tensor (T real tokens).

    Position-wise work (projections, FFN, LayerNorm) then skips the padding; attention
    unpacks to [B, L, ...] (zeros at padded rows, which the key mask hides).
    """

    def __init__(self, mask: Tensor) -> None:
        self.batch, self.length = mask.shape
        self.index = mask.reshape(-1).nonzero().squeeze(1)

    def pack(self, x: Tensor) -> Tensor:
        """[B, L, ...] -> [T, ...]."""
        return x.flatten(0, 1).index_select(0, self.index)

    def unpack(self, x: Tensor) -> Tensor:
        """[T, ...] -> [B, L, ...] with zero rows at the padded positions."""
        out = x.new_zeros(self.batch * self.length, *x.shape[1:]).index_copy(0, self.index, x)
        return out.view(self.batch, self.length, *x.shape[1:])


class KVCache:
    """Keys and values of one self-attention layer for incremental decoding.

    [B, heads, max_len, head_dim] buffers, allocated at the first :meth:`append` with the
    keys' dtype and device (so autocast works); ``length`` positions are filled.
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = int(max_len)
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.length = 0

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new [B, H, T, dh] keys/values; return all keys/values so far."""
        if self.k is None or self.v is None:
            b, h, _, dh = k.shape
            self.k = k.new_empty(b, h, self.max_len, dh)
            self.v = v.new_empty(b, h, self.max_len, dh)
        end = self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KVCache: {end} positions exceed the {self.max_len} allocated")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class Attention(nn.Module):
    """Multi-head attention, ``in_proj`` [3d, d] holding the q, k, v maps (in that order).

    ``forward(x)`` is self-attention over ``x`` [B, T, d]; ``forward(x, memory_kv=(k, v))``
    attends from ``x`` to keys/values made once by :meth:`memory_kv` from a memory [B, S, d].
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be a multiple of heads={heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.dropout = float(dropout)
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        # nn.MultiheadAttention's initialisation: Xavier-uniform in_proj, zero biases.
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, x: Tensor, parts: int) -> tuple[Tensor, ...]:
        """[B, T, parts * d] -> ``parts`` tensors [B, H, T, dh]."""
        b, t, _ = x.shape
        return x.view(b, t, parts, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values [B, H, S, dh] of a memory [B, S, d] (cross-attention)."""
        kv = F.linear(memory, self.in_proj.weight[self.dim:], self.in_proj.bias[self.dim:])
        return self._split(kv, 2)

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False,
                memory_kv: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None,
                packing: Packing | None = None) -> Tensor:
        """x [B, T, d] (or [T_real, d] packed by ``packing``) -> the same shape.

        mask: [B, 1, 1, S] bool key mask (True = attend) or None; causal: query i sees keys
        <= i (self-attention; with a cache, the new queries come after the cached keys).
        """
        d = self.dim
        if memory_kv is None:
            qkv = self.in_proj(x)
            q, k, v = self._split(qkv if packing is None else packing.unpack(qkv), 3)
            if cache is not None:
                past = cache.length
                k, v = cache.append(k, v)
                # One new query sees every cached key: no mask. A longer chunk after a
                # non-empty cache would need an offset causal mask (not needed by greedy).
                if causal and q.size(2) > 1 and past > 0:
                    raise NotImplementedError("causal chunks after a non-empty cache")
                causal = causal and past == 0 and q.size(2) > 1
        else:
            q = F.linear(x, self.in_proj.weight[:d], self.in_proj.bias[:d])
            (q,) = self._split(q if packing is None else packing.unpack(q), 1)
            k, v = memory_kv
        if causal and mask is not None:
            raise ValueError("causal attention takes no key mask (pad at the end instead)")
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal)
        out = out.transpose(1, 2).flatten(2)  # [B, T, d]
        return self.out_proj(out if packing is None else packing.pack(out))


class FeedForward(nn.Module):
    """Linear(d, f) -> GELU (exact) -> Linear(f, d) -> dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.dropout = float(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, L, d_model]`` -> same shape (two linear layers around the activation)."""
        x = self.lin2(F.gelu(self.lin1(x)))
        return F.dropout(x, self.dropout, self.training) if self.dropout else x


class Block(nn.Module):
    """One transformer layer: [self-attention] -> [cross-attention] -> FFN.

    Post-LN (default, the reference): ``x = LN(x + drop(f(x)))`` per sub-layer; pre-LN
    (``norm_first=True``): ``x = x + drop(f(LN(x)))`` (the stack then ends with a LayerNorm).
    Norms: ``norm_self``, ``norm_cross``, ``norm_ffn`` (the reference's ``layer_norm1``,
    ``layer_norm15``, ``layer_norm2``; the data decoder's cross-attention uses ``norm_cross``).
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float = 0.0,
                 attention_dropout: float = 0.0, norm_first: bool = False,
                 self_attention: bool = True, cross_attention: bool = False) -> None:
        super().__init__()
        if not (self_attention or cross_attention):
            raise ValueError("a Block needs self- or cross-attention")
        self.norm_first, self.dropout = bool(norm_first), float(dropout)
        self.self_attn = Attention(dim, heads, attention_dropout) if self_attention else None
        self.norm_self = nn.LayerNorm(dim, eps=LN_EPS) if self_attention else None
        self.cross_attn = Attention(dim, heads, attention_dropout) if cross_attention else None
        self.norm_cross = nn.LayerNorm(dim, eps=LN_EPS) if cross_attention else None
        self.ffn = FeedForward(dim, ffn, dropout)
        self.norm_ffn = nn.LayerNorm(dim, eps=LN_EPS)

    def _sublayer(self, x: Tensor, f: Callable[[Tensor], Tensor], norm: nn.LayerNorm,
                  dropout: bool = True) -> Tensor:
        if self.norm_first:
            y = f(norm(x))
            return x + (F.dropout(y, self.dropout, self.training) if dropout and self.dropout
                        else y)
        y = f(x)
        return norm(x + (F.dropout(y, self.dropout, self.training) if dropout and self.dropout
                         else y))

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False,
                memory_kv: tuple[Tensor, Tensor] | None = None,
                memory_mask: Tensor | None = None, cache: KVCache | None = None,
                packing: Packing | None = None) -> Tensor:
        """x [B, T, d] (or packed [T_real, d]); mask: [B, 1, 1, T] key mask of the
        self-attention; memory_kv: the cross-attention keys/values
        (:meth:`Attention.memory_kv`) with ``memory_mask`` [B, 1, 1, S]."""
        if self.self_attn is not None:
            x = self._sublayer(
                x, lambda h: self.self_attn(h, mask, causal, cache=cache, packing=packing),
                self.norm_self)
        if self.cross_attn is not None:
            if memory_kv is None:
                raise ValueError("this block cross-attends: memory_kv is required")
            x = self._sublayer(
                x, lambda h: self.cross_attn(h, memory_mask, memory_kv=memory_kv,
                                             packing=packing),
                self.norm_cross)
        # The FFN applies its own dropout (as the reference's TransformerFFN).
        return self._sublayer(x, self.ffn, self.norm_ffn, dropout=False)


def embed_tokens(embedding: nn.Embedding, positions: Tensor, tokens: Tensor, start: int = 0,
                 what: str = "token") -> Tensor:
    """Token embedding plus the sinusoidal positions ``start .. start + L - 1``: [B, L] ids
    -> [B, L, d]; a sequence past the table names ``max_positions``."""
    end = start + tokens.size(1)
    if end > positions.size(0):
        raise ValueError(f"{what} position {end - 1} exceeds max_positions={positions.size(0)}")
    return embedding(tokens) + positions[start:end]


def init_embedding(embedding: nn.Embedding) -> nn.Embedding:
    """The reference's init: N(0, d^-0.5), the padding row (if any) zero."""
    nn.init.normal_(embedding.weight, mean=0.0, std=embedding.embedding_dim ** -0.5)
    if embedding.padding_idx is not None:
        with torch.no_grad():
            embedding.weight[embedding.padding_idx].zero_()
    return embedding


class Stack(nn.Module):
    """Embedding LayerNorm -> ``layers`` :class:`Block` s (-> final LayerNorm if pre-LN).

    Padded positions never reach a real one (key-padding masks, causality) and come out as
    zeros, as in the reference, which zeroes them after the embedding norm and after every
    layer of its encoders, fusion and symbol decoder. With ``unpad=True`` the padded rows are
    dropped from the position-wise work (a :class:`Packing`), which gives the same real rows
    for less work; ``unpad=False`` runs padded tensors and zeroes the padding after each layer.
    """

    def __init__(self, layers: int, dim: int, heads: int, ffn: int, dropout: float = 0.0,
                 attention_dropout: float = 0.0, norm_first: bool = False,
                 self_attention: bool = True, cross_attention: bool = False,
                 unpad: bool = True) -> None:
        super().__init__()
        self.dropout, self.unpad = float(dropout), bool(unpad)
        self.norm_emb = nn.LayerNorm(dim, eps=LN_EPS)
        self.layers = nn.ModuleList(
            Block(dim, heads, ffn, dropout, attention_dropout, norm_first, self_attention,
                  cross_attention) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim, eps=LN_EPS) if norm_first else None

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False,
                memory_kv: list[tuple[Tensor, Tensor]] | None = None,
                memory_mask: Tensor | None = None,
                caches: list[KVCache] | None = None) -> Tensor:
        """x [B, T, d] (embedded inputs) -> [B, T, d], zero at padded positions.

        mask: [B, T] bool, True = real (None: all real); causal: causal self-attention (the
        padding must then be at the end: it is not a key mask); memory_kv: per-layer
        cross-attention keys/values with memory_mask [B, S] bool; caches: per-layer KV caches
        (incremental decoding, no mask).
        """
        packing = Packing(mask) if mask is not None and self.unpad else None
        keep = None if mask is None or packing is not None else mask[..., None].to(x.dtype)
        attn_mask = None if mask is None or causal else key_mask(mask)
        mem_mask = key_mask(memory_mask)
        if packing is not None:
            x = packing.pack(x)
        x = self.norm_emb(x)
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        if keep is not None:
            x = x * keep
        for i, layer in enumerate(self.layers):
            x = layer(x, attn_mask, causal, None if memory_kv is None else memory_kv[i],
                      mem_mask, None if caches is None else caches[i], packing)
            if keep is not None:
                x = x * keep
        if self.norm_out is not None:
            x = self.norm_out(x)
            if keep is not None:
                x = x * keep
        return x if packing is None else packing.unpack(x)
