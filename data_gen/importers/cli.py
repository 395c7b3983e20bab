"""The command line: ``python -m data_gen.importers FORMAT [SOURCE] --out FOLDER ...``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from opnet.data import h5

from .errors import ImporterError
from .formats import FORMATS
from .staging import ImportSummary, import_dataset


def _field(text: str) -> tuple[str, str]:
    role, sep, name = text.partition("=")
    if not sep or not role or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ROLE=NAME, e.g. coeff=a")
    return role, name


def build_parser() -> argparse.ArgumentParser:
    doc = importlib.import_module(__package__).__doc__ or ""  # the package docstring
    parser = argparse.ArgumentParser(
        prog="python -m data_gen.importers",
        description=doc.split("\n\n")[0] + "\n\n" + doc[doc.index("Formats"):doc.index(
            "Provenance")], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc[doc.index("Examples::"):].replace("Examples::", "examples:"))
    parser.add_argument("format", choices=sorted(FORMATS), help="layout of the source file(s)")
    parser.add_argument("source", nargs="?", help="file read by every split without its own "
                        "--<split>-file")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    for split in h5.SPLITS:
        parser.add_argument(f"--{split}", metavar="START:STOP",
                            help=f"samples of the {split} split (Python slice syntax)")
        parser.add_argument(f"--{split}-file", metavar="FILE",
                            help=f"read the {split} split from FILE (all of it unless --{split})")
    parser.add_argument("--stride", type=int, default=1, metavar="R",
                        help="keep every R-th grid point on each space axis")
    parser.add_argument("--time-stride", type=int, default=1, metavar="R",
                        help="keep every R-th time frame (fno-ns, pdebench)")
    parser.add_argument("--initial-steps", type=int, default=None, metavar="K",
                        help="frames given as input (pdebench default 10; fno-ns default 0: "
                        "a -> w0)")
    parser.add_argument("--field", type=_field, action="append", default=[],
                        metavar="ROLE=NAME", help="rename a field, e.g. --field coeff=a")
    parser.add_argument("--keys", nargs="+", help="pdebench: the arrays to import "
                        "(default: tensor)")
    parser.add_argument("--pde", help="the 'pde' attribute (default from the format)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset in --out")
    parser.add_argument("--allow-overlap", action="store_true",
                        help="allow overlapping ranges of one file")
    parser.add_argument("--block-mb", type=float, default=256.0,
                        help="samples are copied in blocks of about this many MiB")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> ImportSummary:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = import_dataset(
            args.format, args.out, args.source, train=args.train, val=args.val,
            test=args.test, train_file=args.train_file, val_file=args.val_file,
            test_file=args.test_file, stride=args.stride, time_stride=args.time_stride,
            initial_steps=args.initial_steps, fields=dict(args.field), keys=args.keys,
            pde=args.pde, overwrite=args.overwrite, allow_overlap=args.allow_overlap,
            block_mb=args.block_mb, progress=not args.no_progress and sys.stderr.isatty())
    except ImporterError as err:
        parser.exit(2, f"error: {err}\n")
    print(summary.table())
    return summary

