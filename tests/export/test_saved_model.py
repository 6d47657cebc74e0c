"""Tests for tfrec_llm.export.saved_model.write_saved_model: no tf-keras layer traces are saved."""

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2

from tfrec_llm.export.saved_model import write_saved_model


class _Module(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        # a Keras model called in the signature, as the serving modules hold towers and BERT
        self.dense = keras.Sequential([keras.layers.Dense(3, name="dense")])
        self.dense(tf.zeros([1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": self.dense(x)}


def _function_names(path: str) -> list[str]:
    proto = saved_model_pb2.SavedModel()
    with open(f"{path}/saved_model.pb", "rb") as f:
        proto.ParseFromString(f.read())
    return [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function]


def test_saved_without_keras_layer_traces_and_serves_the_same(tmp_path):
    module = _Module()
    path = write_saved_model(module, {"serving_default": module.serve}, str(tmp_path), "m", version=1)
    names = _function_names(path)
    # tf-keras's own per-layer traces (for Keras reloading) are left out; the signature stays
    assert not [n for n in names if "call_and_return_conditional_losses" in n]
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    served = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(x))["y"].numpy()
    np.testing.assert_allclose(served, module.dense(x).numpy(), rtol=1e-6)

    # the same module saved plainly does carry them (so the check above can fail)
    plain = str(tmp_path / "plain")
    tf.saved_model.save(module, plain, signatures={"serving_default": module.serve})
    assert [n for n in _function_names(plain) if "call_and_return_conditional_losses" in n]
