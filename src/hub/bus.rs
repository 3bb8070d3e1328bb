//! Fan-out between nodes over Redis pub/sub, for several nodes sharing one PostgreSQL
//! database. One node alone needs none of this: the hub then delivers in process.
//!
//! Each node keeps two Redis connections, whatever its number of clients:
//! - a subscriber connection, subscribed to `{prefix}:nodes` (user-targeted operations)
//!   and to `{prefix}:room:{id}` for every room that has a subscriber on this node;
//! - a publishing connection, a `redis` connection manager that reconnects by itself.
//!
//! Pub/sub may drop events (a slow subscriber, a Redis restart, a publish while Redis is
//! down), so `message:new` events pass through a sequencer. It tracks the last `seq`
//! delivered on this node per room, drops repeats, and fills gaps from the store before
//! delivering. A sweep every [`SWEEP_INTERVAL`] compares each tracked room with the
//! store's `last_seq`, so a message whose event never arrives is still delivered, from
//! the store. That is also how nodes catch up while Redis is down and after it returns.
//!
//! Only `message:new` is sequenced. Edits, deletions and room updates that pub/sub drops
//! reach clients through `sync` by revision when they reconnect.

use super::{Hub, Outbound};
use crate::core::event::{
    AwayChange, Event, MessageDeleted, Presence, RoomRemoved, TagMessage, Typing, UserUpdated,
};
use crate::core::i18n::Notice;
use crate::core::ids::{RoomId, Seq, SessionId, UserId};
use crate::core::model::{Message, Room};
use crate::store::{Page, Store};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often each tracked room is compared with the store's `last_seq`.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before reconnecting the subscriber connection after it failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Maximum wait for a Redis reply before a publish counts as failed.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often each node writes the users connected to it into Redis and reads back each
/// room's online count.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// How long a node's presence entries live in Redis without a refresh, so a dead node's
/// users count as offline within this time plus one refresh.
pub const PRESENCE_TTL: Duration = Duration::from_secs(15);
/// Messages read from the store per query while filling a gap.
const FILL_PAGE: i64 = 100;
/// Events queued for publishing; when Redis is slower than this, events are dropped and
/// the other nodes' sweeps deliver the messages from the store.
const PUBLISH_QUEUE: usize = 10_000;

/// GCRA token bucket. KEYS[1] holds the theoretical arrival time in milliseconds;
/// ARGV[1] is the refill period in milliseconds, ARGV[2] the burst. Returns "0" when a
/// token was taken, otherwise the wait in milliseconds. The result is a string because
/// Redis truncates Lua numbers to integers.
const GCRA_SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + period
local wait = next_tat - now - period * burst
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1)
return '0'
"#;

/// Options of the Redis bus.
#[derive(Clone, Debug)]
pub struct BusSettings {
    /// A `redis://` URL.
    pub url: String,
    /// Prefix of every channel and key, so several deployments can share one Redis.
    pub prefix: String,
}

/// A message from one node to the others. It is externally tagged (`{"room": {...}}`)
/// because serde buffers internally tagged enums, and a buffered value cannot be read
/// back as a `RawValue`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Envelope {
    /// An event for a room's subscribers.
    Room {
        node: String,
        room: RoomId,
        name: String,
        payload: Box<RawValue>,
    },
    /// An event for every connection on every node.
    Broadcast {
        node: String,
        name: String,
        payload: Box<RawValue>,
    },
    /// An event for every connection of one user.
    User {
        node: String,
        user: UserId,
        name: String,
        payload: Box<RawValue>,
    },
    SubscribeUser {
        node: String,
        user: UserId,
        room: RoomId,
    },
    UnsubscribeUser {
        node: String,
        user: UserId,
        room: RoomId,
    },
    /// Logout or a password change ended these sessions.
    CloseSessions {
        node: String,
        sessions: Vec<SessionId>,
    },
}

impl Envelope {
    fn node(&self) -> &str {
        match self {
            Envelope::Room { node, .. }
            | Envelope::Broadcast { node, .. }
            | Envelope::User { node, .. }
            | Envelope::SubscribeUser { node, .. }
            | Envelope::UnsubscribeUser { node, .. }
            | Envelope::CloseSessions { node, .. } => node,
        }
    }
}

