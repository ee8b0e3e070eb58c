"""Atomic file writes: a kill at any moment leaves either the old file or the new one, never half.

Every layer writes through these (dataset caches, checkpoints, the resume state, run configs).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from animalseg.errors import TrainingError

if TYPE_CHECKING:  # the command line writes files before Keras loads
    import keras


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a per-process temp file, fsync and rename."""
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(temp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def atomic_save(model: keras.Model, path: Path) -> None:
    """Save ``model`` (with its optimizer state) to ``path`` via a temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(temp)
        _fault_injection_pause()
        os.replace(temp, path)
    except OSError as error:
        raise TrainingError(f"cannot write checkpoint {path} ({error}); earlier checkpoints are untouched") from None
    finally:
        temp.unlink(missing_ok=True)


def atomic_link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (a hard link, or a copy where links are not
    supported), replacing it atomically: a checkpoint written once serves under two names."""
    temp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    try:
        temp.unlink(missing_ok=True)
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, target)
    except OSError as error:
        raise TrainingError(f"cannot write {target} ({error}); earlier checkpoints are untouched") from None
    finally:
        temp.unlink(missing_ok=True)


def _fault_injection_pause() -> None:
    """Tests set ANIMALSEG_SAVE_PAUSE (seconds) to kill a run between writing and renaming."""
    pause = os.environ.get("ANIMALSEG_SAVE_PAUSE")
    if pause:
        time.sleep(float(pause))
