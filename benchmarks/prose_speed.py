"""Training-step and greedy-decoding speed of PROSE (opnet.models.prose).

One training step = forward + loss (6 x relative squared L2 of the data decoder + token
cross-entropy of the symbol decoder) + backward + AdamW step, on a synthetic batch shaped
like the ODE data: 64 input samples, 128 query times, D = 3, skeletons of 25-80 tokens in,
targets of 33-100 tokens out (decoder input ``[BOS] target``, loss target ``target [EOS]``),
padded to the batch maximum. Sizes: ``paper`` (d 512, layers 2/4/8/8/8, batch 8) and
``small`` (d 128, 2 layers per stack, batch 32). Prints one JSON line per measurement with
the minimum (steadier on a shared machine) and the median over ``--repeats`` timed steps,
and the 1-minute load average. Decoding: greedy tokens per second of the symbol decoder (the
encoding, done once per batch, excluded) with and without the key/value cache; every
sequence is decoded for ``--decode-len`` tokens (EOS is disabled: an untrained model may
emit it at any step).

``--baseline`` also times :class:`ReferenceStyle`, the same network run the way the
official ``prose_ode`` code runs it (``nn.MultiheadAttention`` returning per-head weights,
padded tensors zeroed after every layer), on the same batch: a like-for-like comparison
on a shared machine, where absolute times move with the load.

    python benchmarks/prose_speed.py [--sizes paper small] [--repeats 5] [--threads N]
                                     [--baseline] [--device cpu|cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timing import time_steps  # the shared timed-step loop (benchmarks/ is on sys.path)
from torch import nn

from opnet.models.prose import PAPER, PROSE, SMALL
from opnet.symbolic import Vocabulary

SIZES: dict[str, tuple[dict[str, Any], int]] = {"paper": (PAPER, 8), "small": (SMALL, 32)}


def make_batch(batch: int, vocab: Vocabulary, n_in: int = 64, n_out: int = 128,
               dim: int = 3, seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A synthetic padded batch with the shapes and length spread of the ODE data."""
    gen = torch.Generator().manual_seed(seed)
    skel_len = torch.randint(25, 81, (batch,), generator=gen)
    tgt_len = torch.randint(33, 101, (batch,), generator=gen)
    low, high = 4, len(vocab)  # no specials inside the sequences
    symbols = torch.full((batch, int(skel_len.max())), vocab.pad_id)
    dec_in = torch.full((batch, int(tgt_len.max()) + 1), vocab.pad_id)
    dec_out = torch.full_like(dec_in, vocab.pad_id)
    for i in range(batch):
        symbols[i, :skel_len[i]] = torch.randint(low, high, (int(skel_len[i]),), generator=gen)
        target = torch.randint(low, high, (int(tgt_len[i]),), generator=gen)
        dec_in[i, 0] = vocab.bos_id
        dec_in[i, 1:tgt_len[i] + 1] = target
        dec_out[i, :tgt_len[i]] = target
        dec_out[i, tgt_len[i]] = vocab.eos_id
    t = torch.linspace(0, 6, n_in + n_out)
    out = {"t_in": t[:n_in].expand(batch, -1), "u_in": torch.randn(batch, n_in, dim, generator=gen),
           "t_out": t[n_in:].expand(batch, -1),
           "u_out": torch.randn(batch, n_out, dim, generator=gen),
           "symbols": symbols, "target_tokens": dec_in, "target_out": dec_out}
    return {k: v.contiguous().to(device) for k, v in out.items()}


class _RefLayer(nn.Module):
    """Post-LN layer as the official code runs it: ``nn.MultiheadAttention`` (batch_first,
    called with its default ``need_weights=True`` and ``average_attn_weights=False``)."""

    def __init__(self, d: int, heads: int, ffn: int, self_attn: bool, cross: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True) if self_attn else None
        self.ln1 = nn.LayerNorm(d, eps=1e-12) if self_attn else None
        self.cross = nn.MultiheadAttention(d, heads, batch_first=True) if cross else None
        self.ln15 = nn.LayerNorm(d, eps=1e-12) if cross else None
        self.lin1, self.lin2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, pad=None, causal=None, mem=None, mem_pad=None):
        if self.attn is not None:
            x = self.ln1(x + self.attn(x, x, x, key_padding_mask=pad, attn_mask=causal,
                                       average_attn_weights=False)[0])
        if self.cross is not None:
            x = self.ln15(x + self.cross(x, mem, mem, key_padding_mask=mem_pad,
                                         average_attn_weights=False)[0])
        return self.ln2(x + self.lin2(F.gelu(self.lin1(x))))


