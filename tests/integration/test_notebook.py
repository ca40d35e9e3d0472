"""notebooks/latent_arithmetic.ipynb: committed clean, public imports only, and it runs end to end on
the real slides (the shared ``real_latent_run``), with its printed numbers checked independently."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from pathgan.store import PatchStore

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "latent_arithmetic.ipynb"
#: What the notebook may import besides the standard library.
ALLOWED_PATHGAN = {"pathgan.latents", "pathgan.store"}
ALLOWED_THIRD_PARTY = {"numpy", "matplotlib", "IPython"}
#: Figures the notebook shows: 2 interpolation, 2 walk, 3 arithmetic, 2 maps.
MIN_FIGURES = 9
K_NEIGHBOURS = 8
SUMMARY_PREFIX = "SUMMARY_JSON: "
KERNEL_NAME = "pathgan-test-venv"


def _read() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)


def _python_source(cell: Any) -> str:
    """A code cell as plain Python (IPython's own transform turns ``%magic`` lines into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell.source)


def _imported_modules(nb: Any) -> list[str]:
    """Every module a code cell imports: ``import a.b`` -> a.b, ``from a import b`` -> a (and a.b
    when a is ``pathgan``, so ``from pathgan import latents`` names the subpackage)."""
    mods: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(_python_source(cell))):
            if isinstance(node, ast.Import):
                mods += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module, f"relative import in the notebook: {ast.unparse(node)}"
                if node.module == "pathgan":
                    mods += [f"pathgan.{a.name}" for a in node.names]
                else:
                    mods.append(node.module)
    return mods


def test_notebook_is_committed_without_outputs() -> None:
    nb = _read()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} carry outputs or execution counts; clear them before committing"


def test_notebook_imports_only_the_public_api() -> None:
    mods = _imported_modules(_read())
    assert "pathgan.latents" in mods and "pathgan.store" in mods, mods
    bad = [
        m for m in mods
        if not (m in ALLOWED_PATHGAN if m.split(".")[0] == "pathgan"
                else m.split(".")[0] in sys.stdlib_module_names | ALLOWED_THIRD_PARTY)
    ]
    assert not bad, f"the notebook imports {bad}; it should use only {sorted(ALLOWED_PATHGAN)} and common libraries"


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that starts this interpreter (the venv with pathgan), found first via JUPYTER_PATH.

    Its name is unique, so no other installed ``python3`` spec can shadow it.
    """
    spec = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pathgan (tests)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


def _execute(nb: Any, kernel: str, cwd: Path) -> Any:
    from nbclient import NotebookClient

    # The kernel inherits this process's environment (PATHGAN_NB_*, JUPYTER_PATH).
    client = NotebookClient(nb, timeout=300, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def _outputs(nb: Any) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _errors(nb: Any) -> list[str]:
    return [f"{o.ename}: {o.evalue}\n" + "\n".join(o.traceback)[-3000:] for o in _outputs(nb) if o.output_type == "error"]


def _stdout(nb: Any) -> str:
    return "".join(o.text for o in _outputs(nb) if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.slow
def test_notebook_without_inputs_says_what_to_do(kernel_name: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No env vars and no repository above the working directory: the setup cell names the fix."""
    monkeypatch.delenv("PATHGAN_NB_RUN", raising=False)
    monkeypatch.delenv("PATHGAN_NB_STORES", raising=False)
    nb = _read()
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells = nb.cells[: first_code + 1]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    assert not any((p / "pyproject.toml").exists() for p in (cwd, *cwd.parents))
    errors = _errors(_execute(nb, kernel_name, cwd))
    assert len(errors) == 1, errors
    assert errors[0].startswith("FileNotFoundError") and "make demo" in errors[0] and "PATHGAN_NB_RUN" in errors[0], errors[0]


@pytest.mark.integration
@pytest.mark.slow
def test_notebook_runs_on_the_real_latent_run(real_latent_run: Any, kernel_name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = real_latent_run
    monkeypatch.setenv("PATHGAN_NB_RUN", str(run.run_dir))
    monkeypatch.setenv("PATHGAN_NB_STORES", os.pathsep.join(str(p) for p in run.stores))
    nb = _read()
    n_cells = len(nb.cells)
    # A test-only last cell: which Python ran the notebook.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint('KERNEL_PREFIX:', sys.prefix)"))
    _execute(nb, kernel_name, NOTEBOOK.parent)

    errors = _errors(nb)
    assert not errors, "a notebook cell failed:\n" + "\n\n".join(errors)
    out = _stdout(nb)
    prefix = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("KERNEL_PREFIX:")]
    assert prefix == [sys.prefix], f"the kernel ran {prefix}, not this venv ({sys.prefix})"

    lines = [ln for ln in out.splitlines() if ln.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, f"expected one {SUMMARY_PREFIX!r} line, got {len(lines)}:\n{out[-2000:]}"
    summary = json.loads(lines[0][len(SUMMARY_PREFIX):])

    # Figures: every one the notebook counted reached the output as a PNG, once.
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells[:n_cells] if c.cell_type == "code"
               for o in c.outputs)
    assert summary["n_figures"] >= MIN_FIGURES, summary["n_figures"]
    assert pngs == summary["n_figures"], f"{pngs} PNG outputs for {summary['n_figures']} figures shown"

    # Inputs, counted independently.
    stores = [PatchStore(p) for p in run.stores]
    assert summary["run_id"] == run.run_id
    assert summary["n_patches"] == {s.slide_id: len(s) for s in stores}
    expected_method = "umap" if importlib.util.find_spec("umap") is not None else "pca"
    assert summary["projection"] == expected_method

    # Interpolation endpoints: four reconstructions with a finite, below-maximal pixel error.
    mse = np.asarray(summary["encode_mse"], np.float64)
    assert mse.shape == (4,) and np.isfinite(mse).all() and (mse >= 0).all() and (mse < 0.5).all(), mse

    # The density walk: one finite mean per alpha, and more nuclei at the dense end than the sparse end.
    alphas = np.asarray(summary["walk_alphas"], np.float64)
    dens = np.asarray(summary["walk_mean_density"], np.float64)
    assert alphas.shape == dens.shape == (7,), (alphas, dens)
    assert np.isfinite(dens).all() and ((dens >= 0) & (dens <= 1)).all(), dens
    assert dens[np.argmax(alphas)] > dens[np.argmin(alphas)], (
        f"walking along the nuclei-density direction did not raise the generated density: {dens.tolist()}")

    # Arithmetic neighbours: real rows, and the k nearest to the result by brute force over all latents.
    w = np.asarray(summary["arithmetic_w"], np.float64)
    by_name = {s.path.name: s for s in stores}
    offsets = dict(zip(by_name, np.cumsum([0] + [len(s) for s in stores])[:-1].tolist(), strict=True))
    latents = np.concatenate([s.latents(run.run_id) for s in stores]).astype(np.float64)
    assert w.shape == (latents.shape[1],), w.shape
    dist = np.linalg.norm(latents - w, axis=1)
    kth = np.sort(dist)[K_NEIGHBOURS - 1]
    hits = summary["arithmetic_neighbours"]
    assert len(hits) == K_NEIGHBOURS and len({tuple(h) for h in hits}) == K_NEIGHBOURS, hits
    got = []
    for name, row in hits:
        assert name in by_name and 0 <= row < len(by_name[name]), (name, row)
        got.append(dist[offsets[name] + row])
    assert max(got) <= kth + 1e-4, f"neighbour distances {got} exceed the brute-force {K_NEIGHBOURS}th, {kth}"
    assert (np.diff(got) >= -1e-4).all(), f"neighbours are not closest first: {got}"
