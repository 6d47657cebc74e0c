"""Tests for tfrec_llm.training.experiment: finished models are reused only with the same settings."""

import json
import os

from tfrec_llm.config import ExperimentConfig, replace
from tfrec_llm.training.experiment import load_or_train, prepare

_TINY = dict(
    model__embedding_dim=8, model__history_length=4, train__batch_size=32, train__epochs=1, train__patience=1
)


def test_finished_model_is_reused_and_a_changed_config_retrains(tiny_dataset, tmp_path, caplog):
    cfg = replace(ExperimentConfig(), **_TINY)
    prepared = prepare(cfg, "loo", with_text=False, dataset=tiny_dataset)
    directory = str(tmp_path / "id")
    _, first = load_or_train(cfg, prepared, "id", directory, verbose=0)
    stamp = os.path.getmtime(os.path.join(directory, "model.weights.h5"))
    _, again = load_or_train(cfg, prepared, "id", directory, verbose=0)
    assert again == first  # read back from result.json, not retrained
    assert os.path.getmtime(os.path.join(directory, "model.weights.h5")) == stamp

    changed = replace(cfg, model__embedding_dim=12)
    model, _ = load_or_train(changed, prepared, "id", directory, verbose=0)
    assert model.item_tower.embedding_dim == 12
    assert any("trained with other settings" in r.getMessage() for r in caplog.records)
    with open(os.path.join(directory, "training_config.json")) as f:
        assert json.load(f)["model"]["embedding_dim"] == 12
