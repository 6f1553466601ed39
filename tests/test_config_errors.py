"""Malformed profiles, targets and waiver files: one clear message naming the file, the
line and the fix; exit code 4; no traceback.  Each case runs the real command line."""
from __future__ import annotations

from pathlib import Path

import pytest

PROFILE_CASES = [
    # (id, profile text, line, message fragment, fix fragment)
    ("unknown-key", "name: p\ndescription: d\nrequirements:\n  tls:\n    min_versoin: '1.2'\n",
     5, "unknown key 'requirements.tls.min_versoin' in profile", "did you mean 'min_version'?"),
    ("size-without-unit", "name: p\ndescription: d\nrequirements:\n  hosts:\n    default:\n      memory: 16\n",
     6, "the size 16 has no unit", "'16 GiB'"),
    ("wrong-unit", "name: p\ndescription: d\nrequirements:\n  hosts:\n    default:\n      memory: 16 cores\n",
     6, "unknown size unit 'cores'", "use one of"),
    ("cores-not-a-number", "name: p\ndescription: d\nrequirements:\n  hosts:\n    default:\n      cpu_cores: many\n",
     6, "requirements.hosts.default.cpu_cores", "write a plain number"),
    ("unknown-requirement-id", "name: p\ndescription: d\nrequirements:\n  hosts:\n    ref: OZ-XX-99\n",
     5, "unknown requirement id 'OZ-XX-99'", ""),
    ("bad-tls-version", "name: p\ndescription: d\nrequirements:\n  tls:\n    min_version: '1.1'\n",
     5, "requirements.tls.min_version", "use '1.2' or '1.3'"),
    ("missing-description", "name: p\nrequirements: {}\n", 1, "description", "add 'description'"),
    ("yaml-syntax", "name: p\ndescription: d\nrequirements:\n  tls: [1.2\n", 5, "YAML syntax error", "indentation"),
    ("duplicate-key", "name: p\ndescription: d\nname: q\n", 3, "duplicate key 'name'", "remove one"),
    ("extends-missing", "name: p\ndescription: d\nextends: nosuch\n", 3, "extends unknown profile 'nosuch'", ""),
    ("unknown-software", "name: p\ndescription: d\nrequirements:\n  hosts:\n    software:\n      nginxx: '1.18'\n",
     5, "unknown software 'nginxx'", ""),
    ("bad-version", "name: p\ndescription: d\nrequirements:\n  hosts:\n    software:\n      nginx: latest\n",
     6, "version 'latest' is not dotted numbers", ""),
    ("empty-file", "", 1, "the file is empty", "write a mapping"),
]

TARGET_CASES = [
    ("literal-password", "name: t\nbackups:\n  - kind: postgres\n    location: /b\n    database: postgresql://app:hunter2@db/app\n",
     5, "a URI holds a literal password", "${ENV_VAR}"),
    ("secret-key-literal", "name: t\nkubernetes:\n  namespace: x\n  token: abc123\n",
     4, "'token' holds a literal secret", "${ENV_VAR}"),
    ("unset-env", "name: t\nendpoints:\n  public: https://${GOLIVE_TEST_UNSET_HOST}/\n",
     3, "environment variable GOLIVE_TEST_UNSET_HOST is not set", "export GOLIVE_TEST_UNSET_HOST"),
    ("bad-connection", "name: t\nhosts:\n  - name: a\n    connection: telnet://x\n",
     4, "is not a testinfra URI", ""),
    ("bad-internal", "name: t\nendpoints:\n  internal: ['10.0.0.1']\n", 3, "is not host:port", ""),
    ("duplicate-hosts", "name: t\nhosts:\n  - {name: a, connection: 'local://'}\n  - {name: a, connection: 'local://'}\n",
     1, "host names must be unique", ""),
    ("http-not-plain", "name: t\nendpoints:\n  http: https://x/\n", 3, "must be a plain http:// URL", ""),
]


def _check(run, path: Path, line: int, message: str, fix: str) -> None:  # type: ignore[no-untyped-def]
    assert run.rc == 4, run.out
    assert "Traceback" not in run.out and "INTERNALERROR" not in run.out, run.out
    assert f"{path}:{line}:" in run.out or (line == 1 and str(path) in run.out), run.out
    assert message in run.out, run.out
    if fix:
        assert "fix:" in run.out and fix in run.out, run.out
    assert run.run_dir is None, "no report may be written for a configuration error"


@pytest.mark.parametrize("case", PROFILE_CASES, ids=[c[0] for c in PROFILE_CASES])
def test_malformed_profile_exits_4_with_file_line_and_fix(case, tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    _id, text, line, message, fix = case
    path = tmp_path / "bad-profile.yaml"
    path.write_text(text)
    _check(golive_run(f"--profile={path!s}", "--target", "lab"), path, line, message, fix)


@pytest.mark.parametrize("case", TARGET_CASES, ids=[c[0] for c in TARGET_CASES])
def test_malformed_target_exits_4_with_file_line_and_fix(case, tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    _id, text, line, message, fix = case
    path = tmp_path / "bad-target.yaml"
    path.write_text(text)
    run = golive_run("--profile", "poc", f"--target={path!s}")
    _check(run, path, line, message, fix)
    assert "hunter2" not in run.out and "abc123" not in run.out


def test_unknown_profile_name_lists_the_available_ones(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "no-such-tier")
    assert run.rc == 4 and "profile 'no-such-tier' not found" in run.out and "high-load" in run.out


def test_malformed_waiver_file(tmp_path, golive_run) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "waivers.yaml"
    path.write_text("waivers:\n  - check: hosts.cpu_cores[*]\n    justification: small box\n    approver: ops\n    expires: someday\n")
    run = golive_run("--profile", "poc", f"--waivers={path!s}")
    _check(run, path, 5, "waivers[0].expires", "")


def test_profile_list_shows_every_profile_with_its_description(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run("--profile", "list")
    assert run.rc == 0, run.out
    for name in ("poc", "medium-load", "high-load", "docusnap-single-server", "docusnap-distributed",
                 "alwrity-single-user", "alwrity-multi-user", "alwrity-enterprise", "strv-minimum",
                 "strv-large-dataset", "vocabulo"):
        assert f"  {name} " in run.out, name
    assert "Oz API Small Business / PoC tier" in run.out


def test_checks_without_profile_is_a_usage_error(golive_run) -> None:  # type: ignore[no-untyped-def]
    run = golive_run()
    assert run.rc == 4 and "--profile is required" in run.out and "Traceback" not in run.out
