"""Every notebook in notebooks/ runs top to bottom and draws at least one plot.

Notebooks are committed without outputs and are clients of the package (STYLE.md
rule 10): they import `mtl_tf` and define no functions or classes of their own.
Executing them is slow (each trains a small model), so that test carries the
`slow` marker; it is not skipped.
"""

import re
import time
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_SECONDS = 600
KERNEL_NAME = "mtl-tf-notebook-test"

notebook_params = pytest.mark.parametrize("path", NOTEBOOKS,
                                          ids=[p.name for p in NOTEBOOKS])


@pytest.fixture
def kernel_env(tmp_path, monkeypatch) -> str:
    """A kernel spec running this interpreter, whatever kernels are installed.

    Notebooks write their runs and exports to `tempfile.mkdtemp()`; TMPDIR sends
    those into this test's temporary directory.
    """
    write_kernel_spec(tmp_path / "jupyter" / "kernels" / KERNEL_NAME)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # keep the inline backend
    return KERNEL_NAME


@notebook_params
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name} cell {index} has outputs; strip them before committing.")


@notebook_params
def test_notebook_defines_no_library_code(path):
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not re.search(r"^\s*(async\s+def|def|class)\s", cell.source,
                                 re.MULTILINE), (
                f"{path.name} cell {index} defines a function or class; move it "
                "into mtl_tf (STYLE.md rule 10).")


@notebook_params
def test_notebook_is_listed_in_readme(path):
    assert path.name in (NOTEBOOK_DIR / "README.md").read_text()


@pytest.mark.slow
@notebook_params
def test_notebook_runs_and_plots(path, tmp_path, kernel_env):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS,
                            kernel_name=kernel_env,
                            resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()  # Raises CellExecutionError, naming the cell, on any error.
    seconds = time.perf_counter() - started
    print(f"{path.name}: executed in {seconds:.0f} s")

    images = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.outputs if "image/png" in output.get("data", {})]
    assert images, f"{path.name} drew no plot (no image/png output)."
