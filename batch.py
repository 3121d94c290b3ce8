"""The batch runner: any per-file function over a catalogue, cached, resumable and parallel.

A :class:`Task` names a per-file function (``(path, params) -> FileResult``) and the shape of its
results; :func:`run` does everything else, the same way for every task: the feature engine
(:func:`features.features_task`), musicnn's and EfficientAT's embeddings
(``models.musicnn.embedding_task``, ``models.efficientat.embedding_task``). This module knows
none of them; a new per-file function plugs in by defining its Task (and one entry in the
``--embeddings`` list of the ``features`` command).

- **Sources**: a folder (listed by :func:`acquire.folder.folder_manifest`, which hashes each file: the
  runner reuses that checksum), a manifest CSV as ``tracklens acquire folder`` writes it (read
  with :func:`fileio.read_csv`; its ``checksum`` column is trusted, so rerun ``acquire folder``
  after editing audio files), one audio file, or a DataFrame with a ``path`` column.
- **Cache**: one ``.npz`` entry per file in ``CACHE/<task name>/``, keyed by the file's SHA-256,
  the task's parameters and version (arrays plus the rows as JSON; never a pickle). An entry is
  written as soon as its file is done, so Ctrl-C or a crash keeps finished work and a rerun
  computes only new or changed files; a damaged entry is recomputed.
- **Parallel**: in this process (``jobs=1``), ``jobs`` local processes (joblib/loky: results
  stream back and are cached as they finish), or a Dask cluster (``scheduler``), where the
  workers write the outputs and the client only coordinates. A task's ``warm`` hook (numba's
  cache for the features) runs here before any pool starts and in every worker process
  before its first file.
- **Errors**: a file that cannot be processed is one row of ``<stem>.errors.csv`` (path,
  reason) and never stops the batch.

Layouts on disk, ``OUT`` = ``features.parquet`` (``pd.read_parquet(OUT)`` reads both;
:func:`load_frames` / :func:`iter_frames` read the frames of both)::

    local run (one process or joblib)        Dask run (``scheduler``): workers write
    features.parquet      the table          features.parquet/                   one dataset
    features.frames.npz   segment matrices     _tracklens.json                   task, parameters, parts
    features.errors.csv   unreadable files     part-00000-<hash>.parquet         rows of files 0..49
    features.manifest.json  written last       _frames/part-00000-<hash>.npz     their segment matrices
                                               _done/part-00000-<hash>.json      counts + errors; part complete
                                             features.errors.csv

A local run's files are one unit: they carry the run's id, and the manifest, written last,
names it and each file's SHA-256; :func:`load_frames` and :func:`check_unit` refuse a table
whose side files come from another (killed) run, and a run first removes the temp files a
killed run left beside its outputs.

A part holds ``part_size`` consecutive source files (rows in source order); its name carries a
hash of its files and the task's parameters. A Dask worker writes the frames, then the parquet
part, then the ``_done`` marker, each atomically; a rerun skips every part whose marker exists
and removes parts a changed source list no longer has. ``OUT`` may be an fsspec URL
(``s3://...``, ``gs://...``) the cluster can reach; the cache is a local folder on each
machine. Large partitioned tables read lazily with pyarrow, e.g.
``pd.read_parquet(OUT, columns=[...], filters=[("track_id", "in", ids)])``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from tracklens import config
from tracklens.audio import AUDIO_EXTENSIONS
from tracklens.errors import TracklensError, path_text
from tracklens.fileio import (atomic_path, atomic_write_bytes, file_checksum, has_csv_header, output_target,
                              read_csv, remove_stale_temp_files, write_csv)

ID_COLUMNS: tuple[str, ...] = ("track_id", "path", "label", "checksum")  # the runner fills these
FRAMES_DTYPE = np.float16  # on disk: halves the size; ~3 significant digits is plenty for models
PART_FILES = 50  # source files per part on the Dask path (~15 MB of frames for 30 s tracks)
DASK_CONNECT_TIMEOUT = "15s"
DATASET_FILE = "_tracklens.json"
RUN_KEY = b"tracklens.run"  # parquet schema metadata: the id of the run that wrote the table
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class FileResult:
    """What a per-file function returns for one file.

    rows : one dict per output row (JSON scalars: str, int, float, bool), without the
        :data:`ID_COLUMNS`; every row has ``segment`` (-1 for the whole track, 0.. for windows)
    blocks : block name -> float32 array (len(rows), width), spread into the task's
        ``blocks[name]`` columns (e.g. 200 embedding columns)
    frames : kind -> array (n_segment_rows, height, frames): one matrix per row with
        ``segment`` >= 0, in row order (written to the frames file as FRAMES_DTYPE)
    """

    rows: list[dict]
    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A per-file function and what the runner needs to cache, tabulate and store its results.

    name : cache folder and output name (``features``, ``MSD_musicnn``, ``mn04_as``)
    run_file : ``(path, params) -> FileResult``; raises (TracklensError with a reason) for a
        file it cannot process. Must be importable or picklable: workers run it.
    params : everything the results depend on; with ``version``, part of the cache key
    version : bump when the results of the same file and params change
    columns : the output table's columns in order, :data:`ID_COLUMNS` included
    dtypes : columns that are not float64 (the ID columns are text; block columns float32)
    blocks : block name -> its columns (see :class:`FileResult`)
    frames : frame kind -> (height, frames) per segment; empty when the task writes none
    frames_meta : JSON-able description stored with the frames (``meta`` of :func:`load_frames`)
    warm : called with ``check=True`` here before any pool, and with no argument in each worker
        process before its first file (numba's compile cache: :func:`numba_cache.warm_numba`)
    after_crash : called after a worker process died, before the error is raised; returns
        nothing or raises TracklensError whose message says what it found (numba's cache check)
    """

    name: str
    run_file: Callable[[str, dict], FileResult]
    params: dict
    version: int
    columns: tuple[str, ...]
    dtypes: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    frames: dict[str, tuple[int, int]] = field(default_factory=dict)
    frames_meta: dict = field(default_factory=dict)
    warm: Callable[..., None] | None = None
    after_crash: Callable[[], Any] | None = None