class ReferenceStyle(nn.Module):
    """Timing baseline with the official ``prose_ode`` execution pattern (library attention
    returning per-head weights, a [B * heads, L, L] causal mask in the symbol decoder,
    ``tensor *= mask`` after every layer, masks rebuilt from lengths), same sizes and
    parameter count as :class:`PROSE`; for ``--baseline`` timings only."""

    def __init__(self, max_dim: int = 3, vocab_size: int = 1068, pad_id: int = 2,
                 dim: int = 512, heads: int = 8, ffn: int = 2048, data_encoder_layers: int = 2,
                 symbol_encoder_layers: int = 4, fusion_layers: int = 8,
                 data_decoder_layers: int = 8, symbol_decoder_layers: int = 8,
                 **_: Any) -> None:
        super().__init__()
        self.heads, self.pad_id = heads, pad_id
        self.embedder = nn.Sequential(nn.Linear(1 + max_dim, dim), nn.GELU(),
                                      nn.Linear(dim, dim))

        def layers(n: int, self_attn: bool, cross: bool) -> nn.ModuleList:
            return nn.ModuleList(_RefLayer(dim, heads, ffn, self_attn, cross) for _ in range(n))

        self.enc_d = layers(data_encoder_layers, True, False)
        self.enc_s = layers(symbol_encoder_layers, True, False)
        self.fus = layers(fusion_layers, True, False)
        self.dec_d = layers(data_decoder_layers, False, True)
        self.dec_s = layers(symbol_decoder_layers, True, True)
        self.ln = nn.ModuleList(nn.LayerNorm(dim, eps=1e-12) for _ in range(5))
        self.emb_s = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.emb_t = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.types, self.query = nn.Embedding(2, dim), nn.Linear(1, dim)
        self.register_buffer("pos", torch.randn(512, dim), persistent=False)
        self.proj = nn.Linear(dim, vocab_size)
        self.proj.weight = self.emb_t.weight
        self.head = nn.Linear(dim, max_dim)

    @staticmethod
    def _run(layers, x, keep, **kw):
        x = x * keep
        for lay in layers:
            x = lay(x, **kw) * keep
        return x

    def forward(self, t_in, u_in, symbols, t_out, target_tokens):
        (b, n), dev = t_in.shape, t_in.device
        ones = torch.ones(b, n, 1, device=dev)
        x = self.embedder(torch.cat([t_in[..., None], u_in], -1))
        d_len = torch.full((b,), n, device=dev)
        d_keep = torch.arange(n, device=dev) < d_len[:, None]
        x = self._run(self.enc_d, self.ln[0](x), ones, pad=~d_keep)
        s_keep = symbols != self.pad_id
        s = self.ln[1](self.emb_s(symbols) + self.pos[:symbols.size(1)])
        s = self._run(self.enc_s, s, s_keep[..., None].float(), pad=~s_keep)
        f_keep = torch.cat([d_keep, s_keep], 1)
        f = torch.cat([x + self.types.weight[0], s + self.types.weight[1]], 1)
        f = self._run(self.fus, self.ln[2](f), f_keep[..., None].float(), pad=~f_keep)
        q = self.ln[3](self.query(t_out[..., None]))
        for lay in self.dec_d:
            q = lay(q, mem=f[:, :n], mem_pad=~d_keep)
        u = self.head(q)
        lt = target_tokens.size(1)
        t_keep = target_tokens != self.pad_id
        pos = torch.arange(lt, device=dev)
        causal = ~(pos[None, None, :] <= pos[None, :, None])
        causal = causal.expand(b * self.heads, lt, lt)
        h = self.ln[4](self.emb_t(target_tokens) + self.pos[:lt])
        h = self._run(self.dec_s, h, t_keep[..., None].float(), causal=causal,
                      mem=f[:, n:], mem_pad=~s_keep)
        return u, self.proj(h)


