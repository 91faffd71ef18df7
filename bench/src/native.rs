//! The example's source and handler compiled natively, behind the same pipeline: the
//! baseline the WebAssembly numbers are divided by. Each does what the component glue
//! does around the same functions (parse the JSON in, build the values out), with the
//! glue's own helpers where it has them.

use spark_host::{CallError, Effect, Event, Invocation, Mail, NativeModule};

pub struct NativeSource;
pub struct NativeMailer;

fn invocation(inv: &Invocation, model: Option<&str>) -> spark_guest::Invocation {
    let now = jiff::Timestamp::from_millisecond(inv.now_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let guest = spark_guest::Invocation::new(inv.tenant.clone(), now).with_attempt(inv.attempt);
    match model {
        Some(model) => guest.with_model(model),
        None => guest,
    }
}

fn guest_error(message: impl ToString) -> CallError {
    CallError::Guest {
        message: message.to_string(),
    }
}

impl NativeModule for NativeSource {
    fn exports(&self) -> Vec<&'static str> {
        vec!["source"]
    }

    fn events(&self, model: &str, record: &str, inv: &Invocation) -> Result<Vec<Event>, CallError> {
        let challenge = serde_json::from_str(record).map_err(guest_error)?;
        let events = challenges_source::challenge_events(challenge, &invocation(inv, Some(model)))
            .map_err(guest_error)?;
        Ok(events
            .into_iter()
            .map(|event| {
                let (group, key, context) = spark_guest::__private::event_parts(event);
                Event {
                    group,
                    key,
                    context,
                }
            })
            .collect())
    }
}

impl NativeModule for NativeMailer {
    fn exports(&self) -> Vec<&'static str> {
        vec!["handler"]
    }

    fn handle(&self, event: &Event, inv: &Invocation) -> Result<Vec<Effect>, CallError> {
        let guest_event = spark_guest::__private::host_event(
            event.group.clone(),
            event.key.clone(),
            event.context.clone(),
        );
        let effects = challenges_mailer::challenge_mail(&guest_event, &invocation(inv, None))
            .map_err(guest_error)?;
        Ok(effects
            .into_iter()
            .filter_map(|effect| match effect {
                spark_guest::Effect::Mail(mail) => Some(Effect::Mail(Mail {
                    to: mail.to,
                    subject: mail.subject,
                    body: mail.body,
                    template: mail.template,
                    context: mail.context.map(|context| context.to_string()),
                    ..Mail::default()
                })),
                _ => None,
            })
            .collect())
    }
}
