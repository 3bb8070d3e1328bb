//! Confab: a self-hosted chat room server.
//!
//! The crate is layered, and dependencies point down only:
//!
//! - [`gateway`]: protocol edges (`http` for REST, OpenAPI and pages; `socketio` for
//!   Socket.IO v4). They decode a client's request, call the service and encode events.
//! - [`service`]: [`service::ChatService`], the one place where every chat rule lives
//!   (accounts, sessions, rooms, roles, messages, rate limits).
//! - [`hub`]: the in-memory real-time core of one node: which connection listens to which
//!   room, fan-out into bounded per-connection queues, and presence.
//! - [`store`]: durable state behind the [`store::Store`] traits; SQLite is the embedded default.
//! - [`core`]: domain types and pure rules (ids, names, roles, errors, events).
//!
//! [`server`] wires the layers together, and [`config`] reads the options.

pub mod config;
pub mod core;
pub mod gateway;
pub mod hub;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
