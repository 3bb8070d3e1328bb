//! `ChatService`: every chat rule, once, for every protocol. Gateways call these methods
//! with an authenticated [`Session`]; the service checks permissions and limits, writes
//! through the store, and hands events to the hub after the commit.

mod accounts;
mod avatar;
mod away;
pub mod limits;
mod messages;
mod moderation;
mod operators;
mod rooms;
#[cfg(test)]
mod tests;

use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::ids::{RoomId, SessionId, UserId};
use crate::core::model::{AccountKind, User};
use crate::hub::Hub;
use crate::store::{Store, UserRow};
use crate::telemetry::Metrics;
use limits::{KeyedLimit, Throughput};
use sha2::Digest;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use accounts::{Avatar, LoginResult};
pub use messages::{HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX, HistoryQuery, SyncFrom};
pub use moderation::RoomSettings;
pub use operators::{OperatorBlock, OperatorCheck};
pub use rooms::RoomRef;

/// Reads (history pages, catch-up, room and member lists) a user may make at once.
const READ_BURST: u32 = 60;
/// Steady rate of those reads per user, per second.
const READ_PER_SECOND: f64 = 20.0;

/// Tunable rules, set from the command line or config file.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Maximum message body length, in characters.
    pub max_message_chars: usize,
    /// Whether visitors may join public rooms under a nickname without registering.
    pub allow_guests: bool,
    /// Whether guests may create public rooms (as IRC guests do by joining a new channel).
    pub allow_guest_rooms: bool,
    /// Shortest password accepted at registration and password change, in characters.
    pub min_password_chars: usize,
    /// Lifetime of a registered user's session.
    pub session_ttl: Duration,
    /// Lifetime of a guest session.
    pub guest_session_ttl: Duration,
    /// Messages a user may send at once before the steady rate applies.
    pub send_burst: u32,
    /// Steady message rate per user, shared by every protocol, in messages per second.
    pub send_per_second: f64,
    /// Login, registration and guest attempts per client address at once.
    pub auth_burst: u32,
    /// Steady rate of those attempts per client address, per minute.
    pub auth_per_minute: f64,
    /// Argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    pub argon2_passes: u32,
    /// Directory for uploaded avatars.
    pub avatar_dir: PathBuf,
    /// Largest avatar upload in bytes.
    pub max_avatar_bytes: usize,
    /// Server operator blocks for IRC `OPER`.
    pub operators: Vec<OperatorBlock>,
}

impl ServiceConfig {
    /// Returns defaults suitable for tests, with files under `dir`.
    pub fn for_tests(dir: PathBuf) -> Self {
        Self {
            max_message_chars: 4000,
            allow_guests: true,
            min_password_chars: crate::core::names::PASSWORD_MIN_CHARS,
            allow_guest_rooms: false,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            guest_session_ttl: Duration::from_secs(24 * 3600),
            send_burst: 20,
            send_per_second: 2.0,
            auth_burst: 1000,
            auth_per_minute: 6000.0,
            argon2_memory_kib: 19 * 1024,
            argon2_passes: 2,
            avatar_dir: dir,
            max_avatar_bytes: 1024 * 1024,
            operators: Vec::new(),
        }
    }
}

/// An authenticated caller: one login session of one account. A user may hold several
/// sessions at once (web, Socket.IO programs, IRC).
#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub user: User,
    /// Token that cookie-authenticated writes must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    pub expires_at: i64,
}

impl Session {
    /// Returns the account id.
    pub fn user_id(&self) -> UserId {
        self.user.id
    }

    /// Fails for guests, who may only read and post in public rooms.
    pub fn require_registered(&self) -> ChatResult<()> {
        if self.user.kind == AccountKind::Guest {
            return Err(ChatError::new(
                ErrorCode::GuestNotAllowed,
                format!("guest {} tried a registered-only action", self.user.id),
            ));
        }
        Ok(())
    }
}

/// Client address of a request, for per-address limits.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

/// Figures for `/api/v1/stats`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stats {
    pub online_users: usize,
    pub connections: usize,
    /// Messages stored in the last 60 seconds divided by 60.
    pub messages_per_second: f64,
    pub messages_last_minute: u64,
}

/// Counts of what one housekeeping pass removed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Housekeeping {
    pub expired_sessions: usize,
    pub deleted_guests: u64,
}

/// The chat service. Cheap to share: gateways hold an `Arc<ChatService>`.
pub struct ChatService {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    config: ServiceConfig,
    metrics: Arc<Metrics>,
    /// Per-user send budget, shared by every protocol.
    send_limit: KeyedLimit<UserId>,
    /// Per-address budget for login, registration and guest sign-in.
    auth_limit: KeyedLimit<Option<IpAddr>>,
    /// Last typing event forwarded per (user, room), to throttle typing floods.
    typing_seen: Mutex<HashMap<(UserId, RoomId), Instant>>,
    /// Away messages of users connected to this node.
    away: Mutex<HashMap<UserId, String>>,
    throughput: Throughput,
    /// The default public room every account joins.
    lobby: RoomId,
    /// Hash verified when a login names an unknown user, so both failures cost the same.
    decoy_hash: String,
    /// Writers hold a read guard; shutdown takes the write guard to wait for them and
    /// to turn new writes away.
    write_gate: tokio::sync::RwLock<()>,
    /// Set when shutdown begins; from then on every write is refused.
    writes_closed: std::sync::atomic::AtomicBool,
    /// Per-user budget for history, catch-up and listing reads, shared by every protocol.
    read_limit: KeyedLimit<UserId>,
    /// Per-user budget for password checks made with a live session.
    password_limit: KeyedLimit<UserId>,
}

