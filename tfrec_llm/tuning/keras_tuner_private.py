"""The one place that reaches into KerasTuner's private ``keras_tuner.src`` modules.

KerasTuner has no public API for its chief/worker plumbing (the oracle gRPC service and the
role checks), so the tuner uses ``keras_tuner.src``. Those paths may move in any release:
importing this module checks the installed version against the one these imports were written
for and fails with one clear sentence otherwise.
"""

from __future__ import annotations

from typing import Any

import keras_tuner

SUPPORTED_VERSIONS = ("1.4.",)
"""KerasTuner releases whose private layout these imports match (setup.cfg pins 1.4.8)."""

if not keras_tuner.__version__.startswith(SUPPORTED_VERSIONS):
    raise ImportError(
        f"tfrec_llm.tuning needs keras-tuner {' or '.join(v + '*' for v in SUPPORTED_VERSIONS)}, "
        f"found {keras_tuner.__version__}: its private keras_tuner.src layout may differ. "
        "Install the pinned version: pip install 'keras-tuner==1.4.8'."
    )

from keras_tuner.src import protos  # noqa: E402
from keras_tuner.src.distribute import oracle_chief  # noqa: E402
from keras_tuner.src.distribute import utils as distribute_utils  # noqa: E402

__all__ = ["SUPPORTED_VERSIONS", "distribute_utils", "oracle_chief", "oracle_servicer_registrar", "protos"]


def oracle_servicer_registrar() -> Any:
    """KerasTuner's generated ``add_OracleServicer_to_server`` function."""
    return protos.get_service_grpc().add_OracleServicer_to_server
