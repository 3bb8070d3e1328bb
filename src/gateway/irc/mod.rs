//! The IRC gateway: RFC 2812 with IRCv3 extensions over TCP, and over TLS when a
//! certificate is configured. Rooms appear as `#room-name`. The gateway decodes lines,
//! calls [`ChatService`] and encodes hub events as lines; each connection registers with
//! the hub through its own [`sink::IrcSink`].

mod away;
mod caps;
mod channels;
mod chathistory;
mod commands;
mod conn;
mod info;
pub mod line;
mod modes;
mod names;
mod numerics;
mod oper;
mod registration;
mod sink;
mod tags;

use crate::service::ChatService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Kernel send buffer requested per IRC socket, in bytes (Linux doubles it).
const KERNEL_SEND_BUFFER: usize = 16 * 1024;

/// Gateway settings, from the command line or config file.
#[derive(Clone, Debug)]
pub struct IrcSettings {
    /// Server name used as the source of server replies.
    pub server_name: String,
    /// Maximum nickname length, in characters (ISUPPORT NICKLEN).
    pub nick_max_chars: usize,
    /// Send queue budget per connection, in bytes.
    pub sendq_bytes: usize,
    /// Lines a client may send at once before the steady rate applies.
    pub flood_burst: u32,
    /// Steady rate of lines per client, per second.
    pub flood_rate: f64,
    /// Time a connection may take to complete registration.
    pub registration_timeout: Duration,
}

/// Owner of a nickname: a connection still registering, or a signed-in user (whose
/// several connections share it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NickOwner {
    Connection(u64),
    User(crate::core::ids::UserId),
}

/// Nicknames in use by IRC connections on this node, by folded key, with a count per
/// holder so one user's several connections share a nickname.
#[derive(Default)]
pub(crate) struct NickTable(Mutex<HashMap<String, (NickOwner, usize)>>);

