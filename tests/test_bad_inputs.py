"""A corpus of bad configuration input (issue #14, item 6): each case must be refused when
the file is read -- a :class:`ConfigError` naming the file and the line, never another
exception -- so the command line exits 4 with ``file:line`` and no traceback.

Most cases go through the loaders in this process (fast); a handful run the real command
lines (``pytest --profile ...`` and ``golive check-config``) end to end.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PYCACHE, ROOT
from golive.profile import load_profile
from golive.target import load_target
from golive.waivers import Waivers
from golive.yamlpos import MAX_BYTES, ConfigError

ENV = {"GOLIVE_BAD_TOKEN": "t0ken-value"}


def P(body: str) -> str:
    """A profile whose ``requirements:`` body starts at line 4."""
    return "name: p\ndescription: d\nrequirements:\n" + body


def T(body: str) -> str:
    """A target whose body starts at line 2."""
    return "name: t\n" + body


def W(body: str) -> str:
    """A waiver file whose entries start at line 2."""
    return "waivers:\n" + body


INF = "inference:\n  url: https://api.example.com/v1/x\n"  # lines 2-3 of a target
BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9 if i else ["x"] * 9) + "]\n" for i in range(8))
MANY_ALIASES = "a: &a 1\nb: [" + ", ".join(["*a"] * 120) + "]\n"
DEEP = "x: " + "[" * 60 + "]" * 60 + "\n"

# (id, kind, text, line, fragment of the message)
CASES: list[tuple[str, str, str, int, str]] = [
    # ------------------------------------------------------------------ profiles: numbers
    ("p-apm-inf", "profile", P("  throughput:\n    apm_min: .inf\n"), 5, "not a finite number"),
    ("p-apm-neg-inf", "profile", P("  throughput:\n    apm_min: -.inf\n"), 5, "not a finite number"),
    ("p-apm-nan", "profile", P("  throughput:\n    apm_min: .nan\n"), 5, "not a finite number"),
    ("p-apm-huge", "profile", P("  throughput:\n    apm_min: 1000000000000\n"), 5, "apm_min"),
    ("p-apm-zero", "profile", P("  throughput:\n    apm_min: 0\n"), 5, "apm_min"),
    ("p-duration-0s", "profile", P("  throughput:\n    duration: 0 s\n"), 5, "is zero"),
    ("p-duration-0min", "profile", P("  throughput:\n    duration: 0 min\n"), 5, "is zero"),
    ("p-p95-0ms", "profile", P("  throughput:\n    p95: 0 ms\n"), 5, "is zero"),
    ("p-duration-no-unit", "profile", P("  throughput:\n    duration: 60\n"), 5, "has no unit"),
    ("p-duration-words", "profile", P("  throughput:\n    duration: fast\n"), 5, "cannot read 'fast'"),
    ("p-duration-negative", "profile", P("  throughput:\n    duration: -5 s\n"), 5, "cannot read '-5 s'"),
    ("p-duration-centuries", "profile", P("  throughput:\n    duration: 1000 w\n"), 5, "beyond any real"),
    ("p-duration-inf", "profile", P("  throughput:\n    capacity_step: .inf\n"), 5, "not a finite number"),
    ("p-error-rate-2", "profile", P("  throughput:\n    error_rate_max: 2\n"), 5, "error_rate_max"),
    ("p-error-rate-neg", "profile", P("  throughput:\n    error_rate_max: -0.1\n"), 5, "error_rate_max"),
    ("p-headroom-0", "profile", P("  throughput:\n    headroom_min: 0\n"), 5, "headroom_min"),
    ("p-regression-huge", "profile", P("  throughput:\n    regression_max_pct: 1000000\n"), 5, "regression_max_pct"),
    ("p-cores-1e29", "profile", P("  hosts:\n    default:\n      cpu_cores: 100000000000000000000000000000\n"),
     6, "cpu_cores"),
    ("p-cores-0", "profile", P("  hosts:\n    default:\n      cpu_cores: 0\n"), 6, "cpu_cores"),
    ("p-cores-negative", "profile", P("  hosts:\n    default:\n      cpu_cores: -4\n"), 6, "cpu_cores"),
    ("p-cores-text", "profile", P("  hosts:\n    default:\n      cpu_cores: many\n"), 6, "cpu_cores"),
    ("p-cores-inf", "profile", P("  hosts:\n    default:\n      cpu_cores: .inf\n"), 6, "not a finite number"),
    ("p-gpus-million", "profile", P("  hosts:\n    default:\n      gpu:\n        count: 1000000\n"), 7, "count"),
    ("p-memory-0", "profile", P("  hosts:\n    default:\n      memory: 0 GiB\n"), 6, "is zero"),
    ("p-memory-absurd", "profile", P("  hosts:\n    default:\n      memory: 99999999999 TiB\n"), 6, "beyond any real"),
    ("p-memory-no-unit", "profile", P("  hosts:\n    default:\n      memory: 16\n"), 6, "has no unit"),
    ("p-nic-0", "profile", P("  hosts:\n    default:\n      nic_speed: 0 Mbps\n"), 6, "is zero"),
    ("p-disk-unit", "profile", P("  hosts:\n    default:\n      disk:\n        size: 50 parsecs\n"), 7, "unknown size unit"),
    ("p-count-huge", "profile", P("  hosts:\n    count:\n      all:\n        min: 10000000\n"), 7, "min"),
    ("p-tolerance-2", "profile", P("  hosts:\n    memory_tolerance: 2\n"), 5, "memory_tolerance"),
    ("p-layout-key", "profile", P("  hosts:\n    layouts:\n      two: {}\n"), 6, "layouts"),
    ("p-software-latest", "profile", P("  hosts:\n    software:\n      nginx: latest\n"), 6, "not dotted numbers"),
    ("p-software-unknown", "profile", P("  hosts:\n    software:\n      nginxx: '1.18'\n"), 5, "unknown software"),
    ("p-cert-days", "profile", P("  tls:\n    cert_min_days_left: 100000\n"), 5, "cert_min_days_left"),
    ("p-rsa-bits", "profile", P("  tls:\n    min_rsa_bits: 1\n"), 5, "min_rsa_bits"),
    ("p-tls-version", "profile", P("  tls:\n    min_version: '1.0'\n"), 5, "min_version"),
    ("p-health-status", "profile", P("  http:\n    health_status: 999\n"), 5, "health_status"),
    ("p-hsts-0", "profile", P("  http:\n    hsts_min_age: 0 s\n"), 5, "is zero"),
    ("p-burst-0", "profile", P("  auth:\n    rate_limit:\n      burst: 0\n"), 6, "burst"),
    ("p-burst-huge", "profile", P("  auth:\n    rate_limit:\n      burst: 1000000000\n"), 6, "burst"),
    ("p-ha-rate", "profile", P("  ha:\n    rate: 100000\n"), 5, "rate"),
    ("p-ha-requests", "profile", P("  ha:\n    max_requests: 5\n"), 5, "max_requests"),
    ("p-ha-failover-0", "profile", P("  ha:\n    failover_max: 0 s\n"), 5, "is zero"),
    ("p-k8s-zones", "profile", P("  kubernetes:\n    zones_min: 0\n"), 5, "zones_min"),
    ("p-retention-0", "profile", P("  backups:\n    retention_full_min: 0\n"), 5, "retention_full_min"),
    ("p-rto-nan", "profile", P("  backups:\n    rto: .nan\n"), 5, "not a finite number"),
    # ------------------------------------------------------------------ profiles: structure
    ("p-unknown-key", "profile", P("  tls:\n    min_versoin: '1.2'\n"), 5, "unknown key"),
    ("p-unknown-ref", "profile", P("  hosts:\n    ref: OZ-XX-99\n"), 5, "unknown requirement id"),
    ("p-duplicate-key", "profile", "name: p\ndescription: d\nname: q\n", 3, "duplicate key"),
    ("p-tab-indent", "profile", "name: p\ndescription: d\nrequirements:\n\ttls: {}\n", 4, "YAML syntax error"),
    ("p-unclosed-flow", "profile", P("  tls: [1.2\n"), 5, "YAML syntax error"),
    ("p-date-in-text", "profile", "name: p\ndescription: 2027-02-30\n", 2, "not a valid date"),
    ("p-top-level-list", "profile", "- name: p\n", 1, "must be a mapping"),
    ("p-empty", "profile", "", 1, "the file is empty"),
    ("p-alias-bomb", "profile", BOMB, 6, "expands to more than"),
    ("p-many-aliases", "profile", MANY_ALIASES, 2, "more than 100 YAML aliases"),
    ("p-deep", "profile", DEEP, 1, "nesting deeper than"),
    # ------------------------------------------------------------------ targets: URLs and ports
    ("t-public-no-host", "target", T("endpoints:\n  public: https://\n"), 3, "has no host"),
    ("t-public-empty-host", "target", T("endpoints:\n  public: https:///health\n"), 3, "has no host"),
    ("t-public-port-big", "target", T("endpoints:\n  public: https://api.example.com:70000/\n"), 3, "invalid port"),
    ("t-public-port-0", "target", T("endpoints:\n  public: https://api.example.com:0/\n"), 3, "port 0"),
    ("t-public-ftp", "target", T("endpoints:\n  public: ftp://api.example.com/\n"), 3, "not an https/http URL"),
    ("t-health-no-host", "target", T("endpoints:\n  health: http://:8080/\n"), 3, "has no host"),
    ("t-http-no-host", "target", T("endpoints:\n  http: http://\n"), 3, "has no host"),
    ("t-http-is-https", "target", T("endpoints:\n  http: https://x/\n"), 3, "must be a plain http:// URL"),
    ("t-tls-no-host", "target", T("endpoints:\n  tls: ['https://']\n"), 3, "has no host"),
    ("t-tls-port-big", "target", T("endpoints:\n  tls: ['db.example.com:99999']\n"), 3, "is not host:port"),
    ("t-tls-port-0", "target", T("endpoints:\n  tls: ['db.example.com:0']\n"), 3, "is not host:port"),
    ("t-internal-port-big", "target", T("endpoints:\n  internal: ['10.0.0.1:65536']\n"), 3, "is not host:port"),
    ("t-internal-no-port", "target", T("endpoints:\n  internal: ['10.0.0.1']\n"), 3, "is not host:port"),
    ("t-public-ports-text", "target", T("endpoints:\n  public_ports: [nohost]\n"), 3, "is not host:port"),
    ("t-service-port-big", "target",
     T("hosts:\n  - {name: a, connection: 'local://'}\nservices:\n  - {name: db, host: a, port: 70000}\n"), 5, "port"),
    ("t-ssh-no-host", "target", T("hosts:\n  - name: a\n    connection: ssh://\n"), 4, "has no host"),
    ("t-ssh-user-no-host", "target", T("hosts:\n  - name: a\n    connection: ssh://root@\n"), 4, "has no host"),
    ("t-ssh-port-big", "target", T("hosts:\n  - name: a\n    connection: ssh://root@db:99999\n"), 4, "invalid port"),
    ("t-paramiko-no-host", "target", T("hosts:\n  - name: a\n    connection: paramiko://\n"), 4, "has no host"),
    ("t-telnet", "target", T("hosts:\n  - name: a\n    connection: telnet://x\n"), 4, "not a testinfra URI"),
    ("t-inference-no-host", "target", T("inference:\n  url: https://\n"), 3, "has no host"),
    ("t-ha-entry-no-host", "target", T("ha:\n  entrypoint: https://\n"), 3, "has no host"),
    ("t-ha-instance-no-host", "target",
     T("ha:\n  entrypoint: https://lb.example.com/\n  instances:\n    - name: a\n      url: http://:1/\n"), 6,
     "has no host"),
    ("t-backup-ssh-no-host", "target", T("backups:\n  - kind: files\n    location: ssh:///var/backups\n"), 4,
     "has no host"),
    # ------------------------------------------------------------------ targets: literal credentials
    ("t-url-access-token", "target", T("inference:\n  url: https://api.example.com/v1?access_token=abc123\n"), 3,
     "literal credential in its query ('access_token=')"),
    ("t-url-api-key", "target", T("endpoints:\n  public: https://api.example.com/?x=1&api_key=abc123\n"), 3,
     "literal credential in its query ('api_key=')"),
    ("t-url-sig", "target", T("endpoints:\n  health: https://api.example.com/h?sig=abcdef\n"), 3,
     "literal credential in its query ('sig=')"),
    ("t-url-token-partial-env", "target",
     T("inference:\n  url: https://api.example.com/v1?token=x${GOLIVE_BAD_TOKEN}\n"), 3, "literal credential"),
    ("t-header-authorization", "target", T(INF + "  headers:\n    Authorization: Bearer abc123\n"), 5,
     "'Authorization' holds a literal secret"),
    ("t-header-x-api-key", "target", T(INF + "  headers:\n    X-API-Key: abc123\n"), 5,
     "'X-API-Key' holds a literal secret"),
    ("t-header-api-key", "target", T(INF + "  headers:\n    Api-Key: abc123\n"), 5, "'Api-Key' holds a literal"),
    ("t-header-bearer-value", "target", T(INF + "  headers:\n    X-Upstream: Bearer abc123\n"), 5,
     "'X-Upstream' holds a literal credential"),
    ("t-header-cookie", "target", T(INF + "  headers:\n    Cookie: session=abc123\n"), 5, "'Cookie' holds a literal"),
    ("t-auth-token", "target", T("auth:\n  token: abc123\n"), 3, "'token' holds a literal secret"),
    ("t-k8s-token", "target", T("kubernetes:\n  namespace: x\n  token: abc123\n"), 4, "'token' holds a literal"),
    ("t-db-password", "target",
     T("backups:\n  - kind: postgres\n    location: /b\n    database: postgresql://app:hunter2@db/app\n"), 5,
     "a URI holds a literal password"),
    ("t-db-password-slash", "target",
     T("backups:\n  - kind: postgres\n    location: /b\n    database: postgresql://app:hun/ter2@db/app\n"), 5,
     "literal password"),
    ("t-decrypt-passphrase", "target",
     T("backups:\n  - kind: files\n    location: /b\n    decrypt_command: openssl enc -d -pass pass:hunter2\n"), 5,
     "literal passphrase"),
    # ------------------------------------------------------------------ targets: numbers, names, structure
    ("t-host-timeout-0", "target", T("hosts:\n  - name: a\n    connection: local://\n    timeout_s: 0\n"), 5,
     "timeout_s"),
    ("t-host-timeout-inf", "target", T("hosts:\n  - name: a\n    connection: local://\n    timeout_s: .inf\n"), 5,
     "not a finite number"),
    ("t-host-timeout-huge", "target", T("hosts:\n  - name: a\n    connection: local://\n    timeout_s: 100000\n"), 5,
     "timeout_s"),
    ("t-ha-timeout-nan", "target", T("ha:\n  entrypoint: https://lb.example.com/\n  timeout_s: .nan\n"), 4,
     "not a finite number"),
    ("t-inference-connections", "target", T(INF + "  connections: 100000\n"), 4, "connections"),
    ("t-lab-cost-negative", "target", T("lab:\n  cost_ms: -1\n"), 3, "cost_ms"),
    ("t-host-name-space", "target", T("hosts:\n  - name: a b\n    connection: local://\n"), 3, "name"),
    ("t-duplicate-hosts", "target",
     T("hosts:\n  - {name: a, connection: 'local://'}\n  - {name: a, connection: 'local://'}\n"), 1, "unique"),
    ("t-service-unknown-host", "target",
     T("hosts:\n  - {name: a, connection: 'local://'}\nservices:\n  - {name: db, host: b, port: 5432}\n"), 1,
     "not in hosts"),
    ("t-ha-signal-injection", "target",
     T("ha:\n  entrypoint: https://lb.example.com/\n  instances:\n    - name: a\n      stop:\n"
       "        pidfile: /run/a.pid\n        signal: 'KILL; rm -rf /'\n"), 8, "signal"),
    ("t-ha-two-kinds", "target",
     T("ha:\n  entrypoint: https://lb.example.com/\n  instances:\n    - name: a\n      stop:\n"
       "        pidfile: /run/a.pid\n        systemd: a.service\n"), 6, "exactly one of"),
    ("t-environment", "target", T("environment: production\n"), 2, "environment"),
    ("t-unset-env", "target", T("endpoints:\n  public: https://${GOLIVE_TEST_UNSET_HOST}/\n"), 3, "is not set"),
    ("t-date-in-text", "target", T("description: 2027-02-30\n"), 2, "not a valid date"),
    ("t-alias-bomb", "target", BOMB, 6, "expands to more than"),
    ("t-many-aliases", "target", MANY_ALIASES, 2, "more than 100 YAML aliases"),
    ("t-deep", "target", DEEP, 1, "nesting deeper than"),
    ("t-not-mapping", "target", "just text\n", 1, "must be a mapping"),
    # ------------------------------------------------------------------ waivers
    ("w-feb-30", "waivers", W("  - check: hosts.cpu_cores\n    justification: why not\n    approver: ops\n"
                              "    expires: 2027-02-30\n"), 5, "not a valid date"),
    ("w-feb-29-not-leap", "waivers", W("  - check: hosts.cpu_cores\n    justification: why not\n    approver: ops\n"
                                       "    expires: 2027-02-29\n"), 5, "not a valid date"),
    ("w-month-13", "waivers", W("  - check: hosts.cpu_cores\n    justification: why not\n    approver: ops\n"
                                "    expires: 2027-13-01\n"), 5, "not a valid date"),
    ("w-words", "waivers", W("  - check: hosts.cpu_cores\n    justification: why not\n    approver: ops\n"
                             "    expires: tomorrow\n"), 5, "expires"),
    ("w-no-approver", "waivers", W("  - check: hosts.cpu_cores\n    justification: why not\n    expires: 2027-01-01\n"), 2,
     "approver"),
    ("w-no-check", "waivers", W("  - justification: why not\n    approver: ops\n    expires: 2027-01-01\n"), 2,
     "names 'check'"),
    ("w-short-justification", "waivers", W("  - check: hosts.cpu_cores\n    justification: x\n    approver: ops\n"
                                           "    expires: 2027-01-01\n"), 3, "justification"),
    ("w-unknown-key", "waivers", W("  - check: hosts.cpu_cores\n    justification: why not\n    approver: ops\n"
                                   "    expires: 2027-01-01\n    owner: me\n"), 6, "unknown key"),
    ("w-top-level-list", "waivers", "- check: hosts.cpu_cores\n", 1, "a waiver file is a mapping"),
    ("w-alias-bomb", "waivers", BOMB, 6, "expands to more than"),
]

LOADERS: dict[str, Callable[[Path], object]] = {
    "profile": lambda p: load_profile(str(p)),
    "target": lambda p: load_target(str(p), env=ENV),
    "waivers": lambda p: Waivers.load(p),
}


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES), "case ids are unique"


@pytest.mark.parametrize(("kind", "text", "line", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_config_error_with_file_and_line(
        tmp_path: Path, kind: str, text: str, line: int, fragment: str) -> None:
    path = tmp_path / f"bad-{kind}.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:  # any other exception would be a traceback, exit 3
        LOADERS[kind](path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert fragment in msg, msg
    assert "hunter2" not in msg and "abc123" not in msg and "t0ken-value" not in msg


def test_a_huge_document_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: t\nnotes:\n" + "  - padding padding padding padding\n" * (MAX_BYTES // 30))
    for kind in ("profile", "target", "waivers"):
        with pytest.raises(ConfigError) as info:
            LOADERS[kind](path)
        assert "is larger than" in str(info.value) and str(info.value).startswith(f"{path}:")


# ----------------------------------------------------------------------------- end to end: exit 4, no traceback

E2E = ["p-apm-inf", "p-duration-0s", "p-cores-1e29", "p-alias-bomb", "t-public-no-host", "t-ssh-no-host",
       "t-url-access-token", "t-header-x-api-key", "w-feb-30"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


@pytest.mark.parametrize("case_id", E2E)
def test_command_lines_exit_4_with_file_line_and_no_traceback(tmp_path: Path, case_id: str) -> None:
    _, kind, text, line, fragment = next(c for c in CASES if c[0] == case_id)
    path = tmp_path / f"bad-{kind}.yaml"
    path.write_text(text)
    if kind == "profile":
        args = [f"--profile={path}", "--target=lab"]
    elif kind == "target":
        args = ["--profile=poc", f"--target={path}"]
    else:
        args = ["--profile=poc", "--target=lab", f"--waivers={path}"]
    runs = [_cli("-m", "pytest", "-p", "no:cacheprovider", f"--report-dir={tmp_path / 'r'}", *args),
            _cli("-m", "golive.cli", "check-config", *args)]
    for proc in runs:
        out = proc.stdout + proc.stderr
        assert proc.returncode == 4, out[-3000:]
        assert f"{path}:{line}:" in out and fragment in out, out[-3000:]
        assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    assert not (tmp_path / "r").exists(), "no report for a configuration error"
