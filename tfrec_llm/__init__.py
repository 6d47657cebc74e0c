"""tfrec_llm: text-aware recommenders on TensorFlow Recommenders, served by TensorFlow Serving.

Importing the package selects Keras 2 (``tf_keras``) for TensorFlow, because TFRS and the
``transformers`` TF classes are Keras-2 code. The switch must happen before TensorFlow is first
imported, so import ``tfrec_llm`` before ``tensorflow``.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
    raise ImportError(
        "tfrec_llm needs Keras 2 (tf_keras), but TF_USE_LEGACY_KERAS="
        f"{os.environ['TF_USE_LEGACY_KERAS']!r} selects Keras 3. Unset it or set "
        "TF_USE_LEGACY_KERAS=1 before starting Python."
    )

__version__ = "0.1.0"

__all__ = ["__version__"]
