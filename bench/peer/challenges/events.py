"""The README's rules, as `examples/challenges` has them in Rust: the source, the mail
handler and the generators' candidates and context. Each does what its Spark
counterpart does, so that both sides make the same events and the same mails."""

from datetime import date

from django.db.models import Count
from spark.spark_mails.api import process_mail_events

from .models import Challenge

# The run's logical day. The README's source asks `date.today()`; the Spark side runs
# with `--now`, and the harness sets this to the same day.
TODAY = date.today()

# Events the source yielded, new or not: the duplicates of a pass are those of them
# that were not new.
YIELDED = 0

SENDER = "Challenges <challenges@example.com>"
REPLY_TO = ["help@example.com"]


def event(group, challenge, context):
    # `spark.api.event(group, id, context)` of the README, which 0.3.0 does not have
    # yet: the key is `{group}_{id}`, as on the Spark side.
    global YIELDED
    YIELDED += 1
    return {"group": group, "key": f"{group}_{challenge.pk}", "context": context}


def events_from_challenge(challenge):
    if not challenge.is_active:
        return
    context = {"challenge": challenge}
    yield event("challenge_created", challenge, context)
    if (TODAY - challenge.start_date).days > 2:
        if challenge.donations.count() < 2:
            yield event("challenge_inactivity_2d", challenge, context)
    if (challenge.end_date - TODAY).days <= 2:
        yield event("challenge_ends_2d", challenge, context)
    if challenge.end_date < TODAY:
        yield event("challenge_ended", challenge, context)


def send_challenge_mail(event):
    """One mail to the owner, through spark_mails: the template of the event's group
    (a `Mail` row) when there is one, else the subject and body given here, as the
    Spark handler gives them."""
    challenge = event["context"]["challenge"]
    title = challenge.title
    group = event["group"]
    subject = {
        "challenge_created": f'Your challenge "{title}" is live',
        "challenge_inactivity_2d": f'Your challenge "{title}" needs a push',
        "challenge_ends_2d": f'Your challenge "{title}" ends on {challenge.end_date}',
        "challenge_ended": f'Your challenge "{title}" has ended',
    }.get(group, f'News about your challenge "{title}" ({group})')
    body = f"Hello {challenge.owner.name},\n\n{subject}.\n\nThe Challenges team"
    mail = {
        "to": [challenge.owner.email],
        "subject": subject,
        "body": body,
        "from_email": SENDER,
        "reply_to": REPLY_TO,
    }
    # The mail's context is the challenge alone, as the Spark handler gives it.
    # The event's whole context, as the Spark handler gives its template.
    context = dict(event["context"], spark_mail=mail)
    process_mail_events([{"group": group, "key": event["key"], "context": context}])


def candidates():
    # One query for all: the owners joined (for the mails), the donations counted.
    return Challenge.objects.select_related("owner").annotate(
        donation_count=Count("donations")
    )


def challenge_context(challenge):
    # The variables of the Spark source's context function; conditions read them by
    # name, so `challenge.is_active` and `challenge.donations` are flat here.
    return {
        "challenge": challenge,
        "days_running": (TODAY - challenge.start_date).days,
        "days_left": (challenge.end_date - TODAY).days,
        "is_active": challenge.is_active,
        "donations": challenge.donation_count,
    }
