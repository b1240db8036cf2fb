"""The Salesforce sink: a call becomes a completed call Task on the Contact or Lead, in ONE Composite request.

The engine-facing methods live here; the work is done by narrow modules that never see this object: ``composite``
(one event's writes), ``batch``/``resolve``/``callbacks`` (many events at once, under a backlog), ``contacts``
(which record a call belongs to). They share one ``Collaborators`` bundle built in ``__init__``. Why the requests
are shaped as they are (API calls per event, idempotency, the rate budget): docs/salesforce.md "Design".
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from connector.errors import ConfigError, ConfigProblem, PermanentError, SinkError, StaleContact
from connector.plan import Action, CloseCallbacks, DoNotCallGuarded, ResolveContact, UpdateContact
from connector.sinks.base import ActionResult, ExecutionContext, RateGate, SinkCapabilities
from connector.sinks.drift import DriftPolicy, probe_held
from connector.sinks.salesforce import batch, callbacks, resolve
from connector.sinks.salesforce.client import SalesforceConnection
from connector.sinks.salesforce.collaborators import Collaborators
from connector.sinks.salesforce.composite import MAX_SUBREQUESTS, write_composite
from connector.sinks.salesforce.contacts import ContactResolver
from connector.sinks.salesforce.fields import FieldTypes, describe_objects
from connector.sinks.salesforce.records import Write
from connector.sinks.salesforce.settings import SalesforceSinkSettings
from connector.sinks.uncertain import UncertainWrites


class SalesforceSink:
    """Executes plans against a Salesforce org through simple-salesforce (see the module docstring)."""

    capabilities: ClassVar[SinkCapabilities] = SinkCapabilities(
        requests_per_window=None, combine_actions=True, max_batch=200
    )

    def __init__(self, name: str, settings: Any) -> None:
        self.name = name
        self.settings = (
            settings
            if isinstance(settings, SalesforceSinkSettings)
            else SalesforceSinkSettings.model_validate(settings.model_dump())
        )
        self.connection = SalesforceConnection(name, self.settings)
        """The API client (logged in lazily: nothing touches the network before the first call)."""
        types = FieldTypes(self.connection)
        self._parts = Collaborators(
            name=name,
            connection=self.connection,
            types=types,
            contacts=ContactResolver(self.connection, types),
            uncertain=UncertainWrites(),
            drift=DriftPolicy(name, hold=self.settings.on_missing_field == "hold"),
            execute_one=self.execute,
        )

    # -- the Sink protocol ------------------------------------------------------------------------------------

    def open(self, gate: RateGate) -> None:
        self.connection.open(gate)

    def close(self) -> None:
        self.connection.close()

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, allowed) of the org's daily API allocation, from the last ``Sforce-Limit-Info`` seen."""
        return self.connection.api_usage

    def execute(self, action: Action, context: ExecutionContext) -> ActionResult:
        if isinstance(action, ResolveContact):
            resolved: ActionResult = self._parts.guarded([action.key], lambda: self._resolve(action))
            return resolved
        if isinstance(action, (Write, UpdateContact)):
            return self.execute_many([action], context)[0]
        if isinstance(action, CloseCallbacks):
            return callbacks.close_callbacks(self._parts, action, context)
        raise PermanentError(f"the Salesforce sink cannot execute {action.kind!r} actions", code="UNSUPPORTED_ACTION")

    def execute_many(self, actions: list[Action], context: ExecutionContext) -> list[ActionResult]:
        """Every action after resolve_contact, in one allOrNone Composite per 25 subrequests; results in order.

        A create this process may have written without hearing back is looked up first (the engine's quick retry
        calls this again without a lookup of its own)."""
        uncertain = self._parts.uncertain
        results: list[ActionResult | None] = [None] * len(actions)
        recheck = [(i, a) for i, a in enumerate(actions) if isinstance(a, Write) and a.key in uncertain]
        if recheck:
            found = self._parts.find_written([a for _, a in recheck])
            for index, action in recheck:
                if action.key in found:
                    results[index] = found[action.key]
                    uncertain.settle([action.key])
        pending = [(i, a) for i, a in enumerate(actions) if results[i] is None]
        for start in range(0, len(pending), MAX_SUBREQUESTS):
            chunk = pending[start : start + MAX_SUBREQUESTS]
            written = write_composite(self._parts, [a for _, a in chunk], context)
            for (index, _), result in zip(chunk, written, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def execute_batch(self, items: list[tuple[Action, ExecutionContext]]) -> list[ActionResult | SinkError]:
        """Many events' Tasks or contact updates in sObject Collections requests (see salesforce.batch)."""
        if items and all(isinstance(action, CloseCallbacks) for action, _ in items):
            return callbacks.close_callbacks_many(self._parts, items)
        return batch.execute_batch(self._parts, items)

    def resolve_many(self, actions: list[ResolveContact]) -> list[ActionResult | SinkError]:
        """Many events' contacts in one SOSL per ~100 numbers and one sObject Collections create per 200 new ones
        (backlog path, see salesforce.resolve); results in order, an action's own failure as its item."""
        return resolve.resolve_many(self._parts, actions)

    def do_not_call_set(self, action: DoNotCallGuarded, context: ExecutionContext) -> str | None:
        """Which do-not-call field is true on the contact in Salesforce now (read before a callback Task)."""
        try:
            return callbacks.do_not_call_set(self.connection, action, context)
        except StaleContact:
            self._parts.contacts.forget(context.contact().crm_id or "")  # type: ignore[union-attr]
            raise

    def do_not_call_many(self, items: list[tuple[DoNotCallGuarded, ExecutionContext]]) -> list[str | None]:
        """``do_not_call_set`` for many callback Tasks in one SOQL per object (the engine's backlog path)."""
        return callbacks.do_not_call_many(self.connection, items)

    def lookup(self, action: Action, context: ExecutionContext) -> ActionResult | None:
        if isinstance(action, ResolveContact):
            return self._parts.contacts.resolve(action, create=False)
        if isinstance(action, Write):
            return self._parts.find_written([action]).get(action.key)
        return None  # an update is idempotent: the engine simply runs it again

    def unsettle(self, keys: list[str]) -> None:
        """Treat these keys as possibly written: a retry of the same batch must look them up first."""
        self._parts.uncertain.mark(keys)

    def check_auth(self) -> None:
        """Log in afresh (login modes) and make the cheapest counted call; AuthError while credentials fail."""
        self.connection.relogin()
        self.connection.call(lambda sf: sf.restful("limits/"), where="limits")
        if self._parts.drift.held:  # paused for fields the org lacked: resume once describe lists them again
            probe_held(self._parts.drift, self._lacking)

    def _lacking(self, sobject: str, names: set[str]) -> set[str]:
        described, failures = describe_objects(self.connection, [sobject])
        if sobject in failures:
            raise failures[sobject]
        present = {str(f.get("name", "")).lower() for f in (described.get(sobject) or {}).get("fields") or []}
        self._parts.types.forget(sobject)  # the next write describes it afresh
        return {name for name in names if name.lower() not in present}

    def _resolve(self, action: ResolveContact) -> ActionResult:
        uncertain = self._parts.uncertain
        result = self._parts.contacts.resolve(
            action, create=action.on_no_match == "create", recheck=action.key in uncertain
        )
        assert result is not None
        uncertain.settle([action.key])
        return result


def factory(name: str, settings: Any) -> SalesforceSink:
    """Entry point of the `salesforce` sink type; refuses files the sink would only fail to read at its first call."""
    sink = SalesforceSink(name, settings)
    problems = missing_files(name, sink.settings)
    if problems:
        raise ConfigError("<config>", problems)
    return sink


def missing_files(name: str, settings: SalesforceSinkSettings) -> list[ConfigProblem]:
    """`ca_bundle` and `auth.private_key_file` that are not readable files.

    Without this check `validate` ended in a traceback (requests: "Could not find a suitable TLS CA certificate
    bundle"), and `serve` accepted webhooks whose every Salesforce delivery then failed as "unexpected" and was
    retried for a day. A stopped sandbox leaves exactly that: its config names a CA file the sandbox removed."""
    files = {
        "ca_bundle": (settings.ca_bundle, "the CA certificates to trust for instance_url"),
        "auth.private_key_file": (settings.auth.private_key_file, "the JWT bearer flow's private key"),
    }
    problems = []
    for field, (path, what) in files.items():
        if path and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            problems.append(ConfigProblem(f"sinks.{name}.{field}", f"{reason}: {path} ({what})"))
    return problems
