//! The real-time core of one node: which connection listens to which room, fan-out of
//! events into each connection's bounded outbound queue, and presence.
//!
//! Locking: one `std::sync::RwLock` guards the subscription tables. It is never held
//! across an `.await` or while calling into a [`Sink`]; fan-out copies the recipients'
//! sinks out under the read lock and queues to them after releasing it.
//!
//! Slow-client policy: a sink whose queue is full when an essential event arrives is
//! closed with [`Notice::SlowConsumer`] and unregistered. Dropping an event silently would
//! leave that client with a hole it cannot see; closing makes it reconnect and resync by
//! `seq`. Typing hints are not essential and are simply dropped for a full queue.
//!
//! Several nodes: with a [`bus::Bus`] attached, room events, user-targeted events and
//! session closes also go to the other nodes. Room events then reach this node's clients
//! through the bus's sequencer, which keeps `message:new` in `seq` order without holes.

pub mod bus;

use crate::core::event::{Event, Presence};
use crate::core::i18n::Notice;
use crate::core::ids::{RoomId, SessionId, UserId};
use crate::telemetry::Metrics;
use bus::Bus;
use serde_json::value::RawValue;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// Identifies one live connection on this node.
pub type ConnId = u64;

/// An event on its way out, shared by every recipient of one fan-out. The JSON payload
/// and each gateway's encoding are made on first use and reused for every recipient,
/// so per recipient only the framing and the recipient's own parts (IRC tags, for
/// example) remain.
pub struct Outbound {
    pub event: Event,
    /// When the triggering request reached the service, for the latency histogram.
    pub started: Instant,
    json: OnceLock<Box<RawValue>>,
    /// Gateway encodings of the event, one slot per [`Encoding`].
    encoded: [OnceLock<Box<dyn Any + Send + Sync>>; Encoding::COUNT],
}

/// A gateway's encoding of an event, cached once per fan-out in its own slot.
///
/// An encoding must be the same for every recipient: anything that depends on the
/// connection (its language, capabilities or nickname) is added per recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The IRC lines of a text message in a channel, without tags.
    IrcChannelText,
    /// A message body as a JSON string, the payload of the plain Socket.IO `message`
    /// event.
    SocketIoPlainText,
}

impl Encoding {
    const COUNT: usize = 2;
}

impl Outbound {
    /// Wraps an event whose triggering request arrived at `started`.
    pub fn new(event: Event, started: Instant) -> Arc<Self> {
        Arc::new(Self {
            event,
            started,
            json: OnceLock::new(),
            encoded: [const { OnceLock::new() }; Encoding::COUNT],
        })
    }

    /// Returns the event's JSON payload, encoding it on the first call.
    pub fn json(&self) -> &RawValue {
        self.json.get_or_init(|| {
            serde_json::value::to_raw_value(&self.event)
                .expect("event types serialise without failure")
        })
    }

    /// Returns the event's encoding in `slot`, made by `encode` on the first call for
    /// that slot. Each slot stores one type, so a call that requests another type than
    /// the first call stored gets `None`.
    pub fn encoded<T: Any + Send + Sync>(
        &self,
        slot: Encoding,
        encode: impl FnOnce(&Event) -> T,
    ) -> Option<&T> {
        self.encoded[slot as usize]
            .get_or_init(|| Box::new(encode(&self.event)))
            .downcast_ref()
    }
}

/// Reason a sink did not take an event.
#[derive(Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The connection's outbound queue is full.
    Full,
    /// The connection is already closed.
    Closed,
}

/// A connection's outbound side, implemented by each gateway. Calls must not block.
pub trait Sink: Send + Sync {
    /// Queues an event for the client.
    fn send(&self, event: &Arc<Outbound>) -> Result<(), SinkError>;
    /// Tells the client why, if its queue has room, and closes the connection. The
    /// gateway calls [`Hub::disconnect`] when the connection is gone.
    fn close(&self, notice: Notice);
}

struct Conn {
    user_id: UserId,
    /// Login session the connection authenticated with; guests have one too.
    session_id: SessionId,
    sink: Arc<dyn Sink>,
    rooms: HashSet<RoomId>,
}

#[derive(Default)]
struct RoomSubs {
    conns: HashSet<ConnId>,
    /// Live connections per user in this room; a user is online here while present.
    users: HashMap<UserId, usize>,
}

#[derive(Default)]
struct Tables {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, RoomSubs>,
    /// Live connections per user on this node.
    users: HashMap<UserId, HashSet<ConnId>>,
}

