"""Convert a folder of image, audio, video or text files.

Order of work: find the files and labels (`files.scan_folder`), fix the class
columns, split, then decode on every core (`_pool.ordered_map`) and stream each
record to its split: the test records first (ids 0 …), then train (ids after
the test ids), then the unlabelled ones (ids 0 … in input order). Test and train
records are shuffled with ``--seed``, as the official tools shuffle them, so that
an engine that reads the first records of a split sees every class
(``--keep-order``: scan order, the files' natural name order). The file list is in
memory, so the shuffle is of indices: nothing is spooled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autodl.errors import FormatError
from autodl.formats.convert._items import Bad
from autodl.formats.convert._output import DatasetOutput, Staging
from autodl.formats.convert._pool import ProgressBar, ordered_map
from autodl.formats.convert._run import Run
from autodl.formats.convert.files import FileItem, decode_item, scan_folder, scan_unlabelled
from autodl.formats.convert.labels import (
    PART_NAMES,
    SKIPPED,
    TEST,
    TRAIN,
    UNLABELLED,
    LabelTable,
    check_classes,
    plan_split,
)
from autodl.formats.convert.split_file import read_split_file
from autodl.formats.convert.text import Vocabulary

# Files per task sent to a worker: many for cheap ones, one for a video (seconds).
# Text files are tokenised here: ~50 us each, less than the round trip to a worker
# (bench/format_speed.py: 2670 files/s in this process, 2390/s on two).
CHUNK = {"text": 32, "image": 8, "audio": 2, "video": 1}


def _labels(
    run: Run, items: list[FileItem], order: list[str] | None
) -> tuple[LabelTable, np.ndarray]:
    labels = LabelTable()
    parts = np.empty(len(items), np.int8)
    for i, it in enumerate(items):
        labelled = it.part != UNLABELLED and not it.problem
        labels.add(it.labels if labelled else ())
        parts[i] = SKIPPED if it.problem else it.part
        if it.problem:
            run.bad_input(it.source, it.problem, stop_early=False)
    labels.finish(order)
    run.warnings += check_classes(labels, "the input's labels", force=run.opts.force)
    if not labels.multilabel:  # one class per file: a file without one is an error
        for i in np.flatnonzero((labels.sizes() == 0) & (parts != SKIPPED) & (parts != UNLABELLED)):
            run.bad_input(items[i].source, "has no label", stop_early=False)
            parts[i] = SKIPPED
    return labels, parts


def convert_files(
    run: Run, staging: Staging, labels_file: Path | None = None
) -> tuple[DatasetOutput, tuple[int, int, int, int], dict | None, str]:
    """Convert the folder ``run.input``; returns (output, shape, vocabulary, domain)."""
    opts = run.opts
    src = scan_folder(
        run.input, opts, exclude=[staging.targets["dataset"]], labels_file=labels_file
    )
    run.warnings += src.warnings
    items = src.items
    if opts.unlabelled is not None:
        if any(it.part == UNLABELLED for it in items):
            raise FormatError(
                "the input already has an unlabelled part; --unlabelled adds a second one.",
                "Use one of them.",
            )
        items += scan_unlabelled(opts.unlabelled, src.kind, exclude=[staging.targets["dataset"]])
    if opts.split_file is not None:
        wanted = read_split_file(opts.split_file, [it.source for it in items], run)
        for it in items:
            if it.part != UNLABELLED:
                it.part = wanted.get(it.source, TRAIN)
        src.explicit_split = True
    labels, parts = _labels(run, items, src.label_order)
    run.stop_if_bad()
    classes = labels.classes
    if len(classes) < 2:
        raise FormatError(
            f"{run.input}: {len(classes)} class found ({', '.join(classes)}); a classification needs two or more.",
            "Point INPUT at the folder that holds one folder per class, or check labels.csv.",
        )
    plan_split(labels, parts, test_size=opts.test_size, seed=opts.seed, explicit=src.explicit_split)
    rng = np.random.default_rng(opts.seed)
    shuffle = (lambda a: a) if opts.keep_order else rng.permutation
    order = np.concatenate(
        [
            shuffle(np.flatnonzero(parts == TEST)),
            shuffle(np.flatnonzero(parts == TRAIN)),
            np.flatnonzero(parts == UNLABELLED),
        ]
    )
    run.info.update(
        layout=src.layout, kind=src.kind, files=len(order), multilabel=labels.multilabel
    )
    fmt = "COMPRESSED" if src.kind in ("image", "video") else "DENSE"
    out = DatasetOutput(staging, fmt, classes)
    out.sink("test", 0)
    vocab = Vocabulary() if src.kind == "text" else None
    bar = ProgressBar(len(order), run.progress, f"{src.kind} files")
    tasks = ((src.kind, str(items[i].path), opts) for i in order)
    try:
        for i, res in zip(
            order,
            ordered_map(
                decode_item,
                tasks,
                workers=1 if src.kind == "text" else run.workers,
                total=len(order),
                chunk=CHUNK[src.kind],
            ),
            strict=True,
        ):
            bar.update()
            item = items[i]
            if isinstance(res, Bad):
                run.bad_input(item.source, res.message)
                continue
            run.note(item.source, res.note)
            x = vocab.encode(res.x) if vocab is not None else res.x
            part = int(parts[i])
            out.add(
                PART_NAMES[part],
                x,
                res.shape,
                labels.row(i) if part == TRAIN or part == TEST else None,
                item.source,
            )
    finally:
        bar.close()
    run.stop_if_bad()
    t, h, w, c = out.shape or (1, 1, 1, 1)
    if src.kind == "image":
        shape = (1, h, w, c)
    elif src.kind == "video":
        shape = (t, h, w, c)
    else:
        shape = (-1, 1, 1, c)
    domain = {"image": "image", "video": "video", "text": "text"}.get(src.kind, "speech")
    return out, shape, (vocab.ids if vocab is not None else None), domain
