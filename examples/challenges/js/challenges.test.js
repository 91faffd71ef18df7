// The challenges source and handler as plain functions, in Node.js (`npm test`).

import assert from "node:assert/strict";
import { test } from "node:test";

import { Invocation, SparkError, event } from "../../../guest-sdk/javascript/spark-guest/index.js";
import { challengeMail } from "./handler.js";
import { challengeContext, challengeEvents } from "./source.js";

function challenge(start, end, { donations = 0, is_active = true } = {}) {
  return {
    id: 7,
    title: "Run",
    owner: { name: "Ada", email: "ada@example.com" },
    is_active,
    start_date: start,
    end_date: end,
    donations,
  };
}

test("an ending challenge is three events", () => {
  const inv = new Invocation("test", "2024-05-10T12:00:00Z");
  const events = challengeEvents(challenge("2024-05-01", "2024-05-09", { donations: 5 }), inv);
  const keys = events.map((e) => e.key);
  assert.deepEqual(keys, ["challenge_created_7", "challenge_ends_2d_7", "challenge_ended_7"]);
});

test("the context counts days both ways", () => {
  const inv = new Invocation("test", "2024-05-10T00:00:00Z");
  const context = challengeContext(challenge("2024-05-03", "2024-05-08", { donations: 1 }), inv);
  assert.equal(context.days_running, 7);
  assert.equal(context.days_left, -2);
});

test("a record that is no challenge is the module's error", () => {
  const inv = new Invocation("test", "2024-05-10");
  assert.throws(() => challengeEvents({ id: 1, title: "No owner" }, inv), SparkError);
});

test("the owner gets a mail from the template", () => {
  const inv = new Invocation("test", "2024-05-10");
  const created = event("challenge_created", 7, { challenge: challenge("2024-05-01", "2024-06-01") });
  const [mail] = challengeMail(created, inv);
  assert.deepEqual(mail.to, ["ada@example.com"]);
  assert.equal(mail.subject, 'Your challenge "Run" is live');
  assert.equal(mail.template, "challenge_created");
});
