//! A module that misbehaves on request, to show the sandbox holds. A record's `do`
//! (source) or an event context's `do` (handler) names the misbehaviour; anything else
//! behaves: the source returns an event `ok_<id>`, the handler an output `ok`. The
//! same misbehaviours are used for sources and handlers.
//!
//! `leave` and `snoop` test isolation between instances: `leave` writes a pattern
//! into memory and leaves it there, `snoop` counts the pattern in all of its memory.

use std::hash::BuildHasher;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use spark_guest::{Effect, Error, Event, Invocation, Value, event, json};

#[derive(Deserialize)]
struct Record {
    id: Value,
    #[serde(default, rename = "do")]
    action: String,
}

#[spark_guest::source]
fn events(record: Record, _inv: &Invocation) -> Result<Vec<Event>, Error> {
    let id = match &record.id {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    match misbehave(&record.action, &id)? {
        Some(Outcome::Events(events)) => Ok(events),
        Some(Outcome::Report(report)) => Ok(vec![event("report", id, report)]),
        None => Ok(vec![event("ok", id, json!({}))]),
    }
}

#[spark_guest::handler]
fn handle(event: &Event, _inv: &Invocation) -> Result<Vec<Effect>, Error> {
    let action = event
        .context
        .get("do")
        .and_then(Value::as_str)
        .unwrap_or("");
    match misbehave(action, &event.key)? {
        Some(Outcome::Events(events)) => Ok(events.into_iter().map(Effect::Emit).collect()),
        Some(Outcome::Report(report)) => Ok(vec![Effect::output("report", report)]),
        None => Ok(vec![Effect::output("ok", json!({ "key": event.key }))]),
    }
}

enum Outcome {
    /// Events to return (or emit, from a handler).
    Events(Vec<Event>),
    /// What the module observed, returned as an event context or an output.
    Report(Value),
}

/// Does what `action` says; `None` for an action it does not know, which means behave.
fn misbehave(action: &str, id: &str) -> Result<Option<Outcome>, Error> {
    let raw = |group: &str, key: String, context: &str| Event {
        group: group.to_owned(),
        key,
        // The SDK only builds JSON values; a raw context needs the host's own check.
        context: serde_json::from_str::<Value>(context)
            .unwrap_or(Value::String(context.to_owned()))
            .into(),
    };
    Ok(Some(match action {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "recurse" => Outcome::Report(json!({ "depth": recurse(0) })),
        "out-of-bounds" => {
            // Past the end of its memory, where wasm traps rather than reads.
            let past_end = memory_bytes() + 16;
            let byte = unsafe { std::ptr::read_volatile(past_end as *const u8) };
            Outcome::Report(json!({ "byte": byte }))
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        // Over the 1 MiB output limit, under the default fuel.
        "huge-output" => Outcome::Report(json!({ "blob": "x".repeat(3 << 19) })),
        "many" => Outcome::Events(
            (0..1_000)
                .map(|n| event("many", format!("{id}_{n}"), json!({})))
                .collect(),
        ),
        "panic" => panic!("hostile panic for {id}"),
        "fail" => return Err(Error::msg(format!("asked to fail for {id}"))),
        "exit" => std::process::exit(3),
        "array-context" => Outcome::Events(vec![raw("bad", format!("bad_{id}"), "[1, 2, 3]")]),
        "empty-key" => Outcome::Events(vec![raw("bad", String::new(), "{}")]),
        "long-key" => Outcome::Events(vec![raw("bad", "k".repeat(1_000), "{}")]),
        "control-key" => Outcome::Events(vec![raw("bad", format!("bad\u{7}{id}"), "{}")]),
        "empty-group" => Outcome::Events(vec![raw("", format!("bad_{id}"), "{}")]),
        "long-group" => Outcome::Events(vec![raw(&"g".repeat(1_000), format!("bad_{id}"), "{}")]),
        "huge-context" => Outcome::Events(vec![event(
            "bad",
            id,
            json!({ "blob": "x".repeat(100 << 10) }),
        )]),
        "bad-utf8" => {
            // Invalid UTF-8 behind a `String`: the canonical ABI refuses it on the way out.
            let bytes = vec![b'k', 0xff, 0xfe];
            let key = unsafe { String::from_utf8_unchecked(bytes) };
            Outcome::Events(vec![raw("bad", key, "{}")])
        }
        "clock" => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let started = Instant::now();
            std::thread::sleep(Duration::from_secs(3_600));
            let slept_ms = started.elapsed().as_millis() as u64;
            Outcome::Report(json!({ "now_ms": now_ms, "slept_ms": slept_ms }))
        }
        "count" => {
            // State kept in the instance between calls: how many `count` calls it served.
            static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            Outcome::Report(json!({ "calls": calls }))
        }
        "leave" => {
            // Traces for a later instance to look for ("snoop"): in a static, and in a
            // heap block reaching past the first MiB of memory, leaked so that it stays.
            static mut TRACE: [u8; 4096] = [0; 4096];
            // SAFETY: calls into an instance are one at a time; nothing else holds TRACE.
            fill_with_traces(unsafe { &mut *std::ptr::addr_of_mut!(TRACE) });
            let mut heap = vec![0u8; 2 << 20];
            fill_with_traces(&mut heap);
            std::mem::forget(heap);
            Outcome::Report(json!({ "traces": count_traces() }))
        }
        "snoop" => {
            // Grown memory is assumed zeroed by the allocator: whatever an earlier
            // instance left in it would show here.
            let grown = std::hint::black_box(vec![0u8; 4 << 20]);
            let traces = count_traces();
            drop(grown);
            Outcome::Report(json!({ "traces": traces }))
        }
        "random" => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| Error::msg(e.to_string()))?;
            let hash = std::collections::hash_map::RandomState::new().hash_one(42u32);
            Outcome::Report(json!({ "bytes": bytes.to_vec(), "hash": hash }))
        }
        "files" => {
            let read = std::fs::read("/etc/passwd").map(|b| b.len());
            let list = std::fs::read_dir("/").map(|d| d.count());
            let create = std::fs::write("escape.txt", b"hello");
            Outcome::Report(json!({
                "read": format!("{read:?}"),
                "list": format!("{list:?}"),
                "create": format!("{create:?}"),
            }))
        }
        "env" => Outcome::Report(json!({
            "vars": std::env::vars().count(),
            "args": std::env::args().count(),
            "home": format!("{:?}", std::env::var("HOME")),
            "cwd": format!("{:?}", std::env::current_dir()),
        })),
        "socket" => {
            use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
            let tcp = TcpStream::connect("127.0.0.1:80").map(|_| ());
            let udp = UdpSocket::bind("0.0.0.0:0").map(|_| ());
            let dns = ("localhost", 80).to_socket_addrs().map(|a| a.count());
            Outcome::Report(json!({
                "tcp": format!("{tcp:?}"),
                "udp": format!("{udp:?}"),
                "dns": format!("{dns:?}"),
            }))
        }
        "print" => {
            let line = "spam ".repeat(200);
            let mut stdout = std::io::stdout();
            for _ in 0..100 {
                let _ = writeln!(stdout, "{line}");
            }
            eprintln!("a line on stderr");
            Outcome::Report(json!({ "printed": 100 * (line.len() + 1) }))
        }
        _ => return Ok(None),
    }))
}

