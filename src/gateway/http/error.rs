//! HTTP error responses and the extractors that produce them. Every failure, including a
//! malformed body or path, becomes `{"error": {code, message, retry_after_ms}}` with a
//! fitting status, in the client's language.

use crate::core::error::{ChatError, ErrorCode};
use crate::core::i18n::{self, Lang};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// A chat error on its way to an HTTP client.
pub struct ApiError {
    pub error: ChatError,
    pub lang: Lang,
}

impl ApiError {
    pub fn new(error: ChatError, lang: Lang) -> Self {
        Self { error, lang }
    }

    pub fn code(code: ErrorCode, detail: impl Into<String>, lang: Lang) -> Self {
        Self::new(ChatError::new(code, detail), lang)
    }
}

/// Attaches the client's language to a service result's error.
pub trait Localize<T> {
    fn localized(self, lang: Lang) -> Result<T, ApiError>;
}

impl<T> Localize<T> for Result<T, ChatError> {
    fn localized(self, lang: Lang) -> Result<T, ApiError> {
        self.map_err(|error| ApiError::new(error, lang))
    }
}

/// Maps an error code to its HTTP status.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalidPayload | InvalidUsername | InvalidDisplayName | InvalidPassword
        | InvalidRoomName | InvalidTopic | InvalidBody | BodyTooLong | InvalidClientMsgId
        | InvalidImage => StatusCode::BAD_REQUEST,
        PayloadTooLarge | ImageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Unauthenticated | BadCredentials => StatusCode::UNAUTHORIZED,
        WrongPassword | CsrfFailed | OriginRejected | GuestsDisabled | GuestNotAllowed
        | Forbidden | NotMember | Banned | RoomModerated => StatusCode::FORBIDDEN,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        NotFound | RoomNotFound | UserNotFound | MessageNotFound | TargetNotMember | NotBanned
        | UnknownEvent => StatusCode::NOT_FOUND,
        UsernameTaken | RoomNameTaken | NicknameTaken | AlreadyMember | MessageDeleted
        | ClientMsgIdReused => StatusCode::CONFLICT,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ShuttingDown | StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        if self.error.is_server_fault() {
            tracing::error!(cause = %self.error, "request failed");
        }
        let retry_after = self.error.retry_after();
        let body = serde_json::json!({
            "error": {
                "code": code.as_str(),
                "message": i18n::error_message(code, self.lang),
                "retry_after_ms": retry_after.map(|d| d.as_millis() as u64),
                "detail": self.error.detail(),
            }
        });
        let mut response = (status_of(code), axum::Json(body)).into_response();
        if let Some(wait) = retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// The language negotiated from `Accept-Language`.
#[derive(Clone, Copy, Debug)]
pub struct ClientLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for ClientLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientLang(lang_of(parts)))
    }
}

pub fn lang_of(parts: &Parts) -> Lang {
    parts
        .headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::negotiate)
        .unwrap_or_default()
}

/// A JSON body whose rejection is an [`ApiError`].
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let lang = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::negotiate)
            .unwrap_or_default();
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => {
                let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::PayloadTooLarge
                } else {
                    ErrorCode::InvalidPayload
                };
                Err(ApiError::code(code, rejection.body_text(), lang))
            }
        }
    }
}

/// Path parameters whose rejection is an [`ApiError`].
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let lang = lang_of(parts);
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::code(
                ErrorCode::InvalidPayload,
                rejection.body_text(),
                lang,
            )),
        }
    }
}

/// Query parameters whose rejection is an [`ApiError`].
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let lang = lang_of(parts);
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::code(
                ErrorCode::InvalidPayload,
                rejection.body_text(),
                lang,
            )),
        }
    }
}
