"""A channel type's settings as form inputs: read from its settings model (connectors'
`settings.py`), so each form has the keys the config file and the API take. Credentials
(`SecretStr`) are inputs that are never filled in: a form says whether one is set, an
empty one keeps it, a value replaces it."""

from __future__ import annotations

import inspect
import re
import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from multidict import MultiDictProxy
from pydantic import BaseModel, SecretStr

# The keys shown first for each type; the others are under "more settings".
MAIN: dict[str, tuple[str, ...]] = {
    "webchat": ("name", "allowed_origins", "identity_secret"),
    "facebook": ("name", "app_secret", "verify_token", "pages", "app_id", "human_agent_tag"),
    "zalo": (
        "name",
        "oa_id",
        "app_id",
        "app_secret",
        "oa_secret_key",
        "access_token",
        "refresh_token",
        "zns_templates",
    ),
    "email": ("name", "address", "from_name", "imap", "smtp", "oauth"),
}
# Rows of a list of objects (Facebook pages) a form offers.
MAX_ROWS = 20


@dataclass(frozen=True)
class Input:
    """One key of the settings, as a form shows it."""

    path: str  # "name", "imap.host", "pages"
    kind: str  # text | secret | bool | select | lines | pairs | rows | group
    required: bool
    default: str  # shown as the placeholder
    options: tuple[str, ...] = ()
    children: tuple[Input, ...] = ()  # a group's keys, a row's keys (paths relative)

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def top(self) -> str:
        return self.path.split(".", 1)[0]


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type under Annotated and Optional, and whether None is allowed."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def _default_text(info: Any) -> str:
    if info.is_required():
        return ""
    value = info.get_default(call_default_factory=True)
    if value is None or isinstance(value, SecretStr | BaseModel):
        return ""
    return shown(value)


