"""Predict with a trained operator from the command line: input fields in a file, predictions
in another, no Python to write.

    python -m opnet.predict ckpt=RUN_FOLDER input=data/darcy32/test.h5 out=pred.h5
    python -m opnet.predict ckpt=PATH input=data/darcy32 split=val out=pred.npz
    python -m opnet.predict ckpt=PATH input=coeff.npy out=pred.npy batch_size=16 device=cuda
    python -m opnet.predict ckpt=PATH input=fields.npz field=coeff out=pred.npz
    python -m opnet.predict ckpt=PATH input=a.npy out=pred.npz coverage=0.9 calibrate=data/darcy32

(Hydra app, ``conf/predict/predict.yaml``; writes only ``out``: no run folder, no log file.)

Inputs (``input=``), in physical units, in the layouts :meth:`Surrogate.predict` and
:meth:`DeepONetSurrogate.predict` accept:

* ``.h5``: an opnet split file (:mod:`opnet.data.h5`), or a dataset folder and ``split=``:
  the operator's input fields ``inputs/<field>`` (``field=`` reads another one); a DeepONet
  reads its input field at the file's sensors, which must be its training sensors.
* ``.npy``: one array (grid operators ``[B, C_in, *grid]``, ``[B, *grid]`` or ``[*grid]``
  with one input channel; DeepONets ``[B, m]`` or ``[m]``, CNN branches images).
* ``.npz``: the array named ``field=``, else its only array, else the arrays named like the
  operator's input fields (several: concatenated on the channel axis).

Outputs (``out=``, by its suffix), written atomically (a temporary file renamed when whole):

* ``.npy``: the prediction as ``predict`` returns it (float32);
* ``.npz``: ``prediction`` (and ``lower``/``upper`` with ``coverage=``);
* ``.h5``: a small opnet schema file (readable by :func:`opnet.data.h5.read_fields`):
  ``outputs/<output field>`` ``[N, C, *grid]`` (DeepONets ``[N, Q]`` per output and
  ``coords/query``), ``lower/<field>``/``upper/<field>`` with ``coverage=``, attributes
  ``checkpoint``, ``input``, ``model`` (and ``coverage``). One sample without a batch axis
  is stored as N = 1.

The folder of ``out`` must exist (a typo in a path creates no folder tree). ``DeepONets``:
``query=<.npy>`` gives query points ``[Q, d]`` (default: the training points).
``coverage=`` (in (0, 1)) adds conformal bands: the operator is calibrated on the ``val``
split of ``calibrate=<dataset folder>`` (``op.calibrate``), then ``predict(a,
coverage=...)``; a surrogate without ``calibrate`` is refused in one line.

Batches of ``batch_size`` (default: the surrogate's own default); a progress bar (rich, on
stderr) is shown when ``progress=true`` (the default), stderr is a terminal and there are
more than :data:`PROGRESS_MIN_BATCHES` batches. Every bad input is one line ``error: ...``
naming the key or file, exit code 2 (:mod:`opnet.cli`).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from opnet.threads import openmp_settings

# python -m opnet.predict: the OpenMP wait policy before torch loads (see opnet.evaluate)
os.environ.update(openmp_settings())

import numpy as np

from opnet.data import h5
from opnet.files import unique_tmp

__all__ = ["OUTPUT_SUFFIXES", "INPUT_SUFFIXES", "check_options", "predict_batches",
           "read_input", "run", "write_output"]

INPUT_SUFFIXES = (".h5", ".npy", ".npz")
OUTPUT_SUFFIXES = (".h5", ".npy", ".npz")
SPLITS = ("train", "val", "test")
PROGRESS_MIN_BATCHES = 4  # fewer batches: no bar (it would flash and vanish)
REQUIRED = {"ckpt": "<path to a .ckpt file or a run folder>",
            "input": "<.h5 split file or dataset folder, .npy or .npz>",
            "out": "<output file .npy, .npz or .h5>"}


# ------------------------------------------------------------------------------ options
def _integer(key: str, value: Any, null: str | None = None) -> int | None:
    if value is None and null is not None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"{key}={value!r}: expected an integer >= 1"
                     + (f" or null ({null})" if null else ""))


def check_options(cfg: Mapping[str, Any]) -> None:
    """Refuse bad values of ``conf/predict/predict.yaml``'s keys in one line naming the key,
    before the checkpoint or any input is read (and before anything is computed)."""
    for key, what in REQUIRED.items():
        if cfg.get(key) in (None, "", "???"):
            raise ValueError(f"{key}={what}: required")
    _integer("batch_size", cfg.get("batch_size"), "the surrogate's default")
    split = cfg.get("split", "test")
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {', '.join(SPLITS)}")
    for key in ("progress", "channels_last", "compile"):
        if not isinstance(cfg.get(key, False), bool):
            raise ValueError(f"{key}={cfg[key]!r}: expected true or false")
    field = cfg.get("field")
    if field is not None and not isinstance(field, str):
        raise ValueError(f"field={field!r}: expected the name of an array (or null)")
    out = Path(str(cfg["out"]))
    if out.is_dir():
        raise IsADirectoryError(f"out={out}: is a folder; expected a file name ending "
                                f"{', '.join(OUTPUT_SUFFIXES)}")
    if out.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"out={out}: unsupported output type '{out.suffix}'; expected a file "
                         f"name ending {', '.join(OUTPUT_SUFFIXES)}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"out={out}: folder {out.parent} does not exist (create it "
                                "first; predict makes no folders)")
    coverage = cfg.get("coverage")
    if coverage is not None:
        if isinstance(coverage, bool) or not isinstance(coverage, int | float) \
                or not 0 < coverage < 1:
            raise ValueError(f"coverage={coverage!r}: expected a probability in (0, 1), e.g. "
                             "0.9, or null (no bands)")
        if out.suffix == ".npy":
            raise ValueError(f"out={out}: a .npy file holds one array; with coverage= write "
                             ".npz (prediction, lower, upper) or .h5")
        if cfg.get("calibrate") in (None, ""):
            raise ValueError(f"coverage={coverage}: needs calibrate=<dataset folder> (the "
                             "calibration data: its val split)")
    source = Path(str(cfg["input"]))
    if not source.exists():
        raise FileNotFoundError(f"input={source}: no such file or folder")
    if not source.is_dir() and source.suffix not in INPUT_SUFFIXES:
        raise ValueError(f"input={source}: unsupported input type '{source.suffix}'; expected "
                         ".h5 (an opnet split file, or a dataset folder with split=), .npy or "
                         ".npz")
    if source.suffix == ".npy" and field is not None:
        raise ValueError(f"field={field}: a .npy file holds one array; field= names an array "
                         "of a .npz file or an input field of a .h5 file")


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``ckpt=``: a checkpoint file, a run folder's best checkpoint, or a sweep folder (a
    folder of run folders: an ensemble, kept as the folder)."""
    from opnet.checkpoint import checkpoint_file
    from opnet.surrogate.uncertainty import run_folders

    if not (Path(path).exists() or Path(path).is_symlink()):
        raise FileNotFoundError(f"ckpt={path}: no such checkpoint file or run folder")
    if run_folders(path):
        return Path(path)
    return checkpoint_file(path, key="ckpt")