impl ChatService {
    /// Builds the service over an opened store. Creates the lobby if the store lacks it.
    pub async fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        config: ServiceConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.avatar_dir)?;
        let lobby = match store.room_by_name_key("lobby").await? {
            Some(room) => room.id,
            None => {
                store
                    .create_room(crate::store::NewRoom {
                        name: "lobby",
                        name_key: "lobby",
                        topic: "",
                        visibility: crate::core::model::Visibility::Public,
                        owner_id: None,
                        members: &[],
                        created_at: 0,
                    })
                    .await?
                    .id
            }
        };
        let decoy_hash = accounts::hash_password_with(
            "decoy password that never matches",
            config.argon2_memory_kib,
            config.argon2_passes,
        )
        .await?;
        Ok(Self {
            send_limit: KeyedLimit::new(config.send_burst, config.send_per_second),
            auth_limit: KeyedLimit::new(config.auth_burst, config.auth_per_minute / 60.0),
            store,
            hub,
            metrics,
            typing_seen: Mutex::new(HashMap::new()),
            away: Mutex::new(HashMap::new()),
            throughput: Throughput::new(),
            lobby,
            decoy_hash,
            write_gate: tokio::sync::RwLock::new(()),
            writes_closed: std::sync::atomic::AtomicBool::new(false),
            read_limit: KeyedLimit::new(READ_BURST, READ_PER_SECOND),
            password_limit: KeyedLimit::new(config.auth_burst, config.auth_per_minute / 60.0),
            config,
        })
    }

    /// Returns the hub, for gateways that register connections.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Returns the id of the default public room.
    pub fn lobby(&self) -> RoomId {
        self.lobby
    }

    /// Returns the rules in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Returns the metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Admits one write, or fails once shutdown has begun.
    fn begin_write(&self) -> ChatResult<tokio::sync::RwLockReadGuard<'_, ()>> {
        let refused = || ChatError::new(ErrorCode::ShuttingDown, "write after shutdown began");
        if self
            .writes_closed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(refused());
        }
        self.write_gate.try_read().map_err(|_| refused())
    }

    /// Waits up to `limit` for in-flight writes to finish and rejects new ones.
    /// Returns false when writes were still running at the deadline.
    pub async fn drain_writes(&self, limit: Duration) -> bool {
        // The flag keeps writes out even if the wait below times out and lets go of the gate.
        self.writes_closed
            .store(true, std::sync::atomic::Ordering::Release);
        match tokio::time::timeout(limit, self.write_gate.write()).await {
            Ok(guard) => {
                // Keep the gate closed for the rest of the process.
                std::mem::forget(guard);
                true
            }
            Err(_) => false,
        }
    }

    /// Checks that the store responds.
    pub async fn ready(&self) -> ChatResult<()> {
        self.store.ping().await
    }

    /// Closes the store.
    pub async fn close_store(&self) {
        self.store.close().await;
    }

    /// Returns live figures for the stats endpoint.
    pub fn stats(&self) -> Stats {
        let last_minute = self.throughput.last_minute();
        Stats {
            online_users: self.hub.online_users(),
            connections: self.hub.connection_count(),
            messages_per_second: last_minute as f64 / 60.0,
            messages_last_minute: last_minute,
        }
    }

    /// Deletes expired sessions and closes their connections, deletes guest accounts
    /// whose sessions have all expired, and drops idle rate-limit buckets. Run it
    /// periodically.
    pub async fn housekeeping(&self) -> ChatResult<Housekeeping> {
        self.send_limit.prune();
        self.auth_limit.prune();
        self.read_limit.prune();
        self.password_limit.prune();
        {
            let mut seen = self.typing_seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|_, at| at.elapsed() < Duration::from_secs(60));
        }
        let expired = self
            .store
            .delete_expired_sessions(crate::core::time::now_millis())
            .await?;
        self.hub
            .close_sessions(&expired, crate::core::i18n::Notice::SessionEnded);
        // A guest younger than one session lifetime may still be signing in.
        let cutoff =
            crate::core::time::now_millis() - self.config.guest_session_ttl.as_millis() as i64;
        let guests = self.store.delete_orphan_guests(cutoff).await?;
        Ok(Housekeeping {
            expired_sessions: expired.len(),
            deleted_guests: guests,
        })
    }

    /// Converts a stored account to what other people see.
    fn public_user(row: &UserRow) -> User {
        let version = match row.avatar.as_deref() {
            // Uploaded files are named by the SHA-256 of their content.
            Some(file) => file[..file.len().min(12)].to_owned(),
            // The generated image draws the display name's first character, so a hash of
            // the name versions it.
            None => {
                let digest = sha2::Sha256::digest(row.display_name.as_bytes());
                format!("g{}", hex::encode(&digest[..6]))
            }
        };
        User {
            id: row.id,
            username: row.username.clone(),
            display_name: row.display_name.clone(),
            kind: row.kind,
            avatar_url: format!("/api/v1/users/{}/avatar?v={}", row.id, version),
            created_at: row.created_at,
        }
    }
}
