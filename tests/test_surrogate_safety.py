"""Surrogates under real use (issue 15): damaged checkpoints, foreign model classes, NaN input,
ambiguous layouts, rollouts of operators that do not step in time, bad batch sizes and
devices, empty batches and out-of-memory. Train-free: tiny modules are built and saved
the way Lightning saves them (state_dict + hyper-parameters + the module's own
``on_save_checkpoint``)."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch

from opnet import load_operator
from opnet.checkpoint import DIGEST_KEY, read_checkpoint, state_digest
from opnet.surrogate import CheckpointError, DeepONetSurrogate, ProseSurrogate, Surrogate
from opnet.symbolic import Vocabulary
from opnet.training.deeponet_module import DeepONetModule
from opnet.training.module import OperatorModule
from opnet.training.prose_module import ProseModule, prose_spec

MGNO = {"_target_": "opnet.models.mgno.MgNO", "in_channels": 1, "out_channels": 1, "width": 4,
        "layers": 1, "smoothing": [[1, 0], [1, 0]]}
M, Q = 10, 7  # DeepONet sensors and query points


def grid_io(**changes) -> dict:
    io = {"input_fields": ["a"], "output_fields": ["u"], "in_channels": 1, "out_channels": 1,
          "grid": [8, 8], "coords": {}, "in_normalizer": "scalar", "out_normalizer": "scalar",
          "dataset": {"name": "toy", "path": "data/toy"}}
    return {**io, **changes}


def save(module: torch.nn.Module, path: Path) -> Path:
    """A checkpoint as Lightning writes it (no loops/optimizer): state_dict, hyper-parameters,
    then the module's ``on_save_checkpoint`` (operator block + digest)."""
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__, "epoch": 0, "global_step": 0}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return path


@pytest.fixture
def grid_ckpt(tmp_path) -> Path:
    torch.manual_seed(0)
    return save(OperatorModule(MGNO, grid_io()), tmp_path / "grid.ckpt")


@pytest.fixture
def grid_op(grid_ckpt) -> Surrogate:
    return load_operator(grid_ckpt)


def toy_deeponet(**options) -> DeepONetModule:
    """An untrained DeepONet module (M sensors, Q query points on [0, 1], seed 0);
    ``options``: DeepONetModule keyword arguments (e.g. normalizer kinds)."""
    io = {"kind": "points", "input_field": "f", "input_fields": ["f"], "output_fields": ["u"],
          "branch": "vector", "input_shape": [M], "n_sensors": M, "sensor_points": M,
          "sensor_dim": 1, "n_query": Q, "query_dim": 1, "out_channels": 1,
          "input_grid": None, "output_grid": None, "layout": "aligned",
          "dataset": {"name": "toy", "path": "data/toy"}}
    torch.manual_seed(0)
    module = DeepONetModule({"_target_": "opnet.models.deeponet.DeepONet", "branch": [M, 8, 8],
                             "trunk": [1, 8, 8], "num_outputs": 1}, io, **options)
    module.sensors.copy_(torch.linspace(0, 1, M)[:, None])
    module.query.copy_(torch.linspace(0, 1, Q)[:, None])
    return module


@pytest.fixture
def deeponet_op(tmp_path) -> DeepONetSurrogate:
    return load_operator(save(toy_deeponet(), tmp_path / "deeponet.ckpt"))


def toy_prose_module() -> ProseModule:
    """A tiny data-only PROSE (symbols=none) of 2-component trajectories, untrained."""
    v = Vocabulary(2)
    io = {"kind": "prose", "symbols": "none", "max_dim": 2,
          "vocab": {"size": len(v), "max_dim": 2, "pad_id": v.pad_id, "bos_id": v.bos_id,
                    "eos_id": v.eos_id, "placeholder_id": v.placeholder_id},
          "t_in": np.linspace(0, 1, 5).tolist(), "t_out": np.linspace(1, 2, 4).tolist(),
          "dataset": {"name": "toy", "path": "data/toy"}}
    model = prose_spec({"_target_": "opnet.models.prose.PROSE", "dim": 16, "heads": 2,
                        "ffn": 32, "data_encoder_layers": 1, "fusion_layers": 1,
                        "data_decoder_layers": 1, "symbol_input": False,
                        "symbol_output": False}, io)
    return ProseModule(model, io)