/// `room:removed` as sent between nodes. The event type stores its reason as a static
/// string, so the reason is mapped back on arrival.
#[derive(Deserialize)]
struct RoomRemovedWire {
    room_id: RoomId,
    reason: String,
}

/// Rebuilds an event from its wire name and JSON payload. Returns `None` for a name this
/// node does not know, as during a rolling upgrade.
fn decode_event(name: &str, payload: &RawValue) -> Option<Event> {
    let json = payload.get();
    let event = match name {
        "message:new" => Event::MessageNew(serde_json::from_str::<Message>(json).ok()?),
        "message:edited" => Event::MessageEdited(serde_json::from_str::<Message>(json).ok()?),
        "message:deleted" => {
            Event::MessageDeleted(serde_json::from_str::<MessageDeleted>(json).ok()?)
        }
        "room:updated" => Event::RoomUpdated(serde_json::from_str::<Room>(json).ok()?),
        "room:created" => Event::RoomCreated(serde_json::from_str::<Room>(json).ok()?),
        "room:added" => Event::RoomAdded(serde_json::from_str::<Room>(json).ok()?),
        "room:removed" => {
            let wire: RoomRemovedWire = serde_json::from_str(json).ok()?;
            let reason = match wire.reason.as_str() {
                "kicked" => "kicked",
                "banned" => "banned",
                _ => "left",
            };
            Event::RoomRemoved(RoomRemoved {
                room_id: wire.room_id,
                reason,
            })
        }
        "typing" => Event::Typing(serde_json::from_str::<Typing>(json).ok()?),
        "presence" => Event::Presence(serde_json::from_str::<Presence>(json).ok()?),
        "tag:message" => Event::TagMessage(serde_json::from_str::<TagMessage>(json).ok()?),
        "away" => Event::Away(serde_json::from_str::<AwayChange>(json).ok()?),
        "user:updated" => Event::UserUpdated(serde_json::from_str::<UserUpdated>(json).ok()?),
        _ => return None,
    };
    Some(event)
}

/// Work for the sequencer task, which owns every room cursor.
enum Input {
    /// An event for a room, published on this node or received from another.
    Deliver(RoomId, Arc<Outbound>),
    /// A room got its first subscriber on this node.
    Track(RoomId),
    /// A room's last subscriber on this node left.
    Untrack(RoomId),
    /// Compare every tracked room with the store now.
    Sweep,
}

/// Subscription changes for the subscriber task.
enum Control {
    Subscribe(RoomId),
    Unsubscribe(RoomId),
}

