"""The declarative schema's vocabulary: pydantic field types that speak the configuration's
messages, and the mapping of pydantic's errors to located problems.

Each type validates one YAML value the way the configuration has always been read (a string
or a list for a list of strings, ``30s`` or a number for a duration, a real boolean for a flag)
and fails with the project's own wording, so a model written with them reports exactly what
the hand-written reader did. :func:`report` turns a :class:`pydantic.ValidationError` into
problems located like ``policy.exceptions[1].rule``: unknown keys (``extra="forbid"``) get the
nearest known key suggested, listed before the other problems of the same mapping.
"""

from __future__ import annotations

import difflib
import math
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from .labels import LABEL_NAME_RE, RESERVED_LABELS

if TYPE_CHECKING:
    from .checker import Checker
from .durations import format_duration, parse_duration

# Every problem the types below raise has this error type; its message is the problem's text.
_PROBLEM = "certscope"
# A key the mapping does not accept (``invalid_key``: one that is not text, e.g. ``1:``).
_UNKNOWN = ("extra_forbidden", "invalid_key")


#: A problem about the mapping as a whole, reported at the mapping's own location.
HERE = "certscope_here"


def problem(msg: str, kind: str = _PROBLEM) -> PydanticCustomError:
    """The error a validator raises: ``msg`` is reported as it is, at the field's location
    (``kind=HERE``: at the location of the mapping that holds the field)."""
    # No context is given, so braces in quoted input are not read as template fields.
    return PydanticCustomError(kind, msg)


class Section(BaseModel):
    """A mapping of the configuration: unknown keys are errors, the parsed model is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


_M = TypeVar("_M", bound=Section)


# --- values ---------------------------------------------------------------------------------


def text(v: object) -> str | None:
    if v is None:
        return None  # an explicit null reads as the key left out
    if not isinstance(v, str) or not v.strip():
        raise problem(f"must be a non-empty string, got {type_name(v)}")
    return v


def required_text(v: object) -> str:
    given = text(v)
    if given is None:
        raise problem("is required")
    return given


def texts(v: object) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise problem("must be a list of non-empty strings")
    return tuple(v)


def _flag(v: object) -> bool:
    if not isinstance(v, bool):
        raise problem(f"must be true or false, got {type_name(v)}")
    return v


def one_of(allowed: Sequence[str], msg: str) -> PlainValidator:
    """A non-empty string from ``allowed``; anything else fails with ``msg``."""

    def check(v: object) -> str | None:
        given = text(v)
        if given is not None and given not in allowed:
            raise problem(msg)
        return given

    return PlainValidator(check)


def choices(allowed: Sequence[str]) -> PlainValidator:
    """A list of values from ``allowed`` (a single string is a list of one)."""

    def check(v: object) -> tuple[str, ...]:
        values = texts(v)
        bad = [x for x in values if x not in allowed]
        if bad:
            raise problem(f"unknown value {bad[0]!r}; allowed: {', '.join(allowed)}")
        return values

    return PlainValidator(check)


def duration(minimum: float = 0.0) -> PlainValidator:
    """A duration (``1h30m``, ``500ms``, or seconds) of at least ``minimum``."""

    def check(v: object) -> float:
        try:
            seconds = parse_duration(v)
        except ValueError as exc:
            raise problem(str(exc)) from None
        if seconds < minimum:
            raise problem(f"must be at least {format_duration(minimum)}")
        return seconds

    return PlainValidator(check)


def number(lo: float, hi: float) -> PlainValidator:
    """A finite number from ``lo`` to ``hi`` (a boolean is not a number)."""

    def check(v: object) -> float:
        # NaN fails every comparison, but say so explicitly: a NaN that slipped through would
        # poison every computation it reaches.
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        if not ok or (isinstance(v, float) and not math.isfinite(v)) or not lo <= v <= hi:  # type: ignore[operator]
            raise problem(f"must be a number from {lo:g} to {hi:g}")
        return float(v)  # type: ignore[arg-type]

    return PlainValidator(check)


def listed(msg: str) -> BeforeValidator:
    """A list (null: empty) whose items the annotated item type validates; else ``msg``."""

    def check(v: object) -> object:
        if v is None:
            return []
        if not isinstance(v, list):
            raise problem(msg.format(got=type_name(v)))
        return v

    return BeforeValidator(check)


def string_list() -> BeforeValidator:
    """A list of non-empty strings (one string is a list of one) whose items are then checked."""
    return BeforeValidator(lambda v: list(texts(v)))


def file_problem(path: str, pem_certs: bool = False) -> str | None:
    """Why the file at ``path`` cannot serve (None: it can be read, and for ``pem_certs`` holds
    a PEM certificate). Read when the configuration is checked, so a typo fails at once."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4 * 1024 * 1024)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if pem_certs and b"-----BEGIN CERTIFICATE-----" not in head:
        return f"{path} contains no PEM certificate"
    return None


