"""Convert a CSV or Parquet table: tabular rows, texts, or time series.

Two passes, so that memory does not grow with the table: the first reads
every row's labels and split and learns what the encoding needs (column types
and categories, bad rows); the second encodes each row and streams it to its
split. The train and the test records are shuffled within their split with
``--seed`` (`labels.record_places`; the output spools them in bounded memory),
so that a table sorted by label or date still gives splits whose first records
hold every class; ``--keep-order`` keeps the input's row order. Ids follow the
written order (test 0 …, train after them, unlabelled 0 … in input order). An ``--unlabelled`` table is matched to the labelled one by column
name and goes through the same encoding.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from autodl.errors import FormatError
from autodl.formats.convert._items import BadInput
from autodl.formats.convert._output import DatasetOutput, Staging
from autodl.formats.convert._pool import ProgressBar
from autodl.formats.convert._run import Run
from autodl.formats.convert.labels import (
    PART_NAMES,
    SKIPPED,
    TEST,
    TRAIN,
    UNLABELLED,
    LabelTable,
    check_classes,
    plan_split,
    record_places,
)
from autodl.formats.convert.series import LongSeries, long_columns, wide_values
from autodl.formats.convert.split_file import read_split_file
from autodl.formats.convert.tables import (
    Roles,
    Table,
    is_missing,
    resolve_roles,
    row_labels,
    row_split,
)
from autodl.formats.convert.tabular import TabularEncoder
from autodl.formats.convert.text import Vocabulary, tokenize

Row = list[Any]


TEXT_MIN_SPACES = 5  # mean spaces per cell of a column taken for text without --domain text
TEXT_MAX_COLUMNS = 4  # data columns at most of a table taken for text (else it is tabular
# with a free-text column, such as a name or an address, which is then left out)


def _text_column(table: Table, cols: list[int], sample: list[Row], forced: bool) -> int | None:
    """The column that holds text: the one with the most spaces per cell
    (≥ TEXT_MIN_SPACES in a table of few columns, unless ``forced``)."""
    best, score = None, -1.0
    for c in cols:
        cells = [r[c] for r in sample if c < len(r) and not is_missing(r[c])]
        if not cells or sum(table.number(v) is not None for v in cells) > len(cells) / 2:
            continue
        spaces = sum(str(v).count(" ") for v in cells) / len(cells)
        if spaces > score:
            best, score = c, spaces
    if forced:
        return best
    return best if score >= TEXT_MIN_SPACES and len(cols) <= TEXT_MAX_COLUMNS else None


def _adapter(main: Table, other: Table, needed: list[int]) -> Callable[[Row], Row]:
    """Rows of ``other`` laid out as ``main``'s (matched by column name)."""
    where = {c: i for i, c in enumerate(other.columns)}
    missing = [main.columns[c] for c in needed if main.columns[c] not in where]
    if missing:
        raise FormatError(
            f"--unlabelled {other.path.name} lacks the column(s) {', '.join(map(repr, missing))}.",
            "Give it the same data columns as the labelled table (labels may be left out).",
        )
    mapping = [where.get(c) for c in main.columns]
    return lambda row: [row[j] if j is not None else None for j in mapping]


class _Encoder:
    """The domain's two steps on a row: ``check`` (pass 1) and ``encode`` (pass 2)."""

    def __init__(self, run: Run, table: Table, domain: str, cols: list[int], sample: list[Row]):
        self.domain, self.table, self.cols = domain, table, cols
        self.vocab: Vocabulary | None = None
        self.tabular: TabularEncoder | None = None
        if domain == "tabular":
            self.tabular = TabularEncoder(table, cols)
        elif domain == "text":
            forced = run.opts.text_column is not None
            col = (
                table.index(run.opts.text_column, "--text-column")
                if forced
                else _text_column(table, cols, sample, True)
            )  # type: ignore[arg-type]
            if col is None:
                raise FormatError(
                    f"{table.path.name}: no column holds text.", "Name it with --text-column."
                )
            self.text_col, self.vocab, self.chars = col, Vocabulary(), run.opts.char_tokens
            unused = [table.columns[c] for c in cols if c != col]
            if unused:
                run.warnings.append(
                    f"column(s) {', '.join(map(repr, unused))} not used: a text dataset holds only the text"
                )
            run.info["text_column"] = table.columns[col]

    def check(self, row: Row) -> None:
        if self.tabular is not None:
            self.tabular.observe(row)
        elif self.vocab is not None:
            if is_missing(row[self.text_col]) or not str(row[self.text_col]).strip():
                raise BadInput(f"no text in column {self.table.columns[self.text_col]!r}")
        else:
            wide_values(self.table, row, self.cols)

    def encode(self, row: Row) -> tuple[np.ndarray, tuple[int, ...]]:
        if self.tabular is not None:
            x = self.tabular.encode(row)
        elif self.vocab is not None:
            x = self.vocab.encode(tokenize(str(row[self.text_col]), self.chars))
        else:
            x = wide_values(self.table, row, self.cols)
        return x, x.shape


