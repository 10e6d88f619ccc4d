"""Route guards: who may call a route, how its body and query are read, what it answers.

Every ``/api/v1`` view is wrapped by exactly one of :func:`require` or :func:`public`; a test
walks the routes and fails on any that has neither. :func:`body`, :func:`query` and
:func:`responds` declare what a route takes and answers; the OpenAPI document is built from them.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Awaitable, Callable, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from quart import g, request
from werkzeug.routing import IntegerConverter

from ..auth.access import ALL_PERMISSIONS, Access, load_access
from ..context import get_context
from ..db.models import ApiToken, User
from ..errors import Forbidden, NotAuthenticated, NotFound, ValidationFailed, validation_problems

SESSION_COOKIE = "valt_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
M = TypeVar("M", bound=BaseModel)

#: Deepest nesting of arrays and objects a JSON body may have. Valt's bodies need 3; Python's
#: parser would otherwise recurse until it fails (a 500) on a body nested 100,000 deep.
MAX_JSON_DEPTH = 32
#: Largest id a database row can have (signed 64-bit), and so the largest integer a body may hold.
MAX_ID = 2**63 - 1
MIN_INT = -(2**63)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

def _integral(value: Any) -> Any:
    # JSON Schema counts 1.0 as an integer (a number with no fraction), and so do the clients
    # written against the OpenAPI document: an id sent as 1.0 is id 1. 1.5 stays refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A database row id: 1 .. 2^63-1 (``1.0`` is 1, as JSON Schema has it).
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integral)]


def up_to(limit: int) -> str:
    """A regular expression matching exactly the decimal numbers 1..``limit`` (no leading zeros)."""
    digits = str(limit)
    options = [rf"[1-9]\d{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            rest = len(digits) - i - 1
            options.append(digits[:i] + f"[{low}-{int(d) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a row id, 1..2^63-1; any other number is no such page (404).

    Registered on the app in place of werkzeug's ``int``, which passes 2^64 on to the database
    (an OverflowError there). The bound is in the pattern itself, not only in a check after
    matching: werkzeug answers 405 rather than 404 when a path matched a rule of another method
    and this one's check failed (``DELETE /cameras/0``).
    """

    regex = up_to(MAX_ID)

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = 1, max: int | None = MAX_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class RequestModel(BaseModel):
    """Base for request bodies: unknown fields refused, types strict, numbers finite.

    Strict means ``"enabled": 0`` is not a boolean and ``"5"`` is not a number: a client that
    sends the wrong type hears about it instead of getting a guess.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


_TIME_FIELDS: dict[type, frozenset[str]] = {}


class QueryModel(BaseModel):
    """Base for query parameters: text converted to the declared types, numbers finite.

    Unknown parameters are ignored, as HTTP clients and caches add their own. A time is ISO 8601
    text, as the OpenAPI document says (``date-time``); pydantic would also take ``0.5`` as
    seconds since 1970.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @classmethod
    def time_fields(cls) -> frozenset[str]:
        """The parameters that are times (``format: date-time`` in the document)."""
        found = _TIME_FIELDS.get(cls)
        if found is None:
            props = cls.model_json_schema().get("properties", {})
            found = _TIME_FIELDS[cls] = frozenset(name for name, prop in props.items()
                                                  if '"date-time"' in json.dumps(prop))
        return found

    @model_validator(mode="before")
    @classmethod
    def _times_are_iso(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.time_fields():
                value = data.get(name)
                if isinstance(value, str) and not _ISO_DATE.match(value):
                    raise ValueError(f"{name}: give a date and time in ISO 8601, e.g. 2026-12-02T10:00:00+00:00")
        return data


@dataclass(frozen=True)
class Caller:
    """Who is calling: the user, what they may do, their token, and whether it came in a cookie."""

    user: User
    access: Access
    token: ApiToken
    via_cookie: bool


async def authenticate() -> Caller:
    """The caller of the current request, from ``Authorization: Bearer`` or the session cookie.

    A cookie-borne session must present its CSRF token on state-changing requests.
    """
    ctx = get_context()
    header = request.headers.get("Authorization", "")
    via_cookie = False
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("send Authorization: Bearer <token>")
        token = token.strip()
    else:
        token = request.cookies.get(SESSION_COOKIE, "")
        via_cookie = True
    if not token:
        raise NotAuthenticated("sign in first: POST /api/v1/auth/login")
    found = await ctx.sessions.user_for_token(token)
    if found is None:
        raise NotAuthenticated("the token is invalid or has expired; sign in again")
    if via_cookie and request.method in UNSAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER) or (await request.form).get("csrf_token")
        if not ctx.sessions.csrf_ok(token, presented):
            raise Forbidden("missing or wrong CSRF token")
    user, row = found
    return Caller(user=user, access=await load_access(ctx.db, user), token=row, via_cookie=via_cookie)


