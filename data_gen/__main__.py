"""``python -m data_gen pde=darcy n_train=1000 resolution=64 workers=2 out=data/darcy64``.

On n machines: ``... shard=i num_shards=n`` on machine i (same ``out``), then
``python -m data_gen.merge <out>``.

A thin Hydra wrapper over :func:`data_gen.generate`; configuration in ``conf/datagen.yaml``
and ``conf/pde/<name>.yaml``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from data_gen.runner import GenerationError, generate


def run(cfg: DictConfig):
    pde = OmegaConf.to_container(cfg.pde, resolve=True)
    if cfg.get("resolution") is not None:
        if "resolution" not in pde:
            raise KeyError(f"resolution={cfg.resolution}: pde '{pde['name']}' has no resolution "
                           f"parameter (its parameters: {sorted(k for k in pde if k != 'name')})")
        pde["resolution"] = int(cfg.resolution)
    out = cfg.out or f"data/{pde['name']}{pde.get('resolution', '')}"
    summary = generate(pde, out=out, n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test,
                       seed=cfg.seed, workers=cfg.workers, chunk_size=cfg.chunk_size,
                       shard_size=cfg.shard_size, shard=cfg.shard, num_shards=cfg.num_shards,
                       overwrite=cfg.overwrite, progress=cfg.progress)
    print(summary.table())
    return summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="datagen")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except (KeyError, ValueError, GenerationError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
