"""``python -m data_gen pde=darcy n_train=1000 resolution=64 workers=2 out=data/darcy64``.

On n machines or jobs: ``... shard=i num_shards=n`` for each i (same ``out``); the last shard
to finish merges them. One command on one machine (Hydra's launchers: basic, joblib, slurm)::

    python -m data_gen -m shard='range(0,4)' num_shards=4 out=data/darcy64

A thin Hydra wrapper over :func:`data_gen.generate`; configuration in ``conf/datagen.yaml``
and ``conf/pde/<name>.yaml``. Expected errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys

from opnet.threads import configure_threads, openmp_settings

# before torch loads (a generator may use it): a passive OpenMP wait policy on a busy machine
os.environ.update(openmp_settings())

import hydra
from omegaconf import DictConfig, OmegaConf

from data_gen.checks import integer
from data_gen.pdes import generator_key
from data_gen.runner import GenerationError, generate
from opnet.cli import checked_overrides
from opnet.config import CONF


def default_out(cfg: DictConfig) -> str:
    """``out``, or ``data/<pde name><resolution>`` when it is not set."""
    if cfg.get("out"):
        return str(cfg.out)
    resolution = cfg.get("resolution")
    if resolution is None:
        resolution = cfg.pde.get("resolution", "")
    name = cfg.pde.get("name") or str(cfg.pde.get("_target_", "")).rpartition(".")[2]
    return f"data/{name}{resolution}"


# conf/datagen.yaml puts a multirun's sweep folder inside the dataset folder: ${datagen_out:}
OmegaConf.register_new_resolver("datagen_out", lambda *, _root_: default_out(_root_),
                                replace=True)


def run(cfg: DictConfig):
    pde = OmegaConf.to_container(cfg.pde, resolve=True)
    if cfg.get("resolution") is not None:
        if "resolution" not in pde:
            raise KeyError(f"resolution={cfg.resolution}: pde '{generator_key(pde)}' has no "
                           "resolution parameter (its parameters: "
                           f"{sorted(k for k in pde if k not in ('name', '_target_'))})")
        pde["resolution"] = integer("resolution", cfg.resolution, 2)
    configure_threads(cfg.get("threads"), "generate")  # workers > 1: 1 thread per worker
    summary = generate(pde, out=default_out(cfg), n_train=cfg.n_train, n_val=cfg.n_val,
                       n_test=cfg.n_test, seed=cfg.seed, workers=cfg.workers,
                       chunk_size=cfg.chunk_size, shard_size=cfg.shard_size, shard=cfg.shard,
                       num_shards=cfg.num_shards, overwrite=cfg.overwrite,
                       progress=cfg.progress)
    print(summary.table())
    return summary


@checked_overrides("datagen")  # a typo'd key: one line with the nearest key, exit 2
@hydra.main(version_base="1.3", config_path=str(CONF), config_name="datagen")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (KeyError, ValueError, GenerationError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
