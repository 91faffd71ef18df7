"""The challenges mail handler in Python: one mail per challenge event to its owner,
as the Rust handler.

Built with componentize-py against the world `handler-module` of guest-sdk/wit:

    componentize-py -d ../../../guest-sdk/wit -w handler-module componentize handler -o handler.wasm
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Effect, Effect_Mail, Event, Invocation, Mail

SUBJECTS = {
    "challenge_created": 'Your challenge "{title}" is live',
    "challenge_inactivity_2d": 'Your challenge "{title}" needs a push',
    "challenge_ends_2d": 'Your challenge "{title}" ends on {end_date}',
    "challenge_ended": 'Your challenge "{title}" has ended',
}


class Handler(exports.Handler):
    def handle(self, event: Event, inv: Invocation) -> list[Effect]:
        try:
            challenge = json.loads(event.context)["challenge"]
            owner = challenge["owner"]
            title = challenge["title"]
        except (KeyError, ValueError, TypeError) as error:
            raise Err(f"context of event `{event.key}` has no challenge: {error!r}")
        template = SUBJECTS.get(event.group, 'News about your challenge "{title}" ({group})')
        subject = template.format(title=title, end_date=challenge["end_date"], group=event.group)
        body = f"Hello {owner['name']},\n\n{subject}.\n\nThe Challenges team"
        mail = Mail(
            to=[owner["email"]],
            subject=subject,
            body=body,
            template=event.group,
            context=json.dumps({"challenge": challenge}),
        )
        return [Effect_Mail(mail)]