/// Recurses until the stack runs out; `black_box` keeps it from becoming a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    1 + recurse(std::hint::black_box(frame[0] + 1))
}

/// Word `k` of 8 of a trace: 64 bytes at a 64-byte aligned address. Computed, never
/// stored whole, so the module's own code, data and stack never hold a trace.
fn trace_word(k: usize) -> u64 {
    (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_A5A5_A5A5_A5A5
}

/// Writes a trace over every aligned 64-byte block of `buffer`.
fn fill_with_traces(buffer: &mut [u8]) {
    let start = buffer.as_ptr() as usize;
    let skip = (start.next_multiple_of(64) - start).min(buffer.len());
    for block in buffer[skip..].chunks_exact_mut(64) {
        for (k, word) in block.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&trace_word(k).to_le_bytes());
        }
    }
}

/// Traces anywhere in this instance's linear memory.
fn count_traces() -> u64 {
    let end = memory_bytes();
    (64..end)
        .step_by(64)
        // Reads memory the module never allocated, which is the point: any address
        // below `end` is in this instance's memory, and reading it is defined in wasm.
        .filter(|&at| {
            (0..8).all(
                |k| unsafe { std::ptr::read_volatile((at + 8 * k) as *const u64) } == trace_word(k),
            )
        })
        .count() as u64
}

/// The size of this instance's linear memory. (The crate also builds natively, for
/// `cargo test --workspace`, where there is none to speak of.)
fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65_536;
    #[cfg(not(target_arch = "wasm32"))]
    return 0;
}
