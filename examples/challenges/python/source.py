"""The challenges source in Python: the django-spark README rules, as the Rust source,
and the context that the manifest's generator tests.

Built with componentize-py against the world `source-context-module` of guest-sdk/wit,
with the helper package of guest-sdk/python on the path:

    componentize-py -d ../../../guest-sdk/wit -w source-context-module componentize -p . -p ../../../guest-sdk/python source -o source.wasm
"""

from datetime import date

from spark_guest import Error, Event, Invocation, context, event, source


def challenge_of(record: dict) -> dict:
    """The challenge a record holds, as the Rust source reads it."""
    try:
        challenge = {
            "id": int(record["id"]),
            "title": record["title"],
            "owner": {"name": record["owner"]["name"], "email": record["owner"]["email"]},
            "is_active": bool(record["is_active"]),
            "start_date": record["start_date"],
            "end_date": record["end_date"],
            "donations": int(record["donations"]),
        }
        date.fromisoformat(challenge["start_date"])
        date.fromisoformat(challenge["end_date"])
    except (KeyError, ValueError, TypeError) as error:
        # An Error is the module's own, reported with the record; anything else raised
        # would trap.
        raise Error(f"not a challenge: {error!r}")
    return challenge


def days(start: str, end: str) -> int:
    """Whole days from one date to another (negative when `end` is earlier)."""
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


@context(
    {
        "challenge.donations": "donations received so far",
        "challenge.is_active": "whether the challenge is active",
        "challenge.owner.email": "the owner's address",
        "days_running": "days since the challenge started",
        "days_left": "days until it ends (negative once it has ended)",
    }
)
def challenge_context(record: dict, inv: Invocation) -> dict:
    challenge = challenge_of(record)
    today = inv.today().isoformat()
    return {
        "days_running": days(challenge["start_date"], today),
        "days_left": days(today, challenge["end_date"]),
        "challenge": challenge,
    }


@source
def challenge_events(record: dict, inv: Invocation) -> list[Event]:
    challenge = challenge_of(record)
    if not challenge["is_active"]:
        return []
    today = inv.today().isoformat()
    context = {"challenge": challenge}
    id = challenge["id"]
    events = [event("challenge_created", id, context)]
    if days(challenge["start_date"], today) > 2 and challenge["donations"] < 2:
        events.append(event("challenge_inactivity_2d", id, context))
    if days(today, challenge["end_date"]) <= 2:
        events.append(event("challenge_ends_2d", id, context))
    if days(challenge["end_date"], today) > 0:
        events.append(event("challenge_ended", id, context))
    return events
