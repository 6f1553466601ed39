"""Feature store files (STRV's ``features.h5``) for the labs and self-tests: an HDF5 file with
the vectors of a set of images (``features``: N x dimension, float32, L2-normalised) and their
paths (``image_paths``: UTF-8 strings), written with h5py, plus the image files themselves.

The "images" are small files with a JPEG signature: the lab has no model to extract real
features with, so the vectors are seeded random ones -- what golive checks is the file's
structure, its dimension and that the stored paths exist, never the vectors' meaning.
"""
from __future__ import annotations

import os
from pathlib import Path

from lab.procs import LabError

FEATURES = "features"
PATHS = "image_paths"
#: the start of a JPEG file (SOI + APP0 "JFIF"): enough for `file` to say "JPEG image data"
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def write_images(images_dir: Path, count: int, *, prefix: str = "img") -> list[str]:
    """``count`` small image files in ``images_dir``; their names, in order."""
    images_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{prefix}-{i:05d}.jpg"
        (images_dir / name).write_bytes(JPEG_HEAD + i.to_bytes(4, "big") + b"\xff\xd9")
        names.append(name)
    return names


def make_feature_store(path: Path, stored_paths: list[str], *, dimension: int = 2048, seed: int = 7,
                       owner: int | str | None = None, mode: int = 0o640) -> Path:
    """Write ``path``: ``features`` (len(stored_paths) x ``dimension``, float32, unit rows)
    and ``image_paths`` (``stored_paths``, as written: absolute or relative); then chown to
    ``owner`` (uid or account name, when given and running as root) and chmod ``mode``."""
    try:
        import h5py
        import numpy as np
    except ImportError as exc:
        raise LabError(f"the feature store needs h5py and numpy in golive's environment (pip install h5py): "
                       f"{exc}") from None
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(stored_paths), dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(FEATURES, data=vectors)
        f.create_dataset(PATHS, data=stored_paths, dtype=h5py.string_dtype("utf-8"))
        f.attrs["dimension"] = dimension
        f.attrs["generator"] = "golive lab (seeded random vectors)"
    if owner is not None and os.geteuid() == 0:
        import pwd

        uid = owner if isinstance(owner, int) else pwd.getpwnam(owner).pw_uid
        gid = uid if isinstance(owner, int) else pwd.getpwnam(owner).pw_gid
        os.chown(path, uid, gid)
    path.chmod(mode)
    return path
