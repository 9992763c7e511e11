"""Who may open the workbench, and where it listens (no Streamlit here: the CLI checks this before it starts).

The workbench shows attacker traffic, pseudonymized clients and every analyst's labels, and
its pages change what the cron retrain does. So it listens on 127.0.0.1 unless told
otherwise, and on any other address it needs one of two ways of knowing who is there:
a shared token (``$WAFLENS_APP_TOKEN``, asked for before any page renders) or the
identity header of a reverse proxy that authenticates people (``--auth-header``), trusted
only when the operator names it.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import socket

from waflens.data.errors import ConfigError

TOKEN_ENV = "WAFLENS_APP_TOKEN"
AUTH_HEADER_ENV = "WAFLENS_APP_AUTH_HEADER"
MIN_TOKEN_LENGTH = 16
DEFAULT_HOST = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is on this machine only (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_access(host: str, token: str | None, auth_header: str | None) -> list[str]:
    """Refuse a configuration that would serve the workbench to anyone; returns warnings to print."""
    warnings = []
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_LENGTH} characters "
                          "(e.g. `openssl rand -hex 32`)")
    if auth_header is not None and (not auth_header.strip() or not _is_header_name(auth_header)):
        raise ConfigError(f"--auth-header wants a header name such as X-Forwarded-User, got {auth_header[:40]!r}")
    if is_loopback(host):
        return warnings
    if not token and not auth_header:
        raise ConfigError(f"refusing to serve the workbench on {host} without authentication: set {TOKEN_ENV} "
                          "(a shared secret of 16+ characters) or pass --auth-header X-Forwarded-User behind a "
                          "reverse proxy that authenticates users; or keep the default --host 127.0.0.1")
    warnings.append(f"the workbench listens on {host}, beyond this machine: anyone who can reach it "
                    + ("and knows the token " if token else "") + "can read the traffic and label clusters")
    if auth_header:
        warnings.append(f"--auth-header {auth_header}: whoever reaches the port directly can claim any identity in "
                        "that header; let only the reverse proxy reach it (firewall) or keep --host 127.0.0.1")
    return warnings


def _is_header_name(name: str) -> bool:
    return all(c.isalnum() or c in "-_" for c in name)


def token_matches(given: str | None, expected: str) -> bool:
    """Compare in constant time (a shared token must not leak through response timing)."""
    return hmac.compare_digest((given or "").encode("utf-8"), expected.encode("utf-8"))


def check_port_free(host: str, port: int) -> None:
    """Bind the port the way Streamlit will, and let go: a taken port is the operator's to fix, said in one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit does: TIME_WAIT is no conflict
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind((host.strip("[]"), port))
        probe.listen(1)
    except socket.gaierror:
        raise ConfigError(f"cannot listen on {host}: no such host; pass --host with an address of this machine") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use (another workbench?): stop it, or pick "
                              "another port with --port") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"cannot listen on {host}: it is not an address of this machine; fix --host") from None
        if error.errno == errno.EACCES:
            raise ConfigError(f"not allowed to listen on port {port} (ports below 1024 need privileges): "
                              "use --port 8501 or another port above 1023") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    finally:
        probe.close()
