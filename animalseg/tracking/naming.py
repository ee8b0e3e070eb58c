"""Run names that tell runs apart in MLflow's runs table at its default column width.

A sweep's job is named by the values of the swept keys alone, nested in the table under its
parent, which is named by the experiment (or model) and what it sweeps; a single run by the
experiment (or model) and the overrides that change what is trained, paths left out.
The whole override list stays with the run as the ``overrides`` tag. Imports no TensorFlow, so
the command line can name a sweep's parent before it loads anything heavy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

from animalseg.files import write_atomic

SWEPT_FILE = "swept.json"  # in a sweep's folder: the keys its jobs differ by
MAX_NAME = 48  # about what the runs table shows of a name
OVERRIDES_TAG = "overrides"
SWEPT_TAG = "swept"
# overrides that say where a run logs and writes, not what it trains
PLUMBING = ("logger.", "hydra.", "paths.")


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def science_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that change what is trained (not where it is logged or written)."""
    return [o for o in overrides if not _key(o).startswith(PLUMBING)]


def swept_keys(overrides: Iterable[str], sweeper_params: Mapping[str, Any] | None = None) -> list[str]:
    """The keys a multirun's jobs differ by: those swept on its command line
    (``optimizer=adam,sgd``, ``seed=range(3)``) and the sweeper's ``params`` (``study=seeds``)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    keys = [o.key_or_group for o in parsed if o.is_sweep_override()]
    return keys + [str(k) for k in (sweeper_params or {}) if str(k) not in keys]


def write_swept(sweep_dir: Path, keys: list[str]) -> None:
    """Leave the swept keys in the sweep's folder for its jobs, which may run in other processes."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(sweep_dir / SWEPT_FILE, json.dumps(keys) + "\n")


def read_swept(sweep_dir: Path) -> list[str] | None:
    path = sweep_dir / SWEPT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key by its last part, unless two keys share it."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: tail if last.count(tail) == 1 else key for key, tail in zip(keys, last, strict=True)}


def _base(choices: Mapping[str, Any]) -> str:
    return str(choices.get("experiment") or choices.get("model") or "run")


def _fit(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def run_name(choices: Mapping[str, Any], overrides: list[str], swept: list[str] | None = None) -> str:
    """A sweep's job: the swept keys' values alone (``alpha=0.25 gamma=2``), nested under the
    parent whose name says the rest. A single run: ``<experiment or model> <key=value> ...``,
    the trained-on overrides without folders (``data.root=/...``) and without the group the name
    starts with. Keys are shortened to their last part (``boundary_weight=0.5``)."""
    base = _base(choices)
    if swept is not None:
        picked = [o for o in overrides if _key(o) in swept]
        short = _short_keys([_key(o) for o in picked])
        return _fit(" ".join(f"{short[_key(o)]}={o.split('=', 1)[1]}" for o in picked) or base)
    else:
        picked = [
            o
            for o in science_overrides(overrides)
            if "/" not in o.split("=", 1)[-1] and _key(o) not in ("experiment", "model") and "=" in o
        ]
    short = _short_keys([_key(o) for o in picked])
    parts = [f"{short[_key(o)]}={o.split('=', 1)[1]}" for o in picked]
    return _fit(" ".join([base, *parts]))


def parent_name(choices: Mapping[str, Any], swept: list[str]) -> str:
    """A sweep's parent run: ``<experiment or model> sweep: <swept keys>``."""
    return _fit(f"{_base(choices)} sweep: {', '.join(_short_keys(swept).values()) or 'one job'}")
