// The module's functions in Node.js: `npm test`.

import assert from "node:assert/strict";
import { test } from "node:test";

{{#both}}
import { events, handle } from "./app.js";
import { Invocation, event, output } from "./spark-guest/index.js";
{{/both}}
{{#source-only}}
import { events } from "./app.js";
import { Invocation } from "./spark-guest/index.js";
{{/source-only}}
{{#handler-only}}
import { handle } from "./app.js";
import { Invocation, event, output } from "./spark-guest/index.js";
{{/handler-only}}

const inv = new Invocation("test", "2024-05-01T00:00:00Z");
{{#source}}

test("a record is one event", () => {
  const [created] = events({ id: 7, name: "Ada" }, inv);
  assert.equal(created.key, "{{group}}_7");
  assert.equal(created.context.name, "Ada");
});
{{/source}}
{{#handler}}

test("an event is one output", () => {
  const effects = handle(event("{{group}}", 7, {}), inv);
  assert.deepEqual(effects, [output("{{name}}", { key: "{{group}}_7", group: "{{group}}" })]);
});
{{/handler}}