/// The node's subscription tables and fan-out.
pub struct Hub {
    tables: RwLock<Tables>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    /// The Redis bus when this node is one of several; set once at startup.
    bus: OnceLock<Arc<Bus>>,
}

impl Hub {
    /// Creates an empty hub. Presence lives only here, so a restarted node starts with
    /// no user online.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            tables: RwLock::new(Tables::default()),
            next_id: AtomicU64::new(1),
            metrics,
            bus: OnceLock::new(),
        }
    }

    /// Connects this hub to the other nodes. Call once, before clients connect.
    pub fn attach_bus(&self, bus: Arc<Bus>) {
        if self.bus.set(bus).is_err() {
            tracing::warn!("a bus was already attached; the second one is ignored");
        }
    }

    /// Returns the Redis bus, when this node is one of several.
    pub fn bus(&self) -> Option<&Arc<Bus>> {
        self.bus.get()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection and returns its id. It receives nothing until subscribed.
    pub fn connect(&self, user_id: UserId, session_id: SessionId, sink: Arc<dyn Sink>) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut t = self.write();
        t.conns.insert(
            id,
            Conn {
                user_id,
                session_id,
                sink,
                rooms: HashSet::new(),
            },
        );
        t.users.entry(user_id).or_default().insert(id);
        self.metrics.online_users.set(t.users.len() as i64);
        id
    }

    /// Unregisters a connection and announces the rooms where its user went offline.
    pub fn disconnect(&self, conn: ConnId) {
        self.disconnect_with_reason(conn, None);
    }

    /// Unregisters a connection like `disconnect`, with `reason` in the offline
    /// announcements, where IRC clients show it as the QUIT reason.
    pub fn disconnect_with_reason(&self, conn: ConnId, reason: Option<String>) {
        let changes = {
            let mut t = self.write();
            let Some(c) = t.conns.remove(&conn) else {
                return;
            };
            if let Some(set) = t.users.get_mut(&c.user_id) {
                set.remove(&conn);
                if set.is_empty() {
                    t.users.remove(&c.user_id);
                }
            }
            self.metrics.online_users.set(t.users.len() as i64);
            let disconnected = !t.users.contains_key(&c.user_id);
            let mut changes = Vec::new();
            for room in c.rooms {
                if let Some(mut p) = self.remove_sub(&mut t, room, conn, c.user_id) {
                    p.reason.clone_from(&reason);
                    p.disconnected = disconnected;
                    changes.push(p);
                }
            }
            changes
        };
        self.announce(changes);
    }

    /// Adds a connection to a room's subscribers.
    pub fn subscribe(&self, conn: ConnId, room: RoomId) {
        let change = {
            let mut t = self.write();
            let Some(c) = t.conns.get_mut(&conn) else {
                return;
            };
            if !c.rooms.insert(room) {
                return;
            }
            let user = c.user_id;
            self.add_sub(&mut t, room, conn, user)
        };
        self.announce(change.into_iter().collect());
    }

    /// Removes one connection from a room's subscribers.
    pub fn unsubscribe(&self, conn: ConnId, room: RoomId) {
        let change = {
            let mut t = self.write();
            let Some(c) = t.conns.get_mut(&conn) else {
                return;
            };
            if !c.rooms.remove(&room) {
                return;
            }
            let user = c.user_id;
            self.remove_sub(&mut t, room, conn, user)
        };
        self.announce(change.into_iter().collect());
    }

    /// Subscribes every live connection of `user`, on every node, to `room`, after the
    /// user joined it.
    pub fn subscribe_user(&self, user: UserId, room: RoomId) {
        if let Some(bus) = self.bus.get() {
            bus.subscribe_user(user, room);
        }
        self.subscribe_user_local(user, room);
    }

    /// Subscribes the live connections of `user` on this node to `room`.
    pub(crate) fn subscribe_user_local(&self, user: UserId, room: RoomId) {
        let change = {
            let mut t = self.write();
            let conns: Vec<ConnId> = t.users.get(&user).into_iter().flatten().copied().collect();
            let mut change = None;
            for conn in conns {
                let added = t.conns.get_mut(&conn).is_some_and(|c| c.rooms.insert(room));
                if added {
                    change = self.add_sub(&mut t, room, conn, user).or(change);
                }
            }
            change
        };
        self.announce(change.into_iter().collect());
    }

    /// Unsubscribes every live connection of `user`, on every node, from `room`, after
    /// the user left it.
    pub fn unsubscribe_user(&self, user: UserId, room: RoomId) {
        if let Some(bus) = self.bus.get() {
            bus.unsubscribe_user(user, room);
        }
        self.unsubscribe_user_local(user, room);
    }

    /// Unsubscribes the live connections of `user` on this node from `room`.
    pub(crate) fn unsubscribe_user_local(&self, user: UserId, room: RoomId) {
        let change = {
            let mut t = self.write();
            let conns: Vec<ConnId> = t.users.get(&user).into_iter().flatten().copied().collect();
            let mut change = None;
            for conn in conns {
                let removed = t
                    .conns
                    .get_mut(&conn)
                    .is_some_and(|c| c.rooms.remove(&room));
                if removed {
                    change = self.remove_sub(&mut t, room, conn, user).or(change);
                }
            }
            change
        };
        self.announce(change.into_iter().collect());
    }

    fn add_sub(
        &self,
        t: &mut Tables,
        room: RoomId,
        conn: ConnId,
        user: UserId,
    ) -> Option<Presence> {
        if !t.rooms.contains_key(&room)
            && let Some(bus) = self.bus.get()
        {
            bus.track(room, true);
        }
        let subs = t.rooms.entry(room).or_default();
        subs.conns.insert(conn);
        let count = subs.users.entry(user).or_insert(0);
        *count += 1;
        (*count == 1).then_some(Presence {
            room_id: room,
            user_id: user,
            online: true,
            online_count: subs.users.len(),
            reason: None,
            disconnected: false,
        })
    }

    fn remove_sub(
        &self,
        t: &mut Tables,
        room: RoomId,
        conn: ConnId,
        user: UserId,
    ) -> Option<Presence> {
        let subs = t.rooms.get_mut(&room)?;
        subs.conns.remove(&conn);
        let mut went_offline = false;
        if let Some(count) = subs.users.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                subs.users.remove(&user);
                went_offline = true;
            }
        }
        let online_count = subs.users.len();
        if subs.conns.is_empty() {
            t.rooms.remove(&room);
            if let Some(bus) = self.bus.get() {
                bus.track(room, false);
            }
        }
        went_offline.then_some(Presence {
            room_id: room,
            user_id: user,
            online: false,
            online_count,
            reason: None,
            disconnected: false,
        })
    }

    fn announce(&self, changes: Vec<Presence>) {
        for p in changes {
            if let Some(bus) = self.bus.get() {
                bus.announce_presence(p);
                continue;
            }
            let room = p.room_id;
            self.publish(room, Outbound::new(Event::Presence(p), Instant::now()));
        }
    }

    /// Queues an event to every connection subscribed to `room`, on every node.
    pub fn publish(&self, room: RoomId, event: Arc<Outbound>) {
        match self.bus.get() {
            Some(bus) => bus.publish_room(room, event),
            None => self.publish_local(room, event),
        }
    }

    /// Queues an event to the connections on this node subscribed to `room`.
    pub(crate) fn publish_local(&self, room: RoomId, event: Arc<Outbound>) {
        let sinks: Vec<(ConnId, Arc<dyn Sink>)> = {
            let t = self.read();
            let Some(subs) = t.rooms.get(&room) else {
                return;
            };
            subs.conns
                .iter()
                .filter_map(|id| t.conns.get(id).map(|c| (*id, c.sink.clone())))
                .collect()
        };
        self.deliver(&sinks, &event);
    }

    /// Queues an event to every connection on every node.
    pub fn broadcast(&self, event: Arc<Outbound>) {
        if let Some(bus) = self.bus.get() {
            bus.broadcast(&event);
        }
        self.broadcast_local(event);
    }

    /// Queues an event to every connection on this node.
    pub(crate) fn broadcast_local(&self, event: Arc<Outbound>) {
        let sinks: Vec<(ConnId, Arc<dyn Sink>)> = {
            let t = self.read();
            t.conns
                .iter()
                .map(|(id, c)| (*id, c.sink.clone()))
                .collect()
        };
        self.deliver(&sinks, &event);
    }

    /// Queues an event to every connection of one user on every node, whatever rooms
    /// they follow.
    pub fn send_to_user(&self, user: UserId, event: Arc<Outbound>) {
        if let Some(bus) = self.bus.get() {
            bus.send_to_user(user, &event);
        }
        self.send_to_user_local(user, event);
    }

    /// Queues an event to the connections of one user on this node.
    pub(crate) fn send_to_user_local(&self, user: UserId, event: Arc<Outbound>) {
        let sinks = self.user_sinks(user);
        self.deliver(&sinks, &event);
    }

    fn user_sinks(&self, user: UserId) -> Vec<(ConnId, Arc<dyn Sink>)> {
        let t = self.read();
        t.users
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| t.conns.get(id).map(|c| (*id, c.sink.clone())))
            .collect()
    }

    fn deliver(&self, sinks: &[(ConnId, Arc<dyn Sink>)], event: &Arc<Outbound>) {
        let essential = event.event.is_essential();
        let mut delivered = 0u64;
        for (conn, sink) in sinks {
            match sink.send(event) {
                Ok(()) => delivered += 1,
                Err(SinkError::Full) => {
                    self.metrics.queue_drops.inc();
                    if essential {
                        tracing::warn!(
                            conn,
                            event = event.event.name(),
                            "outbound queue full, closing slow connection"
                        );
                        self.metrics.slow_disconnects.inc();
                        sink.close(Notice::SlowConsumer);
                        self.disconnect(*conn);
                    }
                }
                // The gateway missed removing a closed connection; do it here.
                Err(SinkError::Closed) => self.disconnect(*conn),
            }
        }
        if delivered > 0 {
            self.metrics.messages_delivered.inc_by(delivered);
            let seconds = event.started.elapsed().as_secs_f64();
            self.metrics.delivery_latency.observe(seconds);
        }
    }

    /// Closes every connection, on every node, that authenticated with one of `sessions`.
    pub fn close_sessions(&self, sessions: &[SessionId], notice: Notice) {
        if let Some(bus) = self.bus.get() {
            bus.close_sessions(sessions);
        }
        self.close_sessions_local(sessions, notice);
    }

    /// Closes the connections on this node that authenticated with one of `sessions`.
    pub(crate) fn close_sessions_local(&self, sessions: &[SessionId], notice: Notice) {
        let sinks: Vec<Arc<dyn Sink>> = {
            let t = self.read();
            t.conns
                .values()
                .filter(|c| sessions.contains(&c.session_id))
                .map(|c| c.sink.clone())
                .collect()
        };
        for sink in sinks {
            sink.close(notice);
        }
    }

    /// Returns how many members of `room` are online: on every node when a bus is
    /// attached (as of its last presence refresh), otherwise on this node.
    pub fn online_count(&self, room: RoomId) -> usize {
        let local = self.read().rooms.get(&room).map_or(0, |s| s.users.len());
        match self.bus.get().and_then(|bus| bus.online_count(room)) {
            // Users who connected here since the refresh are counted at least.
            Some(cluster) => cluster.max(local),
            None => local,
        }
    }

    /// Returns the users online in each room on this node, for the bus's presence
    /// refresh.
    pub(crate) fn local_presence(&self) -> HashMap<RoomId, Vec<UserId>> {
        self.read()
            .rooms
            .iter()
            .map(|(room, subs)| (*room, subs.users.keys().copied().collect()))
            .collect()
    }

    /// Reports whether a user has a live connection.
    pub fn is_online(&self, user: UserId) -> bool {
        self.read().users.contains_key(&user)
    }

    /// Returns how many distinct users are online on this node.
    pub fn online_users(&self) -> usize {
        self.read().users.len()
    }

    /// Returns how many connections are registered.
    pub fn connection_count(&self) -> usize {
        self.read().conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::Typing;
    use std::sync::Mutex;

    /// A sink that records what it was sent and can pretend to be full.
    struct TestSink {
        got: Mutex<Vec<&'static str>>,
        capacity: usize,
        closed: Mutex<Option<Notice>>,
    }

    impl TestSink {
        fn new(capacity: usize) -> Arc<Self> {
            Arc::new(Self {
                got: Mutex::new(Vec::new()),
                capacity,
                closed: Mutex::new(None),
            })
        }
        fn names(&self) -> Vec<&'static str> {
            self.got.lock().unwrap().clone()
        }
    }

    impl Sink for TestSink {
        fn send(&self, event: &Arc<Outbound>) -> Result<(), SinkError> {
            let mut got = self.got.lock().unwrap();
            if got.len() >= self.capacity {
                return Err(SinkError::Full);
            }
            got.push(event.event.name());
            Ok(())
        }
        fn close(&self, notice: Notice) {
            *self.closed.lock().unwrap() = Some(notice);
        }
    }

    fn typing(room: RoomId) -> Arc<Outbound> {
        Outbound::new(
            Event::Typing(Typing {
                room_id: room,
                user_id: UserId(9),
                display_name: "x".into(),
                from_tag_message: false,
            }),
            Instant::now(),
        )
    }

    #[test]
    fn encoding_made_once_per_slot() {
        let event = typing(RoomId(1));
        let calls = AtomicU64::new(0);
        let encode = |text: &'static str| {
            calls.fetch_add(1, Ordering::Relaxed);
            text.to_owned()
        };

        let irc = event.encoded(Encoding::IrcChannelText, |_| encode("irc"));
        assert_eq!(irc.map(String::as_str), Some("irc"));
        let again = event.encoded(Encoding::IrcChannelText, |_| encode("other"));
        assert_eq!(again.map(String::as_str), Some("irc"));
        let socketio = event.encoded(Encoding::SocketIoPlainText, |_| encode("sio"));
        assert_eq!(socketio.map(String::as_str), Some("sio"));
        assert_eq!(calls.load(Ordering::Relaxed), 2);

        // A slot keeps the type of its first value.
        assert!(event.encoded(Encoding::IrcChannelText, |_| 7u32).is_none());
    }

    fn removed(room: RoomId) -> Arc<Outbound> {
        Outbound::new(
            Event::RoomRemoved(crate::core::event::RoomRemoved {
                room_id: room,
                reason: "left",
            }),
            Instant::now(),
        )
    }

    #[test]
    fn presence_counts_users_not_connections() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let room = RoomId(1);
        let watcher = TestSink::new(100);
        let w = hub.connect(UserId(1), SessionId(1), watcher.clone());
        hub.subscribe(w, room);
        let a1 = hub.connect(UserId(2), SessionId(2), TestSink::new(100));
        let a2 = hub.connect(UserId(2), SessionId(3), TestSink::new(100));
        hub.subscribe(a1, room);
        hub.subscribe(a2, room);
        assert_eq!(hub.online_count(room), 2);
        assert_eq!(watcher.names(), vec!["presence", "presence"]);

        hub.disconnect(a1);
        assert_eq!(hub.online_count(room), 2, "user 2 still has a connection");
        hub.disconnect(a2);
        assert_eq!(hub.online_count(room), 1);
        assert_eq!(watcher.names().len(), 3, "offline announced once");
        assert!(!hub.is_online(UserId(2)));
    }

    #[test]
    fn full_queue_closes_connection_for_essential_events() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let room = RoomId(1);
        // Room for the subscriber's own presence event, and nothing more.
        let slow = TestSink::new(1);
        let conn = hub.connect(UserId(1), SessionId(1), slow.clone());
        hub.subscribe(conn, room);

        hub.publish(room, typing(room));
        assert_eq!(*slow.closed.lock().unwrap(), None, "typing is droppable");
        assert_eq!(hub.connection_count(), 1);

        hub.publish(room, removed(room));
        assert!(matches!(
            *slow.closed.lock().unwrap(),
            Some(Notice::SlowConsumer)
        ));
        assert_eq!(hub.connection_count(), 0);
    }

    #[test]
    fn unsubscribe_user_stops_delivery() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let room = RoomId(5);
        let sink = TestSink::new(100);
        let conn = hub.connect(UserId(1), SessionId(1), sink.clone());
        hub.subscribe_user(UserId(1), room);
        hub.publish(room, removed(room));
        hub.unsubscribe_user(UserId(1), room);
        hub.publish(room, removed(room));
        let names = sink.names();
        assert_eq!(names.iter().filter(|n| **n == "room:removed").count(), 1);
        hub.disconnect(conn);
    }

    #[test]
    fn unsubscribe_removes_one_connection() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let room = RoomId(3);
        let first = hub.connect(UserId(1), SessionId(1), TestSink::new(10));
        let second = hub.connect(UserId(1), SessionId(2), TestSink::new(10));
        hub.subscribe(first, room);
        hub.subscribe(second, room);
        hub.unsubscribe(first, room);
        assert_eq!(
            hub.online_count(room),
            1,
            "the other connection keeps the user here"
        );
        hub.unsubscribe(second, room);
        assert_eq!(hub.online_count(room), 0);
    }

    #[test]
    fn close_sessions_targets_only_that_session() {
        let hub = Hub::new(Arc::new(Metrics::new()));
        let a = TestSink::new(10);
        let b = TestSink::new(10);
        hub.connect(UserId(1), SessionId(10), a.clone());
        hub.connect(UserId(1), SessionId(11), b.clone());
        hub.close_sessions(&[SessionId(10)], Notice::SessionEnded);
        assert!(a.closed.lock().unwrap().is_some());
        assert!(b.closed.lock().unwrap().is_none());
    }
}