/// This node's side of the Redis bus. Cloning the handle is cheap; the tasks stop when
/// the last handle is dropped.
pub struct Bus {
    node: String,
    prefix: String,
    sequencer: mpsc::UnboundedSender<Input>,
    control: mpsc::UnboundedSender<Control>,
    publish: mpsc::Sender<(String, String)>,
    connected: Arc<AtomicBool>,
    /// Presence changes on this node, which the presence task writes into Redis before
    /// announcing them with the cluster-wide count.
    presence: mpsc::UnboundedSender<Presence>,
    /// Online users per room across every node, as last read from Redis.
    online: Arc<std::sync::Mutex<HashMap<RoomId, usize>>>,
    /// Client for the shared rate limits, and its connection once opened.
    client: redis::Client,
    limits: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

impl Bus {
    /// Starts the subscriber, publisher and sequencer tasks. Redis need not be up: the
    /// tasks connect when it is, and the node serves its own clients meanwhile.
    pub fn start(
        settings: &BusSettings,
        hub: &Arc<Hub>,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(settings.url.as_str()).map_err(|err| {
            anyhow::anyhow!(
                "invalid Redis URL {}: {err}",
                crate::store::postgres::redact(&settings.url)
            )
        })?;
        let node = format!("{:016x}", rand::random::<u64>());
        let (sequencer, sequencer_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (presence, presence_rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let online = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let bus = Arc::new(Self {
            node: node.clone(),
            prefix: settings.prefix.clone(),
            sequencer: sequencer.clone(),
            control,
            publish,
            connected: connected.clone(),
            presence,
            online: online.clone(),
            client: client.clone(),
            limits: tokio::sync::Mutex::new(None),
        });

        tokio::spawn(run_sequencer(Arc::downgrade(hub), store, sequencer_rx));
        tokio::spawn(run_sweep_timer(sequencer.downgrade()));
        tokio::spawn(run_publisher(client.clone(), publish_rx));
        tokio::spawn(run_presence(Presences {
            client: client.clone(),
            node: node.clone(),
            prefix: settings.prefix.clone(),
            hub: Arc::downgrade(hub),
            online,
            changes: presence_rx,
        }));
        tokio::spawn(run_subscriber(Subscriber {
            client,
            node,
            prefix: settings.prefix.clone(),
            hub: Arc::downgrade(hub),
            sequencer,
            control: control_rx,
            connected,
        }));
        tracing::info!(node = %bus.node, prefix = %bus.prefix, "Redis bus started");
        Ok(bus)
    }

    /// Returns how many distinct users are online in `room` on all nodes, as of the last
    /// presence refresh, or `None` before the first one.
    pub fn online_count(&self, room: RoomId) -> Option<usize> {
        let online = self.online.lock().unwrap_or_else(|e| e.into_inner());
        online.get(&room).copied()
    }

    /// Queues a presence change on this node. The presence task records it in Redis and
    /// then publishes it with the room's online count across every node.
    pub(super) fn announce_presence(&self, change: Presence) {
        if let Err(mpsc::error::SendError(change)) = self.presence.send(change) {
            tracing::debug!(
                room = change.room_id.0,
                "presence task stopped, change not announced"
            );
        }
    }

    /// Takes one token from the bucket `{prefix}:limit:{name}:{key}` shared by every node:
    /// `burst` at once, refilled at `per_second`. Returns the wait before a token is free,
    /// or `None` when one was taken. The bucket follows GCRA, keyed by Redis's clock, so
    /// the nodes' clocks do not matter.
    pub async fn take_token(
        &self,
        name: &str,
        key: &str,
        burst: u32,
        per_second: f64,
    ) -> redis::RedisResult<Option<Duration>> {
        let mut conn = {
            let mut slot = self.limits.lock().await;
            match slot.as_ref() {
                Some(conn) => conn.clone(),
                None => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
                        .set_connection_timeout(Some(REDIS_RESPONSE_TIMEOUT));
                    let conn = self
                        .client
                        .get_connection_manager_with_config(config)
                        .await?;
                    *slot = Some(conn.clone());
                    conn
                }
            }
        };
        let period_ms = 1000.0 / per_second.clamp(0.001, 1_000_000_000.0);
        let wait_ms: f64 = redis::Script::new(GCRA_SCRIPT)
            .key(format!("{}:limit:{name}:{key}", self.prefix))
            .arg(period_ms)
            .arg(burst.max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok((wait_ms > 0.0).then(|| Duration::from_millis(wait_ms.ceil() as u64 + 1)))
    }

    /// Reports whether the subscriber connection to Redis is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn room_channel(&self, room: RoomId) -> String {
        format!("{}:room:{}", self.prefix, room.0)
    }

    fn nodes_channel(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    fn send(&self, channel: String, envelope: &Envelope) {
        let Ok(text) = serde_json::to_string(envelope) else {
            return;
        };
        if self.publish.try_send((channel, text)).is_err() {
            tracing::debug!("Redis publish queue full or closed, event left to the sweep");
        }
    }

    /// Sends a room event to this node's sequencer and to the other nodes.
    pub(super) fn publish_room(&self, room: RoomId, event: Arc<Outbound>) {
        let envelope = Envelope::Room {
            node: self.node.clone(),
            room,
            name: event.event.name().to_owned(),
            payload: event.json().to_owned(),
        };
        self.send(self.room_channel(room), &envelope);
        let _ = self.sequencer.send(Input::Deliver(room, event));
    }

    pub(super) fn broadcast(&self, event: &Outbound) {
        let envelope = Envelope::Broadcast {
            node: self.node.clone(),
            name: event.event.name().to_owned(),
            payload: event.json().to_owned(),
        };
        self.send(self.nodes_channel(), &envelope);
    }

    pub(super) fn send_to_user(&self, user: UserId, event: &Outbound) {
        let envelope = Envelope::User {
            node: self.node.clone(),
            user,
            name: event.event.name().to_owned(),
            payload: event.json().to_owned(),
        };
        self.send(self.nodes_channel(), &envelope);
    }

    pub(super) fn subscribe_user(&self, user: UserId, room: RoomId) {
        let envelope = Envelope::SubscribeUser {
            node: self.node.clone(),
            user,
            room,
        };
        self.send(self.nodes_channel(), &envelope);
    }

    pub(super) fn unsubscribe_user(&self, user: UserId, room: RoomId) {
        let envelope = Envelope::UnsubscribeUser {
            node: self.node.clone(),
            user,
            room,
        };
        self.send(self.nodes_channel(), &envelope);
    }

    pub(super) fn close_sessions(&self, sessions: &[SessionId]) {
        let envelope = Envelope::CloseSessions {
            node: self.node.clone(),
            sessions: sessions.to_vec(),
        };
        self.send(self.nodes_channel(), &envelope);
    }

    /// Starts or stops following a room, as its subscribers on this node come and go.
    pub(super) fn track(&self, room: RoomId, tracked: bool) {
        let (input, control) = if tracked {
            (Input::Track(room), Control::Subscribe(room))
        } else {
            (Input::Untrack(room), Control::Unsubscribe(room))
        };
        let _ = self.sequencer.send(input);
        let _ = self.control.send(control);
    }
}

/// Publishes queued envelopes in order over one connection manager.
async fn run_publisher(client: redis::Client, mut queue: mpsc::Receiver<(String, String)>) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(REDIS_RESPONSE_TIMEOUT))
        .set_max_delay(Duration::from_secs(2));
    let mut manager: Option<redis::aio::ConnectionManager> = None;
    let mut failures = 0u64;
    while let Some((channel, payload)) = queue.recv().await {
        if manager.is_none() {
            match client
                .get_connection_manager_with_config(config.clone())
                .await
            {
                Ok(created) => manager = Some(created),
                Err(err) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(cause = %err, failures, "Redis unreachable, events left to the sweep");
                    }
                    continue;
                }
            }
        }
        let Some(conn) = manager.as_mut() else {
            continue;
        };
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&payload)
            .query_async(conn)
            .await;
        match published {
            Ok(_) => failures = 0,
            Err(err) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(cause = %err, %channel, failures, "Redis publish failed, event left to the sweep");
                }
            }
        }
    }
}

