"""Imports run one way: data, augment, models, losses and metrics at the bottom, training above
them, tracking above training (attached as a callback), entry points on top; no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

PACKAGE = ROOT / "animalseg"
BOTTOM = {"data", "augment", "models", "losses", "metrics", "files", "errors", "paths", "compat"}
ABOVE_TRAINING = {"tracking", "build", "run", "trained", "evaluate", "predict", "cli", "scripting", "console"}


def unit(path: Path) -> str:
    """The subpackage (or top-level module) a file belongs to."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imports() -> dict[str, set[str]]:
    """unit -> the other units it imports, from every import statement (TYPE_CHECKING included)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = unit(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("animalseg.") and name.split(".")[1] != source:
                    graph.setdefault(source, set()).add(name.split(".")[1])
    return graph


def test_the_bottom_layers_never_import_training_or_anything_above():
    graph = imports()
    for lower in BOTTOM:
        assert not graph.get(lower, set()) & ({"training"} | ABOVE_TRAINING), lower


def test_training_does_not_import_tracking_or_the_entry_points():
    assert not imports().get("training", set()) & ABOVE_TRAINING


def test_no_cycle_between_subpackages():
    graph = imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or reaches(nxt, goal, seen | {nxt}) for nxt in graph.get(start, set()) - seen)

    assert [u for u in graph if reaches(u, u, set())] == []


def test_inference_sits_between_the_models_and_training():
    """The Predictor serves validation, the commands and the MLflow Model alike: it imports only
    the bottom layers, so a deployed model loads nothing of training."""
    assert imports().get("inference", set()) <= BOTTOM