@pytest.fixture
def prose_op(tmp_path) -> ProseSurrogate:
    """A data-only PROSE (symbols=none) of 2-component trajectories."""
    torch.manual_seed(0)
    return load_operator(save(toy_prose_module(), tmp_path / "prose.ckpt"))


# -- checkpoint integrity -------------------------------------------------------------------
def test_flipped_bit_in_a_tensor_is_named_as_damage_not_predicted(grid_ckpt, tmp_path):
    """One byte of a weight's storage changed in the file (bit rot): load_operator and
    load_from_checkpoint refuse it naming the file, where torch alone loads the wrong
    weight without a word."""
    name = "operator.model.mg.0.init.weight"  # 36 random floats, contiguous: their bytes occur once
    weight = read_checkpoint(grid_ckpt)["state_dict"][name]
    assert weight.is_contiguous() and weight.untyped_storage().nbytes() == 4 * 36
    raw = bytearray(grid_ckpt.read_bytes())
    at = raw.find(weight.numpy().tobytes())
    assert at > 0 and raw.count(weight.numpy().tobytes()) == 1
    raw[at + 4 * 17 + 3] ^= 0x40  # the exponent byte of element 17 (little-endian float32)
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(bytes(raw))
    silently = read_checkpoint(damaged, verify=False)["state_dict"][name]
    assert (silently != weight).sum() == 1  # the file really holds another weight
    message = (r"damaged\.ckpt: tensors do not match the stored digest: the file is damaged "
               r"\(bit rot or a partial copy\); restore it or use another checkpoint")
    with pytest.raises(CheckpointError, match=message):
        load_operator(damaged)
    with pytest.raises(CheckpointError, match="tensors do not match the stored digest"):
        OperatorModule.load_from_checkpoint(damaged, map_location="cpu")


def test_checkpoints_carry_a_digest_and_older_ones_without_it_still_load(grid_ckpt, tmp_path):
    ckpt = read_checkpoint(grid_ckpt)
    assert ckpt[DIGEST_KEY] == state_digest(ckpt["state_dict"])
    assert ckpt[DIGEST_KEY].startswith("sha256:") and len(ckpt[DIGEST_KEY]) == 7 + 64
    del ckpt[DIGEST_KEY]
    torch.save(ckpt, tmp_path / "old.ckpt")
    assert isinstance(load_operator(tmp_path / "old.ckpt"), Surrogate)
    assert isinstance(OperatorModule.load_from_checkpoint(tmp_path / "old.ckpt"),
                      OperatorModule)


def test_digest_covers_names_dtypes_shapes_and_bytes_of_any_layout():
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    base = state_digest({"w": a, "b": torch.ones(2)})
    assert base == state_digest({"b": torch.ones(2), "w": a.t().contiguous().t()})  # order
    assert base == state_digest({"w": a.t().t(), "b": torch.ones(2)})  # strides
    for other in ({"v": a, "b": torch.ones(2)}, {"w": a.double(), "b": torch.ones(2)},
                  {"w": a.reshape(4, 3), "b": torch.ones(2)},
                  {"w": a + 1e-6 * (a == 5), "b": torch.ones(2)}):
        assert state_digest(other) != base
    assert state_digest({"x": torch.zeros(3, dtype=torch.bfloat16), "s": torch.tensor(1)})


