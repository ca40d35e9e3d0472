"""Every error pathgan raises on purpose is a PathganError, so the CLI maps all of them to one line."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pathgan
from pathgan import errors

PKG = Path(pathgan.__file__).parent
# Python protocols, not errors of pathgan's own: sequence indexing, abstract methods, module __getattr__.
PROTOCOL = {"IndexError", "NotImplementedError", "StopIteration", "AttributeError"}


def _builtin_raises() -> list[str]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.id if isinstance(exc, ast.Name) else None
            if name is None or name in PROTOCOL or "# caught" in lines[node.lineno - 1]:
                continue
            if isinstance(getattr(builtins, name, None), type) and issubclass(getattr(builtins, name), BaseException):
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno} raises {name}")
    return found


def test_no_bare_builtin_exceptions_in_the_library() -> None:
    """A bare ValueError/TypeError/RuntimeError escapes the CLI's PathganError handler as a traceback.
    (Raising one that is caught a few lines later is allowed when the line says ``# caught``.)"""
    assert _builtin_raises() == []


def test_every_error_class_is_a_pathgan_error() -> None:
    classes = [getattr(errors, n) for n in errors.__all__]
    assert classes and all(issubclass(c, errors.PathganError) for c in classes)
    # The ones that replaced ValueError/TypeError/FileExistsError keep those bases for old callers.
    assert issubclass(errors.ShapeError, ValueError) and issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.InputTypeError, TypeError) and issubclass(errors.StoreExistsError, FileExistsError)


def test_the_guard_itself_finds_a_bare_raise(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pathgan").mkdir()
    (tmp_path / "pathgan" / "m.py").write_text("def f():\n    raise ValueError('x')\n\ndef g():\n    raise KeyError\n")
    monkeypatch.setattr(f"{__name__}.PKG", tmp_path / "pathgan")
    assert _builtin_raises() == ["pathgan/m.py:2 raises ValueError", "pathgan/m.py:5 raises KeyError"]
