"""The documentation stays true: every command, option and config key is in README.md, the examples validate.

Commands are discovered from the argparse tree and keys from the pydantic models, so a new
command or key that is not documented fails here (the idea is sqlite-utils' test_docs.py).
"""

from __future__ import annotations

import argparse
import re
import tomllib
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.cli.main import build_parser, main
from gateway.config.models import Config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SIM_CONFIG = REPO / "hardware" / "config" / "sim.toml"
PI_CONFIG = REPO / "hardware" / "config" / "pi-example.toml"
SECRET_KEYS = ("password_file", "tls_ca", "tls_cert", "tls_key")


# -- the command line -----------------------------------------------------------------------------

def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


Command = tuple[tuple[str, ...], str, argparse.ArgumentParser]


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[Command]:
    """(path, help in the parent's listing, parser) for every command and subcommand, depth first."""
    action = _subparsers(parser)
    if action is None:
        return []
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    found: list[Command] = []
    for name, sub in action.choices.items():
        path = (*prefix, name)
        found.append((path, helps.get(name) or "", sub))
        found += _commands(sub, path)
    return found


COMMANDS = _commands(build_parser())
COMMAND_IDS = [" ".join(path) for path, _help, _parser in COMMANDS]


def test_the_parser_has_the_commands_we_expect_to_walk():
    # guards the walker itself: if it found nothing, every test below would pass vacuously
    assert {"run", "config check", "status", "events", "log verify", "sim set", "sim show"} <= set(COMMAND_IDS)


