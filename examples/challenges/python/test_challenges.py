"""The challenges source and handler as plain functions, in plain CPython:

    PYTHONPATH=guest-sdk/python python3 -m unittest discover examples/challenges/python
"""

import unittest

from handler import challenge_mail
from source import challenge_context, challenge_events
from spark_guest import Error, Invocation, Mail, event


def challenge(start: str, end: str, donations: int = 0, is_active: bool = True) -> dict:
    return {
        "id": 7,
        "title": "Run",
        "owner": {"name": "Ada", "email": "ada@example.com"},
        "is_active": is_active,
        "start_date": start,
        "end_date": end,
        "donations": donations,
    }


class ChallengeTests(unittest.TestCase):
    def test_an_ending_challenge_is_three_events(self):
        inv = Invocation("test", "2024-05-10T12:00:00Z")
        events = challenge_events(challenge("2024-05-01", "2024-05-09", donations=5), inv)
        keys = [e.key for e in events]
        self.assertEqual(keys, ["challenge_created_7", "challenge_ends_2d_7", "challenge_ended_7"])

    def test_the_context_counts_days_both_ways(self):
        inv = Invocation("test", "2024-05-10T00:00:00Z")
        context = challenge_context(challenge("2024-05-03", "2024-05-08", donations=1), inv)
        self.assertEqual(context["days_running"], 7)
        self.assertEqual(context["days_left"], -2)

    def test_a_record_that_is_no_challenge_is_the_modules_error(self):
        inv = Invocation("test", "2024-05-10")
        with self.assertRaises(Error):
            challenge_events({"id": 1, "title": "No owner"}, inv)

    def test_the_owner_gets_a_mail_from_the_template(self):
        inv = Invocation("test", "2024-05-10")
        created = event("challenge_created", 7, {"challenge": challenge("2024-05-01", "2024-06-01")})
        [mail] = challenge_mail(created, inv)
        self.assertIsInstance(mail, Mail)
        self.assertEqual(mail.to, ["ada@example.com"])
        self.assertEqual(mail.subject, 'Your challenge "Run" is live')
        self.assertEqual(mail.template, "challenge_created")


if __name__ == "__main__":
    unittest.main()
