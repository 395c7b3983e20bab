"""PROSE training end to end: §5 metrics against numpy and the noise floor, the loss, the
inverse-sqrt schedule, Hydra config -> ProseDataModule + ProseModule -> Lightning ->
checkpoint -> ProseSurrogate (round trip, bad input), and every PROSE experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import compose_train

from opnet import load_operator
from opnet.data import h5
from opnet.data.prose import ProseDataModule, read_prose_split
from opnet.surrogate import ProsePrediction, ProseSurrogate
from opnet.symbolic import SymbolicError, encode, parse_prefix, skeleton
from opnet.training.job import ConfigError, train
from opnet.training.prose_metrics import (
    dim_mask_of,
    expression_errors,
    expression_points,
    relative_errors,
    solve_expressions,
)
from opnet.training.prose_module import (
    ProseModule,
    data_loss,
    inverse_sqrt_lr,
    symbol_loss,
)

QUIET = ["~callbacks.progress_bar", "~callbacks.model_summary"]
TINY = ["model.dim=32", "model.heads=4", "model.ffn=64", "model.data_encoder_layers=1",
        "model.symbol_encoder_layers=1", "model.fusion_layers=1",
        "model.data_decoder_layers=1", "model.symbol_decoder_layers=1"]
LORENZ = ("add mul 10.1 u_1 mul -10.1 u_0 | sub sub mul 29.2 u_0 mul u_0 u_2 u_1 | "
          "add mul u_0 u_1 mul -2.72 u_2")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread avoids OpenMP stalls on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ode3d(tmp_path_factory):
    """The 12 3-D systems: 240 train (5 equations x 4 ICs per system), 48 val, 48 test."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("prose_train") / "ode3d"
    generate("ode_systems", out=out, n_train=240, n_val=48, n_test=48, ics_per_equation=4,
             eval_ics_per_equation=2, chunk_size=120, progress=False)
    return out


def _cfg(data_dir, out, *overrides, experiment="prose_ode_cpu"):
    return compose_train(f"experiment={experiment}", f"data.data_dir={data_dir}",
                         "data.generate=null", *QUIET, f"paths.output_dir={out}", *overrides)


STEPS = 60


@pytest.fixture(scope="module")
def trained(ode3d, tmp_path_factory):
    """The CPU experiment's recipe with a tiny network (~60 k parameters) for 60 steps of 16
    on 240 trajectories (lr 2e-3, 10 warm-up steps); decoding and equation solving on 12
    test samples. Shared by the tests below."""
    out = tmp_path_factory.mktemp("prose_run")
    metrics = train(_cfg(ode3d, out, *TINY, f"trainer.max_steps={STEPS}",
                         "data.batch_size=16", "data.steps_per_epoch=30",
                         "data.eval_batch_size=24", "module.lr=2e-3",
                         "module.warmup_steps=10", "module.val_decode_samples=12",
                         "module.test_decode_samples=12", "module.max_decode_len=60",
                         "module.text_ode_solve=true"))
    return out, metrics


def _module(out):
    return ProseModule.load_from_checkpoint(out / "checkpoints" / "last.ckpt",
                                            map_location="cpu").eval()


