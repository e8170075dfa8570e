"""How options are declared, read and compared.

Each command's options dataclass is the one place an option is declared: its type, its default, its help text
(the docstring under the field) and its checks (`__post_init__`, with errors that say what to do). Option groups
shared by several commands (decoding, backend, runtime, training) are dataclasses nested in them. From the
dataclass:
- `parse_args` makes the command line (tyro: `--name` per field, nested groups flattened, every default in --help);
- `from_mapping` builds it from a recipe stage's YAML mapping (keys as on the command line);
- `identity` says what a run is for resuming and skipping: every field but the `neutral` ones (threads, how often
  to save...), which change how a run goes, not what it computes.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

import tyro

from .errors import DwzError

T = TypeVar("T")

NEUTRAL = "neutral"  # field metadata key: the option does not change what a run computes
# Nested groups share the command's namespace (`--learning-rate`, not `--training.learning-rate`); a switch is
# one flag (`--strict`; a field that defaults to True gets `--no-NAME`).
CLI_CONFIG = (tyro.conf.OmitArgPrefixes, tyro.conf.FlagCreatePairsOff)


def neutral(default: Any = None) -> Any:
    """A field that changes how a run goes (speed, logging, stops), not what it computes; left out of `identity`."""
    return dataclasses.field(default=default, metadata={NEUTRAL: True})


def parse_args(cls: type[T], argv: Sequence[str], prog: str, description: str) -> T:
    """Options of type `cls` from command-line arguments (argparse-style errors exit with status 2)."""
    return tyro.cli(cls, args=list(argv), prog=prog, description=description, config=CLI_CONFIG)


def cli_name(name: str) -> str:
    return name.replace("_", "-")


def cli_flags(cls: type) -> set[str]:
    """The long flags `parse_args` gives dataclass `cls` (a switch that defaults to on is `--no-NAME`)."""
    flags = set()
    for name, option in option_fields(cls).items():
        on_by_default = _strip_annotated(option.type) is bool and option.field.default is True
        flags.add(f"--{'no-' if on_by_default else ''}{cli_name(name)}")
    return flags


@dataclasses.dataclass(frozen=True)
class OptionField:
    """One option of a command, wherever it is nested: `path` leads from the command's dataclass to it."""

    path: tuple[str, ...]
    field: dataclasses.Field
    type: Any  # resolved, without Annotated

    @property
    def name(self) -> str:
        return self.path[-1]