def _records(
    table: Table, utable: Table | None, adapt: Callable[[Row], Row] | None
) -> Iterator[tuple[Table, int, Row, int]]:
    """(table, row number, row in the labelled table's layout, its number of fields)
    of both tables, in order."""
    for tbl, fix in ((table, None), (utable, adapt)):
        if tbl is None:
            continue
        n, width = 0, len(tbl.columns)
        for chunk in tbl.chunks():
            for row in chunk:
                ok = len(row) == width
                yield tbl, n, (row if fix is None or not ok else fix(row)), len(row)
                n += 1


def convert_table(
    run: Run, staging: Staging
) -> tuple[DatasetOutput, tuple[int, int, int, int], dict | None, str]:
    """Convert the table ``run.input``; returns (output, shape, vocabulary, domain)."""
    opts = run.opts
    table = Table(run.input)
    run.note(table.path.name, table.note)
    roles = resolve_roles(table, opts)
    long = long_columns(table, opts.id_column) if opts.domain in (None, "series") else None
    if long is not None:
        roles.id = long[0]
    cols = roles.data_columns(len(table.columns))
    if not cols:
        raise FormatError(
            f"{table.path.name}: no data column is left besides the label, split and id columns.",
            "Check --label and --drop.",
        )
    sample = next(table.chunks(200), [])
    domain = opts.domain or (
        "series"
        if long
        else "text"
        if _text_column(table, cols, sample, False) is not None
        else "tabular"
    )
    utable = adapt = None
    if opts.unlabelled is not None:
        utable = Table(opts.unlabelled, like=table)
        adapt = _adapter(table, utable, cols)
    if long is not None:
        return _convert_long(run, staging, table, utable, roles, long)
    enc = _Encoder(run, table, domain, cols, sample)
    labels, parts, keys = LabelTable(), array("b"), []
    reading = ProgressBar(None, run.progress, "rows read")
    for tbl, n, row, fields in _records(table, utable, adapt):
        reading.update()
        labelled = tbl is table
        try:
            if fields != len(tbl.columns):
                raise BadInput(f"has {fields} fields, the header {len(tbl.columns)}")
            part = row_split(row, roles, table.columns) if labelled else UNLABELLED
            names = (
                row_labels(row, roles, table.columns, opts.label_separator)
                if part != UNLABELLED
                else []
            )
            enc.check(row)
        except (BadInput, ValueError) as e:
            run.bad_input(f"{tbl.path.name} data row {n}", str(e), stop_early=False)
            labels.add()
            parts.append(SKIPPED)
        else:
            labels.add(names)
            parts.append(part)
        if opts.split_file is not None:
            keys.append(
                str(row[roles.id]).strip()
                if roles.id is not None and roles.id < len(row)
                else str(n)
            )
    reading.close()
    run.stop_if_bad()
    if enc.tabular is not None:
        run.info["features"] = enc.tabular.finish()
        run.warnings += enc.tabular.warnings
        if not enc.tabular.width:
            raise FormatError(
                f"{table.path.name}: every data column was left out.",
                "See the warnings; --drop or fix the columns.",
            )
    part_arr = _split(run, labels, np.frombuffer(parts, np.int8).copy(), keys, roles, table)
    out = _open_output(staging, "DENSE", labels, part_arr)
    places = record_places(part_arr, opts.seed, opts.keep_order)
    bar = ProgressBar(len(part_arr), run.progress, "rows written")
    try:
        for i, (tbl, n, row, _) in enumerate(_records(table, utable, adapt)):
            bar.update()
            p = int(part_arr[i])
            if p == SKIPPED:
                continue
            x, shape = enc.encode(row)
            source = (
                str(row[roles.id]).strip()
                if roles.id is not None and row[roles.id] is not None
                else tbl.path.name
            )
            out.add(
                PART_NAMES[p],
                x,
                shape,
                labels.row(i) if p in (TRAIN, TEST) else None,
                source,
                n,
                _place(places, i),
            )
    finally:
        bar.close()
    run.info.update(rows=len(part_arr), multilabel=labels.multilabel)
    if domain == "tabular":
        return out, (1, 1, enc.tabular.width, 1), None, "tabular"  # type: ignore[union-attr]
    if domain == "text":
        return out, (-1, 1, 1, 1), enc.vocab.ids, "text"  # type: ignore[union-attr]
    return out, (-1, 1, 1, 1), None, "speech"


