"""FNO (1-D, 2-D, 3-D): reference parameter counts, the FNO2d checkpoint layout and forward,
shapes, spectral truncation, training."""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from opnet.models import build_model, resolve_model_name
from opnet.models.fno import FNO, FNO1d, FNO2d, FNO3d, SpectralConv2d


def test_parameter_count_matches_the_reference_fno2d():
    """fourier_2d.py with modes 12, width 32 and input (a, x, y): 2,368,001 parameters."""
    assert sum(p.numel() for p in FNO2d(modes=12, width=32).parameters()) == 2_368_001


@pytest.mark.parametrize("shape", [(32, 32), (33, 47), (29, 64)])
def test_output_has_the_input_grid(shape):
    net = FNO2d(in_channels=2, out_channels=3, modes=6, width=8)
    assert net(torch.randn(2, 2, *shape)).shape == (2, 3, *shape)


def test_spectral_conv_keeps_low_modes_and_drops_high_ones():
    """With identity weights on the kept modes, a low mode passes unchanged and a mode
    above the cut-off is removed."""
    conv = SpectralConv2d(1, 1, (4, 4))
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[..., 0] = 1.0
    n = 32
    x = torch.arange(n) / n
    low = torch.cos(2 * math.pi * (2 * x[:, None] + 3 * x[None, :]))[None, None]
    high = torch.cos(2 * math.pi * 9 * x[:, None]).expand(n, n)[None, None]
    assert torch.allclose(conv(low), low, atol=1e-5)
    assert conv(high).abs().max() < 1e-5


def test_too_small_grid_is_named():
    with pytest.raises(ValueError, match="too small for 12x12 Fourier modes"):
        FNO2d(modes=12, domain_padding=0)(torch.randn(1, 1, 16, 16))