#: The "permission" of routes open to anyone signed in, whatever they may do (who am I, sign out).
SIGNED_IN = "signed-in"


def require(permission: str) -> Callable[[F], F]:
    """Allow the route only to signed-in callers who hold ``permission`` (in some room, at least:
    a route about one room checks that room itself)."""
    if permission not in ALL_PERMISSIONS and permission != SIGNED_IN:
        raise ValueError(f"unknown permission {permission!r}")

    def wrap(view: F) -> F:
        @functools.wraps(view)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = await authenticate()
            if permission != SIGNED_IN and not caller.access.allows(permission):
                raise Forbidden(f"you may not do this: it needs the right {permission!r}")
            g.caller = caller
            return await view(*args, **kwargs)

        guarded.valt_permission = permission  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return wrap


def check_room(permission: str, room_id: int | None) -> None:
    """Raise unless the caller holds ``permission`` in ``room_id`` (a route about one room).

    A room the caller may not even see answers 404, as if it did not exist; one they see but
    may not do this in, 403. A camera outside any room counts as room 0: only a grant for
    every room reaches it.
    """
    access = caller().access
    room = room_id or 0
    if not access.allows("rooms.view", room):
        raise NotFound(f"no room {room_id}" if room_id else "no such camera")
    if not access.allows(permission, room):
        raise Forbidden(f"you may not do this in room {room_id}: it needs the right {permission!r} there")


def public(view: F) -> F:
    """Mark a route as open to anyone (login, health, the OpenAPI document)."""
    view.valt_public = True  # type: ignore[attr-defined]
    return view


def body(model: type[M], *, optional: bool = False) -> Callable[[F], F]:
    """Document that the route takes a JSON body of ``model`` (read it with :func:`read_body`).

    ``optional``: the body may be left out (the model's defaults apply).
    """

    def wrap(view: F) -> F:
        view.valt_body = model  # type: ignore[attr-defined]
        view.valt_body_optional = optional  # type: ignore[attr-defined]
        return view

    return wrap


def query(model: type[M]) -> Callable[[F], F]:
    """Document that the route takes the query parameters of ``model`` (read with :func:`read_query`)."""

    def wrap(view: F) -> F:
        view.valt_query = model  # type: ignore[attr-defined]
        return view

    return wrap


def headers_in(spec: dict[str, tuple[str, bool, dict]]) -> Callable[[F], F]:
    """Document the request headers a protocol route reads (tus): name -> (description,
    required, JSON schema). The route reads and checks them itself."""

    def wrap(view: F) -> F:
        view.valt_headers = dict(spec)  # type: ignore[attr-defined]
        return view

    return wrap


def raw_body(media_type: str, description: str, *, optional: bool = False) -> Callable[[F], F]:
    """Document that the route takes raw bytes of ``media_type``, read as a stream (tus PATCH)."""

    def wrap(view: F) -> F:
        view.valt_raw_body = (media_type, description, optional)  # type: ignore[attr-defined]
        return view

    return wrap