# ------------------------------------------------------------------------------- inputs
def _kind(op: Any) -> str:
    from opnet.families import family_of

    return family_of(op.metadata).kind


def _real(path: Path, name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "fiu":
        raise ValueError(f"input={path}: array '{name}' has dtype {a.dtype}, expected real "
                         "numbers (float32 in physical units)")
    return a


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"input={path}: not a readable .npy file ({err})") from err


def _load_npz(path: Path, field: str | None, wanted: list[str]) -> tuple[np.ndarray, str]:
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"input={path}: not a readable .npz file ({err})") from err
    with z:
        names = list(z.files)
        if field is not None:
            if field not in names:
                raise KeyError(f"field={field}: {path} has no array '{field}' (it has: "
                               f"{', '.join(names) or 'none'})")
            return z[field], field
        if len(names) == 1:
            return z[names[0]], names[0]
        if wanted and all(w in names for w in wanted):
            arrays = [z[w] for w in wanted]
            if len(arrays) == 1:
                return arrays[0], wanted[0]
            if any(a.ndim < 3 for a in arrays):
                raise ValueError(f"input={path}: arrays {wanted} must be [B, C, *grid] each "
                                 "to be stacked as the operator's input channels")
            return np.concatenate(arrays, axis=1), "+".join(wanted)
        raise ValueError(f"input={path}: holds arrays {names or '(none)'}; give field=<name> "
                         f"(the operator's input field(s): {', '.join(wanted)})")


