// A JavaScript handler that shows what the JavaScript guide says of a component: the
// raw `invocation` of the WIT (its `nowMs` a number), and `console` as the helper
// defines it (the call's log, shown by `spark -v`). One output per event: the type and
// value of `nowMs`.

import "../../../guest-sdk/javascript/spark-guest/index.js";

export const handler = {
  handle(event, inv) {
    const day = new Date(inv.nowMs).toISOString().slice(0, 10);
    console.log(`probed ${event.key} at ${day} é ✓`);
    console.error("and on stderr");
    const payload = { nowMs: typeof inv.nowMs, nowMsValue: inv.nowMs };
    return [{ tag: "output", val: ["probe", JSON.stringify(payload)] }];
  },
};
