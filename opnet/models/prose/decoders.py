"""PROSE decoders: the data (operator) decoder and the symbol (expression) decoder.

* :class:`DataDecoder`: one query per output time, ``LN(Linear(1, d)(t))``; each layer is
  cross-attention to the memory + FFN, with **no self-attention among the queries**
  (the reference's ``data_decoder_attn=False``): every query is decoded independently, so
  the output at a time does not depend on the other query times (mesh-free). Head
  Linear(d, D). No query padding mask is needed: padded query times give outputs that the
  loss ignores.
* :class:`SymbolDecoder`: causal self-attention + cross-attention to the memory + FFN over
  ``[BOS] target`` (token embedding with a zero padding row, sinusoidal positions); the
  output Linear(d, V) shares its weight with the token embedding (its bias is its own).
  :meth:`SymbolDecoder.greedy` decodes with a key/value cache.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from opnet.models.prose.layers import (
    KVCache,
    Stack,
    embed_tokens,
    init_embedding,
    sinusoidal_table,
)

__all__ = ["DataDecoder", "Generated", "SymbolDecoder"]


class DataDecoder(nn.Module):
    """Query times t [B, N_out] + memory [B, S, d] -> u [B, N_out, out_dim]."""

    def __init__(self, out_dim: int, layers: int, dim: int, heads: int, ffn: int,
                 dropout: float = 0.0, attention_dropout: float = 0.0,
                 norm_first: bool = False) -> None:
        super().__init__()
        self.query = nn.Linear(1, dim)
        self.stack = Stack(layers, dim, heads, ffn, dropout, attention_dropout, norm_first,
                           self_attention=False, cross_attention=True)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, t: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        """t: [B, N_out] (or [N_out], shared); memory_mask: [B, S] bool, True = real."""
        if t.dim() == 1:
            t = t.expand(memory.size(0), -1)
        x = self.query(t[..., None].to(self.query.weight.dtype))
        kv = [layer.cross_attn.memory_kv(memory) for layer in self.stack.layers]
        return self.head(self.stack(x, memory_kv=kv, memory_mask=memory_mask))


class Generated(NamedTuple):
    """Greedy decoding output.

    tokens: [B, T] generated ids after ``<BOS>`` (T <= max_len), the ``<EOS>`` included,
    ``pad_id`` after it; lengths: [B] expression lengths (tokens before ``<EOS>``, or T if
    none); finished: [B] bool, whether ``<EOS>`` was generated; logits: [B, T, V] the
    scores of every step (only with ``return_logits=True``).
    """

    tokens: Tensor
    lengths: Tensor
    finished: Tensor
    logits: Tensor | None = None


class SymbolDecoder(nn.Module):
    """Causal decoder over ``[BOS] target`` ids [B, L_t] with memory [B, S, d] -> logits
    [B, L_t, V]."""

    def __init__(self, vocab_size: int, pad_id: int, layers: int, dim: int, heads: int,
                 ffn: int, dropout: float = 0.0, attention_dropout: float = 0.0,
                 norm_first: bool = False, max_positions: int = 512,
                 unpad: bool = True) -> None:
        super().__init__()
        self.embedding = init_embedding(nn.Embedding(vocab_size, dim, padding_idx=pad_id))
        self.register_buffer("positions", sinusoidal_table(max_positions, dim),
                             persistent=False)
        self.stack = Stack(layers, dim, heads, ffn, dropout, attention_dropout, norm_first,
                           self_attention=True, cross_attention=True, unpad=unpad)
        self.output = nn.Linear(dim, vocab_size)
        self.output.weight = self.embedding.weight  # tied, as text_share_inout_emb=True

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-layer cross-attention keys/values of ``memory`` (computed once per sequence)."""
        return [layer.cross_attn.memory_kv(memory) for layer in self.stack.layers]

    def _embed(self, tokens: Tensor, start: int = 0) -> Tensor:
        return embed_tokens(self.embedding, self.positions, tokens, start, "decoder")

    def forward(self, tokens: Tensor, memory: Tensor, memory_mask: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        """Teacher forcing. tokens: [B, L_t] = ``[BOS] target`` padded at the end; mask:
        [B, L_t] bool, True = real (None: all real; causality keeps the padding out of the
        real positions, their hidden states are zero); memory_mask: [B, S].
        """
        h = self.stack(self._embed(tokens), mask, causal=True,
                       memory_kv=self.memory_kv(memory), memory_mask=memory_mask)
        return self.output(h)

    @torch.no_grad()
    def greedy(self, memory: Tensor, memory_mask: Tensor | None, bos_id: int, eos_id: int,
               pad_id: int, max_len: int = 150, use_cache: bool = True,
               return_logits: bool = False) -> Generated:
        """Greedy decoding from ``<BOS>``: at most ``max_len`` tokens per sequence (``<EOS>``
        included), stopping when every sequence has produced ``<EOS>``.

        ``use_cache=False`` recomputes the whole prefix at every step (for checking);
        ``return_logits`` keeps every step's logits.
        """
        if max_len > self.positions.size(0):
            raise ValueError(f"max_len={max_len} exceeds max_positions={self.positions.size(0)}")
        b, device = memory.size(0), memory.device
        tokens = torch.full((b, max_len + 1), pad_id, dtype=torch.long, device=device)
        tokens[:, 0] = bos_id
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        kv = self.memory_kv(memory)
        caches = [KVCache(max_len) for _ in self.stack.layers] if use_cache else None
        steps, scores = 0, []
        for step in range(max_len):
            if use_cache:
                x = self._embed(tokens[:, step:step + 1], start=step)
                h = self.stack(x, causal=True, memory_kv=kv, memory_mask=memory_mask,
                               caches=caches)
            else:
                x = self._embed(tokens[:, :step + 1])
                h = self.stack(x, causal=True, memory_kv=kv, memory_mask=memory_mask)
            logits = self.output(h[:, -1])
            if return_logits:
                scores.append(logits)
            next_ids = logits.argmax(dim=-1).masked_fill(finished, pad_id)
            tokens[:, step + 1] = next_ids
            finished |= next_ids == eos_id
            steps = step + 1
            if bool(finished.all()):
                break
        out = tokens[:, 1:steps + 1]
        is_eos = out == eos_id
        first = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1),
                            torch.full_like(finished, steps, dtype=torch.long))
        return Generated(out, first, finished,
                         torch.stack(scores, dim=1) if return_logits else None)
