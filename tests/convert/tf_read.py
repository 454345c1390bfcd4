"""Read AutoDL datasets with TensorFlow, as the official AutoDL reader does.

Run by ``test_tensorflow.py`` under the interpreter of a separate virtual
environment holding ``tensorflow-cpu`` (never a dependency of the project):

    python tf_read.py OUT_DIR DATASET_ROOT ...

For every split of every dataset it writes ``OUT_DIR/<name>.<split>.npz``
with the record ids, the label vectors and each record's tensor, parsed as the
starting kit's ``dataset.py`` parses them: ``tf.data.TFRecordDataset`` over
the split's ``sample*`` files, ``tf.io.parse_single_sequence_example`` with
``label_index``/``label_score`` (VarLen) context features and a
``FixedLenSequenceFeature`` of ``row*col*channels`` floats (DENSE) or a
VarLen string list decoded with ``decode_image(channels=num_channels)`` and
``convert_image_dtype(float32)`` (COMPRESSED), labels made dense with
``sparse_to_dense(..., validate_indices=False)``.
"""

from __future__ import annotations

import glob
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def metadata(path: str) -> dict:
    """The fields the official reader uses, from metadata.textproto."""
    text = open(path, encoding="utf-8").read()
    head = text.split("label_to_index_map")[0].split("channel_to_index_map")[0]

    def field(name, default=None):
        m = re.search(rf"\b{name}: (\S+)", head)
        return m.group(1) if m else default

    return {
        "sample_count": int(field("sample_count")),
        "sequence_size": int(field("sequence_size", 1)),
        "output_dim": int(field("output_dim")),
        "row_count": int(field("row_count", -1)),
        "col_count": int(field("col_count", -1)),
        "num_channels": int(field("num_channels", 1)),
        "format": field("format", "DENSE"),
    }


def parse(serialized, m: dict):
    seq_features = {}
    size = m["row_count"] * m["col_count"] * m["num_channels"]
    if m["format"] == "COMPRESSED":
        seq_features["0_compressed"] = tf.io.VarLenFeature(tf.string)
    else:
        seq_features["0_dense_input"] = tf.io.FixedLenSequenceFeature([size], dtype=tf.float32)
    context, features = tf.io.parse_single_sequence_example(
        serialized,
        context_features={
            "id": tf.io.FixedLenFeature([], tf.int64),
            "label_index": tf.io.VarLenFeature(tf.int64),
            "label_score": tf.io.VarLenFeature(tf.float32),
        },
        sequence_features=seq_features,
    )
    if m["format"] == "COMPRESSED":

        def decode(b):
            image = tf.image.decode_image(b, channels=m["num_channels"])
            return tf.image.convert_image_dtype(image, tf.float32)

        x = tf.map_fn(decode, features["0_compressed"].values, fn_output_signature=tf.float32)
    else:
        shape = [m["sequence_size"], m["row_count"], m["col_count"], m["num_channels"]]
        x = tf.reshape(features["0_dense_input"], shape)
    labels = tf.compat.v1.sparse_to_dense(
        context["label_index"].values,
        [m["output_dim"]],
        context["label_score"].values,
        validate_indices=False,
    )
    return context["id"], x, labels


def main(out_dir: str, roots: list[str]) -> None:
    for root in roots:
        name = os.path.basename(root.rstrip("/"))
        for split in ("train", "test", "unlabelled"):
            folder = os.path.join(root, f"{name}.data", split)
            if not os.path.isdir(folder):
                continue
            m = metadata(os.path.join(folder, "metadata.textproto"))
            files = sorted(glob.glob(os.path.join(folder, "sample*")))
            ids, xs, ys = [], [], []
            for record in tf.data.TFRecordDataset(files):
                rid, x, y = parse(record, m)
                ids.append(int(rid.numpy()))
                xs.append(x.numpy())
                ys.append(y.numpy())
            assert len(ids) == m["sample_count"], (root, split, len(ids), m)
            arrays = {"ids": np.array(ids), "labels": np.array(ys)}
            arrays.update({f"x{i}": x for i, x in enumerate(xs)})
            np.savez(os.path.join(out_dir, f"{name}.{split}.npz"), **arrays)
    print("read", len(roots), "datasets with TensorFlow", tf.__version__)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