/// Everything the subscriber task owns.
struct Subscriber {
    client: redis::Client,
    node: String,
    prefix: String,
    hub: Weak<Hub>,
    sequencer: mpsc::UnboundedSender<Input>,
    control: mpsc::UnboundedReceiver<Control>,
    connected: Arc<AtomicBool>,
}

/// Keeps one subscriber connection open, resubscribing after every reconnect.
async fn run_subscriber(mut sub: Subscriber) {
    let mut rooms: HashSet<RoomId> = HashSet::new();
    let nodes_channel = format!("{}:nodes", sub.prefix);
    let room_channel = |room: RoomId| format!("{}:room:{}", sub.prefix, room.0);
    let mut attempts = 0u64;
    loop {
        // Apply subscription changes that arrived while disconnected.
        while let Ok(change) = sub.control.try_recv() {
            match change {
                Control::Subscribe(room) => rooms.insert(room),
                Control::Unsubscribe(room) => rooms.remove(&room),
            };
        }

        // Connect and subscribe to the node channel and every tracked room.
        let connected = async {
            let pubsub = sub.client.get_async_pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            sink.subscribe(&nodes_channel).await?;
            let channels: Vec<String> = rooms.iter().map(|r| room_channel(*r)).collect();
            if !channels.is_empty() {
                sink.subscribe(&channels).await?;
            }
            redis::RedisResult::Ok((sink, stream))
        }
        .await;
        let (mut sink, mut stream) = match connected {
            Ok(pair) => pair,
            Err(err) => {
                attempts += 1;
                if attempts == 1 || attempts.is_power_of_two() {
                    tracing::warn!(cause = %err, attempts, "Redis subscriber connection failed, retrying");
                }
                if sub.control.is_closed() {
                    return;
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        attempts = 0;
        sub.connected.store(true, Ordering::Relaxed);
        tracing::info!(rooms = rooms.len(), "Redis subscriber connected");
        // Events published while this node was not subscribed are in the store.
        let _ = sub.sequencer.send(Input::Sweep);

        // Relay until the connection drops.
        loop {
            tokio::select! {
                change = sub.control.recv() => {
                    let result = match change {
                        Some(Control::Subscribe(room)) => {
                            rooms.insert(room);
                            sink.subscribe(room_channel(room)).await
                        }
                        Some(Control::Unsubscribe(room)) => {
                            rooms.remove(&room);
                            sink.unsubscribe(room_channel(room)).await
                        }
                        None => return,
                    };
                    if let Err(err) = result {
                        tracing::warn!(cause = %err, "Redis subscription change failed");
                        break;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Some(hub) = sub.hub.upgrade() else { return };
                    relay(&hub, &sub.node, &sub.sequencer, message.get_payload_bytes());
                }
            }
        }
        sub.connected.store(false, Ordering::Relaxed);
        tracing::warn!("Redis subscriber connection lost, reconnecting");
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// Applies one envelope from another node.
fn relay(hub: &Hub, node: &str, sequencer: &mpsc::UnboundedSender<Input>, bytes: &[u8]) {
    let envelope: Envelope = match serde_json::from_slice(bytes) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(cause = %err, "invalid message on the Redis bus ignored");
            return;
        }
    };
    if envelope.node() == node {
        return;
    }
    match envelope {
        Envelope::Room {
            room,
            name,
            payload,
            ..
        } => {
            if let Some(event) = decode_event(&name, &payload) {
                let _ = sequencer.send(Input::Deliver(room, Outbound::new(event, Instant::now())));
            }
        }
        Envelope::Broadcast { name, payload, .. } => {
            if let Some(event) = decode_event(&name, &payload) {
                hub.broadcast_local(Outbound::new(event, Instant::now()));
            }
        }
        Envelope::User {
            user,
            name,
            payload,
            ..
        } => {
            if let Some(event) = decode_event(&name, &payload) {
                hub.send_to_user_local(user, Outbound::new(event, Instant::now()));
            }
        }
        Envelope::SubscribeUser { user, room, .. } => hub.subscribe_user_local(user, room),
        Envelope::UnsubscribeUser { user, room, .. } => hub.unsubscribe_user_local(user, room),
        Envelope::CloseSessions { sessions, .. } => {
            hub.close_sessions_local(&sessions, Notice::SessionEnded)
        }
    }
}

/// Asks the sequencer for a sweep every [`SWEEP_INTERVAL`] until the bus is dropped.
async fn run_sweep_timer(sequencer: mpsc::WeakUnboundedSender<Input>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sender) = sequencer.upgrade() else {
            return;
        };
        if sender.send(Input::Sweep).is_err() {
            return;
        }
    }
}

/// Delivers room events to this node's subscribers, `message:new` in `seq` order with no
/// hole and no repeat per room.
async fn run_sequencer(
    hub: Weak<Hub>,
    store: Arc<dyn Store>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
) {
    // Last `seq` delivered per tracked room; `None` until known.
    let mut cursors: HashMap<RoomId, Option<Seq>> = HashMap::new();
    let mut failures = 0u64;
    while let Some(input) = inputs.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        match input {
            Input::Track(room) => {
                // Clients that subscribe now read what came before through `sync`.
                // NOTE: a message committed after a client's `sync` query but before
                // this read is neither in the sync reply nor delivered live. That needs
                // the sequencer to lag a client round trip behind, which the tests never
                // produced; the client sees it on its next `sync`.
                let last = match store.room_by_id(room).await {
                    Ok(found) => found.map(|r| r.last_seq),
                    Err(err) => {
                        tracing::warn!(cause = %err, room_id = %room, "reading a room's last seq failed");
                        None
                    }
                };
                cursors.insert(room, last);
            }
            Input::Untrack(room) => {
                cursors.remove(&room);
            }
            Input::Deliver(room, event) => {
                let Event::MessageNew(message) = &event.event else {
                    hub.publish_local(room, event);
                    continue;
                };
                let Some(cursor) = cursors.get_mut(&room) else {
                    // No subscriber here: nothing to deliver.
                    continue;
                };
                let seq = message.seq;
                match *cursor {
                    Some(last) if seq <= last => {}
                    Some(last) if seq.0 > last.0 + 1 => {
                        // A gap: the events in between were dropped or are still on
                        // their way. They are committed, because `seq` is taken under
                        // the room's row lock, so the store has them.
                        match fill(&hub, store.as_ref(), room, last, seq).await {
                            Ok(()) => {
                                hub.publish_local(room, event);
                                *cursor = Some(seq);
                            }
                            Err(err) => {
                                failures += 1;
                                tracing::warn!(cause = %err, room_id = %room, failures, "filling a gap from the store failed, retrying at the next sweep");
                                // The sweep delivers this message too, from the store.
                            }
                        }
                    }
                    _ => {
                        hub.publish_local(room, event);
                        *cursor = Some(seq);
                    }
                }
            }
            Input::Sweep => {
                for (room, cursor) in cursors.iter_mut() {
                    let stored = match store.room_by_id(*room).await {
                        Ok(Some(r)) => r.last_seq,
                        Ok(None) => continue,
                        Err(err) => {
                            failures += 1;
                            if failures == 1 || failures.is_power_of_two() {
                                tracing::warn!(cause = %err, room_id = %room, failures, "sweep could not read the store");
                            }
                            break;
                        }
                    };
                    let Some(last) = *cursor else {
                        *cursor = Some(stored);
                        continue;
                    };
                    if stored <= last {
                        continue;
                    }
                    let upto = Seq(stored.0 + 1);
                    match fill(&hub, store.as_ref(), *room, last, upto).await {
                        Ok(()) => *cursor = Some(stored),
                        Err(err) => {
                            failures += 1;
                            tracing::warn!(cause = %err, room_id = %room, failures, "sweep could not fill a gap");
                        }
                    }
                }
            }
        }
    }
}

/// Delivers the stored messages of `room` with `after < seq < before`, in order.
async fn fill(
    hub: &Hub,
    store: &dyn Store,
    room: RoomId,
    after: Seq,
    before: Seq,
) -> crate::core::error::ChatResult<()> {
    let mut cursor = after;
    // Read everything first, so a failure halfway delivers nothing twice later.
    let mut missing = Vec::new();
    while cursor.0 + 1 < before.0 {
        let (page, _) = store.history(room, Page::After(cursor), FILL_PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        missing.extend(page.into_iter().filter(|m| m.seq < before));
    }
    tracing::debug!(room_id = %room, count = missing.len(), "filled a gap from the store");
    for message in missing {
        hub.publish_local(
            room,
            Outbound::new(Event::MessageNew(message), Instant::now()),
        );
    }
    Ok(())
}

/// Everything the presence task owns.
struct Presences {
    client: redis::Client,
    node: String,
    prefix: String,
    hub: Weak<Hub>,
    online: Arc<std::sync::Mutex<HashMap<RoomId, usize>>>,
    changes: mpsc::UnboundedReceiver<Presence>,
}

/// Every [`PRESENCE_REFRESH`], writes this node's online users per room into a Redis
/// sorted set `{prefix}:online:{room}` (member `user:node`, score = expiry in Unix
/// milliseconds), drops expired members, and reads back the distinct users per room.
async fn run_presence(mut presences: Presences) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(REDIS_RESPONSE_TIMEOUT));
    let mut manager: Option<redis::aio::ConnectionManager> = None;
    let mut tick = tokio::time::interval(PRESENCE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u64;
    // Members written last time per room, so that departed users are removed at once
    // rather than when they expire.
    let mut written: HashMap<RoomId, HashSet<String>> = HashMap::new();
    loop {
        let change = tokio::select! {
            _ = tick.tick() => None,
            change = presences.changes.recv() => match change {
                Some(change) => Some(change),
                None => return,
            },
        };
        let Some(hub) = presences.hub.upgrade() else {
            return;
        };
        if let Some(change) = change {
            // Changes go through this task, after any refresh already under way, so a
            // refresh built from an older snapshot cannot undo them in Redis.
            if manager.is_none() {
                manager = presences
                    .client
                    .get_connection_manager_with_config(config.clone())
                    .await
                    .ok();
            }
            let counted = match manager.as_mut() {
                Some(conn) => record_presence(conn, &presences, &change)
                    .await
                    .map_err(|err| err.to_string()),
                None => Err("Redis not reachable".to_owned()),
            };
            let mut change = change;
            match counted {
                Ok(count) => {
                    presences
                        .online
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(change.room_id, count);
                    change.online_count = count;
                }
                Err(err) => {
                    // Redis is down: announce with the count as last read, adjusted
                    // by this node's own users.
                    tracing::debug!(cause = %err, room = change.room_id.0, "presence change not recorded in Redis");
                    change.online_count = hub.online_count(change.room_id);
                }
            }
            let room = change.room_id;
            hub.publish(room, Outbound::new(Event::Presence(change), Instant::now()));
            continue;
        }
        let local = hub.local_presence();
        drop(hub);
        if manager.is_none() {
            match presences
                .client
                .get_connection_manager_with_config(config.clone())
                .await
            {
                Ok(created) => manager = Some(created),
                Err(err) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(cause = %err, failures, "presence refresh could not reach Redis");
                    }
                    continue;
                }
            }
        }
        let Some(conn) = manager.as_mut() else {
            continue;
        };
        match refresh_presence(conn, &presences, &local, &written).await {
            Ok((counts, members)) => {
                failures = 0;
                written = members;
                let mut online = presences.online.lock().unwrap_or_else(|e| e.into_inner());
                *online = counts;
            }
            Err(err) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(cause = %err, failures, "presence refresh failed");
                }
            }
        }
    }
}

