// The challenges mail handler in JavaScript: one mail per challenge event to its
// owner, as the Rust handler. Built with componentize-qjs against the world
// `handler-module`:
//
//   componentize-qjs --wit ../../../guest-sdk/wit --js handler.js -n handler-module --sync -o handler.wasm

const SUBJECTS = {
  challenge_created: (c) => `Your challenge "${c.title}" is live`,
  challenge_inactivity_2d: (c) => `Your challenge "${c.title}" needs a push`,
  challenge_ends_2d: (c) => `Your challenge "${c.title}" ends on ${c.end_date}`,
  challenge_ended: (c) => `Your challenge "${c.title}" has ended`,
};

export const handler = {
  handle(event, inv) {
    let challenge;
    try {
      challenge = JSON.parse(event.context).challenge;
      if (!challenge || !challenge.owner) throw "no challenge";
    } catch (error) {
      throw `context of event \`${event.key}\` has no challenge: ${error}`;
    }
    const subjectOf =
      SUBJECTS[event.group] ||
      ((c) => `News about your challenge "${c.title}" (${event.group})`);
    const subject = subjectOf(challenge);
    const body = `Hello ${challenge.owner.name},\n\n${subject}.\n\nThe Challenges team`;
    return [
      {
        tag: "mail",
        val: {
          to: [challenge.owner.email],
          subject,
          body,
          template: event.group,
          context: JSON.stringify({ challenge }),
        },
      },
    ];
  },
};
