"""``python -m data_gen.importers ...``: see :mod:`data_gen.importers.cli`."""

from data_gen.importers.cli import main

if __name__ == "__main__":
    main()
