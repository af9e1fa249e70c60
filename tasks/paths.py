"""Where optforge keeps what it computes once (the cache) and what set-up downloads (the data)."""

from __future__ import annotations

import os
import pathlib


def cache_dir() -> pathlib.Path:
    """Baseline sweeps, exported train splits, the preference task's reference model and pairs:
    $OPTFORGE_CACHE_DIR, else $XDG_CACHE_HOME/optforge."""
    explicit = os.environ.get("OPTFORGE_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base) / "optforge"


def data_dir() -> pathlib.Path:
    """Where set-up puts what it downloads (the preference task's corpus): $OPTFORGE_DATA_DIR, else
    $XDG_DATA_HOME/optforge, else ~/.local/share/optforge. Apart from the cache, which holds only
    what can be recomputed offline and may be wiped (or pointed elsewhere, as tests do)."""
    explicit = os.environ.get("OPTFORGE_DATA_DIR")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(pathlib.Path.home() / ".local" / "share")
    return pathlib.Path(base) / "optforge"
