"""One family protocol (issue 17): the registry keyed by data kind, the shared base
LightningModule, and what a fourth family touches: one class per role and one
``register_family`` call, nothing in opnet's training job, loader or evaluator."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import opnet
from opnet.checkpoint import CheckpointError
from opnet.data.build import instantiate_datamodule
from opnet.evaluate import Evaluation, evaluation
from opnet.families import FAMILIES, Family, family_of, register_family
from opnet.surrogate.common import OperatorSurrogate, load_weights
from opnet.training.base import ConfigError, OperatorLightningModule
from opnet.training.deeponet_module import DeepONetModule
from opnet.training.job import build_module
from opnet.training.module import OperatorModule
from opnet.training.prose_module import ProseModule

HERE = __name__  # the classes below are importable as test_families.<name>


# ------------------------------------------------------------------ a fourth family: "toy"
class ToyNet(nn.Module):
    """y = W x + b on vectors [B, n]."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n, n)

    def forward(self, x):
        return self.linear(x)


class ToyData(L.LightningDataModule):
    """y = 2 x (+ 1) on random vectors: kind "toy"."""

    def __init__(self, folder: str, n: int = 4, samples: int = 64) -> None:
        super().__init__()
        self.folder, self.n = folder, n
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(samples, n, generator=gen)
        self.y = 2 * self.x + 1

    def io_spec(self) -> dict:
        return {"kind": "toy", "n": self.n, "dataset": {"name": "toy", "path": self.folder}}

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[:16], self.y[:16]), batch_size=16)


class ToyModule(OperatorLightningModule):
    kind = "toy"

    def __init__(self, model: dict, io: dict, optimizer: str = "adam", lr: float = 0.1,
                 weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8,
                 fused: bool | None = False, scheduler=None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.scheduler_spec()
        self.model = opnet.models.build_model(model)

    @classmethod
    def model_spec(cls, model, io, options):
        return {**model, "n": io["n"]}

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.mean((self.model(x) - y) ** 2)

    def evaluate_batch(self, batch, stage):
        x, y = batch
        pred = self.model(x)
        self.log_metrics(stage, {"rel_l2": ((pred - y).norm() / y.norm())}, len(x))


class ToySurrogate(OperatorSurrogate):
    def __init__(self, model: nn.Module, metadata) -> None:
        super().__init__(metadata)
        self.model = model.eval()

    @classmethod
    def from_checkpoint(cls, path, checkpoint, block):
        model = opnet.models.build_model(block["model"])
        load_weights(path, checkpoint["state_dict"], "model.", model)
        return cls(model, block)

    @torch.no_grad()
    def predict(self, x):
        return self.model(torch.as_tensor(x, dtype=torch.float32)).numpy()

    def describe(self) -> str:
        return f"R^{self.io['n']} -> R^{self.io['n']}"


def toy_evaluator(op, data_dir, split="test", stride=1, limit=None, keep=0, batch_size=None):
    x = np.linspace(-1, 1, 4 * op.io["n"]).reshape(4, op.io["n"])
    pred, y = op.predict(x), 2 * x + 1
    rel = float(np.linalg.norm(pred - y) / np.linalg.norm(y))
    return Evaluation({"data": str(Path(data_dir) / split), "samples": 4, "rel_l2": rel},
                      "points")


@pytest.fixture
def toy_family():
    family = register_family(Family("toy", f"{HERE}.ToyModule", f"{HERE}.ToySurrogate",
                                    f"{HERE}.toy_evaluator", "opnet.plot.sample_figure"))
    yield family
    del FAMILIES["toy"]


def test_a_fourth_family_is_one_registration(toy_family, tmp_path):
    """Trained through the shared base (optimiser vocabulary, metrics, checkpoint block),
    built by the training job's family lookup (no module._target_), loaded by
    load_operator and evaluated by evaluation() through the registry alone."""
    data = instantiate_datamodule(OmegaConf.create(  # a user's datamodule by config
        {"_target_": f"{HERE}.ToyData", "folder": str(tmp_path / "toy")}))
    cfg = OmegaConf.create({"model": {"_target_": f"{HERE}.ToyNet"},
                            "module": {"optimizer": "adamw", "scheduler": "cosine"}})
    module = build_module(cfg, data)
    assert type(module) is ToyModule and module.hparams.optimizer == "adamw"
    trainer = L.Trainer(max_epochs=60, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path,
                        enable_checkpointing=False)
    trainer.fit(module, data)
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler,
                      torch.optim.lr_scheduler.CosineAnnealingLR)
    assert trainer.lr_scheduler_configs[0].interval == "step"
    ckpt = tmp_path / "toy.ckpt"
    trainer.save_checkpoint(ckpt)
    block = torch.load(ckpt, weights_only=True)["operator"]
    assert block["family"] == "toy" and block["module"] == "ToyModule"
    with pytest.raises(CheckpointError, match="test_families.ToyNet"):
        opnet.load_operator(ckpt)  # a user's model class: only when trusted
    op = opnet.load_operator(ckpt, trusted_targets=(f"{HERE}.",))
    assert type(op) is ToySurrogate and "R^4 -> R^4" in repr(op)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(op.predict(x), module.model(torch.as_tensor(x)).detach().numpy(),
                               rtol=1e-6)
    row = evaluation(op, tmp_path / "toy").row
    assert row["rel_l2"] < 0.05, row  # trained: y = 2x + 1 learnt


def test_family_of_data_and_checkpoint_blocks():
    """io kinds and blocks (format 2's 'family', format 1's 'module') map to one family."""
    assert family_of({"kind": "points"}).module.endswith("DeepONetModule")
    assert family_of({}).module.endswith(".OperatorModule")  # grid io has no kind
    assert family_of({"io": {}, "module": "ProseModule"}).surrogate.endswith("ProseSurrogate")
    assert family_of({"io": {}, "family": "points"}).evaluator.endswith("evaluate_points")
    with pytest.raises(ValueError, match="no operator family for data kind 'graph'"):
        family_of({"kind": "graph"})
    with pytest.raises(ValueError, match="exists"):
        register_family(Family("grid", "x.Y", "x.Z", "x.e", "grid"))


def test_the_three_families_share_the_base():
    for cls, kind in ((OperatorModule, "grid"), (DeepONetModule, "points"),
                      (ProseModule, "prose")):
        assert issubclass(cls, OperatorLightningModule) and cls.kind == kind
        assert FAMILIES[kind].module == f"{cls.__module__}.{cls.__name__}"
        for hook in ("configure_optimizers", "on_save_checkpoint", "on_load_checkpoint",
                     "validation_step", "test_step", "from_data", "log_metrics"):
            assert hook not in vars(cls) or hook == "on_load_checkpoint", (cls, hook)


def test_module_of_another_kind_is_refused_by_name(tmp_path):
    data = ToyData(str(tmp_path))
    with pytest.raises(ConfigError, match="OperatorModule trains grid operators but data "
                                          "'toy' .* is toy data"):
        OperatorModule.from_data({"_target_": "opnet.models.mgno.MgNO"}, data)
