"""Read the facts of a feature store file (HDF5: a 2-D dataset of feature vectors and a 1-D
dataset of image paths) -- STANDALONE: standard library and h5py only, h5py imported inside
:func:`read_facts`.

:mod:`checks.datastores.feature_store` runs this file's source with the host's own
``python3`` over the host's connection (the file is read where it lives, with the h5py the
application uses there); the self-tests call :func:`read_facts` directly.  Nothing is
written: the file is opened read-only.  The output is JSON on stdout when run as a script.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

#: Most missing paths named in the facts (the count is always exact for the sample).
MISSING_SHOWN = 5


def _sample_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``0..n-1`` (first and last included): reproducible,
    and a broken stretch anywhere in the file has a chance to be hit."""
    if n <= 0 or k <= 0:
        return []
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _find(f: Any, name: str, want_2d: bool) -> Any:
    """The dataset ``name``; else the first 2-D numeric (vectors) or 1-D string (paths) one."""
    import h5py

    if name in f and isinstance(f[name], h5py.Dataset):
        return f[name]
    found: list[Any] = []

    def visit(_: str, obj: Any) -> None:
        if found or not isinstance(obj, h5py.Dataset):
            return
        vectors = obj.ndim == 2 and obj.dtype.kind in "fiu"
        names = obj.ndim == 1 and obj.dtype.kind in "SOU"
        if (vectors if want_2d else names):
            found.append(obj)

    f.visititems(visit)
    return found[0] if found else None


def read_facts(path: str, features: str = "features", paths: str = "image_paths", sample: int = 20,
               image_root: str | None = None) -> dict[str, Any]:
    """What the file is: ``hdf5`` (opens as HDF5), ``datasets`` (every dataset: shape and
    dtype), ``features`` / ``dimension`` / ``count`` (the vectors' dataset, its second axis,
    its rows), ``paths`` / ``paths_count``, and for a sample of ``sample`` stored paths
    (relative ones resolved against ``image_root``, default the file's folder):
    ``sampled``, ``missing_count`` and the first missing ones.  ``error`` says why the file
    could not be read; ``h5py_missing`` that this interpreter has no h5py."""
    facts: dict[str, Any] = {"path": path, "exists": os.path.exists(path), "hdf5": False}
    try:
        import h5py
    except ImportError as exc:
        facts["h5py_missing"] = f"{exc}"
        return facts
    facts["h5py"] = h5py.__version__
    if not facts["exists"]:
        return facts
    try:
        facts["hdf5"] = bool(h5py.is_hdf5(path))
    except OSError as exc:  # permission denied, a folder...
        facts["error"] = f"{exc}"
        return facts
    if not facts["hdf5"]:
        facts["error"] = "not an HDF5 file (no HDF5 signature)"
        return facts
    try:
        with h5py.File(path, "r") as f:
            datasets: dict[str, Any] = {}
            f.visititems(lambda name, obj: datasets.__setitem__(name, {"shape": list(obj.shape),
                                                                       "dtype": str(obj.dtype)})
                         if isinstance(obj, h5py.Dataset) else None)
            facts["datasets"] = datasets
            vec = _find(f, features, want_2d=True)
            if vec is not None:
                facts["features"] = vec.name.lstrip("/")
                facts["count"] = int(vec.shape[0])
                facts["dimension"] = int(vec.shape[1]) if vec.ndim == 2 else None
            names = _find(f, paths, want_2d=False)
            if names is not None:
                facts["paths"] = names.name.lstrip("/")
                facts["paths_count"] = int(names.shape[0])
                root = image_root or os.path.dirname(os.path.abspath(path))
                idx = _sample_indices(int(names.shape[0]), sample)
                missing = []
                for i in idx:
                    p = _text(names[i])
                    full = p if os.path.isabs(p) else os.path.join(root, p)
                    if not os.path.isfile(full):
                        missing.append(p)
                facts.update(sampled=len(idx), missing_count=len(missing), missing=missing[:MISSING_SHOWN],
                             image_root=root)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        facts["error"] = f"{type(exc).__name__}: {exc}"
    return facts


if __name__ == "__main__":
    # argv: path features paths sample image_root ("" = the file's folder)
    a = sys.argv[1:]
    print(json.dumps(read_facts(a[0], a[1], a[2], int(a[3]), a[4] or None)))
