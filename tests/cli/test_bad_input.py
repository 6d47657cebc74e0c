"""Bad input on the command line (issue 13): each is one line on stderr and exit code 2 (130 for
Ctrl-C), never a traceback, and nothing is trained or deleted."""

import os

import pytest

from tfrec_llm.cli.main import main
from tfrec_llm.experiments import runs

HEADER = "user_id,item_id,timestamp\n"


def _fails(argv, capsys, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "buffer_size" not in err and "non-empty" not in err
    lines = [line for line in err.splitlines() if line.startswith("tfrec-llm ")]
    assert len(lines) == 1, err
    return lines[0]


def _train_on(config, tmp, text, *extra):
    log = tmp / "log.csv"
    log.write_text(HEADER + text)
    return ["train", "--config", config, "--variant", "id", "--quiet", "--set", f"data.path={log}", *extra]


def test_a_header_only_file(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    line = _fails(_train_on(config, tmp, ""), capsys)
    assert line.endswith(
        "log.csv: no usable interactions after cleaning: the file has a header but no data rows."
    )
    assert not os.path.exists(tmp / "runs" / "loo" / "id")


def test_every_row_dropped(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    line = _fails(_train_on(config, tmp, ",1,5\n2,,6\n", "--set", "data.strict=false"), capsys)
    assert "no usable interactions after cleaning: every row was dropped (empty_id=2;" in line


def test_too_few_rows_to_split(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    line = _fails(_train_on(config, tmp, "1,1,5\n1,2,6\n"), capsys)
    assert "error: too few interactions to split under protocol 'loo': 2 interactions of 1 users" in line


def test_too_few_rows_to_train(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    line = _fails(_train_on(config, tmp, "1,1,5\n1,2,6\n1,3,7\n"), capsys)  # TRAIN: 1 item, no window
    assert "error: no training examples in TRAIN" in line


def test_duplicates_name_the_cli_spelling(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    line = _fails(_train_on(config, tmp, "1,1,5\n1,2,6\n1,1,5\n"), capsys)
    assert "line 4: duplicate interaction" in line and "--set data.strict=false" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.shuffle_buffer=0", "train.shuffle_buffer=0; expected an integer >= 1"),
        ("train.patience=-1", "train.patience=-1; expected an integer >= 0"),
        ("train.monitor=users", "train.monitor='users'; expected <metric>@<k>"),
        ("train.monitor=ndcg@20", "train.monitor='ndcg@20'; expected <metric>@<k> with metric in"),
    ],
)
def test_bad_training_settings_fail_before_any_work(tiny_csv_config, capsys, override, expected):
    config, tmp = tiny_csv_config
    line = _fails(["train", "--config", config, "--variant", "id", "--set", override], capsys)
    assert expected in line
    assert not os.path.exists(tmp / "runs")


def test_a_folder_as_config(tmp_path, capsys):
    line = _fails(["train", "--config", str(tmp_path)], capsys)
    assert f"config file '{tmp_path}' is a directory; expected a YAML file" in line


@pytest.mark.parametrize("k", ["0", "-3"])
def test_recommend_k_below_one_is_refused_before_any_work(tiny_csv_config, capsys, k):
    config, tmp = tiny_csv_config
    line = _fails(["recommend", "--config", config, "--variant", "id", "--user", "1", "--k", k], capsys)
    assert line.endswith(f"error: k={k}; expected an integer >= 1 (how many items to recommend per user).")
    assert not os.path.exists(tmp / "runs")


def test_recommend_says_when_k_is_capped(tiny_csv_config, capsys, caplog):
    config, _ = tiny_csv_config
    assert main(["train", "--config", config, "--variant", "id", "--quiet", "--set", "train.epochs=1"]) == 0
    argv = ["recommend", "--config", config, "--variant", "id", "--user", "1", "--quiet", "--k", "100000"]
    argv += ["--set", "train.epochs=1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert " 30. [" in out and " 31. [" not in out  # the tiny catalog holds 30 items
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "k=100000 is more than can be returned: returning 30 items per user (the catalog holds 30 items; export.max_k=100)"
        in messages
    )


def test_ctrl_c_while_a_model_loads_is_one_line_and_exit_130(tiny_csv_config, capsys, monkeypatch):
    config, _ = tiny_csv_config
    argv = ["--config", config, "--variant", "id", "--quiet", "--set", "train.epochs=1"]
    assert main(["train", *argv]) == 0
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "_load_finished", interrupted)  # recommend only loads (never trains)
    line = _fails(["recommend", *argv, "--user", "1"], capsys, code=130)
    assert line == "tfrec-llm recommend: interrupted"
