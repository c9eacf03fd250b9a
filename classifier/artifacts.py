"""Saving and loading trained models with their metadata, for every model the classifier keeps.

Each model is two files in the model folder: ``<stem>.joblib`` (the fitted objects: a gzip'd
pickle, which ``joblib.load`` reads too) and ``<stem>.json`` (metadata: format, scikit-learn and
taxonomy versions, data hash, metrics).
Both are written atomically, the metadata last, and loading refuses a model made for another
format, library or taxonomy version with a message that says how to retrain.
"""

from __future__ import annotations

import gzip
from importlib.metadata import version
import json
import os
from pathlib import Path
import pickle
import tempfile
from typing import Any

from .errors import ModelDirError, ModelError, ModelMismatch
from .taxonomy import Taxonomy, load_taxonomy

# joblib and scikit-learn are imported where a model is loaded, not here: checking a saved
# model's metadata (check_saved_models) must not cost seconds of imports.

# What a model file starts with when stiwatch wrote it as a gzip'd pickle (see dump_payload);
# older versions wrote joblib's own format (zlib, b"\x78"), which load_payload still reads.
GZIP_MAGIC = b"\x1f\x8b"

RETRAIN = "retrain with `stiwatch train --stip FILE`"

# The models the classifier saves, by file stem (STEM.joblib + STEM.json in the model folder):
# (the format this code reads, what messages call it). classifier/model.py and
# classifier/countries.py take their stem and FORMAT from here.
POLICY_STEM, COUNTRY_STEM = "model", "countries"
SAVED_MODELS = {POLICY_STEM: (2, "model"), COUNTRY_STEM: (1, "country model")}


def has_saved(model_dir: str | os.PathLike[str], stem: str) -> bool:
    """Whether ``model_dir`` holds the model ``stem`` (its metadata file), found without
    loading it, or importing scikit-learn."""
    return (Path(model_dir) / f"{stem}.json").exists()


def installed_sklearn() -> str:
    """The installed scikit-learn's version, read without importing it."""
    return version("scikit-learn")


def _unusable(folder: Path, error: OSError) -> ModelDirError:
    """The one-line error for a model folder the OS would not let us create or write."""
    # os.path's tests answer False where Path.exists() would raise (a name too long)
    if isinstance(error, FileExistsError) or (os.path.lexists(folder)
                                               and not os.path.isdir(folder)):
        return ModelDirError(f"{folder}: is a file, not a folder: the model cannot be saved "
                             "there")
    if isinstance(error, NotADirectoryError):
        blocker = next((p for p in folder.parents
                        if os.path.lexists(p) and not os.path.isdir(p)), None)
        if blocker is not None:
            return ModelDirError(f"{folder}: cannot be created: {blocker} is a file, not a "
                                 "folder")
    return ModelDirError(f"{folder}: the model cannot be saved there: "
                         f"{error.strerror or error}")


