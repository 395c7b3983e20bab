"""PROSE data module (opnet.data.prose): batch layout and masks, the four symbol modes,
2 % trajectory noise (fixed for evaluation, fresh for training), term corruption (the
frequencies and outcomes of opnet.symbolic.perturb), generation when missing, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opnet.data import h5
from opnet.data.h5 import DatasetError
from opnet.data.noise import add_trajectory_noise
from opnet.data.prose import ProseDataModule, batch_noise, read_prose_split
from opnet.symbolic import (
    CORRUPTION_SITES,
    Vocabulary,
    decode,
    encode,
    parse_prefix,
    perturb,
    skeleton,
)

MODES = ("unknown", "skeleton", "known", "none")


@pytest.fixture(scope="module")
def ode3d(tmp_path_factory):
    """The 12 3-D systems, 2 equations each (96 train = 24 x 4 ICs), 24 val, 24 test."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("prose_data") / "ode3d"
    generate("ode_systems", out=out, n_train=96, n_val=24, n_test=24, ics_per_equation=4,
             eval_ics_per_equation=2, chunk_size=48, progress=False)
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Lorenz (d = 3), the double pendulum (4) and Lorenz-96 (5): D = 5, zero-padded."""
    from data_gen import generate

    out = tmp_path_factory.mktemp("prose_mixed") / "mixed"
    generate("ode_systems", out=out, types="lorenz_3d,double_pendulum,lorenz_96_5d",
             n_train=12, n_val=6, n_test=6, ics_per_equation=2, eval_ics_per_equation=2,
             chunk_size=12, progress=False)
    return out


def _clean(folder, split):
    arrays, times = read_prose_split(h5.split_path(folder, split))
    return arrays, times


def _tokens(vocab, row):
    return vocab.strip(vocab.decode(row))


# ------------------------------------------------------------------------------ layout
def test_batches_have_the_documented_layout(mixed):
    """Shapes, dtypes, times from coords, dimension masks from params/dim, zero padding,
    targets as [BOS] target / target [EOS] of the stored expression (exact floats)."""
    dm = ProseDataModule(str(mixed), batch_size=4, eval_batch_size=6)
    dm.setup("fit")
    clean, times = _clean(mixed, "val")
    b = next(iter(dm.val_dataloader()))
    assert b["t_in"].shape == (6, 64) and b["u_in"].shape == (6, 64, 5)
    assert b["t_out"].shape == (6, 128) and b["u_out"].shape == (6, 128, 5)
    assert b["u_in"].dtype == b["t_out"].dtype == torch.float32
    np.testing.assert_allclose(b["t_in"][3].numpy(), times["t_in"], rtol=1e-7)
    np.testing.assert_allclose(b["t_out"][0].numpy(), times["t_out"], rtol=1e-7)
    dims = clean["dims"]
    assert sorted(set(dims.tolist())) == [3, 4, 5]
    assert torch.equal(b["dim"], torch.as_tensor(dims))
    assert torch.equal(b["dim_mask"], torch.arange(5)[None] < torch.as_tensor(dims)[:, None])
    assert not (b["u_in"] * ~b["dim_mask"][:, None]).any()  # padding stays exactly zero
    assert not (b["u_out"] * ~b["dim_mask"][:, None]).any()
    vocab = dm.vocab
    assert len(vocab) == 1070 and dm.io_spec()["vocab"]["size"] == 1070
    for i in range(6):
        n = int(b["target_mask"][i].sum())
        tin, tout = b["target_in"][i], b["target_out"][i]
        assert tin[0] == vocab.bos_id and tout[n - 1] == vocab.eos_id
        assert torch.equal(tin[1:n], tout[:n - 1])
        assert (tout[n:] == vocab.pad_id).all() and (tin[n:] == vocab.pad_id).all()
        assert decode(_tokens(vocab, tout)) == parse_prefix(clean["expression"][i])
        assert torch.equal(b["symbol_mask"][i], b["symbols"][i] != vocab.pad_id)
    assert b["symbols"].shape[1] == int(b["symbol_mask"].sum(1).max())  # cut to the longest


def test_training_batches_are_full_and_cover_the_split(ode3d):
    """steps_per_epoch batches of batch_size from consecutive permutations: one epoch of
    96 / 16 = 6 batches serves every sample once."""
    dm = ProseDataModule(str(ode3d), batch_size=16)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 6
    seen = torch.cat([b["index"] for b in batches]).sort().values
    assert torch.equal(seen, torch.arange(96))
    more = ProseDataModule(str(ode3d), batch_size=16, steps_per_epoch=10)
    more.setup("fit")
    assert [len(b["index"]) for b in more.train_dataloader()] == [16] * 10


@pytest.mark.parametrize("mode", MODES)
def test_symbol_inputs_by_mode(ode3d, mode):
    """unknown/skeleton: placeholders only (no float tokens); skeleton = the clean skeleton;
    known = the full expression; none: no symbol keys and no targets."""
    dm = ProseDataModule(str(ode3d), symbols=mode, eval_batch_size=24)
    dm.setup("fit")
    b = next(iter(dm.val_dataloader()))
    clean, _ = _clean(ode3d, "val")
    if mode == "none":
        assert not {"symbols", "symbol_mask", "target_in", "target_out"} & set(b)
        assert "max_target_len" not in dm.io_spec()
        return
    vocab = dm.vocab
    for i in range(24):
        expr = parse_prefix(clean["expression"][i])
        got = _tokens(vocab, b["symbols"][i])
        if mode == "known":
            assert got == encode(expr)
        elif mode == "skeleton":
            assert got == encode(skeleton(expr))
        else:
            assert not {"+", "-"} & set(got) and decode(got) == skeleton(decode(got))
    if mode == "unknown":  # some are corrupted, the rest the clean skeleton
        same = [_tokens(vocab, b["symbols"][i]) == encode(skeleton(parse_prefix(e)))
                for i, e in enumerate(clean["expression"])]
        assert 0 < sum(same) < 24


# ------------------------------------------------------------------------------- noise
def test_evaluation_noise_is_fixed_and_two_percent(mixed):
    """val/test: u + σz with σ = 0.02‖u‖/‖z‖ over the whole 192-time trajectory and the
    system's components, z from SeedSequence([noise_seed, split, i]); identical for two
    data modules; ‖noisy − clean‖ = 0.02‖clean‖."""
    dm = ProseDataModule(str(mixed), symbols="none", noise_seed=5)
    dm.setup("test")
    again = ProseDataModule(str(mixed), symbols="none", noise_seed=5)
    again.setup("test")
    clean, _ = _clean(mixed, "test")
    u = clean["u"]
    noisy = dm.splits["test"].u
    np.testing.assert_array_equal(noisy, again.splits["test"].u)
    rngs = [np.random.default_rng(np.random.SeedSequence([5, 2, i])) for i in range(6)]
    np.testing.assert_array_equal(noisy, add_trajectory_noise(u, 0.02, rngs,
                                                              dims=clean["dims"]))
    ratio = np.linalg.norm((noisy - u).reshape(6, -1), axis=1) / \
        np.linalg.norm(u.reshape(6, -1), axis=1)
    np.testing.assert_allclose(ratio, 0.02, rtol=1e-4)
    other = ProseDataModule(str(mixed), symbols="none", noise_seed=6)
    other.setup("test")
    assert not np.allclose(other.splits["test"].u, noisy)


def test_training_noise_is_fresh_each_epoch_and_reproducible(ode3d):
    """The same sample gets other noise in another epoch, the same noise from the same
    (seed, epoch); always 2 % of its norm; the stored arrays stay clean."""
    def epoch_batches(seed, epoch):
        dm = ProseDataModule(str(ode3d), batch_size=96, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.epoch = lambda: epoch
        b = next(iter(loader))
        order = b["index"].argsort()
        return (torch.cat([b["u_in"], b["u_out"]], 1)[order].numpy(), dm)

    a0, dm = epoch_batches(0, 0)
    again, _ = epoch_batches(0, 0)
    a1, _ = epoch_batches(0, 1)
    b0, _ = epoch_batches(1, 0)
    clean = dm.splits["train"].u
    np.testing.assert_array_equal(a0, again)
    assert not np.allclose(a0, a1) and not np.allclose(a0, b0)
    for noisy in (a0, a1):
        ratio = np.linalg.norm((noisy - clean).reshape(96, -1), axis=1) / \
            np.linalg.norm(clean.reshape(96, -1), axis=1)
        np.testing.assert_allclose(ratio, 0.02, rtol=1e-3)
    np.testing.assert_array_equal(clean, _clean(ode3d, "train")[0]["u"])


def test_batch_noise_is_the_trajectory_noise_formula():
    """batch_noise adds σz on the first d components, σ = level‖u‖/(‖z‖ + 1e-6)."""
    rng = np.random.default_rng(0)
    u = rng.standard_normal((3, 10, 4)).astype(np.float32)
    u[0, :, 2:] = 0
    dims = np.array([2, 4, 4])
    noisy = batch_noise(u, dims, 0.05, np.random.default_rng(1))
    z = np.random.default_rng(1).standard_normal((3, 10, 4), dtype=np.float32)
    z[0, :, 2:] = 0
    for i in range(3):
        sigma = 0.05 * np.linalg.norm(u[i].astype(np.float64)) / (np.linalg.norm(z[i]) + 1e-6)
        np.testing.assert_allclose(noisy[i], u[i] + sigma * z[i], rtol=1e-5, atol=1e-6)
    assert not noisy[0, :, 2:].any()
    np.testing.assert_array_equal(batch_noise(u, dims, 0.0, rng), u)


# -------------------------------------------------------------------------- corruption
def _draw(dm, system, n, seed=0):
    tab = dm.tables
    (s,) = {v for (name, _), v in tab.skeleton_of.items() if name == system}
    rows = tab.draw(np.full(n, s), np.random.default_rng(seed), dm.p_add, dm.p_delete)
    return s, rows


def test_corruption_frequencies_are_the_reference_probabilities(ode3d):
    """20,000 training draws for Lorenz: kept / one term added / one deleted at
    0.70 / 0.15 / 0.15 within 4 sigma."""
    dm = ProseDataModule(str(ode3d))
    dm.setup("fit")
    n = 20000
    s, rows = _draw(dm, "lorenz_3d", n)
    tab = dm.tables
    kept = rows == tab.keep[s]
    added = (rows >= tab.add_start[s]) & (rows < tab.add_start[s] + tab.n_add[s])
    deleted = (rows >= tab.del_start[s]) & (rows < tab.del_start[s] + tab.n_del[s])
    assert (kept | added | deleted).all()
    assert tab.n_add[s] == 10 * 10 and tab.n_del[s] == 7  # 10 terms x (3+4+3) places; 2+3+2
    for frac, p in ((kept.mean(), 0.70), (added.mean(), 0.15), (deleted.mean(), 0.15)):
        assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / n)
    longer = tab.row_len[rows] > tab.row_len[tab.keep[s]]
    assert np.array_equal(longer, added)


@pytest.mark.parametrize("folder, system", [("ode3d", "lorenz_3d"), ("ode3d", "aizawa"),
                                            ("mixed", "double_pendulum")])
def test_corruptions_are_those_of_perturb(folder, system, request):
    """The vectorised draw reaches exactly the skeletons that opnet.symbolic.perturb (with
    the system's sites) produces: the same set of outcomes."""
    dm = ProseDataModule(str(request.getfixturevalue(folder)))
    dm.setup("fit")
    s, rows = _draw(dm, system, 6000, seed=3)
    vocab = dm.vocab
    ours = {decode(_tokens(vocab, dm.tables.rows[r])) for r in np.unique(rows)}
    skel = decode(_tokens(vocab, dm.tables.rows[dm.tables.keep[s]]))
    rng = np.random.default_rng(4)
    theirs = {perturb(skel, rng, sites=CORRUPTION_SITES.get(system)) for _ in range(6000)}
    assert ours == theirs


def test_evaluation_corruption_is_fixed_by_its_seed(ode3d):
    one = ProseDataModule(str(ode3d), corruption_seed=9)
    two = ProseDataModule(str(ode3d), corruption_seed=9)
    other = ProseDataModule(str(ode3d), corruption_seed=10)
    for dm in (one, two, other):
        dm.setup("test")
    rows = one.splits["test"].symbol_rows
    np.testing.assert_array_equal(rows, two.splits["test"].symbol_rows)
    assert not np.array_equal(rows, other.splits["test"].symbol_rows)
    first = next(iter(one.test_dataloader()))["symbols"]
    assert torch.equal(first, next(iter(one.test_dataloader()))["symbols"])


# ---------------------------------------------------------------- files and mistakes
def test_io_spec_describes_vocabulary_times_and_provenance(ode3d):
    dm = ProseDataModule(str(ode3d), max_dim=5)
    io = dm.io_spec()
    assert io["kind"] == "prose" and io["symbols"] == "unknown" and io["max_dim"] == 5
    v = Vocabulary(5)
    assert io["vocab"] == {"size": len(v), "max_dim": 5, "pad_id": v.pad_id,
                           "bos_id": v.bos_id, "eos_id": v.eos_id,
                           "placeholder_id": v.placeholder_id}
    assert len(io["t_in"]) == 64 and len(io["t_out"]) == 128
    assert io["dataset"]["pde"] == "ode_systems" and io["dataset"]["n_train"] == 96
    assert len(io["systems"]) == 12 and io["max_target_len"] <= 101
    b = next(iter(dm.train_dataloader()))
    assert b["u_in"].shape[2] == 5 and not b["u_in"][..., 3:].any()


def test_generates_the_dataset_when_missing(tmp_path):
    gen = {"pde": {"name": "ode_systems", "types": "lorenz_3d,thomas"}, "n_train": 4,
           "n_val": 2, "n_test": 2, "seed": 0, "progress": False}
    dm = ProseDataModule(str(tmp_path / "made"), generate=gen)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.splits["train"]) == 4 and (tmp_path / "made" / "test.h5").is_file()


