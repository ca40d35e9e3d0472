"""pathgan.export on hand-made (untrained) tiny runs: round trips, files without pickle, every
validation error, interruption, the model card's facts, and the commands that take an exported model."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _export_run import EVAL, SESSION, STEP, make_untrained_run
from click.testing import CliRunner

from pathgan.cli import main
from pathgan.errors import ConfigError, PathganError
from pathgan.export import (
    CONFIG_FILE,
    ENCODER_FILE,
    GENERATOR_FILE,
    export_model,
    is_exported_model,
    model_card,
    open_model,
    resolve_model_id,
)
from pathgan.export._card import training_time
from pathgan.latents import LatentModel

REPO = Path(__file__).resolve().parents[2]
#: float16 weights: what the tiny models' images and encodings may differ by from float32 (measured
#: at most 1/255 and 5e-4 on these models; the bounds leave room without hiding a wrong cast).
FP16_MAX_PIXEL, FP16_MEAN_PIXEL, FP16_MAX_W = 3, 0.25, 5e-3


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export_runs")
    return {"adain": make_untrained_run(root / "adain"),
            "batchnorm": make_untrained_run(root / "bn", style="batchnorm"),
            "conditional": make_untrained_run(root / "cond", classes=("stroma", "tumor"), encoder=False,
                                              evaluated=False)}


@pytest.fixture(scope="module")
def exported(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {f"{name}-{dtype}": export_model(run, root / f"{name}-{dtype}", dtype=dtype)
            for name, run in runs.items() for dtype in ("float32", "float16")}


def _patches(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _payload_bytes(file: Path) -> int:
    """Bytes of tensor data in a safetensors file: all but the u64 header length and the JSON header."""
    raw = file.read_bytes()
    return len(raw) - 8 - struct.unpack("<Q", raw[:8])[0]


def _rewrite_config(folder: Path, **changes: Any) -> None:
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    cfg.update(changes)
    (folder / CONFIG_FILE).write_text(json.dumps(cfg))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ["adain", "batchnorm", "conditional"])
def test_float32_export_generates_and_encodes_exactly_as_the_run(runs: dict[str, Path], exported: dict[str, Path],
                                                                 name: str) -> None:
    a, b = LatentModel.load(runs[name]), LatentModel.load(exported[f"{name}-float32"])
    cls = "tumor" if name == "conditional" else None
    z = a.sample_z(7, seed=4)
    np.testing.assert_array_equal(a.generate(z=z, class_name=cls, truncation=0.7),
                                  b.generate(z=z, class_name=cls, truncation=0.7))
    np.testing.assert_array_equal(a.generate(z=z, class_name=cls, noise=True, seed=3),
                                  b.generate(z=z, class_name=cls, noise=True, seed=3))
    np.testing.assert_array_equal(a.mean_w, b.mean_w)
    if a.encoder is not None:
        np.testing.assert_array_equal(a.encode(_patches()), b.encode(_patches()))
    else:
        assert b.encoder is None
    # the same weights: the same latents name and identity, so latents encoded through either are valid for both
    assert (b.run_id, b.checkpoint_sha256, b.encoder_sha256) == (a.run_id, a.checkpoint_sha256, a.encoder_sha256)
    assert b.class_names == a.class_names and b.provenance()["source"] == "export"


@pytest.mark.parametrize("name", ["adain", "batchnorm"])
def test_float16_export_is_close_half_the_size_and_a_model_of_its_own(runs: dict[str, Path],
                                                                      exported: dict[str, Path], name: str) -> None:
    a, h = LatentModel.load(runs[name]), LatentModel.load(exported[f"{name}-float16"])
    diff = np.abs(a.generate(z=a.sample_z(16, seed=0)).astype(int) - h.generate(z=a.sample_z(16, seed=0)))
    assert diff.max() <= FP16_MAX_PIXEL and diff.mean() <= FP16_MEAN_PIXEL
    assert np.abs(a.encode(_patches()) - h.encode(_patches())).max() <= FP16_MAX_W
    f32, f16 = exported[f"{name}-float32"], exported[f"{name}-float16"]
    for file in (GENERATOR_FILE, ENCODER_FILE):  # the tensor bytes halve (the JSON headers stay the same)
        assert _payload_bytes(f16 / file) <= 0.51 * _payload_bytes(f32 / file)
    # rounded weights are other weights: another latents name and identity than the run's
    assert h.run_id == f"{a.run_id}-fp16" and h.checkpoint_sha256 != a.checkpoint_sha256
    cfg = json.loads((f16 / CONFIG_FILE).read_text())
    assert h.checkpoint_sha256 == cfg["generator"]["sha256"] and h.encoder_sha256 == cfg["encoder"]["sha256"]
    check = cfg["float16_check"]
    assert check["n_images"] == 16 and 0 <= check["max_abs_diff"] <= FP16_MAX_PIXEL
    for v in open_model(f16).generator_state.values():  # loading casts back
        assert v.dtype in (torch.float32, torch.int64)


def test_batch_norm_running_statistics_are_exported(runs: dict[str, Path], exported: dict[str, Path]) -> None:
    from safetensors.torch import load_file

    run, exp = open_model(runs["batchnorm"]), open_model(exported["batchnorm-float32"])
    stats = [k for k in run.generator_state if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert stats and all(k.startswith("generator.") for k in stats)
    saved = load_file(exported["batchnorm-float32"] / GENERATOR_FILE)
    for k in stats:
        torch.testing.assert_close(saved[k], run.generator_state[k], rtol=0, atol=0)
        torch.testing.assert_close(exp.generator_state[k], run.generator_state[k], rtol=0, atol=0)
    # and they matter: other running statistics give other images
    m = LatentModel.load(exported["batchnorm-float32"])
    before = m.generate(z=m.sample_z(2, seed=1))
    for name, buf in m.generator.named_buffers():
        if name.endswith("running_mean"):
            buf.zero_()
    assert not np.array_equal(before, m.generate(z=m.sample_z(2, seed=1)))


def test_names_are_prefixed_and_the_open_model_bundles_agree(runs: dict[str, Path], exported: dict[str, Path]) -> None:
    run, exp = open_model(runs["adain"]), open_model(exported["adain-float32"])
    assert sorted(run.generator_state) == sorted(exp.generator_state)
    assert {k.split(".", 1)[0] for k in exp.generator_state} == {"mapping", "generator"}
    assert run.source == "run" and exp.source == "export" and exp.run is None
    for attr in ("model_id", "model_cfg", "checkpoint", "checkpoint_sha256", "step", "class_names", "resize_mode",
                 "encoder_channels", "encoder_sha256", "mpp", "patch_px", "provenance", "train"):
        assert getattr(run, attr) == getattr(exp, attr), attr
    assert exp.step == STEP and exp.mpp == 1.0 and exp.patch_px == (32,)


# ------------------------------------------------------------------------------------------- no pickle
def test_no_pickle_in_an_export_and_loading_never_unpickles(exported: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = exported["adain-float16"]
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", CONFIG_FILE, ENCODER_FILE, GENERATOR_FILE]
    for file in (GENERATOR_FILE, ENCODER_FILE):
        raw = (folder / file).read_bytes()
        assert raw[:1] != b"\x80" and raw[:2] != b"PK"  # neither a pickle nor torch.save's zip
        (n,) = struct.unpack("<Q", raw[:8])  # safetensors: u64 header length, JSON header, raw tensor bytes
        header = json.loads(raw[8 : 8 + n])
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        assert 8 + n + end == len(raw)
        assert header["__metadata__"]["pathgan_model_id"].endswith("-fp16")
    json.loads((folder / CONFIG_FILE).read_text())
    (folder / "MODEL_CARD.md").read_text(encoding="utf-8")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.load used on an exported model")

    monkeypatch.setattr(torch, "load", refuse)
    m = LatentModel.load(folder, require_encoder=True)
    assert m.encode(_patches(2)).shape == (2, m.w_dim)


# ------------------------------------------------------------------------------------------- validation
def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_loading_errors_name_the_file_and_what_was_found(exported: dict[str, Path], tmp_path: Path) -> None:
    src = exported["adain-float32"]

    d = _copy(src, tmp_path / "no-config")
    (d / CONFIG_FILE).unlink()
    with pytest.raises(PathganError) as e:
        open_model(d)
    assert "neither a train-latent run directory" in _one_line(e)

    d = _copy(src, tmp_path / "version")
    _rewrite_config(d, format_version=2)
    with pytest.raises(PathganError) as e:
        LatentModel.load(d)
    assert f"{d / CONFIG_FILE} has format_version 2; this pathgan reads 1" in _one_line(e)

    d = _copy(src, tmp_path / "format")
    _rewrite_config(d, format="something-else")
    with pytest.raises(PathganError, match="has format 'something-else'; expected 'pathgan-model'"):
        open_model(d)

    d = _copy(src, tmp_path / "not-json")
    (d / CONFIG_FILE).write_text("{not json")
    with pytest.raises(PathganError) as e:
        open_model(d)
    assert "config.json is not readable JSON" in _one_line(e)

    d = _copy(src, tmp_path / "missing")
    (d / GENERATOR_FILE).unlink()
    with pytest.raises(PathganError) as e:
        open_model(d)
    assert _one_line(e) == f"{d / GENERATOR_FILE} is missing (listed in config.json)"

    d = _copy(src, tmp_path / "no-encoder-file")
    (d / ENCODER_FILE).unlink()
    with pytest.raises(PathganError, match=r"encoder.safetensors is missing"):
        open_model(d)
    assert open_model(d, with_encoder=False).encoder_state is None  # generating does not need it

    d = _copy(src, tmp_path / "sha")
    raw = bytearray((d / GENERATOR_FILE).read_bytes())
    raw[-1] ^= 0xFF
    (d / GENERATOR_FILE).write_bytes(bytes(raw))
    with pytest.raises(PathganError) as e:
        open_model(d)
    msg = _one_line(e)
    assert str(d / GENERATOR_FILE) in msg and "does not match config.json's" in msg and "changed or damaged" in msg

    d = _copy(src, tmp_path / "shape")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    cfg["model"]["dense_units"] = 17  # the same tensors, other shapes
    (d / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(PathganError) as e:
        open_model(d)
    msg = _one_line(e)
    assert str(d / GENERATOR_FILE) in msg and "has shape" in msg and "expects" in msg

    d = _copy(src, tmp_path / "bad-model")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    cfg["model"]["colour"] = "red"
    (d / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(PathganError, match=r"config.json: model: unknown ModelConfig field\(s\) \['colour'\]"):
        open_model(d)


def _resave(folder: Path, file: str, tensors: dict[str, torch.Tensor]) -> None:
    """Replace ``file`` and record its new sha256, as a careless hand edit would."""
    import hashlib

    from safetensors.torch import save

    raw = save(tensors)
    (folder / file).write_bytes(raw)
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    key = "generator" if file == GENERATOR_FILE else "encoder"
    cfg[key]["sha256"] = hashlib.sha256(raw).hexdigest()
    (folder / CONFIG_FILE).write_text(json.dumps(cfg))


def test_tensor_errors_even_with_a_matching_sha256(exported: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    src = exported["adain-float16"]
    state = load_file(src / GENERATOR_FILE)
    first = sorted(state)[0]

    d = _copy(src, tmp_path / "dropped")
    _resave(d, GENERATOR_FILE, {k: v for k, v in state.items() if k != first})
    with pytest.raises(PathganError) as e:
        open_model(d)
    assert _one_line(e) == f"{d / GENERATOR_FILE}: 1 tensor(s) the model in config.json needs are missing, e.g. {first!r}"

    d = _copy(src, tmp_path / "extra")
    _resave(d, GENERATOR_FILE, {**state, "generator.spare": torch.zeros(2, dtype=torch.float16)})
    with pytest.raises(PathganError, match=r"1 tensor\(s\) are not part of the model in config.json, e.g. 'generator.spare'"):
        open_model(d)

    d = _copy(src, tmp_path / "dtype")
    _resave(d, GENERATOR_FILE, {k: v.float() for k, v in state.items()})
    with pytest.raises(PathganError) as e:
        open_model(d)
    assert "is torch.float32; config.json says dtype float16" in _one_line(e)

    d = _copy(src, tmp_path / "garbage")
    import hashlib

    (d / GENERATOR_FILE).write_bytes(b"\x80\x04not a safetensors file")
    _rewrite_config(d, generator={**json.loads((d / CONFIG_FILE).read_text())["generator"],
                                  "sha256": hashlib.sha256(b"\x80\x04not a safetensors file").hexdigest()})
    with pytest.raises(PathganError) as e:
        open_model(d)
    assert f"{d / GENERATOR_FILE} is not a readable safetensors file" in _one_line(e)

    d = _copy(src, tmp_path / "escape")
    _rewrite_config(d, generator={**json.loads((d / CONFIG_FILE).read_text())["generator"], "file": "../x.safetensors"})
    with pytest.raises(PathganError, match="must be a plain file name inside the model folder"):
        open_model(d)


def test_neither_run_nor_export_and_partial_folders(tmp_path: Path, exported: dict[str, Path]) -> None:
    with pytest.raises(PathganError, match="does not exist"):
        open_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PathganError, match=r"neither a train-latent run directory \(no config.yaml\) nor an exported"):
        LatentModel.load(tmp_path / "empty")
    partial = _copy(exported["adain-float32"], tmp_path / "m.partial")
    with pytest.raises(PathganError, match="unfinished export"):
        open_model(partial)


# ------------------------------------------------------------------------------------------- writing
def test_out_folder_rules(runs: dict[str, Path], exported: dict[str, Path], tmp_path: Path) -> None:
    out = export_model(runs["adain"], tmp_path / "m")
    before = (out / CONFIG_FILE).read_text()
    with pytest.raises(ConfigError, match=r"already exists; choose another --out or pass --overwrite"):
        export_model(runs["adain"], out)
    assert (out / CONFIG_FILE).read_text() == before
    export_model(runs["adain"], out, dtype="float16", overwrite=True)
    assert json.loads((out / CONFIG_FILE).read_text())["dtype"] == "float16"
    assert not list(tmp_path.glob(".m.*")) and not (tmp_path / "m.partial").exists()
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an exported pathgan model; --overwrite only replaces an earlier export"):
        export_model(runs["adain"], keep, overwrite=True)
    assert (keep / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="already an exported model"):
        export_model(exported["adain-float32"], tmp_path / "again")
    with pytest.raises(ConfigError, match="dtype='bfloat16' is not allowed"):
        export_model(runs["adain"], tmp_path / "bf", dtype="bfloat16")  # type: ignore[arg-type]


def test_float16_refuses_weights_it_cannot_hold(runs: dict[str, Path], tmp_path: Path) -> None:
    from pathgan.export._write import _safetensors

    state = {"generator.big": torch.tensor([1.0, 7e4]), "generator.steps": torch.tensor(3)}
    with pytest.raises(ConfigError, match=r"tensor 'generator.big' holds 7e\+04, beyond float16's 65504"):
        _safetensors(state, "float16", "m", GENERATOR_FILE)
    assert _safetensors(state, "float32", "m", GENERATOR_FILE)


def test_an_interrupted_export_leaves_nothing_that_looks_complete(runs: dict[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pathgan.export._write as w

    def boom(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt  # as a Ctrl-C while the card is written

    monkeypatch.setattr(w, "model_card", boom)
    with pytest.raises(KeyboardInterrupt):
        export_model(runs["adain"], tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # an earlier export survives a failed --overwrite untouched
    monkeypatch.undo()
    out = export_model(runs["adain"], tmp_path / "m")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(w, "model_card", boom)
    with pytest.raises(KeyboardInterrupt):
        export_model(runs["adain"], out, dtype="float16", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.slow  # a subprocess that imports torch and is killed
def test_kill_9_before_the_rename_leaves_no_model_and_a_rerun_finishes(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m"
    env = {**os.environ, "PATHGAN_FAULT": "export.before_rename:1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pathgan.cli", "export-model", "--run", str(runs["adain"]), "--out", str(out)]
    r = subprocess.run(cmd, env=env, start_new_session=True, capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr
    assert not out.exists() and (tmp_path / "m.partial").is_dir()  # every file written, never renamed
    with pytest.raises(PathganError, match="unfinished export"):
        open_model(tmp_path / "m.partial")
    env.pop("PATHGAN_FAULT")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert is_exported_model(out) and not (tmp_path / "m.partial").exists()
    assert LatentModel.load(out).run_id == runs["adain"].name


# ------------------------------------------------------------------------------------------- the card
def test_card_copies_the_runs_numbers_and_says_what_was_not_measured(runs: dict[str, Path],
                                                                     exported: dict[str, Path]) -> None:
    card = (exported["adain-float32"] / "MODEL_CARD.md").read_text()
    cfg = json.loads((exported["adain-float32"] / CONFIG_FILE).read_text())
    (ev,) = cfg["evaluations"]
    assert {k: ev[k] for k in EVAL} == EVAL and ev["checkpoint"] == f"step-{STEP:07d}.pt"
    row = (f"| eval-step-{STEP:07d}-random-n64.json | random_projection_d2048_s0 | val: c | 32 / 64 | 41.23 +- 3.12 | 123.46 "
           f"| 130.20 / 45.67 (16) | 0.438 / 0.281 |")
    assert row in card
    assert "Not reported (they describe other checkpoints): eval-step-0000020-random-n64.json." in card
    assert "900" not in card  # the other checkpoint's KID x1e3
    for fact in ("Training slides (2): `a`, `b`.", "Validation slides (1): `c`.",
                 "Images: 28 px at 1 um/px, cropped from stored patches of 32 px.",
                 "28-px images at 1 um/px; other resolutions are outside what it learned: tile slides for it with "
                 "`pathgan tile --mpp 1 --patch-px 32`",
                 "Training patches: 80", "`f00dfeed12345678`", "Trained on 2 slides (`a`, `b`).",
                 "4.0 min over 2 session(s)", "CPU: Test CPU @ 1GHz, 2 usable core(s)", "Session 2 (from step 20",
                 "w R^2 0.432 on 64 generated images", f"| generator.safetensors | `{cfg['generator']['sha256']}` |",
                 "Research use only. Not a medical device", "Unconditional."):
        assert fact in card, fact
    assert cfg["training"]["sessions"] == [SESSION, {**SESSION, "from_step": 20}]

    cond = (exported["conditional-float32"] / "MODEL_CARD.md").read_text()
    assert f"KID / FID: not measured for step-{STEP:07d}.pt" in cond
    assert "Image quality was not measured" in cond and "No encoder:" in cond
    assert "Class-conditional on 2 classes: `stroma`, `tumor`." in cond
    assert "Weights are stored as float16" in (exported["adain-float16"] / "MODEL_CARD.md").read_text()


def test_card_limitations_are_computed_from_the_facts(exported: dict[str, Path]) -> None:
    cfg = json.loads((exported["adain-float32"] / CONFIG_FILE).read_text())
    many = {**cfg, "provenance": {**cfg["provenance"], "train_slides": [f"s{i}" for i in range(30)], "val_slides": []},
            "train": {**cfg["train"], "holdout_block_um": 500.0},
            "evaluations": [{**cfg["evaluations"][0], "real_split": "train"}], "hardware": None,
            "training": {"time": None, "sessions": []}}
    card = model_card(many)
    assert "Trained on 30 slides (" in card and "and 10 more" in card and "far too few" not in card
    assert "No slide was held out for validation. Squares of 500 um on the training slides" in card
    assert "measured against training patches, not held-out ones" in card
    assert "random-projection features" in card
    assert "Training time: not recorded (no stats.jsonl)." in card
    assert "Hardware: not recorded" in card
    resized = model_card({**cfg, "resize_mode": "resize", "patch_px": [64]})
    assert "28 px at 1 um/px, resized from stored patches of 64 px." in resized
    assert "`pathgan tile --mpp 0.4375 --patch-px 64`" in resized  # 28 px at 1 um/px = 64 px at 0.4375 um/px


def test_training_time_sums_sessions(tmp_path: Path) -> None:
    stats = tmp_path / "stats.jsonl"
    stats.write_text("\n".join(json.dumps(r) for r in [
        {"step": 50, "train_min": 1.0, "d_img_per_s": 10.0}, {"step": 100, "train_min": 2.0, "d_img_per_s": 30.0},
        {"step": 150, "train_min": 0.5, "d_img_per_s": 20.0}, {"step": 200, "train_min": 3.0, "d_img_per_s": 20.0},
        {"step": 250, "train_min": 0.25}]) + "\n{cut off")
    t = training_time(stats)
    assert t is not None and t["minutes"] == 5.25 and t["sessions"] == 3 and t["last_logged_step"] == 250
    assert t["median_img_per_s"] == 20.0
    assert training_time(tmp_path / "none.jsonl") is None


def test_train_latent_records_hardware_without_the_host_name() -> None:
    import yaml

    from pathgan.stages.train import _hardware

    facts = _hardware(torch.device("cpu"), 1, 0)
    assert yaml.safe_load(yaml.safe_dump(facts)) == facts  # config.yaml takes it as it is
    text = json.dumps(facts)
    assert socket.gethostname() not in text and os.environ.get("USER", "\0") not in text
    assert facts["torch"] == torch.__version__ and facts["device"] == "cpu" and facts["cpu"]


# ------------------------------------------------------------------------------------------- commands
def test_model_ids_stand_for_latents_names(runs: dict[str, Path], exported: dict[str, Path]) -> None:
    assert resolve_model_id(runs["adain"]) == runs["adain"].name
    assert resolve_model_id(exported["adain-float16"]) == f"{runs['adain'].name}-fp16"
    assert resolve_model_id("00012-some-run") == "00012-some-run"


def test_commands_that_cannot_use_an_export_say_what_to_do(exported: dict[str, Path]) -> None:
    from pathgan.config import EncoderConfig
    from pathgan.runs import RunDir
    from pathgan.stages.evaluate import evaluate_run
    from pathgan.stages.train_encoder import train_encoder

    folder = exported["conditional-float32"]
    with pytest.raises(ConfigError) as e:
        train_encoder(folder, EncoderConfig(steps=1))
    assert "is an exported model; fit the encoder on the run it came from" in _one_line(e)
    with pytest.raises(PathganError, match=r"is an exported model \(config.json\), not a run directory"):
        RunDir.open(folder)
    with pytest.raises(ConfigError) as e:
        evaluate_run(folder, [], n=4, extractor="random")
    assert "records the stores it was trained on only as provenance" in _one_line(e) and "--stores" in _one_line(e)
    with pytest.raises(PathganError) as e:
        LatentModel.load(folder, require_encoder=True)
    assert "is an exported model without an encoder; fit one on the run it came from" in _one_line(e)


def test_held_out_patches_of_an_export_are_chosen_as_for_its_run(tmp_path: Path) -> None:
    from _tiny import make_tiny_store

    from pathgan.runs import RunDir
    from pathgan.stages.evaluate import held_out_of_export
    from pathgan.train import held_out_dataset

    stores = [make_tiny_store(tmp_path / "s" / f"{sid}.zarr", 16 + 8 * i, i + 1) for i, sid in enumerate("abc")]
    run = make_untrained_run(tmp_path / "runs", stores=stores, encoder=False, evaluated=False)
    out = export_model(run, tmp_path / "m")
    want, want_split = held_out_dataset(stores, RunDir.open(run), train=False, seed=0)
    got, got_split = held_out_of_export(stores, open_model(out), seed=0)
    assert (got_split, len(got), [s.path for s in got.stores]) == (want_split, len(want), [s.path for s in want.stores])
    assert got_split == "val" and len(got) == 32
    np.testing.assert_array_equal(got.get_batch(np.arange(4))["image"], want.get_batch(np.arange(4))["image"])
    other = make_tiny_store(tmp_path / "s2" / "z.zarr", 12, 9)
    got, split = held_out_of_export([*stores[:2], other], open_model(out), seed=0)
    assert split == "unseen" and [s.path for s in got.stores] == [other]


def test_cli_export_model(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    r = CliRunner().invoke(main, ["export-model", "--run", str(runs["adain"]), "--out", str(out), "--dtype", "float16"])
    assert r.exit_code == 0, r.output
    assert f"model {runs['adain'].name}-fp16 (test-tiny-28, float16, with encoder) in {out}:" in r.output
    assert "generator.safetensors" in r.output and "MB in all" in r.output
    r = CliRunner().invoke(main, ["export-model", "--run", str(runs["adain"]), "--out", str(out)])
    assert r.exit_code == 1 and "already exists; choose another --out or pass --overwrite" in r.output
    r = CliRunner().invoke(main, ["export-model", "--run", str(runs["adain"]), "--out", str(out), "--dtype", "int8"])
    assert r.exit_code == 2 and "'int8' is not one of 'float32', 'float16'" in r.output
    r = CliRunner().invoke(main, ["export-model", "--out", str(out)])
    assert r.exit_code == 2 and "Missing option '--run'" in r.output
    r = CliRunner().invoke(main, ["export-model", "--run", str(out), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "already an exported model" in r.output
    assert "export-model" in CliRunner().invoke(main, ["--help"]).output


def test_latent_commands_read_an_exports_latents_under_its_model_id(exported: dict[str, Path]) -> None:
    """classify/roi --run EXPORT read latents/<model_id> (what encode --run EXPORT writes), not the
    folder's name: a float32 export keeps its run's id."""
    from pathgan.cli._options import run_id_of

    folder = exported["adain-float32"]
    model_id = json.loads((folder / CONFIG_FILE).read_text())["model_id"]
    assert model_id != folder.name
    assert run_id_of(str(folder)) == model_id == LatentModel.load(folder).run_id
