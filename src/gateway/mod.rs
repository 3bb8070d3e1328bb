//! Protocol edges (REST, Socket.IO, IRC). Each gateway decodes a client's request, calls the service and
//! encodes the result and events for that client; no chat rule lives here.

pub mod http;
pub mod irc;
pub mod socketio;
