"""Named configuration presets, shipped inside the package as ``pathgan/presets/<kind>/<name>.yaml``.

A preset is a YAML serialisation of one config dataclass (:mod:`pathgan.config`): ``train`` presets
of :class:`~pathgan.config.TrainConfig`, ``tile`` of :class:`~pathgan.config.TileConfig`,
``encoder`` of :class:`~pathgan.config.EncoderConfig`, ``translate`` of
:class:`~pathgan.config.TranslateConfig`. Every ``--config`` option takes a preset name of its kind
or the path of a YAML file (``--config pathologygan-64-cpu``). The leading comment of each file
describes it; its first sentence is what ``pathgan presets`` prints.

Light: no torch, no numpy (the CLI's ``--help`` stays fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pathgan.errors import ConfigError

__all__ = ["KINDS", "PresetKind", "describe_preset", "describe_presets", "preset_names", "preset_path",
           "read_yaml", "resolve_config"]

PresetKind = Literal["train", "tile", "encoder", "translate"]
KINDS: tuple[PresetKind, ...] = get_args(PresetKind)
_ROOT = Path(__file__).resolve().parent


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"preset kind {kind!r} is not allowed; expected one of {', '.join(KINDS)}")


def preset_names(kind: PresetKind) -> list[str]:
    """Names of the presets of ``kind``, sorted."""
    _check_kind(kind)
    return sorted(p.stem for p in (_ROOT / kind).glob("*.yaml"))


def preset_path(kind: PresetKind, name: str) -> Path:
    """The file of preset ``name``; a :class:`ConfigError` listing the known names of ``kind`` otherwise."""
    path = _ROOT / kind / f"{name}.yaml"
    if name not in preset_names(kind) or not path.is_file():
        raise ConfigError(f"unknown {kind} preset {name!r}; known: {', '.join(preset_names(kind))}")
    return path


def resolve_config(kind: PresetKind, value: str | Path, option: str = "--config") -> Path:
    """``value`` as given to ``option``: an existing YAML file, else a preset name of ``kind``.

    Raises
    ------
    ConfigError
        Neither: one line naming the value, the option and the known presets of ``kind``.
    """
    path = Path(value)
    if path.is_file():
        return path
    if str(value) in preset_names(kind):
        return preset_path(kind, str(value))
    known = ", ".join(preset_names(kind))
    if path.is_dir():
        raise ConfigError(f"{option} {value}: is a folder; expected a YAML file or a {kind} preset ({known})")
    raise ConfigError(f"{option} {value}: no such file and no {kind} preset of that name; known {kind} "
                      f"presets: {known}")


def read_yaml(path: Path, what: str, option: str = "--config") -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty file: ``{}``).

    Raises
    ------
    ConfigError
        Unreadable, not valid YAML (line and column of the problem), or not a mapping (of ``what``),
        in one line that starts with ``option`` and the path.
    """
    import yaml

    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{option} {path}: cannot be read ({err})") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{option} {path}: not valid YAML ({where}{problem})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{option} {path}: expected a mapping of {what} fields, got {type(data).__name__}")
    return data


def describe_preset(path: Path) -> str:
    """The first sentence of the file's leading comment, without long parentheticals: one line."""
    lines = []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    # The first sentence ends at '.' or ':' followed by a space (or the end), outside parentheses;
    # a stop that would leave fewer than 30 characters is a heading ("The CPU preset: ...") and is skipped.
    depth, cut = 0, len(text)
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch in ".:" and (i + 1 == len(text) or text[i + 1] == " ") and i >= 30:
            cut = i
            break
    sentence, out, depth, start = text[:cut], [], 0, 0
    for i, ch in enumerate(sentence):  # drop parentheticals longer than 40 characters
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0 and i - start + 1 > 40:
                out.append((start, i + 1))
    for a, b in reversed(out):
        sentence = sentence[:a].rstrip() + sentence[b:]
    return " ".join(sentence.split()).rstrip(",;")


def describe_presets() -> str:
    """Every preset, by kind: ``name  description``, for ``pathgan presets``."""
    blocks = []
    for kind in KINDS:
        names = preset_names(kind)
        width = max(len(n) for n in names)
        rows = [f"  {n:<{width}}  {describe_preset(preset_path(kind, n))}" for n in names]
        blocks.append(f"{kind} (--config of pathgan {_COMMANDS[kind]}):\n" + "\n".join(rows))
    return "\n\n".join(blocks)


_COMMANDS = {"train": "train-latent", "tile": "tile", "encoder": "train-encoder", "translate": "train-translate"}
