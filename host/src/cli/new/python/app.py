"""{{name}}: a Spark module: {{what}}.

Built with componentize-py and tested with `python3 -m unittest`; README.md has the
commands. The helper package spark_guest is beside it.
"""

{{#both}}
from spark_guest import Event, Invocation, Output, event, handler, source
{{/both}}
{{#source-only}}
from spark_guest import Event, Invocation, event, source
{{/source-only}}
{{#handler-only}}
from spark_guest import Event, Invocation, Output, handler
{{/handler-only}}
{{#source}}


@source
def events(record: dict, inv: Invocation) -> list[Event]:
    """The events of a record of the model `{{model}}` (as ingested with
    `spark ingest --model {{model}}`): one `{{group}}` per record, whose context is
    the record."""
    return [event("{{group}}", record["id"], record)]
{{/source}}
{{#handler}}


@handler
def handle(event: Event, inv: Invocation) -> list[Output]:
    """What a new event of the groups the module handles leads to: here, a line in the
    log (`spark -v` shows it) and an output for the channel `{{name}}`."""
    print(f"handling {event.key}")
    return [Output("{{name}}", {"key": event.key, "group": event.group})]
{{/handler}}
