"""Raw data -> AutoDL datasets: tables (tabular, text, time series), folders of images,
audio, video and text files. The entry point is `format_dataset` (``autodl format``).

Modules: ``core`` (the steps), ``from_table`` / ``from_files`` (the two kinds of
input), ``tables`` / ``files`` (reading them), one module per kind of data
(``tabular``, ``text``, ``series``, ``image``, ``audio``, ``video``),
``labels`` (classes and the split), ``_output`` (staging and streamed splits),
``_pool`` (decoding on every core, progress bar).
"""

from autodl.formats.convert.core import FormatResult, format_dataset
from autodl.formats.convert.options import DOMAINS, FormatOptions

__all__ = ["DOMAINS", "FormatOptions", "FormatResult", "format_dataset"]
