// {{name}}: a Spark module: {{what}}.
//
// Built with componentize-qjs (`npm run build`) and tested with `npm test`; README.md
// has the rest. The helper spark-guest is beside it.

{{#both}}
import { defineHandler, defineSource, event, output } from "./spark-guest/index.js";
{{/both}}
{{#source-only}}
import { defineSource, event } from "./spark-guest/index.js";
{{/source-only}}
{{#handler-only}}
import { defineHandler, output } from "./spark-guest/index.js";
{{/handler-only}}
{{#source}}

// The events of a record of the model `{{model}}` (as ingested with
// `spark ingest --model {{model}}`): one `{{group}}` per record, whose context is the
// record.
export function events(record, inv) {
  return [event("{{group}}", record.id, record)];
}

export const source = defineSource(events);
{{/source}}
{{#handler}}

// What a new event of the groups the module handles leads to: here, a line in the
// log (`spark -v` shows it) and an output for the channel `{{name}}`.
export function handle(event, inv) {
  console.log(`handling ${event.key}`);
  return [output("{{name}}", { key: event.key, group: event.group })];
}

export const handler = defineHandler(handle);
{{/handler}}
