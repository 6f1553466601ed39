"""Redaction by value, not by key name (issue #14, item 4).

Every value a target resolves from ``${ENV}`` or a secret ``*_file`` is registered as a
secret and masked wherever it would be written -- a URL query, userinfo, a header under
any name, a plain text field, a library's error message -- in report.json, report.html,
junit.xml and the terminal.  One canary per place a secret can be given; a PostgreSQL
password holding '/' must not leak even a fragment through a URI parse error.
"""
from __future__ import annotations

import urllib.parse
from pathlib import Path

from conftest import write_target
from golive.redact import redact, register_secret
from lab.procs import free_port

# one canary per place; '/' and '+' in some, as passwords have them
CANARIES = {
    "QUERY": "cnry-query-4b1d",            # endpoints.public ?access_token=${...}
    "USERINFO": "cnry-userinfo-77e2",      # endpoints.health https://user:${...}@host
    "INFER_URL": "cnry-infer-url-9c0f",    # inference.url ?access_token=${...} (the case)
    "HEADER": "cnry-header-3a5e",          # inference.headers X-Trace: ${...} (a name not like a secret)
    "AUTH_TOKEN": "cnry-auth-token-5d21",  # auth.token
    "PG": "pgsecret/zz+qx12/wy34",          # backups[].database postgresql://app:${...}@ (holds '/'; pieces
                                            # not hex: a sha256 in manifest.json once held "cd34")
    "HA": "cnry-ha-key-60f3",              # ha.entrypoint ?key=${...}
    "DESCRIPTION": "cnry-descr-8e8e",      # description: a plain text field
}
FILE_CANARIES = {
    "token_file": "cnry-token-file-1f1f",      # auth.token_file
    "password_file": "cnry-pw-file-2e2e",      # backups[].password_file
}


def _fragments(secret: str) -> list[str]:
    """The secret and the pieces a parser could cut it into (at '/', '+', ':')."""
    pieces = [p for sep in "/+:" for p in secret.split(sep) if len(p) >= 4 and p != secret and "cnry" not in p]
    return [secret, urllib.parse.quote(secret, safe=""), *pieces]


def test_register_secret_masks_the_url_encoded_form_too() -> None:
    register_secret("unit/canary two")
    assert redact("GET https://h/?t=unit%2Fcanary%20two") == "GET https://h/?t=***"
    assert redact("t=unit%2Fcanary+two and unit/canary two") == "t=*** and ***"


def test_no_canary_reaches_any_output(golive_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    closed = free_port()  # nothing listens: every probe errors, and errors print their subject
    token_file = tmp_path / "token"
    token_file.write_text(FILE_CANARIES["token_file"] + "\n")
    pw_file = tmp_path / "pw"
    pw_file.write_text(FILE_CANARIES["password_file"] + "\n")
    base = f"127.0.0.1:{closed}"
    target = write_target(tmp_path, f"""name: canaries
description: "deployed by ${{GOLIVE_C_DESCRIPTION}}"
hosts:
  - name: local
    connection: local://
    roles: [inference]
endpoints:
  public: https://{base}/?access_token=${{GOLIVE_C_QUERY}}
  health: https://probe:${{GOLIVE_C_USERINFO}}@{base}/health
  http: http://{base}/
inference:
  url: https://{base}/v1/analyze?access_token=${{GOLIVE_C_INFER_URL}}
  headers: {{X-Trace: "${{GOLIVE_C_HEADER}}"}}
auth:
  token: ${{GOLIVE_C_AUTH_TOKEN}}
  protected_paths: [/v1/analyze]
ha:
  entrypoint: https://{base}/?key=${{GOLIVE_C_HA}}
  instances:
    - name: a
      url: http://{base}/health
backups:
  - kind: postgres
    location: {tmp_path}/no-backups
    database: postgresql://app:${{GOLIVE_C_PG}}@{base}/app
  - kind: postgres
    location: {tmp_path}/no-backups
    database: postgresql://app@{base}/app
    password_file: {pw_file}
""")
    # auth.token and token_file are alternatives: a second target file gives the file
    target2 = write_target(tmp_path, f"""name: canaries-file
endpoints:
  public: https://{base}/
auth:
  token_file: {token_file}
  protected_paths: [/v1/analyze]
""", name="target2.yaml")
    profile = tmp_path / "canary.yaml"
    profile.write_text("name: canary\ndescription: every family that prints URLs\nrequirements:\n"
                       "  ports: {}\n  http: {}\n  auth: {}\n  ha: {}\n  backups: {}\n"
                       "  throughput: {apm_min: 6, duration: 2 s}\n")
    env = {f"GOLIVE_C_{k}": v for k, v in CANARIES.items()}
    runs = [golive_run(f"--profile={profile}", f"--target={target}", env=env, timeout=600),
            golive_run(f"--profile={profile}", f"--target={target2}", "-m", "auth", env=env, timeout=300)]
    for run in runs:
        assert run.run_dir is not None, run.out[-3000:]
        files = {p.name: p.read_text() for p in run.run_dir.iterdir()}
        assert {"report.json", "report.html", "junit.xml"} <= set(files)
        outputs = {"terminal": run.out, **files}
        for name, secret in [*CANARIES.items(), *FILE_CANARIES.items()]:
            for frag in _fragments(secret):
                for where, text in outputs.items():
                    assert frag not in text, f"canary {name} ({frag!r}) in {where}"
    # the places were really written out, masked
    doc = runs[0].report
    assert doc["target"]["description"] == "deployed by ***"
    shown = str(doc["results"])
    assert "access_token=***" in shown


def test_a_postgres_password_with_a_slash_is_read_whole_and_never_quoted() -> None:
    from checks.backups.postgres import connection
    from checks.backups.spec import BackupSpec

    pw = "pgpart1/pgpart2+x"
    conn = connection(BackupSpec(kind="postgres", location="/b", database=f"postgresql://app:{pw}@db.internal:5432/app"))
    assert conn.password == pw and conn.dbname == "app" and pw not in conn.uri and "pgpart" not in conn.label
    try:
        connection(BackupSpec(kind="postgres", location="/b", database=f"postgresql://app:{pw}@db.internal:99999/app"))
    except ValueError as exc:
        assert "pgpart1" not in str(exc) and "pgpart2" not in str(exc), exc
    else:
        raise AssertionError("a port above 65535 must be refused")
