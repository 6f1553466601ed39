"""The datastores family's feature store checks (ST-DB-01, ST-AUTH-04, ST-DB-02) against real
HDF5 files on a ``local://`` host: a compliant ``features.h5`` (2048-dimensional vectors,
owned by the service user, mode 0640, every stored image path present) PASSES all three;
each broken twin FAILS the check meant for it with the measured value (a 512-dimensional
file, a file that is not HDF5, a missing file, a world-readable file, a root-owned file
the service user cannot read, image paths that point nowhere).  A host Python without h5py
is "could not verify" (error), never a pass.  Judgement is golive.checkdef.evaluate, the
code the generic binding runs; the strv lab (tests/test_seed_strv.py) runs them end to end.
"""
from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from golive import registry
from golive.checkdef import CheckContext, evaluate
from golive.model import CheckResult
from golive.target import load_target

pytest.importorskip("h5py")

SERVICE_USER = "nobody" if os.geteuid() == 0 else None
REQ = {"feature_store": {"dimension": 2048, "sample": 10}}
CHECKS = ("feature_store", "feature_store_access", "feature_store_paths")
#: Debian's Python with python3-h5py (scripts/setup.sh): the host's interpreter the probe uses
HOST_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def stores() -> Iterator[dict[str, Any]]:
    """Real files in a world-traversable folder (the service user must reach them)."""
    from lab.feature_store import make_feature_store, write_images

    base = Path(tempfile.mkdtemp(prefix="golive-fs-"))
    base.chmod(0o755)
    user = SERVICE_USER or str(os.getuid())
    try:
        images = base / "images"
        names = write_images(images, 40)
        images.chmod(0o755)
        rel = [f"images/{n}" for n in names]
        files = {
            "ok": make_feature_store(base / "ok" / "features.h5", rel, owner=SERVICE_USER),
            "abs": make_feature_store(base / "abs" / "features.h5", [str(images / n) for n in names],
                                      owner=SERVICE_USER),
            "dim512": make_feature_store(base / "dim" / "features.h5", rel, dimension=512, owner=SERVICE_USER),
            "world": make_feature_store(base / "world" / "features.h5", rel, owner=SERVICE_USER, mode=0o644),
            "root": make_feature_store(base / "root" / "features.h5", rel, owner="root", mode=0o600),
            "lost": make_feature_store(base / "lost" / "features.h5",
                                       [*rel[:30], *(f"images/gone-{i}.jpg" for i in range(10))],
                                       owner=SERVICE_USER),
        }
        junk = base / "junk" / "features.h5"
        junk.parent.mkdir()
        junk.write_bytes(b"not an hdf5 file, just bytes\n" * 10)
        if SERVICE_USER:
            shutil.chown(junk, SERVICE_USER)
        junk.chmod(0o640)
        files["junk"] = junk
        files["missing"] = base / "missing" / "features.h5"
        for d in base.iterdir():
            d.chmod(0o755)
        yield {"files": files, "base": base, "user": user}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _target(tmp_path: Path, spec: dict[str, Any]) -> Any:
    doc = {"name": "fs-lab", "environment": "lab",
           "hosts": [{"name": "api1", "connection": "local://", "roles": ["app"]}],
           "datastores": {"feature_store": spec}}
    path = tmp_path / f"target-{secrets.token_hex(3)}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_target(str(path), env={})


def _judge(check: str, target: Any, req: dict[str, Any] = REQ) -> CheckResult:
    from checks.datastores.family import DatastoresReq
    from suites.hostset import probe_host

    found = registry.load("datastores").by_id(f"datastores.{check}")
    assert found is not None, check
    ctx = CheckContext.for_test(req=DatastoresReq.model_validate(req), spec=target.datastores, target=target,
                                host_runner=probe_host)
    [result] = evaluate(found, ctx)
    return result


def _spec(stores: dict[str, Any], which: str, **over: Any) -> dict[str, Any]:
    spec = {"path": str(stores["files"][which]), "user": stores["user"], "image_root": str(stores["base"]),
            "python": HOST_PYTHON}
    spec.update(over)
    return spec


def _all(tmp_path: Path, stores: dict[str, Any], which: str, **over: Any) -> dict[str, CheckResult]:
    target = _target(tmp_path, _spec(stores, which, **over))
    return {c: _judge(c, target) for c in CHECKS}


def test_reader_facts_of_a_good_file(stores: dict[str, Any]) -> None:
    from checks.datastores.feature_store_reader import _sample_indices, read_facts

    facts = read_facts(str(stores["files"]["ok"]), sample=10, image_root=str(stores["base"]))
    assert facts["hdf5"] is True and facts["features"] == "features" and facts["paths"] == "image_paths"
    assert (facts["count"], facts["dimension"], facts["paths_count"]) == (40, 2048, 40)
    assert facts["sampled"] == 10 and facts["missing_count"] == 0
    assert _sample_indices(40, 10)[0] == 0 and _sample_indices(40, 10)[-1] == 39
    assert _sample_indices(3, 10) == [0, 1, 2] and _sample_indices(0, 5) == []


