"""mypkg: a user's own package that plugs into opnet by config alone (examples/06_plugins.py).

* ``mypkg.heat``: a data generator (``pde._target_: mypkg.heat``),
* ``mypkg.TinyNet``: a model (``model._target_: mypkg.TinyNet``),
* ``mypkg/conf``: its own Hydra configs (``hydra.searchpath=[pkg://mypkg.conf]``):
  ``data=heat1d`` (a GridDataModule that generates its data with ``mypkg.heat`` when
  missing) and ``model=tiny_net``.
"""

from mypkg.nets import TinyNet

__all__ = ["TinyNet"]
