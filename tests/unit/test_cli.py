"""The command line as one tool: pipeline-ordered help, one spelling per thing (old ones deprecated,
still working), presets by name, and every error one line through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pathgan.cli import main
from pathgan.cli._options import SECTIONS
from pathgan.presets import describe_preset, preset_names, preset_path

PIPELINE = ["tile", "train-latent", "evaluate", "train-encoder", "encode", "classify", "roi", "export-synthetic"]


def _run(args: list[str], **kw: object) -> Result:
    return CliRunner().invoke(main, args, **kw)  # type: ignore[arg-type]


def _one_error_line(res: Result) -> str:
    """The single ``Error: ...`` line of a failed command; no traceback, no other exception."""
    assert res.exit_code in (1, 2), res.output
    assert isinstance(res.exception, SystemExit), (res.exception, res.output)
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    assert not res.output.split(errors[0], 1)[1].strip(), f"text after the error line: {res.output!r}"
    return errors[0]


# -- help ----------------------------------------------------------------------------------------
def test_help_lists_commands_in_pipeline_order_with_uncut_summaries() -> None:
    res = _run(["--help"], terminal_width=80)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in main.commands]
    assert listed[: len(PIPELINE)] == PIPELINE
    assert listed[len(PIPELINE):] == ["train-translate", "translate", "models", "presets", "report",
                                          "export-model"]
    assert [s for s, _ in SECTIONS] == [line.rstrip(":") for line in lines if line.endswith(":") and
                                        not line.startswith(" ") and line not in ("Options:",)]
    for name, cmd in main.commands.items():
        assert cmd.short_help, f"{name} has no explicit short_help"
        row = next(line for line in lines if line.split()[:1] == [name])
        assert row.rstrip().endswith(cmd.short_help), f"{name}: summary cut or wrapped in 80 columns: {row!r}"


def test_new_commands_are_appended_in_the_last_section() -> None:
    import click

    from pathgan.cli._options import PathganGroup

    @click.group(cls=PathganGroup)
    def grp() -> None:
        """g"""

    for name in ("zzz-new", "presets", "tile", "report"):
        grp.command(name, short_help=f"{name} summary")(lambda: None)
    assert grp.list_commands(click.Context(grp)) == ["tile", "presets", "report", "zzz-new"]
    out = CliRunner().invoke(grp, ["--help"]).output
    assert out.index("Utilities:") < out.index("zzz-new summary")


@pytest.mark.parametrize("name", sorted(main.commands))
def test_each_help_shows_only_the_current_spellings(name: str) -> None:
    res = _run([name, "--help"], terminal_width=100)
    assert res.exit_code == 0, res.output
    for old in ("--run-id", "--runs", "--a ", "--b ", "RUN_DIR]", "[STORES]", "configs/"):
        assert old not in res.output, f"{name} --help mentions {old!r}"
    if name in ("evaluate", "train-encoder", "encode", "export-synthetic", "translate", "classify", "roi"):
        assert "--run " in res.output
    if "--device" in res.output:
        assert "[default: auto]" in " ".join(res.output.split())


# -- presets -------------------------------------------------------------------------------------
def test_presets_command_lists_every_kind_with_one_line_descriptions() -> None:
    res = _run(["presets"])
    assert res.exit_code == 0, res.output
    for kind in ("train", "tile", "encoder", "translate"):
        assert f"{kind} (--config of pathgan" in res.output
        for name in preset_names(kind):  # type: ignore[arg-type]
            desc = describe_preset(preset_path(kind, name))  # type: ignore[arg-type]
            assert desc and "\n" not in desc and len(desc) < 120, (name, desc)
            assert any(line.split()[:1] == [name] and line.endswith(desc) for line in res.output.splitlines())
    assert "pathologygan-64-cpu" in res.output and "The CPU preset" in res.output


def test_config_takes_a_preset_name_a_file_or_the_old_configs_path(tmp_path: Path) -> None:
    stores = str(tmp_path / "s")
    res = _run(["train-latent", "--stores", stores, "--config", "pathologygan-56-cpu", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["train"]["model"] == "pathologygan-56-cpu"
    own = tmp_path / "mine.yaml"
    own.write_text("model: pathologygan-56-cpu\nbatch_size: 3\n")
    res = _run(["train-latent", "--stores", stores, "--config", str(own), "--dry-run"])
    assert yaml.safe_load(res.stdout)["train"]["batch_size"] == 3
    res = _run(["train-latent", "--stores", stores, "--config", "configs/train/pathologygan-56-cpu.yaml", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == ["pathgan: --config configs/train/pathologygan-56-cpu.yaml is deprecated; use "
                                       "--config pathologygan-56-cpu (presets ship inside the package) (removed in 0.3)"]
    res = _run(["train-latent", "--stores", stores, "--config", "pathologygan-9000", "--dry-run"])
    line = _one_error_line(res)
    assert line == ("Error: --config pathologygan-9000: no such file and no train preset of that name; known train "
                    f"presets: {', '.join(preset_names('train'))}")
    res = _run(["train-encoder", "--run", str(tmp_path), "--config", "cyclegan-cpu"])
    assert "known encoder presets: default" in _one_error_line(res)


def test_train_latent_without_config_uses_the_cpu_preset_on_a_cpu(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    res = _run(["train-latent", "--stores", str(tmp_path), "--device", "cpu", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["train"]["model"] == "pathologygan-64-cpu"
    (line,) = res.stderr.splitlines()
    assert line.startswith("pathgan train-latent: no --config on a CPU: using the CPU preset pathologygan-64-cpu")
    # on a GPU the defaults (the paper-sized model) stay, and the line says which config runs
    import torch

    import pathgan.device

    monkeypatch.setattr(pathgan.device, "select_device", lambda name="auto": torch.device("cuda"))
    res = _run(["train-latent", "--stores", str(tmp_path), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(res.stdout)["train"]["model"] == "pathologygan-224"
    assert res.stderr.splitlines() == ["pathgan train-latent: no --config: using the TrainConfig defaults "
                                       "(pathologygan-224, batch 64, 100,000 steps) on cuda"]


# -- deprecated spellings: one line on stderr, naming the new one ---------------------------------
def test_positional_run_dir_is_deprecated_but_accepted(tmp_path: Path) -> None:
    not_a_run = tmp_path / "somewhere"
    not_a_run.mkdir()
    for cmd in ("evaluate", "train-encoder"):
        res = _run([cmd, str(not_a_run)])
        assert res.stderr.splitlines()[0] == ("pathgan: positional RUN_DIR is deprecated; use --run RUN_DIR "
                                              "(removed in 0.3)")
        # parsed as the run: the failure is about that folder, in one line
        # evaluate also takes an exported model, train-encoder only a run directory
        assert _one_error_line(res) == {
            "evaluate": f"Error: {not_a_run} is neither a train-latent run directory (no config.yaml) "
                        "nor an exported model (no config.json)",
            "train-encoder": f"Error: {not_a_run} is not a pathgan run directory (no config.yaml)"}[cmd]
        res = _run([cmd, str(not_a_run), "--run", str(not_a_run)])
        assert res.exit_code == 2 and "not both" in res.output
        res = _run([cmd])
        assert res.exit_code == 2 and "give --run RUN_DIR" in res.output


def test_runs_and_domain_options_are_deprecated_but_accepted(tmp_path: Path) -> None:
    res = _run(["train-latent", "--stores", str(tmp_path), "--runs", str(tmp_path / "r"), "--config",
                "pathologygan-56-cpu", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == ["pathgan: --runs is deprecated; use --out (removed in 0.3)"]
    res = _run(["train-translate", "--a", str(tmp_path / "nope.zarr"), "--b", str(tmp_path / "nope-b.zarr"),
                "--runs", str(tmp_path / "r"), "--config", "cyclegan-cpu"])
    assert res.stderr.splitlines()[:3] == ["pathgan: --a is deprecated; use --stores-a (removed in 0.3)",
                                           "pathgan: --b is deprecated; use --stores-b (removed in 0.3)",
                                           "pathgan: --runs is deprecated; use --out (removed in 0.3)"]
    assert _one_error_line(res).startswith(f"Error: --stores-a {tmp_path / 'nope.zarr'}: does not exist")
    assert not (tmp_path / "r").exists()
    res = _run(["train-translate", "--a", "x", "--stores-a", "y", "--stores-b", "z"])
    assert res.exit_code == 2 and "not both" in res.output


# -- every error one line ---------------------------------------------------------------------------
def test_bad_yaml_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: pathologygan-64-cpu\nbatch_size: [1, 2\n")
    line = _one_error_line(_run(["train-latent", "--stores", str(tmp_path), "--config", str(bad), "--dry-run"]))
    assert line.startswith(f"Error: --config {bad}: not valid YAML (line ")
    seq = tmp_path / "seq.yaml"
    seq.write_text("- 1\n- 2\n")
    line = _one_error_line(_run(["train-latent", "--stores", str(tmp_path), "--config", str(seq), "--dry-run"]))
    assert line == f"Error: --config {seq}: expected a mapping of TrainConfig fields, got list"
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("batch_sise: 3\n")
    line = _one_error_line(_run(["train-latent", "--stores", str(tmp_path), "--config", str(unknown), "--dry-run"]))
    assert line.startswith(f"Error: --config {unknown}: unknown TrainConfig field(s) ['batch_sise']")
    line = _one_error_line(_run(["tile", str(tmp_path), "--config", str(bad)]))
    assert line.startswith(f"Error: --config {bad}: not valid YAML")


@pytest.mark.parametrize(("args", "expected"), [
    (["train-latent", "--set", "batch_size=abc"], "Error: --set batch_size: expected an integer, got 'abc'"),
    (["train-latent", "--set", "lr_g=fast"], "Error: --set lr_g: expected a number, got 'fast'"),
    (["train-latent", "--set", "compile=maybe"], "Error: --set compile: expected true or false, got 'maybe'"),
    (["train-latent", "--set", "loss=magic"], "Error: --set loss='magic' is not allowed; expected"),
    (["train-latent", "--set", "colour=red"], "Error: --set colour: not a TrainConfig field; allowed: "),
    (["train-latent", "--set", "batch_size"], "Error: Invalid value for --set: 'batch_size' is not KEY=VALUE"),
    (["train-translate", "--stores-a", "a", "--stores-b", "b", "--set", "ngf=wide"],
     "Error: --set ngf: expected an integer, got 'wide'"),
])
def test_bad_set_values_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    if args[0] == "train-latent":
        args = [*args, "--stores", str(tmp_path), "--config", "pathologygan-64-cpu", "--dry-run"]
    else:
        args = [*args, "--dry-run"]
    assert _one_error_line(_run(args)).startswith(expected)


def test_train_encoder_bad_set_is_one_line(tmp_path: Path) -> None:
    # the config is built before the run is opened, so this needs no run
    line = _one_error_line(_run(["train-encoder", "--run", str(tmp_path), "--set", "steps=ten"]))
    assert line == "Error: --set steps: expected an integer, got 'ten'"


# One malformed value of every option type, across the commands: (command line, option named in the error).
_MALFORMED = [
    # integers
    (["tile", ".", "--patch-px", "abc"], "--patch-px"),
    (["evaluate", "--run", ".", "--n", "many"], "--n"),
    (["evaluate", "--run", ".", "--n", "2"], "--n"),
    (["encode", "--run", ".", "--batch-size", "x"], "--batch-size"),
    (["classify", "--run", "r", "--folds", "1"], "--folds"),
    (["export-synthetic", "--run", ".", "--n", "x"], "--n"),
    (["translate", "--run", ".", "--out", "o", "--n-eval", "x"], "--n-eval"),
    (["train-encoder", "--run", ".", "--eval-refine-steps", "-1"], "--eval-refine-steps"),
    # floats
    (["tile", ".", "--mpp", "half"], "--mpp"),
    (["roi", "--run", "r", "--threshold", "high"], "--threshold"),
    (["roi", "--run", "r", "--threshold", "1.5"], "--threshold"),
    (["train-latent", "--minutes", "soon"], "--minutes"),
    (["export-synthetic", "--run", ".", "--n", "1", "--truncation", "2"], "--truncation"),
    # choices
    (["tile", ".", "--codec", "png"], "--codec"),
    (["evaluate", "--run", ".", "--extractor", "vgg"], "--extractor"),
    (["classify", "--run", "r", "--model", "svm"], "--model"),
    (["export-synthetic", "--run", ".", "--n", "1", "--format", "gif"], "--format"),
    (["translate", "--run", ".", "--out", "o", "--direction", "up"], "--direction"),
    # devices
    (["train-latent", "--device", "gpu"], "--device"),
    (["evaluate", "--run", ".", "--device", "cuda:x"], "--device"),
    (["train-encoder", "--run", ".", "--device", "tpu"], "--device"),
    (["encode", "--run", ".", "--device", "gpu"], "--device"),
    (["export-synthetic", "--run", ".", "--n", "1", "--device", "gpu"], "--device"),
    (["train-translate", "--device", "gpu"], "--device"),
    (["translate", "--run", ".", "--out", "o", "--device", "gpu"], "--device"),
    # paths that must exist
    (["evaluate", "--run", "no/such/run"], "--run"),
    (["train-encoder", "--run", "no/such/run"], "--run"),
    (["encode", "--run", "no/such/run"], "--run"),
    (["export-synthetic", "--run", "no/such/run", "--n", "1"], "--run"),
    (["translate", "--run", "no/such/run", "--out", "o"], "--run"),
    (["train-latent", "--resume", "no/such/run"], "--resume"),
    (["evaluate", "--run", ".", "--weights", "no/such.pt"], "--weights"),
    (["classify", "--run", "r", "--labels", "no/such.csv"], "--labels"),
    (["roi", "--run", "r", "--direction", "no/such.npy"], "--direction"),
    (["export-synthetic", "--run", ".", "--n", "1", "--labels", "no/such.csv"], "--labels"),
    # key=value
    (["train-encoder", "--run", ".", "--set", "steps"], "--set"),
    (["train-translate", "--set", "=3"], "--set"),
]


@pytest.mark.parametrize(("args", "option"), _MALFORMED, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_malformed_option_values_are_one_line_naming_the_option(args: list[str], option: str) -> None:
    line = _one_error_line(_run(args))
    assert option in line, line


def test_missing_inputs_are_one_line(tmp_path: Path) -> None:
    line = _one_error_line(_run(["classify", "--run", "no/such/run"]))
    assert line.startswith("Error: --run no/such/run: no such run directory; expected a run directory or a bare run id")
    line = _one_error_line(_run(["classify", "--run", "bad id!", "--stores", str(tmp_path)]))
    assert "run id 'bad id!' is not allowed" in line
    line = _one_error_line(_run(["roi", "--run", "r", "--direction", __file__, "--stores", str(tmp_path / "x.zarr")]))
    assert line == f"Error: --stores {tmp_path / 'x.zarr'}: does not exist; expected a <slide_id>.zarr patch store or a folder of them"
    line = _one_error_line(_run(["tile", "--manifest", str(tmp_path / "m.csv")]))
    assert "m.csv" in line


@pytest.mark.slow  # builds a wheel (~10-20 s)
def test_the_wheel_ships_every_preset(tmp_path: Path) -> None:
    """Presets are package data: a wheel install has them (configs/ was not part of the package)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(repo / "pathgan", src / "pathgan", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("pathgan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("train", "tile", "encoder", "translate"):
        for preset in preset_names(kind):  # type: ignore[arg-type]
            assert f"pathgan/presets/{kind}/{preset}.yaml" in names
