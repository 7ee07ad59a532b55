"""A bad config never starts the gateway, and its message lets a technician fix it without reading code.

Every failure is checked through the real CLI (`dcgate config check FILE` and `dcgate run --config
FILE`, as subprocesses): exit status 2, and stderr names the file, the line (where the loader can
know it), the key path, the bad value (where there is one) and a fix. `dcgate run` with a bad config
must not even create the data directory.

Root caveat: the tests run as root, for whom `os.access` says every file is readable. The
"password file unreadable" case is therefore checked by running the CLI as `nobody` (a forked child);
as root a mode-000 password file is accepted, because root can in fact read it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.cli.main import main as cli_main
from tests.support.gateway_proc import REPO, run_cli
from tests.support.waiting import wait_until

# A valid config; the line numbers below are what the error messages must name.
VALID = """\
site = "test-site"
gateway = "test-gw"
data_dir = "data"

[mqtt]
host = "127.0.0.1"
port = 1883

[[probes]]
name = "rack1"
driver = "sim"
interval_s = 60
"""


def write(directory: Path, text: str, name: str = "dcgate.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def with_line(text: str, after: str, line: str) -> str:
    """`text` with `line` inserted right after the (unique) line `after`."""
    lines = text.splitlines()
    index = lines.index(after)
    return "\n".join([*lines[: index + 1], line, *lines[index + 1:]]) + "\n"


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@dataclass(frozen=True)
class Case:
    text: str
    key: str  # key path as printed
    line: int | None  # line the message must name, where the loader can know it
    value: str | None  # repr of the bad value, where there is one
    fix: str  # a part of the fix the message gives


PW_LINES = 'username = "gw"\npassword_file = "secret.txt"'

CASES: dict[str, Case] = {
    "unknown_top_level_key": Case(
        with_line(VALID, 'data_dir = "data"', 'colour = "blue"'), "colour", 4, "'blue'",
        "remove `colour` or correct its spelling; keys allowed here: access, backup, data_dir, doors, gateway, "
        "logging, mqtt",
    ),
    "unknown_key_in_mqtt": Case(
        with_line(VALID, "port = 1883", 'hots = "broker.local"'), "mqtt.hots", 8, "'broker.local'",
        "remove `hots` or correct its spelling; keys allowed here: base_topic, client_id, discovery, discovery_prefix, "
        "host,",
    ),
    "unknown_key_in_a_probe": Case(
        with_line(VALID, 'driver = "sim"', "interval = 5"), "probes[0].interval", 12, "5",
        "remove `interval` or correct its spelling; keys allowed here: driver, humidity_pct, interval_s,",
    ),
    "wrong_type_of_number": Case(
        replaced(VALID, "interval_s = 60", 'interval_s = "fast"'), "probes[0].interval_s", 12, "'fast'",
        "interval_s must be: seconds between readings",
    ),
    "wrong_type_of_string": Case(
        replaced(VALID, 'site = "test-site"', "site = 5"), "site", 1, "5", "site must be: site slug, [a-z0-9-]",
    ),
    "wrong_type_of_table": Case(
        replaced(VALID, '[mqtt]\nhost = "127.0.0.1"\nport = 1883\n', 'mqtt = "127.0.0.1"\n'), "mqtt", 5, None,
        "mqtt must be: the upstream MQTT broker",
    ),
    "missing_site": Case(
        replaced(VALID, 'site = "test-site"\n', ""), "site", None, None, "add `site = ...` (site slug",
    ),
    "missing_data_dir": Case(
        replaced(VALID, 'data_dir = "data"\n', ""), "data_dir", None, None,
        "add `data_dir = ...` (directory for the database",
    ),
    "missing_mqtt": Case(
        replaced(VALID, '[mqtt]\nhost = "127.0.0.1"\nport = 1883\n', ""), "mqtt", None, None,
        "add `mqtt = ...` (the upstream MQTT broker)",
    ),
    "missing_probe_name": Case(
        replaced(VALID, 'name = "rack1"\n', ""), "probes[0].name", 9, None, "add `name = ...` (probe name",
    ),
    "missing_probe_driver": Case(
        replaced(VALID, 'driver = "sim"\n', ""), "probes[0].driver", 9, None, "add `driver = ...`",
    ),
    "port_zero": Case(
        replaced(VALID, "port = 1883", "port = 0"), "mqtt.port", 7, "0",
        "port must be: TCP port of the broker, 1 to 65535",
    ),
    "port_too_large": Case(
        replaced(VALID, "port = 1883", "port = 70000"), "mqtt.port", 7, "70000",
        "port must be: TCP port of the broker, 1 to 65535",
    ),
    "port_not_a_number": Case(
        replaced(VALID, "port = 1883", 'port = "abc"'), "mqtt.port", 7, "'abc'",
        "port must be: TCP port of the broker, 1 to 65535",
    ),
    "site_not_a_slug": Case(
        replaced(VALID, 'site = "test-site"', 'site = "Diskominfo Jambi"'), "site", 1, "'Diskominfo Jambi'",
        'site must be: site slug, [a-z0-9-], e.g. "diskominfo-jambi"',
    ),
    "gateway_not_a_slug": Case(
        replaced(VALID, 'gateway = "test-gw"', 'gateway = "ruang_server/1"'), "gateway", 2, "'ruang_server/1'",
        "gateway must be: this gateway's slug, [a-z0-9-]",
    ),
    "password_file_missing": Case(
        with_line(VALID, "port = 1883", PW_LINES), "mqtt.password_file", 9, "secret.txt",
        "does not exist or is not a file. Fix: give the path of an existing file",
    ),
    "password_file_without_username": Case(
        with_line(VALID, "port = 1883", 'password_file = "private.txt"'), "mqtt", 5, None,
        'password_file is set but username is not. Fix: add username = "..." under [mqtt]',
    ),
    "tls_cert_without_tls_key": Case(
        with_line(VALID, "port = 1883", 'tls_cert = "client.pem"'), "mqtt", 5, None,
        "tls_cert and tls_key go together. Fix: set both, or neither",
    ),
    "unknown_probe_driver": Case(
        replaced(VALID, 'driver = "sim"', 'driver = "bme280"'), "probes[0].driver", 11, "'bme280'",
        'use one of the drivers of this version: "sim", "dht22", "dht11"',
    ),
    "duplicate_probe_names": Case(
        VALID + '\n[[probes]]\nname = "rack1"\ndriver = "sim"\n', "probes", 9, "'rack1'",
        "is used twice. Fix: give every [[probes]] its own name",
    ),
}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A config directory with the side files some cases point at (private password, a client cert)."""
    private = tmp_path / "private.txt"
    private.write_text("s3cret\n", encoding="utf-8")
    private.chmod(0o600)
    (tmp_path / "client.pem").write_text("not really a certificate\n", encoding="utf-8")
    return tmp_path