/// Writes one presence change of this node into the room's sorted set and returns the
/// room's distinct online users across every node.
async fn record_presence(
    conn: &mut redis::aio::ConnectionManager,
    presences: &Presences,
    change: &Presence,
) -> redis::RedisResult<usize> {
    let now = crate::core::time::now_millis();
    let key = format!("{}:online:{}", presences.prefix, change.room_id.0);
    let member = format!("{}:{}", change.user_id.0, presences.node);
    let mut pipe = redis::pipe();
    if change.online {
        let expires = now + PRESENCE_TTL.as_millis() as i64;
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(expires)
            .arg(&member)
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(PRESENCE_TTL.as_millis() as u64)
            .ignore();
    } else {
        pipe.cmd("ZREM").arg(&key).arg(&member).ignore();
    }
    pipe.cmd("ZRANGEBYSCORE").arg(&key).arg(now).arg("+inf");
    let (members,): (Vec<String>,) = pipe.query_async(conn).await?;
    Ok(distinct_users(&members))
}

/// Counts the distinct users among `user:node` members, because one user connected to
/// several nodes has one member per node.
fn distinct_users(members: &[String]) -> usize {
    members
        .iter()
        .filter_map(|member| member.split_once(':').map(|(user, _)| user))
        .collect::<HashSet<&str>>()
        .len()
}

