"""ProseModule: the LightningModule that trains PROSE (:class:`opnet.models.prose.PROSE`) on
batches of :class:`opnet.data.prose.ProseDataModule`.

**Loss** (PROSE §4): ``data_loss_weight`` (6) × the batch mean of the relative squared L2
error Σ(ŷ − y)² / (‖y‖² + 1e-5) over the N_out query times and the system's components
(padded components masked), + ``symbol_loss_weight`` (1) × the token cross-entropy of the
teacher-forced logits against ``target [EOS]`` (padding ignored; mean over the batch's
tokens). A model without symbol decoder (``symbol_output=False``) has the data loss only.

**Optimiser**: AdamW (decoupled weight decay 1e-4, betas 0.9/0.999, eps 1e-8) at lr 1e-4
with the reference's ``adam_inverse_sqrt`` schedule (:func:`inverse_sqrt_lr`, its warm-up
``warmup_steps``/``warmup_init_lr``), stepped every iteration; any schedule of
:mod:`opnet.training.optim` by ``module.scheduler``. Gradient clipping (1.0) and bf16 are the
Trainer's (``trainer.gradient_clip_val``, ``trainer.precision``).

**Metrics** (:mod:`opnet.training.prose_metrics`): validation logs ``val/rel_l2`` (the mean
relative L2 error on [2, 6] against the noisy targets: the checkpoint selection),
``val/rel_l2_2_4``, ``val/rel_l2_4_6``, the losses, and, on the first
``val_decode_samples`` samples of the split, greedy-decoded ``val/valid_pct`` and
``val/expr_error``. Test logs all of §5 on the whole split (``test_decode_samples``:
null = all): ``test/rel_l2_2_4``, ``test/rel_l2_4_6``, ``test/rel_l2_2_6`` (= ``test/rel_l2``),
``test/valid_pct``, ``test/expr_error`` and, with ``text_ode_solve``,
``test/text_ode_rel_l2_2_6`` (mean over solved equations) and ``test/text_ode_solved_pct``.
Sums are reduced over ranks (each rank evaluates its share of the split).

The checkpoint's ``operator`` block holds everything :func:`opnet.load_operator` needs
(model kwargs, vocabulary, max_dim, times, symbol mode, noise level, versions), plain types
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from opnet.models import build_model
from opnet.symbolic import Expr, Vocabulary
from opnet.training.base import ConfigError, OperatorLightningModule
from opnet.training.optim import Recipe, inverse_sqrt_lr
from opnet.training.prose_metrics import (
    WINDOWS,
    decode_ids,
    expression_errors,
    relative_errors,
    solve_expressions,
)

DATA_EPS = 1e-5


# ------------------------------------------------------------------------------- pieces
def data_loss(pred: Tensor, target: Tensor, dim_mask: Tensor) -> Tensor:
    """Batch mean of Σ(ŷ − y)² / (Σy² + 1e-5) over times × valid components (float32)."""
    m = dim_mask[:, None, :].to(torch.float32)
    pred, target = pred.float(), target.float()
    num = ((pred - target).square() * m).sum(dim=(1, 2))
    den = (target.square() * m).sum(dim=(1, 2))
    return (num / (den + DATA_EPS)).mean()


def symbol_loss(logits: Tensor, target_out: Tensor, pad_id: int) -> Tensor:
    """Mean token cross-entropy of ``logits`` [B, L, V] against ``target_out`` [B, L]."""
    return F.cross_entropy(logits.float().flatten(0, 1), target_out.flatten(),
                           ignore_index=pad_id)


__all__ = ["ProseModule", "data_loss", "inverse_sqrt_lr", "prose_spec", "symbol_loss"]


def prose_spec(model: Mapping[str, Any], io: Mapping[str, Any]) -> dict[str, Any]:
    """Plain model dict with the vocabulary sizes/ids and max_dim taken from the data (or
    checked against it), and the symbol mode checked against the model's flags."""
    spec = dict(model)
    name = f"data '{io['dataset']['name']}' ({io['dataset']['path']})"
    vocab = io["vocab"]
    for key, have in (("max_dim", io["max_dim"]), ("vocab_size", vocab["size"]),
                      ("pad_id", vocab["pad_id"]), ("bos_id", vocab["bos_id"]),
                      ("eos_id", vocab["eos_id"])):
        want = spec.get(key)
        if want is None:
            spec[key] = have
        elif int(want) != int(have):
            raise ConfigError(f"model.{key}={want} but {name} gives {have} (its vocabulary / "
                              f"components); drop model.{key} (null) to take it from the data"
                              + (" or set data.max_dim" if key == "max_dim" else ""))
    symbol_input = bool(spec.get("symbol_input", True))
    symbol_output = bool(spec.get("symbol_output", True))
    mode = io["symbols"]
    if mode == "none" and (symbol_input or symbol_output):
        raise ConfigError(f"data.symbols=none serves no symbol input or target, but "
                          f"model.symbol_input={symbol_input}, model.symbol_output="
                          f"{symbol_output}; the data-only model needs both false")
    if mode != "none" and not symbol_input:
        raise ConfigError(f"model.symbol_input=false (data-only) but data.symbols={mode} "
                          "serves symbol inputs; set data.symbols=none")
    positions = int(spec.get("max_positions", 512))
    longest = max(int(io.get("max_symbol_len", 0)), int(io.get("max_target_len", 0)))
    if symbol_input and longest > positions:
        raise ConfigError(f"{name} has symbol sequences of {longest} tokens but "
                          f"model.max_positions={positions}")
    return spec


