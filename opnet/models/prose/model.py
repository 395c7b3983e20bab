"""PROSE: the multimodal operator + expression network (Liu, Zhang & Schaeffer, 2023)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from opnet.models.prose.decoders import DataDecoder, Generated, SymbolDecoder
from opnet.models.prose.encoders import DataEmbedder, DataEncoder, SymbolEncoder
from opnet.models.prose.fusion import Fusion, concat_masks

__all__ = ["PAPER", "SMALL", "Encoded", "PROSE"]

#: The paper / reference network (``parsers.py`` defaults): 104,357,427 parameters at
#: max_dim = 3 with the reference's 1072-word vocabulary, 104,353,327 with ours (1068).
PAPER: dict[str, Any] = {
    "dim": 512, "heads": 8, "ffn": 2048, "data_encoder_layers": 2, "symbol_encoder_layers": 4,
    "fusion_layers": 8, "data_decoder_layers": 8, "symbol_decoder_layers": 8}
#: The reduced network (width 128, FFN 4 x 128, 2 layers per stack): 2,409,135 parameters at
#: max_dim = 3, V = 1068 (2,410,163 at the reference's V = 1072).
SMALL: dict[str, Any] = {
    "dim": 128, "heads": 4, "ffn": 512, "data_encoder_layers": 2, "symbol_encoder_layers": 2,
    "fusion_layers": 2, "data_decoder_layers": 2, "symbol_decoder_layers": 2}


class Encoded(NamedTuple):
    """The encoder side of PROSE, shared by both decoders.

    memory: [B, S, d] fused features (data first, then symbols; S = N_in + L) or, without
    symbol input, the data encoder's output (S = N_in); data_mask [B, N_in] / symbol_mask
    [B, L]: bool, True = real, None when nothing is padded; n_data: N_in.
    """

    memory: Tensor
    data_mask: Tensor | None
    symbol_mask: Tensor | None
    n_data: int


def _as_mask(mask: Tensor | None, shape: tuple[int, int], name: str) -> Tensor | None:
    """Bool [B, T] (True = real) or None; an all-real mask becomes None (no masking work)."""
    if mask is None:
        return None
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} has shape {list(mask.shape)}, expected {list(shape)}")
    mask = mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError(f"{name}: every sample needs at least one real (True) position")
    return None if bool(mask.all()) else mask


class PROSE(nn.Module):
    """PROSE: predicts an ODE solution at query times *and* its governing equations from
    input samples and a (possibly corrupted) symbolic guess.

    Five stacks, post-LN by default (the reference, XLM style; ``norm_first=True``: pre-LN
    with a final LayerNorm per stack), GELU FFNs, all widths ``dim``:

    * data embedder ``MLP([t, u_1..u_D])`` (missing components zero) -> data encoder
      (``data_encoder_layers``, no positions);
    * symbol encoder (``symbol_encoder_layers``; token embedding + sinusoidal positions) over
      the skeleton *without* ``<BOS>``/``<EOS>``;
    * fusion (``fusion_layers``) over [data ; symbols] with a learned modality embedding;
    * data decoder (``data_decoder_layers``): independent queries ``LN(Linear(1, d)(t))``,
      cross-attention + FFN, head Linear(d, max_dim);
    * symbol decoder (``symbol_decoder_layers``): causal, cross-attends, output tied to its
      embedding.

    With ``split_fused=True`` (the reference's default) the data decoder attends to the data
    half of the fused sequence and the symbol decoder to the symbol half; ``False``: both
    attend to all of it. Modes: ``symbol_input=False, symbol_output=False`` is the data-only
    1-to-1 baseline (the reference's ``--no_text``: the data decoder attends to the data
    encoder); ``symbol_output=False`` drops the symbol decoder (``--data_only``, 2-to-1).

    ``vocab_size``, ``pad_id``, ``bos_id``, ``eos_id`` default to
    :class:`opnet.symbolic.Vocabulary` ``(max_dim)`` (1065 + max_dim words; pad 2, BOS 0,
    EOS 1). Padded positions are masked everywhere (boolean key-padding masks) and are zero
    in the outputs of the encoders, the fusion and the symbol decoder, as the reference
    (which zeroes them after every layer). ``unpad=True`` (default) drops padded tokens from
    the position-wise work (projections, FFN, norms) instead of computing and zeroing them:
    same results, less work on ragged batches; ``unpad=False`` is the reference's way.
    """

    def __init__(self, max_dim: int = 3, vocab_size: int | None = None,
                 pad_id: int | None = None, bos_id: int | None = None,
                 eos_id: int | None = None, dim: int = 512, heads: int = 8, ffn: int = 2048,
                 data_encoder_layers: int = 2, symbol_encoder_layers: int = 4,
                 fusion_layers: int = 8, data_decoder_layers: int = 8,
                 symbol_decoder_layers: int = 8, dropout: float = 0.0,
                 attention_dropout: float = 0.0, norm_first: bool = False,
                 max_positions: int = 512, symbol_input: bool = True,
                 symbol_output: bool = True, split_fused: bool = True,
                 unpad: bool = True) -> None:
        super().__init__()
        if symbol_output and not symbol_input:
            raise ValueError("symbol_output=True needs symbol_input=True (a data-only model "
                             "has symbol_input=False, symbol_output=False)")
        if None in (vocab_size, pad_id, bos_id, eos_id):
            from opnet.symbolic import Vocabulary

            vocab = Vocabulary(max_dim)
            vocab_size = len(vocab) if vocab_size is None else vocab_size
            pad_id = vocab.pad_id if pad_id is None else pad_id
            bos_id = vocab.bos_id if bos_id is None else bos_id
            eos_id = vocab.eos_id if eos_id is None else eos_id
        for name, value in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            if not 0 <= int(value) < int(vocab_size):
                raise ValueError(f"{name}={value} is outside the vocabulary (0..{vocab_size - 1})")
        if dim % heads:
            raise ValueError(f"dim={dim} must be a multiple of heads={heads}")
        self.max_dim, self.vocab_size = int(max_dim), int(vocab_size)
        self.pad_id, self.bos_id, self.eos_id = int(pad_id), int(bos_id), int(eos_id)
        self.symbol_input, self.symbol_output = bool(symbol_input), bool(symbol_output)
        self.split_fused = bool(split_fused)
        common = {"dim": dim, "heads": heads, "ffn": ffn, "dropout": dropout,
                  "attention_dropout": attention_dropout, "norm_first": norm_first}
        self.embedder = DataEmbedder(max_dim, dim)
        self.data_encoder = DataEncoder(data_encoder_layers, unpad=unpad, **common)
        self.symbol_encoder = self.fusion = self.symbol_decoder = None
        if self.symbol_input:
            self.symbol_encoder = SymbolEncoder(vocab_size, pad_id, symbol_encoder_layers,
                                                max_positions=max_positions, unpad=unpad,
                                                **common)
            self.fusion = Fusion(fusion_layers, unpad=unpad, **common)
        self.data_decoder = DataDecoder(max_dim, data_decoder_layers, **common)
        if self.symbol_output:
            self.symbol_decoder = SymbolDecoder(vocab_size, pad_id, symbol_decoder_layers,
                                                max_positions=max_positions, unpad=unpad,
                                                **common)

    # ------------------------------------------------------------------ encoder side
    def encode(self, t_in: Tensor, u_in: Tensor, data_mask: Tensor | None = None,
               symbols: Tensor | None = None, symbol_mask: Tensor | None = None) -> Encoded:
        """Encoders + fusion. t_in [B, N_in], u_in [B, N_in, D<=max_dim], data_mask
        [B, N_in]; symbols [B, L] skeleton ids (no BOS/EOS, padded with ``pad_id``),
        symbol_mask [B, L] (default ``symbols != pad_id``). Masks: bool, True = real."""
        if t_in.dim() != 2 or u_in.dim() != 3 or u_in.shape[:2] != t_in.shape:
            raise ValueError(f"t_in {list(t_in.shape)} / u_in {list(u_in.shape)}: expected "
                             "[B, N_in] and [B, N_in, D]")
        b, n = t_in.shape
        data_mask = _as_mask(data_mask, (b, n), "data_mask")
        data = self.data_encoder(self.embedder(t_in, u_in), data_mask)
        if not self.symbol_input:
            return Encoded(data, data_mask, None, n)
        if symbols is None:
            raise ValueError("this PROSE has symbol_input=True: pass symbols [B, L]")
        if symbols.dim() != 2 or symbols.size(0) != b:
            raise ValueError(f"symbols has shape {list(symbols.shape)}, expected [{b}, L]")
        if symbol_mask is None:
            symbol_mask = symbols != self.pad_id
        symbol_mask = _as_mask(symbol_mask, tuple(symbols.shape), "symbol_mask")
        sym = self.symbol_encoder(symbols, symbol_mask)
        memory = self.fusion(data, sym, data_mask, symbol_mask)
        return Encoded(memory, data_mask, symbol_mask, n)

    def _data_memory(self, enc: Encoded) -> tuple[Tensor, Tensor | None]:
        if not self.symbol_input:
            return enc.memory, enc.data_mask
        if self.split_fused:
            return enc.memory[:, :enc.n_data], enc.data_mask
        return enc.memory, self._full_mask(enc)

    def _symbol_memory(self, enc: Encoded) -> tuple[Tensor, Tensor | None]:
        if self.split_fused:
            return enc.memory[:, enc.n_data:], enc.symbol_mask
        return enc.memory, self._full_mask(enc)

    @staticmethod
    def _full_mask(enc: Encoded) -> Tensor | None:
        b, s = enc.memory.shape[:2]
        return concat_masks(enc.data_mask, enc.symbol_mask, enc.n_data, s - enc.n_data, b,
                            enc.memory.device)

    # ------------------------------------------------------------------ decoders
    def decode_data(self, enc: Encoded, t_out: Tensor) -> Tensor:
        """Solution at the query times t_out [B, N_out] (or [N_out]) -> [B, N_out, max_dim]."""
        memory, mask = self._data_memory(enc)
        return self.data_decoder(t_out, memory, mask)

    def decode_symbols(self, enc: Encoded, target_tokens: Tensor,
                       target_mask: Tensor | None = None) -> Tensor:
        """Teacher-forced logits [B, L_t, V] for the decoder input ``[BOS] target`` [B, L_t]
        (padded with ``pad_id``; target_mask default ``target_tokens != pad_id``)."""
        if self.symbol_decoder is None:
            raise ValueError("this PROSE has symbol_output=False: no symbol decoder")
        if target_mask is None:
            target_mask = target_tokens != self.pad_id
        target_mask = _as_mask(target_mask, tuple(target_tokens.shape), "target_mask")
        memory, mask = self._symbol_memory(enc)
        return self.symbol_decoder(target_tokens, memory, mask, target_mask)

    def greedy(self, enc: Encoded, max_len: int = 150, use_cache: bool = True,
               return_logits: bool = False) -> Generated:
        """Greedy expression decoding from encoded inputs (see :meth:`generate`)."""
        if self.symbol_decoder is None:
            raise ValueError("this PROSE has symbol_output=False: no symbol decoder")
        memory, mask = self._symbol_memory(enc)
        return self.symbol_decoder.greedy(memory, mask, self.bos_id, self.eos_id, self.pad_id,
                                          max_len, use_cache, return_logits)

    # ------------------------------------------------------------------ entry points
    def forward(self, t_in: Tensor, u_in: Tensor, data_mask: Tensor | None = None,
                symbols: Tensor | None = None, symbol_mask: Tensor | None = None,
                t_out: Tensor | None = None, target_tokens: Tensor | None = None,
                target_mask: Tensor | None = None) -> tuple[Tensor | None, Tensor | None]:
        """One training pass.

        Inputs (masks bool, True = real; None = nothing padded):

        * t_in [B, N_in], u_in [B, N_in, D] (D <= max_dim, missing components zero),
          data_mask [B, N_in];
        * symbols [B, L] skeleton ids without BOS/EOS padded with ``pad_id``, symbol_mask
          [B, L] (default ``symbols != pad_id``); required if ``symbol_input``, ignored
          otherwise;
        * t_out [B, N_out] or [N_out] query times (None: no data output);
        * target_tokens [B, L_t] = ``[BOS] target`` padded *at the end* with ``pad_id``
          (teacher forcing; None: no logits), target_mask [B, L_t] (default
          ``target_tokens != pad_id``).

        Every sample needs at least one real data token and one real symbol token.

        Returns ``(u_out [B, N_out, max_dim] or None, logits [B, L_t, V] or None)``; the loss
        pairs ``logits`` with ``target [EOS]`` (ignore ``pad_id``).
        """
        enc = self.encode(t_in, u_in, data_mask, symbols, symbol_mask)
        u_out = None if t_out is None else self.decode_data(enc, t_out)
        logits = None
        if target_tokens is not None:
            logits = self.decode_symbols(enc, target_tokens, target_mask)
        return u_out, logits

    @torch.no_grad()
    def generate(self, t_in: Tensor, u_in: Tensor, data_mask: Tensor | None = None,
                 symbols: Tensor | None = None, symbol_mask: Tensor | None = None,
                 max_len: int = 150, use_cache: bool = True,
                 return_logits: bool = False) -> Generated:
        """Greedy expression decoding (the reference's ``beam_size=1``), key/value cached.

        Returns :class:`Generated` ``(tokens [B, T<=max_len], lengths [B], finished [B])``:
        the ids after ``<BOS>``, ``<EOS>`` included when produced and ``pad_id`` after it;
        ``tokens[i, :lengths[i]]`` is the expression; ``return_logits``: also every step's
        logits [B, T, V]. Call ``model.eval()`` first (dropout).
        """
        return self.greedy(self.encode(t_in, u_in, data_mask, symbols, symbol_mask), max_len,
                           use_cache, return_logits)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per top-level module and ``"total"`` (tied weights once)."""
        counts = {name: sum(p.numel() for p in module.parameters() if p.requires_grad)
                  for name, module in self.named_children()}
        counts["total"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return counts
