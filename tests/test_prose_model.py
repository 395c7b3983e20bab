"""PROSE network (opnet.models.prose): parameter counts, masks, causality, mesh-free queries,
modes, KV-cached greedy decoding, tied output, autocast, gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from opnet.models.prose import PAPER, PROSE, SMALL
from opnet.models.prose.layers import sinusoidal_table
from opnet.symbolic import Vocabulary

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
TINY = {"dim": 32, "heads": 4, "ffn": 64, "data_encoder_layers": 1, "symbol_encoder_layers": 2,
        "fusion_layers": 2, "data_decoder_layers": 2, "symbol_decoder_layers": 2}
VOCAB = Vocabulary(3)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kwargs) -> PROSE:
    torch.manual_seed(0)
    return PROSE(max_dim=3, **{**TINY, **kwargs}).eval()


def batch(b: int = 3, n_in: int = 10, n_out: int = 7, n_sym: int = 8, n_tgt: int = 9,
          seed: int = 0) -> dict[str, torch.Tensor]:
    """Unpadded random inputs (symbols and targets avoid the special ids 0-3)."""
    g = torch.Generator().manual_seed(seed)
    tgt = torch.randint(4, len(VOCAB), (b, n_tgt), generator=g)
    tgt[:, 0] = VOCAB.bos_id
    return {"t_in": torch.rand(b, n_in, generator=g) * 2,
            "u_in": torch.randn(b, n_in, 3, generator=g),
            "symbols": torch.randint(4, len(VOCAB), (b, n_sym), generator=g),
            "t_out": 2 + 4 * torch.rand(b, n_out, generator=g), "target_tokens": tgt}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- parameter counts
def test_paper_parameter_counts_match_the_reference():
    """Reference structure at d = 512, V = 1072, D = 3 (§1: 0.265 / 13.16 / 34.18 / 6.31 /
    25.22 / 25.22 M): a self-attention layer is 4d^2+4d + 2*d*4d+5d + 4d = 3,152,384, a
    decoder layer adds cross-attention + LN (4,204,032); embeddings V*d, tied output bias V."""
    layer, dec_layer, d, v = 3_152_384, 4_204_032, 512, 1072
    with torch.device("meta"):
        model = PROSE(max_dim=3, vocab_size=v, pad_id=2, **PAPER)
    counts = model.parameter_counts()
    expected = {
        "embedder": 4 * d + d + d * d + d,                                    # 265,216
        "data_encoder": 2 * d + 2 * layer,                                    # 6,305,792
        "symbol_encoder": v * d + 2 * d + 4 * layer,                          # 13,159,424
        "fusion": 2 * d + 2 * d + 8 * layer,                                  # 25,221,120
        "data_decoder": 2 * d + 2 * d + 8 * layer + 3 * d + 3,                # 25,222,659
        "symbol_decoder": v * d + 2 * d + 8 * dec_layer + v,                  # 34,183,216
    }
    assert {k: counts[k] for k in expected} == expected
    assert counts["total"] == sum(expected.values()) == 104_357_427  # "≈104.4 M"
    with torch.device("meta"):
        multi_d = PROSE(max_dim=5, vocab_size=1074, pad_id=2, **PAPER)
    assert multi_d.parameter_counts()["total"] == 104_361_527        # "104.36 M at D = 5"


def test_paper_parameter_count_with_our_vocabulary():
    """Our deduplicated vocabulary has 4 words fewer (1068): 2 x 4 x 512 + 4 fewer."""
    with torch.device("meta"):
        model = PROSE(max_dim=3, **PAPER)
    assert model.vocab_size == len(VOCAB) == 1068
    assert model.parameter_counts()["total"] == 104_357_427 - 2 * 4 * 512 - 4 == 104_353_327


def test_small_parameter_count():
    """The reduced shape (d 128, 2 layers per stack): "2.4 M" -> 2,410,163 at V = 1072."""
    assert PROSE(max_dim=3, vocab_size=1072, **SMALL).parameter_counts()["total"] == 2_410_163
    assert PROSE(max_dim=3, **SMALL).parameter_counts()["total"] == 2_409_135


def test_hydra_configs_build_with_vocabulary_defaults():
    """conf/model/prose*.yaml: null vocabulary entries fall back to Vocabulary(max_dim)."""
    from opnet.training.module import build_model

    cfg = OmegaConf.load(CONF / "prose.yaml")
    assert OmegaConf.to_container(cfg)["_target_"] == "opnet.models.prose.PROSE"
    small = OmegaConf.merge(cfg, OmegaConf.load(CONF / "prose_small.yaml"))
    small.pop("defaults")
    model = build_model(OmegaConf.to_container(small))
    assert isinstance(model, PROSE)
    assert (model.vocab_size, model.pad_id, model.bos_id, model.eos_id) == (1068, 2, 0, 1)
    assert model.parameter_counts()["total"] == 2_409_135


# ---------------------------------------------------------------- embeddings
def test_sinusoidal_positions_follow_the_formula():
    """PE[pos, j] = sin / cos(pos / 10000^(2 (j//2) / d)) for even / odd j."""
    table = sinusoidal_table(50, 16).double()
    pos, j = 37, 5
    angle = torch.tensor(pos / 10000 ** (2 * (j // 2) / 16), dtype=torch.float64)
    assert torch.isclose(table[pos, j], torch.cos(angle), atol=1e-6)
    assert torch.isclose(table[pos, j - 1], torch.sin(angle), atol=1e-6)
    assert torch.equal(table[0, 0::2], torch.zeros(8, dtype=torch.float64))


def test_embeddings_init_and_tied_output():
    """Token embeddings ~ N(0, d^-0.5) with a zero PAD row; the decoder's output weight is
    its embedding (one parameter), the bias its own."""
    model = PROSE(max_dim=3, dim=256, heads=4, ffn=64, data_encoder_layers=1,
                  symbol_encoder_layers=1, fusion_layers=1, data_decoder_layers=1,
                  symbol_decoder_layers=1)
    for emb in (model.symbol_encoder.embedding, model.symbol_decoder.embedding):
        assert torch.count_nonzero(emb.weight[VOCAB.pad_id]) == 0
        assert abs(emb.weight.std().item() - 256 ** -0.5) < 0.05 * 256 ** -0.5
    dec = model.symbol_decoder
    assert dec.output.weight is dec.embedding.weight
    assert dec.output.bias is not None and dec.output.bias.shape == (len(VOCAB),)
    names = [n for n, _ in model.named_parameters()]
    assert "symbol_decoder.output.weight" not in names  # counted once
    assert not any("positions" in n for n in names)     # fixed positions are buffers


# ---------------------------------------------------------------- masks
def test_extra_padding_leaves_both_decoders_unchanged():
    """§8.7: appending PAD symbol tokens, padded data tokens (garbage values, mask False) and
    padded target tokens changes neither the solution nor the real positions' logits."""
    model, b = tiny(), batch()
    u, logits = model(**b)
    g = torch.Generator().manual_seed(1)
    pad_t = torch.rand(3, 4, generator=g)
    pad_u = 100 * torch.randn(3, 4, 3, generator=g)
    data_mask = torch.arange(14)[None].expand(3, -1) < 10
    symbols = torch.cat([b["symbols"], torch.full((3, 5), VOCAB.pad_id)], dim=1)
    target = torch.cat([b["target_tokens"], torch.full((3, 6), VOCAB.pad_id)], dim=1)
    u2, logits2 = model(torch.cat([b["t_in"], pad_t], 1), torch.cat([b["u_in"], pad_u], 1),
                        data_mask, symbols, None, b["t_out"], target)
    torch.testing.assert_close(u2, u, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits2[:, :9], logits, atol=1e-5, rtol=1e-5)


def test_ragged_padding_per_sample_equals_unbatched():
    """Each sample of a padded batch gives what it gives alone (split and unsplit fusion)."""
    for split in (True, False):
        model = tiny(split_fused=split)
        lens_sym, lens_in = [8, 3, 5], [10, 6, 9]
        b = batch()
        data_mask = torch.arange(10)[None] < torch.tensor(lens_in)[:, None]
        symbols = b["symbols"].clone()
        for i, n in enumerate(lens_sym):
            symbols[i, n:] = VOCAB.pad_id
        u, logits = model(b["t_in"], b["u_in"], data_mask, symbols, None, b["t_out"],
                          b["target_tokens"])
        for i in range(3):
            ui, li = model(b["t_in"][i:i + 1, :lens_in[i]], b["u_in"][i:i + 1, :lens_in[i]],
                           None, symbols[i:i + 1, :lens_sym[i]], None, b["t_out"][i:i + 1],
                           b["target_tokens"][i:i + 1])
            torch.testing.assert_close(u[i:i + 1], ui, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(logits[i:i + 1], li, atol=1e-5, rtol=1e-5)


def test_unpadded_execution_equals_padded_execution():
    """unpad=True (padding dropped from the position-wise work) and unpad=False (padded
    tensors zeroed after every layer, the reference's way) give the same outputs."""
    b = batch()
    data_mask = torch.arange(10)[None] < torch.tensor([10, 6, 9])[:, None]
    b["symbols"][1, 4:] = VOCAB.pad_id
    b["target_tokens"][2, 5:] = VOCAB.pad_id
    for norm_first in (False, True):
        u, logits = tiny(norm_first=norm_first)(data_mask=data_mask, **b)
        u2, logits2 = tiny(norm_first=norm_first, unpad=False)(data_mask=data_mask, **b)
        torch.testing.assert_close(u, u2, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logits, logits2, atol=1e-5, rtol=1e-5)


def test_symbols_beyond_the_data_length_are_attended():
    """The reference's original bug built the fusion's symbol mask from the data lengths,
    masking real symbol features at positions >= N_in. Here the fused data half depends on
    the symbol feature at position 7 > N_in = 4, and not on padded symbol positions."""
    model = tiny()
    g = torch.Generator().manual_seed(0)
    data, sym = torch.randn(2, 4, 32, generator=g), torch.randn(2, 12, 32, generator=g)
    sym_mask = torch.ones(2, 12, dtype=torch.bool)
    sym_mask[:, 10:] = False
    fused = model.fusion(data, sym, None, sym_mask)
    changed = sym.clone()
    changed[:, 7] = torch.randn(2, 32, generator=g)  # (a constant shift would be normalised)
    assert (model.fusion(data, changed, None, sym_mask)[:, :4] - fused[:, :4]).abs().amax() > 1e-3
    changed = sym.clone()
    changed[:, 11] = 100 * torch.randn(2, 32, generator=g)
    torch.testing.assert_close(model.fusion(data, changed, None, sym_mask), fused)


# ---------------------------------------------------------------- causality / queries
def test_symbol_decoder_is_causal():
    """Changing target token k changes the logits at positions >= k only."""
    model, b = tiny(), batch()
    _, logits = model(**b)
    b["target_tokens"][:, 5] = (b["target_tokens"][:, 5] + 1 - 4) % (len(VOCAB) - 4) + 4
    _, logits2 = model(**b)
    torch.testing.assert_close(logits2[:, :5], logits[:, :5], atol=1e-6, rtol=0)
    assert (logits2[:, 5:] - logits[:, 5:]).abs().amax() > 1e-4


def test_data_decoder_queries_are_independent():
    """Mesh-free: u(t) does not depend on the other query times (subset, order, count)."""
    model, b = tiny(), batch()
    enc = model.encode(b["t_in"], b["u_in"], symbols=b["symbols"])
    t = b["t_out"]
    full = model.decode_data(enc, t)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.decode_data(enc, t[:, perm]), full[:, perm],
                               atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(model.decode_data(enc, t[:, 2:3]), full[:, 2:3],
                               atol=1e-6, rtol=1e-6)
    shared = model.decode_data(enc, t[0])  # [N_out] times shared by the batch
    torch.testing.assert_close(shared[0], full[0], atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- modes
def test_data_only_baseline_has_no_symbol_path():
    """symbol_input=False, symbol_output=False (--no_text): embedder, data encoder and
    decoder only; the decoder attends to the data encoder; no logits."""
    model, b = tiny(symbol_input=False, symbol_output=False), batch()
    assert model.symbol_encoder is None and model.fusion is None
    assert model.symbol_decoder is None
    assert n_params(model) == (n_params(model.embedder) + n_params(model.data_encoder)
                               + n_params(model.data_decoder))
    u, logits = model(b["t_in"], b["u_in"], t_out=b["t_out"])
    assert u.shape == (3, 7, 3) and logits is None
    with pytest.raises(ValueError, match="no symbol decoder"):
        model(b["t_in"], b["u_in"], t_out=b["t_out"], target_tokens=b["target_tokens"])


def test_two_to_one_mode_has_fusion_but_no_symbol_decoder():
    """symbol_output=False (--data_only): symbols are fused, only the solution comes out."""
    model, b = tiny(symbol_output=False), batch()
    assert model.fusion is not None and model.symbol_decoder is None
    u, logits = model(b["t_in"], b["u_in"], symbols=b["symbols"], t_out=b["t_out"])
    assert u.shape == (3, 7, 3) and logits is None
    b2 = dict(b, symbols=b["symbols"].flip(1))
    u2, _ = model(b2["t_in"], b2["u_in"], symbols=b2["symbols"], t_out=b2["t_out"])
    assert (u2 - u).abs().amax() > 1e-4  # the skeleton matters
    with pytest.raises(ValueError, match="symbol_input"):
        PROSE(symbol_input=False, symbol_output=True)


def test_fewer_components_are_zero_padded():
    """A 2-component system: u_in [B, N, 2] equals u_in with a zero third component."""
    model, b = tiny(), batch()
    u2 = b["u_in"][..., :2]
    out_a, _ = model(b["t_in"], u2, symbols=b["symbols"], t_out=b["t_out"])
    out_b, _ = model(b["t_in"], torch.cat([u2, torch.zeros_like(u2[..., :1])], -1),
                     symbols=b["symbols"], t_out=b["t_out"])
    torch.testing.assert_close(out_a, out_b)
    with pytest.raises(ValueError, match="max_dim=3"):
        model(b["t_in"], torch.zeros(3, 10, 4), symbols=b["symbols"], t_out=b["t_out"])


def test_pre_ln_option_runs_and_respects_padding():
    model, b = tiny(norm_first=True), batch()
    assert model.fusion.stack.norm_out is not None
    u, logits = model(**b)
    assert torch.isfinite(u).all() and torch.isfinite(logits).all()
    symbols = torch.cat([b["symbols"], torch.full((3, 3), VOCAB.pad_id)], dim=1)
    u2, logits2 = model(**dict(b, symbols=symbols))
    torch.testing.assert_close(u2, u, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits2, logits, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_is_close_to_float32():
    """bf16 has an 8-bit mantissa: outputs agree to a few percent of their scale."""
    model, b = tiny(), batch()
    u, logits = model(**b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u16, logits16 = model(**b)
    assert u16.dtype == torch.bfloat16
    assert (u16.float() - u).abs().amax() < 0.05 * u.abs().amax()
    assert (logits16.float() - logits).abs().amax() < 0.05 * logits.abs().amax()


# ---------------------------------------------------------------- decoding
def test_kv_cache_greedy_equals_full_recomputation():
    model, b = tiny(), batch()
    args = (b["t_in"], b["u_in"], None, b["symbols"])
    cached = model.generate(*args, max_len=12, return_logits=True)
    full = model.generate(*args, max_len=12, use_cache=False, return_logits=True)
    assert cached.tokens.shape == (3, 12)
    assert torch.equal(cached.tokens, full.tokens)
    torch.testing.assert_close(cached.logits, full.logits, atol=1e-5, rtol=1e-5)


def test_teacher_forced_logits_equal_incremental_ones():
    """Feeding [BOS] + the greedy tokens back gives the per-step logits, argmax = next token."""
    model, b = tiny(), batch()
    gen = model.generate(b["t_in"], b["u_in"], None, b["symbols"], max_len=10,
                         return_logits=True)
    dec_in = torch.cat([torch.full((3, 1), VOCAB.bos_id), gen.tokens[:, :-1]], dim=1)
    _, logits = model(b["t_in"], b["u_in"], symbols=b["symbols"], target_tokens=dec_in,
                      target_mask=torch.ones_like(dec_in, dtype=torch.bool))
    torch.testing.assert_close(logits, gen.logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(logits.argmax(-1), gen.tokens)


def test_greedy_stops_per_sequence_at_eos():
    """A sequence that emits EOS is padded afterwards; lengths exclude EOS; decoding stops
    once all are finished (here: EOS = a token every sequence emits at step <= 3)."""
    model, b = tiny(), batch()
    first = model.generate(b["t_in"], b["u_in"], None, b["symbols"], max_len=8)
    eos = int(first.tokens[0, 2])
    model.eos_id = eos
    for use_cache in (True, False):
        out = model.generate(b["t_in"], b["u_in"], None, b["symbols"], max_len=8,
                             use_cache=use_cache)
        assert out.finished[0] and out.lengths[0] <= 2
        for i in range(3):
            n = int(out.lengths[i])
            if out.finished[i]:
                assert out.tokens[i, n] == eos
                assert (out.tokens[i, n + 1:] == VOCAB.pad_id).all()
                assert (out.tokens[i, :n] != eos).all()
            else:
                assert n == out.tokens.size(1) == 8
        if use_cache:
            reference = out
        else:
            assert torch.equal(out.tokens, reference.tokens)


# ---------------------------------------------------------------- training
def test_gradients_reach_every_parameter():
    """Full mode, loss = 6 x relative squared L2 + cross-entropy: every parameter gets a
    nonzero gradient (the tied output/embedding included)."""
    model, b = tiny(), batch()
    model.train()
    u, logits = model(**b)
    y = torch.randn_like(u)
    target = torch.cat([b["target_tokens"][:, 1:], torch.full((3, 1), VOCAB.eos_id)], dim=1)
    loss = 6 * (((u - y) ** 2).sum((1, 2)) / (y ** 2).sum((1, 2))).mean() + \
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.count_nonzero(p.grad)]
    assert not missing, missing


def test_sequences_past_the_position_table_are_named():
    """Symbol input or decoding longer than max_positions: a ValueError naming the limit,
    not an index error from the sinusoidal table."""
    model = tiny(max_positions=6)
    b = batch(n_sym=8)
    with pytest.raises(ValueError, match="symbol-encoder position 7 exceeds max_positions=6"):
        model(b["t_in"], b["u_in"], symbols=b["symbols"], t_out=b["t_out"],
              target_tokens=b["target_tokens"][:, :4])
    with pytest.raises(ValueError, match="decoder position 8 exceeds max_positions=6"):
        model(b["t_in"], b["u_in"], symbols=b["symbols"][:, :4], t_out=b["t_out"],
              target_tokens=b["target_tokens"])