def read_input(cfg: Mapping[str, Any], op: Any) -> tuple[np.ndarray, Path]:
    """The input array ``input=`` names for ``op`` (see the module docstring) and the file
    it came from."""
    path, field = Path(str(cfg["input"])), cfg.get("field")
    io, kind = op.io, _kind(op)
    wanted = [io["input_field"]] if kind == "points" else list(io["input_fields"])
    if path.is_dir():
        path = h5.split_path(path, cfg.get("split", "test"))
        if not path.is_file():
            raise FileNotFoundError(f"input={cfg['input']}: a folder without "
                                    f"{path.name} (split={cfg.get('split', 'test')}); give a "
                                    ".h5 file, or a dataset folder holding <split>.h5")
    if path.suffix == ".npy":
        return _real(path, path.stem, _load_npy(path)), path
    if path.suffix == ".npz":
        a, name = _load_npz(path, field, wanted)
        return _real(path, name, a), path
    if kind == "points":  # a DeepONet: its input field at the file's sensors
        from opnet.data.point_files import read_point_inputs
        from opnet.surrogate.uncertainty import check_sensors

        u, geo = read_point_inputs(path, field or io["input_field"], io["branch"],
                                   io["dataset"].get("sensor_stride", 1))
        check_sensors(op, geo["sensors"], f"input={path}")
        return u, path
    return h5.read_fields(path, "inputs", [field] if field else wanted), path


def _query(cfg: Mapping[str, Any], op: Any) -> np.ndarray | None:
    q = cfg.get("query")
    if q is None:
        return None
    if _kind(op) != "points":
        raise ValueError(f"query={q}: query points are for DeepONets; a grid operator "
                         "predicts on its input's grid")
    path = Path(str(q))
    if path.suffix != ".npy" or not path.is_file():
        raise FileNotFoundError(f"query={path}: expected an existing .npy file of query "
                                "points [Q, d]")
    return _real(path, path.stem, _load_npy(path))


# ------------------------------------------------------------------------------ predict
def _has_batch_axis(op: Any, a: np.ndarray) -> bool:
    """Whether ``a`` is a batch (its first axis: samples) in ``op``'s layouts, as the
    surrogate reads them; one sample without a batch axis is predicted in one call."""
    io = op.io
    if _kind(op) == "points":
        shape = tuple(io["input_shape"])
        if len(shape) == 1:
            return a.ndim != 1
        single = a.shape == shape or (shape[0] == 1 and a.shape == shape[1:])
        return not single
    return not (a.ndim == len(io["grid"]) and io["in_channels"] == 1)


def _default_batch(op: Any) -> int:
    """The surrogate's default ``batch_size`` (an ensemble's: its first member's)."""
    member = getattr(op, "members", [op])[0]
    return int(inspect.signature(member.predict).parameters["batch_size"].default)


def _show_progress(enabled: bool, batches: int, stream: Any = None) -> bool:
    """A bar for more than a few batches, on a terminal's stderr, unless ``progress=false``."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(enabled and batches >= PROGRESS_MIN_BATCHES and isatty is not None and isatty())


def _join(parts: list[Any]) -> Any:
    """Batch results concatenated: arrays, or NamedTuples of arrays (field by field)."""
    first = parts[0]
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in first._fields))
    return np.concatenate(parts)


def predict_batches(predict: Callable[..., Any], a: np.ndarray, batch_size: int,
                    batched: bool = True, progress: bool = False,
                    where: str = "input") -> Any:
    """``predict(a)`` in batches of ``batch_size`` samples (``batched``: ``a``'s first
    axis is the batch), the same numbers as one ``predict(a, batch_size=batch_size)`` call.
    An input ``predict`` refuses is refused for the whole array (its shape, the right sample
    index), prefixed by ``where``."""
    n = len(a) if batched else 0
    starts = range(0, n, batch_size) if n else [None]
    try:
        if len(starts) == 1:
            return predict(a, batch_size=batch_size)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress("[progress.description]{task.description}", BarColumn(),
                       MofNCompleteColumn(), TimeRemainingColumn(),
                       console=Console(stderr=True),
                       disable=not _show_progress(progress, len(starts)))
        parts = []
        with bar:
            task = bar.add_task("predict", total=n)
            for start in starts:
                parts.append(predict(a[start:start + batch_size], batch_size=batch_size))
                bar.advance(task, min(batch_size, n - start))
        return _join(parts)
    except ValueError as err:
        message = str(err)
        if len(starts) > 1:  # the same checks on the whole input (they come before any work)
            try:
                predict(a, batch_size=batch_size)
            except ValueError as whole:
                message = str(whole)
        raise ValueError(f"{where}: {message}") from None


# ------------------------------------------------------------------------------ outputs
def _write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    tmp = unique_tmp(path, hidden=True)
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _channels_first(op: Any, y: np.ndarray) -> np.ndarray:
    """A grid prediction as ``[N, C, *grid]``; a DeepONet's as ``[N, Q, C]``."""
    if _kind(op) == "points":
        single = y.ndim == 1 or (y.ndim == 2 and op.io["out_channels"] > 1)
        y = y[None] if single else y
        return y if y.ndim == 3 else y[..., None]
    dims = len(op.io["grid"])
    return y[None, None] if y.ndim == dims else (y[:, None] if y.ndim == dims + 1 else y)


