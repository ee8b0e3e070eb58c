"""The documentation: the README as a short guide whose commands name what exists, the MkDocs site
built with warnings as errors, and results pages rendered from MLflow runs and benchmark output."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import CONF, ROOT, quiet_env

README = ROOT / "README.md"
MAX_README_LINES = 300

spec = importlib.util.spec_from_file_location("results_page_script", ROOT / "scripts" / "results_page.py")
results_page = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = results_page  # its dataclass looks its module up there
spec.loader.exec_module(results_page)


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> list[list[str]]:
    """The block's commands as words, continuation lines joined, comments dropped."""
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def missing_references(markdown: str) -> list[str]:
    """Every ``*.py`` file and ``group=option`` of the bash blocks that names nothing in the repository."""
    problems = []
    for block in bash_blocks(markdown):
        for words in commands(block):
            for word in words:
                key, sep, value = word.lstrip("+~").partition("=")
                if word.endswith(".py") and not sep and not (ROOT / word).is_file():
                    problems.append(f"{word}: no such file")
                elif sep and (CONF / key).is_dir() and "<" not in value:
                    for option in value.strip("[]").split(","):
                        if option not in ("null", "") and not (CONF / key / f"{option}.yaml").is_file():
                            problems.append(f"{word}: no conf/{key}/{option}.yaml")
    return problems


def test_the_readme_is_a_short_guide():
    assert len(README.read_text().splitlines()) <= MAX_README_LINES


def test_the_readme_links_point_to_existing_files():
    links = re.findall(r"\]\(([^)#]+)[^)]*\)", README.read_text())
    assert [link for link in links if "://" not in link and not (ROOT / link).exists()] == []
    assert "docs/changelog.md" in links


# the changelog keeps the commands of their day: it is history, not instructions
GUIDE = [README, *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "changelog.md")]


