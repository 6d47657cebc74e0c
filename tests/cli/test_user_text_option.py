"""``tfrec-llm recommend --user-text``: passed through to the experiment, bad text refused early."""

import os

import pytest

from tfrec_llm.cli.main import main
from tfrec_llm.experiments.experiment import MAX_USER_TEXT_CHARS, Experiment


def _error_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tfrec-llm ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("text", ["", "   \n"])
def test_an_empty_user_text_is_refused_before_any_work(tiny_csv_config, capsys, text):
    config, tmp = tiny_csv_config
    argv = ["recommend", "--config", config, "--user", "new", "--user-text", text]
    line = _error_line(argv, capsys)
    assert line.startswith("tfrec-llm recommend: error: --user-text ")
    assert line.endswith(
        "is empty; describe the user in words, e.g. --user-text 'animated films and space operas'."
    )
    assert not os.path.exists(tmp / "runs")


def test_a_huge_user_text_is_refused_before_any_work(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    text = "space " * (MAX_USER_TEXT_CHARS // 6 + 1)
    line = _error_line(["recommend", "--config", config, "--user", "new", "--user-text", text], capsys)
    assert MAX_USER_TEXT_CHARS == 2000
    assert line.endswith(
        f"--user-text has {len(text)} characters, more than 2000; the encoder reads only the first "
        "text.max_length tokens, so give a short description."
    )
    assert not os.path.exists(tmp / "runs")


def test_the_text_reaches_the_experiment(tiny_csv_config, capsys, monkeypatch):
    config, _ = tiny_csv_config
    calls = []

    def fake_recommend(self, users, k, variant, train_missing, user_text=None, two_stage=None, scenario=None):
        assert two_stage is None  # no --two-stage: the experiment decides
        calls.append((users, k, user_text))
        return [[("1", 0.5)] for _ in users]

    monkeypatch.setattr(Experiment, "recommend", fake_recommend)
    monkeypatch.setattr(Experiment, "prepare", lambda self, *a, **kw: type("P", (), {"titles": {"1": "T"}})())
    argv = ["recommend", "--config", config, "--user", "a", "--user", "b", "--k", "3"]
    assert main([*argv, "--user-text", "animated films and space operas"]) == 0
    assert main(argv) == 0
    assert calls == [(["a", "b"], 3, "animated films and space operas"), (["a", "b"], 3, None)]
    assert "  1. [    1]  0.5000  T" in capsys.readouterr().out
