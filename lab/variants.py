"""Every lab variant in one place: the compliant reference and its deliberately broken twins.

A variant is a :class:`Knobs` value (what to change in the real configuration) attached to
a :class:`Variant` enum member.  Adding a variant is one line here; :mod:`lab.run`,
:mod:`lab.nginx` and friends only read knobs.  Each broken variant changes exactly one
thing, so the check that must catch it is unambiguous.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

#: TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all AEAD).
MODERN_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
MODERN_PROTOCOLS = "TLSv1.2 TLSv1.3"
# OpenSSL 3 refuses TLS 1.0/1.1 at the default security level: SECLEVEL=0 is needed.
LEGACY_PROTOCOLS = "TLSv1 TLSv1.1 TLSv1.2"
LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"
# Modern suites plus a NULL-encryption and an anonymous (no certificate) suite.
WEAK_CIPHER_LIST = f"{MODERN_CIPHERS}:NULL-SHA256:AECDH-AES128-SHA:@SECLEVEL=0"

#: api.golive.test never resolves (.test): it is the name the pinning self-test validates the lab under.
PINNED_NAME = "api.golive.test"
LAB_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "127.0.0.2", PINNED_NAME)
ALLOWED_ORIGIN = "https://app.golive.test"

HttpMode = Literal["redirect", "plain", "redirect_to_http"]
CorsMode = Literal["allowlist", "wildcard_credentials", "reflect", "null_origin", "regex"]
ApiAuthMode = Literal["none", "bearer"]
BackupMode = Literal["job", "stale", "corrupt"]
InferenceMode = Literal["ok", "error-body", "fail-5pct"]
PostgresMode = Literal["", "compliant", "stale", "truncated", "empty", "plaintext", "no_offsite",
                       "archive_failing", "config_unsaved", "single_full"]
DatastoresMode = Literal["", "compliant", "superuser_role", "missing_table", "migrations_behind", "no_replica",
                         "plaintext_app", "redis_noauth", "redis_wildcard", "sqlite_world_readable"]


@dataclass(frozen=True)
class Knobs:
    """What one variant sets.  Defaults are the compliant lab.

    - ``internal_bind``: address the internal API binds (0.0.0.0 = exposed).
    - ``instances``: inference instances behind nginx (``start_lab(instances=)`` overrides).
    - ``tls_protocols`` / ``tls_ciphers``: nginx ``ssl_protocols`` / ``ssl_ciphers``.
    - ``cert_hostnames``: the leaf's SAN; ``cert_days``: (not_before, not_after) in days
      from now, negative = past.
    - ``hsts``: send Strict-Transport-Security.
    - ``http_mode``: plain-HTTP listener: ``redirect`` (301 to https), ``plain`` (serves the
      content), ``redirect_to_http`` (301 to an http:// URL that serves the content).
    - ``cors``: ``allowlist`` (only the allowed origin), ``wildcard_credentials``
      (``*`` with credentials), ``reflect`` (echo any Origin, with credentials),
      ``null_origin`` (the allowed origin and ``null``, with credentials), ``regex`` (a
      regular expression with unescaped dots, no end anchor, any subdomain and http or https).
    - ``cors_vary``: send ``Vary: Origin``; ``cors_preflight``: ``fixed`` Allow-Methods and
      Allow-Headers lists, or ``reflect`` whatever the preflight asks for.
    - ``backups``: ``job`` (fresh backup at start, then periodic), ``stale`` (newest is 3
      days old, no job), ``corrupt`` (newest is truncated, no job).
    - ``cost_factor``: multiplies the inference cost (slow inference).
    - ``inference_mode``: ``ok``, ``error-body`` (200 with status error), ``fail-5pct``.
    - ``postgres``: ``""`` (no PostgreSQL) or a :mod:`lab.postgres` mode: a real cluster with
      encrypted dumps, WAL archiving and an off-site copy (the target's backups then describe it).
    """

    description: str
    internal_bind: str = "127.0.0.1"
    instances: int = 2
    tls_protocols: str = MODERN_PROTOCOLS
    tls_ciphers: str = MODERN_CIPHERS
    cert_hostnames: tuple[str, ...] = LAB_HOSTNAMES
    cert_days: tuple[float, float] = (-1.0, 364.0)  # 365-day life span (Mozilla: < 366)
    hsts: bool = True
    hsts_value: str = ""  # "" = lab.nginx.HSTS_VALUE
    http_mode: HttpMode = "redirect"
    cors: CorsMode = "allowlist"
    cors_vary: bool = True
    cors_preflight: Literal["fixed", "reflect"] = "fixed"
    backups: BackupMode = "job"
    cost_factor: float = 1.0
    inference_mode: InferenceMode = "ok"
    postgres: PostgresMode = ""
    # ``datastores``: "" (none) or a lab.datastores mode: a PostgreSQL primary with a streaming
    # replica, a Redis Cluster node and an SQLite file (the target's ``datastores:`` describes them).
    datastores: DatastoresMode = ""
    # HA (see lab.haproxy, lab.supervisor): ``lb_health_check`` = haproxy checks /health and
    # redispatches; ``auto_restart`` = a stopped instance is restarted after 2 s (Restart=always).
    lb_health_check: bool = True
    auto_restart: bool = True
    # Edge auth (see lab.nginx): ``api_auth`` "bearer" = nginx refuses /v1/ without the
    # lab token (401); ``rate_limit`` = nginx limit_req rate on /v1/ ("5r/s"; "" = none);
    # ``declare_auth`` = the target declares protected paths, token file and rate limit.
    api_auth: ApiAuthMode = "none"
    rate_limit: str = ""
    rate_limit_burst: int = 5
    declare_auth: bool = False
    # ``health_body``: nginx answers /health itself, HTTP 200 with this body, instead of
    # proxying to the instances ("" = proxy: the instances say {"status": "ok"}).
    health_body: str = ""
    # ``declare_ca``: the target names the lab CA in endpoints.ca_file (False: the chain is
    # untrusted for golive, as a private CA is for every client that was not given it).
    declare_ca: bool = True
    # ``dhparam_bits``: finite-field DH group for DHE suites (nginx ssl_dhparam; 0 = none).
    dhparam_bits: int = 0


class Variant(enum.Enum):
    """The lab variants; the member name in lower case is the variant's name on the CLI."""

    COMPLIANT = Knobs("the reference deployment: every check passes")
    EXPOSED_INTERNAL = Knobs("internal API bound to 0.0.0.0 instead of 127.0.0.1", internal_bind="0.0.0.0")
    SINGLE_INSTANCE = Knobs("one inference instance behind nginx (no redundancy)", instances=1)
    LEGACY_TLS = Knobs("TLS 1.0 and 1.1 enabled with weak ciphers (SECLEVEL=0)",
                       tls_protocols=LEGACY_PROTOCOLS, tls_ciphers=LEGACY_CIPHERS)
    EXPIRED_CERT = Knobs("server certificate expired 30 days ago", cert_days=(-395.0, -30.0))
    WRONG_HOSTNAME = Knobs("certificate issued for other.golive.test only",
                           cert_hostnames=("other.golive.test",))
    UNTRUSTED_CERT = Knobs("certificate from a private CA the clients (and the target) do not know", declare_ca=False)
    SHORT_CERT = Knobs("server certificate expires in 5 days", cert_days=(-1.0, 5.0))
    NO_HSTS = Knobs("no Strict-Transport-Security header", hsts=False)
    HSTS_INVALID = Knobs("HSTS header with includeSubDomains given twice (RFC 6797: browsers ignore it)",
                         hsts_value="max-age=31536000; includeSubDomains; includeSubDomains")
    PLAIN_HTTP = Knobs("HTTP listener serves content (200) instead of redirecting", http_mode="plain")
    REDIRECT_TO_HTTP = Knobs("HTTP listener redirects to another http:// URL", http_mode="redirect_to_http")
    CORS_WILDCARD_CREDENTIALS = Knobs("CORS: Allow-Origin * together with Allow-Credentials true",
                                      cors="wildcard_credentials")
    CORS_REFLECT = Knobs("CORS: any Origin reflected, with credentials", cors="reflect")
    CORS_NULL_ORIGIN = Knobs("CORS: Origin null allowed (with credentials) besides the allowed origin", cors="null_origin")
    CORS_REGEX = Knobs("CORS: allowlist as an unanchored regex with unescaped dots (any subdomain, http too)",
                       cors="regex")
    CORS_NO_VARY = Knobs("CORS: the allowed origin is echoed without Vary: Origin", cors_vary=False)
    CORS_REFLECT_PREFLIGHT = Knobs("CORS: the preflight allows whatever method and headers it is asked for",
                                   cors_preflight="reflect")
    WEAK_DH = Knobs("TLS 1.2 also accepts DHE with a 1024-bit group (SECLEVEL=0)",
                    tls_ciphers=f"{MODERN_CIPHERS}:DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", dhparam_bits=1024)
    WEAK_CIPHERS = Knobs("TLS 1.2 also accepts a NULL-encryption and an anonymous suite", tls_ciphers=WEAK_CIPHER_LIST)
    API_AUTH = Knobs("bearer token required on /v1/ and /v1/ rate-limited (5 r/s, burst 5)", api_auth="bearer", rate_limit="5r/s", declare_auth=True)
    NO_AUTH = Knobs("auth declared in the target, but /v1/ served anonymously and without rate limit", declare_auth=True)
    DEGRADED_HEALTH = Knobs("health answers HTTP 200 with {\"status\": \"degraded\"} (database unreachable)",
                            health_body='{"status": "degraded", "checks": {"database": "unreachable"}}')
    STALE_BACKUP = Knobs("newest backup is 3 days old (name and mtime); no backup job", backups="stale")
    CORRUPT_BACKUP = Knobs("newest backup is truncated; no backup job", backups="corrupt")
    SLOW_INFERENCE = Knobs("inference 20x slower than the reference (capacity / 20)", cost_factor=20.0)
    ERROR_BODY = Knobs("inference answers 200 with {\"status\": \"error\"}", inference_mode="error-body")
    FAIL_5PCT = Knobs("inference answers 500 to every 20th analysis (5 %)", inference_mode="fail-5pct")
    POSTGRES = Knobs("plus PostgreSQL: encrypted dumps, WAL archive, off-site copy (backups family)", postgres="compliant")
    PG_STALE_BACKUP = Knobs("PostgreSQL: newest full dump is 8 days old", postgres="stale")
    PG_TRUNCATED_DUMP = Knobs("PostgreSQL: newest dump cut off half-way (then encrypted)", postgres="truncated")
    PG_EMPTY_DUMP = Knobs("PostgreSQL: newest dump is empty (then encrypted)", postgres="empty")
    PG_PLAINTEXT_BACKUP = Knobs("PostgreSQL: dumps stored unencrypted", postgres="plaintext")
    PG_NO_OFFSITE = Knobs("PostgreSQL: newest dump never copied off-site", postgres="no_offsite")
    PG_ARCHIVE_FAILING = Knobs("PostgreSQL: archive_command fails (no WAL archived)", postgres="archive_failing")
    PG_CONFIG_UNSAVED = Knobs("PostgreSQL: app config changed after its newest backup", postgres="config_unsaved")
    PG_SINGLE_FULL = Knobs("PostgreSQL: only one full dump kept", postgres="single_full")
    DATASTORES = Knobs("plus data stores: PostgreSQL primary + streaming replica, Redis Cluster, SQLite "
                       "(datastores family)", datastores="compliant")
    DS_SUPERUSER_ROLE = Knobs("data stores: the app's PostgreSQL role is SUPERUSER", datastores="superuser_role")
    DS_MISSING_TABLE = Knobs("data stores: an expected table (analyses) is missing", datastores="missing_table")
    DS_MIGRATIONS_BEHIND = Knobs("data stores: alembic_version one revision behind the release",
                                 datastores="migrations_behind")
    DS_NO_REPLICA = Knobs("data stores: PostgreSQL without a streaming replica", datastores="no_replica")
    DS_PLAINTEXT_APP = Knobs("data stores: the app connects to PostgreSQL without TLS", datastores="plaintext_app")
    DS_REDIS_NOAUTH = Knobs("data stores: Redis answers without a password", datastores="redis_noauth")
    DS_REDIS_WILDCARD = Knobs("data stores: Redis bound to 0.0.0.0 (password kept)", datastores="redis_wildcard")
    DS_SQLITE_WORLD_READABLE = Knobs("data stores: the SQLite file is mode 0644", datastores="sqlite_world_readable")
    NO_LB_HEALTH_CHECK = Knobs("haproxy without health checks or redispatch: a stopped instance stays in rotation", lb_health_check=False)
    NO_AUTO_RESTART = Knobs("a stopped inference instance stays down until started (no restart policy)", auto_restart=False)

    @property
    def key(self) -> str:
        """The variant's name as used by ``start_lab`` and ``--variant``."""
        return self.name.lower()

    @property
    def knobs(self) -> Knobs:
        return self.value

    @classmethod
    def parse(cls, name: str | Variant) -> Variant:
        """Look a variant up by name (``legacy_tls`` or ``legacy-tls``); clear error if unknown."""
        if isinstance(name, Variant):
            return name
        key = name.strip().lower().replace("-", "_")
        for member in cls:
            if member.key == key:
                return member
        known = ", ".join(m.key for m in cls)
        raise ValueError(f"unknown lab variant {name!r}; known variants: {known}")


def describe_variants() -> list[tuple[str, str]]:
    """``(name, one-line description)`` for every variant, in definition order."""
    return [(v.key, v.knobs.description) for v in Variant]
