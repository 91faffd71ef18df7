// The challenges source in JavaScript: the django-spark README rules, as the Rust
// source. Built with componentize-qjs against the world `source-module`:
//
//   componentize-qjs --wit ../../../guest-sdk/wit --js source.js -n source-module --sync -o source.wasm

const DAY_MS = 24 * 60 * 60 * 1000;

// django-spark's event(): the key is "{group}_{id}".
function event(group, id, context) {
  return { group, key: `${group}_${id}`, context: JSON.stringify(context) };
}

// A date "YYYY-MM-DD" as days since 1970-01-01 (UTC).
function day(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) throw `not a date: ${text}`;
  return Math.floor(Date.parse(`${text}T00:00:00Z`) / DAY_MS);
}

export const source = {
  events(model, data, inv) {
    let challenge, start, end;
    try {
      const record = JSON.parse(data);
      challenge = {
        id: Number(record.id),
        title: record.title,
        owner: { name: record.owner.name, email: record.owner.email },
        is_active: Boolean(record.is_active),
        start_date: record.start_date,
        end_date: record.end_date,
        donations: Number(record.donations),
      };
      start = day(challenge.start_date);
      end = day(challenge.end_date);
    } catch (error) {
      // A thrown value becomes the source's error, reported with the record.
      throw `not a challenge: ${error}`;
    }
    if (!challenge.is_active) return [];
    // `nowMs` is an s64: a BigInt in JavaScript.
    const today = Math.floor(Number(inv.nowMs) / DAY_MS);
    const context = { challenge };
    const events = [event("challenge_created", challenge.id, context)];
    if (today - start > 2 && challenge.donations < 2) {
      events.push(event("challenge_inactivity_2d", challenge.id, context));
    }
    if (end - today <= 2) events.push(event("challenge_ends_2d", challenge.id, context));
    if (end < today) events.push(event("challenge_ended", challenge.id, context));
    return events;
  },
};