/// Runs one presence refresh in a single pipeline and returns the online count of
/// every room this node has subscribers in.
async fn refresh_presence(
    conn: &mut redis::aio::ConnectionManager,
    presences: &Presences,
    local: &HashMap<RoomId, Vec<UserId>>,
    written: &HashMap<RoomId, HashSet<String>>,
) -> redis::RedisResult<(HashMap<RoomId, usize>, HashMap<RoomId, HashSet<String>>)> {
    let now = crate::core::time::now_millis();
    let expires = now + PRESENCE_TTL.as_millis() as i64;
    let key = |room: RoomId| format!("{}:online:{}", presences.prefix, room.0);
    let member = |user: &UserId| format!("{}:{}", user.0, presences.node);
    let mine: HashMap<RoomId, HashSet<String>> = local
        .iter()
        .map(|(room, users)| (*room, users.iter().map(member).collect()))
        .collect();
    let mut pipe = redis::pipe();
    // Remove this node's members who left since the last refresh.
    for (room, before) in written {
        let now_here = mine.get(room);
        for gone in before
            .iter()
            .filter(|m| now_here.is_none_or(|set| !set.contains(*m)))
        {
            pipe.cmd("ZREM").arg(key(*room)).arg(gone).ignore();
        }
    }
    // Redis rejects an empty pipeline, which is what a node without subscribers builds.
    if mine.is_empty() && written.values().all(HashSet::is_empty) {
        return Ok((HashMap::new(), mine));
    }
    let rooms: Vec<RoomId> = mine.keys().copied().collect();
    for room in &rooms {
        let key = key(*room);
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now)
            .ignore();
        for member in &mine[room] {
            pipe.cmd("ZADD").arg(&key).arg(expires).arg(member).ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(PRESENCE_TTL.as_millis() as u64)
            .ignore();
        pipe.cmd("ZRANGE").arg(&key).arg(0).arg(-1);
    }
    let members: Vec<Vec<String>> = pipe.query_async(conn).await?;
    let mut counts = HashMap::new();
    for (room, members) in rooms.iter().zip(members) {
        counts.insert(*room, distinct_users(&members));
    }
    Ok((counts, mine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_envelope_round_trips() {
        let sent = Envelope::Room {
            node: "a".to_owned(),
            room: RoomId(7),
            name: "presence".to_owned(),
            payload: RawValue::from_string(r#"{"online_count":3}"#.to_owned()).unwrap(),
        };
        let text = serde_json::to_string(&sent).unwrap();
        let read: Envelope = serde_json::from_str(&text).unwrap();
        let Envelope::Room {
            room,
            name,
            payload,
            ..
        } = read
        else {
            panic!("expected a room envelope from {text}");
        };
        assert_eq!(room, RoomId(7));
        assert_eq!(name, "presence");
        assert_eq!(payload.get(), r#"{"online_count":3}"#);
    }

    #[test]
    fn banned_removal_keeps_its_reason() {
        let payload =
            RawValue::from_string(r#"{"room_id":4,"reason":"banned"}"#.to_owned()).unwrap();
        let Some(Event::RoomRemoved(removed)) = decode_event("room:removed", &payload) else {
            panic!("room:removed did not decode");
        };
        assert_eq!(removed.reason, "banned");
    }

    #[test]
    fn user_update_round_trips() {
        let sent = Outbound::new(
            Event::UserUpdated(UserUpdated {
                room_id: RoomId(4),
                user: crate::core::model::User {
                    id: UserId(7),
                    username: Some("bob".to_owned()),
                    display_name: "Bobby".to_owned(),
                    kind: crate::core::model::AccountKind::Registered,
                    avatar_url: "/api/v1/users/7/avatar?v=1".to_owned(),
                    created_at: 0,
                },
                previous_display_name: "bob".to_owned(),
                change_id: 9,
            }),
            std::time::Instant::now(),
        );
        let Some(Event::UserUpdated(update)) = decode_event("user:updated", sent.json()) else {
            panic!("user:updated did not decode");
        };
        assert_eq!(update.room_id, RoomId(4));
        assert_eq!(update.user.display_name, "Bobby");
        assert_eq!(update.previous_display_name, "bob");
        assert_eq!(update.change_id, 9);
    }

    #[test]
    fn room_update_without_settings_gets_defaults() {
        // A node from before room settings sends a Room without them.
        let payload = RawValue::from_string(
            r#"{"id":4,"name":"a","topic":"","visibility":"public","owner_id":null,
                "last_seq":1,"last_rev":1,"created_at":0,"member_count":1}"#
                .to_owned(),
        )
        .unwrap();
        let Some(Event::RoomUpdated(room)) = decode_event("room:updated", &payload) else {
            panic!("room:updated did not decode");
        };
        assert!(!room.moderated);
        assert!(room.topic_locked);
    }
}
