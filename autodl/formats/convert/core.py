"""`format_dataset`: raw data in, a checked AutoDL dataset (folder + zip) out.

The steps: check the options; stage an output folder inside ``output``; read
the input (a table: `from_table`, a folder of files: `from_files`) and stream
records to it; write the metadata, label names and records manifest; zip it in
the service's upload layout; run `check_dataset` on it; write the JSON manifest;
move it all into place. Any failure leaves ``output`` as it was.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from autodl.errors import FormatError
from autodl.formats.check import CheckReport, check_dataset
from autodl.formats.convert._output import Staging
from autodl.formats.convert._pool import default_workers
from autodl.formats.convert._run import Run
from autodl.formats.convert.files import kind_of, walk
from autodl.formats.convert.from_files import convert_files
from autodl.formats.convert.from_table import convert_table
from autodl.formats.convert.options import FormatOptions, default_name, validate
from autodl.formats.convert.tables import TABLE_EXTENSIONS, Table
from autodl.formats.types import DatasetSpec
from autodl.formats.writer import DatasetWriter


@dataclass
class FormatResult:
    """What `format_dataset` wrote, and what it found on the way."""

    name: str
    domain: str
    dataset: Path
    zip: Path
    manifest: Path
    records: Path
    classes: list[str]
    counts: dict[str, int]
    shape: tuple[int, int, int, int]
    report: CheckReport
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    source: str = ""  # what was read, in words: "60 rows of fish.csv" …

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domain": self.domain,
            "dataset": str(self.dataset),
            "zip": str(self.zip),
            "manifest": str(self.manifest),
            "records": str(self.records),
            "classes": self.classes,
            "counts": self.counts,
            "shape": list(self.shape),
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


def _is_table(path: Path) -> Path | None:
    """The table to read: ``path`` itself, or the one table in a folder of no media."""
    if path.is_file():
        if path.suffix.lower() in TABLE_EXTENSIONS:
            return path
        if path.suffix.lower() == ".zip":
            raise FormatError(f"{path} is a zip archive.", "Unzip it and give the folder as INPUT.")
        raise FormatError(
            f"{path}: not a CSV or Parquet file.",
            "INPUT is a table (.csv, .tsv, .parquet) or a folder.",
        )
    if not path.is_dir():
        raise FormatError(f"{path}: no such file or folder.", "Check the path.")
    files = walk(path, [])
    tables = [
        f
        for f in files
        if f.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq")
        and f.name.lower() not in ("labels.csv", "labels.tsv")
        and not f.name.endswith(".records.csv")  # our own manifest, when DIR is inside INPUT
    ]
    if len(tables) == 1 and not any(kind_of(f) for f in files):
        return tables[0]
    return None


def _lists_files(path: Path, domain: str | None) -> bool:
    """Whether a table lists media files (a labels.csv given as INPUT): ``--domain``
    image, audio or video, or a column whose first values are media file names."""
    if domain in ("image", "audio", "video"):
        if path.suffix.lower() in (".parquet", ".pq"):
            raise FormatError(f"{path}: a list of {domain} files must be a CSV.", "Save it as CSV.")
        return True
    if domain is not None or path.suffix.lower() in (".parquet", ".pq"):
        return False
    sample = next(Table(path).chunks(50), [])
    width = max((len(r) for r in sample), default=0)
    for c in range(width):
        cells = [str(r[c]) for r in sample if c < len(r)]
        if cells and sum(kind_of(Path(v)) not in (None, "text") for v in cells) >= 0.8 * len(cells):
            return True
    return False


def format_dataset(
    input: str | Path,
    output: str | Path,
    *,
    name: str | None = None,
    domain: str | None = None,
    label: str | Sequence[str] | None = None,
    progress: TextIO | None = None,
    **options: Any,
) -> FormatResult:
    """Convert raw data (a CSV/Parquet table or a folder of files) into an AutoDL dataset.

    Writes ``output/<name>/`` (the dataset), ``output/<name>.zip`` (ready to
    upload), ``output/<name>.manifest.json`` (what was done: classes, encodings,
    skipped inputs) and ``output/<name>.records.csv`` (split, id -> input file or
    row). ``options`` are the other fields of `FormatOptions` (``test_size``,
    ``seed``, ``unlabelled``, ``skip_bad``, ``max_size``, ``sample_rate`` …).
    ``progress``: a stream for the progress bar (None: silent).

    >>> result = format_dataset("flowers/", "datasets")          # doctest: +SKIP
    >>> result.dataset, result.counts                             # doctest: +SKIP
    (PosixPath('datasets/flowers'), {'train': 650, 'test': 350, 'unlabelled': 0})
    """
    started = time.monotonic()
    src, out_dir = Path(input), Path(output)
    labels = (label,) if isinstance(label, str) else tuple(label or ())
    for key in ("split_file", "unlabelled"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    for key in ("drop",):
        if isinstance(options.get(key), str):
            options[key] = (options[key],)
    try:
        opts = FormatOptions(name=name, domain=domain, labels=labels, **options)
    except TypeError as e:
        raise FormatError(
            f"format_dataset: {e}.", "See help(autodl.format_dataset) for the options."
        ) from None
    validate(opts)
    opts.name = opts.name or default_name(src.resolve() if str(src) in (".", "") else src)
    table = _is_table(src)
    run = Run(src, out_dir, opts, opts.workers or default_workers(), progress)
    inputs = [src] + ([opts.unlabelled] if opts.unlabelled else [])
    staging = Staging(out_dir, opts.name, opts.force, inputs)
    output_obj = None
    try:
        if table is not None and _lists_files(table, opts.domain):
            run.input = table.parent  # a table of file names and labels, beside the files
            output_obj, shape, vocab, domain_ = convert_files(run, staging, labels_file=table)
        elif table is not None:
            run.input = table
            output_obj, shape, vocab, domain_ = convert_table(run, staging)
        else:
            output_obj, shape, vocab, domain_ = convert_files(run, staging)
        counts = {s: output_obj.count(s) for s in ("train", "test", "unlabelled")}
        for part in ("train", "test"):
            if not counts[part]:
                raise FormatError(
                    f"no {part} record is left after leaving out the bad inputs.",
                    "Fix the inputs listed above.",
                )
        spec = output_obj.finish(shape, vocab, DatasetSpec.detect_domain(shape, vocab is not None))
        report = check_dataset(staging.root)
        if not report.ok:
            first = "; ".join(f"{p.file}: {p.message}" for p in report.errors[:3])
            raise FormatError(
                f"the converted dataset fails its own checks ({first}).",
                "This is a bug in autodl format: please report it with the command you ran.",
            )
        _write_inner_manifest(staging.root / MANIFEST_INSIDE.format(name=opts.name), run, spec)
        stored = spec.format == "COMPRESSED"  # JPEG/PNG records: deflate only costs time
        DatasetWriter(staging.dir, spec).zip(
            staging.path("zip"), compression=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        )
        result = FormatResult(
            opts.name, spec.domain, staging.targets["dataset"], staging.targets["zip"],
            staging.targets["manifest"], staging.targets["records"], list(spec.label_names or []),
            counts, spec.shape, report, list(run.bad), run.all_warnings(),
        )  # fmt: skip
        result.seconds = time.monotonic() - started
        result.source = _describe(run, table if table is not None else src)
        _write_manifest(staging.path("manifest"), result, run, spec, table or src, domain_)
        staging.publish()
        return result
    except BaseException:
        if output_obj is not None:
            output_obj.abort()
        staging.cleanup()
        raise


def _describe(run: Run, source: Path) -> str:
    """One line on what was read, for the CLI."""
    info = run.info
    if "files" in info:
        what = f"{info['files']} {info['kind']} files ({info['layout']})"
    elif "series" in info:
        what = f"{info['series']} series ({info['channels']} channel(s), long format)"
    else:
        what = f"{info.get('rows', 0)} rows"
        if "text_column" in info:
            what += f", text in column {info['text_column']!r}"
    task = "multi-label" if info.get("multilabel") else "multi-class"
    return f"read {what} from {source} ({task})"


#: The part of the manifest a saved model needs to read new raw data (columns by name,
#: text column, sample rate, image size), inside the dataset folder and so in its zip:
#: a run on the zip alone (an upload to the service) still knows its columns' names.
#: Deterministic (no times, no local paths), so the same input gives the same bytes.
MANIFEST_INSIDE = "{name}.manifest.json"


def _write_inner_manifest(path: Path, run: Run, spec: DatasetSpec) -> None:
    options = {
        k: (Path(v).name if isinstance(v, str) and k in ("split_file", "unlabelled") else v)
        for k, v in run.opts.to_json().items()
    }
    data = {
        "autodl_format": 1,
        "inside": True,
        "format": spec.format,
        "multilabel": run.info.get("multilabel", False),
        "options": options,
        "details": {k: v for k, v in run.info.items() if k not in ("multilabel",)},
    }
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")


def _write_manifest(
    path: Path, result: FormatResult, run: Run, spec: DatasetSpec, source: Path, kind: str
) -> None:
    """``<name>.manifest.json``: how the input became the dataset (for people and for new data)."""
    data = {
        "autodl_format": 1,
        "input": str(source),
        "unlabelled_input": str(run.opts.unlabelled) if run.opts.unlabelled else None,
        **result.to_json(),
        "format": spec.format,
        "multilabel": run.info.get("multilabel", False),
        "options": run.opts.to_json(),
        "details": {k: v for k, v in run.info.items() if k not in ("multilabel",)},
    }
    if (
        spec.domain == "speech"
        and kind == "speech"
        and run.opts.domain != "series"
        and run.info.get("kind") == "audio"
    ):
        data["details"]["audio"] = {
            "sample_rate": run.opts.sample_rate,
            "values": "16-bit PCM scale, -32768 to 32767",
        }
    if spec.vocabulary is not None:
        data["details"]["vocabulary_size"] = len(spec.vocabulary)
        data["details"]["tokens"] = (
            "characters" if run.opts.char_tokens else "words and punctuation"
        )
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
