"""The five formats: how each source layout maps to opnet fields and coordinates."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .errors import ImporterError
from .sources import Source

F32 = np.float32


@dataclasses.dataclass(frozen=True)
class Options:
    """How to import: grid/time subsampling, the input/output split in time, field names."""

    stride: int = 1
    time_stride: int = 1
    initial_steps: int | None = None
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)  # role -> field name
    keys: Sequence[str] | None = None  # pdebench: the arrays to import


@dataclasses.dataclass
class Layout:
    """What one source file contributes: the reads, the opnet fields they make, coords."""

    n: int  # samples in the file
    reads: dict[str, tuple[slice, ...]]  # source key -> selection of the non-sample axes
    specs: dict[str, tuple[tuple[int, ...], type]]  # "inputs/coeff" -> (per-sample shape, dtype)
    make: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    coords: dict[str, np.ndarray]
    shapes: dict[str, list[int]]  # source key -> its shape (for the provenance YAML)


def _kept(size: int, step: int) -> int:
    return len(range(0, size, step))


def _array(src: Source, fmt: str, key: str, rank: int, what: str) -> tuple[int, ...]:
    if not src.has(key):
        raise src._missing(key, f" (the {fmt} format needs it: {what})")
    shape = src.shape(key)
    if len(shape) != rank or min(shape, default=0) < 1:
        note = "; a MATLAB v7.3 array, axes reversed" if src.transposed(key) else ""
        raise ImporterError(f"{src.path}: '{key}' has shape {list(shape)}, expected {what} "
                            f"({fmt}{note})")
    return shape


def _agree(src: Source, key: str, shape, expected, what: str) -> None:
    if tuple(shape) != tuple(expected):
        raise ImporterError(f"{src.path}: '{key}' has shape {list(shape)}, expected {what} = "
                            f"{list(expected)}")


def _name(opt: Options, role: str, default: str) -> str:
    return opt.fields.get(role, default)


def _grid_index(rank: int, stride: int) -> tuple[slice, ...]:
    return (slice(None, None, stride),) * rank


def _fno_darcy(src: Source, opt: Options) -> Layout:
    c = _array(src, "fno-darcy", "coeff", 3, "[N, s, s]")
    s = _array(src, "fno-darcy", "sol", 3, "[N, s, s]")
    _agree(src, "sol", s, c, "the shape of 'coeff'")
    r = opt.stride
    grid = (_kept(c[1], r), _kept(c[2], r))
    fin, fout = f"inputs/{_name(opt, 'coeff', 'coeff')}", f"outputs/{_name(opt, 'sol', 'sol')}"
    return Layout(
        n=c[0], reads={"coeff": _grid_index(2, r), "sol": _grid_index(2, r)},
        specs={fin: ((1, *grid), F32), fout: ((1, *grid), F32)},
        make=lambda a: {fin: a["coeff"][:, None], fout: a["sol"][:, None]},
        coords={"x": np.linspace(0, 1, c[1])[::r], "y": np.linspace(0, 1, c[2])[::r]},
        shapes={"coeff": list(c), "sol": list(s)})


def _periodic(s: int) -> np.ndarray:
    return np.linspace(0, 1, s + 1)[:-1]


def _fno_burgers(src: Source, opt: Options) -> Layout:
    a = _array(src, "fno-burgers", "a", 2, "[N, s]")
    u = _array(src, "fno-burgers", "u", 2, "[N, s]")
    _agree(src, "u", u, a, "the shape of 'a'")
    r = opt.stride
    grid = (_kept(a[1], r),)
    fin, fout = f"inputs/{_name(opt, 'a', 'u0')}", f"outputs/{_name(opt, 'u', 'u')}"
    return Layout(
        n=a[0], reads={"a": _grid_index(1, r), "u": _grid_index(1, r)},
        specs={fin: ((1, *grid), F32), fout: ((1, *grid), F32)},
        make=lambda d: {fin: d["a"][:, None], fout: d["u"][:, None]},
        coords={"x": _periodic(a[1])[::r], "t": np.array([1.0])},
        shapes={"a": list(a), "u": list(u)})


def _times(t: np.ndarray, k: int, ts: int) -> dict[str, np.ndarray]:
    t = t[::ts]
    return {"t_in": t[:k], "t": t[k:]} if k else {"t": t}


def _split_time(k: int, t_total: int, ts: int, src: Source, key: str, flag: str) -> None:
    frames = _kept(t_total, ts)
    if not 1 <= k < frames:
        raise ImporterError(f"{src.path}: {flag}={k} but '{key}' has {frames} time frames "
                            f"(time_stride={ts}); expected 1 <= {flag} < {frames}")


def _fno_ns(src: Source, opt: Options) -> Layout:
    k = opt.initial_steps or 0
    u = _array(src, "fno-ns", "u", 4, "[N, s, s, T] (time last)")
    r, ts = opt.stride, opt.time_stride
    grid = (_kept(u[1], r), _kept(u[2], r))
    index = (*_grid_index(2, r), slice(None, None, ts))
    frames = _kept(u[3], ts)
    t = np.arange(1.0, u[3] + 1)
    if src.has("t"):
        t = src.read_vector("t")
        if len(t) != u[3]:
            raise ImporterError(f"{src.path}: 't' has {len(t)} entries but 'u' has T = {u[3]} "
                                "records")
    coords = {"x": _periodic(u[1])[::r], "y": _periodic(u[2])[::r], **_times(t, k, ts)}
    name = _name(opt, "u", "w")
    if k:
        _split_time(k, u[3], ts, src, "u", "initial_steps")
        fin, fout = f"inputs/{name}", f"outputs/{name}"
        return Layout(
            n=u[0], reads={"u": index},
            specs={fin: ((k, *grid), F32), fout: ((frames - k, *grid), F32)},
            make=lambda d: {fin: np.moveaxis(d["u"][..., :k], -1, 1),
                            fout: np.moveaxis(d["u"][..., k:], -1, 1)},
            coords=coords, shapes={"u": list(u)})
    a = _array(src, "fno-ns", "a", 3, "[N, s, s] (or pass --initial-steps to use 'u' only)")
    _agree(src, "a", a, u[:3], "[N, s, s] of 'u'")
    fin, fout = f"inputs/{_name(opt, 'a', 'w0')}", f"outputs/{name}"
    return Layout(
        n=u[0], reads={"a": _grid_index(2, r), "u": index},
        specs={fin: ((1, *grid), F32), fout: ((frames, *grid), F32)},
        make=lambda d: {fin: d["a"][:, None], fout: np.moveaxis(d["u"], -1, 1)},
        coords=coords, shapes={"a": list(a), "u": list(u)})


_AXES = ("x", "y", "z")


def _pdebench_space(src: Source, dims: Sequence[int], r: int) -> dict[str, np.ndarray]:
    coords = {}
    for axis, size in zip(_AXES, dims, strict=False):
        key = f"{axis}-coordinate"
        if src.has(key):
            values = src.read_vector(key)
            if len(values) != size:
                raise ImporterError(f"{src.path}: '{key}' has {len(values)} entries, expected "
                                    f"{size} (the {axis} size of the data)")
        else:
            values = (np.arange(size) + 0.5) / size
        coords[axis] = values[::r]
    return coords


def _pdebench(src: Source, opt: Options) -> Layout:
    keys = list(opt.keys or ["tensor"])
    k = 10 if opt.initial_steps is None else opt.initial_steps
    first: str | None = None
    shapes = {}
    for key in keys:
        if not src.has(key):
            raise src._missing(key, " (the pdebench format reads --keys, default 'tensor')")
        shape = src.shape(key)
        if not 3 <= len(shape) <= 5:
            raise ImporterError(f"{src.path}: '{key}' has shape {list(shape)}, expected "
                                "[N, T, X(, Y(, Z))] (pdebench)")
        if first is not None:
            _agree(src, key, shape, shapes[first], f"the shape of '{first}'")
        first = first or key
        shapes[key] = list(shape)
    n, t_total, *space = shapes[first]
    r, ts = opt.stride, opt.time_stride
    _split_time(k, t_total, ts, src, first, "initial_steps")
    frames = _kept(t_total, ts)
    grid = tuple(_kept(s, r) for s in space)
    if src.has("t-coordinate"):
        t = src.read_vector("t-coordinate")
        if len(t) not in (t_total, t_total + 1):
            raise ImporterError(f"{src.path}: 't-coordinate' has {len(t)} entries, expected "
                                f"{t_total} or {t_total + 1} (T = {t_total} snapshots)")
        t = t[:t_total]  # PDEBench writes T+1 times for T snapshots
    else:
        t = np.arange(t_total, dtype=np.float64)
    index = (slice(None, None, ts), *_grid_index(len(space), r))
    names = {key: _name(opt, key, "u" if key == "tensor" else key) for key in keys}
    specs = {}
    for key in keys:
        specs[f"inputs/{names[key]}"] = ((k, *grid), F32)
        specs[f"outputs/{names[key]}"] = ((frames - k, *grid), F32)

    def make(d):
        out = {}
        for key in keys:
            out[f"inputs/{names[key]}"] = d[key][:, :k]
            out[f"outputs/{names[key]}"] = d[key][:, k:]
        return out

    return Layout(n=n, reads={key: index for key in keys}, specs=specs, make=make,
                  coords={**_pdebench_space(src, space, r), **_times(t, k, ts)}, shapes=shapes)


def _pdebench_darcy(src: Source, opt: Options) -> Layout:
    nu = _array(src, "pdebench-darcy", "nu", 3, "[N, X, Y]")
    u = _array(src, "pdebench-darcy", "tensor", 4, "[N, 1, X, Y]")
    _agree(src, "tensor", u, (nu[0], 1, *nu[1:]), "[N, 1, X, Y] with 'nu' [N, X, Y]")
    r = opt.stride
    grid = (_kept(nu[1], r), _kept(nu[2], r))
    fin = f"inputs/{_name(opt, 'nu', 'coeff')}"
    fout = f"outputs/{_name(opt, 'tensor', 'sol')}"
    return Layout(
        n=nu[0], reads={"nu": _grid_index(2, r), "tensor": (slice(None), *_grid_index(2, r))},
        specs={fin: ((1, *grid), F32), fout: ((1, *grid), F32)},
        make=lambda d: {fin: d["nu"][:, None], fout: d["tensor"]},
        coords=_pdebench_space(src, nu[1:], r), shapes={"nu": list(nu), "tensor": list(u)})


@dataclasses.dataclass(frozen=True)
class Format:
    build: Callable[[Source, Options], Layout]
    pde: str | None  # the ``pde`` attribute (None: from the file name)
    roles: tuple[str, ...] | None  # keys that --field may rename (None: any --keys)
    time: bool  # has a time axis (--time-stride, --initial-steps apply)


FORMATS: dict[str, Format] = {
    "fno-darcy": Format(_fno_darcy, "darcy", ("coeff", "sol"), False),
    "fno-burgers": Format(_fno_burgers, "burgers", ("a", "u"), False),
    "fno-ns": Format(_fno_ns, "navier_stokes", ("a", "u"), True),
    "pdebench": Format(_pdebench, None, None, True),
    "pdebench-darcy": Format(_pdebench_darcy, "darcy", ("nu", "tensor"), False),
}


