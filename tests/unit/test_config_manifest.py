"""Config validation and manifest errors: every message names the field or row."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathgan.config import (
    EncoderConfig,
    TileConfig,
    TissueConfig,
    TrainConfig,
    TranslateConfig,
    from_dict,
    to_dict,
)
from pathgan.errors import ConfigError, ManifestError
from pathgan.manifest import discover_slides, read_manifest
from pathgan.presets import preset_names, preset_path


def test_config_rejects_with_field_name() -> None:
    with pytest.raises(ConfigError, match=r"mpp=0\.0 is not allowed"):
        TileConfig(mpp=0.0)
    with pytest.raises(ConfigError, match="codec='png'"):
        TileConfig(codec="png")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="thumbnail_mpp"):
        TissueConfig(thumbnail_mpp=0.1)
    with pytest.raises(ConfigError, match=r"unknown TileConfig field\(s\) \['patchsize'\]"):
        from_dict(TileConfig, {"patchsize": 3})
    cfg = TileConfig(stride_px=128, tissue=TissueConfig(min_area_um2=5.0))
    assert from_dict(TileConfig, to_dict(cfg)) == cfg
    assert cfg.stride == 128 and TileConfig().stride == 256


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "a.svs").write_bytes(b"x")
    (tmp_path / "b.svs").write_bytes(b"x")
    p = tmp_path / "m.csv"
    p.write_text(text)
    return p


def test_manifest_ok_relative_paths(tmp_path: Path) -> None:
    p = _write(tmp_path, "slide_id,path,label,split,mpp_override\nA,a.svs,tumour,train,0.25\nB,b.svs,,,\n")
    a, b = read_manifest(p)
    assert a.path == (tmp_path / "a.svs").resolve() and a.mpp_override == 0.25 and a.split == "train"
    assert b.label is None and b.split is None and b.mpp_override is None and b.row == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slide_id,label\nA,x\n", r"missing column\(s\) \['path'\]"),
        ("slide_id,path,colour\nA,a.svs,red\n", r"unknown column\(s\) \['colour'\]"),
        ("slide_id,path\nA,a.svs\nA,b.svs\n", r"row 3: duplicate slide_id 'A' \(first seen in row 2\)"),
        ("slide_id,path\nA,missing.svs\n", r"row 2: path 'missing.svs' does not exist"),
        ("slide_id,path,split\nA,a.svs,training\n", r"row 2: split 'training' is not one of"),
        ("slide_id,path,mpp_override\nA,a.svs,fast\n", r"row 2: mpp_override 'fast' must be a number"),
        ("slide_id,path,mpp_override\nA,a.svs,-1\n", r"row 2: mpp_override '-1'"),
        ("slide_id,path\n../x,a.svs\n", r"row 2: slide_id '../x'"),
        ("slide_id,path\nA,\n", r"row 2: path is empty"),
        ("slide_id,path\n", r"lists no slides"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        read_manifest(_write(tmp_path, text))


def test_manifest_reports_all_rows_at_once(tmp_path: Path) -> None:
    p = _write(tmp_path, "slide_id,path,split\nA,nope.svs,\nA,a.svs,bad\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(p)
    assert "2 problem(s)" in str(info.value) or "3 problem(s)" in str(info.value)
    assert "row 2" in str(info.value) and "row 3" in str(info.value)


def test_discover_slides(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.SVS").write_bytes(b"x")
    (tmp_path / "y.ndpi").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert [e.slide_id for e in discover_slides(tmp_path)] == ["x", "y"]
    (tmp_path / "x.tif").write_bytes(b"x")
    with pytest.raises(ManifestError, match="two slides share the id 'x'"):
        discover_slides(tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        discover_slides(tmp_path / "nothing")


def test_default_yaml_is_the_dataclass_defaults() -> None:
    import yaml

    path = preset_path("tile", "default")
    assert from_dict(TileConfig, yaml.safe_load(path.read_text())) == TileConfig()


def test_cli_config_file_and_flag_override(tmp_path: Path) -> None:
    from pathgan.cli._main import _load_tile_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("mpp: 1.0\njpeg_quality: 80\ntissue:\n  thumbnail_mpp: 16\n")
    cfg = _load_tile_config(cfg_file, {"jpeg_quality": 70, "tissue.min_area_um2": 5.0, "codec": None})
    assert (cfg.mpp, cfg.jpeg_quality, cfg.codec) == (1.0, 70, "jpeg")
    assert (cfg.tissue.thumbnail_mpp, cfg.tissue.min_area_um2) == (16, 5.0)
    cfg_file.write_text("mpp: 1.0\npatchpx: 3\n")
    with pytest.raises(ConfigError, match="patchpx"):
        _load_tile_config(cfg_file, {})


@pytest.mark.parametrize("path", [preset_path("train", n) for n in preset_names("train")], ids=lambda p: p.stem)
def test_train_yaml_files_are_valid(path: Path) -> None:
    import yaml

    from pathgan.config import TrainConfig
    from pathgan.models import get_config

    cfg = from_dict(TrainConfig, yaml.safe_load(path.read_text()))
    assert cfg.model == path.stem and get_config(cfg.model).name == path.stem
    if path.stem == "pathologygan-224-paper":  # the paper's optimisation settings and architecture
        assert (cfg.batch_size, cfg.n_critic, cfg.lr_d, cfg.lr_g, cfg.beta1) == (64, 5, 1e-4, 1e-4, 0.5)
        assert (cfg.loss, cfg.penalty, cfg.gp_weight) == ("relativistic", "interpolates", 0.65)
        model = get_config(cfg.model)
        assert (model.z_dim, model.upsample, model.style, model.weights) == (200, "transposed", "adain", "spectral")


def test_slides_from_command_line_inputs(tmp_path: Path) -> None:
    from pathgan.manifest import slides_from_inputs

    (tmp_path / "dir" / "sub").mkdir(parents=True)
    for name in ("dir/a.svs", "dir/sub/b.ndpi", "dir/notes.txt", "c.tiff"):
        (tmp_path / name).write_bytes(b"x")
    entries = slides_from_inputs([tmp_path / "dir", tmp_path / "c.tiff"])
    assert [(e.slide_id, e.path.name) for e in entries] == [("a", "a.svs"), ("b", "b.ndpi"), ("c", "c.tiff")]
    with pytest.raises(ManifestError, match=r"nope\.svs is neither a slide file nor a folder"):
        slides_from_inputs([tmp_path / "nope.svs"])
    (tmp_path / "a.svs").write_bytes(b"y")
    with pytest.raises(ManifestError, match="two slides share the id 'a'"):
        slides_from_inputs([tmp_path / "dir", tmp_path / "a.svs"])


@pytest.mark.parametrize(("cls", "data", "message"), [
    (TrainConfig, {"batch_size": "abc"}, "batch_size: expected an integer, got 'abc'"),
    (TrainConfig, {"steps": True}, "steps: expected an integer, got True"),
    (TrainConfig, {"lr_g": "fast"}, "lr_g: expected a number, got 'fast'"),
    (TrainConfig, {"compile": "maybe"}, "compile: expected true or false, got 'maybe'"),
    (TrainConfig, {"labels": 3}, "labels: expected a string, got 3"),
    (TileConfig, {"stride_px": "x"}, "stride_px: expected an integer or null, got 'x'"),
    (TileConfig, {"tissue": {"detect_pen": "maybe"}}, "detect_pen: expected true or false, got 'maybe'"),
    (EncoderConfig, {"channels": "wide"}, "channels: expected a list of integers or null, got 'wide'"),
    (TranslateConfig, {"dihedral": 1}, "dihedral: expected true or false, got 1"),
])
def test_from_dict_names_field_expected_type_and_value(cls: type, data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(cls, data)
    assert str(info.value) == message


def test_from_dict_widens_without_loss() -> None:
    # YAML 1.1 reads 1e-4 (no dot) as a string; an integral float is an int; a list is a tuple
    cfg = from_dict(TrainConfig, {"lr_g": "1e-4", "steps": 10.0, "gp_weight": 1})
    assert cfg.lr_g == 1e-4 and isinstance(cfg.steps, int) and cfg.steps == 10 and isinstance(cfg.gp_weight, float)
    assert from_dict(EncoderConfig, {"channels": [8, 16]}).channels == (8, 16)
    with pytest.raises(ConfigError, match="expected a mapping of TrainConfig fields, got list"):
        from_dict(TrainConfig, [1, 2])  # type: ignore[arg-type]
