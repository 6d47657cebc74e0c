"""The one end-to-end test on the real stack: MovieLens-100K + the bundled MiniLM.

Runs the README's main command (``tfrec-llm run`` with ``pipelines/movielens_100k.yaml``) at a
short epoch budget under protocol A: trains the config's model (the GRU sequence model over ids +
text, reading an optional user text, ``bert``) and the ranking model on its candidates, evaluates retrieval and two-stage beside
MostPop, exports the SavedModels of ``bert`` (retrieval, ranking
and item encoder), serves them with the local PredictionService and queries it over a real
gRPC socket; the exported item encoder is loaded in a fresh process
that never imports tfrec_llm and must reproduce the in-process MiniLM embedding.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tfrec_llm.cli.main import main
from tfrec_llm.serving.grpc_client import GrpcClient
from tfrec_llm.serving.local import LocalModelServer

_ENCODE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the classic TF Text ops, as the TF Serving binary does
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = fn(text=tf.constant(json.loads(sys.argv[2])))["embedding"].numpy()
assert not any(m.startswith("tfrec_llm") for m in sys.modules)
print(json.dumps(out.tolist()))
"""


def test_movielens_minilm_train_evaluate_export_serve_query(tmp_path, capsys):
    config = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines", "movielens_100k.yaml"
    )
    overrides = [
        "--config",
        config,  # the README's main command's config (eval.two_stage: the ranking model too)
        "--set",
        f"train.model_dir={tmp_path / 'runs'}",
        "--set",
        f"export.export_dir={tmp_path / 'exports'}",
        "--set",
        # Next-item models need a few epochs of ~19 steps each: the attention one measured
        # VALID NDCG@10 0.043 after 2 epochs (MostPop's level) and 0.089 after 6.
        "train.epochs=6",
        "--quiet",
    ]
    out_json = tmp_path / "results.json"
    # the README's main command, at a smaller epoch budget
    assert main(["run", "--protocol", "loo", "--json", str(out_json), "--users", "1,2", *overrides]) == 0
    printed = capsys.readouterr().out
    records = json.loads(out_json.read_text())
    test_ndcg = {
        r["model"]: r["value"]
        for r in records
        if r["split"] == "test" and r["metric"] == "ndcg" and r["k"] == 10
    }
    # REPORT_VARIANTS: the config's model alone (--variants adds others), and its two-stage row
    assert set(test_ndcg) == {"Random", "MostPop", "TwoTower-BERT", "TwoTower-BERT two-stage"}
    assert test_ndcg["TwoTower-BERT"] > test_ndcg["MostPop"] > test_ndcg["Random"]
    assert test_ndcg["TwoTower-BERT two-stage"] > test_ndcg["MostPop"]
    assert "user 1:" in printed and "user 2:" in printed and "Genres:" in printed  # gRPC answers, with titles
    assert "two-stage (model 'ranking', signature 'recommend'):" in printed  # answered over gRPC too
    # model.user_text: a new user described only by text, answered by retrieval and two-stage
    assert "a new user described only by text, user_text='I like animated films and space operas'" in printed
    assert printed.count("user new-user:") == 2

    exports = tmp_path / "exports"
    assert sorted(os.listdir(exports)) == [
        "item_encoder",
        "models.config",
        "ranking",
        "retrieval",
        "serving.env",
    ]
    assert "TF_SERVING_TAG=2.20.0" in (exports / "serving.env").read_text().splitlines()
    version = os.listdir(exports / "item_encoder")[0]

    # the item encoder in a fresh process equals the in-process MiniLM (mean pool + L2)
    from tfrec_llm.text.bert_loader import default_model_path
    from tfrec_llm.text.encoder import TextEncoder, encode_texts

    texts = ["Toy Story (1995). Genres: Animation, Children's, Comedy", ""]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", _ENCODE, str(exports / "item_encoder" / version), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    local = encode_texts(TextEncoder(default_model_path()), texts)
    np.testing.assert_allclose(served, local, atol=1e-4)

    # serve both models and query the retrieval model over gRPC (a new user by text as well)
    with LocalModelServer.from_config_file(
        str(exports / "models.config"), grpc_port=0, rest_port=None
    ) as server:
        client = GrpcClient("127.0.0.1", server.grpc_port, model_name="retrieval")
        answers = client.recommend(["1", "2", "no-such-user"], k=5)
        assert [len(a) for a in answers] == [5, 5, 5]
        assert all(isinstance(item, str) and isinstance(score, float) for a in answers for item, score in a)
        # an unknown user with a text is answered from the text (MiniLM in the graph), not by the
        # popularity fallback that the same unknown user without text gets
        described = client.predict(
            {
                "user_id": np.array([b"no-such-user"]),
                "user_text": np.array([b"animated films and space operas"]),
            }
        )
        assert described["used_fallback"].tolist() == [False]
        by_text = [item.decode() for item in described["item_ids"][0][:5]]
        assert by_text != [item for item, _ in answers[2]]
        status = client.status()
        assert status and str(status[0][0]) == version