impl NickTable {
    /// Takes `nick` for `owner`, or returns false if another owner has it. The check
    /// and the insert happen under one lock, so of two clients racing for one nickname
    /// exactly one gets it.
    pub fn claim(&self, nick: &str, owner: NickOwner) -> bool {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.entry(names::nick_key(nick)).or_insert((owner, 0));
        if entry.0 != owner {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Hands `nick` from the registering connection `from` to `to`, or claims it for `to`
    /// if `from` does not own it. Returns false if a third owner has it.
    pub fn transfer(&self, nick: &str, from: NickOwner, to: NickOwner) -> bool {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.entry(names::nick_key(nick)).or_insert((to, 0));
        if entry.0 == from {
            *entry = (to, 1);
            return true;
        }
        if entry.0 != to {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Returns who holds `nick`, if anyone.
    pub fn owner(&self, nick: &str) -> Option<NickOwner> {
        let table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        table.get(&names::nick_key(nick)).map(|(owner, _)| *owner)
    }

    /// Gives back one claim of `nick` by `owner`.
    pub fn release(&self, nick: &str, owner: NickOwner) {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = names::nick_key(nick);
        if let Some(entry) = table.get_mut(&key)
            && entry.0 == owner
        {
            entry.1 -= 1;
            if entry.1 == 0 {
                table.remove(&key);
            }
        }
    }
}

/// State shared by every IRC connection of the process.
pub(crate) struct Shared {
    pub service: Arc<ChatService>,
    pub settings: IrcSettings,
    pub nicks: NickTable,
    /// Users with an operator connection on this node.
    pub operators: oper::OperatorTable,
    /// Cancelled at shutdown; every connection then closes with a notice.
    pub shutdown: CancellationToken,
    /// Start time shown in 003 RPL_CREATED.
    pub started_at: String,
    next_serial: AtomicU64,
}

/// Returns the ISUPPORT tokens (RPL_ISUPPORT, 005).
pub(crate) fn isupport_tokens(settings: &IrcSettings) -> Vec<String> {
    vec![
        // Names fold as NFKC + lowercase; rfc8265 (PRECIS) is the nearest registered value.
        "CASEMAPPING=rfc8265".to_owned(),
        "CHANTYPES=#".to_owned(),
        // Type A (list) `b`; type D (flags) `i`, `m`, `t`. `i` follows the room's visibility.
        "CHANMODES=b,,,imt".to_owned(),
        "PREFIX=(o)@".to_owned(),
        format!("NICKLEN={}", settings.nick_max_chars),
        format!("CHANNELLEN={}", crate::core::names::ROOM_NAME_MAX_CHARS + 1),
        format!("TOPICLEN={}", crate::core::names::TOPIC_MAX_CHARS),
        format!("LINELEN={}", line::MAX_BODY_BYTES),
        format!("TARGMAX={}", commands::targmax()),
        "NETWORK=Confab".to_owned(),
        format!("CHATHISTORY={}", crate::service::HISTORY_PAGE_MAX),
        "UTF8ONLY".to_owned(),
    ]
}

/// A bound IRC listener: plain TCP, or TLS with its acceptor.
pub struct IrcListener {
    pub listener: TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The running gateway: stop it with [`IrcGateway::shutdown`].
pub struct IrcGateway {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl IrcGateway {
    /// Starts accepting connections on each listener.
    pub fn start(
        service: Arc<ChatService>,
        settings: IrcSettings,
        listeners: Vec<IrcListener>,
    ) -> Self {
        let shared = Arc::new(Shared {
            service,
            settings,
            nicks: NickTable::default(),
            operators: oper::OperatorTable::default(),
            shutdown: CancellationToken::new(),
            started_at: line::server_time(crate::core::time::now_millis()),
            next_serial: AtomicU64::new(1),
        });
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, shared.clone())))
            .collect();
        Self { shared, tasks }
    }

    /// Stops accepting and closes every connection with the shutdown notice.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(listener: IrcListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually too many open files; pause instead of spinning.
                tracing::warn!(cause = %err, "IRC accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // A small kernel buffer keeps the SendQ budget meaningful: with the default
        // autotuning, Linux buffers megabytes for a client that stopped reading.
        if let Err(err) = socket2::SockRef::from(&stream).set_send_buffer_size(KERNEL_SEND_BUFFER) {
            tracing::debug!(%peer, cause = %err, "failed to set the IRC socket send buffer");
        }
        let serial = shared.next_serial.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let tls = listener.tls.clone();
        tokio::spawn(async move {
            match tls {
                None => conn::serve(stream, peer, shared, serial).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        shared.settings.registration_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(stream)) => conn::serve(stream, peer, shared, serial).await,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, cause = %err, "IRC TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "IRC TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Binds an IRC listener on `addr`, with TLS when `tls` is given.
pub async fn bind(
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<IrcListener> {
    Ok(IrcListener {
        listener: TcpListener::bind(addr).await?,
        tls,
    })
}

/// Returns the address an IRC listener is bound to.
pub fn local_addr(listener: &IrcListener) -> std::io::Result<SocketAddr> {
    listener.listener.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::UserId;

    #[test]
    fn nick_table_gives_a_nick_to_one_owner() {
        let table = NickTable::default();
        assert!(table.claim("Bob", NickOwner::Connection(1)));
        assert!(!table.claim("bob", NickOwner::Connection(2)));
        table.release("BOB", NickOwner::Connection(1));
        assert!(table.claim("bob", NickOwner::Connection(2)));
    }

    #[test]
    fn nick_table_counts_one_users_connections() {
        let table = NickTable::default();
        let owner = NickOwner::User(UserId(7));
        assert!(table.claim("alice", owner));
        assert!(table.claim("alice", owner));
        table.release("alice", owner);
        assert!(!table.claim("alice", NickOwner::Connection(3)));
        table.release("alice", owner);
        assert!(table.claim("alice", NickOwner::Connection(3)));
    }

    #[test]
    fn nick_table_transfers_a_pending_nick() {
        let table = NickTable::default();
        let pending = NickOwner::Connection(1);
        let user = NickOwner::User(UserId(7));
        assert!(table.claim("bob", pending));
        assert!(table.transfer("bob", pending, user));
        assert!(!table.claim("bob", NickOwner::Connection(2)));
        table.release("bob", user);
        assert!(table.claim("bob", NickOwner::Connection(2)));
        assert!(
            !table.transfer("bob", pending, user),
            "held by a third owner"
        );
    }
}
