//! Socket.IO v4 gateway at `/socket.io/`, over WebSocket and HTTP long-polling.
//!
//! A connection authenticates in its handshake (`auth.token`, or the session cookie);
//! without credentials it becomes a guest with a generated nickname, which is what the
//! simplest Socket.IO chat pages expect. Events and payloads are listed in
//! docs/protocol.md; [`events`] holds the dispatch table.

mod events;
mod sink;

use crate::core::error::{ChatError, ErrorCode};
use crate::core::i18n::{self, Lang, Notice};
use crate::core::model::User;
use crate::hub::ConnId;
use crate::service::{ChatService, ClientAddr, Session};
use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use sink::{LobbyText, SocketSink};
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SocketIo, SocketIoBuilder};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Most events held for a connection while it is being set up.
const HELD_BEFORE_SESSION_MAX: usize = 256;

/// Name of the cookie that carries the session token for browsers.
pub const SESSION_COOKIE: &str = "confab_session";

/// Path prefix that socketioxide serves.
pub const PATH: &str = "/socket.io";

/// Bytes the WebSocket reader allocates for a connection to begin with. A frame longer
/// than what is buffered makes the reader reserve that frame's length, so a small start
/// costs a large message no extra reads, and saves memory on every idle connection.
const WS_READ_BUFFER_BYTES: usize = 1024;

/// Socket.IO settings from the command line.
#[derive(Clone, Debug)]
pub struct SocketIoSettings {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Outbound packets queued per connection before it counts as a slow consumer.
    pub outbound_queue: usize,
    /// Largest inbound packet or polling body, in bytes.
    pub max_payload: u64,
}

/// Fields the handshake's `auth` object may contain.
#[derive(Debug, Default, Deserialize)]
struct Handshake {
    token: Option<String>,
    nickname: Option<String>,
    lang: Option<String>,
    /// Whether a handshake without a token or session cookie creates a guest account
    /// (the default). A client that is signed in by cookie sends `false`, so an expired
    /// cookie refuses the connection instead of silently signing in a new guest.
    create_guest: Option<bool>,
}

/// Per-connection state, stored in the socket's extensions.
pub(crate) struct Connection {
    pub session: Session,
    pub lang: Lang,
    /// Frame kinds this connection receives lobby text as.
    pub lobby_text: Arc<LobbyText>,
    /// Why the server is closing this connection, once it is; its events are refused
    /// from then on, even while the disconnect waits for room in a full queue.
    pub closing: Arc<OnceLock<Notice>>,
    /// Hub registration, set once the connection is accepted.
    pub conn: OnceLock<ConnId>,
    /// Token of a guest account created by this handshake, sent back once.
    pub new_guest_token: Option<String>,
    /// Events run in arrival order: each takes the next ticket when it is decoded...
    pub next_ticket: AtomicU64,
    /// ...and waits until this counter reaches its ticket, so one connection's messages
    /// are stored in the order it sent them. Ticket 0 belongs to the connect handler, so
    /// events sent right after connecting wait until the connection is set up.
    pub turn: tokio::sync::watch::Sender<u64>,
}

/// Builds the Socket.IO layer and registers the default namespace.
pub fn layer(
    service: Arc<ChatService>,
    settings: &SocketIoSettings,
) -> (socketioxide::layer::SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIoBuilder::new()
        .ping_interval(settings.ping_interval)
        .ping_timeout(settings.ping_timeout)
        .max_buffer_size(settings.outbound_queue)
        .max_payload(settings.max_payload)
        .ws_max_message_size(settings.max_payload as usize)
        .ws_max_frame_size(settings.max_payload as usize)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .with_state(service)
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    (layer, io)
}

