"""Feed seeded, mutated inputs to every dataset reader; count clean errors and crashes.

    .venv/bin/python bench/fuzz.py [--n 100000] [--seed 0] [--target all|NAME,...] [--start 0]
                                   [--markdown]

Targets (inputs are spread over them in turn):

- ``tfrecord``: TFRecord files (framing, both CRCs, huge length fields with a right
  or wrong CRC), read with and without CRC verification, and counted;
- ``record``: serialised SequenceExamples (DENSE, SPARSE, COMPRESSED; both decoders)
  turned into labels and x as the reader does;
- ``metadata``: metadata.textproto, mutated or generated at random (huge and
  negative ints, escapes, unknown fields, deep nesting), then made a DatasetSpec;
- ``solution``: .solution texts;
- ``image``: PNG (gray, RGB, RGBA, palette, interlaced), JPEG, GIF and BMP frames:
  header reading, decoding to 1, 3 or 4 channels, shrinking, the stacked PNG path;
- ``layout``: dataset folders and zips (a part mutated, zip bytes damaged, random
  archive structures with ``..`` names, nested ``.data.zip``, bzip2/lzma members),
  opened with ``open_dataset`` and read, and checked with ``check_dataset``.

Mutations: byte and bit flips, truncations, insertions, deletions, duplicated
slices, huge varints and length fields, splices of two inputs, deep nesting.
Input ``i`` of target ``t`` is built from ``random.Random(f"{seed}:{t}:{i}")``, so
``--target t --start i --n 1`` replays it.

Prints inputs tried, clean errors (``AutoDLError`` and the record-level errors
the reader turns into one: ``RecordError``, ``WireError``; for ``image`` also the
``ValueError`` that ``decode_frame`` documents), crashes (any other exception, or a
``check_dataset`` report saying it stopped early: the first few with the command
that replays them) and the peak resident memory of the process (ru_maxrss).
Target: 0 crashes, peak under 1 GB. Asserts nothing itself; `run()` returns the
figures (tests/formats/test_fuzz.py runs a fixed sample).
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodl.errors import AutoDLError  # noqa: E402
from autodl.formats import _png, _records, _wire, images, samples  # noqa: E402
from autodl.formats.archive import zip_folder  # noqa: E402
from autodl.formats.check import check_dataset  # noqa: E402
from autodl.formats.dataset import (  # noqa: E402
    check_frames,
    dense_x,
    labels_of,
    open_dataset,
    parse_solution,
    sparse_x,
)
from autodl.formats.spec import parse_metadata, spec_from_metadata  # noqa: E402
from autodl.formats.tfrecord import count_records, frame_record, iter_framed  # noqa: E402

TARGETS = ("tfrecord", "record", "metadata", "solution", "image", "layout")
CLEAN: tuple[type[BaseException], ...] = (AutoDLError, _records.RecordError, _wire.WireError)
HUGE = (2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**64 - 1)


# ---------------------------------------------------------------- corpus


class Corpus:
    """Valid inputs of every kind, written once into a temporary folder."""

    def __init__(self, root: Path):
        self.root = root
        made = {
            "tabular": samples.make_tabular(root, n_train=6, n_test=3, n_unlabelled=2),
            "sparse": samples.make_tabular(
                root, n_train=5, n_test=3, storage="SPARSE", unlabelled=False, name="tinysparse"
            ),
            "image": samples.make_image(root, n_train=4, n_test=2, n_unlabelled=1, size=8),
            "jpeg": samples.make_image(
                root, n_train=3, n_test=2, unlabelled=False, image_format="JPEG", name="tinyjpeg"
            ),
            "speech": samples.make_speech(root, n_train=2, n_test=1, unlabelled=False),
            "video": samples.make_video(root, n_train=2, n_test=1, unlabelled=False),
        }
        self.datasets = made
        self.records: list[tuple[str, bytes]] = []
        self.files: list[bytes] = []
        self.metadata: list[str] = []
        self.solutions: list[bytes] = []
        for path in made.values():
            ds = open_dataset(path)
            fmt = ds.spec.format
            for f in ds.train.files + ds.test.files:
                raw = f.read_bytes()
                self.files.append(raw)
                self.records += [(fmt, data) for _, data in iter_framed(io.BytesIO(raw))][:3]
            for meta in path.rglob("metadata.textproto"):
                self.metadata.append(meta.read_text())
            self.solutions += [p.read_bytes() for p in path.rglob("*.solution")]
            ds.close()
        self.images = _images()


def _images() -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for mode, shape in (("L", (7, 5)), ("RGB", (6, 9, 3)), ("RGBA", (4, 4, 4))):
        img = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode)
        for fmt, kw in (
            ("PNG", {}),
            ("PNG", {"interlace": 1}),
            ("JPEG", {}),
            ("GIF", {}),
            ("BMP", {}),
        ):
            if fmt == "JPEG" and mode == "RGBA":
                continue
            buf = io.BytesIO()
            img.save(buf, fmt, **kw)
            out.append(buf.getvalue())
    pal = Image.fromarray(rng.integers(0, 4, (5, 5), dtype=np.uint8), "L").convert("P")
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    out.append(buf.getvalue())
    return out


# ---------------------------------------------------------------- mutations


def _varint(v: int) -> bytes:
    return _wire.encode_varint(v)


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """1 to 4 random mutations of ``data`` (see the module doc)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        n = len(b)
        pos = rng.randrange(n + 1) if n else 0
        if op == 0 and n:  # byte flips
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(n)] = rng.randrange(256)
        elif op == 1 and n:  # bit flip
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:  # truncation
            del b[pos:]
        elif op == 3:  # insertion
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and n:  # deletion
            del b[pos : pos + rng.randint(1, 32)]
        elif op == 5 and n:  # duplicated slice
            end = min(n, pos + rng.randint(1, 64))
            b[pos:pos] = b[pos:end] * rng.randint(1, 8)
        elif op == 6:  # a huge varint, in place of a byte or inserted
            v = _varint(rng.choice(HUGE) + rng.randint(-2, 2) % 2)
            b[pos : pos + rng.randint(0, 1)] = v
        elif op == 7 and n >= 8:  # a huge fixed-width length (TFRecord, PNG chunk)
            i = rng.randrange(n - 7)
            b[i : i + rng.choice((4, 8))] = struct.pack(
                "<Q" if rng.random() < 0.5 else ">Q", rng.choice(HUGE)
            )[: rng.choice((4, 8))]
        elif op == 8 and others:  # splice with another input
            other = rng.choice(others)
            cut = rng.randrange(len(other) + 1)
            b = b[:pos] + bytearray(other[cut:])
        elif op == 9:  # repeat the whole input (many records, many steps)
            b = b * rng.randint(2, 50)
    return bytes(b)