@dataclass
class RunResult:
    """What :func:`run` wrote and how it got there (``frames`` None: the task wrote none)."""

    out: Path | str
    frames: Path | str | None
    errors: Path | str
    n_tracks: int
    n_segments: int
    n_errors: int
    n_cached: int
    n_computed: int


# --- output names --------------------------------------------------------------------------------


def sibling(out: str | Path, suffix: str) -> Path | str:
    """``features.parquet`` -> ``features<suffix>`` beside it (a path, or a URL string)."""
    out = output_target(out)
    if isinstance(out, Path):
        return out.with_name(out.name.removesuffix(out.suffix) + suffix)
    head, _, name = out.rpartition("/")
    return f"{head}/{name.rsplit('.', 1)[0]}{suffix}"


def frames_path(out: str | Path) -> Path | str:
    """``features.parquet`` -> ``features.frames.npz``, the segment frame matrices of a local run."""
    return sibling(out, ".frames.npz")


def errors_path(out: str | Path) -> Path | str:
    """``features.parquet`` -> ``features.errors.csv`` (files that could not be processed, and why)."""
    return sibling(out, ".errors.csv")


def _join(folder: str | Path, name: str) -> Path | str:
    return folder / name if isinstance(folder, Path) else f"{folder}/{name}"


def _fs(target: str | Path):
    """(fsspec filesystem, its path) of a local path or URL, for listing, reading and removing."""
    import fsspec

    return fsspec.core.url_to_fs(str(target))


# --- sources ------------------------------------------------------------------------------------


def source_items(sources: Any) -> tuple[list[dict], list[dict]]:
    """The files of ``sources`` (see :func:`run`) as ``(items, errors)``.

    items : dicts with ``path`` (as given, or resolved against the manifest's folder), ``file``
        (absolute, for opening), ``label``, ``track_id`` (the file stem; stems that clash keep
        their folder) and ``checksum`` (from the manifest, or "" when it must be computed)
    errors : ``{"path", "reason"}`` for rows the manifest already marks as unusable
    """
    manifest, base = _read_sources(sources)
    if "path" not in manifest.columns:
        raise TracklensError("manifest needs a 'path' column (one audio file per row)")
    items, errors = [], []
    for record in manifest.to_dict("records"):
        raw = str(record.get("path") or "").strip()
        if not raw:
            continue
        path = Path(raw)
        if not path.is_absolute() and not path.exists() and (base / path).exists():
            path = base / path
        label, error, checksum = (_text(record.get(key)) for key in ("label", "error", "checksum"))
        if error:
            errors.append({"path": str(path), "reason": error})
        else:
            items.append({"path": str(path), "file": os.path.abspath(path), "label": label,
                          "checksum": checksum if _SHA256.match(checksum) else ""})
    stems = [Path(item["path"]).stem for item in items]
    duplicated = {s for s, n in Counter(stems).items() if n > 1}
    for item, stem in zip(items, stems):
        # The file stem (GTZAN: "blues.00000") matches split files; clashes keep their folder.
        item["track_id"] = stem if stem not in duplicated else Path(item["path"]).with_suffix("").as_posix()
    return items, errors


def _read_sources(sources: Any):
    """(manifest DataFrame, folder that relative paths in it are relative to)."""
    import pandas as pd

    if isinstance(sources, pd.DataFrame):
        return sources, Path.cwd()
    if not isinstance(sources, (str, os.PathLike)):
        kind = "None" if sources is None else type(sources).__name__
        hint = " (files in a list: pd.DataFrame({'path': files}))" if isinstance(sources, (list, tuple)) else ""
        raise TracklensError(f"sources: give a folder, a manifest CSV, one audio file or a DataFrame with a "
                             f"'path' column; got {kind}{hint}")
    src = Path(sources)
    if src.is_dir():
        from tracklens.acquire import folder

        return folder.folder_manifest(src, progress=False), Path.cwd()
    if src.is_file() and src.suffix.lower() == ".csv":
        try:
            manifest = read_csv(src, dtype={"path": str, "label": str, "error": str, "checksum": str},
                                keep_default_na=False)
        except Exception as exc:
            raise TracklensError(f"{src}: cannot read manifest CSV ({exc})") from exc
        return manifest, src.parent
    if src.is_file() and src.suffix.lower() in AUDIO_EXTENSIONS:
        if path_text(src) != str(src):
            from tracklens.audio import NAME_NOT_UTF8

            raise TracklensError(f"{path_text(src)}: {NAME_NOT_UTF8}")
        return pd.DataFrame({"path": [str(src)], "label": [""]}), Path.cwd()
    raise TracklensError(f"{src}: not a folder, a manifest CSV or an audio file"
                         if src.exists() else f"{src}: no such file or folder")


