"""Reading `trials/*.yaml`: every problem is reported as `file:line: path.inside: what is wrong`.

A trial file is edited by hand by people who run field trials, so an error must point at the line
to fix. The YAML is composed into nodes first (they carry line numbers), then constructed and
validated; pydantic's error locations are mapped back onto the nodes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from midika.errors import ConfigError, TrialError
from midika.models.trial import Trial

Loc = tuple[str | int, ...]

# The Trial model's own cross-field checks put the path at the start of the message
# ("devices.2.profile: no profile ..."); lift it into the location so every problem reads alike.
_PATH_PREFIX = re.compile(r"^((?:[a-z_]+|\d+)(?:\.(?:[a-z_]+|\d+))*): (.+)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class TrialSource:
    """A validated trial and, when it came from a file, the file and its YAML nodes."""

    trial: Trial
    path: Path | None = None
    node: yaml.Node | None = None

    @classmethod
    def of(cls, trial: Trial) -> TrialSource:
        """A trial built in code rather than read from a file."""
        return cls(trial=trial)

    def where(self, loc: Loc) -> str:
        """`file:line: loc` for a file, `trial <id>: loc` otherwise."""
        return f"{self._file(loc)}: {_dotted(loc)}"

    def ref(self, loc: Loc) -> str:
        """`file:line (loc)`, for pointing at a second place in a message."""
        return f"{self._file(loc)} ({_dotted(loc)})"

    def _file(self, loc: Loc) -> str:
        return f"trial {self.trial.id!r}" if self.path is None else f"{self.path}:{_line(self.node, loc)}"


def read_trial_files(trials_dir: Path) -> list[TrialSource]:
    """Validate every `*.yaml` in `trials_dir` and the trials together; TrialError lists all problems."""
    if not trials_dir.is_dir():
        raise ConfigError(f"trials folder {trials_dir} does not exist (set MIDIKA_TRIALS_DIR)")
    problems: list[str] = []
    sources: list[TrialSource] = []
    for path in sorted(trials_dir.glob("*.yml")):
        # Only *.yaml is read; a .yml file would otherwise be a trial that silently isn't there.
        problems.append(f"{path}:1: trial files must end in .yaml; rename it")
    for path in sorted(trials_dir.glob("*.yaml")):
        source, file_problems = _read_file(path)
        problems.extend(file_problems)
        if source is not None:
            sources.append(source)
    problems.extend(cross_trial_problems(sources))
    if problems:
        raise TrialError("\n".join(problems))
    return sources


def cross_trial_problems(sources: Sequence[TrialSource]) -> list[str]:
    """Problems only visible across trials: a trial id or a device id declared twice."""
    problems: list[str] = []
    trial_seen: dict[str, TrialSource] = {}
    device_seen: dict[str, tuple[TrialSource, int]] = {}
    for source in sources:
        first = trial_seen.setdefault(source.trial.id, source)
        if first is not source:
            problems.append(
                f"{source.where(('id',))}: trial id {source.trial.id!r} is also declared at "
                f"{first.ref(('id',))}"
            )
        for i, device in enumerate(source.trial.devices):
            other, j = device_seen.setdefault(device.id, (source, i))
            if other is not source:
                problems.append(
                    f"{source.where(('devices', i, 'id'))}: device id {device.id!r} is also declared at "
                    f"{other.ref(('devices', j, 'id'))}; a device id is its MQTT username, so it must "
                    "be unique across all trials"
                )
    return problems


def _read_file(path: Path) -> tuple[TrialSource | None, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}:1: cannot read the file: {exc}"]
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = f"{path}:{line}: YAML syntax error: {exc.problem or exc.context}"
        if exc.problem and exc.context:
            # The context ("while parsing a flow sequence") often starts lines above the problem.
            start = f" that starts at line {exc.context_mark.line + 1}" if exc.context_mark else ""
            message += f" ({exc.context}{start})"
        return None, [message]
    except yaml.YAMLError as exc:
        return None, [f"{path}:1: YAML error: {exc}"]
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [f"{path}:1: a trial file is a YAML mapping (id, name, municipality, ...), got {kind}"]

    problems = [
        f"{path}:{line}: {_dotted(loc)}{_label(data, loc)}: key {key!r} appears twice"
        for loc, line, key in _duplicate_keys(node, ())
    ]
    if data.get("id") != path.stem:
        # The file name is how people find a trial; an id that differs from it misleads them.
        line, got = _line(node, ("id",)), data.get("id")
        problems.append(f"{path}:{line}: id: must be the file name {path.stem!r}, got {got!r}")
    try:
        trial = Trial.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(path, node, data, err) for err in exc.errors())
        return None, problems
    # Returned even with problems so the checks across files still see this trial's ids.
    return TrialSource(trial=trial, path=path, node=node), problems


def _describe(path: Path, node: yaml.Node | None, data: Any, err: ErrorDetails) -> str:
    loc: Loc = tuple(err["loc"])
    message = str(err["ctx"]["error"]) if err["type"] == "value_error" and "ctx" in err else err["msg"]
    if (match := _PATH_PREFIX.match(message)) is not None:
        loc += tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
        message = match.group(2)
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, bool | int | float):
        message += f" (YAML read {value!r} as {type(value).__name__}; quote it)"
    elif isinstance(value, str | int | float) and err["type"] not in ("value_error", "missing"):
        message += f" (got {value!r})"
    return f"{path}:{_line(node, loc)}: {_dotted(loc)}{_label(data, loc)}: {message}"


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _label(data: Any, loc: Loc) -> str:
    """` (in onjuku-cam-03)`: the id of the innermost list item on the path, so a reader needn't count."""
    label = ""
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            keys = ("id", "name", "type")
            ident = next((data[k] for k in keys if isinstance(data, dict) and k in data), None)
            if isinstance(ident, str):
                label = f" (in {ident})"
        else:
            break
    return label


def _line(node: yaml.Node | None, loc: Loc) -> int:
    """The 1-based line of the deepest node on `loc` that exists (a missing key: its parent's line)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _duplicate_keys(node: yaml.Node | None, loc: Loc) -> Iterator[tuple[Loc, int, str]]:
    # PyYAML keeps the last of two equal keys without a word; a second `devices:` would hide the first.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                yield loc, key.start_mark.line + 1, name
            seen.add(name)
            yield from _duplicate_keys(value, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, i))