@dataclass(frozen=True)
class Response:
    """One declared answer of a route: its status, body schema and media type."""

    status: int
    schema: Any = None
    media_type: str | tuple[str, ...] | None = "application/json"
    description: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def responds(status: int, schema: Any = None, *, media_type: str | tuple[str, ...] | None = "application/json",
             description: str = "", errors: tuple[int, ...] = (),
             headers: dict[str, str] | None = None) -> Callable[[F], F]:
    """Declare a success answer of the route (and any error statuses beyond the inferred ones).

    ``schema`` is a pydantic model, a type such as ``list[Model]``, or a JSON schema dict;
    ``media_type`` is one type or a tuple of the types it may be, ``None`` for no body (204).
    401/403 (guarded routes), 404 (path ids),
    400 (a body or query) and 503 (the database) are inferred by the OpenAPI builder.
    ``headers`` names response headers with their description.
    """

    def wrap(view: F) -> F:
        declared = list(getattr(view, "valt_responses", ()))
        declared.append(Response(status, schema, media_type, description, dict(headers or {})))
        view.valt_responses = declared  # type: ignore[attr-defined]
        view.valt_errors = tuple(getattr(view, "valt_errors", ())) + tuple(errors)  # type: ignore[attr-defined]
        return view

    return wrap


# Strings in JSON, so that brackets inside them are not counted as nesting.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects deeper than ``limit``.

    Counted on the bytes before parsing, so a hostile body costs one linear scan.
    """
    depth = 0
    for byte in _JSON_STRING.sub(b'""', raw).translate(None, _BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    value = int(text)
    if not MIN_INT <= value <= MAX_ID:
        raise ValueError("an integer beyond 64 bits")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is beyond the range of a number")
    return value


def parse_json(raw: bytes) -> Any:
    """Parse a JSON request body, refusing what no Valt route means and what would break it.

    Refused with :class:`ValidationFailed`: bytes that are not UTF-8, nesting deeper than
    :data:`MAX_JSON_DEPTH`, ``NaN``/``Infinity`` (or ``1e400``, which is one) and integers
    outside 64 bits (no database column holds them).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValidationFailed(f"the body is not valid UTF-8 (byte {err.start})") from None
    if json_depth_exceeds(raw):
        raise ValidationFailed(f"the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except ValueError as err:
        # json.JSONDecodeError is a ValueError; so are the hooks' refusals.
        raise ValidationFailed(f"the body is not valid JSON: {err}") from None


async def read_body(model: type[M], *, optional: bool = False) -> M:
    """The request's JSON body validated into ``model``; :class:`ValidationFailed` if not.

    ``optional``: an empty body, or JSON ``null``, gives the model's defaults (the OpenAPI
    document says so: such a body is the model or ``null``).
    """
    raw = await request.get_data(cache=True)
    if optional and not raw.strip():
        return model()
    if not request.is_json:
        raise ValidationFailed("send a JSON object with Content-Type: application/json")
    data = parse_json(raw)
    if optional and data is None:
        return model()
    if not isinstance(data, dict):
        raise ValidationFailed("send a JSON object with Content-Type: application/json")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed("invalid request body", fields=validation_problems(err, "unknown field")) from err


def read_query(model: type[M]) -> M:
    """The request's query parameters validated into ``model``; :class:`ValidationFailed` if not.

    A parameter given twice is refused rather than one of its values silently picked.
    """
    args = request.args
    data: dict[str, Any] = {}
    for name in args:
        values = args.getlist(name)
        if name in model.model_fields and len(values) > 1:
            raise ValidationFailed(f"give {name} once", fields={name: "given more than once"})
        data[name] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = validation_problems(err, "unknown parameter")
        raise ValidationFailed("invalid query parameters", fields=problems) from err


def caller() -> Caller:
    """The authenticated caller of the current request (inside a :func:`require` route)."""
    return g.caller


def remote_addr() -> str:
    """The client address, for the audit log."""
    return request.remote_addr or ""
