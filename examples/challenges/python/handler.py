"""The challenges mail handler in Python: one mail per challenge event to its owner,
as the Rust handler.

Built with componentize-py against the world `handler-module` of guest-sdk/wit, with
the helper package of guest-sdk/python on the path:

    componentize-py -d ../../../guest-sdk/wit -w handler-module componentize -p . -p ../../../guest-sdk/python handler -o handler.wasm
"""

from spark_guest import Error, Event, Invocation, Mail, handler

SUBJECTS = {
    "challenge_created": 'Your challenge "{title}" is live',
    "challenge_inactivity_2d": 'Your challenge "{title}" needs a push',
    "challenge_ends_2d": 'Your challenge "{title}" ends on {end_date}',
    "challenge_ended": 'Your challenge "{title}" has ended',
}


@handler
def challenge_mail(event: Event, inv: Invocation) -> list[Mail]:
    challenge = event.field("challenge")
    try:
        owner = challenge["owner"]
        title = challenge["title"]
    except (KeyError, TypeError) as error:
        raise Error(f"context of event `{event.key}` has no challenge: {error!r}")
    template = SUBJECTS.get(event.group, 'News about your challenge "{title}" ({group})')
    subject = template.format(title=title, end_date=challenge["end_date"], group=event.group)
    body = f"Hello {owner['name']},\n\n{subject}.\n\nThe Challenges team"
    mail = Mail(
        to=[owner["email"]],
        subject=subject,
        body=body,
        # No context of its own: the template renders with the event's, as in the
        # Rust module.
        template=event.group,
    )
    return [mail]