def option_fields(cls: type) -> dict[str, OptionField]:
    """Every option of dataclass `cls` by field name, nested groups flattened as on the command line."""
    found: dict[str, OptionField] = {}

    def walk(owner: type, prefix: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(owner)
        for f in dataclasses.fields(owner):
            if not f.init:
                continue
            kind = hints[f.name]
            if dataclasses.is_dataclass(kind):
                walk(kind, (*prefix, f.name))
                continue
            if f.name in found:
                raise TypeError(f"{cls.__name__}: option {f.name!r} is declared twice")
            found[f.name] = OptionField((*prefix, f.name), f, kind)

    walk(cls, ())
    return found


def from_mapping(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Options of type `cls` from a mapping keyed like the command line (`max-cer` or `max_cer`), each value
    checked against the field's type; an unknown key is an error naming `where`, the key and the closest option."""
    known = option_fields(cls)
    nested: dict[tuple[str, ...], dict[str, Any]] = {}
    for key, value in values.items():
        name, value = _switch_name(str(key).replace("-", "_"), value, known)
        if name not in known:
            raise DwzError(f"{where}: no option {key!r}{_hint(name, known)}")
        option = known[name]
        nested.setdefault(option.path[:-1], {})[name] = _checked(value, option.type, f"{where}: {cli_name(name)}")
    given = {name for values in nested.values() for name in values}
    missing = [cli_name(n) for n, o in known.items() if _required(o.field) and n not in given]
    if missing:
        raise DwzError(f"{where}: needs {', '.join(missing)}")
    return _build(cls, (), nested)


def _switch_name(name: str, value: Any, known: dict[str, OptionField]) -> tuple[str, Any]:
    """`no-fallback: true` as on the command line (`--no-fallback`) is `fallback: false`."""
    base = name.removeprefix("no_")
    if name not in known and base in known and known[base].field.default is True and isinstance(value, bool):
        return base, not value
    return name, value


def _hint(name: str, known: dict[str, OptionField]) -> str:
    if name == "args":  # positional arguments have names too
        required = [cli_name(n) for n, o in known.items() if _required(o.field)]
        return f"; name the arguments: {', '.join(required)}" if required else ""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {cli_name(close[0])!r}?" if close else ""


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _build(cls: type, prefix: tuple[str, ...], nested: dict[tuple[str, ...], dict[str, Any]], base: Any = None) -> Any:
    """`cls` from the values given under `prefix`; a nested group keeps the command's own defaults (`base`, e.g.
    finetune's learning rate) for every key not given."""
    hints = typing.get_type_hints(cls)
    kwargs = dict(nested.get(prefix, {}))
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and any(p[: len(path)] == path for p in nested):
            default = getattr(base, f.name) if base is not None else _field_default(f, hints[f.name])
            kwargs[f.name] = _build(hints[f.name], path, nested, default)
    return cls(**kwargs) if base is None else dataclasses.replace(base, **kwargs)


def _field_default(f: dataclasses.Field, kind: type) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return kind() if f.default is dataclasses.MISSING else f.default


def _checked(value: Any, kind: Any, where: str) -> Any:
    """`value` (from YAML) as a value of type `kind`, or a DwzError that says what was expected."""
    kind = _strip_annotated(kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return _checked(value, others[0], where) if len(others) == 1 else value
    if origin is typing.Literal:
        if value is False and "no" in args:  # YAML 1.1 reads a bare `no` as false
            value = "no"
        if value not in args:
            raise DwzError(f"{where} is {value!r}: choose one of {', '.join(map(str, args))}")
        return value
    if origin in (list, tuple):
        items = value if isinstance(value, list) else [value]  # one value where a list goes: a list of one
        item_type = args[0] if args else Any
        checked = [_checked(item, item_type, where) for item in items]
        return checked if origin is list else tuple(checked)
    if origin is dict:
        if not isinstance(value, dict):
            raise DwzError(f"{where}: expected a mapping (NAME: VALUE), got {value!r}")
        key_type, value_type = args
        return {_checked(k, key_type, where): _checked(v, value_type, where) for k, v in value.items()}
    return _scalar(value, kind, where)


def _scalar(value: Any, kind: Any, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise DwzError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in (int, float) and not isinstance(value, bool):
        try:  # a number, or a string that reads as one (as on the command line: a filled-in recipe template)
            number = kind(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and (kind is float or not isinstance(value, float) or number == value):
            return number
    if kind is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if kind is Any:
        return value
    raise DwzError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def _strip_annotated(kind: Any) -> Any:
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    return kind


def check_choices(options: Any) -> None:
    """A DwzError for the first field of `options` (not nested) whose value is not one of its Literal choices: the
    check for options built in code, which neither tyro nor `from_mapping` saw."""
    for name, kind in typing.get_type_hints(type(options)).items():
        kind, value = _strip_optional(_strip_annotated(kind)), getattr(options, name)
        if typing.get_origin(kind) is typing.Literal and value is not None and value not in typing.get_args(kind):
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise DwzError(f"--{cli_name(name)} {value!r}: choose one of {choices}")


def _strip_optional(kind: Any) -> Any:
    """`X` for `X | None` (None is then the field's "not given"), else `kind`."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else kind
    return kind


def identity(options: Any) -> dict[str, Any]:
    """What `options` compute, as JSON-ready values: every field, nested groups as mappings, but the neutral ones."""
    values = {}
    for f in dataclasses.fields(options):
        if f.metadata.get(NEUTRAL):
            continue
        value = getattr(options, f.name)
        values[f.name] = identity(value) if dataclasses.is_dataclass(value) else _plain(value)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def defaults(cls: type) -> dict[str, Any]:
    """`identity` of the fields of `cls` that have a default, at their defaults (nested groups whole)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get(NEUTRAL):
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue
        value = _field_default(f, hints[f.name])
        values[f.name] = identity(value) if dataclasses.is_dataclass(value) else _plain(value)
    return values