def label_name_problem(k: object) -> str | None:
    """Why ``k`` cannot be a configured label name (None: it can)."""
    if not isinstance(k, str) or not LABEL_NAME_RE.match(k) or k.startswith("__"):
        return "is not a valid Prometheus label name"
    if k in RESERVED_LABELS:
        return "is a label name certscope sets itself; choose another"
    return None


def label_value_problem(v: object) -> str | None:
    """Why ``v`` cannot be a label value (None: it can, as text)."""
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        return f"label values must be strings, got {type_name(v)}"
    return None


def label_name(k: object) -> str:
    why = label_name_problem(k)
    if why:
        raise problem(why)
    return str(k)


def _label_value(v: object) -> str:
    why = label_value_problem(v)
    if why:
        raise problem(why)
    return str(v)


def _label_map(v: object) -> object:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise problem(f"must be a mapping of label names to values, got {type_name(v)}")
    return v


Labels = Annotated[
    dict[Annotated[str, PlainValidator(label_name)], Annotated[str, PlainValidator(_label_value)]],
    BeforeValidator(_label_map),
]
Text = Annotated[str | None, PlainValidator(text)]
RequiredText = Annotated[str, PlainValidator(required_text)]
Texts = Annotated[tuple[str, ...], PlainValidator(texts)]
Flag = Annotated[bool | None, PlainValidator(_flag)]


# --- errors ---------------------------------------------------------------------------------


def validate(
    c: Checker,
    model: type[_M],
    raw: object,
    loc: str,
    preface: Sequence[tuple[str, str]] = (),
    **context: object,
) -> _M:
    """``raw`` (null: an empty mapping) as ``model``, its problems recorded on ``c``; the
    ``preface`` problems (location, message), found by a check across the mapping's first keys,
    are listed after its unknown keys and before its fields' problems.

    A field with a problem takes its default and the others keep their values, as a reader
    that goes on after a problem would: what is checked across fields and entries (a target's
    timeout against its interval, duplicate names) still sees every value that was valid.
    """
    data = {} if raw is None else raw
    try:
        valid = model.model_validate(data, context=context)
    except ValidationError as exc:
        report(c, exc, model, loc, data, preface)
        bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
        if not isinstance(data, dict):
            return model()
        kept = {k: v for k, v in data.items() if k not in bad}
        # A check about the mapping as a whole has been said or has no say once a field is out.
        return model.model_validate(kept, context={**context, "clean": False})
    for where, msg in preface:
        c.add(where, msg)
    return valid