/// Gives each Socket.IO request a copy of its URI and header values that owns its
/// bytes, as middleware in front of the Socket.IO layer.
///
/// socketioxide keeps the request head of a connection's handshake for as long as the
/// connection lives, extensions included. hyper parses the URI and header values as
/// slices of its read buffer, so keeping them keeps that whole buffer (16 KiB)
/// allocated for every connection, where the copies take a few hundred bytes.
pub async fn own_request_head(mut req: Request, next: Next) -> Response {
    if req.uri().path().starts_with(PATH) {
        let headers = std::mem::take(req.headers_mut());
        let owned = req.headers_mut();
        owned.reserve(headers.len());
        let mut name = None;
        for (next_name, value) in headers {
            // The iterator names a header once, before the first of its values.
            if next_name.is_some() {
                name = next_name;
            }
            let Some(name) = name.clone() else { continue };
            // The bytes already form a valid header value, so the copy succeeds. Should it
            // fail, the header keeps its original value instead of being dropped.
            let value = match HeaderValue::from_bytes(value.as_bytes()) {
                Ok(mut copy) => {
                    copy.set_sensitive(value.is_sensitive());
                    copy
                }
                Err(_) => value,
            };
            owned.append(name, value);
        }
        if let Some(uri) = owned_uri(req.uri()) {
            *req.uri_mut() = uri;
        }
        // axum's router keeps the URI it received as an extension too.
        if let Some(OriginalUri(original)) = req.extensions_mut().get_mut::<OriginalUri>()
            && let Some(uri) = owned_uri(original)
        {
            *original = uri;
        }
    }
    next.run(req).await
}

/// Copies `uri` into a `Uri` that owns its bytes.
fn owned_uri(uri: &Uri) -> Option<Uri> {
    Uri::try_from(uri.to_string()).ok()
}

fn header_str<'a>(s: &'a SocketRef, name: &str) -> Option<&'a str> {
    s.req_parts()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// Returns the session token from the `Cookie` header, if any.
fn cookie_token(s: &SocketRef) -> Option<String> {
    let header = header_str(s, "cookie")?;
    cookie::Cookie::split_parse(header)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

/// A refused handshake; its text is the stable error code, which the client receives
/// as `connect_error`'s `message`.
#[derive(Debug)]
struct Refused(ErrorCode);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Connect middleware: resolves the handshake to a session before the socket joins.
async fn authenticate(
    s: SocketRef,
    State(service): State<Arc<ChatService>>,
    TryData(auth): TryData<serde_json::Value>,
) -> Result<(), Refused> {
    // No auth object means no credentials; one of the wrong shape is refused rather than
    // quietly treated as a guest.
    let handshake = match auth {
        Err(_) | Ok(serde_json::Value::Null) => Handshake::default(),
        Ok(value) => serde_json::from_value::<Handshake>(value).map_err(|err| {
            tracing::debug!(sid = %s.id, cause = %err, "handshake auth of the wrong shape");
            Refused(ErrorCode::InvalidPayload)
        })?,
    };
    let lang = handshake
        .lang
        .as_deref()
        .or_else(|| header_str(&s, "accept-language"))
        .map(Lang::negotiate)
        .unwrap_or_default();
    let addr = s
        .req_parts()
        .extensions
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr(None));

    let token = handshake.token.clone().or_else(|| cookie_token(&s));
    let result: Result<(Session, Option<String>), ChatError> = match token {
        Some(token) => service.authenticate(&token).await.map(|s| (s, None)),
        None if handshake.create_guest == Some(false) => Err(ChatError::new(
            ErrorCode::Unauthenticated,
            "no token or session cookie, and create_guest is false",
        )),
        None => service
            .guest_login(addr, handshake.nickname.as_deref())
            .await
            .map(|login| (login.session, Some(login.token))),
    };
    let (session, new_guest_token) = result.map_err(|err| {
        if err.is_server_fault() {
            tracing::error!(sid = %s.id, cause = %err, "handshake failed");
        }
        Refused(err.code())
    })?;

    s.extensions.insert(Arc::new(Connection {
        lobby_text: Arc::new(LobbyText::new(new_guest_token.is_some())),
        closing: Arc::new(OnceLock::new()),
        session,
        lang,
        conn: OnceLock::new(),
        new_guest_token,
        next_ticket: AtomicU64::new(1),
        turn: tokio::sync::watch::Sender::new(0),
    }));

    // Handlers are registered here, before the client learns it is connected: socketioxide
    // runs the connect handler in its own task, and an event the client sends at once
    // would find no handler if registration waited for it.
    events::register(&s);
    let hub = service.hub().clone();
    s.on_disconnect(async move |s: SocketRef, reason: DisconnectReason| {
        let conn = s.extensions.get::<Arc<Connection>>();
        if let Some(id) = conn.as_ref().and_then(|c| c.conn.get()) {
            hub.disconnect(*id);
        }
        tracing::info!(sid = %s.id, ?reason, "socket disconnected");
    });
    Ok(())
}

