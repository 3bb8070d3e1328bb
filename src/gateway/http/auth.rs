//! Caller identification: bearer tokens for programs, the session cookie for browsers, and the
//! CSRF and Origin checks that cookie authentication needs.

use super::AppState;
use super::error::{ApiError, lang_of};
use crate::core::error::ErrorCode;
use crate::core::i18n::Lang;
use crate::gateway::socketio::SESSION_COOKIE;
use crate::service::{LoginResult, Session};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Cookie holding the CSRF token; readable by the page's script, which echoes it in
/// [`CSRF_HEADER`] on writes (double-submit).
pub const CSRF_COOKIE: &str = "confab_csrf";
/// Header that cookie-authenticated writes must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated request.
pub struct Authed {
    pub session: Session,
    pub lang: Lang,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let lang = lang_of(parts);
        let (token, via_cookie) = match bearer(&parts.headers) {
            Some(token) => (token.to_owned(), false),
            None => match cookie(&parts.headers, SESSION_COOKIE) {
                Some(token) => (token, true),
                None => {
                    return Err(ApiError::code(
                        ErrorCode::Unauthenticated,
                        "no bearer token or session cookie",
                        lang,
                    ));
                }
            },
        };
        let session = state
            .service
            .authenticate(&token)
            .await
            .map_err(|e| ApiError::new(e, lang))?;

        // A browser sends the cookie on cross-site requests too; the CSRF token proves the
        // request came from a page of this origin.
        if via_cookie && is_write(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_secret(sent, &session.csrf_token) {
                return Err(ApiError::code(
                    ErrorCode::CsrfFailed,
                    "cookie-authenticated write without a matching CSRF token",
                    lang,
                ));
            }
        }
        Ok(Authed { session, lang })
    }
}

/// Rejects requests whose `Origin` header names a site not in the allowed list. Programs
/// that send no `Origin` pass; browsers always send it on cross-origin writes and on
/// WebSocket handshakes.
pub async fn check_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let guarded = path.starts_with(crate::gateway::socketio::PATH)
        || (path.starts_with("/api/") && is_write(req.method()));
    if guarded && let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin
            .to_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned();
        if !state.origins.contains(&origin) {
            let (parts, _) = req.into_parts();
            let lang = lang_of(&parts);
            tracing::info!(origin = %origin, path = %parts.uri.path(), "request from a foreign origin rejected");
            return ApiError::code(
                ErrorCode::OriginRejected,
                format!("origin {origin:?}"),
                lang,
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Adds the session and CSRF cookies for a new login to a response.
pub fn with_session_cookies(
    state: &AppState,
    login: &LoginResult,
    mut response: Response,
) -> Response {
    let max_age = ((login.expires_at - crate::core::time::now_millis()) / 1000).max(0);
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let session = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        login.token
    );
    let csrf = format!(
        "{CSRF_COOKIE}={}; Path=/; Max-Age={max_age}; SameSite=Lax{secure}",
        login.csrf_token
    );
    for value in [session, csrf] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Adds cookie-clearing headers to a logout response.
pub fn clear_session_cookies(state: &AppState, mut response: Response) -> Response {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let value = format!("{name}=; Path=/; Max-Age=0; SameSite=Lax{secure}");
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parses_scheme_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn cookie_finds_named_value() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; confab_session=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
