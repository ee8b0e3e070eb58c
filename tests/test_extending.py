"""docs/architecture.md's "Adding a loss" and "Adding a callback", run as written: each is one
Python file plus one YAML file, found by the config on a search path of the user's own."""

from __future__ import annotations

import json
import re
import sys

import pytest
from hydra import compose, initialize_config_dir

from animalseg.build import build_loss, instantiate_callbacks
from animalseg.errors import ConfigError
from animalseg.run import run
from animalseg.training.callbacks import order_callbacks
from tests.helpers import CONF, ROOT, TINY

PAGE = (ROOT / "docs" / "architecture.md").read_text()


def section(title: str) -> str:
    return PAGE.split(f"### {title}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def files(title: str) -> dict[str, str]:
    """The section's code blocks by the path their first line names (``# mypackage/x.py``)."""
    blocks = re.findall(r"^```(?:python|yaml)\n# (\S+)\n(.*?)^```", section(title), flags=re.DOTALL | re.MULTILINE)
    return {path: text for path, text in blocks}


@pytest.fixture
def user_project(tmp_path, monkeypatch):
    """The two sections' files written where a user would keep them: a package and a conf folder."""
    written = {**files("Adding a loss"), **files("Adding a callback")}
    assert sorted(written) == [
        "conf/callbacks/epochs_since_best.yaml",
        "conf/loss/soft_error.yaml",
        "mypackage/lovasz.py",
        "mypackage/patience_log.py",
    ]
    for path, text in written.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "mypackage" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("mypackage")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def compose_with(project, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"hydra.searchpath=[file://{project / 'conf'}]", *overrides])


def test_the_documented_loss_is_a_term_with_its_own_checked_argument(user_project):
    cfg = compose_with(user_project, ["loss=[ce,soft_error]", "loss.terms.soft_error.weight=0.5"])
    objective = build_loss(cfg.loss, ignore_index=255, class_weights=[1.0, 2.0, 3.0])
    ce, soft_error = objective.semantic.losses
    assert type(soft_error).__name__ == "SoftErrorLoss" and soft_error.power == 2.0
    assert objective.semantic.weights == [1.0, 0.5]
    assert objective.class_weighted() == [ce, soft_error]  # it declared the capability
    bad = compose_with(user_project, ["loss=soft_error", "loss.terms.soft_error.power=0"])
    with pytest.raises(ConfigError, match=r"loss.terms.soft_error.power=0: must be > 0"):
        build_loss(bad.loss, ignore_index=255, class_weights=None)


def test_the_documented_callback_takes_its_stage(user_project):
    cfg = compose_with(user_project, [*TINY, "callbacks=[default,epochs_since_best]"])
    ordered = [c.name for c in order_callbacks(instantiate_callbacks(cfg))]
    assert ordered.index("evaluation") < ordered.index("epochs_since_best") < ordered.index("checkpoint")


@pytest.mark.slow
def test_a_run_trains_with_the_documented_loss_and_callback(user_project, tmp_path):
    overrides = [
        *TINY,
        "trainer.epochs=2",
        "loss=[ce,soft_error]",
        "loss.class_weights=auto",
        "callbacks=[default,epochs_since_best,class_weight_fade]",
        "callbacks.class_weight_fade.epochs=2",
        "~callbacks.mlflow",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    metrics = run(compose_with(user_project, overrides), run_dir=tmp_path / "run")
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())
    assert [epoch["epochs_since_best"] for epoch in state["history"]] in ([0, 0], [0, 1])
    assert set(state["callbacks"]["epochs_since_best"]) == {"best", "since"}
    assert 0.0 <= metrics["val_miou"] <= 1.0