def report(
    c: Checker,
    exc: ValidationError,
    model: type[BaseModel],
    loc: str,
    data: object,
    preface: Sequence[tuple[str, str]] = (),
) -> None:
    """Record every error of ``exc`` (from validating ``data`` as ``model`` at ``loc``) on
    ``c``."""
    errors = exc.errors(include_url=False, include_context=False)
    # A mapping with an unknown key is not judged as a whole: the key may be the misspelt half.
    unknown = {tuple(e["loc"][:-1]) for e in errors if e["type"] in _UNKNOWN}
    # A mapping's value is not judged when its key is already wrong.
    bad_keys = {_path(e) for e in errors if "[key]" in e["loc"]}
    pending = list(preface)
    for err in _in_reading_order(errors):
        path = _path(err)
        if pending and not (err["type"] in _UNKNOWN and len(path) == 1):
            for where, msg in pending:
                c.add(where, msg)
            pending = []
        if path in bad_keys and "[key]" not in err["loc"]:
            continue
        if err["type"] == HERE:
            if path[:-1] not in unknown:
                c.add(_where(loc, path[:-1], data), err["msg"])
            continue
        c.add(_where(loc, path, data), _message(err, model, path))
    for where, msg in pending:
        c.add(where, msg)


def _path(err: ErrorDetails) -> tuple[int | str, ...]:
    return tuple(p for p in err["loc"] if p != "[key]")


def _message(err: ErrorDetails, model: type[BaseModel], path: tuple[int | str, ...]) -> str:
    kind = err["type"]
    if kind == _PROBLEM:
        return err["msg"]
    if kind in _UNKNOWN:
        known = _fields_at(model, path[:-1])
        hint = difflib.get_close_matches(str(path[-1]), known, n=1)
        return "unknown key" + (f' (did you mean "{hint[0]}"?)' if hint else "")
    if kind == "missing":
        return "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {type_name(err['input'])}"
    # Every field is declared with the types above, so this is a schema bug; say what failed.
    return f"is invalid ({kind})"


def _in_reading_order(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """pydantic lists a mapping's unknown keys after its fields' problems; a reader looks at a
    mapping's keys first, so they move ahead of the other problems of their mapping."""
    first: dict[tuple[int | str, ...], int] = {}
    for i, err in enumerate(errors):
        for k in range(1, len(err["loc"]) + 1):
            first.setdefault(tuple(err["loc"][:k]), i)

    def key(err: ErrorDetails) -> tuple[int, ...]:
        loc = tuple(err["loc"])
        ranks = [first[loc[:k]] for k in range(1, len(loc) + 1)]
        if err["type"] in _UNKNOWN:
            ranks[-1] = -1
        return tuple(ranks)

    return sorted(errors, key=key)


def _where(loc: str, path: tuple[int | str, ...], data: object) -> str:
    """``policy.exceptions[1].rule``: a list's item by its index, a mapping's by its key (which
    YAML may have made a number), told apart by the document itself."""
    out, here = loc, data
    for part in path:
        if isinstance(part, int) and not isinstance(here, dict):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
        if isinstance(here, dict):
            here = here.get(part)
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
        else:
            here = None
    return out


def _fields_at(model: type[BaseModel], path: tuple[int | str, ...]) -> tuple[str, ...]:
    """The keys the mapping at ``path`` (under ``model``) accepts, for the suggestion."""
    found = _model_at(model, path)
    return tuple(found.model_fields) if found else ()


def _model_at(ann: object, path: tuple[int | str, ...]) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        if not path:
            return ann
        field = ann.model_fields.get(str(path[0]))
        return _model_at(field.annotation, path[1:]) if field else None
    origin = get_origin(ann)
    if origin is Annotated:
        return _model_at(get_args(ann)[0], path)
    if origin in (Union, types.UnionType):
        inner = (_model_at(a, path) for a in get_args(ann) if a is not type(None))
        return next((m for m in inner if m), None)
    if origin in (list, tuple, dict) and path:
        # A list's index or a mapping's key steps into the item type (``tuple[X, ...]``: X).
        args = get_args(ann)
        return _model_at(args[-1] if origin is dict else args[0], path[1:])
    return None


def type_name(v: object) -> str:
    """How a problem names the YAML type it got."""
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(v), type(v).__name__)