def test_configuration_mistakes_are_named(ode3d, tmp_path):
    with pytest.raises(ValueError, match=r"data.symbols='noisy': expected one of"):
        ProseDataModule(str(ode3d), symbols="noisy")
    with pytest.raises(ValueError, match="p_add \\+ p_delete <= 1"):
        ProseDataModule(str(ode3d), p_add=0.6, p_delete=0.6)
    with pytest.raises(ValueError, match="ode_systems layout"):
        ProseDataModule(str(ode3d), generate={"pde": {"name": "darcy"}})
    with pytest.raises(DatasetError, match="lacks train.h5, val.h5, test.h5"):
        ProseDataModule(str(tmp_path / "nothing")).setup("fit")
    with pytest.raises(DatasetError, match="D = 3 components but data.max_dim=2"):
        ProseDataModule(str(ode3d), max_dim=2).setup("fit")


def test_missing_fields_are_named(tmp_path):
    """A file without symbols/expression works for data-only training and is refused,
    naming the field, for a symbol mode; one without outputs/u is refused."""
    folder = tmp_path / "bare"
    rng = np.random.default_rng(0)
    for split in h5.SPLITS:
        specs = {"inputs/u": ((64, 3), np.float32), "outputs/u": ((128, 3), np.float32)}
        t = np.linspace(0, 6, 192)
        with h5.SplitWriter(h5.split_path(folder, split), 4, specs,
                            {"t_in": t[:64], "t_out": t[64:]}, {"pde": "test"}) as w:
            w.write(0, {"inputs/u": rng.standard_normal((4, 64, 3)),
                        "outputs/u": rng.standard_normal((4, 128, 3))}, np.arange(4))
            w.commit()
    dm = ProseDataModule(str(folder), symbols="none")
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["u_out"].shape == (4, 128, 3)
    with pytest.raises(DatasetError, match=r"no field 'symbols/expression'.*symbols='known'"):
        ProseDataModule(str(folder), symbols="known").setup("fit")
    bad = tmp_path / "bad"
    for split in h5.SPLITS:
        with h5.SplitWriter(h5.split_path(bad, split), 2, {"inputs/u": ((64, 3), np.float32)},
                            {}, {"pde": "test"}) as w:
            w.write(0, {"inputs/u": np.zeros((2, 64, 3))}, np.arange(2))  # whole, field lacking
            w.commit()
    with pytest.raises(DatasetError, match=r"no field 'outputs/u'"):
        ProseDataModule(str(bad), symbols="none").setup("fit")