class _Sums:
    """Running sums of per-sample values and their counts, reduced over ranks at the end
    (evaluation only: the per-batch host sync is paid once per evaluation batch)."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def add(self, name: str, total: Tensor | float, count: Tensor | float) -> None:
        pair = self.sums.setdefault(name, [0.0, 0.0])
        pair[0] += float(total)
        pair[1] += float(count)

    def means(self, reduce) -> dict[str, float]:
        """``{name: Σ total / Σ count}`` (NaN without samples); ``reduce`` sums a float64
        tensor over ranks."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        both = reduce(torch.tensor([self.sums[k] for k in names], dtype=torch.float64))
        return {k: float(t / c) if c > 0 else float("nan")
                for k, (t, c) in zip(names, both.tolist(), strict=True)}


# ------------------------------------------------------------------------------ module
class ProseModule(OperatorLightningModule):
    """Trains PROSE on ``ProseDataModule`` batches.

    model: plain dict with ``_target_`` and the network's keyword arguments (vocabulary and
        max_dim filled from the data by :meth:`from_data`).
    io: :meth:`ProseDataModule.io_spec` (vocabulary, times, mode, provenance).
    data_loss_weight, symbol_loss_weight: the loss weights (6, 1).
    optimizer (``adamw``), lr, weight_decay, betas, eps, fused, scheduler (default
        ``inverse_sqrt``): :mod:`opnet.training.optim`; warmup_steps, warmup_init_lr: the
        inverse-sqrt schedule's warm-up (:func:`inverse_sqrt_lr`; the PROSE recipe).
    max_decode_len: greedy decoding length (150, the reference's).
    val_decode_samples: validation samples (the first of the split) that are greedy-decoded
        for ``val/valid_pct`` and ``val/expr_error`` (0: none); test_decode_samples: the
        same for the test (null: all).
    expression_points, expression_seed: the expression-error points (50 in [−5, 5]^d).
    text_ode_solve: also integrate the generated equations in the test.
    fused: the optimizer's fused implementation (None: where the parameters allow it and
        the Trainer does not clip gradients under mixed precision).
    """

    kind: ClassVar[str] = "prose"

    def __init__(self, model: Mapping[str, Any], io: Mapping[str, Any],
                 data_loss_weight: float = 6.0, symbol_loss_weight: float = 1.0,
                 lr: float = 1e-4, weight_decay: float = 1e-4,
                 betas: tuple[float, float] | list[float] = (0.9, 0.999), eps: float = 1e-8,
                 warmup_steps: int = 20_000, warmup_init_lr: float = 1e-7,
                 max_decode_len: int = 150, val_decode_samples: int = 256,
                 test_decode_samples: int | None = None, expression_points: int = 50,
                 expression_seed: int = 0, text_ode_solve: bool = False,
                 fused: bool | None = None, optimizer: str = "adamw",
                 scheduler: str | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if int(warmup_steps) < 1:
            raise ValueError(f"module.warmup_steps={warmup_steps}: expected an integer >= 1")
        if len(betas) != 2:
            raise ValueError(f"module.betas={list(betas)}: expected two numbers")
        self.save_hyperparameters()
        self.check_options()  # a bad optimiser/schedule fails now, not at the first step
        self.model = build_model(model)
        v = io["vocab"]
        self.pad_id = int(v["pad_id"])
        self.vocab = Vocabulary(int(v["max_dim"]))
        if len(self.vocab) != int(v["size"]):
            raise ConfigError(f"io.vocab: size {v['size']} is not that of Vocabulary("
                              f"{v['max_dim']}) ({len(self.vocab)})")
        self.symbol_input = bool(getattr(self.model, "symbol_input", True))
        self.symbol_output = bool(getattr(self.model, "symbol_output", True))
        self._sums = _Sums()

    @property
    def recipe(self) -> Recipe:  # type: ignore[override]
        """Inverse-sqrt with this module's warm-up (the PROSE recipe)."""
        h = self.hparams
        return Recipe(scheduler="inverse_sqrt", interval="step", options={"inverse_sqrt": {
            "warmup_steps": int(h.warmup_steps), "warmup_init_lr": float(h.warmup_init_lr)}})

    @classmethod
    def model_spec(cls, model: Mapping[str, Any], io: Mapping[str, Any],
                   options: Mapping[str, Any]) -> dict[str, Any]:
        """Vocabulary and max_dim from the data; the decoding length checked."""
        spec = prose_spec(model, io)
        decode_len = int(options.get("max_decode_len", 150))
        positions = int(spec.get("max_positions", 512))
        if spec.get("symbol_output", True) and decode_len > positions:
            raise ConfigError(f"module.max_decode_len={decode_len} exceeds the decoder's "
                              f"model.max_positions={positions}")
        return spec

    # -- network ---------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Tensor], logits: bool = True
                ) -> tuple[Tensor, Tensor | None]:
        """(predicted u at ``t_out`` [B, N_out, max_dim], teacher-forced logits [B, L_t, V]
        or None)."""
        teacher = batch.get("target_in") if (logits and self.symbol_output) else None
        return self.model(batch["t_in"], batch["u_in"], None,
                          batch.get("symbols") if self.symbol_input else None,
                          batch.get("symbol_mask") if self.symbol_input else None,
                          batch["t_out"], teacher)

    def losses(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """(total loss, its parts, the predicted u)."""
        pred, logits = self(batch)
        parts = {"data_loss": data_loss(pred, batch["u_out"], batch["dim_mask"])}
        total = self.hparams.data_loss_weight * parts["data_loss"]
        if logits is not None:
            parts["symbol_loss"] = symbol_loss(logits, batch["target_out"], self.pad_id)
            total = total + self.hparams.symbol_loss_weight * parts["symbol_loss"]
        return total, parts, pred

    # -- steps -----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        total, parts, _ = self.losses(batch)
        b = len(batch["u_in"])
        self.log("train/loss", total, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=b)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, on_step=False,
                      on_epoch=True, batch_size=b)
        return total

    def on_validation_epoch_start(self) -> None:
        self._sums = _Sums()

    def on_test_epoch_start(self) -> None:
        self._sums = _Sums()

    def evaluate_batch(self, batch: dict[str, Tensor], stage: str) -> None:
        limit = self.hparams.val_decode_samples if stage == "val" else \
            self.hparams.test_decode_samples
        self._evaluate(batch, stage, limit)

    def on_validation_epoch_end(self) -> None:
        self._log_sums("val")

    def on_test_epoch_end(self) -> None:
        self._log_sums("test")

    def _evaluate(self, batch: dict[str, Tensor], stage: str, decode_limit: int | None
                  ) -> None:
        total, parts, pred = self.losses(batch)
        b = len(pred)
        sums = self._sums
        sums.add("loss", total.detach().double() * b, b)
        for k, v in parts.items():
            sums.add(k, v.detach().double() * b, b)
        errors = relative_errors(pred.float(), batch["u_out"], batch["dim_mask"],
                                 batch["t_out"])
        for name, e in errors.items():
            sums.add(f"rel_l2_{name}", e.sum(), b)
        if not self.symbol_output:
            return
        rows = torch.arange(b, device=pred.device)
        if decode_limit is not None:
            rows = rows[batch["index"] < int(decode_limit)]
        if len(rows):
            self._decode_metrics({k: v[rows] for k, v in batch.items()}, stage)

    def generate_expressions(self, batch: Mapping[str, Tensor]) -> list[Expr | None]:
        """The greedy-decoded equations of ``batch`` (None where the output does not
        decode); a model with a symbol decoder only."""
        gen = self.model.generate(batch["t_in"], batch["u_in"], None, batch["symbols"],
                                  batch["symbol_mask"], max_len=self.hparams.max_decode_len)
        return [decode_ids(row, self.vocab)[0] for row in gen.tokens.cpu().numpy()]

    def _decode_metrics(self, batch: dict[str, Tensor], stage: str) -> None:
        truth = batch["target_out"].cpu().numpy()
        dims = batch["dim"].cpu().numpy()
        pred_exprs = self.generate_expressions(batch)
        true_exprs = [decode_ids(row, self.vocab)[0] for row in truth]
        valid, err = expression_errors(pred_exprs, true_exprs, dims,
                                       self.hparams.expression_points,
                                       self.hparams.expression_seed)
        n = len(valid)
        self._sums.add("valid_pct", 100.0 * valid.sum(), n)
        self._sums.add("expr_error", float(np.nansum(err)), int(valid.sum()))
        if stage == "test" and self.hparams.text_ode_solve:
            self._text_ode_metrics(batch, [e if ok else None for e, ok in
                                           zip(pred_exprs, valid, strict=True)], dims)

    def _text_ode_metrics(self, batch: dict[str, Tensor], exprs: list, dims: np.ndarray
                          ) -> None:
        t_in = batch["t_in"][0].double().cpu().numpy()
        t_out = batch["t_out"][0].double().cpu().numpy()
        u0 = batch["u_in"][:, 0].double().cpu().numpy()
        traj, solved = solve_expressions(exprs, u0, dims, t_in[0], t_out)
        n = len(solved)
        self._sums.add("text_ode_solved_pct", 100.0 * solved.sum(), n)
        sel = torch.as_tensor(solved)
        err = relative_errors(torch.as_tensor(traj)[sel], batch["u_out"].cpu()[sel],
                              batch["dim_mask"].cpu()[sel], t_out,
                              {"2_6": WINDOWS["2_6"]})["2_6"]
        self._sums.add("text_ode_rel_l2_2_6", err.sum(), int(solved.sum()))

    def _log_sums(self, stage: str) -> None:
        strategy = self.trainer.strategy

        def reduce(t: Tensor) -> Tensor:
            return strategy.reduce(t.to(self.device), reduce_op="sum").cpu()

        means = self._sums.means(reduce)
        if "rel_l2_2_6" in means:
            means["rel_l2"] = means["rel_l2_2_6"] if stage == "test" else \
                means.pop("rel_l2_2_6")
        main = means.pop("rel_l2", None)
        self.log_dict({f"{stage}/{k}": v for k, v in means.items()})
        if main is not None:
            self.log(f"{stage}/rel_l2", main, prog_bar=stage == "val")

    @torch.no_grad()
    def figure_data(self, batch: Mapping[str, Tensor], n: int = 4) -> dict[str, Any]:
        """The first ``n`` trajectories of ``batch`` for :func:`opnet.plot.sample_figure`
        (kind ``trajectory``): observed ``u_in``, target ``u_out`` and the prediction
        [n, N, max_dim] (padded components NaN), their times, and the greedy-decoded
        equations (infix, one line per component) when the model has a symbol decoder."""
        b = {k: v[:n].to(self.device) for k, v in batch.items() if isinstance(v, Tensor)}
        pred, _ = self(b, logits=False)
        pad = ~b["dim_mask"][:, None, :]

        def values(t: Tensor) -> Any:
            return t.float().masked_fill(pad, float("nan")).cpu().numpy()

        equations = None
        if self.symbol_output:
            equations = ["predicted: not decodable" if e is None else
                         "predicted: " + e.to_infix(sep="\n") for e in
                         self.generate_expressions(b)]
        return {"kind": "trajectory", "inputs": values(b["u_in"]), "truth": values(b["u_out"]),
                "pred": values(pred), "equations": equations,
                "coords": {"in": b["t_in"].double().cpu().numpy(),
                           "out": b["t_out"].double().cpu().numpy()}}

    # -- checkpoint ------------------------------------------------------------------------
    def operator_extras(self) -> dict[str, Any]:
        io = dict(self.hparams.io)
        return {"symbols": io["symbols"], "max_dim": int(io["max_dim"]),
                "vocab": dict(io["vocab"]), "t_in": list(io["t_in"]), "t_out": list(io["t_out"]),
                "max_decode_len": int(self.hparams.max_decode_len),
                "expression_points": int(self.hparams.expression_points),
                "expression_seed": int(self.hparams.expression_seed)}