def test_model_target_outside_opnet_is_refused_before_it_is_imported(grid_ckpt, tmp_path,
                                                                      monkeypatch):
    """A checkpoint naming another package's class imports nothing unless trusted; trusted,
    the user's own model class loads."""
    pkg = tmp_path / "plugin_pkg_issue15"
    pkg.mkdir()
    marker = tmp_path / "imported"
    (pkg / "__init__.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\n"
        "from opnet.models.mgno import MgNO as MyNet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = read_checkpoint(grid_ckpt)
    ckpt["operator"]["model"]["_target_"] = "plugin_pkg_issue15.MyNet"
    torch.save(ckpt, tmp_path / "plugin.ckpt")
    with pytest.raises(CheckpointError, match=r"plugin\.ckpt: model\._target_="
                       r"'plugin_pkg_issue15\.MyNet' is not an opnet model class .*"
                       r"trusted_targets=\('plugin_pkg_issue15\.',\)"):
        load_operator(tmp_path / "plugin.ckpt")
    assert not marker.exists() and "plugin_pkg_issue15" not in sys.modules
    op = load_operator(tmp_path / "plugin.ckpt", trusted_targets=("plugin_pkg_issue15.",))
    assert marker.exists() and type(op.model).__name__ == "MgNO"
    monkeypatch.delitem(sys.modules, "plugin_pkg_issue15")
    for target in ("os.system", "opnet.models", "opnet.models.mgno.MgNO; import os", 7):
        ckpt["operator"]["model"]["_target_"] = target
        torch.save(ckpt, tmp_path / "bad.ckpt")
        with pytest.raises(CheckpointError, match="is not an opnet model class"):
            load_operator(tmp_path / "bad.ckpt")


# -- surrogate input ------------------------------------------------------------------------
def test_nan_input_is_refused_by_default_naming_argument_and_sample(grid_op):
    a = np.ones((4, 8, 8), np.float32)
    a[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"predict: a has non-finite values \(NaN/Inf\) in "
                                         r"sample 2 \(1 of 4 samples\); pass nonfinite="):
        grid_op.predict(a)
    with pytest.warns(RuntimeWarning, match="sample 2"):
        assert grid_op.predict(a, nonfinite="warn").shape == (4, 8, 8)
    assert np.isnan(grid_op.predict(a, nonfinite="ignore")[2]).any()
    with pytest.raises(ValueError, match=r"nonfinite='maybe', expected one of"):
        grid_op.predict(a, nonfinite="maybe")


def test_nan_input_is_handled_alike_by_deeponet_and_prose(deeponet_op, prose_op):
    u = np.ones((3, M), np.float32)
    u[1, 4] = np.inf
    with pytest.raises(ValueError, match=r"predict: u has non-finite .* in function 1"):
        deeponet_op.predict(u)
    y = np.linspace(0, 1, 5)[:, None]
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"predict: y has non-finite .* in point 3"):
        deeponet_op.predict(u[[0]], y)
    assert deeponet_op.predict(u, nonfinite="ignore").shape == (3, Q)
    traj = np.ones((2, 5, 2), np.float32)
    traj[1, 0, 1] = np.nan
    with pytest.raises(ValueError, match=r"predict: u_in has non-finite .* in trajectory 1"):
        prose_op.predict(None, traj)
    with pytest.raises(ValueError, match=r"predict: t_in has non-finite .* in time 2"):
        prose_op.predict([0, 0.25, np.nan, 0.75, 1], traj[:1])
    with pytest.warns(RuntimeWarning, match="u_in"):
        assert prose_op.predict(None, traj, nonfinite="warn").values.shape == (2, 4, 2)


def test_channels_last_singleton_is_refused_not_read_as_a_batch(grid_op):
    """[s, s, 1] on a 2-D grid: not s samples of an s x 1 grid; the message gives the
    channels-first layouts and the moveaxis that fixes it."""
    with pytest.raises(ValueError, match=r"predict: input of shape \(8, 8, 1\) reads as grid "
                       r"\(8, 1\), which has an axis of size 1; the operator takes "
                       r"channels-first \[\*grid\], \[B, \*grid\] or \[B, 1, \*grid\] on a 2-D "
                       r"grid .*np\.moveaxis\(a, -1, -3\)"):
        grid_op.predict(np.ones((8, 8, 1), np.float32))
    fixed = grid_op.predict(np.moveaxis(np.ones((8, 8, 1), np.float32), -1, -3))
    assert fixed.shape == (1, 8, 8)


