"""The run folder is claimed exclusively and proven writable before any probe runs
(issue #14, item 7): an unusable --report-dir is exit 4 with the reason, not a traceback
after every probe ran; two runs never share a folder."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conftest import write_target
from golive.rundir import RunDirError, claim, release_if_empty

LOCAL_TARGET = "name: here\nhosts:\n  - name: here\n    connection: local://\n    roles: [inference]\n"


def test_a_taken_name_gets_a_suffix_and_concurrent_claims_never_share(tmp_path: Path) -> None:
    first = claim(tmp_path, "20270101T000000Z_poc_lab")
    second = claim(tmp_path, "20270101T000000Z_poc_lab")
    assert first.name == "20270101T000000Z_poc_lab" and second.name == "20270101T000000Z_poc_lab-2"
    got: list[Path] = []
    lock = threading.Lock()

    def one() -> None:
        p = claim(tmp_path, "same")
        with lock:
            got.append(p)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16 and len(set(got)) == 16


def test_unusable_folders_are_refused_with_the_reason(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(RunDirError, match=r"cannot create the report folder|is not a folder"):
        claim(a_file / "reports", "run")
    with pytest.raises(RunDirError, match=r"cannot create the report folder .*: File exists"):
        claim(a_file, "run")
    with pytest.raises(RunDirError, match="cannot create"):
        claim(Path("/proc/golive-reports"), "run")  # a read-only file system, even for root


def test_release_removes_only_an_empty_folder(tmp_path: Path) -> None:
    empty, full = claim(tmp_path, "a"), claim(tmp_path, "b")
    (full / "report.json").write_text("{}")
    release_if_empty(empty)
    release_if_empty(full)
    assert not empty.exists() and full.exists()


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_unwritable_report_dir_is_exit_4_before_any_probe(golive_run, tmp_path: Path, where: str) -> None:  # type: ignore[no-untyped-def]
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    report_dir = a_file / "reports" if where == "under-a-file" else Path("/proc/golive-reports")
    target = write_target(tmp_path, LOCAL_TARGET)
    run = golive_run("--profile", "poc", f"--target={target}", "-m", "hosts", f"--report-dir={report_dir}")
    assert run.rc == 4, run.out[-3000:]
    assert "cannot create the report folder" in run.out and "fix: give --report-dir a writable folder" in run.out
    assert "Traceback" not in run.out
    assert "PASSED" not in run.out and "FAILED" not in run.out and " passed" not in run.out, "no probe may run"


def test_a_run_that_writes_no_report_leaves_no_folder(golive_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report_dir = tmp_path / "reports"
    target = write_target(tmp_path, LOCAL_TARGET)
    run = golive_run("--profile", "poc", f"--target={target}", "-m", "no_such_marker", f"--report-dir={report_dir}")
    assert run.rc == 5, run.out[-2000:]
    assert not list(report_dir.iterdir())