def nested(rng: random.Random, depth: int, payload: bytes = b"") -> bytes:
    """A protobuf field 1 (or 2) nested ``depth`` times around ``payload``."""
    out = payload
    for _ in range(depth):
        out = bytes((rng.choice((0x0A, 0x12)),)) + _varint(len(out)) + out
    return out


_INTS = ("0", "1", "-1", "3", "2147483647", "2147483648", "-2147483649", "4294967296",
         "9223372036854775807", "99999999999999999999", "0x7fffffff", "1e9", "nan")  # fmt: skip
_FIELDS = ("sample_count", "sequence_size", "output_dim", "col_count", "row_count",
           "num_channels")  # fmt: skip
_BOOLS = ("is_sequence", "is_sequence_col", "is_sequence_row", "has_locality_col",
          "has_locality_row")  # fmt: skip


def random_textproto(rng: random.Random) -> str:
    """A DataSpecification-like text: right and wrong fields, values, maps, nesting."""
    lines = []
    for _ in range(rng.randint(0, 12)):
        r = rng.random()
        if r < 0.35:
            lines.append(f"{rng.choice(_FIELDS[:3])}: {rng.choice(_INTS)}")
        elif r < 0.55:
            inner = " ".join(
                f"{rng.choice(_FIELDS[3:] + _BOOLS)}: {rng.choice(_INTS + ('true', 'false'))}"
                for _ in range(rng.randint(0, 5))
            )
            fmt = rng.choice(("DENSE", "SPARSE", "COMPRESSED", "BOGUS", "7"))
            lines.append(f"matrix_spec {{ {inner} format: {fmt} }}")
        elif r < 0.8:
            name = rng.choice(
                ("label_to_index_map", "channel_to_index_map", "feature_to_index_map")
            )
            key = rng.choice(("'a'", '"b"', "'\\n'", "'\\xff'", "'\\377'", "'é'", "'", "''"))
            for _ in range(rng.randint(1, 20)):
                lines.append(f"{name} {{\n  key: {key}\n  value: {rng.choice(_INTS)}\n}}")
        elif r < 0.85:
            d = rng.choice((10, 100, 1000, 5000))
            lines.append("matrix_spec { " * d + "}" * d * rng.randint(0, 1))
        elif r < 0.9:
            lines.append(f"unknown_field: {rng.choice(_INTS)}")
        elif r < 0.95:
            lines.append("# a comment " + "x" * rng.randint(0, 50))
        else:
            lines.append(rng.choice(("{", "}", ":", "matrix_spec {", "'unterminated", "\x00")))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- targets


