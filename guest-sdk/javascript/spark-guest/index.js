// spark-guest for JavaScript: write Spark sources, handlers and context functions as
// plain functions, built into a component with componentize-qjs against a world of
// `guest-sdk/javascript/wit`.
//
//   import { defineSource, event } from "./spark-guest/index.js";
//
//   export function signupEvents(signup, inv) {
//     return [event("signup_created", signup.id, { email: signup.email })];
//   }
//
//   export const source = defineSource(signupEvents);
//
// `defineSource`, `defineHandler` and `defineContext` make the objects a component
// exports (named `source`, `handler`, `context`) from your functions, which stay as
// they are, so that a test (`node --test`) calls them directly. The same file runs in
// Node.js, where nothing of this is needed but the functions.

// QuickJS, as componentize-qjs embeds it, has no `console`: this one writes to the
// standard output and error streams, which Spark keeps (the first 4 KiB per call) and
// shows with `spark -v`. Node.js has its own.
if (typeof globalThis.console === "undefined") {
  let stdout, stderr;
  try {
    stdout = (await import("wasi:cli/stdout@0.2.0")).default;
    stderr = (await import("wasi:cli/stderr@0.2.0")).default;
  } catch (error) {
    throw new Error(
      "spark-guest defines `console` with the imports of the worlds of " +
        "guest-sdk/javascript/wit: build with `--wit` naming that directory " +
        `(or the project's own wit/ that \`spark new\` wrote): ${error}`,
    );
  }
  const log = (stream) => (...values) => write(stream(), `${values.map(text).join(" ")}\n`);
  const out = log(() => stdout.getStdout());
  const err = log(() => stderr.getStderr());
  globalThis.console = { log: out, info: out, debug: out, warn: err, error: err };
}

// `console.log`'s text of a value: strings as they are, errors with their stack,
// anything else as JSON where it can be.
function text(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) {
    // V8's stack starts with the message; QuickJS's is the frames alone.
    const stack = value.stack ?? "";
    return stack.startsWith(`${value}`) ? stack : `${value}\n${stack}`.trimEnd();
  }
  if (value === undefined || typeof value === "function" || typeof value === "symbol") {
    return String(value);
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// Writes `line` to a fresh handle of an output stream, in the pieces of at most 4096
// bytes WASI's blocking write takes, and lets the handle go.
function write(stream, line) {
  const bytes = utf8(line);
  try {
    for (let start = 0; start < bytes.length; start += 4096) {
      stream.blockingWriteAndFlush(bytes.subarray(start, start + 4096));
    }
  } finally {
    stream[Symbol.dispose]?.();
  }
}

// UTF-8 bytes of `text` (this QuickJS has no TextEncoder); a lone surrogate becomes
// U+FFFD, as TextEncoder makes it.
function utf8(text) {
  const bytes = [];
  for (const char of text) {
    let c = char.codePointAt(0);
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) {
      bytes.push(c);
    } else if (c < 0x800) {
      bytes.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    } else {
      bytes.push(
        0xf0 | (c >> 18),
        0x80 | ((c >> 12) & 0x3f),
        0x80 | ((c >> 6) & 0x3f),
        0x80 | (c & 0x3f),
      );
    }
  }
  return Uint8Array.from(bytes);
}

// The module's own error: its message is what Spark reports (a handler's delivery is
// retried, then parked as dead with it; a source's error is reported with the
// record). Any other thrown value is reported the same way, with its stack.
export class SparkError extends Error {
  constructor(message) {
    super(message);
    this.name = "SparkError";
  }
}

// What a call is told about itself. `new Invocation("test", "2024-05-01")` makes one
// for a test: the time is a Date, milliseconds since the epoch, or text Date.parse
// reads ("2024-05-01" is midnight UTC).
export class Invocation {
  constructor(tenant, now, { attempt = 1, model = null } = {}) {
    const nowMs = now instanceof Date ? now.getTime() : typeof now === "number" ? now : Date.parse(now);
    if (!Number.isFinite(nowMs)) throw new TypeError(`not a time: ${now}`);
    // The tenant whose data this call serves.
    this.tenant = tenant;
    // The run's logical time, in milliseconds since the Unix epoch (a number).
    this.nowMs = nowMs;
    // 1 on the first delivery, 2 on the first retry, and so on.
    this.attempt = attempt;
    // The record's model, in a source or context function; null in a handler.
    this.model = model;
  }

  // The run's logical time, as a Date: the operator's `--now`, or when the run
  // started. Use it instead of a clock, so that a run can be replayed.
  now() {
    return new Date(this.nowMs);
  }

  // The run's logical day in UTC, as text: "2024-05-01".
  today() {
    return this.now().toISOString().slice(0, 10);
  }
}

// The invocation the host passed (its `nowMs` is a number), as an Invocation.
function invocation(inv, model) {
  return new Invocation(inv.tenant, Number(inv.nowMs), { attempt: inv.attempt, model });
}