def _fields(op: Any, y: np.ndarray) -> dict[str, np.ndarray]:
    """``{output field: [N, C, *grid]}`` (DeepONets ``[N, Q]`` per output channel)."""
    names, points = list(op.io["output_fields"]), _kind(op) == "points"
    c = y.shape[-1] if points else y.shape[1]
    take = (lambda i: y[..., i]) if points else (lambda i: y[:, i:i + 1])
    if len(names) == c:
        return {name: take(i) for i, name in enumerate(names)}
    if len(names) == 1 and not points:
        return {names[0]: y}
    return {"_".join(names) or "prediction": y}


def write_output(path: Path, op: Any, result: Any, attrs: Mapping[str, Any],
                 query: np.ndarray | None = None) -> Path:
    """Write ``result`` (an array, or mean/lower/upper) to ``path`` by its suffix."""
    bands = not isinstance(result, np.ndarray)
    mean = result.mean if bands else result
    if path.suffix == ".npy":
        _write_atomic(path, lambda f: np.save(f, mean))
    elif path.suffix == ".npz":
        arrays = {"prediction": mean}
        if bands:
            arrays.update(lower=result.lower, upper=result.upper)
        _write_atomic(path, lambda f: np.savez(f, **arrays))
    else:
        groups = {"outputs": _fields(op, _channels_first(op, mean))}
        if bands:
            groups["lower"] = _fields(op, _channels_first(op, result.lower))
            groups["upper"] = _fields(op, _channels_first(op, result.upper))
        n = len(next(iter(groups["outputs"].values())))
        arrays = {f"{g}/{k}": np.ascontiguousarray(v, np.float32)
                  for g, fields in groups.items() for k, v in fields.items()}
        coords = {}
        if _kind(op) == "points":
            coords["query"] = op.query if query is None else query
        specs = {k: (v.shape[1:], np.float32) for k, v in arrays.items()}
        with h5.SplitWriter(path, n, specs, coords, dict(attrs)) as w:
            w.write(0, arrays, np.arange(n))
            w.commit()
    return path


# ------------------------------------------------------------------------------ the app
def run(cfg: Mapping[str, Any]) -> Path:
    """What ``python -m opnet.predict`` does with its config (``conf/predict/predict.yaml``):
    read ``input``, predict in batches, write ``out``; returns the written path."""
    from opnet.surrogate import load_operator

    check_options(cfg)
    ckpt = checkpoint_path(str(cfg["ckpt"]))
    op = load_operator(ckpt)
    kind = _kind(op)
    if kind not in ("grid", "points"):
        raise ValueError(f"ckpt={ckpt}: a {kind} operator; python -m opnet.predict serves grid "
                         "operators and DeepONets (PROSE: ProseSurrogate.predict in Python)")
    if cfg.get("device", "cpu") != "cpu":
        op.to(cfg["device"])
    if cfg.get("compile") or cfg.get("channels_last"):
        if not callable(getattr(op, "optimize", None)):
            raise ValueError(f"compile/channels_last: only grid operators have the optimised "
                             f"path (op.optimize); this is a {type(op).__name__}")
        try:
            op.optimize(channels_last=bool(cfg.get("channels_last")),
                        compile=bool(cfg.get("compile")))
        except ValueError as err:
            raise ValueError(f"compile/channels_last: {err}") from None
    query = _query(cfg, op)
    a, source = read_input(cfg, op)
    coverage = cfg.get("coverage")
    extra: dict[str, Any] = {} if query is None else {"y": query}
    if coverage is not None:
        if not callable(getattr(op, "calibrate", None)):
            raise ValueError(f"coverage={coverage}: this {type(op).__name__} has no conformal "
                             "calibration (op.calibrate) in this opnet; predict without "
                             "coverage=")
        op.calibrate(data=str(cfg["calibrate"]), split="val",
                     batch_size=cfg.get("batch_size"))
        extra["coverage"] = float(coverage)
    batch_size = cfg.get("batch_size") or _default_batch(op)

    def predict(x: np.ndarray, batch_size: int) -> Any:
        return op.predict(x, batch_size=batch_size, **extra)

    result = predict_batches(predict, a, batch_size, _has_batch_axis(op, a),
                             bool(cfg.get("progress", True)), f"input={source}")
    out = Path(str(cfg["out"]))
    attrs = {"checkpoint": str(ckpt), "input": str(source),
             "model": str(op.metadata["model"].get("_target_")), "coverage": coverage}
    write_output(out, op, result, attrs, query)
    mean = result if isinstance(result, np.ndarray) else result.mean
    print(f"prediction {list(mean.shape)} -> {out}", flush=True)
    return out


def main() -> None:
    from opnet.cli import run_app

    run_app("predict", REQUIRED, run)


if __name__ == "__main__":
    main()