class _Mem:
    """A file in memory with the ``open``/``name`` a reader takes."""

    def __init__(self, data: bytes, name: str = "sample-fuzz.tfrecord"):
        self.data, self.name = data, name

    def open(self, mode: str = "rb") -> io.BytesIO:
        return io.BytesIO(self.data)


def fuzz_tfrecord(rng: random.Random, c: Corpus) -> None:
    data = rng.choice(c.files)
    if rng.random() < 0.3:  # a header claiming a huge record, with a right CRC
        body = struct.pack("<Q", rng.choice(HUGE))
        framed = frame_record(b"x" * rng.randint(0, 40))
        data = body + framed[8:12] if rng.random() < 0.5 else framed
        data = data + b"\0" * rng.randint(0, 200)
        if rng.random() < 0.5:
            from autodl.formats.tfrecord import masked_crc32c

            data = body + struct.pack("<I", masked_crc32c(body)) + data[12:]
    data = mutate(rng, data, c.files)
    for _ in iter_framed(io.BytesIO(data), "fuzz", verify=rng.random() < 0.5):
        pass
    count_records(_Mem(data))


def _spec_shape(rng: random.Random) -> tuple[int, int, int, int]:
    return (
        rng.choice((-1, 1, 2, 5)),
        rng.choice((-1, 1, 3, 8, 2**31 - 1)),
        rng.choice((-1, 1, 5, 8)),
        rng.choice((1, 3, 4)),
    )


def fuzz_record(rng: random.Random, c: Corpus) -> None:
    fmt, data = rng.choice(c.records)
    if rng.random() < 0.1:
        data = nested(rng, rng.choice((10, 100, 2000)), data[: rng.randint(0, 50)])
    else:
        data = mutate(rng, data, [r for _, r in c.records])
    fmt = fmt if rng.random() < 0.8 else rng.choice(("DENSE", "SPARSE", "COMPRESSED"))
    d = _records.decode_record(data, fmt, rng.choice((None, "wire", "pb")))
    labels_of(d, rng.choice((1, 3, 10)))
    shape = _spec_shape(rng)
    if d.dense is not None:
        dense_x(d.dense, shape)
    elif d.sparse is not None:
        sparse_x(d.sparse, shape)
    elif d.frames:
        check_frames(d.frames, shape[3])
        for f in d.frames[:4]:
            try:
                images.decode_frame(f, shape[3])
            except ValueError:
                pass  # the reader's contract: an undecodable frame is a ValueError


def fuzz_metadata(rng: random.Random, c: Corpus) -> None:
    if rng.random() < 0.5:
        text = random_textproto(rng).encode()
    else:
        text = mutate(rng, rng.choice(c.metadata).encode(), [m.encode() for m in c.metadata])
    meta = parse_metadata(text, "train/metadata.textproto")
    lines = None if rng.random() < 0.5 else ["a", "b", "c"][: rng.randint(0, 3)]
    spec_from_metadata(meta, "fuzz", label_file_lines=lines, learned_channels=rng.choice((None, 1)))