def test_bf16_autocast_and_training_lower_the_loss():
    """A shift of band-limited fields is diagonal in Fourier space: learnable."""
    torch.manual_seed(0)
    net = FNO2d(modes=4, width=8, domain_padding=0)
    coeff = torch.zeros(4, 1, 16, 9, dtype=torch.cfloat)
    coeff[..., :3, :3] = torch.randn(4, 1, 3, 3, dtype=torch.cfloat)
    x = torch.fft.irfft2(coeff, s=(16, 16)) * 16
    y = torch.roll(x, 1, dims=-1) * 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    out.float().pow(2).mean().backward()
    assert torch.isfinite(out.float()).all()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = (net(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


# ----------------------------------------------------------------- N-D FNO (issue 17)

def fno2d_reference(state: dict, x: torch.Tensor, modes: int, padding: int) -> torch.Tensor:
    """The reference ``FNO2d.forward`` (fourier_2d.py) written out from a state dict: grid
    channels, 1x1 lift, Fourier layers ``rfft2 -> two corners x complex weights -> irfft2``
    plus 1x1 convs (GELU between), crop, 1x1 projection."""
    def conv1x1(u, name):
        return (torch.einsum("oi,bihw->bohw", state[f"{name}.weight"][:, :, 0, 0], u)
                + state[f"{name}.bias"][:, None, None])

    b, _, h, w = x.shape
    gx, gy = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    u = conv1x1(torch.cat([x, gx.expand(b, 1, h, w), gy.expand(b, 1, h, w)], dim=1), "lift")
    u = torch.nn.functional.pad(u, (0, padding, 0, padding))
    layers = sum(k.startswith("spectral.") for k in state)
    for i in range(layers):
        weight = torch.view_as_complex(state[f"spectral.{i}.weight"])
        u_ft = torch.fft.rfft2(u)
        out = torch.zeros(b, weight.shape[2], *u_ft.shape[-2:], dtype=u_ft.dtype)
        out[:, :, :modes, :modes] = torch.einsum("bixy,ioxy->boxy",
                                                 u_ft[:, :, :modes, :modes], weight[0])
        out[:, :, -modes:, :modes] = torch.einsum("bixy,ioxy->boxy",
                                                  u_ft[:, :, -modes:, :modes], weight[1])
        u = torch.fft.irfft2(out, s=u.shape[-2:]) + conv1x1(u, f"pointwise.{i}")
        if i < layers - 1:
            u = torch.nn.functional.gelu(u)
    u = torch.nn.functional.gelu(conv1x1(u[..., :h, :w], "project.0"))
    return conv1x1(u, "project.2")


def test_fno2d_keeps_the_checkpoint_layout():
    """Saved FNO2d checkpoints load: the state-dict keys, their order and shapes are those of
    the 2-D implementation the checkpoints were written by."""
    expected = {"lift.weight": (32, 3, 1, 1), "lift.bias": (32,)}
    expected.update({f"spectral.{i}.weight": (2, 32, 32, 12, 12, 2) for i in range(4)})
    for i in range(4):
        expected.update({f"pointwise.{i}.weight": (32, 32, 1, 1), f"pointwise.{i}.bias": (32,)})
    expected.update({"project.0.weight": (128, 32, 1, 1), "project.0.bias": (128,),
                     "project.2.weight": (1, 128, 1, 1), "project.2.bias": (1,)})
    state = FNO2d().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == list(expected.items())


def test_fno2d_equals_the_reference_forward():
    """Random weights (biases included): FNO2d and the written-out reference agree to 1e-6
    on a square and on a non-square grid."""
    torch.manual_seed(0)
    net = FNO2d(modes=5, width=8, layers=3, domain_padding=3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    state = {k: v.detach() for k, v in net.state_dict().items()}
    for shape in [(16, 16), (13, 19)]:
        x = torch.randn(2, 1, *shape)
        with torch.no_grad():
            out, ref = net(x), fno2d_reference(state, x, modes=5, padding=3)
        assert (out - ref).abs().max() < 1e-6 * max(1.0, ref.abs().max().item())


def fno_parameter_count(dim: int, in_channels: int, out_channels: int, modes: int, width: int,
                        layers: int, projection: int) -> int:
    """Lift (in + dim -> width), per layer a complex spectral weight on 2**(dim-1) corners of
    modes**dim and a 1x1 conv (width -> width), projection width -> projection -> out."""
    lift = (in_channels + dim) * width + width
    spectral = 2 ** (dim - 1) * width * width * modes**dim * 2
    pointwise = width * width + width
    project = width * projection + projection + projection * out_channels + out_channels
    return lift + layers * (spectral + pointwise) + project


def test_fno1d_has_the_reference_burgers_parameter_count():
    """fourier_1d.py (Burgers): modes 16, width 64, input (a, x): 549,569 parameters."""
    expected = fno_parameter_count(1, 1, 1, modes=16, width=64, layers=4, projection=128)
    assert expected == 549_569
    assert sum(p.numel() for p in FNO1d().parameters()) == expected


def test_fno1d_config_builds_the_reference_network():
    conf = Path(__file__).parents[1] / "opnet" / "conf" / "model" / "fno1d.yaml"
    spec = {**OmegaConf.to_container(OmegaConf.load(conf)), "in_channels": 1,
            "out_channels": 1}
    assert sum(p.numel() for p in build_model(spec).parameters()) == 549_569


def test_registry_names_the_1d_2d_3d_classes():
    assert resolve_model_name("fno") == resolve_model_name("fno2d") == "opnet.models.fno.FNO2d"
    assert resolve_model_name("fno1d") == "opnet.models.fno.FNO1d"
    assert resolve_model_name("fno3d") == "opnet.models.fno.FNO3d"


def test_fno3d_parameter_count_and_shapes():
    """fourier_3d.py set-up: 10 input frames + (x, y, t), modes 8, width 20."""
    net = FNO3d(in_channels=10, modes=8, width=20)
    assert sum(p.numel() for p in net.parameters()) == fno_parameter_count(
        3, 10, 1, modes=8, width=20, layers=4, projection=128)
    small = FNO3d(in_channels=2, out_channels=3, modes=(3, 4, 2), width=4, domain_padding=2)
    assert small(torch.randn(2, 2, 9, 11, 5)).shape == (2, 3, 9, 11, 5)


@pytest.mark.parametrize("n", [16, 23])
def test_fno1d_output_has_the_input_grid(n):
    net = FNO1d(in_channels=2, out_channels=3, modes=5, width=8, domain_padding=3)
    assert net(torch.randn(4, 2, n)).shape == (4, 3, n)


def test_fno_dimension_comes_from_dim_or_the_modes_list():
    assert FNO(modes=[3, 4, 5], width=4).dim == 3
    assert FNO(modes=4, width=4).dim == 2
    assert FNO(modes=4, width=4, dim=1).spectral[0].weight.shape == (1, 4, 4, 4, 2)
    with pytest.raises(ValueError, match=r"modes=\[4, 4\]: expected one int or 3"):
        FNO(modes=[4, 4], dim=3)
    with pytest.raises(ValueError, match="dim=4: expected 1, 2 or 3"):
        FNO(modes=4, dim=4)
    with pytest.raises(ValueError, match=r"FNO1d: x has shape \(2, 1, 8, 8\)"):
        FNO1d(modes=2, width=4)(torch.randn(2, 1, 8, 8))


def test_activation_names_the_key():
    """FNO and DeepONet share one activation table ({gelu, relu, tanh, silu} and sin)."""
    for name in ("gelu", "relu", "tanh", "silu", "sin"):
        FNO2d(modes=2, width=2, activation=name)
    with pytest.raises(ValueError, match="activation='elu' is not supported; allowed values"):
        FNO2d(activation="elu")


def test_positional_must_be_a_bool_and_the_ns_experiment_keeps_the_fno_coordinates():
    """A string (MgNO's positional="periodic" inherited by a derived experiment) was truthy
    and silently meant "append (x, y)": now one ValueError; fno_navier_stokes_cpu, derived
    from the MgNO experiment, sets the FNO's own value."""
    with pytest.raises(ValueError, match=r"^positional='periodic': expected true or false"):
        FNO2d(modes=2, width=4, positional="periodic")
    from conftest import compose_train

    model = compose_train("experiment=fno_navier_stokes_cpu").model
    assert model.positional is True
    assert compose_train("experiment=mgno_navier_stokes_cpu").model.positional == "periodic"