/// Payload of the `session` event sent right after connecting.
#[derive(serde::Serialize)]
struct Welcome<'a> {
    user: &'a User,
    session_id: i64,
    /// Set only when the handshake created a guest account: reconnect with it to stay
    /// the same guest.
    token: Option<&'a str>,
    lobby_id: i64,
    /// Rooms this connection receives events for.
    rooms: Vec<i64>,
}

async fn on_connect(s: SocketRef, State(service): State<Arc<ChatService>>) {
    let Some(conn) = s.extensions.get::<Arc<Connection>>() else {
        tracing::error!(sid = %s.id, "connected socket lacks its session");
        let _ = s.disconnect();
        return;
    };

    // Register with the hub, follow every room the user belongs to, then send `session`.
    let sink = Arc::new(SocketSink::new(
        s.clone(),
        conn.lobby_text.clone(),
        conn.closing.clone(),
        service.lobby(),
        conn.lang,
        HELD_BEFORE_SESSION_MAX,
    ));
    let hub = service.hub().clone();
    let id = hub.connect(conn.session.user_id(), conn.session.id, sink.clone());
    let _ = conn.conn.set(id);
    let rooms = match service.member_room_ids(conn.session.user_id()).await {
        Ok(rooms) => rooms,
        Err(err) => {
            // An empty room list would tell the client to drop every room; closing lets
            // it reconnect and try again instead.
            tracing::error!(sid = %s.id, cause = %err, "failed to load rooms for a new connection");
            hub.disconnect(id);
            let _ = s.disconnect();
            conn.turn.send_modify(|turn| *turn += 1);
            return;
        }
    };

    for room in &rooms {
        hub.subscribe(id, *room);
    }
    // A kick or leave that committed after the list was read found this connection not
    // yet subscribed. Reading again after subscribing catches it: any later one finds
    // the subscription and removes it itself.
    let rooms = match service.member_room_ids(conn.session.user_id()).await {
        Ok(now) => {
            for room in rooms.iter().filter(|room| !now.contains(room)) {
                hub.unsubscribe(id, *room);
            }
            now
        }
        Err(err) => {
            tracing::warn!(sid = %s.id, cause = %err, "failed to recheck rooms for a new connection");
            rooms
        }
    };

    let welcome = Welcome {
        user: &conn.session.user,
        session_id: conn.session.id.0,
        token: conn.new_guest_token.as_deref(),
        lobby_id: service.lobby().0,
        rooms: rooms.iter().map(|r| r.0).collect(),
    };
    if let Err(err) = sink.welcome(&welcome) {
        tracing::warn!(sid = %s.id, cause = %err, "failed to send the session event");
    }

    // The socket may have closed while this handler awaited the store; its disconnect
    // handler then found no hub registration to remove.
    if !s.connected() {
        hub.disconnect(id);
    }
    // Let the events that arrived meanwhile run.
    conn.turn.send_modify(|turn| *turn += 1);

    tracing::info!(
        sid = %s.id,
        conn = id,
        user_id = %conn.session.user_id(),
        transport = ?s.transport_type(),
        "socket connected"
    );
}

