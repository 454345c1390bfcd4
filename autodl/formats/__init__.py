"""The AutoDL dataset format, read and written without TensorFlow.

Modules: ``tfrecord`` (record framing, CRC32C), ``example`` (protobuf messages
in a private descriptor pool), ``spec`` (metadata.textproto), ``dataset``
(``open_dataset``), ``writer`` (``DatasetWriter``), ``check``
(``check_dataset``), ``samples`` (tiny datasets for tests), ``types`` (the
data contract). TensorFlow is never imported.
"""
