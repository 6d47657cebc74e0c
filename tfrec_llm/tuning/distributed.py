"""KerasTuner's chief/worker mode for our tuners.

KerasTuner decides the role of a process from ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``
and ``KERASTUNER_ORACLE_PORT`` (it reads them itself): the tuner whose id contains ``chief``
serves the oracle over gRPC, every other one asks it for trials, runs them and reports back.
Only the chief holds all trials, so only the chief writes the results. See docs/tuning.md.
"""

from __future__ import annotations

import time

import keras_tuner

from tfrec_llm.errors import ConfigError
from tfrec_llm.tuning.keras_tuner_private import distribute_utils, oracle_chief, oracle_servicer_registrar


def is_distributed_worker() -> bool:
    """True in KerasTuner's chief/worker mode when this process is a worker."""
    return distribute_utils.has_chief_oracle() and not distribute_utils.is_chief_oracle()


def is_distributed_chief() -> bool:
    """True in KerasTuner's chief/worker mode when this process is the chief (oracle server)."""
    return distribute_utils.is_chief_oracle()


def serve_oracle(oracle: keras_tuner.Oracle, address: str, poll_seconds: float = 0.5) -> None:
    """Serves ``oracle`` to the workers over gRPC until the search is over.

    KerasTuner's own ``oracle_chief.start_server`` does the same but checks for the end only
    every 20 s; this polls every ``poll_seconds`` and stops the server when it returns.

    Args:
        oracle: The chief's oracle.
        address: ``ip:port`` to listen on (``KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT``).
        poll_seconds: How often to check whether every trial has ended.
    """
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    oracle_servicer_registrar()(servicer, server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(
            f"cannot listen on {address!r} (KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT); is the port free?"
        )
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=2).wait()
