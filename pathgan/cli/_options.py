"""What every ``pathgan`` command shares: one spelling per thing, and one way to fail.

- a run is ``--run RUN`` (a run directory; for commands that only read ``latents/<run_id>`` from
  stores, also a bare run id);
- stores are ``--stores PATH`` (repeatable; a store or a folder of stores), defaulting to the run's
  own recorded stores wherever a run is given;
- outputs are ``--out DIR``; devices ``--device auto|cpu|cuda|cuda:N|mps`` (default ``auto``);
- ``--config`` takes a preset name (``pathgan presets``) or a YAML file.

Old spellings keep working for one release: each prints one ``pathgan: ... is deprecated; use ...``
line on stderr (:func:`deprecated`). :class:`PathganCommand` turns every :class:`PathganError` (and
an OS error on a named file) into a one-line ``Error: ...`` instead of a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from pathgan.errors import ConfigError, PathganError

__all__ = ["DEVICE_HELP", "REMOVED_IN", "SECTIONS", "DeviceType", "LegacyArgument", "PathganCommand", "PathganGroup",
           "config_option", "deprecated", "device_option", "legacy_run_argument", "legacy_stores_argument",
           "load_config", "parse_sets", "pick_run", "pick_stores", "progress_option", "resolve_config_arg",
           "run_id_of", "stores_option"]

REMOVED_IN = "0.3"
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."

# `pathgan --help` lists the commands in the order a user meets them; commands added later (and
# not named here) are appended to the last section.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pipeline (in order)", ("tile", "train-latent", "evaluate", "train-encoder", "encode", "classify", "roi",
                             "export-synthetic")),
    ("Stain and translation", ("train-translate", "translate")),
    ("Utilities", ("models", "presets", "report", "export-model")),
)


def deprecated(old: str, new: str) -> None:
    """One line on stderr: ``pathgan: OLD is deprecated; use NEW (removed in 0.3)``."""
    click.echo(f"pathgan: {old} is deprecated; use {new} (removed in {REMOVED_IN})", err=True)


class PathganCommand(click.Command):
    """A command whose expected failures end in one ``Error: ...`` line, never a traceback:
    :class:`PathganError` (config, store, run, slide errors) and OS errors on a named file."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PathganError as err:
            raise click.ClickException(str(err)) from err
        except OSError as err:
            if err.filename is None:
                raise
            raise click.ClickException(f"{err.filename}: {err.strerror or err}") from err


