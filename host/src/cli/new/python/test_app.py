"""The module's functions in plain CPython: `python3 -m unittest`."""

import unittest

{{#both}}
from app import events, handle
from spark_guest import Invocation, Output, event
{{/both}}
{{#source-only}}
from app import events
from spark_guest import Invocation
{{/source-only}}
{{#handler-only}}
from app import handle
from spark_guest import Invocation, Output, event
{{/handler-only}}


class AppTests(unittest.TestCase):
    def setUp(self):
        self.inv = Invocation("test", "2024-05-01T00:00:00Z")
{{#source}}

    def test_a_record_is_one_event(self):
        [created] = events({"id": 7, "name": "Ada"}, self.inv)
        self.assertEqual(created.key, "{{group}}_7")
        self.assertEqual(created.context["name"], "Ada")
{{/source}}
{{#handler}}

    def test_an_event_is_one_output(self):
        effects = handle(event("{{group}}", 7, {}), self.inv)
        payload = {"key": "{{group}}_7", "group": "{{group}}"}
        self.assertEqual(effects, [Output("{{name}}", payload)])
{{/handler}}


if __name__ == "__main__":
    unittest.main()
