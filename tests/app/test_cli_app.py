"""`waflens app` as a real process: where it listens, who it lets in, how it stops, what a taken port says."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from waflens.data.errors import ConfigError
from tests.data.helpers import at, combined_line, fresh_db, ingest, write_log

REPO = Path(__file__).resolve().parents[2]
TOKEN = "correct-horse-battery-staple-42"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def small_db(tmp_path) -> Path:
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(i * 60), f"GET /p{i} HTTP/1.1") for i in range(5)])
    con = fresh_db(tmp_path)
    ingest(con, log)
    con.close()
    return tmp_path / "test.duckdb"


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAFLENS_APP_TOKEN", "WAFLENS_APP_AUTH_HEADER")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def start_app(db: Path, port: int, *args: str, env: dict[str, str] | None = None,
              log: Path | None = None) -> subprocess.Popen:
    """`waflens app` in its own session (so a test can clean up whatever it leaves), once it answers."""
    out = open(log or db.parent / f"app-{port}.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(db), "app", "--port", str(port), *args],
                               cwd=db.parent, env=env or app_env(), stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    process.output = out
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_group(process)
            out.seek(0)
            pytest.fail(f"waflens app did not start: {out.read()[-2000:]}")
        time.sleep(0.3)


def stop_group(process: subprocess.Popen) -> None:
    """Kill what a test started: the CLI's session (and a server a broken CLI left in its own group)."""
    for child in children(process.pid):
        try:
            os.killpg(child, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=10)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def listening_addresses(port: int) -> set[ipaddress._BaseAddress]:
    """The local addresses of LISTEN sockets on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host order
            found.add(ipaddress.ip_address(packed))
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def output(process: subprocess.Popen) -> str:
    process.output.seek(0)
    return process.output.read()


def test_app_listens_on_loopback_only_and_sigterm_stops_the_server(small_db):
    port = free_port()
    process = start_app(small_db, port)
    try:
        addresses = listening_addresses(port)
        assert addresses and all(a.is_loopback or (a.version == 6 and a.ipv4_mapped and a.ipv4_mapped.is_loopback)
                                 for a in addresses), addresses
        servers = children(process.pid)
        assert servers
        os.kill(process.pid, signal.SIGTERM)            # as systemd or `kill` would: the CLI's pid only
        assert process.wait(timeout=30) == 0
        assert not any(alive(pid) for pid in servers)  # no Streamlit left serving with PPID 1
        assert port_is_free(port) and not listening_addresses(port)
        text = output(process)
        assert "workbench stopped (SIGTERM)" in text and "rolled back" not in text
    finally:
        stop_group(process)


def test_ctrl_c_stops_the_server_with_a_message_for_a_server(small_db):
    port = free_port()
    process = start_app(small_db, port)
    try:
        servers = children(process.pid)
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert not any(alive(pid) for pid in servers)
        assert port_is_free(port)
        text = output(process)
        assert "workbench stopped (SIGINT)" in text and "ingested" not in text
    finally:
        stop_group(process)


def test_taken_port_is_a_configuration_error_before_anything_starts(small_db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "waflens.app.cli", "--db", str(small_db), "app", "--port", str(port)],
                              cwd=small_db.parent, env=app_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--port" in lines[0], lines
    assert "workbench on" not in done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_host_without_authentication_is_refused(small_db, host):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(small_db), "app", "--host", host,
                                "--port", str(port)], cwd=small_db.parent, env=app_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it served instead of refusing
        pytest.fail(f"waflens app --host {host} started without authentication")
    finally:
        stop_group(process)
    assert process.returncode == 5, stderr
    assert "without authentication" in stderr and "WAFLENS_APP_TOKEN" in stderr
    assert not listening_addresses(port)


def test_short_token_is_refused(small_db):
    process = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(small_db), "app", "--port",
                                str(free_port())], cwd=small_db.parent, env=app_env(WAFLENS_APP_TOKEN="short"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("waflens app started with a 5-character token")
    finally:
        stop_group(process)
    assert process.returncode == 5 and "too short" in stderr


def test_access_rules():
    from waflens.app.access import check_access, is_loopback, token_matches

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.10")
    assert check_access("127.0.0.1", None, None) == []
    with pytest.raises(ConfigError, match="without authentication"):
        check_access("0.0.0.0", None, None)
    assert any("beyond this machine" in w for w in check_access("0.0.0.0", TOKEN, None))
    assert any("claim any identity" in w for w in check_access("0.0.0.0", None, "X-Forwarded-User"))
    with pytest.raises(ConfigError, match="header name"):
        check_access("127.0.0.1", None, "X-User: admin")
    assert token_matches(TOKEN, TOKEN) and not token_matches(TOKEN[:-1], TOKEN) and not token_matches(None, TOKEN)
    assert not token_matches("é" * 5, TOKEN)