def assert_names_problem(stderr: str, path: Path, case: Case) -> None:
    assert str(path) in stderr, stderr
    where = f"line {case.line}, {case.key}: " if case.line else f"  - {case.key}: "
    problem = next((line for line in stderr.splitlines() if where in line), None)
    assert problem is not None, f"no problem line with {where!r} in:\n{stderr}"
    if case.value is not None:
        assert case.value in problem, problem
    assert "Fix: " in problem and case.fix in problem, problem


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_check_names_file_line_key_value_and_fix(config_dir: Path, name: str) -> None:
    case = CASES[name]
    path = write(config_dir, case.text)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2, result
    assert_names_problem(result.stderr, path, case)
    assert "OK" not in result.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_with_a_bad_config_exits_2_and_never_creates_the_data_dir(config_dir: Path, name: str) -> None:
    case = CASES[name]
    path = write(config_dir, case.text)
    result = run_cli("run", "--config", str(path), timeout=30)
    assert result.returncode == 2, result
    assert_names_problem(result.stderr, path, case)
    assert not (config_dir / "data").exists(), "the gateway started (or prepared its data_dir) on a bad config"
    assert "dcgate 0" not in result.stdout  # the start-up banner is printed only for a good config


def test_every_problem_is_reported_at_once(config_dir: Path) -> None:
    text = with_line(replaced(VALID, "port = 1883", "port = 0"), 'data_dir = "data"', 'colour = "blue"')
    path = write(config_dir, replaced(text, 'driver = "sim"', 'driver = "bme280"'))
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert "(3 problem(s))" in result.stderr
    for expected in ("line 4, colour:", "line 8, mqtt.port:", "line 12, probes[0].driver:"):
        assert expected in result.stderr, result.stderr


