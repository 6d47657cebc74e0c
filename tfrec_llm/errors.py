"""Error types raised by tfrec_llm. Messages name the argument, the value, and the fix."""


class ConfigError(ValueError):
    """A configuration value or file is invalid."""


class DataError(ValueError):
    """Input data is malformed: missing column, unparsable value, unknown id, empty text."""


class ExportError(ValueError):
    """A model cannot be exported, or an export is incomplete or not servable."""


class ServingError(RuntimeError):
    """A request to a model server failed; carries the gRPC/HTTP status when there is one."""


class DistributeError(ConfigError):
    """The machine cannot run the ``train.strategy`` asked for (no TPU, devices already set up)."""