class PathganGroup(click.Group):
    """The ``pathgan`` group: commands in pipeline order, in sections, each made a
    :class:`PathganCommand` unless it says otherwise."""

    command_class = PathganCommand

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for _, names in SECTIONS for name in names if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = self.list_commands(ctx)
        placed = {name for _, names in SECTIONS for name in names}
        for i, (title, names) in enumerate(SECTIONS):
            chosen = [n for n in listed if n in names or (i == len(SECTIONS) - 1 and n not in placed)]
            rows = []
            for name in chosen:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                # explicit short_help is never truncated; the limit only shortens docstring-derived text
                rows.append((name, cmd.get_short_help_str(limit=200)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class DeviceType(click.ParamType):
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``, checked when the command line is parsed
    (without importing torch; whether CUDA is there is checked when the device is opened)."""

    name = "device"
    _RE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if not self._RE.fullmatch(text):
            self.fail(f"{value!r} is not a device; expected auto, cpu, cuda, cuda:N or mps", param, ctx)
        return text


class LegacyArgument(click.Argument):
    """A deprecated positional argument: still parsed, left out of the usage line and the help."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", type=DeviceType(), default="auto", show_default=True, help=DEVICE_HELP)(f)


def progress_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")(f)


def stores_option(help: str, *, name: str = "--stores", dest: str = "stores") -> Callable[..., Any]:
    return click.option(name, dest, multiple=True, type=click.Path(path_type=Path), metavar="PATH", help=help)


def config_option(kind: str, what: str) -> Callable[..., Any]:
    from pathgan.presets import preset_names

    examples = ", ".join(preset_names(kind))  # type: ignore[arg-type]
    return click.option("--config", "config", metavar="PRESET|FILE",
                        help=f"A {kind} preset ({examples}; `pathgan presets`) or a YAML file of {what} fields.")


def legacy_run_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("legacy_run", required=False, cls=LegacyArgument,
                          type=click.Path(exists=True, file_okay=False, path_type=Path))(f)


def legacy_stores_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("legacy_stores", nargs=-1, cls=LegacyArgument, type=click.Path(path_type=Path))(f)


def pick_run(run: Any, legacy: Path | None, what: str = "RUN_DIR") -> Any:
    """``--run`` or the deprecated positional run directory (with its deprecation line)."""
    if legacy is not None:
        if run is not None:
            raise click.UsageError(f"give the run once: --run {run} or the positional {legacy}, not both")
        deprecated(f"positional {what}", f"--run {what}")
        return legacy
    if run is None:
        raise click.UsageError(f"give --run {what} (a run directory of pathgan train-latent)")
    return run


def pick_stores(stores: Sequence[Path], legacy: Sequence[Path]) -> list[Path]:
    """``--stores`` or the deprecated positional STORES (with its deprecation line)."""
    if legacy:
        if stores:
            raise click.UsageError("give the stores once: --stores PATH ..., not also as positional arguments")
        deprecated("positional STORES", "--stores STORES")
        return list(legacy)
    return list(stores)


def run_id_of(run: str) -> str:
    """``--run`` of a command that only reads ``latents/<run_id>`` from stores: a run directory (its
    folder name is the id) or the bare id, since the run directory may be on another machine."""
    from pathgan.export import resolve_model_id
    from pathgan.store import check_run_id

    path = Path(run)
    if path.is_dir():  # a run directory (its folder name) or an exported model (its model_id)
        return check_run_id(resolve_model_id(path) if (path / "config.json").is_file() else path.resolve().name)
    if len(path.parts) > 1:
        raise ConfigError(f"--run {run}: no such run directory; expected a run directory or a bare run id "
                          "(its folder name, e.g. 00003-pathologygan-64-cpu)")
    return check_run_id(run)


def parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are parsed as YAML scalars (numbers, booleans, strings)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw  # not a YAML scalar ("a: b"): the field's type check says what it expected
    return out


_LEGACY_CONFIG = re.compile(r"(?:^|.*/)configs/(train|tile|encoder|translate)/([^/]+)\.ya?ml$")


def resolve_config_arg(kind: str, value: str) -> Path:
    """``--config`` as given: a YAML file or a preset name of ``kind``. A path into the old
    ``configs/<kind>/`` folder that no longer exists maps to the preset of that name, with a
    deprecation line."""
    from pathgan.presets import preset_names, resolve_config

    m = _LEGACY_CONFIG.fullmatch(value.replace("\\", "/"))
    if m and not Path(value).exists() and m.group(1) == kind and m.group(2) in preset_names(kind):  # type: ignore[arg-type]
        deprecated(f"--config {value}", f"--config {m.group(2)} (presets ship inside the package)")
        value = m.group(2)
    return resolve_config(kind, value)  # type: ignore[arg-type]


def load_config(cls: Any, kind: str, config: str | None, sets: dict[str, Any], *,
                base: dict[str, Any] | None = None) -> Any:
    """Defaults of ``cls`` (or ``base``), then the preset's or file's fields, then ``--set``
    overrides; validated by ``cls``. Every failure is a one-line :class:`ConfigError`."""
    from pathgan.config import from_dict, to_dict
    from pathgan.presets import read_yaml

    data: dict[str, Any] = dict(base) if base is not None else to_dict(cls())
    loaded: dict[str, Any] = {}
    if config is not None:
        loaded = read_yaml(resolve_config_arg(kind, config), cls.__name__)
        data.update(loaded)
    unknown = sorted(set(sets) - set(data))
    if unknown:
        raise ConfigError(f"--set {unknown[0]}: not a {cls.__name__} field; allowed: {', '.join(sorted(data))}")
    data.update(sets)
    try:
        return from_dict(cls, data)
    except ConfigError as err:  # say where the bad value came from
        field = re.split(r"[:=\[]", str(err), maxsplit=1)[0]
        if field in sets:
            raise ConfigError(f"--set {err}") from err
        if field in loaded or str(err).startswith("unknown"):
            raise ConfigError(f"--config {config}: {err}") from err
        raise
