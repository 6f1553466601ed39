"""Redis as deployed: reachable with the target's credentials, refusing unauthenticated
clients, listening only where declared, persisting as the tier says, and in cluster mode
with every slot covered (or standalone) -- over the Redis protocol with redis-py.

Only read commands are sent (``PING``, ``INFO``, ``CONFIG GET``, ``CLUSTER INFO``).  The
password comes from the target (``${ENV}`` or ``password_file``), is registered for
redaction and is only handed to redis-py.  Every socket operation is bounded by
``timeout_s``.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from checks.connection import redact
from golive.model import Evidence, Measurement
from golive.redact import register_secret

CLUSTER_SLOTS = 16384


@dataclasses.dataclass(frozen=True)
class RedisConn:
    host: str
    port: int
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False
    timeout_s: float = 5.0

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{self.username + '@' if self.username else ''}{host}:{self.port}"


def redis_conn(address: str, *, username: str | None = None, password: str | None = None,
               password_file: str | None = None, tls: bool = False, timeout_s: float = 5.0) -> RedisConn:
    """A :class:`RedisConn` for ``host:port``; ValueError when the file cannot be read."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if password_file:
        try:
            password = Path(password_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read password_file {password_file}: {exc.strerror}") from None
    if password:
        register_secret(password)
    return RedisConn(host, int(port), username, password or None, tls, timeout_s)


class _RedisFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _client(conn: RedisConn, *, anonymous: bool = False) -> Any:
    import redis  # lazily: start-up time matters
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host=conn.host, port=conn.port, username=None if anonymous else conn.username,
                       password=None if anonymous else conn.password, ssl=conn.tls,
                       socket_timeout=conn.timeout_s, socket_connect_timeout=conn.timeout_s,
                       retry=Retry(NoBackoff(), 0), decode_responses=True,  # no retries: one bounded try
                       protocol=2)  # RESP2: a plain PING, no HELLO


def _explain(conn: RedisConn, exc: BaseException) -> str:
    import redis

    text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    if isinstance(exc, redis.AuthenticationError):
        return f"{conn.label}: authentication failed ({text})"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"cannot reach {conn.label}: {text}"
    return f"{conn.label}: {text}"


@functools.cache
def _tool() -> str:
    import redis

    return f"redis-py {redis.__version__}"


def _measure(probe: str, conn: RedisConn, method: str,
             body: Callable[[Any, dict[str, Any]], tuple[Any, str]], *, anonymous: bool = False) -> Measurement:
    import redis

    started = time.monotonic()
    data: dict[str, Any] = {}

    def ev() -> Evidence:
        return Evidence(probe=probe, subject=conn.label, method=method, tool=_tool(),
                        duration_s=round(time.monotonic() - started, 3), data=data)

    client = _client(conn, anonymous=anonymous)
    try:
        value, display = body(client, data)
    except _RedisFailure as exc:
        return Measurement.failed(exc.reason, ev())
    except redis.RedisError as exc:
        return Measurement.failed(_explain(conn, exc), ev())
    finally:
        client.close()
    return Measurement(value, display, ev())


