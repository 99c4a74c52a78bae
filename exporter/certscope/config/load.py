"""Reading a configuration: YAML within size, depth and node limits, duplicate keys refused,
``CERTSCOPE_TARGETS`` from the environment. Every failure becomes a located problem."""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError, Problem
from .model import Config
from .schema import build_config

#: Limits on the YAML document, checked before it is built: ten thousand targets with an
#: address, a name and a label are about 0.75 MiB, 110,000 YAML events and 4 levels deep.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 500_000  # about 50,000 targets


def load_config(path: str) -> Config:
    """Read and validate a YAML config file."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [Problem("", f"cannot read {path}: {exc.strerror or exc}")], path
        ) from None
    return parse_config(text, path)


def parse_config(text: bytes | str, origin: str) -> Config:
    """Parse and validate; every failure, whatever raised it, becomes a located problem."""
    try:
        raw = load_yaml(text)
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError([Problem("", "the top level must be a mapping")], origin)
        return build_config(raw, origin)
    except ConfigError as exc:
        raise ConfigError(exc.problems, origin) from None
    except yaml.MarkedYAMLError as exc:
        where = _mark(exc.problem_mark)
        raise ConfigError([Problem(where, f"malformed YAML: {exc.problem}")], origin) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"malformed YAML: {exc}")], origin) from None
    except Exception as exc:  # documented boundary: a config must never crash the exporter
        # RecursionError, OverflowError, ValueError (int digit limit), MemoryError…: the type
        # names the limit that was hit; the message may quote the input, so it is left out.
        raise ConfigError(
            [Problem("", f"cannot load the configuration ({type(exc).__name__})")], origin
        ) from None


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


# libyaml's parser when PyYAML was built with it (ten times faster on large files).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """``yaml.SafeLoader`` that records duplicate mapping keys instead of keeping the last."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self.duplicates: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" keys are meant to be overridden
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: the constructor reports it below
            if first is not key_node.start_mark:
                self.duplicates.append(
                    Problem(
                        _mark(key_node.start_mark),
                        f"duplicate key {str(key)[:64]!r} (first at {_mark(first)})",
                    )
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


def load_yaml(text: bytes | str) -> object:
    """One YAML document within the limits above, duplicate keys refused (ConfigError)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem("", f"larger than {MAX_CONFIG_BYTES // 2**20} MiB")])
    # PyYAML's parser is iterative but its composer recurses once per level: measure the depth
    # on the event stream first, so deep nesting is a located problem, not a RecursionError.
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_SafeLoader)):
        if count > MAX_YAML_NODES:
            raise ConfigError(
                [Problem(_mark(event.start_mark), f"more than {MAX_YAML_NODES:,} YAML nodes")]
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    [Problem(_mark(event.start_mark), f"nested deeper than {MAX_YAML_DEPTH}")]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    loader = _Loader(text)
    try:
        raw = loader.get_single_data()
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates)
    return raw


def targets_from_env(value: str) -> list[dict[str, str]]:
    """``CERTSCOPE_TARGETS=host:port,host:port`` → raw target entries."""
    return [{"address": part.strip()} for part in value.split(",") if part.strip()]