def fuzz_solution(rng: random.Random, c: Corpus) -> None:
    data = rng.choice(c.solutions)
    if rng.random() < 0.2:
        data = rng.choice((b"nan inf -inf\n", b"1e999 2\n", b"\xff\xfe", b"1 2\n\n3\n", b"#\n"))
    parse_solution(mutate(rng, data, c.solutions), "fuzz.solution")


def fuzz_image(rng: random.Random, c: Corpus) -> None:
    data = mutate(rng, rng.choice(c.images), c.images)
    images.frame_size(data)
    channels = rng.choice((1, 3, 4))
    try:
        images.decode_frame(data, channels, rng.choice((None, None, 4)))
    except ValueError:
        pass  # decode_frame's contract (the reader turns it into a FormatError)
    try:
        images.frame_channels(data)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        pass  # header only; the reader catches these where it calls it
    _png.decode_many([data] * rng.randint(1, 3))


def _damage_folder(rng: random.Random, c: Corpus, work: Path) -> Path:
    name = rng.choice(list(c.datasets))
    dest = work / name
    shutil.copytree(c.datasets[name], dest)
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    for victim in rng.sample(files, rng.randint(1, 2)):
        victim.write_bytes(mutate(rng, victim.read_bytes(), c.files))
    return dest


def _zip_of(folder: Path, out: Path, rng: random.Random) -> Path:
    method = rng.choice(
        (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
    )
    return zip_folder(folder, out, prefix=f"{folder.name}/", compression=method)


def _random_archive(rng: random.Random, c: Corpus, work: Path) -> Path:
    names = ["x.data/train/metadata.textproto", "x.data/test/metadata.textproto",
             "x.data/train/sample-0.tfrecord", "x.data/test/sample-0.tfrecord", "x.solution",
             "../x.data/train/sample-1", "/abs/x.solution", "x.data/../../evil", "x.data/",
             "a/b/c/d/e/f/x.data/train/metadata.textproto", "x.data/unlabelled/sample-0",
             "x.data.zip", "C:/evil", "x.data/train/\x00"]  # fmt: skip
    out = work / rng.choice(("up.zip", "x.data.zip"))
    method = rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2))
    with zipfile.ZipFile(out, "w", method) as z:
        for n in rng.sample(names, rng.randint(1, len(names))):
            if n.endswith("metadata.textproto"):
                data = rng.choice(c.metadata).encode()
            elif n.endswith(".solution"):
                data = rng.choice(c.solutions)
            elif n.endswith(".zip"):
                inner = io.BytesIO()
                with zipfile.ZipFile(inner, "w") as zi:
                    zi.writestr("x.data/train/sample-0", rng.choice(c.files))
                data = inner.getvalue()
            else:
                data = rng.choice(c.files)
            if rng.random() < 0.2:
                data = bytes(rng.choice((1 << 20, 3 << 20)))  # compresses very well
            info = zipfile.ZipInfo(n)
            if rng.random() < 0.05:
                info.external_attr = 0o120777 << 16  # a symbolic link
            z.writestr(info, data, method)
    if rng.random() < 0.3:  # an extracted upload holding only the zip
        folder = work / "upload"
        folder.mkdir()
        out.rename(folder / "x.data.zip")
        return folder
    return out


def fuzz_layout(rng: random.Random, c: Corpus) -> None:
    with tempfile.TemporaryDirectory(dir=c.root) as tmp:
        work = Path(tmp)
        r = rng.random()
        if r < 0.45:
            path = _damage_folder(rng, c, work)
        elif r < 0.7:
            src = rng.choice(list(c.datasets.values()))
            path = _zip_of(src, work / "d.zip", rng)
            if rng.random() < 0.8:
                path.write_bytes(mutate(rng, path.read_bytes(), []))
        else:
            path = _random_archive(rng, c, work)
        report = check_dataset(path)
        stopped = [p for p in report.problems if "the check stopped early" in p.message]
        if stopped:
            raise AssertionError(stopped[0].message)
        with open_dataset(path) as ds:
            for split in (ds.train, ds.test, ds.unlabelled):
                if split is not None:
                    len(split)
                    split.load(limit=20)


