"""Train, evaluate, export and query a text-aware two-tower recommender with the Python API.

    python pipelines/train_movielens.py                           # MovieLens-100K + MiniLM defaults
    python pipelines/train_movielens.py --set train.epochs=3      # override any config field
    python pipelines/train_movielens.py --config my.yaml --variant id

A finished model with the same config and data is reused; an interrupted one resumes.
"""

from __future__ import annotations

import argparse
import os
import sys

import tfrec_llm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--config", default=os.path.join(here, "movielens_100k.yaml"), help="YAML config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument(
        "--variant",
        default="bert",
        help="id | text | bert | sasrec | mean (default bert: the config's model)",
    )
    parser.add_argument("--users", default="1,2", help="comma-separated user ids to recommend for")
    args = parser.parse_args(argv)

    config = tfrec_llm.load_config(args.config, args.overrides)
    experiment = tfrec_llm.Experiment(config)

    model, info = experiment.train(args.variant)  # early stopping on VALID NDCG@10
    print(f"best epoch {info['best_epoch']}, VALID {info['valid_metrics']}")

    evaluation = experiment.evaluate([config.eval.protocol], [args.variant])  # beside the baselines
    print(evaluation.table)

    exported = experiment.export(args.variant)  # SavedModels + models.config for TF Serving
    print(f"exported {exported.retrieval}")

    users = args.users.split(",")
    for user, items in zip(users, experiment.recommend(users, k=5, variant=args.variant)):
        print(f"user {user}: {[item for item, _ in items]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