def shown(value: Any) -> str:
    """A setting's value as a form's input holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "\n".join(shown(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(f"{k} = {shown(v)}" for k, v in value.items())
    return str(value)


def inputs_of(
    model: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = ("id", "type")
) -> list[Input]:
    """The inputs of a settings model (a channel's ``id`` and ``type`` left out)."""
    found = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        path = prefix + name
        kind_of, _optional = _unwrap(info.annotation)
        required = info.is_required()
        default = _default_text(info)
        origin = get_origin(kind_of)
        if kind_of is SecretStr:
            found.append(Input(path, "secret", required, ""))
        elif kind_of is bool:
            found.append(Input(path, "bool", required, default))
        elif origin is Literal:
            found.append(Input(path, "select", required, default, tuple(get_args(kind_of))))
        elif origin is list:
            item, _ = _unwrap(get_args(kind_of)[0])
            if inspect.isclass(item) and issubclass(item, BaseModel):
                found.append(
                    Input(path, "rows", required, "", children=tuple(inputs_of(item, skip=())))
                )
            else:
                found.append(Input(path, "lines", required, default))
        elif origin is dict:
            found.append(Input(path, "pairs", required, default))
        elif inspect.isclass(kind_of) and issubclass(kind_of, BaseModel):
            children = tuple(inputs_of(kind_of, path + ".", skip=()))
            found.append(Input(path, "group", required, "", children=children))
        else:
            found.append(Input(path, "text", required, default))
    return found


def flat(inputs: list[Input] | tuple[Input, ...]) -> list[Input]:
    """Every input, groups' keys included (rows stay one input)."""
    out: list[Input] = []
    for item in inputs:
        if item.kind == "group":
            out.extend(flat(item.children))
        else:
            out.append(item)
    return out


def get_path(settings: Any, path: str) -> Any:
    value = settings
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    steps = path.split(".")
    for step in steps[:-1]:
        target = target.setdefault(step, {})
    target[steps[-1]] = value


def field_of(api_field: str | None, type_: str, known: set[str]) -> str | None:
    """The input an error of the API names: ``facebook.pages.0.access_token`` (a
    validation error's ``loc``) or ``pages[0].access_token`` (credentials_required) ->
    ``pages.0.access_token``; the nearest input that exists, or None for the form."""
    if not api_field:
        return None
    path = re.sub(r"\[(\d+)\]", r".\1", api_field).strip(".")
    if path == type_ or path.startswith(type_ + "."):
        path = path[len(type_) + 1 :]
    while path:
        if path in known:
            return path
        path = path.rpartition(".")[0]
    return None


@dataclass
class Typed:
    """What a form held, for showing it again (credentials never kept)."""

    values: dict[str, str] = field(default_factory=dict)  # path -> text typed
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # rows' ids typed
    errors: dict[str, str] = field(default_factory=dict)  # path -> message


def _text(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pairs(text: str) -> dict[str, str] | None:
    out = {}
    for line in _lines(text):
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            return None
        out[key.strip()] = value.strip().strip('"')
    return out


def read_form(
    form: MultiDictProxy[Any],
    inputs: list[Input],
    current: dict[str, Any] | None,
    secrets_set: set[str],
    t: Any,
) -> tuple[dict[str, Any], Typed]:
    """The body for the API from a posted form: on a new channel (``current`` None) the
    keys given; on a change, a merge patch of the keys that differ from ``current``, and
    of the credentials typed (an empty one keeps its value). Errors found here (a line
    that is not ``name = value``, a page whose token must be given again) are in
    ``Typed.errors``, by input."""
    body: dict[str, Any] = {}
    typed = Typed()
    new = current is None
    for group in inputs:
        if group.kind != "group":
            _read(form, group, current, secrets_set, new, body, typed, t)
            continue
        given: dict[str, Any] = {}
        for item in group.children:
            _read(form, item, current, secrets_set, new, given, typed, t)
        optional_unset = not group.required and (new or get_path(current, group.path) is None)
        if optional_unset and not any(_given(form, i) for i in flat(group.children)):
            continue  # an optional section left as it came (e-mail's oauth)
        for key, value in given.items():
            body[key] = value if key not in body else {**body[key], **value}
    return body, typed


def _given(form: MultiDictProxy[Any], item: Input) -> bool:
    """Whether an input holds something else than what a form shows when nothing is set
    (a choice or a checkbox at its default counts as untouched)."""
    if item.kind == "bool":
        return (form.get(item.path) == "true") != (item.default == "true")
    value = _text(form, item.path).strip()
    if item.kind == "select":
        return value not in ("", item.default)
    return bool(value)


def _read(
    form: MultiDictProxy[Any],
    item: Input,
    current: dict[str, Any] | None,
    secrets_set: set[str],
    new: bool,
    body: dict[str, Any],
    typed: Typed,
    t: Any,
) -> None:
    path = item.path
    now = None if current is None else get_path(current, path)
    if item.kind == "secret":
        secret = _text(form, path)
        if secret:
            set_path(body, path, secret)
        elif not new and form.get("clear:" + path) == "1" and path in secrets_set:
            set_path(body, path, None)
        return
    if item.kind == "rows":
        _read_rows(form, item, current, secrets_set, new, body, typed, t)
        return
    raw = _text(form, path)
    typed.values[path] = raw
    if item.kind == "bool":
        checked = form.get(path) == "true"
        if new or checked != bool(now):
            set_path(body, path, checked)
        return
    if item.kind == "lines":
        lines = _lines(raw)
        if new:
            if lines:
                set_path(body, path, lines)
        elif lines != [shown(v) for v in (now or [])]:
            set_path(body, path, lines)
        return
    if item.kind == "pairs":
        pairs = _pairs(raw)
        if pairs is None:
            typed.errors[path] = t("channels.pairs_error")
            return
        if new:
            if pairs:
                set_path(body, path, pairs)
        elif pairs != {k: shown(v) for k, v in (now or {}).items()}:
            set_path(body, path, pairs)
        return
    value = raw.strip()
    if new:
        if value:
            set_path(body, path, value)
    elif value != shown(now):
        set_path(body, path, value or None)


def _read_rows(
    form: MultiDictProxy[Any],
    item: Input,
    current: dict[str, Any] | None,
    secrets_set: set[str],
    new: bool,
    body: dict[str, Any],
    typed: Typed,
    t: Any,
) -> None:
    """A list of objects (Facebook pages): one fieldset per row. Lists are replaced whole
    by a merge patch, so a changed list gives every row's credentials again."""
    path = item.path
    rows: list[dict[str, str]] = []
    secret_keys = [c.path for c in item.children if c.kind == "secret"]
    plain_keys = [c.path for c in item.children if c.kind != "secret"]
    for n in range(MAX_ROWS):
        row = {key: _text(form, f"{path}.{n}.{key}").strip() for key in plain_keys + secret_keys}
        if any(row.values()):
            rows.append(row)
    typed.rows[path] = [{k: row[k] for k in plain_keys} for row in rows]
    before = [] if current is None else (get_path(current, path) or [])
    same_rows = [{k: shown(r.get(k)) for k in plain_keys} for r in before] == typed.rows[path]
    if not new and same_rows and not any(row[k] for row in rows for k in secret_keys):
        return  # unchanged: the stored credentials stay
    for n, row in enumerate(rows):
        for key in secret_keys:
            if not row[key]:
                typed.errors[f"{path}.{n}.{key}"] = t(
                    "channels.row_secret_again" if not new else "channels.required"
                )
    if not rows and item.required:
        typed.errors[path] = t("channels.required")
    set_path(body, path, rows)
