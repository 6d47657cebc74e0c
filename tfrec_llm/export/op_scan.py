"""Lists every op in a SavedModel and checks it against what stock TF Serving registers.

The stock ``tensorflow_model_server`` binary (the ``tensorflow/serving`` image) registers the core
TensorFlow ops of its TF version plus the classic TF Text kernels. A SavedModel that uses any
other op loads fine in Python and then fails in TF Serving with ``Op type not registered``. This
module reads ``saved_model.pb`` as a proto (nothing is loaded or executed), collects the op type
of every node in every meta graph and in every function of the function library, and classifies
each op:

* ``core``: registered by core TensorFlow (``op_def_registry``), not a TF Text op.
* ``tf_text``: a classic TF Text op the server links (:data:`TF_TEXT_CLASSIC_OPS`).
* ``forbidden``: known not to work in TF Serving (:data:`FORBIDDEN_OPS`, ``Scann*``): Python
  callbacks (``tf.py_function``/``tf.numpy_function``), the *fast* TF Text BERT tokenizer ops
  (tensorflow/serving#2064) and ScaNN.
* ``tf_text_unverified``: another TF Text op whose presence in the server is not verified.
* ``unknown``: neither core nor TF Text (a custom op library).
* ``newer_than_target``: registered by the TensorFlow installed here but not by the target
  server release (only when a ``tf_serving_version`` is given).

With a target ``tf_serving_version`` (``export.tf_serving_version``, e.g. ``"2.20.0"``), core
and TF Text ops are checked against the op list of that release's TensorFlow stored in
``tfrec_llm/export/ops/tf-<major>.<minor>.txt`` (TF Serving X.Y.Z is built from TensorFlow
X.Y), written by ``pipelines/tools/list_ops.py``; without one, against the registry of the
TensorFlow in this process. Only ``core`` and ``tf_text`` are servable. Nodes whose type names a library function are
function calls, not ops, and are skipped.

Example:
    >>> result = scan_saved_model("exports/retrieval/1700000000")  # doctest: +SKIP
    >>> result.ok, result.unsupported                              # doctest: +SKIP
    (True, {})
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tfrec_llm.errors import ConfigError, ExportError

__all__ = [
    "FORBIDDEN_OPS",
    "FORBIDDEN_PREFIXES",
    "GRAPH_SCOPE",
    "TF_TEXT_CLASSIC_OPS",
    "TF_TEXT_OTHER_OPS",
    "OPS_DIR",
    "OpUse",
    "ScanResult",
    "ServerOps",
    "check_servable",
    "classify_op",
    "scan_saved_model",
    "server_ops",
]

#: Folder of the op lists, one ``tf-<major>.<minor>.txt`` per TensorFlow release.
OPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")

#: Name used in ``OpUse.functions`` for nodes of the top-level graph (not inside a function).
GRAPH_SCOPE = "<graph>"

#: Ops that are known not to run in the stock TF Serving binary.
FORBIDDEN_OPS: frozenset[str] = frozenset(
    {
        "PyFunc",
        "PyFuncStateless",
        "EagerPyFunc",
        "FastBertNormalize",
        "FastBertNormalizeWithOffsets",
        "FastWordpieceTokenizeWithOffsets",
        "TFText>FastWordpieceDetokenize",
        "TFText>FastSentencepieceTokenize",
        "TFText>FastSentencepieceDetokenize",
    }
)
#: Op name prefixes that are forbidden (ScaNN registers ``Scann*`` ops).
FORBIDDEN_PREFIXES: tuple[str, ...] = ("Scann",)

#: Classic TF Text kernels, linked into tensorflow_model_server from tensorflow_text's ops_lib.
TF_TEXT_CLASSIC_OPS: frozenset[str] = frozenset(
    {
        "CaseFoldUTF8",
        "NormalizeUTF8",
        "NormalizeUTF8WithOffsetsMap",
        "FindSourceOffsets",
        "RegexSplitWithOffsets",
        "WordpieceTokenizeWithOffsets",
        "WhitespaceTokenizeWithOffsets",
        "TFText>WhitespaceTokenizeWithOffsetsV2",
        "UnicodeScriptTokenizeWithOffsets",
        "SplitMergeTokenizeWithOffsets",
        "TokenizerFromLogits",
        "SentenceFragments",
        "ConstrainedSequence",
        "MaxSpanningTree",
        "RougeL",
        "TFText>NgramsStringJoin",
        "TFText>RoundRobinTrim",
        "TFText>RoundRobinGenerateMasks",
    }
)

#: The other ops tensorflow_text 2.21 registers: not verified in the stock server.
TF_TEXT_OTHER_OPS: frozenset[str] = frozenset(
    {
        "PhraseTokenize",
        "SentenceFragmentsV2",
        "SentencepieceDetokenizeOp",
        "SentencepieceIdToStringOp",
        "SentencepieceOp",
        "SentencepieceStringToIdOp",
        "SentencepieceTokenizeOp",
        "SentencepieceTokenizeWithOffsetsOp",
        "SentencepieceVocabSizeOp",
        "TFText>BoiseTagsToOffsets",
        "TFText>ByteSplitByOffsets",
        "TFText>ByteSplitWithOffsets",
        "TFText>OffsetsToBoiseTags",
        "TFText>PhraseDetokenize",
        "TFText>Utf8Binarize",
    }
)

_ALL_TF_TEXT_OPS = TF_TEXT_CLASSIC_OPS | TF_TEXT_OTHER_OPS | FORBIDDEN_OPS

_SERVABLE = ("core", "tf_text")

_REASONS = {
    "py": "runs Python code (tf.py_function / tf.numpy_function); TF Serving has no Python "
    "interpreter: rewrite the computation with TensorFlow ops",
    "fast_text": "fast TF Text tokenizer op, not registered by tensorflow_model_server "
    "(tensorflow/serving#2064): use the classic tokenizer (use_fast_bert_tokenizer=False)",
    "scann": "ScaNN op, not in TF Serving: export a BruteForce index or run the ANN index outside the graph",
    "tf_text_unverified": "TF Text op not verified in the stock server: use a classic TF Text "
    "op or check the tensorflow/serving image by hand",
    "unknown": "not registered by core TensorFlow or TF Text (custom op library?): the stock "
    "server cannot load it",
    "newer_than_target": "registered by the TensorFlow installed here but not by the target "
    "server release: export with an older TensorFlow or set export.tf_serving_version to a "
    "newer tensorflow/serving release",
}


@dataclass(frozen=True)
class ServerOps:
    """The ops a ``tensorflow/serving`` release registers (from its TensorFlow's op list).

    Attributes:
        tf_serving_version: The server release, e.g. ``"2.20.0"``.
        path: The op list file it was read from.
        core: Core TensorFlow op names.
        tf_text: The classic TF Text kernels the server links.
    """

    tf_serving_version: str
    path: str
    core: frozenset[str]
    tf_text: frozenset[str]


def server_ops(tf_serving_version: str) -> ServerOps:
    """Reads the op list of the TensorFlow that ``tensorflow/serving:<version>`` is built from.

    Raises:
        ConfigError: If the version is not ``X.Y.Z`` or no op list of TensorFlow X.Y is stored.
    """
    match = re.fullmatch(r"(\d+)\.(\d+)\.\d+(?:-[\w.]+)?", tf_serving_version)
    path = os.path.join(OPS_DIR, f"tf-{match.group(1)}.{match.group(2)}.txt") if match else ""
    if not match or not os.path.isfile(path):
        stored = sorted(n[3:-4] for n in os.listdir(OPS_DIR) if n.startswith("tf-") and n.endswith(".txt"))
        raise ConfigError(
            f"export.tf_serving_version={tf_serving_version!r}: expected a tensorflow/serving "
            f"release X.Y.Z whose TensorFlow op list is stored; stored: {', '.join(stored)}. "
            "Write another with pipelines/tools/list_ops.py."
        )
    sections: dict[str, set[str]] = {"core": set(), "tf_text": set()}
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], set())
            elif current is not None:
                current.add(line)
    return ServerOps(tf_serving_version, path, frozenset(sections["core"]), frozenset(sections["tf_text"]))


@dataclass(frozen=True)
class OpUse:
    """One op type found in a SavedModel.

    Attributes:
        op: The op type, e.g. ``"MatMul"``.
        category: ``core``, ``tf_text``, ``forbidden``, ``tf_text_unverified`` or ``unknown``.
        count: Number of nodes with this op type.
        functions: Sorted names of the functions using it (:data:`GRAPH_SCOPE` for the graph).
    """

    op: str
    category: str
    count: int
    functions: tuple[str, ...]

    @property
    def servable(self) -> bool:
        """Whether the stock TF Serving binary registers this op."""
        return self.category in _SERVABLE


@dataclass(frozen=True)
class ScanResult:
    """The ops of one SavedModel, classified.

    Attributes:
        path: The SavedModel folder that was scanned.
        all_ops: Every op type, sorted.
        ops: One :class:`OpUse` per op type, sorted by op.
        unsupported: Unservable op -> the functions that use it.
        ok: True when every op is servable.
    """

    path: str
    all_ops: tuple[str, ...]
    ops: tuple[OpUse, ...]
    unsupported: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ok: bool = True

    def table(self) -> str:
        """Renders the op table as aligned text, unservable ops first."""
        rows = sorted(self.ops, key=lambda u: (u.servable, u.op))
        header = ("op", "category", "nodes", "functions")
        lines = [(u.op, u.category, str(u.count), _short_functions(u.functions)) for u in rows]
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(3)]
        out = []
        for r in [header, *lines]:
            out.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
        return "\n".join(out)


def _short_functions(functions: tuple[str, ...], limit: int = 2) -> str:
    shown = ", ".join(functions[:limit])
    if len(functions) > limit:
        shown += f", ... (+{len(functions) - limit})"
    return shown


def classify_op(op: str, core_ops: Iterable[str] | None = None, target: ServerOps | None = None) -> str:
    """Classifies one op type against the stock TF Serving binary.

    Args:
        op: The op type.
        core_ops: The core TF op names to check against. ``None`` asks TensorFlow's op
            registry in this process (ops of loaded TF Text or other op libraries are
            recognised by name and never counted as core).
        target: The ops of the server release that will run the model (`server_ops`); when
            given, it decides ``core`` and ``tf_text`` instead of ``core_ops``.

    Returns:
        ``core``, ``tf_text``, ``forbidden``, ``tf_text_unverified``, ``unknown`` or
        ``newer_than_target``.
    """
    if op in FORBIDDEN_OPS or op.startswith(FORBIDDEN_PREFIXES):
        return "forbidden"
    if target is not None:
        if op in target.tf_text:
            return "tf_text"
        if op in target.core:
            return "core"
        here = classify_op(op, core_ops)
        return "newer_than_target" if here in _SERVABLE else here
    if op in TF_TEXT_CLASSIC_OPS:
        return "tf_text"
    if op in TF_TEXT_OTHER_OPS or op.startswith("TFText>"):
        return "tf_text_unverified"
    if core_ops is not None:
        return "core" if op in set(core_ops) else "unknown"
    from tensorflow.python.framework import op_def_registry

    return "core" if op_def_registry.get(op) is not None else "unknown"


def _reason(op: str, category: str) -> str:
    if category == "forbidden":
        if op.startswith(FORBIDDEN_PREFIXES):
            return _REASONS["scann"]
        if "PyFunc" in op:
            return _REASONS["py"]
        return _REASONS["fast_text"]
    return _REASONS[category]


def _read_saved_model(path: str) -> Any:  # a saved_model_pb2.SavedModel
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    pb = os.path.join(path, "saved_model.pb")
    pbtxt = os.path.join(path, "saved_model.pbtxt")
    model = saved_model_pb2.SavedModel()
    if os.path.isfile(pb):
        with open(pb, "rb") as f:
            model.ParseFromString(f.read())
    elif os.path.isfile(pbtxt):
        with open(pbtxt, encoding="utf-8") as f:
            text_format.Parse(f.read(), model)
    else:
        raise ExportError(
            f"path={path!r} is not a SavedModel folder: it has no saved_model.pb. Pass a "
            "version folder such as <export_dir>/retrieval/<version>/."
        )
    return model


def scan_saved_model(
    path: str | os.PathLike[str], core_ops: Iterable[str] | None = None, tf_serving_version: str | None = None
) -> ScanResult:
    """Lists and classifies every op type in a SavedModel.

    Args:
        path: The SavedModel (version) folder holding ``saved_model.pb``.
        core_ops: Optional explicit core op allowlist; ``None`` uses TensorFlow's registry.
        tf_serving_version: The ``tensorflow/serving`` release to check against (its stored
            op list, `server_ops`); ``None`` checks against this process's TensorFlow.

    Returns:
        The :class:`ScanResult`.

    Raises:
        ExportError: If ``path`` holds no SavedModel.
    """
    path = os.fspath(path)
    model = _read_saved_model(path)
    uses: dict[str, dict[str, int]] = {}  # op -> {scope: count}
    for meta_graph in model.meta_graphs:
        library = meta_graph.graph_def.library
        function_names = {f.signature.name for f in library.function}
        scopes = [(GRAPH_SCOPE, meta_graph.graph_def.node)]
        scopes += [(f.signature.name, f.node_def) for f in library.function]
        for scope, nodes in scopes:
            for node in nodes:
                if node.op in function_names:  # a direct call of a library function
                    continue
                per_scope = uses.setdefault(node.op, {})
                per_scope[scope] = per_scope.get(scope, 0) + 1
    core = frozenset(core_ops) if core_ops is not None else None
    target = server_ops(tf_serving_version) if tf_serving_version else None
    op_uses = []
    for op in sorted(uses):
        category = classify_op(op, core, target)
        op_uses.append(OpUse(op, category, sum(uses[op].values()), tuple(sorted(uses[op]))))
    unsupported = {u.op: u.functions for u in op_uses if not u.servable}
    return ScanResult(
        path=path,
        all_ops=tuple(sorted(uses)),
        ops=tuple(op_uses),
        unsupported=unsupported,
        ok=not unsupported,
    )


def check_servable(
    path: str | os.PathLike[str], core_ops: Iterable[str] | None = None, tf_serving_version: str | None = None
) -> ScanResult:
    """Scans a SavedModel and raises unless stock TF Serving can run every op.

    Args:
        path: The SavedModel (version) folder.
        core_ops: Optional explicit core op allowlist; ``None`` uses TensorFlow's registry.
        tf_serving_version: The ``tensorflow/serving`` release that will run it
            (``export.tf_serving_version``); ``None`` checks against this process's TensorFlow.

    Returns:
        The :class:`ScanResult` (always ``ok``).

    Raises:
        ExportError: Naming every offending op, why it fails and the functions that use it.
    """
    result = scan_saved_model(path, core_ops, tf_serving_version)
    if result.ok:
        return result
    server = (
        f"tensorflow/serving:{tf_serving_version}"
        if tf_serving_version
        else "the stock tensorflow_model_server"
    )
    by_op = {u.op: u for u in result.ops}
    details = "; ".join(
        f"{op} [{by_op[op].category}: {_reason(op, by_op[op].category)}] used in "
        f"{_short_functions(functions, limit=3)}"
        for op, functions in result.unsupported.items()
    )
    raise ExportError(
        f"SavedModel at {result.path!r} is not servable by {server}: "
        f"{len(result.unsupported)} unsupported op(s): {', '.join(result.unsupported)}. "
        f"Details: {details}."
    )
