//! Console sessions: signing in with a token sets a session cookie (HttpOnly,
//! SameSite=Strict, path `/console`), and every form carries the session's CSRF token.
//!
//! Sessions live in the server's memory (a restart signs everyone out) and hold the
//! token they were opened with, checked again on every request: a revoked token closes
//! its sessions at once. A session left alone for [`IDLE`] ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use crate::serve::tokens::{Access, Tokens, random_hex};

/// The session cookie's name.
pub const COOKIE: &str = "spark_session";
/// The header a node of a cluster carries a console session in when it passes a page
/// on to the node owning the tenant: that node adopts the session ([`Sessions::adopt`]),
/// its token checked as on every request, so that the operator stays signed in
/// whichever node owns the tenant.
pub const CARRIED: &str = "spark-console-session";
/// How long a session lasts without a request.
const IDLE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most: the oldest goes first when more are opened.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The tenant signed in to.
    pub tenant: String,
    /// What the token allows (read, admin...).
    pub access: Access,
    /// Every form's hidden `csrf` field must hold this.
    pub csrf: String,
    token: String,
    last_used: Instant,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (compared in constant time).
    pub fn csrf_holds(&self, sent: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(sent.as_bytes()))
    }
}

#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Opens a session on `tenant` for `token`, whose access is `access`.
    pub fn start(&self, tenant: &str, token: &str, access: Access) -> anyhow::Result<Session> {
        let session = Session {
            id: random_hex::<32>()?,
            tenant: tenant.to_owned(),
            access,
            csrf: random_hex::<32>()?,
            token: token.to_owned(),
            last_used: Instant::now(),
        };
        let mut open = self.open();
        open.retain(|_, session| session.last_used.elapsed() < IDLE);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .values()
                .min_by_key(|session| session.last_used)
                .map(|session| session.id.clone())
        {
            open.remove(&oldest);
        }
        open.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The session of a request's cookie, if it is open, not idle too long, and its
    /// token still opens its tenant.
    pub fn of(&self, headers: &HeaderMap, tokens: &Tokens) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut open = self.open();
        let session = open.get_mut(&id)?;
        let alive = session.last_used.elapsed() < IDLE
            && tokens.verify(&session.token).is_some_and(|access| {
                access.allows(&session.tenant, super::super::tokens::Scope::Read)
            });
        if !alive {
            open.remove(&id);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    /// The session of a request's cookie, as [`CARRIED`] carries it to another node:
    /// its id, tenant, CSRF token and token.
    pub fn carried(&self, headers: &HeaderMap) -> Option<String> {
        let id = cookie(headers, COOKIE)?;
        let open = self.open();
        let session = open.get(&id)?;
        Some(format!(
            "{} {} {} {}",
            session.id, session.tenant, session.csrf, session.token
        ))
    }

    /// Takes on a session another node of the cluster carried here, if its token still
    /// opens its tenant (a token only does what it allows, whoever carries it).
    pub fn adopt(&self, carried: &str, tokens: &Tokens) {
        let mut parts = carried.split(' ');
        let (Some(id), Some(tenant), Some(csrf), Some(token), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return;
        };
        let Some(access) = tokens.verify(token) else {
            return;
        };
        if !access.allows(tenant, super::super::tokens::Scope::Read) {
            return;
        }
        self.open().insert(
            id.to_owned(),
            Session {
                id: id.to_owned(),
                tenant: tenant.to_owned(),
                access,
                csrf: csrf.to_owned(),
                token: token.to_owned(),
                last_used: Instant::now(),
            },
        );
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.open().remove(id);
    }
}

/// The `Set-Cookie` value that opens `session`. `secure` adds `Secure`, for a console
/// reached over HTTPS (through a proxy that says so with `X-Forwarded-Proto`).
pub fn set_cookie(session: &Session, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}{secure}",
        session.id,
        IDLE.as_secs()
    ))
    .expect("a session id is hex")
}

/// The `Set-Cookie` value that ends the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("spark_session=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0")
}

/// Whether the request came over HTTPS, as a TLS-terminating proxy says.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The value of cookie `name` in a request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; spark_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
