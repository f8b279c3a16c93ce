"""Versioned model artefacts: fitted pipelines (skops), tables (Parquet) and a manifest.

A bundle is a directory ``<root>/<kind>-<UTC timestamp>/`` holding ``manifest.json``,
``*.skops`` and ``*.parquet``. ``<root>/<kind>.current`` names the bundle in use and is
replaced atomically only after a bundle is completely written: a failed build never
overwrites what was built before. Loading checks the library versions recorded in the
manifest and refuses a bundle fitted with another scikit-learn.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy
import pandas as pd
import skops

from assistant.core.errors import AssistantError

# skops refuses types it does not trust by default; these are the exact ones our fitted
# pipelines add (measured on every bundle kind: segments, intents, routes; the Tree of a
# random forest when it wins the segment classifier's CV). Anything else in a file means it
# was not written by us: it is refused, never loaded.
TRUSTED_TYPES = frozenset({"numpy.dtype", "sklearn.tree._tree.Tree"})


class ArtifactError(AssistantError):
    code = "artifact-invalid"


def library_versions() -> dict[str, str]:
    import sklearn  # lazy: scikit-learn, +0.9 s; only saving a bundle records its version

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": numpy.__version__, "skops": skops.__version__}


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    models: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def save_bundle(root: Path, kind: str, *, models: dict[str, Any],
                tables: dict[str, pd.DataFrame], manifest: dict[str, Any]) -> Path:
    """Write a complete bundle, then point ``<kind>.current`` at it."""
    import skops.io as sio  # lazy: +0.5 s even after scikit-learn; only bundle I/O needs it

    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = root / f"{kind}-{stamp}"
    tmp = root / f".{kind}-{stamp}.partial"
    tmp.mkdir()
    try:
        for name, model in models.items():
            sio.dump(model, tmp / f"{name}.skops")
        for name, table in tables.items():
            if table.attrs:  # Parquet stores attrs as JSON; ours go in the manifest
                table = table.copy(deep=False)
                table.attrs = {}
            table.to_parquet(tmp / f"{name}.parquet")
        full = {"kind": kind, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "libraries": library_versions(), "models": sorted(models),
                "tables": sorted(tables), **manifest}
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2, default=str))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f"{kind}.current"
    pointer_tmp = root / f".{kind}.current.tmp"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, pointer)
    return final


def current_bundle_path(root: Path, kind: str) -> Path | None:
    pointer = root / f"{kind}.current"
    if not pointer.exists():
        return None
    name = pointer.read_text().strip()
    # a bundle folder right inside the root, named for its kind: a pointer that leads
    # elsewhere ("../..", an absolute path, a link out) is refused
    if not re.fullmatch(rf"{re.escape(kind)}-[0-9A-Za-z]+", name):
        raise ArtifactError(f"The pointer {pointer} names {name!r}, not a {kind} bundle.",
                            "Rebuild the artefacts (assistant segments build / help train).")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise ArtifactError(f"The {kind} bundle {path} lies outside {root}.",
                            "Rebuild the artefacts (assistant segments build / help train).")
    return path if path.is_dir() else None


def load_bundle(root: Path, kind: str, *, models: bool = True) -> Bundle | None:
    """The current bundle of ``kind`` (None when nothing was built yet)."""
    import skops.io as sio  # lazy: +0.5 s even after scikit-learn; only bundle I/O needs it

    path = current_bundle_path(root, kind)
    if path is None:
        return None
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"The {kind} artefacts in {path} are unreadable ({exc}).",
                            "Rebuild them: assistant segments build --orders PATH") from None
    built_with = manifest.get("libraries", {}).get("scikit-learn")
    now = library_versions()["scikit-learn"]
    if models and built_with != now:
        raise ArtifactError(
            f"The {kind} models in {path} were fitted with scikit-learn {built_with}; "
            f"this install has {now}.",
            "Rebuild them with this version: assistant segments build --orders PATH",
        )
    bundle = Bundle(path=path, manifest=manifest)
    for name in manifest.get("tables", []):
        bundle.tables[name] = pd.read_parquet(path / f"{name}.parquet")
    if models:
        for name in manifest.get("models", []):
            file = path / f"{name}.skops"
            untrusted = sio.get_untrusted_types(file=file)
            unknown = [t for t in untrusted if t not in TRUSTED_TYPES]
            if unknown:
                raise ArtifactError(f"{file} contains types we do not load: {unknown}.",
                                    "Rebuild the artefacts; do not copy models from elsewhere.")
            bundle.models[name] = sio.load(file, trusted=untrusted)
    return bundle
