"""Import data people already have (FNO ``.mat`` files, PDEBench HDF5) into the opnet schema.

The result is a dataset folder (``train.h5``, ``val.h5``, ``test.h5``) written through
:mod:`opnet.data.h5`, exactly what :class:`opnet.data.datamodule.GridDataModule` reads::

    python -m data_gen.importers FORMAT [SOURCE] --out FOLDER [--train A:B] [--val A:B]
        [--test A:B] [--train-file F] [--val-file F] [--test-file F] [--stride R]
        [--time-stride R] [--initial-steps K] [--field ROLE=NAME] [--keys K ...] [--overwrite]

The package, by concept: :mod:`.matv5` (MAT v5 header parser), :mod:`.sources` (one source
file), :mod:`.formats` (the five layouts), :mod:`.staging` (ranges, the atomic folder write),
:mod:`.cli` (argument parsing; ``__main__`` runs it).

Formats (source keys -> opnet fields; arrays are indexed ``[..., i, j]`` <-> ``(x_i, y_j)``):

``fno-darcy``       ``coeff``, ``sol`` [N, s, s]  ->  inputs/coeff, outputs/sol [N, 1, s, s];
                    x, y = linspace(0, 1, s) (nodes).
``fno-burgers``     ``a``, ``u`` [N, s]  ->  inputs/u0, outputs/u [N, 1, s];
                    x = linspace(0, 1, s+1)[:-1] (periodic), t = [1.0].
``fno-ns``          ``a`` [N, s, s], ``u`` [N, s, s, T] (time LAST in the FNO files)
                    ->  inputs/w0 [N, 1, s, s], outputs/w [N, T, s, s] (time right after N);
                    with ``--initial-steps K`` (FNO's ``T_in``; ``a`` is then not needed):
                    inputs/w = the first K records [N, K, s, s], outputs/w = the rest.
                    x, y periodic; t = the file's ``t`` when present, else 1, 2, ..., T.
``pdebench``        ``tensor`` [N, T, X(, Y(, Z))] (or the ``--keys`` given, e.g. the CFD
                    files' ``density Vx pressure``)  ->  inputs/u = the first
                    ``--initial-steps`` frames (default 10, PDEBench's ``initial_step``),
                    outputs/u = the remaining frames (those PDEBench scores). ``tensor`` is
                    named ``u``; other keys keep their name.
``pdebench-darcy``  ``nu`` [N, X, Y], ``tensor`` [N, 1, X, Y]  ->  inputs/coeff,
                    outputs/sol [N, 1, X, Y] (the names of our Darcy, so the Darcy configs
                    train on it unchanged).

PDEBench coordinates come from ``x-coordinate``, ``y-coordinate``, ``z-coordinate`` and
``t-coordinate`` (cell centres (i+1/2)/X when absent). PDEBench writes T+1 entries in
``t-coordinate`` for T snapshots; the first T are the snapshot times. Time-series sets store
``coords/t_in`` (times of the input frames) and ``coords/t`` (times of the output frames).

Splits: ``--train/--val/--test`` take Python slice syntax over the samples of the file
(``0:1000``, ``1000:``, ``:100``, ``-100:``); a split with no range and no file is written
empty (0 samples). By default every split reads SOURCE; ``--test-file F`` (etc.) makes that
split read F instead (all of F unless a range is given) -- FNO ships Darcy train and test in
two files. Ranges of the same file may not overlap (``--allow-overlap`` to permit it).
``--stride R`` keeps every R-th grid point on each space axis (FNO's ``::r``);
``--time-stride`` does the same on the time axis, before the input/output split.
``--field ROLE=NAME`` renames a field (roles: the source keys listed above).

Files: MATLAB v5/v6/v7 MAT-files (small variables through ``scipy.io.loadmat``, large ones
memory-mapped, or streamed through zlib when compressed), MATLAB v7.3 MAT-files (HDF5 with
every array stored transposed: a dataset with a ``MATLAB_class`` attribute has its axes
reversed back to MATLAB's order) and plain HDF5 (PDEBench). Samples are copied in blocks of
about ``--block-mb`` MiB of memory; values are stored as float32 and ``meta/global_index`` is
each sample's index in its source file. In MAT-files the sample axis varies fastest, so each
block of a large variable reads strided through all of it (a compressed v5 variable is
inflated once per block): a larger ``--block-mb`` means fewer passes.

Provenance: the attribute ``generator_config`` of every split file (and ``import.yaml`` in the
folder) is a YAML description of the import -- importer, source files, their sha256, keys,
shapes, index ranges, options -- with no ``seed`` attribute, so ``data_gen.generate`` never
takes an imported folder for one of its own (and refuses to overwrite it without
``overwrite``). The folder is written atomically: splits are staged in ``.import-tmp/`` and
moved in at the end; an existing dataset folder is replaced only with ``--overwrite``.

Examples::

    python -m data_gen.importers fno-darcy piececonst_r421_N1024_smooth1.mat --train 0:1000 \\
        --val 1000:1024 --test-file piececonst_r421_N1024_smooth2.mat --test 0:100 \\
        --stride 5 --out data/fno_darcy85
    python -m data_gen.importers fno-burgers burgers_data_R10.mat --train 0:1000 \\
        --val 1000:1100 --test 1100:1200 --stride 8 --out data/fno_burgers1024
    python -m data_gen.importers fno-ns NavierStokes_V1e-3_N5000_T50.mat --train 0:1000 \\
        --test 1000:1200 --initial-steps 10 --out data/fno_ns_1e-3
    python -m data_gen.importers pdebench 1D_Advection_Sols_beta0.1.hdf5 --train 0:9000 \\
        --val 9000:9500 --test 9500: --initial-steps 10 --stride 4 --out data/pdebench_adv
    python -m data_gen.importers pdebench-darcy 2D_DarcyFlow_beta1.0_Train.hdf5 \\
        --train 0:9000 --val 9000:9500 --test 9500: --out data/pdebench_darcy_beta1
"""

from .cli import build_parser, main
from .errors import ImporterError
from .formats import F32, FORMATS, Format, Layout, Options
from .sources import Source
from .staging import SIDECAR, STAGING, ImportSummary, import_dataset, parse_range

__all__ = ["F32", "FORMATS", "SIDECAR", "STAGING", "Format", "ImportSummary", "ImporterError",
           "Layout", "Options", "Source", "build_parser", "import_dataset", "main", "parse_range"]