def server(conn: RedisConn) -> Measurement:
    """Authenticated ``PING`` and ``INFO server``.  Value: ``{"version", "mode"}``."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str]:
        c.ping()
        info = c.info("server")
        value = {"version": str(info.get("redis_version", "?")), "mode": str(info.get("redis_mode", "?"))}
        data.update(value)
        return value, f"PONG; Redis {value['version']} ({value['mode']})"

    return _measure("datastores.redis_reachable", conn, "PING; INFO server (authenticated)", body)


def unauthenticated_ping(conn: RedisConn) -> Measurement:
    """What an unauthenticated client gets for ``PING`` (no AUTH sent).

    Value: ``{"auth_required": bool, "answer": "NOAUTH ..." | "PONG"}``.  Not reaching the
    server is ``Measurement.failed``."""
    import redis

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str]:
        try:
            c.ping()
        except redis.AuthenticationError as exc:  # NOAUTH (AuthenticationRequiredError), or an ACL refusal
            answer = str(exc).strip()
            if not answer.upper().startswith(("NOAUTH", "WRONGPASS", "NOPERM")):  # redis-py drops the error code
                answer = f"NOAUTH {answer}"
            data["answer"] = answer
            return {"auth_required": True, "answer": answer}, f"refused without credentials: {answer}"
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc).upper() or "NOPERM" in str(exc).upper():
                data["answer"] = str(exc)
                return {"auth_required": True, "answer": str(exc)}, f"refused without credentials: {exc}"
            raise
        data["answer"] = "PONG"
        return {"auth_required": False, "answer": "PONG"}, "an unauthenticated PING was answered PONG"

    return _measure("datastores.redis_auth", conn, "PING without AUTH", body, anonymous=True)


def _config_get(c: Any, name: str) -> str:
    import redis

    try:
        got = c.config_get(name)
    except redis.ResponseError as exc:
        raise _RedisFailure(f"CONFIG GET {name} refused ({redact(str(exc))}): CONFIG is disabled or renamed, "
                            "or the user may not run it; allow +config|get for golive's user") from None
    return str(got.get(name, ""))




def bind(conn: RedisConn) -> Measurement:
    """The addresses the server listens on (``CONFIG GET bind``; a leading ``-`` marks an
    optional address).  Value: list of addresses (``-`` stripped); ``*``/``0.0.0.0``/``::``
    mean every interface."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str]:
        raw = _config_get(c, "bind")
        addrs = [a.lstrip("-") for a in raw.split()]
        data["bind"] = raw
        wild = [a for a in addrs if a in ("0.0.0.0", "*", "::", "::0")]
        display = "bind " + (" ".join(addrs) or "(none: every interface)")
        if wild or not addrs:
            display += " -- listens on every interface"
        return addrs or ["*"], display

    return _measure("datastores.redis_bind", conn, "CONFIG GET bind", body)


def persistence(conn: RedisConn) -> Measurement:
    """AOF and RDB as configured (``CONFIG GET appendonly``, ``CONFIG GET save``) and as
    working (``INFO persistence``: last write/bgsave status).

    Value: ``{"aof": bool, "rdb": bool, "save": "3600 1 ...", "aof_last_write_status",
    "rdb_last_bgsave_status"}``."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str]:
        aof = _config_get(c, "appendonly") == "yes"
        save = _config_get(c, "save").strip()
        info = c.info("persistence")
        value = {"aof": aof, "rdb": bool(save), "save": save,
                 "aof_last_write_status": str(info.get("aof_last_write_status", "?")),
                 "rdb_last_bgsave_status": str(info.get("rdb_last_bgsave_status", "?"))}
        data.update(value)
        parts = [f"AOF {'on' if aof else 'off'}", f"RDB {'save ' + save if save else 'off'}"]
        if aof and value["aof_last_write_status"] != "ok":
            parts.append(f"last AOF write {value['aof_last_write_status']}")
        if save and value["rdb_last_bgsave_status"] != "ok":
            parts.append(f"last RDB save {value['rdb_last_bgsave_status']}")
        return value, ", ".join(parts)

    return _measure("datastores.redis_persistence", conn, "CONFIG GET appendonly; CONFIG GET save; INFO persistence",
                    body)


def cluster(conn: RedisConn) -> Measurement:
    """Cluster mode (``INFO cluster``: ``cluster_enabled``) and, when on, slot coverage
    (``CLUSTER INFO``: ``cluster_state``, ``cluster_slots_assigned``, ``cluster_slots_ok``).

    Value: ``{"enabled": bool, "state": str | None, "slots_assigned": int, "slots_ok": int,
    "known_nodes": int}``."""

    def body(c: Any, data: dict[str, Any]) -> tuple[Any, str]:
        enabled = int(c.info("cluster").get("cluster_enabled", 0)) == 1
        value: dict[str, Any] = {"enabled": enabled, "state": None, "slots_assigned": 0, "slots_ok": 0,
                                 "known_nodes": 0}
        if not enabled:
            data.update(value)
            return value, "standalone (cluster_enabled:0)"
        raw = c.execute_command("CLUSTER INFO")  # redis-py parses it into a dict; older ones give the text
        info = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else \
            dict(line.split(":", 1) for line in str(raw).splitlines() if ":" in line)
        value.update(state=info.get("cluster_state", "?").strip(),
                     slots_assigned=int(info.get("cluster_slots_assigned", 0)),
                     slots_ok=int(info.get("cluster_slots_ok", 0)),
                     known_nodes=int(info.get("cluster_known_nodes", 0)))
        data.update(value)
        return value, (f"cluster_enabled:1, cluster_state:{value['state']}, {value['slots_ok']} of {CLUSTER_SLOTS} "
                       f"slots ok ({value['slots_assigned']} assigned), {value['known_nodes']} node(s)")

    return _measure("datastores.redis_cluster", conn, "INFO cluster; CLUSTER INFO", body)