/// Error payload in acknowledgements and `server:error` events.
#[derive(serde::Serialize)]
pub(crate) struct ErrorPayload {
    pub code: &'static str,
    pub message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Developer-facing English detail of the broken rule. Absent for server faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ErrorPayload {
    pub fn new(err: &ChatError, lang: Lang) -> Self {
        Self {
            code: err.code().as_str(),
            message: i18n::error_message(err.code(), lang),
            retry_after_ms: err.retry_after().map(|d| d.as_millis() as u64),
            detail: err.detail().map(str::to_owned),
        }
    }
}

/// Sends a notice to every socket and disconnects it, for shutdown.
pub fn close_all(io: &SocketIo) {
    for s in io.sockets() {
        let lang = s
            .extensions
            .get::<Arc<Connection>>()
            .map(|c| c.lang)
            .unwrap_or_default();
        sink::send_notice(&s, i18n::Notice::ServerShuttingDown, lang);
        let _ = s.disconnect();
    }
}

/// Counts connections by transport, for metrics.
pub fn count_by_transport(io: &SocketIo) -> (i64, i64) {
    let mut websocket = 0;
    let mut polling = 0;
    for s in io.sockets() {
        match s.transport_type() {
            socketioxide::TransportType::Websocket => websocket += 1,
            socketioxide::TransportType::Polling => polling += 1,
        }
    }
    (websocket, polling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::http::HeaderMap;
    use std::ops::Range;
    use tower::ServiceExt;

    /// Builds a request whose URI and header value are slices of one larger buffer, as
    /// hyper parses them, and returns it with the buffer's address range.
    fn request_from_one_buffer(path: &str) -> (Request, Range<usize>) {
        let buffer = Bytes::from(format!("{path} x-probe-value {}", " ".repeat(16 * 1024)));
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let uri = Uri::from_maybe_shared(buffer.slice(..path.len())).unwrap();
        let value =
            HeaderValue::from_maybe_shared(buffer.slice(path.len() + 1..path.len() + 14)).unwrap();
        let mut req = Request::builder()
            .uri(uri.clone())
            .body(Body::empty())
            .unwrap();
        req.headers_mut().append("x-probe", value);
        req.extensions_mut().insert(OriginalUri(uri));
        (req, range)
    }

    fn inside(range: &Range<usize>, bytes: &[u8]) -> bool {
        range.contains(&(bytes.as_ptr() as usize))
    }

    /// Runs the request through the middleware and reports, from the handler, whether
    /// the URI, the original URI and the header value still point into the buffer.
    async fn still_shared(path: &str) -> (bool, bool, bool) {
        let (req, range) = request_from_one_buffer(path);
        let seen = Arc::new(std::sync::Mutex::new(None));
        let report = seen.clone();
        let app = axum::Router::new()
            .fallback(move |req: Request| async move {
                let headers: &HeaderMap = req.headers();
                let value = headers.get("x-probe").expect("header kept");
                assert_eq!(value, "x-probe-value");
                let original = &req.extensions().get::<OriginalUri>().expect("kept").0;
                *report.lock().unwrap() = Some((
                    inside(&range, req.uri().path().as_bytes()),
                    inside(&range, original.path().as_bytes()),
                    inside(&range, value.as_bytes()),
                ));
            })
            .layer(axum::middleware::from_fn(own_request_head));
        app.oneshot(req).await.unwrap();
        seen.lock().unwrap().expect("handler ran")
    }

    #[tokio::test]
    async fn socket_io_request_head_owns_its_bytes() {
        assert_eq!(
            still_shared("/socket.io/?EIO=4&transport=websocket").await,
            (false, false, false)
        );
    }

    #[tokio::test]
    async fn other_requests_are_left_alone() {
        assert_eq!(still_shared("/api/v1/rooms").await, (true, true, true));
    }
}