const DAY_MS = 24 * 60 * 60 * 1000;

// Whole days from `from` to `to`, both "YYYY-MM-DD" (negative when `to` is earlier);
// a SparkError names anything else.
export function daysBetween(from, to) {
  return day(to) - day(from);
}

function day(text) {
  if (typeof text !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(text)) {
    throw new SparkError(`not a date: ${text}`);
  }
  const ms = Date.parse(`${text}T00:00:00Z`);
  if (!Number.isFinite(ms)) throw new SparkError(`not a date: ${text}`);
  return Math.floor(ms / DAY_MS);
}

// Something that happened: a group, a key unique across groups, and a context (an
// object). A handler that returns one emits it.
export class Event {
  constructor(group, key, context = {}) {
    this.group = group;
    this.key = key;
    this.context = context;
  }

  // One field of the context; a SparkError names it when it is missing.
  field(name) {
    if (this.context === null || typeof this.context !== "object" || !(name in this.context)) {
      throw new SparkError(`context of event \`${this.key}\` has no \`${name}\``);
    }
    return this.context[name];
  }
}

// An event with django-spark's key: "{group}_{id}".
export function event(group, id, context) {
  return new Event(group, `${group}_${id}`, context);
}

// A mail effect. The host renders `template` (the tenant's mail template of that
// name) with `context`, and falls back to `subject` and `body`.
export class Mail {
  constructor({ to, subject = "", body = "", template = null, context = null }) {
    this.to = Array.isArray(to) ? to : [to];
    this.subject = subject;
    this.body = body;
    this.template = template;
    this.context = context;
  }
}

// A mail effect: `mail({ to, subject, body, template, context })`; `to` is an
// address or a list of them.
export function mail(fields) {
  return new Mail(fields);
}

// An output effect: a payload (any JSON value) for an operator's channel.
export class Output {
  constructor(channel, payload) {
    this.channel = channel;
    this.payload = payload;
  }
}

// An output effect: `output("audit", { seen: event.key })`.
export function output(channel, payload) {
  return new Output(channel, payload);
}

// The `source` export: `events(record, inv)` returns the record's events.
export function defineSource(events) {
  return {
    events(model, data, inv) {
      return guarded(() => list(events(JSON.parse(data), invocation(inv, model)), "source").map(toHost));
    },
  };
}

// The `handler` export: `handle(event, inv)` returns effects: mail(...), output(...),
// or events to emit.
export function defineHandler(handle) {
  return {
    handle(hostEvent, inv) {
      return guarded(() => {
        const ours = new Event(hostEvent.group, hostEvent.key, JSON.parse(hostEvent.context));
        return list(handle(ours, invocation(inv, null)), "handler").map(toEffect);
      });
    },
  };
}

// The `context` export, for generators: `context(record, inv)` returns an object,
// whose variables `variables` describes ({ name: "what it means" }, names dotted for
// nested fields), for `spark generators describe`.
export function defineContext(variables, context) {
  if (typeof variables !== "object" || typeof context !== "function") {
    throw new TypeError("defineContext({ variable: \"description\", ... }, function)");
  }
  return {
    context(model, data, inv) {
      return guarded(() => {
        const value = context(JSON.parse(data), invocation(inv, model));
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          throw new SparkError(`a context is an object, not ${JSON.stringify(value)}`);
        }
        return JSON.stringify(value);
      });
    },
    describe(_model) {
      return Object.entries(variables).map(([name, description]) => [name, String(description)]);
    },
  };
}

// Runs `body`; what it throws becomes the module's error: a SparkError's message, or
// any other error with its stack (for a bug, where the line matters).
function guarded(body) {
  try {
    return body();
  } catch (error) {
    if (error instanceof SparkError) throw error.message;
    if (error instanceof Error) throw text(error);
    throw error;
  }
}

function list(value, what) {
  if (!Array.isArray(value)) {
    throw new SparkError(`a ${what} returns an array, not ${JSON.stringify(value)}`);
  }
  return value;
}

// An event as the host takes it: its context as JSON text.
function toHost(event) {
  if (!(event instanceof Event)) {
    throw new SparkError(`a source returns events (event(...)), not ${JSON.stringify(event)}`);
  }
  return { group: event.group, key: event.key, context: JSON.stringify(event.context ?? {}) };
}

// An effect as the host takes it: the WIT variant `effect`.
function toEffect(effect) {
  if (effect instanceof Event) return { tag: "emit", val: toHost(effect) };
  if (effect instanceof Mail) {
    const { to, subject, body, template, context } = effect;
    const json = context === null || context === undefined ? null : JSON.stringify(context);
    return { tag: "mail", val: { to, subject, body, template, context: json } };
  }
  if (effect instanceof Output) {
    return { tag: "output", val: [effect.channel, JSON.stringify(effect.payload) ?? "null"] };
  }
  throw new SparkError(
    `a handler returns mail(...), output(...) or events, not ${JSON.stringify(effect)}`,
  );
}