def check_model_dir(model_dir: str | os.PathLike[str]) -> Path:
    """ModelDirError unless a model can be saved in the folder, found out by creating it (and
    its parents) and a temporary file in it, as saving will. Folders made only for the check
    are removed again, so a training that fails later leaves nothing behind.

    `stiwatch train` calls it before training: otherwise a bad folder is found only once a
    training of a minute or more is done, and its work is lost.
    """
    folder = Path(model_dir)
    made = []  # the folders the check creates, deepest first
    for path in (folder, *folder.parents):
        if os.path.lexists(path):
            break
        made.append(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise _unusable(folder, error) from None
    finally:
        for path in made:
            try:
                path.rmdir()
            except OSError:
                break
    return folder


def save_artifact(model_dir: str | os.PathLike[str], stem: str, payload: dict[str, Any],
                  metadata: dict[str, Any]) -> Path:
    """Write ``<stem>.joblib`` and ``<stem>.json`` atomically (a crash keeps the old pair).

    ModelDirError when the folder cannot be created or written (read-only, full disk...).
    """
    folder = Path(model_dir)
    try:
        _save(folder, stem, payload, metadata)
    except OSError as error:
        raise _unusable(folder, error) from None
    return folder


def dump_payload(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a model's fitted objects to ``path`` as a gzip'd pickle (protocol 5).

    Not joblib's own format, though joblib.load reads this one as well: joblib reads its
    format with pickle's pure-Python unpickler, one call per object of the vocabularies, where
    this one is read by the C unpickler. Loading the two models of a full training took
    1.5-1.6 s that way and takes 0.8 s this way (bench/model_load.py), at the same size on
    disk and no more memory: numpy arrays go into protocol 5's pickle whole, as in joblib's.
    """
    with gzip.open(path, "wb", compresslevel=3) as out:
        pickle.dump(payload, out, protocol=5)


def load_payload(path: str | os.PathLike[str]) -> Any:
    """What dump_payload wrote to ``path``, or a model file in joblib's format (as stiwatch
    saved models until 2026-11-27 22:00 UTC); FileNotFoundError when there is none."""
    with open(path, "rb") as file:
        if file.read(len(GZIP_MAGIC)) == GZIP_MAGIC:
            file.seek(0)
            with gzip.GzipFile(fileobj=file, mode="rb") as unpacked:
                return pickle.load(unpacked)
    import joblib

    return joblib.load(path)


def _save(folder: Path, stem: str, payload: dict[str, Any], metadata: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_model = tempfile.mkstemp(dir=folder, prefix=f".{stem}-", suffix=".joblib")
    os.close(fd)
    try:
        fd, tmp_meta = tempfile.mkstemp(dir=folder, prefix=f".{stem}-", suffix=".json")
    except OSError:
        os.unlink(tmp_model)
        raise
    os.close(fd)
    try:
        dump_payload(payload, tmp_model)
        Path(tmp_meta).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        # The metadata goes last: a reader never sees new metadata beside an old model file
        # for long, and load_artifact() cross-checks the version held in both.
        os.replace(tmp_model, folder / f"{stem}.joblib")
        os.replace(tmp_meta, folder / f"{stem}.json")
    finally:
        for leftover in (tmp_model, tmp_meta):
            if os.path.exists(leftover):
                os.unlink(leftover)


def read_metadata(model_dir: str | os.PathLike[str], stem: str, what: str = "model"
                  ) -> dict[str, Any] | None:
    """The saved metadata, or None when the folder holds no such model."""
    path = Path(model_dir) / f"{stem}.json"
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable {what} metadata ({error}); {RETRAIN}") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{path}: unreadable {what} metadata; {RETRAIN}")
    return metadata


def check_compatible(metadata: dict[str, Any], path: Path, fmt: int, taxonomy: Taxonomy,
                     what: str = "model") -> None:
    """ModelMismatch, naming every difference, when the model was made for other versions."""
    problems = []
    if metadata.get("format") != fmt:
        problems.append(f"{what} format {metadata.get('format')} (this stiwatch reads {fmt})")
    if metadata.get("sklearn_version") != installed_sklearn():
        problems.append(f"scikit-learn {metadata.get('sklearn_version')} "
                        f"(installed: {installed_sklearn()})")
    if metadata.get("taxonomy_version") != taxonomy.version:
        problems.append(f"taxonomy version {metadata.get('taxonomy_version')} "
                        f"(current: {taxonomy.version})")
    if problems:
        raise ModelMismatch(
            f"{path}: the {what} was made with {' and '.join(problems)}; retrain it with "
            "`stiwatch train --stip FILE` (the STIP Compass CSV export)")


def check_saved_models(model_dir: str | os.PathLike[str]) -> None:
    """ModelError or ModelMismatch for a saved model that loading would refuse, from its
    metadata (and its model file being there) alone: `stiwatch classify` with nothing to
    classify loads no model, yet should still say at once that an upgrade calls for
    retraining, and `stiwatch run` checks before it crawls what the classify step after the
    crawl would refuse."""
    for stem, (fmt, what) in SAVED_MODELS.items():
        metadata = read_metadata(model_dir, stem, what)
        if metadata is not None:
            check_compatible(metadata, Path(model_dir) / f"{stem}.json", fmt, load_taxonomy(),
                             what)
            if not (Path(model_dir) / f"{stem}.joblib").exists():
                raise _missing(Path(model_dir) / f"{stem}.joblib", stem)


def _missing(path: Path, stem: str) -> ModelError:
    return ModelError(f"{path}: missing (only {stem}.json is there); {RETRAIN}")


def load_artifact(model_dir: str | os.PathLike[str], stem: str, fmt: int,
                  taxonomy: Taxonomy | None = None, what: str = "model"
                  ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(payload, metadata)`` of a saved model, None when there is none."""
    folder = Path(model_dir)
    metadata = read_metadata(folder, stem, what)
    if metadata is None:
        return None
    check_compatible(metadata, folder / f"{stem}.json", fmt, taxonomy or load_taxonomy(), what)
    path = folder / f"{stem}.joblib"
    try:
        payload = load_payload(path)
    except FileNotFoundError:
        raise _missing(path, stem) from None
    except Exception as error:  # noqa: BLE001 - unpickling can fail in many ways
        raise ModelError(f"{path}: cannot load the {what} ({type(error).__name__}: {error}); "
                         f"{RETRAIN}") from None
    if not isinstance(payload, dict) or payload.get("version") != metadata.get("version"):
        raise ModelError(f"{path}: does not match {stem}.json (an interrupted save?); "
                         f"{RETRAIN}")
    return payload, metadata