def test_compliant_feature_store_passes(tmp_path: Path, stores: dict[str, Any]) -> None:
    got = _all(tmp_path, stores, "ok")
    assert {c: r.status.value for c, r in got.items()} == dict.fromkeys(CHECKS, "pass"), \
        {c: (r.measured, r.reason) for c, r in got.items()}
    f = got["feature_store"]
    assert f.value["dimension"] == 2048 and f.value["count"] == 40 and "HDF5, features 40 x 2048" in f.measured
    acc = got["feature_store_access"].value
    assert acc["mode"] == "0640" and acc["readable_by_user"] is True
    paths = got["feature_store_paths"].value
    assert paths["sampled"] == 10 and paths["missing_count"] == 0
    assert "ST-DB-01" in got["feature_store"].requirement.ids
    assert "ST-AUTH-04" in got["feature_store_access"].requirement.ids
    assert "ST-DB-02" in got["feature_store_paths"].requirement.ids
    # absolute stored paths need no image_root
    absolute = _all(tmp_path, stores, "abs", image_root=None)
    assert absolute["feature_store_paths"].status.value == "pass", absolute["feature_store_paths"].measured


def test_wrong_dimension_not_hdf5_and_missing_file_fail(tmp_path: Path, stores: dict[str, Any]) -> None:
    dim = _judge("feature_store", _target(tmp_path, _spec(stores, "dim512")))
    assert dim.status.value == "fail" and dim.value["dimension"] == 512, dim.measured
    assert "x 512" in dim.measured and dim.expected == "an HDF5 file whose vectors have dimension 2048"
    junk = _all(tmp_path, stores, "junk")
    assert junk["feature_store"].status.value == "fail" and junk["feature_store"].value["hdf5"] is False
    assert "not HDF5" in junk["feature_store"].measured
    assert junk["feature_store_paths"].status.value == "fail"  # no paths can be read from it
    gone = _all(tmp_path, stores, "missing")
    assert {c: r.status.value for c, r in gone.items()} == dict.fromkeys(CHECKS, "fail")
    assert gone["feature_store"].value == {"path": str(stores["files"]["missing"]), "exists": False}


def test_world_readable_and_foreign_owner_fail_access(tmp_path: Path, stores: dict[str, Any]) -> None:
    world = _judge("feature_store_access", _target(tmp_path, _spec(stores, "world")))
    assert world.status.value == "fail" and world.value["mode"] == "0644", world.measured
    if os.geteuid() != 0:
        pytest.skip("a file of another owner needs root to create")
    root = _judge("feature_store_access", _target(tmp_path, _spec(stores, "root")))
    assert root.status.value == "fail", root.measured
    assert root.value["owner"] == "root" and root.value["readable_by_user"] is False
    assert "nobody can NOT read it" in root.measured


def test_missing_image_paths_fail(tmp_path: Path, stores: dict[str, Any]) -> None:
    lost = _judge("feature_store_paths", _target(tmp_path, _spec(stores, "lost")))
    assert lost.status.value == "fail", lost.measured
    v = lost.value
    assert v["sampled"] == 10 and v["missing_count"] >= 1 and v["missing"][-1].startswith("images/gone-")
    # the same file judged against the wrong root: every sampled path is missing
    wrong = _judge("feature_store_paths", _target(tmp_path, _spec(stores, "ok", image_root="/nonexistent")))
    assert wrong.status.value == "fail" and wrong.value["missing_count"] == 10


def test_no_h5py_on_the_host_is_could_not_verify(tmp_path: Path, stores: dict[str, Any]) -> None:
    """An interpreter without h5py cannot say what the file holds: error, with the fix."""
    bare = tmp_path / "python-without-h5py"
    bare.write_text("#!/bin/sh\nexec /usr/bin/python3 -S \"$@\"\n")  # -S: no site-packages, no h5py
    bare.chmod(bare.stat().st_mode | stat.S_IEXEC)
    nope = _judge("feature_store", _target(tmp_path, _spec(stores, "ok", python=str(bare))))
    assert nope.status.value == "error" and "has no h5py" in nope.reason, (nope.measured, nope.reason)
    absent = _judge("feature_store", _target(tmp_path, _spec(stores, "ok", python=str(tmp_path / "no-python"))))
    assert absent.status.value == "error" and "not found" in absent.reason, absent.reason


def test_target_without_feature_store_is_an_error(tmp_path: Path) -> None:
    doc = {"name": "fs", "environment": "lab", "hosts": [{"name": "a", "connection": "local://"}],
           "datastores": {"sqlite": {"path": "/x.db", "user": "nobody"}}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(doc))
    r = _judge("feature_store", load_target(str(path), env={}))
    assert r.status.value == "error" and "datastores.feature_store" in r.reason


def test_a_profile_without_a_feature_store_skips_the_checks(tmp_path: Path, stores: dict[str, Any]) -> None:
    """docusnap's profile has datastores (SQLite) but no feature_store: skipped, with the reason."""
    target = _target(tmp_path, _spec(stores, "ok"))
    for check in CHECKS:
        r = _judge(check, target, {"sqlite": {}})
        assert r.status.value == "skip" and "requires nothing of feature_store" in r.reason, (check, r.reason)