# ------------------------------------------------------------------------------ metrics
def test_relative_errors_match_numpy_per_window():
    """√(Σ(û − u)² / (Σu² + 1e-6)) over the window's times x the system's components; the
    PROSE query grid puts 64 times in [2, 4] and 64 in [4, 6]."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 6, 192)[64:]
    pred, target = rng.standard_normal((2, 5, 128, 4))
    dims = np.array([2, 4, 3, 1, 4])
    got = relative_errors(pred, target, dim_mask_of(dims, 4), t)
    assert ((t >= 2) & (t <= 4)).sum() == 64 and ((t >= 4) & (t <= 6)).sum() == 64
    for name, sel in (("2_4", t <= 4), ("4_6", t > 4), ("2_6", t > 0)):
        for i, d in enumerate(dims):
            err, ref = pred[i, sel, :d] - target[i, sel, :d], target[i, sel, :d]
            want = np.sqrt(np.sum(err**2) / (np.sum(ref**2) + 1e-6))
            assert float(got[name][i]) == pytest.approx(want, rel=1e-12)


def test_expression_error_matches_numpy_and_validity_is_the_reference_criterion():
    """Lorenz with σ off by 0.1 in u_0' only: error √(Σ(0.1 u_1)² / Σ|f|²) at the 50
    seeded points in [−5, 5]³; invalid: wrong component count, division by zero, a
    placeholder, a variable beyond d, an undecodable output."""
    true = parse_prefix(LORENZ)
    off = parse_prefix(LORENZ.replace("mul 10.1 u_1", "mul 10.2 u_1"))
    x, y, z = expression_points(3).T
    assert expression_points(3).shape == (50, 3) and np.abs(expression_points(3)).max() <= 5
    f = np.stack([10.1 * y - 10.1 * x, 29.2 * x - x * z - y, x * y - 2.72 * z])
    want = np.sqrt(np.sum((0.1 * y) ** 2) / (np.sum(f**2) + 1e-6))
    bad = ["add u_0 u_1 | u_2", "div u_0 sub u_1 u_1 | u_0 | u_1",
           "mul <PLACEHOLDER> u_0 | u_1 | u_2", "u_3 | u_1 | u_2"]
    preds = [true, off, *(parse_prefix(b) for b in bad), None]
    valid, err = expression_errors(preds, [true] * len(preds), [3] * len(preds))
    assert valid.tolist() == [True, True, False, False, False, False, False]
    assert err[0] == 0 and err[1] == pytest.approx(want, rel=1e-12)
    assert np.isnan(err[2:]).all()
    again = expression_errors([off], [true], [3])[1]
    assert again[0] == err[1]  # seeded points


@pytest.fixture(scope="module")
def clean_and_noisy(ode3d):
    dm = ProseDataModule(str(ode3d), symbols="none")
    dm.setup("fit")
    arrays, _ = read_prose_split(h5.split_path(ode3d, "val"))
    return arrays, dm.splits["val"].u, dm.times


def test_perfect_predictor_scores_the_noise_floor(clean_and_noisy):
    """The clean trajectory against its noisy target: ≈2.1 % on [2, 6] (paper 2.06 %; our
    data 2.08–2.10 % on 1,200+ trajectories), ≈2.2 % on [2, 4]; 48 trajectories here, so
    wider bands (one trajectory with little energy on [2, 4] scores 14 % there)."""
    clean, noisy, times = clean_and_noisy
    e = relative_errors(clean["u"][:, 64:], noisy[:, 64:], dim_mask_of(clean["dims"], 3),
                        times["t_out"])
    assert 0.019 < float(e["2_6"].mean()) < 0.023
    assert 0.019 < float(e["2_4"].mean()) < 0.030


@pytest.mark.slow
def test_noise_floor_on_1200_trajectories(tmp_path):
    """1,200 test trajectories (100 equations x 4 per system... round robin): 2.08 % on
    [2, 6] measured (the helper's 2.09–2.10 % on larger sets; paper 2.06 %)."""
    from data_gen import generate

    generate("ode_systems", out=tmp_path, n_train=12, n_val=12, n_test=1200,
             chunk_size=600, progress=False)
    dm = ProseDataModule(str(tmp_path), symbols="none")
    dm.setup("test")
    clean, _ = read_prose_split(h5.split_path(tmp_path, "test"))
    e = relative_errors(clean["u"][:, 64:], dm.splits["test"].u[:, 64:],
                        dim_mask_of(clean["dims"], 3), dm.times["t_out"])
    assert 0.0203 < float(e["2_6"].mean()) < 0.0213
    assert 0.0215 < float(e["2_4"].mean()) < 0.0230


def test_solving_the_true_equations_reproduces_the_trajectories(ode3d):
    """text_ode_solve machinery: the stored expressions integrated from the clean u(0)
    (rtol 1e-4) match the stored trajectories on [2, 6] to < 5e-3 (chaotic growth of the
    solver error); an expression of the wrong size or None is not solved."""
    arrays, times = read_prose_split(h5.split_path(ode3d, "test"))
    pick = np.arange(0, 48, 4)  # one trajectory per system
    exprs = [parse_prefix(arrays["expression"][i]) for i in pick]
    exprs[-1] = None
    exprs[-2] = parse_prefix("u_1 | u_0")
    traj, solved = solve_expressions(exprs, arrays["u"][pick, 0], arrays["dims"][pick],
                                     times["t_in"][0], times["t_out"])
    assert solved.tolist() == [True] * 10 + [False, False]
    e = relative_errors(traj[:10], arrays["u"][pick[:10], 64:],
                        dim_mask_of(arrays["dims"][pick[:10]], 3), times["t_out"])["2_6"]
    assert float(e.max()) < 5e-3


# --------------------------------------------------------------------------------- loss
def test_losses_equal_a_direct_computation():
    """Data: mean over the batch of Σ(ŷ − y)² / (Σy² + 1e-5) over times and valid
    components (padded components ignored); symbols: mean cross-entropy over the non-pad
    tokens of the batch."""
    g = torch.Generator().manual_seed(0)
    pred, y = torch.randn(2, 3, 7, 4, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    want = np.mean([float(((pred[i, :, :d] - y[i, :, :d]) ** 2).sum()
                          / ((y[i, :, :d] ** 2).sum() + 1e-5)) for i, d in enumerate([2, 4, 3])])
    assert float(data_loss(pred, y, mask)) == pytest.approx(want, rel=1e-6)
    pred2 = pred.clone()
    pred2[0, :, 2:] += 100  # padded components do not count
    assert float(data_loss(pred2, y, mask)) == pytest.approx(want, rel=1e-6)
    logits = torch.randn(2, 5, 11, generator=g)
    target = torch.tensor([[4, 5, 6, 1, 2], [7, 1, 2, 2, 2]])
    logp = torch.log_softmax(logits, -1)
    terms = [-logp[i, j, target[i, j]] for i in range(2) for j in range(5) if target[i, j] != 2]
    assert float(symbol_loss(logits, target, pad_id=2)) == pytest.approx(
        float(sum(terms) / len(terms)), rel=1e-6)


def test_learning_rate_schedule_is_the_reference_inverse_sqrt():
    """1e-7 at step 0, 1e-4 at the end of warm-up, 5e-5 at 4x the warm-up (§8.6), linear
    in between; the module's scheduler steps along it."""
    assert inverse_sqrt_lr(0, 1e-4, 20000, 1e-7) == pytest.approx(1e-7)
    assert inverse_sqrt_lr(10000, 1e-4, 20000, 1e-7) == pytest.approx((1e-7 + 1e-4) / 2)
    assert inverse_sqrt_lr(20000, 1e-4, 20000, 1e-7) == pytest.approx(1e-4)
    assert inverse_sqrt_lr(80000, 1e-4, 20000, 1e-7) == pytest.approx(5e-5)
    module = ProseModule({"_target_": "torch.nn.Linear", "in_features": 1,
                          "out_features": 1}, _io(), warmup_steps=10)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 1e-4
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    seen = []
    for _ in range(41):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(1e-7) and seen[10] == pytest.approx(1e-4)
    assert seen[40] == pytest.approx(5e-5) and max(seen) == pytest.approx(1e-4)


def _io():
    from opnet.symbolic import Vocabulary

    v = Vocabulary(3)
    return {"kind": "prose", "symbols": "unknown", "max_dim": 3,
            "vocab": {"size": len(v), "max_dim": 3, "pad_id": v.pad_id, "bos_id": v.bos_id,
                      "eos_id": v.eos_id, "placeholder_id": v.placeholder_id},
            "t_in": [0.0], "t_out": [1.0], "dataset": {"name": "x", "path": "x"}}


# ---------------------------------------------------------------------------- training
def test_run_writes_checkpoints_and_all_test_metrics(trained):
    out, metrics = trained
    assert (out / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == STEPS
    for key in ("rel_l2", "rel_l2_2_4", "rel_l2_4_6", "rel_l2_2_6", "valid_pct", "expr_error",
                "data_loss", "symbol_loss", "loss", "text_ode_solved_pct",
                "text_ode_rel_l2_2_6"):
        assert f"test/{key}" in metrics, key
    assert metrics["test/rel_l2"] == metrics["test/rel_l2_2_6"]
    assert 0 <= metrics["test/valid_pct"] <= 100
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    lr = ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(inverse_sqrt_lr(STEPS, 2e-3, 10, 1e-7))


def test_training_lowers_the_loss(trained, ode3d):
    """60 steps: the test losses of the trained network are well below those of a fresh one
    (measured: total 8.8 vs 15.2, data 0.86 vs 1.33, cross-entropy 3.7 vs 7.2 ≈ ln 1068 + 0.2)."""
    out, metrics = trained
    module = _module(out)
    torch.manual_seed(0)
    fresh = ProseModule(module.hparams.model, module.hparams.io).eval()
    dm = ProseDataModule(str(ode3d), eval_batch_size=48)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        before, parts, _ = fresh.losses(batch)
    assert metrics["test/loss"] < 0.7 * float(before), (metrics, parts)
    assert metrics["test/data_loss"] < 0.8 * float(parts["data_loss"])
    assert metrics["test/symbol_loss"] < 0.65 * float(parts["symbol_loss"])


def test_checkpoint_is_plain_and_describes_the_operator(trained):
    out, _ = trained
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    block = ckpt["operator"]
    assert block["module"] == "ProseModule" and block["symbols"] == "unknown"
    assert block["model"]["_target_"] == "opnet.models.prose.PROSE"
    assert block["model"]["vocab_size"] == 1068 and block["model"]["pad_id"] == 2
    assert block["max_dim"] == 3 and len(block["t_in"]) == 64 and len(block["t_out"]) == 128
    assert block["vocab"]["max_dim"] == 3 and block["io"]["noise_level"] == 0.02
    assert type(ckpt["hyper_parameters"]["model"]) is dict


def test_surrogate_equals_the_module(trained, ode3d):
    """load_operator -> ProseSurrogate: the same values as the module on the same (noisy)
    inputs and symbol inputs, for a batch and for one trajectory; the decoded equations
    are those of the module's greedy decoding."""
    out, _ = trained
    module = _module(out)
    op = load_operator(out / "checkpoints" / "last.ckpt")
    assert isinstance(op, ProseSurrogate)
    dm = ProseDataModule(str(ode3d), eval_batch_size=6)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        values, _ = module(batch)
        gen = module.model.generate(batch["t_in"], batch["u_in"], None, batch["symbols"],
                                    batch["symbol_mask"], max_len=module.hparams.max_decode_len)
    skels = [dm.vocab.strip(dm.vocab.decode(r)) for r in batch["symbols"]]
    res = op.predict(op.t_in, batch["u_in"].numpy(), skels)
    assert isinstance(res, ProsePrediction) and res.values.shape == (6, 128, 3)
    np.testing.assert_allclose(res.values, values.numpy(), rtol=1e-5, atol=1e-6)
    for i in range(6):
        assert res.tokens[i] == dm.vocab.strip(dm.vocab.decode(gen.tokens[i]))
        assert res.valid[i] == (res.error[i] is None)
    one = op.predict(None, batch["u_in"][2].numpy(), " ".join(skels[2]))
    np.testing.assert_allclose(one.values, values[2].numpy(), rtol=1e-4, atol=1e-5)
    assert one.tokens == res.tokens[2]
    later = op.predict(None, batch["u_in"][:2].numpy(), skels[:2], t_out=[2.5, 7.0])
    assert later.values.shape == (2, 2, 3)


def test_surrogate_takes_skeletons_as_text_floats_or_tokens(trained, ode3d):
    """A full expression (floats), its skeleton text and its token list are the same symbol
    input for an unknown-mode operator (floats become placeholders)."""
    op = load_operator(trained[0] / "checkpoints" / "last.ckpt")
    arrays, _ = read_prose_split(h5.split_path(ode3d, "test"))
    u = arrays["u"][4:6, :64]  # two trajectories of one equation
    expr = parse_prefix(arrays["expression"][4])
    a = op.predict(None, u, arrays["expression"][4])
    b = op.predict(None, u, skeleton(expr).to_prefix())
    c = op.predict(None, u, encode(skeleton(expr)))
    d = op.predict(None, u, [encode(expr), skeleton(expr).to_prefix()])
    for other in (b, c, d):
        np.testing.assert_array_equal(a.values, other.values)
        assert a.prefix == other.prefix


def test_bad_inputs_are_named(trained):
    op = load_operator(trained[0] / "checkpoints" / "last.ckpt")
    u = np.zeros((64, 3), np.float32)
    sk = skeleton(parse_prefix(LORENZ)).to_prefix()
    with pytest.raises(ValueError, match=r"u_in has shape \(50, 3\); expected \[64, d\] or "
                                         r"\[B, 64, d\] with d <= 3"):
        op.predict(None, np.zeros((50, 3)), sk)
    with pytest.raises(ValueError, match=r"u_in has shape \(64, 4\).*d <= 3"):
        op.predict(None, np.zeros((64, 4)), sk)
    with pytest.raises(ValueError, match=r"t_in has shape \(3, 64\) but u_in holds 2"):
        op.predict(np.zeros((3, 64)), np.zeros((2, 64, 3)), sk)
    with pytest.raises(ValueError, match="needs a skeleton"):
        op.predict(None, u)
    with pytest.raises(SymbolicError, match=r"token 3: unknown token 'u_7' \(variables run "
                                            r"u_0..u_2"):
        op.predict(None, u, "add u_0 mul u_7 u_1 | u_0 | u_1")
    with pytest.raises(SymbolicError, match=r"token 1: unknown token 'foo'"):
        op.predict(None, u, ["add", "foo", "u_1", "|", "u_0", "|", "u_1"])
    with pytest.raises(SymbolicError, match=r"missing operand 2 of 2 for 'add'"):
        op.predict(None, u, "add u_0 | u_1 | u_2")
    with pytest.raises(ValueError, match="skeleton has 2 components but the trajectory has 3"):
        op.predict(None, u, "u_1 | u_0")
    with pytest.raises(ValueError, match=r"skeleton 1: .*unknown token"):
        op.predict(None, np.zeros((2, 64, 3)), [sk, "u_0 | u_1 | bar"])


def test_one_undecodable_output_does_not_spoil_the_batch(trained, monkeypatch):
    """The decoder's tokens for trajectory 1 are not an expression: its entry is marked
    invalid with the reason, the others are returned."""
    from opnet.models.prose import Generated

    op = load_operator(trained[0] / "checkpoints" / "last.ckpt")
    v = op.vocab
    good = v.encode(encode(parse_prefix(LORENZ))) + [v.eos_id]
    broken = v.encode(["add", "u_0", "|"]) + [v.eos_id] * (len(good) - 3)
    nan = v.encode(encode(parse_prefix("div u_0 sub u_1 u_1 | u_1 | u_2"))) + [v.eos_id]
    rows = [good, broken, nan + [v.pad_id] * (len(good) - len(nan))]
    tokens = torch.tensor(rows)
    monkeypatch.setattr(op.model, "greedy", lambda enc, max_len=150: Generated(
        tokens, torch.tensor([len(good) - 1, 3, len(nan) - 1]), torch.ones(3, dtype=bool)))
    res = op.predict(None, np.zeros((3, 64, 3)), skeleton(parse_prefix(LORENZ)).to_prefix())
    assert res.valid.tolist() == [True, False, False]
    assert parse_prefix(res.prefix[0]) == parse_prefix(LORENZ)
    assert res.infix[0].startswith("u_0' = 10.1*u_1 - 10.1*u_0")
    assert res.prefix[1] is None and "missing operand 2 of 2 for 'add'" in res.error[1]
    assert res.prefix[2] is not None and "division by zero" in res.error[2]
    assert res.values.shape == (3, 128, 3)


def test_evaluate_reproduces_the_test_metrics_and_the_ood_set(trained, tmp_path):
    """opnet.evaluate on the test split (the surrogate, the same noise and symbol inputs)
    gives the run's test errors; --set gamma=0.15 regenerates the paper's OOD test."""
    from opnet.evaluate import evaluate, evaluate_generated

    out, metrics = trained
    best = json.loads((out / "metrics.json").read_text())["best_checkpoint"]
    data = load_operator(best).io["dataset"]["path"]
    row = evaluate(best, data)
    assert row["samples"] == 48
    for key in ("rel_l2_2_4", "rel_l2_4_6", "rel_l2_2_6"):
        assert row[key] == pytest.approx(metrics[f"test/{key}"], rel=1e-4)
    assert 0 <= row["valid_pct"] <= 100
    ood = evaluate_generated(best, {"gamma": 0.15}, n=12, data_root=tmp_path)
    assert ood["samples"] == 12 and np.isfinite(ood["rel_l2_2_6"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ode3d_eval_gamma-0.15_seed1"]


def test_data_only_model_trains_and_predicts_values_only(ode3d, tmp_path):
    metrics = train(_cfg(ode3d, tmp_path, *TINY, "trainer.max_steps=3", "data.batch_size=8",
                         "data.steps_per_epoch=3",
                         "data.eval_batch_size=48", experiment="prose_ode_cpu_data_only"))
    assert "test/valid_pct" not in metrics and np.isfinite(metrics["test/rel_l2_2_4"])
    op = load_operator(tmp_path / "checkpoints" / "last.ckpt")
    res = op.predict(None, np.zeros((64, 3)))
    assert res.values.shape == (128, 3) and res.prefix is None and res.valid is None
    with pytest.raises(ValueError, match="data-only"):
        op.predict(None, np.zeros((64, 3)), "u_0 | u_1 | u_2")


@pytest.mark.filterwarnings("ignore:Precision bf16-mixed is not supported")
def test_bf16_with_gradient_clipping_trains(ode3d, tmp_path):
    """trainer.precision=bf16-mixed (the paper's; on the CPU here) with gradient_clip_val
    1.0: the optimizer is left unfused (Lightning cannot clip a fused one under AMP), the
    losses stay finite; forcing module.fused=true is refused with the reason."""
    common = (*TINY, "trainer.precision=bf16-mixed", "trainer.max_steps=2",
              "data.batch_size=8", "data.steps_per_epoch=2", "data.eval_batch_size=48",
              "module.test_decode_samples=2", "module.val_decode_samples=2",
              "module.max_decode_len=10")
    metrics = train(_cfg(ode3d, tmp_path / "a", *common))
    assert np.isfinite(metrics["test/loss"]) and np.isfinite(metrics["test/rel_l2"])
    with pytest.raises(ConfigError, match="cannot clip the gradients of a fused optimizer"):
        train(_cfg(ode3d, tmp_path / "b", *common, "module.fused=true"))


def test_configuration_mistakes_are_named(ode3d, tmp_path):
    with pytest.raises(ConfigError, match=r"data.symbols=none serves no symbol input.*"
                                          r"model.symbol_input=True"):
        train(_cfg(ode3d, tmp_path, *TINY, "data.symbols=none"))
    with pytest.raises(ConfigError, match=r"model.symbol_input=false \(data-only\) but "
                                          r"data.symbols=unknown"):
        train(_cfg(ode3d, tmp_path, *TINY, "model.symbol_input=false",
                   "model.symbol_output=false"))
    with pytest.raises(ConfigError, match=r"model.max_dim=5 but data .* gives 3"):
        train(_cfg(ode3d, tmp_path, *TINY, "model.max_dim=5"))
    with pytest.raises(ValueError, match="module.warmup_steps=0"):
        train(_cfg(ode3d, tmp_path, *TINY, "module.warmup_steps=0"))
    with pytest.raises(ConfigError, match="module.max_decode_len=600 exceeds"):
        train(_cfg(ode3d, tmp_path, *TINY, "module.max_decode_len=600"))


# --------------------------------------------------------------------------- experiments
PROSE_EXPERIMENTS = ["prose_ode_unknown3d", "prose_ode_cpu", "prose_ode_cpu_data_only"]


def test_every_prose_experiment_is_listed():
    from pathlib import Path

    found = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment")
                   .glob("prose*.yaml"))
    assert found == sorted(PROSE_EXPERIMENTS)


@pytest.mark.parametrize("experiment", [
    pytest.param("prose_ode_unknown3d", marks=pytest.mark.slow), "prose_ode_cpu",
    "prose_ode_cpu_data_only"])
def test_every_prose_experiment_composes_and_runs_one_batch(experiment, ode3d, tmp_path):
    """Each experiment's network, data module and recipe: one training step, one validation
    and one test batch (the paper network: 104 M parameters, on the CPU in float32, one
    device, batches of 2)."""
    overrides = [f"experiment={experiment}", "debug=fdr", "data.generate=null",
                 f"data.data_dir={ode3d}", f"paths.output_dir={tmp_path}",
                 "module.test_decode_samples=2", "module.val_decode_samples=2"]
    if experiment == "prose_ode_unknown3d":
        overrides += ["trainer=cpu", "trainer.devices=1", "trainer.strategy=auto",
                      "trainer.precision=32-true", "data.batch_size=2",
                      "data.eval_batch_size=2", "module.max_decode_len=5"]
    cfg = compose_train(*overrides)
    metrics = train(cfg)
    assert np.isfinite(metrics["test/rel_l2_2_6"]) and np.isfinite(metrics["test/loss"])
    if experiment != "prose_ode_cpu_data_only":
        assert "test/valid_pct" in metrics


def test_run_killed_mid_epoch_resumes_to_the_same_weights(ode3d, tmp_path):
    """Epochs of 4 steps, last.ckpt every 2 steps, a crash at step 3: resuming from the step-2
    checkpoint skips the 2 batches of that epoch already trained on (drawing their noise and
    corruption) and ends at the weights of the uninterrupted 6-step run."""
    common = (*TINY, "trainer.max_steps=6", "data.batch_size=8", "data.steps_per_epoch=4",
              "callbacks.step_checkpoint.every_n_train_steps=2", "test=false", "logger=none",
              "~callbacks.val_figures", "module.warmup_steps=2", "module.val_decode_samples=4")
    train(_cfg(ode3d, tmp_path / "full", *common))
    with pytest.raises(RuntimeError, match="simulated crash at step 3"):
        train(_cfg(ode3d, tmp_path / "crashed", *common,
                   "+callbacks.crash._target_=conftest.CrashAtStep", "+callbacks.crash.step=3"))
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    train(_cfg(ode3d, tmp_path / "crashed", *common, f"ckpt_path={last}"))
    full, resumed = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt",
                                weights_only=True) for run in ("full", "crashed"))
    assert resumed["global_step"] == full["global_step"] == 6
    for key, value in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
