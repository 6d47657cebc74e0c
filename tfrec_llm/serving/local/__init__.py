"""The local TF Serving-compatible server (gRPC + REST over TF Serving version folders).

See :mod:`tfrec_llm.serving.local.server` for what it mirrors of TF Serving.
"""

from tfrec_llm.serving.local.predict import RequestStatusError
from tfrec_llm.serving.local.server import LocalModelServer
from tfrec_llm.serving.local.versions import list_version_folders

__all__ = ["LocalModelServer", "RequestStatusError", "list_version_folders"]
