"""TensorFlow's reading of AutoDL record files, timed; run by `read_speed.py` with the
python of a TensorFlow venv (``AUTODL_TF_PYTHON``), never imported by autodl.

    $AUTODL_TF_PYTHON bench/_tf_read.py '{"files": [...], "format": "DENSE",
        "shape": [1, 1, 15, 1], "repeat": 3}'

Prints one JSON line: best seconds (and least CPU seconds, ``*_cpu``, all threads) of the per-record parse
(``tf.io.parse_single_sequence_example`` mapped over a ``TFRecordDataset``, the
results then batched so that Python's iteration is not what is timed) and of the
batched parse (``tf.io.parse_sequence_example`` over batches of 256), each iterated to
the end. COMPRESSED frames are decoded (``tf.io.decode_image``, then
``convert_image_dtype``) in both, as the official reader does.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

BATCH = 256


def _features(fmt: str, shape: list[int]) -> tuple[dict, dict]:
    context = {
        "id": tf.io.FixedLenFeature([], tf.int64),
        "label_index": tf.io.VarLenFeature(tf.int64),
        "label_score": tf.io.VarLenFeature(tf.float32),
    }
    t, h, w, c = shape
    if fmt == "DENSE":
        seq = {"0_dense_input": tf.io.FixedLenSequenceFeature([h * w * c], tf.float32)}
    elif fmt == "SPARSE":
        seq = {
            k: tf.io.VarLenFeature(tf.int64)
            for k in ("0_sparse_row_index", "0_sparse_col_index", "0_sparse_channel_index")
        }
        seq["0_sparse_value"] = tf.io.VarLenFeature(tf.float32)
    else:
        seq = {"0_compressed": tf.io.VarLenFeature(tf.string)}
    return context, seq


def _decode(frames: tf.Tensor, channels: int) -> tf.Tensor:
    def one(f):
        img = tf.io.decode_image(f, channels=channels, expand_animations=False)
        return tf.image.convert_image_dtype(img, tf.float32)

    return tf.map_fn(one, frames, fn_output_signature=tf.float32)


def main() -> None:
    args = json.loads(sys.argv[1])
    fmt, shape = args["format"], args["shape"]
    context, seq = _features(fmt, shape)
    channels = shape[3]

    def single(rec):
        ctx, s = tf.io.parse_single_sequence_example(rec, context, seq)
        if fmt == "COMPRESSED":
            s = {"x": _decode(s["0_compressed"].values, channels)}
        # sizes, so that records of different lengths batch (the parse is done all the same)
        sizes = [tf.size(v.values if isinstance(v, tf.SparseTensor) else v) for v in s.values()]
        return ctx["id"], tf.add_n(sizes)

    def batched(recs):
        ctx, s, _ = tf.io.parse_sequence_example(recs, context, seq)
        if fmt == "COMPRESSED":
            frames = s["0_compressed"].values
            return ctx["id"], _decode(frames, channels)
        return ctx["id"], s

    files = args["files"]
    out = {}
    for name, make in (
        # per record, handed out in batches: Python's loop over the dataset (~50 us an
        # element) would otherwise be what is measured, not the parse
        ("per_record", lambda: tf.data.TFRecordDataset(files).map(single).batch(BATCH)),
        ("batched", lambda: tf.data.TFRecordDataset(files).batch(BATCH).map(batched)),
    ):
        best, cpu = float("inf"), float("inf")
        for _ in range(args.get("repeat", 3)):
            t, c = time.perf_counter(), time.process_time()
            for _ in make():
                pass
            best = min(best, time.perf_counter() - t)
            cpu = min(cpu, time.process_time() - c)  # every thread of the process
        out[name] = best
        out[name + "_cpu"] = cpu
    out["tensorflow"] = tf.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
