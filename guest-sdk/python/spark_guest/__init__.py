"""spark_guest for Python: write Spark sources, handlers and context functions as plain
functions, built into a component with componentize-py.

    from spark_guest import Event, Invocation, event, source

    @source
    def signup_events(signup: dict, inv: Invocation) -> list[Event]:
        return [event("signup_created", signup["id"], {"email": signup["email"]})]

``@source``, ``@handler`` and ``@context(...)`` leave the function as it is, so that a
test calls it directly, and give the module the class componentize-py exports
(``Source``, ``Handler``, ``Context``), which turns the host's JSON text into dicts and
back. The same module runs in plain CPython, for tests, where the component's bindings
(``wit_world``) are not there.
"""

import dataclasses
import json
import sys
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

try:
    # Inside a component: the bindings componentize-py generates for the world.
    from componentize_py_types import Err
    from wit_world.imports import types as wit
except ImportError:
    # Plain CPython, for tests: the exported classes are made but never called.
    Err = None
    wit = None

__all__ = [
    "Error",
    "Event",
    "Invocation",
    "Mail",
    "Output",
    "context",
    "event",
    "handler",
    "source",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Error(Exception):
    """The module's own error: its message is what Spark reports (a handler's delivery
    is retried, then parked as dead with it; a source's error is reported with the
    record). Any other exception traps: the call fails with its traceback, and the
    instance is replaced."""


class Invocation:
    """What a call is told about itself. ``Invocation("test", "2024-05-01T00:00:00Z")``
    makes one for a test; the time is a ``datetime`` or ISO text (UTC unless it says
    otherwise: ``"2024-05-01"`` is midnight UTC, as for ``spark --now``)."""

    def __init__(self, tenant: str, now, attempt: int = 1, model: str | None = None):
        if isinstance(now, str):
            now = datetime.fromisoformat(now)
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        #: The tenant whose data this call serves.
        self.tenant = tenant
        #: The run's logical time, in milliseconds since the Unix epoch.
        self.now_ms = (now - _EPOCH) // timedelta(milliseconds=1)
        #: 1 on the first delivery, 2 on the first retry, and so on.
        self.attempt = attempt
        #: The record's model, in a source or context function; ``None`` in a handler.
        self.model = model

    @classmethod
    def _from_host(cls, inv, model: str | None) -> "Invocation":
        ours = cls(inv.tenant, _EPOCH, inv.attempt, model)
        ours.now_ms = inv.now_ms
        return ours

    def now(self) -> datetime:
        """The run's logical time (UTC): the operator's ``--now``, or when the run
        started. Use it instead of a clock, so that a run can be replayed."""
        return _EPOCH + timedelta(milliseconds=self.now_ms)

    def today(self) -> date:
        """The run's logical day (UTC)."""
        return self.now().date()

    def __repr__(self) -> str:
        return f"Invocation({self.tenant!r}, {self.now().isoformat()!r}, {self.attempt}, {self.model!r})"


@dataclasses.dataclass
class Event:
    """Something that happened: a group, a key unique across groups, and a context (a
    dict). A handler that returns one emits it."""

    group: str
    key: str
    context: dict = dataclasses.field(default_factory=dict)

    def field(self, name: str):
        """One field of the context; an ``Error`` names it when it is missing."""
        if not isinstance(self.context, dict) or name not in self.context:
            raise Error(f"context of event `{self.key}` has no `{name}`")
        return self.context[name]


def event(group: str, id, context: dict) -> Event:
    """An event with django-spark's key: ``"{group}_{id}"``."""
    return Event(group=group, key=f"{group}_{id}", context=context)


@dataclasses.dataclass
class Mail:
    """A mail effect. The host renders ``template`` (the tenant's mail template of that
    name) with ``context``, and falls back to ``subject`` and ``body``. ``to`` is an
    address or a list of them."""

    to: list[str] | str
    subject: str = ""
    body: str = ""
    template: str | None = None
    context: dict | None = None


@dataclasses.dataclass
class Output:
    """An output effect: a payload (any JSON value) for an operator's channel."""

    channel: str
    payload: object


def source(function):
    """Makes ``function(record: dict, inv: Invocation) -> list[Event]`` the module's
    source."""

    class Source:
        def events(self, model: str, data: str, inv) -> list:
            with _reported():
                events = function(json.loads(data), Invocation._from_host(inv, model))
                return [_host_event(e, "a source") for e in _listed(events, "a source")]

    return _export(function, Source)


def handler(function):
    """Makes ``function(event: Event, inv: Invocation) -> list`` the module's handler;
    it returns ``Mail``, ``Output`` and ``Event`` (emitted) effects."""

    class Handler:
        def handle(self, event, inv) -> list:
            with _reported():
                ours = Event(event.group, event.key, json.loads(event.context))
                effects = function(ours, Invocation._from_host(inv, None))
                return [_host_effect(effect) for effect in _listed(effects, "a handler")]

    return _export(function, Handler)


def context(variables: dict[str, str]):
    """Makes ``function(record: dict, inv: Invocation) -> dict`` the module's context
    function, for generators; ``variables`` describes what the dict holds
    (``{"name": "what it means"}``, dotted names for nested fields), for
    ``spark generators describe``."""
    if callable(variables) or not isinstance(variables, dict):
        raise TypeError('use @context({"variable": "description", ...})')
    described = [(str(name), str(text)) for name, text in variables.items()]

    def decorate(function):
        class Context:
            def context(self, model: str, data: str, inv) -> str:
                with _reported():
                    value = function(json.loads(data), Invocation._from_host(inv, model))
                    if not isinstance(value, dict):
                        raise Error(f"a context is a dict (a JSON object), not {value!r}")
                    return json.dumps(value)

            def describe(self, model: str) -> list[tuple[str, str]]:
                return list(described)

        return _export(function, Context)

    return decorate


def _export(function, cls):
    """Puts ``cls`` into the module of ``function``, where componentize-py looks for it."""
    module = sys.modules[function.__module__]
    name = cls.__name__
    if name in vars(module):
        raise TypeError(
            f"module `{module.__name__}` already has a `{name}`: a module has at most one "
            "source, one handler and one context function"
        )
    cls.__qualname__ = name
    cls.__module__ = module.__name__
    setattr(module, name, cls)
    return function


@contextmanager
def _reported():
    """An ``Error`` raised inside becomes the module's error, as componentize-py
    reports one: ``Err(message)``."""
    try:
        yield
    except Error as error:
        raise Err(str(error)) from None


def _listed(values, what: str) -> list:
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise Error(f"{what} returns a list, not {values!r}")
    return list(values)


def _host_event(ours, what: str):
    if not isinstance(ours, Event):
        raise Error(f"{what} returns events (event(...)), not {ours!r}")
    return wit.Event(group=ours.group, key=ours.key, context=json.dumps(ours.context))


def _host_effect(effect):
    if isinstance(effect, Event):
        return wit.Effect_Emit(_host_event(effect, "a handler"))
    if isinstance(effect, Mail):
        to = [effect.to] if isinstance(effect.to, str) else list(effect.to)
        mail_context = None if effect.context is None else json.dumps(effect.context)
        return wit.Effect_Mail(
            wit.Mail(
                to=to,
                subject=effect.subject,
                body=effect.body,
                template=effect.template,
                context=mail_context,
            )
        )
    if isinstance(effect, Output):
        return wit.Effect_Output((effect.channel, json.dumps(effect.payload)))
    raise Error(f"a handler returns Mail, Output or Event effects, not {effect!r}")
