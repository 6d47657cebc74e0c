"""Reads a SavedModel's graph to check that the served ``k`` is validated before ``top_k`` uses it.

A graph runs an op as soon as its inputs are ready. Unless every ``TopKV2`` depends (by data or
control edges) on the ``k >= 1`` ``Assert``, TopKV2 may fail first with its own message
("Need k >= 0"), which is what CI saw once for ``k = -3``.
"""

from __future__ import annotations

import os

from tensorflow.core.protobuf import saved_model_pb2

K_MESSAGE = b"k must be >= 1"


def _node(name: str) -> str:
    """The node name of a function-body input: "^a/b", "a/b:output:0" -> "a/b"."""
    return name.lstrip("^").split(":")[0]


def unchecked_top_k(saved_model_dir: str) -> dict[str, list[str]]:
    """{function: [TopKV2 nodes whose k comes from the request but which do not wait for the k Assert]}."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    found: dict[str, list[str]] = {}
    for function in proto.meta_graphs[0].graph_def.library.function:
        nodes = {n.name: n for n in function.node_def}
        messages = {
            n.name
            for n in nodes.values()
            if n.op == "Const" and any(K_MESSAGE in s for s in n.attr["value"].tensor.string_val)
        }
        checks = {
            n.name for n in nodes.values() if n.op == "Assert" and {_node(i) for i in n.input} & messages
        }
        if not checks:
            continue
        found[function.signature.name] = [
            n.name
            for n in nodes.values()
            if n.op == "TopKV2"
            and "k" in _upstream(nodes, n.input[1:])
            and not _upstream(nodes, n.input) & checks
        ]
    return found


def _upstream(nodes: dict, inputs) -> set[str]:
    """Every node and function argument that `inputs` depend on, by data or control edges."""
    seen, stack = set(), [_node(i) for i in inputs]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in nodes:
            stack.extend(_node(i) for i in nodes[name].input)
    return seen
