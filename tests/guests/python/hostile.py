"""A Python handler that misbehaves on request (an event context's `do`), to show the
sandbox's limits hold for interpreted guests too: `loop` runs for ever, `alloc`
allocates without bound, `raise` raises an exception (a trap, with its traceback on
stderr), `fail` returns an error; anything else returns an output `ok`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Effect, Effect_Output, Event, Invocation


class Handler(exports.Handler):
    def handle(self, event: Event, inv: Invocation) -> list[Effect]:
        action = json.loads(event.context).get("do")
        if action == "loop":
            n = 0
            while True:
                n += 1
        if action == "alloc":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if action == "raise":
            raise ValueError(f"hostile exception for {event.key}")
        if action == "fail":
            raise Err(f"asked to fail for {event.key}")
        print(f"handled {event.key}")
        return [Effect_Output(("ok", json.dumps({"key": event.key})))]
