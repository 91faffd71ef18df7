// The challenges mail handler in JavaScript: one mail per challenge event to its
// owner, as the Rust handler. Built with componentize-qjs against the world
// `handler-module` of guest-sdk/javascript/wit (`npm run build`):
//
//   componentize-qjs --wit ../../../guest-sdk/javascript/wit --module-root ../../.. --js handler.js -n handler-module --sync -o handler.wasm

import { SparkError, defineHandler, mail } from "../../../guest-sdk/javascript/spark-guest/index.js";

const SUBJECTS = {
  challenge_created: (c) => `Your challenge "${c.title}" is live`,
  challenge_inactivity_2d: (c) => `Your challenge "${c.title}" needs a push`,
  challenge_ends_2d: (c) => `Your challenge "${c.title}" ends on ${c.end_date}`,
  challenge_ended: (c) => `Your challenge "${c.title}" has ended`,
};

export function challengeMail(event, inv) {
  const challenge = event.field("challenge");
  if (!challenge || !challenge.owner) {
    throw new SparkError(`context of event \`${event.key}\` has no challenge`);
  }
  const subjectOf =
    SUBJECTS[event.group] ||
    ((c) => `News about your challenge "${c.title}" (${event.group})`);
  const subject = subjectOf(challenge);
  const body = `Hello ${challenge.owner.name},\n\n${subject}.\n\nThe Challenges team`;
  return [
    mail({
      to: [challenge.owner.email],
      subject,
      body,
      // No context of its own: the template renders with the event's, as in the
      // Rust module.
      template: event.group,
    }),
  ];
}

export const handler = defineHandler(challengeMail);
