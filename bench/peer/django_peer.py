"""django-spark on the challenges workload, for `spark-bench --peer django-spark`.

    django_peer.py CHALLENGES.jsonl DATABASE.sqlite3 --today 2024-05-10

Configures Django in this process (SQLite with Django's default settings: autocommit,
SQLite's rollback journal and full sync, so every commit is durable), sets up the
README's challenges app, its mail templates (`spark_mails`, rendered into Django's
locmem mail backend: built, sent nowhere) and a generator (`spark_generators`), and
measures four passes as django-spark runs them:

1. new events: each challenge of the file saved; post_save runs it through the source,
   `only_new_events` records each event (a commit each), the mail handler runs;
2. duplicates: the `process_spark_sources` command, every stored challenge through the
   source again the same day: every event already seen;
3. generators: every generator over its candidates, the new events to the handlers;
4. new events through the command: the events and mails of the passes before deleted
   (not timed), `process_spark_sources` again: every source event new again, mailed.
   Its management command's loop, which is how the issue that asked for this benchmark
   measured django-spark's new events (about 630/s there).

The challenges, their owners and donations are in the database before the first pass
(not timed; the donations must exist when the source counts them), so the first pass
saves each challenge as an application saves an edited one. Prints one JSON object.
"""

import argparse
import json
import sys
import time
import warnings
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent


def configure(database):
    # django-spark 0.3.0 imports `ugettext_lazy`, deprecated in Django 3.x.
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(HERE))
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(database),
            }
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "spark",
            "spark.spark_mails",
            "spark.spark_generators",
            "challenges",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()


def set_up(records):
    """The tables, the challenges with their owners and donations, the mail templates
    and the generator: what the database holds before the passes."""
    from django.core.management import call_command
    from django.db import transaction
    from spark.spark_generators.models import Condition, Generator
    from spark.spark_mails.models import Mail

    from challenges.models import Challenge, Donation, Owner

    call_command("migrate", run_syncdb=True, verbosity=0)
    with transaction.atomic():
        owners = {}
        for record in records:
            owner = record["owner"]
            owners.setdefault(owner["email"], owner["name"])
        Owner.objects.bulk_create(
            Owner(name=name, email=email) for email, name in owners.items()
        )
        owners = {owner.email: owner for owner in Owner.objects.all()}
        # bulk_create sends no post_save: no source runs yet.
        Challenge.objects.bulk_create(challenge(record, owners) for record in records)
        Donation.objects.bulk_create(
            Donation(challenge_id=record["id"])
            for record in records
            for _ in range(record["donations"])
        )
        for template in sorted((HERE / "templates").glob("*.txt")):
            Mail.objects.create(
                event_group=template.stem, template_source=template.read_text()
            )
        # The example manifest's `stalled`: active, running more than a week, no
        # donation yet. Condition values are integers: `is_active = 1` is True.
        stalled = Generator.objects.create(group="challenge_stalled", source="challenges")
        for variable, operator, value in [
            ("is_active", "=", 1),
            ("days_running", ">", 7),
            ("donations", "<", 1),
        ]:
            Condition.objects.create(
                generator=stalled, variable=variable, operator=operator, value=value
            )
    return owners


def challenge(record, owners):
    from challenges.models import Challenge

    return Challenge(
        id=record["id"],
        title=record["title"],
        owner=owners[record["owner"]["email"]],
        is_active=record["is_active"],
        start_date=date.fromisoformat(record["start_date"]),
        end_date=date.fromisoformat(record["end_date"]),
    )


def counts():
    from django.core import mail
    from spark.models import Event

    from challenges import events

    return Event.objects.count(), events.YIELDED, len(getattr(mail, "outbox", []))


def counted(generated):
    """The events of `generated`, counted as the source's are."""
    from challenges import events

    for event in generated:
        events.YIELDED += 1
        yield event


def say(line):
    print(line, file=sys.stderr, flush=True)


def timed(run):
    """Runs `run`, and what it did: seconds, events yielded, new, duplicates, mails."""
    events_before, yielded_before, mails_before = counts()
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    events_after, yielded_after, mails_after = counts()
    new = events_after - events_before
    return {
        "seconds": seconds,
        "events": yielded_after - yielded_before,
        "new": new,
        "duplicates": yielded_after - yielded_before - new,
        "mails": mails_after - mails_before,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("challenges", type=Path, help="JSON Lines, one challenge a line")
    parser.add_argument("database", type=Path, help="the SQLite file to create")
    parser.add_argument("--today", required=True, help="the run's day, YYYY-MM-DD")
    args = parser.parse_args()

    started = time.perf_counter()
    configure(args.database)
    startup_seconds = time.perf_counter() - started

    import django
    import spark
    from django.core.management import call_command
    from django.db import connection
    from spark import api
    from spark.spark_generators.api import events_from_generators

    from challenges import events

    events.TODAY = date.fromisoformat(args.today)
    lines = args.challenges.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    started = time.perf_counter()
    owners = set_up(records)
    setup_seconds = time.perf_counter() - started

    def save_each():
        for line in lines:
            challenge(json.loads(line), owners).save()

    def generate():
        # No command for generators in 0.3.0: this is the loop its users write.
        api.process_events(api.only_new_events(counted(events_from_generators())))

    say(f"django-spark: {len(records)} challenges saved, one at a time")
    fresh = timed(save_each)
    say("django-spark: process_spark_sources, the same day")
    seen = timed(lambda: call_command("process_spark_sources"))
    say("django-spark: the generator")
    generated = timed(generate)
    generated["candidates"] = len(records)

    from django.core import mail
    from spark.models import Event

    Event.objects.all().delete()
    mail.outbox.clear()
    say("django-spark: process_spark_sources on an empty ledger")
    command_new = timed(lambda: call_command("process_spark_sources"))

    with connection.cursor() as cursor:
        pragma = {}
        for name in ["journal_mode", "synchronous"]:
            cursor.execute(f"PRAGMA {name}")
            pragma[name] = cursor.fetchone()[0]
        cursor.execute("SELECT sqlite_version()")
        sqlite_version = cursor.fetchone()[0]
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "django": django.get_version(),
                "django_spark": spark.__version__,
                "sqlite": sqlite_version,
                "pragma": pragma,
                "records": len(records),
                "startup_seconds": startup_seconds,
                "setup_seconds": setup_seconds,
                "fresh": fresh,
                "seen": seen,
                "generate": generated,
                "command_new": command_new,
            }
        )
    )


if __name__ == "__main__":
    main()
