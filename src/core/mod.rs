//! Domain types and pure rules shared by every layer. Nothing here does I/O.

pub mod error;
pub mod event;
pub mod i18n;
pub mod ids;
pub mod model;
pub mod names;
pub mod role;
pub mod time;

pub use error::{ChatError, ErrorCode};
pub use ids::{MessageId, RoomId, Seq, SessionId, UserId};
