// The challenges source in JavaScript: the django-spark README rules, as the Rust
// source, and the context that the manifest's generator tests. Built with
// componentize-qjs against the world `source-context-module` of guest-sdk/javascript/wit
// (`npm run build`):
//
//   componentize-qjs --wit ../../../guest-sdk/javascript/wit --module-root ../../.. --js source.js -n source-context-module --sync -o source.wasm

import {
  SparkError,
  daysBetween,
  defineContext,
  defineSource,
  event,
} from "../../../guest-sdk/javascript/spark-guest/index.js";

// The challenge a record holds, as the Rust source reads it.
export function challengeOf(record) {
  try {
    const challenge = {
      id: Number(record.id),
      title: record.title,
      owner: { name: record.owner.name, email: record.owner.email },
      is_active: Boolean(record.is_active),
      start_date: record.start_date,
      end_date: record.end_date,
      donations: Number(record.donations),
    };
    daysBetween(challenge.start_date, challenge.end_date);
    return challenge;
  } catch (error) {
    // A SparkError is the module's own, reported with the record.
    throw new SparkError(`not a challenge: ${error.message ?? error}`);
  }
}

export function challengeContext(record, inv) {
  const challenge = challengeOf(record);
  const today = inv.today();
  return {
    days_running: daysBetween(challenge.start_date, today),
    days_left: daysBetween(today, challenge.end_date),
    challenge,
  };
}

export function challengeEvents(record, inv) {
  const challenge = challengeOf(record);
  if (!challenge.is_active) return [];
  const today = inv.today();
  const context = { challenge };
  const id = challenge.id;
  const events = [event("challenge_created", id, context)];
  if (daysBetween(challenge.start_date, today) > 2 && challenge.donations < 2) {
    events.push(event("challenge_inactivity_2d", id, context));
  }
  if (daysBetween(today, challenge.end_date) <= 2) {
    events.push(event("challenge_ends_2d", id, context));
  }
  if (daysBetween(challenge.end_date, today) > 0) {
    events.push(event("challenge_ended", id, context));
  }
  return events;
}

export const source = defineSource(challengeEvents);

export const context = defineContext(
  {
    "challenge.donations": "donations received so far",
    "challenge.is_active": "whether the challenge is active",
    "challenge.owner.email": "the owner's address",
    days_running: "days since the challenge started",
    days_left: "days until it ends (negative once it has ended)",
  },
  challengeContext,
);