@pytest.mark.parametrize(("path", "listed_help", "parser"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_is_in_the_readme(path, listed_help, parser):
    spelled = "dcgate " + " ".join(path)
    assert f"`{spelled}" in README, f"README.md does not mention `{spelled}` (write it as inline code)"


@pytest.mark.parametrize(("path", "listed_help", "parser"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_has_help(path, listed_help, parser, capsys):
    assert listed_help.strip(), f"`dcgate {' '.join(path)}` has no help= in its parent's command list"
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: dcgate {' '.join(path)}"), out
    assert len(out.strip().splitlines()) > 2, out


@pytest.mark.parametrize(("path", "listed_help", "parser"), COMMANDS, ids=COMMAND_IDS)
def test_every_option_is_in_the_readme(path, listed_help, parser):
    options = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    missing = [option for option in options if option not in README]
    assert not missing, f"`dcgate {' '.join(path)}` options not in README.md: {missing}"


# -- the configuration ----------------------------------------------------------------------------

def _models_in(annotation: object) -> list[type[BaseModel]]:
    """Every pydantic model inside an annotation (through list[...], unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        if not isinstance(arg, FieldInfo):
            found += [m for m in _models_in(arg) if m not in found]
    return found


def _sections() -> list[tuple[str, list[type[BaseModel]]]]:
    """(README heading, models whose keys it documents): top level, then one per table."""
    sections: list[tuple[str, list[type[BaseModel]]]] = [("### Top-level keys", [Config])]
    for name, field in Config.model_fields.items():
        models = _models_in(field.annotation)
        # these sections document their nested tables ([doors.camera], [access.roles.staff]) row by row too
        for model in models if name in ("access", "doors") else []:
            for inner in model.model_fields.values():
                models += [m for m in _models_in(inner.annotation) if m not in models]
        if models:
            is_array = typing.get_origin(field.annotation) is list
            sections.append((f"### `[[{name}]]`" if is_array else f"### `[{name}]`", models))
    return sections


SECTIONS = _sections()


def _section_text(heading: str) -> str:
    """README lines under `heading`, up to the next heading (ignoring '#' inside code fences)."""
    lines = README.splitlines()
    assert heading in lines, f"README.md has no heading line {heading!r}"
    out, fenced = [], False
    for line in lines[lines.index(heading) + 1:]:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            break
        out.append(line)
    return "\n".join(out)


def _default_text(field: FieldInfo) -> str | None:
    """How README.md writes this field's default, or None when a table or list stands there."""
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return None
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


@pytest.mark.parametrize(("heading", "models"), SECTIONS, ids=[h for h, _m in SECTIONS])
def test_every_config_key_is_in_the_readme_with_its_default(heading, models):
    text = _section_text(heading)
    for model in models:
        for key, field in model.model_fields.items():
            row = re.search(rf"^\| `{re.escape(key)}` \|([^|]*)\|", text, re.MULTILINE)
            assert row, f"README.md section {heading!r} has no table row for `{key}` ({model.__name__})"
            expected = _default_text(field)
            if expected is not None:
                assert expected in row.group(1), (
                    f"README.md {heading} `{key}`: default column {row.group(1).strip()!r} "
                    f"does not show the real default {expected}"
                )


def test_the_readme_documents_no_config_key_that_does_not_exist():
    for heading, models in SECTIONS:
        known = {key for model in models for key in model.model_fields}
        documented = set(re.findall(r"^\| `([a-z_]+)` \|", _section_text(heading), re.MULTILINE))
        assert documented <= known, f"README.md {heading} documents unknown keys {sorted(documented - known)}"


def test_sim_config_is_valid(tmp_path):
    raw = tomllib.loads(SIM_CONFIG.read_text(encoding="utf-8"))
    # the key is made by hardware/run-sim.sh on first run, in the git-ignored .dcgate-sim/
    assert (SIM_CONFIG.parent / raw["access"]["key_file"]).resolve() == REPO / ".dcgate-sim" / "biometric.key"
    assert "bin/dcgate\" key generate" in (REPO / "hardware" / "run-sim.sh").read_text(encoding="utf-8")
    from access.crypto import generate_key_file

    raw["access"]["key_file"] = str(generate_key_file(tmp_path / "biometric.key"))
    config = Config.model_validate(raw, context={"base_dir": SIM_CONFIG.parent})
    assert [door.name for door in config.doors] == ["main"]
    main = config.doors[0]
    assert (main.auth, main.liveness, main.gpio) == ("face_or_finger", False, "sim")
    assert main.camera is not None and main.camera.simulated
    assert main.fingerprint is not None and main.fingerprint.simulated
    assert config.probes, "the quick-start config should simulate at least one probe"
    assert config.data_dir == (REPO / ".dcgate-sim").resolve()
    assert (config.mqtt.host, config.mqtt.port) == ("127.0.0.1", 1883)  # what hardware/run-sim.sh provides


def _pi_example(tmp_path: Path, *, uncomment_defaults: bool) -> dict:
    """pi-example.toml with its secret files replaced by real temporary ones (mode 600)."""
    text = PI_CONFIG.read_text(encoding="utf-8")
    if uncomment_defaults:
        # keys shown commented out (at their default) must be real keys too
        text = re.sub(r"^# ([a-z_]+ = [^#\n]*?)([ \t]+#.*)?$", r"\1", text, flags=re.MULTILINE)
    raw = tomllib.loads(text)
    for key in SECRET_KEYS:
        original = raw["mqtt"].get(key)
        if original is None:
            continue
        assert original.startswith("/etc/dcgate/"), f"mqtt.{key} should live in /etc/dcgate, not {original}"
        stand_in = tmp_path / Path(original).name
        stand_in.write_text("not-a-real-secret\n", encoding="utf-8")
        stand_in.chmod(0o600)
        raw["mqtt"][key] = str(stand_in)
    return raw


@pytest.mark.parametrize("uncomment_defaults", [False, True], ids=["as-shipped", "commented-keys-uncommented"])
def test_pi_example_config_is_valid(tmp_path, uncomment_defaults):
    raw = _pi_example(tmp_path, uncomment_defaults=uncomment_defaults)
    config = Config.model_validate(raw, context={"base_dir": PI_CONFIG.parent})
    assert (config.site, config.gateway) == ("diskominfo-jambi", "ruang-server-1")
    assert config.data_dir == Path("/var/lib/dcgate")  # systemd's StateDirectory=dcgate
    assert config.mqtt.username and config.mqtt.password_file and config.mqtt.tls_ca
    assert config.store.synchronous == "full"
    # real hardware only: a simulated probe on a real site would send made-up readings upstream
    assert [probe.driver for probe in config.probes] == ["dht22", "modbus-rtu"]
    assert config.ups is not None and config.ups.name == "ups"
    assert config.thresholds_for("ac-return").temperature_high_c == 24.0


def test_pi_example_names_only_secret_files_it_explains():
    text = PI_CONFIG.read_text(encoding="utf-8")
    assert "chmod 600" in text or "0600" in text
    assert "/etc/dcgate/mqtt-password" in (REPO / "hardware" / "systemd" / "README.md").read_text(encoding="utf-8")
