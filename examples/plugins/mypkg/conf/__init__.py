"""Hydra configs of mypkg: hydra.searchpath=[pkg://mypkg.conf] (pkg:// wants a package)."""