def _split(
    run: Run, labels: LabelTable, parts: np.ndarray, keys: list[str], roles: Roles, table: Table
) -> np.ndarray:
    """Fix the classes (several class columns: in the order given, else natural order)
    and the split; ``parts`` holds -2 where the split is to decide."""
    explicit = roles.split is not None
    order = [table.columns[c] for c in roles.labels] if len(roles.labels) > 1 else None
    classes = labels.finish(order)
    column = ", ".join(repr(table.columns[c]) for c in roles.labels)
    what = f"the label column {column}" if len(roles.labels) == 1 else f"the label columns {column}"
    run.warnings += check_classes(labels, what, force=run.opts.force)
    if not labels.multilabel:
        none = np.flatnonzero(
            (labels.sizes() == 0) & ((parts == -2) | (parts == TRAIN) | (parts == TEST))
        )
        if len(none):
            raise FormatError(
                f"{len(none)} record(s) have no label (e.g. record {none[0]}).",
                "Fill in their labels or drop them.",
            )
    if len(classes) < 2:
        raise FormatError(
            f"{len(classes)} class found ({', '.join(classes)}); a classification needs two or more.",
            "Check --label (several --label for 0/1 class columns, --label-separator for lists).",
        )
    if run.opts.split_file is not None:
        wanted = read_split_file(run.opts.split_file, keys, run)
        todo = parts == -2
        parts[todo] = TRAIN
        for i, k in enumerate(keys):
            if todo[i] and k in wanted:
                parts[i] = wanted[k]
        explicit = True
    return plan_split(
        labels, parts, test_size=run.opts.test_size, seed=run.opts.seed, explicit=explicit
    )


def _place(places: np.ndarray | None, i: int) -> int | None:
    """Record ``i``'s place in its shuffled split; None: appended in input order."""
    if places is None or places[i] < 0:
        return None
    return int(places[i])


def _open_output(
    staging: Staging, fmt: str, labels: LabelTable, parts: np.ndarray
) -> DatasetOutput:
    out = DatasetOutput(staging, fmt, labels.classes)
    out.sink("test", 0)
    out.sink("train", int((parts == TEST).sum()))
    if (parts == UNLABELLED).any():
        out.sink("unlabelled", 0)
    return out


def _convert_long(
    run: Run,
    staging: Staging,
    table: Table,
    utable: Table | None,
    roles: Roles,
    long: tuple[int, int],
):
    """The long format: one record per series id (see `series`)."""
    opts = run.opts
    id_col, time_col = long
    values = [c for c in roles.data_columns(len(table.columns)) if c not in long]
    if not values:
        raise FormatError(
            f"{table.path.name}: no value column besides {table.columns[id_col]!r} and {table.columns[time_col]!r}.",
            "Add the value column(s).",
        )
    readers = [(LongSeries(table, id_col, time_col, values), True)]
    if utable is not None:
        ix = lambda name: utable.index(name, "a column of the labelled table")  # noqa: E731
        names = [table.columns[c] for c in values]
        readers.append(
            (
                LongSeries(
                    utable,
                    ix(table.columns[id_col]),
                    ix(table.columns[time_col]),
                    [ix(n) for n in names],
                ),
                False,
            )
        )
    labels, parts, keys, found = LabelTable(), [], [], []
    for ls, labelled in readers:
        for key, n, row in ls.scan():
            found.append((ls, key, n))
            keys.append(key)
            try:
                if ls.key(row) == "" and len(row) != len(ls.table.columns):
                    raise BadInput("a row with the wrong number of fields")
                part = row_split(row, roles, table.columns) if labelled else UNLABELLED
                names = (
                    row_labels(row, roles, table.columns, opts.label_separator)
                    if part != UNLABELLED
                    else []
                )
            except (BadInput, ValueError) as e:
                run.bad_input(f"series {key!r}", f"data row {n}: {e}", stop_early=False)
                labels.add()
                parts.append(SKIPPED)
            else:
                labels.add(names)
                parts.append(part)
        if not ls.contiguous:
            run.warnings.append(
                f"{ls.table.path.name}: the rows of a series are not together; grouped in memory (sort by id for large files)"
            )
    for i, (ls, key, _) in enumerate(found):
        if key in ls.bad and parts[i] != SKIPPED:
            run.bad_input(f"series {key!r}", ls.bad[key], stop_early=False)
            parts[i] = SKIPPED
    run.stop_if_bad()
    part_arr = _split(run, labels, np.asarray(parts, np.int8), keys, roles, table)
    out = _open_output(staging, "DENSE", labels, part_arr)
    places = record_places(part_arr, opts.seed, opts.keep_order)
    bar = ProgressBar(len(part_arr), run.progress, "series")
    i = 0
    try:
        for ls, _ in readers:
            for key, rows in ls.series():
                bar.update()
                p = int(part_arr[i])
                if p != SKIPPED:
                    x = ls.values(rows)
                    out.add(
                        PART_NAMES[p],
                        x,
                        x.shape,
                        labels.row(i) if p in (TRAIN, TEST) else None,
                        key,
                        found[i][2],
                        _place(places, i),
                    )
                i += 1
    finally:
        bar.close()
    run.info.update(series=len(part_arr), channels=len(values), multilabel=labels.multilabel)
    return out, (-1, 1, 1, len(values)), None, "speech"