def loss_fn(model: nn.Module, b: dict[str, torch.Tensor], pad_id: int) -> torch.Tensor:
    """6 x relative squared L2 (batch mean) + token cross-entropy (pads ignored)."""
    if isinstance(model, PROSE):
        u, logits = model(b["t_in"], b["u_in"], symbols=b["symbols"], t_out=b["t_out"],
                          target_tokens=b["target_tokens"])
    else:
        u, logits = model(b["t_in"], b["u_in"], b["symbols"], b["t_out"], b["target_tokens"])
    y = b["u_out"]
    rel = ((u.float() - y) ** 2).sum(dim=(1, 2)) / (y.pow(2).sum(dim=(1, 2)) + 1e-5)
    ce = F.cross_entropy(logits.float().flatten(0, 1), b["target_out"].flatten(),
                         ignore_index=pad_id)
    return 6.0 * rel.mean() + ce


def time_train_step(model: nn.Module, b: dict[str, torch.Tensor], pad_id: int, repeats: int,
                    warmup: int, device: str, precision: str) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    model.train()
    return time_steps(opt, lambda: loss_fn(model, b, pad_id), device, precision, warmup,
                      repeats)


def decode_speed(model: PROSE, b: dict[str, torch.Tensor], length: int, use_cache: bool,
                 repeats: int, device: str) -> tuple[float, int]:
    """Greedy tokens/s of the symbol decoder alone (the encoders run once, untimed) for
    exactly ``length`` tokens per sequence (EOS disabled: an untrained model may emit it at
    any step). Returns (best tokens/s, tokens per call)."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    eos = model.eos_id
    model.eos_id = -1  # never matches: every sequence runs for `length` tokens
    model.eval()
    best = 0.0
    try:
        with torch.inference_mode():
            enc = model.encode(b["t_in"], b["u_in"], symbols=b["symbols"])
            for _ in range(repeats):
                sync()
                t0 = time.perf_counter()
                out = model.greedy(enc, max_len=length, use_cache=use_cache)
                sync()
                n = out.tokens.numel()
                best = max(best, n / (time.perf_counter() - t0))
    finally:
        model.eos_id = eos
    return best, n


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["paper", "small"], choices=list(SIZES))
    parser.add_argument("--batch", type=int, default=None, help="override the size's batch")
    parser.add_argument("--heads", type=int, default=None, help="override the size's heads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--decode-len", type=int, default=100)
    parser.add_argument("--decode-repeats", type=int, default=2)
    parser.add_argument("--no-decode", action="store_true")
    parser.add_argument("--baseline", action="store_true",
                        help="also time ReferenceStyle (the official execution pattern)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    vocab = Vocabulary(3)
    for size in args.sizes:
        cfg, batch = SIZES[size]
        cfg = dict(cfg) if args.heads is None else {**cfg, "heads": args.heads}
        batch = args.batch or batch
        torch.manual_seed(0)
        model = PROSE(max_dim=3, **cfg).to(args.device)
        b = make_batch(batch, vocab, device=args.device)
        common = {"size": size, "batch": batch, "heads": cfg["heads"],
                  "params": model.parameter_counts()["total"],
                  "threads": torch.get_num_threads(), "device": args.device,
                  "precision": args.precision}
        times = time_train_step(model, b, vocab.pad_id, args.repeats, args.warmup,
                                args.device, args.precision)
        print(json.dumps({"benchmark": "prose_train_step", **common,
                          "min_seconds_per_step": round(min(times), 4),
                          "median_seconds_per_step": round(statistics.median(times), 4),
                          "symbols": list(b["symbols"].shape),
                          "decoder_input": list(b["target_tokens"].shape),
                          "load_1min": round(os.getloadavg()[0], 2)}), flush=True)
        if args.baseline:
            torch.manual_seed(0)
            ref = ReferenceStyle(max_dim=3, vocab_size=len(vocab), pad_id=vocab.pad_id,
                                 **cfg).to(args.device)
            times = time_train_step(ref, b, vocab.pad_id, args.repeats, args.warmup,
                                    args.device, args.precision)
            print(json.dumps({"benchmark": "reference_style_train_step", **common,
                              "params": sum(p.numel() for p in ref.parameters()),
                              "min_seconds_per_step": round(min(times), 4),
                              "median_seconds_per_step": round(statistics.median(times), 4),
                              "load_1min": round(os.getloadavg()[0], 2)}), flush=True)
        if args.no_decode:
            continue
        for use_cache in (True, False):
            tps, n = decode_speed(model, b, args.decode_len, use_cache, args.decode_repeats,
                                  args.device)
            print(json.dumps({"benchmark": "prose_greedy_decode", **common,
                              "kv_cache": use_cache, "tokens_per_call": n,
                              "decode_len": args.decode_len, "tokens_per_second": round(tps, 1),
                              "load_1min": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