@pytest.mark.parametrize("page", GUIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_guide_commands_name_existing_scripts_and_config_options(page):
    assert missing_references(page.read_text()) == []


def test_the_reference_check_finds_a_missing_script_and_option():
    text = "```bash\n.venv/bin/python nope.py model=unet,resnet9 \\\n    data=animals  # loss=nope\n```\n"
    assert missing_references(text) == ["nope.py: no such file", "model=unet,resnet9: no conf/model/resnet9.yaml"]


def test_ci_runs_the_readme_test_command():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert bash_blocks(README.read_text())[1].strip() == ci[-1]


@pytest.mark.slow
def test_the_site_builds_without_warnings(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        env=quiet_env(NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SegmentationModel" in (site / "reference" / "models" / "index.html").read_text()  # the API, rendered
    assert (site / "changelog" / "index.html").is_file()


STARTS = itertools.count(1_800_000_000_000, 3_600_000)  # ms: each run an hour after the one before


def make_run(
    client,
    experiment_id,
    name,
    seed,
    val_miou,
    ious,
    minutes,
    overrides=None,
    tags=None,
    status="FINISHED",
    params=None,
):
    start = next(STARTS)
    run = client.create_run(experiment_id, start_time=start, tags=tags or {}, run_name=name)
    run_id = run.info.run_id
    client.log_param(run_id, "seed", str(seed))
    for key, value in (params or {}).items():
        client.log_param(run_id, key, value)
    for epoch, value in ((1, val_miou / 2), (2, val_miou)):  # two epochs, the last the final weights'
        at = start + int(minutes * 60000 * epoch / 2)
        client.log_metric(run_id, "val_miou", value, step=epoch, timestamp=at)
    for name_, value in ious.items():
        client.log_metric(run_id, f"val_iou/{name_}", value, step=1)
    if overrides is not None:
        client.log_text(run_id, "\n".join(overrides) + "\n", "config/overrides.txt")
    client.set_terminated(run_id, status, end_time=start + int(minutes * 60000))
    return run_id


def table(page: str, first_header: str) -> list[list[str]]:
    """The rows of the markdown table whose first column is ``first_header`` (header included)."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_results_page_renders_runs_from_mlflow(tracking_uri, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)  # the page says it, not MLflow
    client = MlflowClient(tracking_uri)
    seeds = client.create_experiment("seeds")
    sweep = {"sweep_dir": "outputs/multiruns/seeds"}
    make_run(
        client,
        seeds,
        "seed=1",
        1,
        0.868,
        {"background": 0.917, "cat": 0.780},
        20.8,
        ["experiment=animals_cpu", "seed=1", "model.decoder_filters=[128,64,32,16,8]"],
        tags=sweep,
    )
    make_run(
        client,
        seeds,
        "seed=2",
        2,
        0.850,
        {"background": 0.901, "cat": 0.799},
        12.5,
        ["experiment=animals_cpu", "seed=2"],
        tags=sweep,
        status="KILLED",
    )
    make_run(client, seeds, "untagged", 3, 0.5, {"background": 0.5, "cat": 0.5}, 1.0, ["seed=3"])
    make_run(client, seeds, "parent", 0, 0.9, {}, 30.0, [], tags={**sweep, "run_kind": "study"})
    other = client.create_experiment("other")
    make_run(client, other, "elsewhere", 1, 0.1, {"background": 0.1}, 1.0, ["seed=1"], tags=sweep)

    out = tmp_path / "results" / "seeds.md"
    args = ["--tracking-uri", tracking_uri, "--experiment", "seeds", "--tag", "sweep_dir=outputs/multiruns/seeds"]
    assert results_page.main([*args, "--title", "Seeds", "--output", str(out)]) == 0
    page = out.read_text()
    assert "Downloading artifacts" not in capsys.readouterr().err  # the overrides are fetched quietly

    assert page.startswith("# Seeds\n")
    assert f"`python scripts/results_page.py --tracking-uri {tracking_uri} --experiment seeds --tag" in page
    assert table(page, "run") == [
        [
            "run",
            "seed",
            "val_miou (final weights)",
            "IoU background",
            "IoU cat",
            "lowest class",
            "first val_miou >= 0.80",
            "duration",
            "command",
        ],
        [
            "seed=1",
            "1",
            "0.868",
            "0.917",
            "0.780",
            "cat 0.780",
            "epoch 2 (20.8 min)",
            "20.8 min",
            "`python train.py experiment=animals_cpu seed=1 'model.decoder_filters=[128,64,32,16,8]'`",
        ],
        [
            "seed=2 (KILLED)",
            "2",
            "0.850",
            "0.901",
            "0.799",
            "cat 0.799",
            "epoch 2 (12.5 min)",
            "12.5 min",
            "`python train.py experiment=animals_cpu seed=2`",
        ],
    ]
    assert "Final val_miou over 2 runs" not in page  # seed=2 was killed: one finished run, no mean
    reach = [*args, "--reach", "0.86", "--title", "Seeds", "--output", str(out)]
    assert results_page.main(reach) == 0
    assert [row[6] for row in table(out.read_text(), "run")[1:]] == ["epoch 2 (20.8 min)", "never"]

    assert results_page.main(["--tracking-uri", tracking_uri, "--experiment", "nope", "--output", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("error", "Traceback"))]
    assert errors == [
        "error: --experiment nope: no such experiment in the tracking store (there: Default, other, seeds)"
    ]


def test_results_page_gives_the_mean_per_value_of_a_param(tracking_uri, tmp_path, capsys):
    client = MlflowClient(tracking_uri)
    rows = client.create_experiment("rows")
    for seed, decoder, miou in ((1, "fpn", 0.88), (2, "fpn", 0.86), (1, "unet", 0.87), (2, "unet", 0.87)):
        make_run(
            client, rows, f"{decoder}{seed}", seed, miou, {"cat": miou}, 10.0, [], params={"model.decoder": decoder}
        )
    out = tmp_path / "rows.md"
    args = ["--tracking-uri", tracking_uri, "--experiment", "rows", "--group", "model.decoder", "--output", str(out)]
    assert results_page.main(args) == 0
    page = out.read_text()
    fpn = "Final val_miou over 2 finished runs with model.decoder=fpn: mean 0.870, standard deviation 0.014"
    # t(0.975, 1) = 12.706: the half-width is 12.706 * 0.01414 / sqrt(2) = 0.127
    assert f"{fpn}, 95 % confidence interval of the mean 0.743 to 0.997 (Student t)." in page
    assert "with model.decoder=unet: mean 0.870, standard deviation 0.000, 95 % confidence interval" in page
    assert "--group model.decoder" in page

    assert results_page.main([*args[:4], "--no-summary", "--output", str(out)]) == 0  # different recipes: no mean
    page = out.read_text()
    assert "Final val_miou over" not in page and "--experiment rows --no-summary" in page
    assert len(table(page, "run")) == 5
    fpn_only = [*args[:4], "--param", "model.decoder=fpn", "--output", str(out)]
    assert results_page.main(fpn_only) == 0  # the runs that logged this config value
    page = out.read_text()
    assert [row[0] for row in table(page, "run")[1:]] == ["fpn1", "fpn2"]
    assert "Final val_miou over 2 finished runs: mean 0.870, standard deviation 0.014, 95 % confidence" in page
    assert "--experiment rows --param model.decoder=fpn" in page
    assert results_page.main([*args, "--no-summary"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --group model.decoder --no-summary: --group asks for the mean per value, --no-summary for none"
    )


def test_results_page_rebuilds_the_command_of_a_run_without_overrides_from_its_params(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("old")
    params = {**results_page.default_params(), "loss.boundary_weight": "0.5", "model.params": "123"}
    run_id = make_run(client, experiment, "old run", params["seed"], 0.7, {"background": 0.7}, 2.0)  # no overrides
    params["optimizer.new_key"] = "None"
    del params["trainer.verbose"]
    for key, value in params.items():
        if key != "seed":
            client.log_param(run_id, key, value)

    out = tmp_path / "old.md"
    assert results_page.main(["--tracking-uri", tracking_uri, "--experiment", "old", "--output", str(out)]) == 0
    command = table(out.read_text(), "run")[1][-1]
    assert command == (
        "`python train.py loss.boundary_weight=0.5 +optimizer.new_key=null '~trainer.verbose'` "
        "(rebuilt from params: no config/overrides.txt)"
    )


def write_bench(path: Path, command: str | None, result: dict) -> Path:
    lines = ([f"$ {command}"] if command else []) + ["a table the script prints", json.dumps(result)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_results_page_renders_benchmark_output(tmp_path, capsys):
    docs = tmp_path / "docs" / "results"
    docs.mkdir(parents=True)
    (docs / "index.md").write_text(
        "# Results\n\n<!-- results pages: begin -->\n- [stale](gone.md)\n<!-- results pages: end -->\nafter\n"
    )
    (docs / "older.md").write_text("# An older page\n\ntext\n")
    data_none = write_bench(
        tmp_path / "a.txt",
        "python scripts/bench_data.py augmentation=none",
        {"augmentation": "none", "crop": 256, "img_s": 562.0, "runs_img_s": [560.1, 562.0, 570.3]},
    )
    data_basic = write_bench(
        tmp_path / "b.txt",
        "python scripts/bench_data.py augmentation=basic",
        {"augmentation": "basic", "crop": 256, "img_s": 442.0, "runs_img_s": [440.0, 442.0, 450.0]},
    )
    infer = write_bench(
        tmp_path / "c.txt",
        "python scripts/bench_infer.py --batches 1",
        {
            "model": "untrained",
            "results": [{"format": "tflite_int8", "size": 256, "batch": 1, "ms_per_image": 51.0}],
            "batch1_speedup": {"256": {"fastest": "tflite_int8", "x_vs_keras_predict": 4.3}},
        },
    )
    out = docs / "bench.md"
    argv = ["--bench", str(data_none), str(data_basic), str(infer), "--title", "Benchmarks", "--output", str(out)]
    assert results_page.main(argv) == 0
    page = out.read_text()

    assert table(page, "command")[:3] == [
        ["command", "augmentation", "crop", "img_s", "runs_img_s"],
        ["`python scripts/bench_data.py augmentation=none`", "none", "256", "562.0", "560.1, 562.0, 570.3"],
        ["`python scripts/bench_data.py augmentation=basic`", "basic", "256", "442.0", "440.0, 442.0, 450.0"],
    ]
    infer_rows = table(page[page.index("## bench_infer") :], "command")
    assert infer_rows == [
        ["command", "model", "batch1_speedup.256.fastest", "batch1_speedup.256.x_vs_keras_predict"],
        ["`python scripts/bench_infer.py --batches 1`", "untrained", "tflite_int8", "4.3"],
    ]
    assert table(page, "format") == [["format", "size", "batch", "ms_per_image"], ["tflite_int8", "256", "1", "51.0"]]
    assert "--tracking-uri" not in page  # no runs: the command says only what it read
    assert (docs / "index.md").read_text() == (
        "# Results\n\n<!-- results pages: begin -->\n"
        "- [Benchmarks](bench.md)\n- [An older page](older.md)\n"
        "<!-- results pages: end -->\nafter\n"
    )

    bare = write_bench(tmp_path / "bare.txt", None, {"img_s": 1.0})
    assert results_page.main(["--bench", str(bare), "--output", str(tmp_path / "x.md")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: --bench {bare}: no '$ <command>' line")
    assert not (tmp_path / "x.md").exists()


def sweep_to_first_job(word: str) -> str:
    """``key=a,b`` → ``key=a``: a sweep's first job (a list in brackets stays whole)."""
    key, sep, value = word.partition("=")
    if not sep or value.startswith(("[", "{")):
        return word
    return f"{key}={value.split(',')[0]}"


def guide_commands(script: str) -> list[tuple[str, list[str]]]:
    """``(page, overrides)`` of every ``python <script> ...`` in the guide without a placeholder."""
    found = []
    for page in GUIDE:
        for block in bash_blocks(page.read_text()):
            for words in commands(block):
                if not any(w.endswith(script) for w in words) or any("<" in w or "..." in w for w in words):
                    continue
                args = words[next(i for i, w in enumerate(words) if w.endswith(script)) + 1 :]
                if "--cfg" in args:  # --cfg <job|hydra|all>: the app's flag and its value, not overrides
                    at = args.index("--cfg")
                    args = args[:at] + args[at + 2 :]
                found.append((page.name, [sweep_to_first_job(w) for w in args if w not in ("-m", "--help")]))
    return found


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "predict.py"])
def test_the_guide_commands_compose_as_written(script):
    """Every command of the README and the docs (a sweep: its first job) composes its config as
    written, so no option, key or value a page shows is stale."""
    from hydra import compose, initialize_config_dir

    config_name = script.removesuffix(".py")
    found = guide_commands(script)
    assert found or script != "train.py"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for page, overrides in found:
            try:
                compose(config_name=config_name, overrides=overrides)
            except Exception as error:  # every composition error, named with its command
                pytest.fail(f"{page}: python {script} {' '.join(overrides)}: {error}")


def cheap_guide_commands() -> list[list[str]]:
    """The guide's commands cheap enough to run as written: the apps' ``--help`` and ``--cfg``
    (answered before TensorFlow loads) and ``debug=tiny`` runs (seconds)."""
    found = []
    for page in GUIDE:
        for block in bash_blocks(page.read_text()):
            for words in commands(block):
                if words and words[0].endswith("python") and any(w in ("--help", "--cfg", "debug=tiny") for w in words):
                    found.append(words)
    return found


@pytest.mark.slow
def test_the_guides_cheap_commands_run_as_written(tmp_path):
    found = cheap_guide_commands()
    assert any("debug=tiny" in words for words in found) and any("--help" in words for words in found)
    for words in found:
        command = [sys.executable, str(ROOT / words[1]), *words[2:]]
        if "debug=tiny" in words:  # its outputs in a scratch folder, not the repository's
            command += [f"hydra.run.dir={tmp_path / 'run'}", f"logger.tracking_uri=sqlite:///{tmp_path}/m.db"]
        done = subprocess.run(command, cwd=ROOT, env=quiet_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(words)}: {done.stderr[-2000:]}"
