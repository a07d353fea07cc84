"""The production stack (docker-compose.yml, Dockerfile, .env.example), checked without a Docker engine.

The file must be valid Compose, every file it mounts must exist, every variable it reads must be
documented in .env.example (which holds no secret), every image pinned, every service healthy or a
one-shot, and what it passes to midika must be settings midika has and commands midika knows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import TypeAdapter

import midika
from midika.settings import ENV_PREFIX, Settings
from tests.conftest import REPO

SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
MIDIKA = Path(sys.executable).with_name("midika")
SCRIPTS = sorted((REPO / "deploy").rglob("*.sh"))

# ${NAME}, ${NAME:-default}, ${NAME:?error} ...; `$${` is Compose's escape for a literal `${`.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY")
# 20+ characters that could be a generated token; paths and URLs contain `/`, `.` or `:` and escape.
TOKEN_LIKE = re.compile(r"[A-Za-z0-9+_=-]{20,}")


@cache
def _text() -> str:
    return (REPO / "docker-compose.yml").read_text(encoding="utf-8")


@cache
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(_text())
    assert isinstance(loaded, dict)
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


@cache
def _env_example() -> dict[str, str]:
    """NAME -> value of every `NAME=value` line of .env.example, commented-out defaults included."""
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    found = (re.fullmatch(r"#?\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip()) for line in lines)
    return {m.group(1): m.group(2) for m in found if m}


def _resolve(value: str) -> str | None:
    """`value` with each variable replaced by its default; None if one has no default."""
    missing = False

    def default(match: re.Match[str]) -> str:
        nonlocal missing
        if match.group(2) in {"-", ":-"}:
            return match.group(3)
        missing = True
        return ""

    resolved = VARIABLE.sub(default, value)
    return None if missing else resolved


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "write environment as a mapping"
    return environment


def _passed_through() -> set[str]:
    """Variables set as `NAME:` with no value: Compose passes NAME from the shell or .env, if set."""
    return {name for s in _services().values() for name, value in _environment(s).items() if value is None}


def _midika_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services().items() if str(s.get("image", "")).startswith("midika:")}


def _one_shots() -> set[str]:
    """Services another one waits for to complete."""
    return {
        name
        for service in _services().values()
        for name, dependency in (service.get("depends_on") or {}).items()
        if dependency["condition"] == "service_completed_successfully"
    }


def test_compose_file_matches_the_compose_spec() -> None:
    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing: the shared schemas folder must sit beside the repo")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The spec names draft-07 without the trailing "#" jsonschema looks up: say the draft outright.
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_every_mounted_file_exists() -> None:
    checked = 0
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            resolved = _resolve(source)
            assert resolved is not None, f"service {name} mounts {source}, which has no default"
            if resolved.startswith((".", "/")):
                assert (REPO / resolved).resolve().exists(), f"service {name} mounts missing {resolved}"
                checked += 1
    assert checked >= 8


def test_every_variable_is_in_env_example() -> None:
    documented = _env_example()
    interpolated = {m.group(1) for m in VARIABLE.finditer(_text())}
    missing = sorted((interpolated | _passed_through()) - documented.keys())
    assert not missing, f".env.example has no line for {missing}"
    assert {"MIDIKA_INFLUX_TOKEN", "MIDIKA_INGEST_BATCH_SIZE"} <= interpolated | _passed_through()


def test_env_example_defaults_are_the_real_ones() -> None:
    documented = _env_example()
    for match in VARIABLE.finditer(_text()):
        name, operator, default = match.groups()
        if operator == ":-":
            assert documented[name] == default, f".env.example: {name}={documented[name]}, compose: {default}"
    # A variable passed through unset leaves midika's own default in force: .env.example must show it.
    for name in _passed_through():
        field = Settings.model_fields[name.removeprefix(ENV_PREFIX).lower()]
        assert field.annotation is not None
        parsed = TypeAdapter(field.annotation).validate_python(documented[name])
        assert parsed == field.default, f".env.example: {name}={documented[name]}, midika: {field.default}"


def test_env_example_holds_no_secret_and_compose_requires_each() -> None:
    required = {m.group(1) for m in VARIABLE.finditer(_text()) if m.group(2) == ":?"}
    secrets = {name for name in _env_example() if SECRET_NAME.search(name)}
    assert secrets == required, "every secret is required by `${NAME:?...}`, and only secrets are"
    for name, value in _env_example().items():
        if name in secrets:
            assert value == "", f".env.example gives secret {name} a value: leave it empty"
        assert not TOKEN_LIKE.search(value), f".env.example: {name}={value} looks like a real secret"


def test_every_service_is_healthchecked_or_a_one_shot() -> None:
    one_shots = _one_shots()
    assert one_shots == {"init", "influxdb-init"}
    for name, service in _services().items():
        if name in one_shots:
            assert service.get("restart") == "no", f"one-shot {name} must not restart"
            assert "healthcheck" not in service
        else:
            test = (service.get("healthcheck") or {}).get("test")
            assert test and test[0] in {"CMD", "CMD-SHELL"}, f"service {name} has no healthcheck"
            assert service.get("restart") in {"unless-stopped", "on-failure", "always"}, name


def test_every_image_is_pinned() -> None:
    for name, service in _services().items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"service {name}: image {image} has no tag"
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?([-.][a-z0-9.]+)?", tag), (
            f"service {name}: {image} is not pinned"
        )
    for name, service in _midika_services().items():
        assert service["image"] == f"midika:{midika.__version__}", (
            f"{name}: tag the image with midika's version"
        )
        assert service.get("build") == ".", name
    bases = re.findall(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(encoding="utf-8"), re.M)
    assert bases and all(re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base) for base in bases), bases


def test_the_readme_names_every_service_and_image() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Production: docker compose") :]
    for name, service in _services().items():
        assert f"| `{name}` |" in section, f"the README's production section does not list {name}"
        if name not in _midika_services():
            assert f"`{service['image']}`" in section, f"the README does not name {service['image']}"


def test_the_demo_profile_holds_the_simulator_and_nothing_needs_it() -> None:
    profiled = {name: s["profiles"] for name, s in _services().items() if "profiles" in s}
    assert profiled == {"simulator": ["demo"]}
    for name, service in _services().items():
        assert "simulator" not in (service.get("depends_on") or {}), f"{name} would need --profile demo"


def test_midika_services_get_only_real_settings() -> None:
    fields = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    for name, service in _midika_services().items():
        passed = {key for key in _environment(service) if key.startswith(ENV_PREFIX)}
        unknown = sorted(passed - fields)
        assert not unknown, f"service {name} sets {unknown}, which are not midika settings"
    assert "MIDIKA_STORE" in _environment(_services()["api"])


def test_the_store_settings_agree_across_services() -> None:
    services = _services()
    midika_env = _environment(services["ingest"])
    assert _environment(services["api"])["MIDIKA_INFLUX_BUCKET"] == midika_env["MIDIKA_INFLUX_BUCKET"]
    setup = _environment(services["influxdb"])
    assert setup["DOCKER_INFLUXDB_INIT_ORG"] == midika_env["MIDIKA_INFLUX_ORG"]
    assert setup["DOCKER_INFLUXDB_INIT_BUCKET"] == midika_env["MIDIKA_INFLUX_BUCKET"]
    assert setup["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == midika_env["MIDIKA_INFLUX_TOKEN"]
    init = _environment(services["influxdb-init"])
    assert init["INFLUX_ORG"] == midika_env["MIDIKA_INFLUX_ORG"]
    assert init["BUCKET"] == midika_env["MIDIKA_INFLUX_BUCKET"]
    assert init["DATABASE"] == midika_env["MIDIKA_INFLUX_DATABASE"]
    assert init["RP"] == midika_env["MIDIKA_INFLUX_RP"]
    assert _environment(services["grafana"])["MIDIKA_INFLUX_TOKEN"] == midika_env["MIDIKA_INFLUX_TOKEN"]


def test_grafana_reads_the_database_midika_writes() -> None:
    services = _services()
    midika_env = _environment(services["ingest"])
    path = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"
    text = path.read_text(encoding="utf-8")
    (source,) = yaml.safe_load(text)["datasources"]
    assert source["url"] == midika_env["MIDIKA_INFLUX_URL"]
    assert source["jsonData"]["dbName"] == midika_env["MIDIKA_INFLUX_DATABASE"]
    grafana_env = _environment(services["grafana"])
    for name in re.findall(r"\$__env\{(\w+)\}", text):
        assert name in grafana_env, f"the data source reads {name}, which the grafana service lacks"


def test_the_ingest_and_the_broker_agree_on_accounts_and_port() -> None:
    services = _services()
    ingest = _environment(services["ingest"])
    for service in ("init", "simulator"):
        exporter = _environment(services[service])
        for key in ("MIDIKA_INGEST_USERNAME", "MIDIKA_INGEST_PASSWORD", "MIDIKA_DATA_DIR"):
            assert exporter[key] == _environment(services["init"])[key], (service, key)
        assert exporter["MIDIKA_INGEST_PASSWORD"] == ingest["MIDIKA_INGEST_PASSWORD"]
    # The health checks find the broker's port in /proc/net/tcp, in hex.
    port = f":{int(ingest['MIDIKA_BROKER_URL'].rsplit(':', 1)[1]):04X}"
    assert port in services["ingest"]["healthcheck"]["test"][3]
    assert port in services["mosquitto"]["healthcheck"]["test"][1]


def test_mosquitto_reads_the_files_the_stack_installs() -> None:
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")
    assert re.search(r"^password_file\s+/mosquitto/config/passwd\s*$", conf, re.M)
    assert re.search(r"^acl_file\s+/mosquitto/config/acl\s*$", conf, re.M)
    script = (REPO / "deploy" / "compose" / "mosquitto.sh").read_text(encoding="utf-8")
    assert "dst=/mosquitto/config" in script
    assert "for name in passwd acl" in script


def _midika_commands() -> list[tuple[str, ...]]:
    """Every `midika` command the stack runs, as its words up to the first option or argument."""
    argvs = [service["command"] for service in _midika_services().values() if "entrypoint" not in service]
    for script in SCRIPTS:
        for line in script.read_text(encoding="utf-8").splitlines():
            if match := re.match(r"\s*midika\s+(.*)", line):
                argvs.append(match.group(1).split())
    commands = set()
    for argv in argvs:
        words = [w for w in argv[:2] if re.fullmatch(r"[a-z][a-z-]*", w)]
        # A command group takes a subcommand; a plain command takes options or arguments next.
        commands.add(tuple(words if words[:1] == ["devices"] else words[:1]))
    return sorted(commands)


@pytest.mark.parametrize("command", _midika_commands(), ids=" ".join)
def test_the_stack_runs_only_commands_midika_has(command: tuple[str, ...]) -> None:
    done = subprocess.run(
        [str(MIDIKA), *command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"`midika {' '.join(command)}` does not exist:\n{done.stderr}"


def test_the_ingest_service_runs_the_ingest_module() -> None:
    assert _services()["ingest"]["entrypoint"] == ["python", "-m", "ingest"]
    assert (REPO / "ingest" / "__main__.py").exists()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_scripts_parse(script: Path) -> None:
    shebang = script.read_text(encoding="utf-8").splitlines()[0]
    shell = "bash" if shebang.endswith("bash") else "sh"
    assert re.fullmatch(r"#!\S*(/| )(ba)?sh", shebang), f"{script}: not a sh or bash script: {shebang}"
    program = shutil.which(shell)
    assert program is not None
    done = subprocess.run([program, "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