def test_duplicate_probe_names_are_reported_with_other_problems(config_dir: Path) -> None:
    """Regression: a model-level check ran only once every field was valid, hiding the duplicate."""
    text = replaced(VALID, "port = 1883", "port = 0") + '\n[[probes]]\nname = "rack1"\ndriver = "sim"\n'
    path = write(config_dir, text)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert "line 7, mqtt.port:" in result.stderr
    assert "line 9, probes: probe name 'rack1' is used twice" in result.stderr


def test_password_file_readable_by_others_is_refused_with_chmod_fix(config_dir: Path) -> None:
    secret = config_dir / "secret.txt"
    secret.write_text("s3cret\n", encoding="utf-8")
    secret.chmod(0o644)
    path = write(config_dir, with_line(VALID, "port = 1883", PW_LINES))
    for args in (("config", "check", str(path)), ("run", "--config", str(path))):
        result = run_cli(*args, timeout=30)
        assert result.returncode == 2, result
        assert "line 9, mqtt.password_file:" in result.stderr
        assert "is readable by other users (mode 644)" in result.stderr
        assert f"Fix: chmod 600 {secret}" in result.stderr
        assert "s3cret" not in result.stderr + result.stdout  # the password itself is never shown
    assert not (config_dir / "data").exists()


def test_empty_password_file_is_refused(config_dir: Path) -> None:
    secret = config_dir / "secret.txt"
    secret.write_text("  \n", encoding="utf-8")
    secret.chmod(0o600)
    path = write(config_dir, with_line(VALID, "port = 1883", PW_LINES))
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert "line 9, mqtt.password_file:" in result.stderr
    assert f"password_file '{secret}' is empty. Fix: write the password on its first line" in result.stderr


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the `nobody` user can enter (pytest's tmp_path is under a root-only 0700 directory)."""
    directory = Path(tempfile.mkdtemp(prefix="dcgate-config-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def run_cli_as_nobody(*args: str) -> tuple[int, str]:
    """`dcgate ARGS` in a forked child that has become `nobody`: (exit status, stdout + stderr).

    Forked rather than exec'd, because the interpreter may live where `nobody` cannot reach it.
    """
    user = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 125
        try:
            os.close(read_fd)
            out = os.fdopen(write_fd, "w", encoding="utf-8")
            sys.stdout = sys.stderr = out
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            code = cli_main(list(args))
            out.flush()
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8") as stream:
        output = stream.read()
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status), output


def test_password_file_unreadable_by_the_service_user_is_refused(shared_dir: Path) -> None:
    """Mode 000 as seen by a non-root service user (as root, os.access says every file is readable)."""
    secret = shared_dir / "secret.txt"
    secret.write_text("s3cret\n", encoding="utf-8")
    secret.chmod(0o000)
    path = write(shared_dir, with_line(VALID, "port = 1883", PW_LINES))
    path.chmod(0o644)
    code, output = run_cli_as_nobody("config", "check", str(path))
    assert code == 2, output
    assert "line 9, mqtt.password_file:" in output
    assert f"password_file '{secret}' is not readable by this user. Fix: check its owner and mode" in output


def test_invalid_toml_names_the_line(config_dir: Path) -> None:
    path = write(config_dir, replaced(VALID, "port = 1883", "port = = 1883"))
    for args in (("config", "check", str(path)), ("run", "--config", str(path))):
        result = run_cli(*args, timeout=30)
        assert result.returncode == 2, result
        assert f"{path}: not valid TOML" in result.stderr
        assert "line 7" in result.stderr
        assert "Fix: correct the syntax at that line" in result.stderr
    assert not (config_dir / "data").exists()


def test_missing_config_file_is_named_with_the_ways_to_give_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "dcgate.toml"
    for args in (("config", "check", str(path)), ("run", "--config", str(path))):
        result = run_cli(*args, timeout=30)
        assert result.returncode == 2, result
        assert f"{path}: config file not found" in result.stderr
        assert "Fix: pass --config FILE, set $DCGATE_CONFIG" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_dcgate_config_env_is_the_default_config(config_dir: Path) -> None:
    good = write(config_dir, VALID, "good.toml")
    result = run_cli("config", "check", env={"DCGATE_CONFIG": str(good)})
    assert result.returncode == 0, result
    assert f"{good}: OK" in result.stdout

    bad = write(config_dir, replaced(VALID, "port = 1883", "port = 0"), "bad.toml")
    for args in (("config", "check"), ("run",)):
        result = run_cli(*args, env={"DCGATE_CONFIG": str(bad)}, timeout=30)
        assert result.returncode == 2, result
        assert f"{bad}: invalid configuration" in result.stderr
        assert "line 7, mqtt.port:" in result.stderr
    assert not (config_dir / "data").exists()


def test_config_option_wins_over_dcgate_config_env(config_dir: Path) -> None:
    good = write(config_dir, VALID, "good.toml")
    bad = write(config_dir, "this is = not toml [", "bad.toml")
    for args in (("config", "check", "--config", str(good)), ("--config", str(good), "config", "check"),
                 ("config", "check", str(good))):
        result = run_cli(*args, env={"DCGATE_CONFIG": str(bad)})
        assert result.returncode == 0, (args, result)
        assert f"{good}: OK" in result.stdout


def test_without_config_option_or_env_the_etc_path_is_used(tmp_path: Path) -> None:
    result = run_cli("config", "check", env={"DCGATE_CONFIG": ""})
    # whether or not this machine has one, the file consulted is the documented default
    assert "/etc/dcgate/dcgate.toml" in result.stdout + result.stderr
    assert result.returncode in (0, 2)


def test_valid_config_checks_ok_and_summarises_it(config_dir: Path) -> None:
    path = write(config_dir, VALID)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 0, result
    assert result.stderr == ""
    assert f"{path}: OK" in result.stdout
    assert "site test-site, gateway test-gw" in result.stdout
    assert "MQTT 127.0.0.1:1883, topics under dcgate/test-site/test-gw/" in result.stdout
    assert "probes: rack1 (sim, every 60 s)" in result.stdout
    assert not (config_dir / "data").exists()  # checking never creates anything


def test_relative_paths_resolve_against_the_config_files_directory(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    secret = etc / "secret.txt"
    secret.write_text("s3cret\n", encoding="utf-8")
    secret.chmod(0o600)
    path = write(etc, with_line(VALID, "port = 1883", PW_LINES))
    assert not (REPO / "secret.txt").exists()  # the CLI runs in the repository: cwd must not matter
    result = run_cli("config", "check", str(path))
    assert result.returncode == 0, result
    assert f"data in {etc / 'data'}" in result.stdout


def test_gateway_run_puts_a_relative_data_dir_next_to_its_config(tmp_path: Path, broker, gateway_factory) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    path = write(etc, replaced(VALID, "port = 1883", f"port = {broker.port}"))
    gw = gateway_factory(path)  # started with cwd = the repository
    wait_until(lambda: (etc / "data" / "dcgate.db").exists(), 10, message="the database next to the config")
    assert gw.status()["store"]["path"] == str(etc / "data" / "dcgate.db")
    assert not (REPO / "data").exists()
    assert os.stat(etc / "data").st_mode & 0o777 == 0o700


def test_a_web_tls_key_readable_by_others_is_refused(tmp_path):
    """The console's private key is a secret file like the MQTT password: owner-only, or no start."""
    from gateway.config.loader import load_config
    from gateway.errors import ConfigError
    from tests.support.configs import base_config, write_config

    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    path = write_config(tmp_path / "dcgate.toml", base_config(tmp_path / "data", 1883,
                                                              web={"tls_cert": str(cert), "tls_key": str(key)}))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "tls_key" in str(refused.value) and "chmod 600" in str(refused.value)
    key.chmod(0o600)
    assert load_config(path).web.https
