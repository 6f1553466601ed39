"""Load-time checks of the URLs, URIs and host keys a target gives (issue #14): a value that
can only fail later -- ``https://`` with no host, a port above 65535, ``ssh://`` with no
host, a token written into a URL, a pinned host key that is not one -- is refused when the
file is read, with its line.

Each function returns the value or raises ``ValueError`` (pydantic turns it into a config
error at the key's line); the message's ``; `` part is the fix.
"""
from __future__ import annotations

import re
import urllib.parse

#: URL query parameters that carry credentials (``?access_token=...``, ``&api_key=...``)
CREDENTIAL_PARAM = re.compile(
    r"(?i)^(access[_-]?token|token|auth|auth[_-]?token|api[_-]?key|apikey|key|secret|client[_-]?secret|"
    r"password|passwd|pwd|sig|signature|x-amz-signature|session|sessionid|jwt)$")
_ENV_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def _port(u: urllib.parse.SplitResult, value: str) -> None:
    try:
        port = u.port
    except ValueError:
        raise ValueError(f"'{value}' has an invalid port (1-65535)") from None
    if port == 0:
        raise ValueError(f"'{value}' has port 0; use a port from 1 to 65535")


def http_url(value: str, schemes: tuple[str, ...] = ("https", "http")) -> str:
    """An http(s) URL with a host and a valid port."""
    u = urllib.parse.urlsplit(value)
    if u.scheme not in schemes:
        raise ValueError(f"'{value}' is not an {'/'.join(schemes)} URL")
    if not u.hostname:
        raise ValueError(f"'{value}' has no host; write e.g. {schemes[0]}://api.example.com/")
    _port(u, value)
    return value


#: STARTTLS endpoints of ``endpoints.tls``: URL scheme -> default port.  The scheme names the
#: plaintext protocol whose upgrade to TLS the scan performs (sslyze's opportunistic TLS).
STARTTLS_PORTS: dict[str, int] = {
    "postgres": 5432, "postgresql": 5432, "smtp": 25, "imap": 143, "pop3": 110, "ftp": 21, "ldap": 389,
    "xmpp": 5222, "xmpp-server": 5269, "rdp": 3389,
}


def starttls_url(value: str) -> tuple[str, str, int]:
    """``postgres://host[:port]`` (or smtp://, imap://, ...: :data:`STARTTLS_PORTS`) ->
    ``(protocol, host, port)``; ``postgresql`` is read as ``postgres``.  Only where to connect:
    a user, password, database or option has no place here (the scan never logs in)."""
    u = urllib.parse.urlsplit(value)
    scheme = u.scheme.lower()
    if scheme not in STARTTLS_PORTS:
        raise ValueError(f"'{u.scheme}://' is neither TLS nor a STARTTLS protocol golive scans; use https:// or "
                         + ", ".join(f"{s}://" for s in STARTTLS_PORTS))
    if "@" in u.netloc or u.path not in ("", "/") or u.query or u.fragment:
        shown = f"{u.scheme}://{u.netloc.rpartition('@')[2]}"  # never echo a user or password
        raise ValueError(f"'{shown}' must be only {u.scheme}://host[:port]; no user, password, database or "
                         "options (the TLS scan only negotiates STARTTLS, it never logs in)")
    if not u.hostname:
        raise ValueError(f"'{value}' has no host; write e.g. {u.scheme}://db.example.com:{STARTTLS_PORTS[scheme]}")
    _port(u, value)
    return ("postgres" if scheme == "postgresql" else scheme), u.hostname, u.port or STARTTLS_PORTS[scheme]


def connection_uri(value: str) -> str:
    """ssh:// and paramiko:// name a host (and a valid port when given)."""
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme in ("ssh", "paramiko"):
        u = urllib.parse.urlsplit(value)
        if not u.hostname:
            raise ValueError(f"'{value}' has no host; write e.g. {scheme}://user@host:22")
        _port(u, value)
    return value


def literal_url_credentials(value: str) -> list[str]:
    """Names of query parameters of a URL that hold a literal credential (a value that is
    not a whole ``${ENV}`` reference)."""
    if "://" not in value or "?" not in value:
        return []
    query = urllib.parse.urlsplit(value).query
    return [k for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
            if CREDENTIAL_PARAM.match(k) and v and not _ENV_ONLY.match(v)]


KEY_LINE = re.compile(r"^(?P<type>ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|"
                      r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)\s+"
                      r"(?P<key>[A-Za-z0-9+/]+={0,3})(?:\s+.*)?$")


def check_key(line: str) -> None:
    """ValueError unless ``line`` is ``TYPE BASE64`` of a public key paramiko can read."""
    import paramiko  # here, not at import: paramiko costs ~0.1 s of start-up and most targets pin no keys

    m = KEY_LINE.match(line.strip())
    if not m:
        raise ValueError(f"'{line[:40]}' is not a public key line; write 'TYPE BASE64', e.g. "
                         "'ssh-ed25519 AAAAC3Nza...' (ssh-keyscan -t ed25519 HOST prints it)")
    try:
        entry = paramiko.hostkeys.HostKeyEntry.from_line(f"host {m.group('type')} {m.group('key')}")
    except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"'{line[:40]}' is not a valid public key ({exc.__class__.__name__}); copy the line "
                         "ssh-keyscan prints") from None
    if entry is None or entry.key is None:
        raise ValueError(f"'{line[:40]}' is not a valid public key; copy the line ssh-keyscan prints")
