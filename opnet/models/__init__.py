"""Operator networks: plain ``torch.nn.Module`` classes built from keyword arguments."""

from __future__ import annotations

MODELS: dict[str, str] = {
    "mgno": "opnet.models.mgno.MgNO",
    "fno": "opnet.models.fno.FNO2d",
    "deeponet": "opnet.models.deeponet.DeepONet",
    "pod_deeponet": "opnet.models.deeponet.PODDeepONet",
    "prose": "opnet.models.prose.PROSE",
}


def resolve_model_name(name: str) -> str:
    """Short name (``"mgno"``) or dotted class path -> dotted class path."""
    if name in MODELS:
        return MODELS[name]
    if "." in name:
        return name
    raise ValueError(f"model '{name}': expected one of {sorted(MODELS)} or a dotted class path")
