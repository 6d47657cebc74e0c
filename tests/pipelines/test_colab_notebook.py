"""pipelines/colab_quickstart.ipynb runs top to bottom on CPU at toy size (nbclient), so it never rots."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "pipelines" / "colab_quickstart.ipynb"


def test_colab_quickstart_notebook_executes_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("TFREC_NOTEBOOK_DIR", str(tmp_path))  # read by the kernel it starts
    monkeypatch.delenv("TFREC_LLM_SOURCE", raising=False)  # installed here: nothing to install
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = {
        i: "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
    }
    text = "\n".join(outputs.values())
    assert "train.strategy=default: 1 replica(s)" in text  # no TPU, no GPU: the CPU's strategy
    assert "no TPU: train.strategy='tpu' found no TPU" in text
    assert "best epoch" in text and "MostPop" in text
    # the exported SavedModel answered both users with 5 distinct items of the catalog each
    answers = [line for line in text.splitlines() if line.startswith("user ")]
    assert [line.split(":")[0] for line in answers] == ["user 1", "user 60"]
    for line in answers:
        items = line.split("items ")[1].split(", ")
        assert len(set(items)) == 5 and all(1 <= int(i) <= 30 for i in items)
    assert os.listdir(tmp_path / "exports" / "retrieval")  # a version folder
