//! The one transport-neutral error type. Gateways map it to HTTP statuses, Socket.IO
//! acknowledgements or IRC numerics; the client sees the stable code and a translated
//! sentence, and internal details go to the log only.

use serde::Serialize;
use std::time::Duration;

/// Stable, machine-readable error codes. Clients branch on these, so renaming one is a
/// breaking protocol change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidPayload,
    InvalidUsername,
    InvalidDisplayName,
    InvalidPassword,
    InvalidRoomName,
    InvalidTopic,
    InvalidBody,
    BodyTooLong,
    InvalidClientMsgId,
    ClientMsgIdReused,
    InvalidImage,
    ImageTooLarge,
    UsernameTaken,
    RoomNameTaken,
    NicknameTaken,
    BadCredentials,
    WrongPassword,
    Unauthenticated,
    CsrfFailed,
    OriginRejected,
    GuestsDisabled,
    GuestNotAllowed,
    Forbidden,
    NotMember,
    TargetNotMember,
    AlreadyMember,
    Banned,
    NotBanned,
    RoomModerated,
    NotFound,
    RoomNotFound,
    UserNotFound,
    MessageNotFound,
    MessageDeleted,
    RateLimited,
    PayloadTooLarge,
    MethodNotAllowed,
    UnknownEvent,
    ShuttingDown,
    StoreUnavailable,
    Internal,
}

impl ErrorCode {
    /// Returns the snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "invalid_payload",
            Self::InvalidUsername => "invalid_username",
            Self::InvalidDisplayName => "invalid_display_name",
            Self::InvalidPassword => "invalid_password",
            Self::InvalidRoomName => "invalid_room_name",
            Self::InvalidTopic => "invalid_topic",
            Self::InvalidBody => "invalid_body",
            Self::BodyTooLong => "body_too_long",
            Self::InvalidClientMsgId => "invalid_client_msg_id",
            Self::ClientMsgIdReused => "client_msg_id_reused",
            Self::InvalidImage => "invalid_image",
            Self::ImageTooLarge => "image_too_large",
            Self::UsernameTaken => "username_taken",
            Self::RoomNameTaken => "room_name_taken",
            Self::NicknameTaken => "nickname_taken",
            Self::BadCredentials => "bad_credentials",
            Self::WrongPassword => "wrong_password",
            Self::Unauthenticated => "unauthenticated",
            Self::CsrfFailed => "csrf_failed",
            Self::OriginRejected => "origin_rejected",
            Self::GuestsDisabled => "guests_disabled",
            Self::GuestNotAllowed => "guest_not_allowed",
            Self::Forbidden => "forbidden",
            Self::NotMember => "not_member",
            Self::TargetNotMember => "target_not_member",
            Self::AlreadyMember => "already_member",
            Self::Banned => "banned",
            Self::NotBanned => "not_banned",
            Self::RoomModerated => "room_moderated",
            Self::NotFound => "not_found",
            Self::RoomNotFound => "room_not_found",
            Self::UserNotFound => "user_not_found",
            Self::MessageNotFound => "message_not_found",
            Self::MessageDeleted => "message_deleted",
            Self::RateLimited => "rate_limited",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnknownEvent => "unknown_event",
            Self::ShuttingDown => "shutting_down",
            Self::StoreUnavailable => "store_unavailable",
            Self::Internal => "internal",
        }
    }

    /// Reports whether the same request may succeed if the client retries it later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::StoreUnavailable | Self::ShuttingDown | Self::Internal
        )
    }
}

/// A failed chat operation.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The request broke a rule; `detail` names the offending value for the log and tests,
    /// and never contains a secret.
    #[error("{code:?}: {detail}")]
    Rejected { code: ErrorCode, detail: String },

    /// The caller is over a rate limit and may try again after `retry_after`.
    #[error("rate limited, retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },

    /// The store could not complete the operation; nothing was half-written.
    #[error("store failure: {0}")]
    Store(#[source] anyhow::Error),

    /// An unexpected fault inside the server.
    #[error("internal error: {0}")]
    Internal(#[source] anyhow::Error),
}

impl ChatError {
    /// Builds a rule violation with the given code and detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Rejected {
            code,
            detail: detail.into(),
        }
    }

    /// Returns the developer-facing detail of a rule violation: which value broke which
    /// rule, in English. Server faults have none, so their causes stay in the log.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Rejected { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// Returns the stable code a client receives.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Store(_) => ErrorCode::StoreUnavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Returns the wait before a retry can succeed, for rate limits.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Reports whether this is a server fault that the handling gateway should log.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Internal(_))
    }
}

/// Result of a chat operation.
pub type ChatResult<T> = Result<T, ChatError>;