def test_rollout_needs_a_time_stepping_operator(grid_op, tmp_path):
    with pytest.raises(ValueError, match=r"rollout: this operator maps \['a'\] to \['u'\] .*not "
                                         r"trained on trajectories .* use predict\(a\)"):
        grid_op.rollout(np.ones((8, 8), np.float32), 3)
    io = grid_io(input_fields=["w"], output_fields=["w"], rollout_steps=3,
                 dataset={"name": "ns", "path": "data/ns", "trajectory_field": "w"})
    stepper = load_operator(save(OperatorModule(MGNO, io), tmp_path / "ns.ckpt"))
    frames = stepper.rollout(np.ones((2, 8, 8), np.float32), 3)
    assert frames.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(frames[:, 1], stepper.predict(frames[:, 0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["grid", "deeponet", "prose"])
@pytest.mark.parametrize("batch_size", [0, -3, 2.5])
def test_batch_size_below_one_is_named(family, batch_size, request):
    op = request.getfixturevalue(f"{family}_op")
    args = {"grid": (np.ones((2, 8, 8)),), "deeponet": (np.ones((2, M)),),
            "prose": (None, np.ones((2, 5, 2)))}[family]
    with pytest.raises(ValueError, match=rf"predict: batch_size={batch_size}, expected an "
                                         r"integer >= 1"):
        op.predict(*args, batch_size=batch_size)


def test_cuda_without_cuda_is_one_line(grid_ckpt, grid_op, deeponet_op, prose_op, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for op in (grid_op, deeponet_op, prose_op):
        with pytest.raises(ValueError, match=r"^device='cuda': CUDA is not available on this "
                                             r"machine .*; use device='cpu'$"):
            op.to("cuda")
    with pytest.raises(ValueError, match=r"^device='cuda:1': CUDA is not available"):
        load_operator(grid_ckpt, device="cuda:1")
    with pytest.raises(ValueError, match=r"^device='gpu': not a torch device"):
        grid_op.to("gpu")


def test_empty_batches_give_empty_results_of_the_right_shape(grid_op, deeponet_op, prose_op):
    assert deeponet_op.predict(np.zeros((0, M))).shape == (0, Q)
    assert deeponet_op.predict(np.zeros((0, M)), np.linspace(0, 1, 3)).shape == (0, 3)
    assert grid_op.predict(np.zeros((0, 1, 8, 8))).shape == (0, 1, 8, 8)
    assert grid_op.predict(np.zeros((0, 8, 8))).shape == (0, 8, 8)
    assert prose_op.predict(None, np.zeros((0, 5, 2))).values.shape == (0, 4, 2)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError])
@pytest.mark.parametrize("family", ["grid", "deeponet", "prose"])
def test_out_of_memory_names_batch_size(family, error, request, monkeypatch):
    op = request.getfixturevalue(f"{family}_op")

    def exhausted(*args, **kwargs):
        raise error("CUDA out of memory. Tried to allocate 20.00 GiB")

    method = "encode" if family == "prose" else "forward"
    monkeypatch.setattr(op.model, method, exhausted)
    args = {"grid": (np.ones((3, 8, 8)),), "deeponet": (np.ones((3, M)),),
            "prose": (None, np.ones((3, 5, 2)))}[family]
    with pytest.raises(MemoryError, match=r"^predict: out of memory on cpu with batch_size=16 "
                                          r"\(3 inputs\); pass a smaller batch_size \(e\.g\. "
                                          r"batch_size=4\)"):
        op.predict(*args, batch_size=16)


@pytest.mark.parametrize("cls", [Surrogate, DeepONetSurrogate, ProseSurrogate])
def test_predict_documents_shapes_and_units(cls):
    doc = cls.predict.__doc__ or ""
    assert "physical units" in doc and "Returns" in doc and "batch_size" in doc
    assert "nonfinite" in doc and "[B, " in doc


# -- any grid by resampling (issue 19, first piece) ------------------------------------------
def test_resample_predicts_on_any_grid_exactly_at_shared_nodes(grid_op):
    """predict(a, resample=True): to the training grid (8x8) and back. On a nested finer grid
    (15x15: every 2nd node is a training node) the output at the shared nodes is exactly the
    prediction of the coarse input; at the training grid it is predict(a) itself."""
    gen = torch.Generator().manual_seed(0)
    fine = 1 + torch.rand(3, 1, 15, 15, generator=gen)
    coarse = fine[..., ::2, ::2]
    out = grid_op.predict(fine, resample=True)
    assert out.shape == (3, 1, 15, 15)
    np.testing.assert_allclose(out[..., ::2, ::2], grid_op.predict(coarse), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(grid_op.predict(coarse, resample=True),
                                  grid_op.predict(coarse))
    # between shared nodes: the mean of the neighbours (multilinear), not a new prediction
    mid = out[..., 1, ::2]
    np.testing.assert_allclose(mid, (out[..., 0, ::2] + out[..., 2, ::2]) / 2, rtol=1e-5,
                               atol=1e-6)


def test_resample_serves_a_pointwise_normalised_operator_off_its_grid(tmp_path):
    torch.manual_seed(0)
    module = OperatorModule(MGNO, grid_io(in_normalizer="pointwise",
                                          out_normalizer="pointwise"))
    op = load_operator(save(module, tmp_path / "pw.ckpt"))
    a = 1 + torch.rand(2, 1, 15, 15)
    with pytest.raises(ValueError, match="pointwise normalizer ties this operator"):
        op.predict(a)
    assert op.predict(a, resample=True).shape == (2, 1, 15, 15)