def _text(value: Any) -> str:
    """A manifest cell as clean text: missing / NaN -> ""."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def _checksum(item: dict) -> str:
    """Fill ``item["checksum"]`` unless the manifest gave it; returns why it cannot be read ("" if it can)."""
    if item["checksum"]:
        return ""
    try:
        item["checksum"] = file_checksum(item["file"])
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read ({exc.strerror or type(exc).__name__})"
    except TracklensError as exc:  # a FIFO or device: never opened
        return _reason(exc, item["file"])
    return ""


def _reason(exc: BaseException, file: str) -> str:
    return str(exc).removeprefix(f"{file}: ")


# --- the per-file step and the cache ------------------------------------------------------------


def _cache_file(cache_root: Path, task: Task, checksum: str) -> Path:
    key_src = json.dumps({"checksum": checksum, "version": task.version, **task.params}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()
    return cache_root / task.name / key[:2] / f"{key}.npz"


def _compute(task: Task, item: dict) -> dict:
    """Run the task on one file: ``{"path", "entry": cache entry bytes, "error": None}`` or
    ``{"path", "entry": None, "error": reason}``. Never raises for a bad file, so one file
    cannot abort a batch (KeyboardInterrupt and process deaths still stop it)."""
    file = item["file"]
    try:
        if task.warm is not None:
            task.warm()  # once per process: a worker warms itself, siblings on its host wait
        result = task.run_file(file, task.params)
    except TracklensError as exc:
        return {"path": item["path"], "entry": None, "error": _reason(exc, file)}
    except MemoryError:
        return {"path": item["path"], "entry": None, "error": "out of memory while analysing (lower max_duration)"}
    except Exception as exc:  # a library failure on one odd file must not stop the batch
        return {"path": item["path"], "entry": None, "error": f"analysis failed ({type(exc).__name__}: {exc})"[:300]}
    return {"path": item["path"], "entry": _encode_entry(result), "error": None}


def _encode_entry(result: FileResult) -> bytes:
    """A cache entry as .npz bytes: arrays as arrays, the rows as one JSON string. No pickle, so a
    cache folder is never a way to run code; JSON round-trips str, int, float and bool exactly."""
    meta = {"rows": result.rows, "error": None, "frame_kinds": list(result.frames), "blocks": list(result.blocks)}
    arrays = {**{f"frame_{k}": np.asarray(v, FRAMES_DTYPE) for k, v in result.frames.items()},
              **{f"block_{k}": np.asarray(v, np.float32) for k, v in result.blocks.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def _read_entry(path: Path, blocks: Iterable[str] = ()) -> tuple[list[dict], dict[str, np.ndarray]] | None:
    """``(rows, {block: array})`` of the cache entry at ``path`` (cheap: .npz members are read on
    demand; frames are read by :func:`_write_frames`, one kind at a time), or None when it is
    missing or damaged (e.g. a planted pickle, or an older version's half-written file)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            entry = json.loads(str(data["meta"]))
            if not isinstance(entry, dict) or entry.get("error") is not None:
                return None
            return entry["rows"], {name: data[f"block_{name}"] for name in blocks}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


# --- outputs --------------------------------------------------------------------------------------


def _table(task: Task, items: list[dict]):
    """``(table, kept, errors)``: the rows of every item's cache entry (source order), the items
    they came from, and an error for each entry that could not be read back."""
    import pandas as pd

    rows, blocks, kept, errors = [], {name: [] for name in task.blocks}, [], []
    for item in items:
        entry = _read_entry(item["cache"], task.blocks)
        if entry is None:
            errors.append({"path": item["path"], "reason": "cache entry unreadable; rerun to recompute"})
            continue
        entry_rows, entry_blocks = entry
        ident = {key: item[key] for key in ID_COLUMNS}
        rows += [{**row, **ident} for row in entry_rows]
        for name in task.blocks:
            blocks[name].append(entry_blocks[name])
        kept.append(item)
    scalar_columns = [c for c in task.columns if not any(c in cols for cols in task.blocks.values())]
    parts = [pd.DataFrame(rows, columns=scalar_columns)]
    for name, cols in task.blocks.items():
        values = np.concatenate(blocks[name]) if blocks[name] else np.zeros((0, len(cols)), np.float32)
        parts.append(pd.DataFrame(values, columns=list(cols)))
    table = pd.concat(parts, axis=1)[list(task.columns)]
    return table.astype(_column_dtypes(task)), kept, errors


def _column_dtypes(task: Task) -> dict[str, str]:
    """Every column's dtype, so every part of a dataset (even an empty one) has one schema."""
    block_columns = {c for cols in task.blocks.values() for c in cols}
    return {c: "str" if c in ID_COLUMNS else "float32" if c in block_columns else task.dtypes.get(c, "float64")
            for c in task.columns}


def _write_table(table, target: Path | str, run_id: str | None = None) -> None:
    """The table as parquet; ``run_id`` goes into its schema metadata (:data:`RUN_KEY`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if run_id is not None:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), RUN_KEY: run_id.encode()})
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(arrow, tmp)


def _write_frames(task: Task, items: list[dict], target: Path | str, run_id: str | None = None) -> None:
    """Stream the segment matrices of ``items`` into one .npz, one cache entry in memory at a time
    (with a ``run_id`` member naming the run, when given)."""
    ids, segments, labels, counts = [], [], [], []
    for item in items:
        rows = [r for r in _read_entry(item["cache"])[0] if r["segment"] >= 0]
        ids += [item["track_id"]] * len(rows)
        labels += [item["label"]] * len(rows)
        segments += [r["segment"] for r in rows]
        counts.append(len(rows))
    n = len(ids)

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            members = [("track_id", np.array(ids, dtype=str)), ("segment", np.array(segments, np.int64)),
                       ("label", np.array(labels, dtype=str)), ("meta", np.array(json.dumps(task.frames_meta)))]
            if run_id is not None:
                members.append(("run_id", np.array(run_id)))
            for name, arr in members:
                with zf.open(f"{name}.npy", "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, arr)
            for kind, (height, n_t) in task.frames.items():
                with zf.open(f"{kind}.npy", "w", force_zip64=True) as handle:
                    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(FRAMES_DTYPE)),
                              "fortran_order": False, "shape": (n, height, n_t)}
                    np.lib.format.write_array_header_2_0(handle, header)
                    for item, count in zip(items, counts):
                        if count:
                            with np.load(item["cache"], allow_pickle=False) as data:  # only this kind
                                block = data[f"frame_{kind}"]
                            handle.write(np.ascontiguousarray(block, dtype=FRAMES_DTYPE).tobytes())

    with atomic_path(target, suffix=".npz") as tmp:
        write(str(tmp))


# --- a local run's outputs are one unit -------------------------------------------------------------
# The table, its frames and its errors file are written one after the other (each atomically);
# a run killed between two of them, or stopped by a full disk, would leave a new table beside
# old frames that both read fine. So every run has an id, written into the table (parquet
# metadata) and the frames (a member), and a manifest naming the id and each file's SHA-256 is
# written last. Readers (:func:`load_frames`, :func:`check_unit`) refuse a table whose frames
# or manifest carry another id. Tables written before ids existed carry none and are read as before.


def manifest_path(out: str | Path) -> Path | str:
    """``features.parquet`` -> ``features.manifest.json``: written last, names the run and its files."""
    return sibling(out, ".manifest.json")


def _unit_files(out) -> dict[str, Path | str]:
    return {"table": out, "frames": frames_path(out), "errors": errors_path(out), "manifest": manifest_path(out)}


def _write_unit(task: Task, table, done: list[dict], errors: list[dict], out) -> None:
    """Write a local run's table, frames and errors file, then the manifest that makes them one unit."""
    import uuid

    run_id = uuid.uuid4().hex
    files = _unit_files(out)
    _remove(files["manifest"])  # until the new one is written the unit reads as unfinished
    if task.frames:
        _write_frames(task, done, files["frames"], run_id)
    else:
        _remove(files["frames"])  # an older run's frames would not match this table
    write_csv(_errors_frame(errors), files["errors"])
    _write_table(table, out, run_id)
    written = {kind: files[kind] for kind in ("table", "frames", "errors") if kind != "frames" or task.frames}
    manifest = {"run_id": run_id, "task": task.name,
                "files": {kind: {"name": _name(path), "sha256": _checksum_of(path)} for kind, path in written.items()}}
    atomic_write_bytes(files["manifest"], json.dumps(manifest, indent=1).encode())


def _name(path: Path | str) -> str:
    return str(path).rsplit("/", 1)[-1]


def _checksum_of(path: Path | str) -> str:
    """SHA-256 of an output just written (a local path or URL)."""
    fs, name = _fs(path)
    digest = hashlib.sha256()
    with fs.open(name, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def table_run_id(out: str | Path) -> str | None:
    """The id of the run that wrote the table ``out`` (None: written before run ids existed)."""
    import pyarrow.parquet as pq

    fs, name = _fs(output_target(out))
    try:
        with fs.open(name, "rb") as handle:
            metadata = pq.read_schema(handle).metadata or {}
    except (OSError, ValueError) as exc:
        raise TracklensError(f"{out}: not a readable parquet table ({exc})") from exc
    run_id = metadata.get(RUN_KEY)
    return run_id.decode() if run_id else None


def _unfinished(out) -> TracklensError:
    return TracklensError(f"{out}: its frames or errors file are from another run (a run was killed or stopped "
                          f"while writing); rerun the same `tracklens features` command (finished files are cached)")


def check_unit(out: str | Path, *, checksums: bool = False) -> None:
    """Raise TracklensError unless the table ``out`` and its side files come from one finished run.

    Compares the run ids of the table, the manifest and the frames (cheap); with ``checksums``
    also every file's SHA-256 against the manifest. A table without a run id (written before
    run ids existed) passes unchecked.
    """
    out = output_target(out)
    run_id = table_run_id(out)
    if run_id is None:
        return
    fs, manifest_name = _fs(manifest_path(out))
    try:
        with fs.open(manifest_name, "rb") as handle:
            manifest = json.loads(handle.read())
    except (OSError, ValueError):
        raise _unfinished(out) from None
    if not isinstance(manifest, dict) or manifest.get("run_id") != run_id:
        raise _unfinished(out)
    files = _unit_files(out)
    if "frames" in manifest.get("files", {}) and _frames_run_id(files["frames"]) != run_id:
        raise _unfinished(out)
    if checksums:
        for kind, record in manifest.get("files", {}).items():
            try:
                actual = _checksum_of(files[kind])
            except OSError:
                raise _unfinished(out) from None
            if actual != record.get("sha256"):
                raise TracklensError(f"{files[kind]}: changed since the run that wrote {out} (SHA-256 differs "
                                     f"from its manifest); rerun the same `tracklens features` command")


def _frames_run_id(frames: Path | str) -> str | None:
    fs, name = _fs(frames)
    try:
        with fs.open(name, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            return str(data["run_id"]) if "run_id" in data.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


# --- the run --------------------------------------------------------------------------------------


def run(task: Task, sources: Any, *, out: str | Path, jobs: int = 1, scheduler: Any = None,
        cache_dir: str | Path | None = None, part_size: int = PART_FILES, progress: bool = True) -> RunResult:
    """Run ``task`` on every file of ``sources``; write the table, its frames and errors file.

    Parameters
    ----------
    task : the per-file function and its result shape (:class:`Task`)
    sources : a folder of audio (labels from sub-folders), a manifest CSV with ``path`` (and
        ``label``, ``error``, ``checksum``) columns as written by ``tracklens acquire folder``,
        one audio file, or a DataFrame with those columns
    out : the table, a ``.parquet`` path (or fsspec URL); side files are named after it
        (module docstring: the layouts)
    jobs : local worker processes (-1: all cores); ignored when ``scheduler`` is given
    scheduler : a Dask scheduler address (``tcp://host:8786``) or ``distributed.Client``; the
        workers must see the same audio paths and ``out``
    cache_dir : the cache folder (default ``config.CACHE_DIR``); entries go to ``<cache_dir>/<task.name>/``
    part_size : source files per part on the Dask path

    Returns a :class:`RunResult`. Table rows are in source order, each file's rows together.
    Raises TracklensError when a worker process crashes: finished files stay cached (and on
    the Dask path finished parts stay written), so rerunning the same call resumes.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TracklensError(f"out={out!r}: give the table's .parquet path (or an fsspec URL)")
    out = output_target(out)
    if not str(out).lower().endswith(".parquet"):
        raise TracklensError(f"--out {out}: the table must be a .parquet file (a folder of parts on a Dask run)")
    if jobs == 0 or jobs < -1:
        raise TracklensError(f"jobs={jobs} must be a positive number of processes or -1 for all cores")
    if part_size < 1:
        raise TracklensError(f"part_size={part_size} must be at least 1 file")
    cache_root = Path(cache_dir if cache_dir is not None else config.CACHE_DIR).absolute()
    items, errors = source_items(sources)
    if scheduler:
        return _run_on_cluster(task, items, errors, out=out, scheduler=scheduler, cache_root=cache_root,
                               part_size=part_size, progress=progress)
    return _run_here(task, items, errors, out=out, jobs=(os.cpu_count() or 1) if jobs == -1 else jobs,
                     cache_root=cache_root, progress=progress)


def _run_here(task: Task, items: list[dict], errors: list[dict], *, out, jobs: int, cache_root: Path,
              progress: bool) -> RunResult:
    """Local run: files in this process or a joblib pool; this process caches and writes."""
    from tqdm.auto import tqdm

    if _is_dir(out):
        raise TracklensError(f"{out}: a folder (a Dask run's partitioned table); choose another --out or remove it")
    _refuse_foreign_files(out)  # before any work: a run replaces (or removes) only its own earlier files
    for target in _unit_files(out).values():  # what a killed run left half-written
        remove_stale_temp_files(target)
    todo = []
    for item in tqdm(items, desc="checksums", unit="file", disable=not progress or len(items) < 200):
        reason = _checksum(item)
        if reason:
            errors.append({"path": item["path"], "reason": reason})
            continue
        item["cache"] = _cache_file(cache_root, task, item["checksum"])
        if _read_entry(item["cache"]) is None:  # missing or damaged: (re)compute
            todo.append(item)
    checked = [item for item in items if "cache" in item]
    n_cached = len(checked) - len(todo)

    failed: dict[str, str] = {}
    if todo:
        if task.warm is not None:
            task.warm(check=True)  # compiled here, once, before any worker can race on it
        by_path = {item["path"]: item for item in todo}
        try:
            with tqdm(total=len(todo), desc=task.name, unit="file", disable=not progress) as bar:
                for result in _run_local(task, todo, jobs):
                    if result["error"] is not None:
                        failed[result["path"]] = result["error"]
                    else:
                        atomic_write_bytes(by_path[result["path"]]["cache"], result["entry"])
                    bar.update()
        except _WorkerCrash as crash:
            raise _crash_error(task, crash, n_cached + bar.n - len(failed), len(checked)) from crash

    errors += [{"path": path, "reason": reason} for path, reason in failed.items()]
    table, done, unreadable = _table(task, [item for item in checked if item["path"] not in failed])
    errors += unreadable
    errors.sort(key=_source_order(items))
    _write_unit(task, table, done, errors, out)
    frames_file = frames_path(out) if task.frames else None
    return RunResult(out=out, frames=frames_file, errors=errors_path(out), n_tracks=len(done),
                     n_segments=int((table["segment"] >= 0).sum()), n_errors=len(errors), n_cached=n_cached,
                     n_computed=len(todo) - len(failed))


def _source_order(items: list[dict]):
    """Sort key putting error rows in source order (the manifest's own errors first, as listed)."""
    position = {item["path"]: i for i, item in enumerate(items)}
    return lambda error: position.get(error["path"], -1)


def _errors_frame(errors: list[dict]):
    import pandas as pd

    return pd.DataFrame(errors, columns=["path", "reason"])


def _written_by_a_run(kind: str, target: Path | str) -> bool:
    """Whether the existing ``kind`` file of a unit (:func:`_unit_files`) is one a run wrote: a
    table with the runner's id columns, frames with a ``track_id`` member, an errors file headed
    ``path,reason``, a manifest naming a run. Tables and frames from before run ids pass too."""
    fs, path = _fs(target)
    try:
        if kind == "table":
            import pyarrow.parquet as pq

            with fs.open(path, "rb") as handle:
                return set(ID_COLUMNS) <= set(pq.read_schema(handle).names)
        if kind == "frames":
            with fs.open(path, "rb") as handle, zipfile.ZipFile(handle) as zf:
                return "track_id.npy" in zf.namelist()
        if kind == "errors":
            return has_csv_header(path, ("path", "reason"), opener=fs.open)
        with fs.open(path, "rb") as handle:
            return "run_id" in json.loads(handle.read(1 << 16))
    except Exception:  # unreadable, not parquet / zip / JSON: not ours
        return False


def _refuse_foreign_files(out) -> None:
    """One line, before any file is analysed, when a file of ``out``'s unit is there and no run
    wrote it (``--out mine.parquet`` on the user's own table, or ``mine.frames.npz`` beside it):
    a run replaces its table, frames, errors file and manifest, and removes stale frames."""
    for kind, target in _unit_files(out).items():
        fs, path = _fs(target)
        if fs.exists(path) and not _written_by_a_run(kind, target):
            raise TracklensError(f"--out {out}: {target} is already there and tracklens did not write it; "
                                 "it is never replaced: choose another --out")


def _is_dir(target: Path | str) -> bool:
    fs, path = _fs(target)
    return fs.isdir(path)


def _remove(target: Path | str) -> None:
    fs, path = _fs(target)
    if fs.isfile(path):
        fs.rm(path)


class _WorkerCrash(Exception):
    """A worker process died mid-batch. ``how``: e.g. "signal 11 (SIGSEGV)"; ``suspects``: the
    files it may have been working on (dispatched, not finished)."""

    def __init__(self, how: str, suspects: list[str]):
        super().__init__(how)
        self.how, self.suspects = how, suspects


def _exit_reason(exc: BaseException) -> str:
    # loky words it "The exit codes of the workers are {SIGSEGV(-11)}"
    found = re.search(r"\b(SIG[A-Z0-9]+)\((-?\d+)\)", str(exc))
    return f"signal {abs(int(found[2]))} ({found[1]})" if found else "it exited unexpectedly"


def _run_local(task: Task, todo: list[dict], jobs: int) -> Iterator[dict]:
    if jobs == 1 or len(todo) <= 1:
        for item in todo:
            yield _compute(task, item)
        return
    from concurrent.futures.process import BrokenProcessPool  # loky's TerminatedWorkerError too

    from joblib import Parallel, delayed

    dispatched: list[str] = []
    finished: set[str] = set()

    def tasks():
        for item in todo:
            dispatched.append(item["path"])
            yield delayed(_compute)(task, item)

    # Unordered generator: results stream back (and get cached) as they finish; joblib dispatches
    # only a few tasks ahead, so memory stays bounded whatever the batch size.
    try:
        for result in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks()):
            finished.add(result["path"])
            yield result
    except BrokenProcessPool as exc:
        if "SIGINT" in str(exc):  # Ctrl-C reached the workers first: an interrupt, not a crash
            raise KeyboardInterrupt from exc
        raise _WorkerCrash(_exit_reason(exc), [p for p in dispatched if p not in finished]) from exc


#: files named in a worker-crash line: every file in flight on a normal pool (jobs x its prefetch);
#: naming only three left the crashing file out when four were in flight (a flaky CI failure)
MAX_SUSPECTS_NAMED = 12


def _crash_error(task: Task, crash: _WorkerCrash, n_done: int, n_files: int) -> TracklensError:
    """The one line for a worker crash, after the task's own check of the usual cause (numba's
    cache, issue #10128: a damaged cache is rebuilt there, and says so), so a rerun resumes."""
    note = ""
    if task.after_crash is not None:
        try:
            task.after_crash()
        except TracklensError as exc:
            note = f" ({exc})"
    names = crash.suspects
    where = (names[0] if len(names) == 1 else "a file" if not names else
             f"one of {len(names)} files in progress ({', '.join(names[:MAX_SUSPECTS_NAMED])}"
             f"{', ...' if len(names) > MAX_SUSPECTS_NAMED else ''})")
    return TracklensError(f"a worker process crashed ({crash.how}) on {where}{note}; {n_done} of {n_files} files "
                          f"are done and cached; rerun the same command to resume")


# --- the Dask path: workers write parts, the client coordinates ---------------------------------


def _plan_parts(task: Task, items: list[dict], part_size: int) -> list[dict]:
    """Consecutive runs of ``part_size`` items, each named by its index and a hash of what it
    holds (files, labels, ids, known checksums, the task's parameters): a rerun on the same
    sources finds its finished parts by name. At least one part, so that even a catalogue of
    only bad files is a (0-row) table with its columns."""
    width = max(5, len(str(max(len(items) - 1, 0) // part_size)))
    identity = [task.name, task.version, task.params]
    parts = []
    for index, first in enumerate(range(0, max(len(items), 1), part_size)):
        chunk = items[first:first + part_size]
        content = [[item[k] for k in ("path", "file", "label", "track_id", "checksum")] for item in chunk]
        digest = hashlib.sha256(json.dumps([identity, content], sort_keys=True).encode()).hexdigest()[:10]
        parts.append({"name": f"part-{index:0{width}d}-{digest}", "items": chunk})
    return parts


def _part_files(out, name: str) -> dict[str, Path | str]:
    return {"table": _join(out, f"{name}.parquet"), "frames": _join(out, f"_frames/{name}.npz"),
            "done": _join(out, f"_done/{name}.json")}


def run_part(part: dict, *, task: Task, out: str | Path, cache_root: str | Path) -> dict:
    """One part on a worker: checksum, cache or compute each file, then write the part's frames,
    its parquet part and its ``_done`` marker (in that order, each atomically). Returns only
    counts and errors (``name, n_files, n_tracks, n_segments, n_cached, n_computed, errors``)."""
    out, cache_root = output_target(out), Path(cache_root)
    stats = {"name": part["name"], "n_files": len(part["items"]), "n_cached": 0, "n_computed": 0, "errors": []}
    ready = []
    for item in part["items"]:
        item = dict(item)
        reason = _checksum(item)
        if reason:
            stats["errors"].append({"path": item["path"], "reason": reason})
            continue
        item["cache"] = _cache_file(cache_root, task, item["checksum"])
        if _read_entry(item["cache"]) is not None:
            stats["n_cached"] += 1
        else:
            result = _compute(task, item)
            if result["error"] is not None:
                stats["errors"].append({"path": item["path"], "reason": result["error"]})
                continue
            atomic_write_bytes(item["cache"], result["entry"])
            stats["n_computed"] += 1
        ready.append(item)
    table, done, unreadable = _table(task, ready)
    stats["errors"] = sorted(stats["errors"] + unreadable, key=_source_order(part["items"]))
    stats.update(n_tracks=len(done), n_segments=int((table["segment"] >= 0).sum()))
    files = _part_files(out, part["name"])
    if task.frames:
        _write_frames(task, done, files["frames"])
    _write_table(table, files["table"])
    atomic_write_bytes(files["done"], json.dumps(stats).encode())
    return stats


def _run_on_cluster(task: Task, items: list[dict], errors: list[dict], *, out, scheduler: Any, cache_root: Path,
                    part_size: int, progress: bool) -> RunResult:
    """Dask run: one :func:`run_part` per part on the workers; this process plans, skips the
    parts an earlier run finished, and writes the errors file and the dataset description."""
    from tqdm.auto import tqdm

    if isinstance(out, Path):
        out = out.absolute()  # workers may start in another folder
    parts = _plan_parts(task, items, part_size)
    resumed = _open_dataset(task, out, parts)
    todo = [part for part in parts if part["name"] not in resumed]
    if todo and task.warm is not None:
        task.warm(check=True)  # this host's cache is sound before local workers load it
    fresh: list[dict] = []
    with tqdm(total=len(items), initial=sum(s["n_files"] for s in resumed.values()), desc=task.name, unit="file",
              disable=not progress) as bar:
        try:
            for stats in _dask_parts(task, todo, out=out, scheduler=scheduler, cache_root=cache_root):
                fresh.append(stats)
                bar.update(stats["n_files"])
        except _WorkerCrash as crash:
            n_done = sum(s["n_files"] for s in (*resumed.values(), *fresh))
            raise _crash_error(task, crash, n_done, len(items)) from crash
    order = {part["name"]: i for i, part in enumerate(parts)}
    stats = sorted((*resumed.values(), *fresh), key=lambda s: order[s["name"]])
    errors = errors + [error for s in stats for error in s["errors"]]
    _close_dataset(task, out, parts, stats)
    write_csv(_errors_frame(errors), errors_path(out))
    return RunResult(out=out, frames=_join(out, "_frames") if task.frames else None, errors=errors_path(out),
                     n_tracks=sum(s["n_tracks"] for s in stats), n_segments=sum(s["n_segments"] for s in stats),
                     n_errors=len(errors),
                     n_cached=sum(s["n_cached"] for s in fresh) + sum(s["n_tracks"] for s in resumed.values()),
                     n_computed=sum(s["n_computed"] for s in fresh))


def _dask_parts(task: Task, parts: list[dict], *, out, scheduler: Any, cache_root: Path) -> Iterator[dict]:
    """Run :func:`run_part` for every part on the cluster; yield each part's stats as it finishes."""
    if not parts:
        return
    try:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise TracklensError("--scheduler needs the 'distributed' package") from exc
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT) if own else scheduler
    except (OSError, TimeoutError) as exc:
        raise TracklensError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc
    try:
        futures = client.map(run_part, parts, task=task, out=str(out), cache_root=str(cache_root), pure=False)
        for future in as_completed(futures):
            try:
                result = future.result()
            except KilledWorker as exc:  # the scheduler gave up after workers died holding this part
                # every part the dead worker held fails with it, the innocent ones too: name them all
                failed = [part for f, part in zip(futures, parts) if f.status == "error"]
                raise _WorkerCrash("the Dask worker died", [i["path"] for part in failed for i in part["items"]]) from exc
            yield result
            future.release()
    finally:
        if own:
            client.close()


def _open_dataset(task: Task, out, parts: list[dict]) -> dict[str, dict]:
    """Check ``out`` is a folder this runner may write (missing, empty, or a dataset of the same
    task), record the plan in it, and return the stats of the parts already finished."""
    fs, root = _fs(out)
    if fs.isfile(root):
        raise TracklensError(f"{out}: a file (a local run's table); a Dask run writes a folder of parts there: "
                             f"choose another --out or remove it")
    if fs.isdir(root) and fs.ls(root, detail=False):
        description = _dataset_description(fs, root)
        if description is None:
            raise TracklensError(f"{out}: a folder that holds no tracklens table; choose another --out")
        if description["task"] != task.name:
            raise TracklensError(f"{out}: holds a {description['task']!r} table, not {task.name!r}; choose another --out")
    _describe_dataset(task, out, parts, complete=False)
    planned = {part["name"] for part in parts}
    finished = {}
    for marker in fs.glob(f"{root}/_done/part-*.json"):  # one listing, then only the markers there
        name = marker.rsplit("/", 1)[-1].removesuffix(".json")
        if name in planned:
            try:
                with fs.open(marker, "rb") as handle:
                    finished[name] = json.loads(handle.read())
            except (FileNotFoundError, ValueError):
                continue  # half-written by a store without atomic moves: redo the part
    return finished


def _dataset_description(fs, root: str) -> dict | None:
    try:
        with fs.open(f"{root}/{DATASET_FILE}", "rb") as handle:
            description = json.loads(handle.read())
    except (FileNotFoundError, ValueError):
        return None
    return description if isinstance(description, dict) and "parts" in description else None


def _close_dataset(task: Task, out, parts: list[dict], stats: list[dict]) -> None:
    """Remove the parts a changed source list no longer has, then mark the dataset complete."""
    fs, root = _fs(out)
    keep = {part["name"] for part in parts}
    for pattern in ("part-*.parquet", "_frames/part-*.npz", "_done/part-*.json"):
        for path in fs.glob(f"{root}/{pattern}"):
            if path.rsplit("/", 1)[-1].rsplit(".", 1)[0] not in keep:
                fs.rm(path)
    _describe_dataset(task, out, parts, complete=True, n_tracks=sum(s["n_tracks"] for s in stats),
                      n_segments=sum(s["n_segments"] for s in stats))


def _describe_dataset(task: Task, out, parts: list[dict], **state: Any) -> None:
    """Write ``_tracklens.json``: what the dataset holds and its parts in table order."""
    description = {"format": "tracklens partitioned table", "task": task.name, "version": task.version,
                   "params": task.params, "columns": list(task.columns), "frames": task.frames,
                   "parts": [part["name"] for part in parts], **state}
    atomic_write_bytes(_join(out, DATASET_FILE), json.dumps(description, indent=1).encode())


# --- reading frames back -----------------------------------------------------------------------------


def iter_frames(path: str | Path, *, kinds: Iterable[str] | None = None, tracks: Iterable[str] | None = None,
                dtype: Any = np.float32) -> Iterator[dict]:
    """The segment frame matrices written by :func:`run`, one chunk at a time (a part of a Dask
    run's table, or the whole frames file of a local run), in table order.

    path : the table (``features.parquet``: file or folder) or a ``.frames.npz``
    kinds : the frame kinds to read (default all): only those are loaded
    tracks : keep only these track ids
    Yields dicts like :func:`load_frames` returns; a chunk with no kept segment is skipped.
    """
    kinds = None if kinds is None else list(kinds)
    wanted = None if tracks is None else set(map(str, tracks))
    for source in _frame_files(path):
        chunk = _read_frames_file(source, kinds=kinds, wanted=wanted, dtype=dtype)
        if len(chunk["track_id"]):
            yield chunk


def load_frames(path: str | Path, *, kinds: Iterable[str] | None = None, tracks: Iterable[str] | None = None,
                dtype: Any = np.float32) -> dict:
    """Read the segment frame matrices written by :func:`run` (either layout).

    ``path`` is the table (``features.parquet``, a file or a Dask run's folder) or a
    ``.frames.npz``. Returns a dict with ``track_id`` (N,), ``segment`` (N,), ``label`` (N,),
    one array (N, height, T) as ``dtype`` per kind (features: ``log_mel`` (N, 128, T), ``mfcc``
    (N, 20, T), ``sequence`` (N, 40, T)) and ``meta`` (dict: parameters, ``sequence_rows``).
    ``kinds`` / ``tracks`` read only those kinds / track ids; :func:`iter_frames` reads a
    large table part by part instead of all at once.
    """
    chunks = list(iter_frames(path, kinds=kinds, tracks=tracks, dtype=dtype))
    if not chunks:
        first = _frame_files(path)[0]
        return _read_frames_file(first, kinds=None if kinds is None else list(kinds), wanted=set(), dtype=dtype)
    out = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0] if key != "meta"}
    out["meta"] = chunks[0]["meta"]
    return out


def _frame_files(path: str | Path) -> list[Path | str]:
    """The .npz files holding the frames of the table at ``path``, in table order."""
    target = output_target(path)
    fs, root = _fs(target)
    if fs.isdir(root):
        description = _dataset_description(fs, root)
        if description is None or not description.get("frames"):
            raise TracklensError(f"{path}: no frame matrices (run `tracklens features ... --segment 3`)")
        present = {found.rsplit("/", 1)[-1].removesuffix(".npz") for found in fs.glob(f"{root}/_frames/part-*.npz")}
        written = [name for name in description["parts"] if name in present]  # one listing, not a call per part
        if len(written) < len(description["parts"]) or not description.get("complete"):
            raise TracklensError(f"{path}: unfinished ({len(written)} of {len(description['parts'])} parts written); "
                                 f"rerun the same command to finish it")
        return [_join(target, f"_frames/{name}.npz") for name in written]
    source = frames_path(target) if str(target).endswith(".parquet") else target
    if not fs.isfile(_fs(source)[1]):
        raise TracklensError(f"{path}: no frame matrices (run `tracklens features ... --segment 3`)")
    if source != target and fs.isfile(root):
        check_unit(target)  # the table's own frames, not an older run's
    return [source]


def _read_frames_file(source: Path | str, *, kinds: list[str] | None, wanted: set[str] | None, dtype: Any) -> dict:
    fs, name = _fs(source)
    try:
        with fs.open(name, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            ids = data["track_id"]
            keep = slice(None) if wanted is None else np.isin(ids, list(wanted))
            meta = json.loads(str(data["meta"]))
            available = [member.removesuffix(".npy") for member in data.files]
            chosen = [k for k in available if k not in ("track_id", "segment", "label", "meta", "run_id")] if kinds is None else kinds
            absent = [k for k in chosen if k not in available]
            if absent:
                raise TracklensError(f"{source}: no frame kind {absent[0]!r} (have {', '.join(available)})")
            out = {"track_id": ids[keep], "segment": data["segment"][keep], "label": data["label"][keep]}
            out.update({kind: data[kind][keep].astype(dtype) for kind in chosen})
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise TracklensError(f"{source}: not a tracklens frames file ({exc})") from exc
    out["meta"] = meta
    return out


# --- per-file helpers for embedding tasks --------------------------------------------------------


def window_result(starts_s: np.ndarray, ends_s: np.ndarray, **blocks: np.ndarray) -> FileResult:
    """The rows of a windowed embedding: a track row (``segment`` -1, each block's mean over the
    windows) then one row per window (``segment`` 0.., ``start_s``, ``end_s``)."""
    starts, ends = np.asarray(starts_s, dtype=float), np.asarray(ends_s, dtype=float)
    rows = [{"segment": -1, "start_s": 0.0, "end_s": float(ends[-1])}]
    rows += [{"segment": i, "start_s": float(s), "end_s": float(e)} for i, (s, e) in enumerate(zip(starts, ends))]
    means = {name: np.vstack([values.mean(axis=0), values]) for name, values in blocks.items()}
    return FileResult(rows=rows, blocks=means)
