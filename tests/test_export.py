"""Exported surrogates (issue 21): ``op.export(path, format)`` writes a TorchScript, ONNX or
``torch.export`` file with the normalisers inside, which maps physical inputs to physical
outputs as ``op.predict`` does, for any batch size. Tiny untrained MgNO, FNO and DeepONet
operators with non-trivial normaliser statistics, saved the way training saves them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from test_surrogate_safety import MGNO, M, Q, grid_io, save, toy_deeponet, toy_prose_module

from opnet import load_operator
from opnet.surrogate.export import FORMATS
from opnet.training.module import OperatorModule

FNO = {"_target_": "opnet.models.fno.FNO2d", "in_channels": 1, "out_channels": 1, "modes": 3,
       "width": 4, "layers": 1, "projection": 8, "domain_padding": 0.125}
# a fractional padding as conf/model/fno.yaml: its size was round() of a traced (tensor) size,
# which failed torchscript export of every default FNO
SUFFIX = {"torchscript": ".ts", "onnx": ".onnx", "exported_program": ".pt2"}


def grid_surrogate(spec: dict, path: Path):
    torch.manual_seed(0)
    module = OperatorModule(spec, grid_io())
    module.operator.in_norm.set_stats(torch.full((1, 1, 1, 1), 3.0), torch.full((1, 1, 1, 1), 0.5))
    module.operator.out_norm.set_stats(torch.full((1, 1, 1, 1), -40.0),
                                       torch.full((1, 1, 1, 1), 25.0))
    return load_operator(save(module, path))


def deeponet_surrogate(path: Path):
    module = toy_deeponet(in_normalizer="scalar", out_normalizer="pointwise")
    module.query.copy_(torch.linspace(0, 1, Q)[:, None] ** 2)
    norm = module.operator
    norm.in_norm.mean.fill_(2.0)
    norm.in_norm.std.fill_(4.0)
    norm.out_norm.mean.copy_(torch.linspace(-30, 30, Q)[:, None])  # one per query point
    norm.out_norm.std.copy_(torch.linspace(5, 12, Q)[:, None])
    return load_operator(save(module, path))


@pytest.fixture(scope="module")
def surrogates(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    return {"mgno": grid_surrogate(MGNO, tmp / "mgno.ckpt"),
            "fno": grid_surrogate(FNO, tmp / "fno.ckpt"),
            "deeponet": deeponet_surrogate(tmp / "deeponet.ckpt")}


def run_file(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    """Load the exported file as a user without opnet would, and run it on ``x``."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    module = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(("name", "fmt"), [(name, fmt) for name in ("mgno", "fno", "deeponet")
                                           for fmt in FORMATS if (name, fmt) != ("fno", "onnx")])
def test_export_matches_predict_in_physical_units(surrogates, tmp_path, name, fmt):
    """The reloaded file equals predict (max error <= 1e-5 of the output scale) on a batch of
    5 (the example had 2), and it holds the normalisers: the bare network differs by far."""
    op = surrogates[name]  # (FNO -> ONNX is refused: test_fno_to_onnx_is_one_line_error)
    rng = np.random.default_rng(1)
    shape = (5, M) if name == "deeponet" else (5, 1, 8, 8)
    x = (3.0 + 0.5 * rng.standard_normal(shape)).astype(np.float32)
    path = op.export(tmp_path / f"{name}{SUFFIX[fmt]}", fmt)
    assert path == tmp_path / f"{name}{SUFFIX[fmt]}" and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    got, ref = run_file(path, fmt, x), op.predict(x)
    assert got.shape == ref.shape == ((5, Q) if name == "deeponet" else (5, 1, 8, 8))
    scale = float(np.abs(ref).max())
    assert scale > 10  # the output statistics (means -40 / up to 30) are in the outputs
    error = float(np.abs(got - ref).max()) / scale
    print(f"{name} {fmt}: max error {error:.1e} of the output scale {scale:.1f}")
    assert error <= 1e-5, f"{name} {fmt}: max error {error:.2e} of the output scale"
    with torch.no_grad():
        bare = (op.model(torch.from_numpy(x), op.operator.query.float()) if name == "deeponet"
                else op.model(torch.from_numpy(x))).numpy().reshape(ref.shape)
    assert np.abs(bare - ref).max() > 0.5 * scale
    # one sample runs too (dynamic batch axis), and the surrogate keeps its gradients
    assert np.allclose(run_file(path, fmt, x[:1]), ref[:1], rtol=0, atol=1e-5 * scale)
    assert all(p.requires_grad for p in op.model.parameters())


def test_example_sets_the_grid_and_a_single_sample_still_gives_a_dynamic_batch(surrogates,
                                                                                tmp_path):
    op = surrogates["mgno"]
    a = np.random.default_rng(2).standard_normal((12, 12)).astype(np.float32)  # one sample
    path = op.export(tmp_path / "mgno12.pt2", "exported_program", example=a)
    x = np.random.default_rng(3).standard_normal((3, 1, 12, 12)).astype(np.float32)
    ref = op.predict(x)
    assert np.abs(run_file(path, "exported_program", x) - ref).max() <= 1e-5 * np.abs(ref).max()


def test_fno_to_onnx_is_one_line_error(surrogates, tmp_path):
    with pytest.raises(ValueError, match=r"^export: format='onnx' cannot express the FFT of "
                       r"this FNO2d \(torch\.fft has no ONNX operator at opset 17\); use "
                       r"format='torchscript' or 'exported_program'$") as err:
        surrogates["fno"].export(tmp_path / "fno.onnx", "onnx")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bad_format_and_path_are_one_line_errors(surrogates, tmp_path):
    op = surrogates["mgno"]
    with pytest.raises(ValueError, match=r"^export: format='tflite', expected one of "
                       r"\('torchscript', 'onnx', 'exported_program'\)$"):
        op.export(tmp_path / "m.tflite", "tflite")
    with pytest.raises(ValueError, match=r"format='exported_program' must end in \.pt2"):
        op.export(tmp_path / "m.pt", "exported_program")
    with pytest.raises(ValueError, match=r"^export: input has 3 channel\(s\), the operator "
                       r"expects 1"):
        op.export(tmp_path / "m.ts", example=np.zeros((2, 3, 8, 8), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_prose_is_refused_naming_what_export_supports(tmp_path):
    prose = load_operator(save(toy_prose_module(), tmp_path / "prose.ckpt"))
    with pytest.raises(ValueError, match=r"^export: ProseSurrogate cannot be exported; export "
                       r"supports grid operators \(MgNO, FNO\) and DeepONets$"):
        prose.export(tmp_path / "prose.ts")
    assert [p.name for p in tmp_path.iterdir()] == ["prose.ckpt"]
