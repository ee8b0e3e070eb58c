"""Class names and colours from a CVAT ``labelmap.txt`` (``name:r,g,b:parts:actions``)."""

from __future__ import annotations

from pathlib import Path

from animalseg.errors import DataError


def read_labelmap(path: str | Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    """Class names and RGB colours in file order; ``#`` lines and blank lines are skipped."""
    path = Path(path)
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    problems: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        try:
            rgb = tuple(int(v) for v in fields[1].split(","))
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
        except (IndexError, ValueError):
            problems.append(f"{path}:{number}: expected 'name:r,g,b:parts:actions', got {line!r}")
            continue
        names.append(fields[0].strip())
        colors.append(rgb)
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"{path}: class {name!r} is listed more than once")
    for color in {c for c in colors if colors.count(c) > 1}:
        problems.append(f"{path}: colour {color} is used by more than one class")
    if not names and not problems:
        problems.append(f"{path}: no classes found")
    if problems:
        raise DataError(problems)
    return names, colors
