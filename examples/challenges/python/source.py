"""The challenges source in Python: the django-spark README rules, as the Rust source.

Built with componentize-py against the world `source-module` of guest-sdk/wit:

    componentize-py -d ../../../guest-sdk/wit -w source-module componentize source -o source.wasm
"""

import json
from datetime import date, datetime, timezone

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Event, Invocation


def event(group: str, id, context: dict) -> Event:
    """django-spark's event(): the key is "{group}_{id}"."""
    return Event(group=group, key=f"{group}_{id}", context=json.dumps(context))


def today(inv: Invocation) -> date:
    """The run's logical day (UTC): sources use it instead of a clock."""
    return datetime.fromtimestamp(inv.now_ms / 1000, tz=timezone.utc).date()


class Source(exports.Source):
    def events(self, model: str, data: str, inv: Invocation) -> list[Event]:
        try:
            record = json.loads(data)
            challenge = {
                "id": int(record["id"]),
                "title": record["title"],
                "owner": {"name": record["owner"]["name"], "email": record["owner"]["email"]},
                "is_active": bool(record["is_active"]),
                "start_date": record["start_date"],
                "end_date": record["end_date"],
                "donations": int(record["donations"]),
            }
            start = date.fromisoformat(challenge["start_date"])
            end = date.fromisoformat(challenge["end_date"])
        except (KeyError, ValueError, TypeError) as error:
            # An Err is the source's error, reported with the record; anything raised
            # instead would trap.
            raise Err(f"not a challenge: {error!r}")
        if not challenge["is_active"]:
            return []
        now = today(inv)
        context = {"challenge": challenge}
        id = challenge["id"]
        events = [event("challenge_created", id, context)]
        if (now - start).days > 2 and challenge["donations"] < 2:
            events.append(event("challenge_inactivity_2d", id, context))
        if (end - now).days <= 2:
            events.append(event("challenge_ends_2d", id, context))
        if end < now:
            events.append(event("challenge_ended", id, context))
        return events