RUNNERS: dict[str, Callable[[random.Random, Corpus], None]] = {
    "tfrecord": fuzz_tfrecord,
    "record": fuzz_record,
    "metadata": fuzz_metadata,
    "solution": fuzz_solution,
    "image": fuzz_image,
    "layout": fuzz_layout,
}


# ---------------------------------------------------------------- driver


@dataclass
class Crash:
    target: str
    index: int
    seed: int
    error: str
    where: str
    trace: str = ""


@dataclass
class Summary:
    tried: int = 0
    clean: int = 0
    passed: int = 0
    crashes: list[Crash] = field(default_factory=list)
    per_target: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    peak_mb: float = 0.0


def run(
    n: int,
    seed: int = 0,
    targets: tuple[str, ...] = TARGETS,
    start: int = 0,
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Run ``n`` inputs spread over ``targets``; the figures of the module doc."""
    s = Summary()
    t0 = time.perf_counter()
    # Pillow warns on opening a header over its own bomb limit; our cap is lower and
    # refuses such frames before decoding. The warnings would only flood the output.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Corpus(Path(tmp))
        for k in range(n):
            target = targets[k % len(targets)]
            index = start + k // len(targets)
            rng = random.Random(f"{seed}:{target}:{index}")
            s.tried += 1
            s.per_target[target] += 1
            try:
                RUNNERS[target](rng, corpus)
                s.passed += 1
            except CLEAN:
                s.clean += 1
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:
                tb = traceback.extract_tb(e.__traceback__)[-1]
                s.crashes.append(
                    Crash(
                        target,
                        index,
                        seed,
                        f"{type(e).__name__}: {str(e)[:200]}",
                        f"{Path(tb.filename).name}:{tb.lineno}",
                        "".join(traceback.format_exception(e)[-12:]),
                    )
                )
            if progress is not None and (k + 1) % 5000 == 0:
                s.seconds = time.perf_counter() - t0
                progress(s)
    s.seconds = time.perf_counter() - t0
    s.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", default="all", help=f"all, or some of {','.join(TARGETS)}")
    ap.add_argument("--start", type=int, default=0, help="index of the first input per target")
    ap.add_argument(
        "--trace", action="store_true", help="print the traceback of each kind of crash"
    )
    ap.add_argument("--markdown", action="store_true", help="the figures as a table, command, date")
    args = ap.parse_args()
    targets = TARGETS if args.target == "all" else tuple(args.target.split(","))
    unknown = set(targets) - set(TARGETS)
    if unknown:
        ap.error(f"unknown target(s) {sorted(unknown)}; choose from {TARGETS}")

    def progress(s: Summary) -> None:
        print(f"  {s.tried} inputs, {len(s.crashes)} crashes, {s.seconds:.0f} s", flush=True)

    s = run(args.n, args.seed, targets, args.start, progress)
    from bench._markdown import Rows

    report = Rows(args.markdown, ["measure", "figure"])
    per_target = ", ".join(f"{t} {c}" for t, c in s.per_target.items())
    for measure, figure in (
        ("inputs tried", f"{s.tried}  ({per_target})"),
        ("read cleanly", s.passed),
        ("clean errors", s.clean),
        ("crashes", len(s.crashes)),
        ("peak memory", f"{s.peak_mb:.0f} MB (ru_maxrss)"),
        ("time", f"{s.seconds:.0f} s"),
    ):
        report.add([measure, figure], f"{measure:<14} {figure}")
    report.end()
    kinds = Counter((c.target, c.error.split(":")[0], c.where) for c in s.crashes)
    for (target, err, where), count in kinds.most_common(10):
        first = next(
            c
            for c in s.crashes
            if (c.target, c.error.split(":")[0], c.where) == (target, err, where)
        )
        print(
            f"  {count:>5} x {target}: {first.error} at {where}\n"
            f"          replay: bench/fuzz.py --seed {first.seed} --target {target} --start {first.index} --n 1"
        )
        if args.trace:
            print(first.trace)


if __name__ == "__main__":
    main()
