"""docker-compose.yml is valid Compose and every file it mounts exists (no Docker engine runs here)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_matches_the_compose_spec() -> None:
    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing: the shared schemas folder must sit beside the repo")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(_compose(), schema)


def test_every_mounted_file_exists() -> None:
    for name, service in (_compose().get("services") or {}).items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (REPO / source).resolve().exists(), f"service {name} mounts missing {source}"
