//! The minimal Socket.IO v4 client: an Engine.IO v4 WebSocket connection to the default
//! namespace, with just enough packet parsing to count benchmark messages.
//!
//! Over WebSocket every frame carries one Engine.IO packet: `0` open, `2` ping (answered
//! with `3`), `4` message. A Socket.IO packet rides inside a message: `40` connect, `44`
//! connect error, `42[event, ...args]` event.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = WebSocketStream<TcpStream>;

/// Maximum wait for any step of a connection handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Microseconds since the generator started; all timestamps in message bodies use it.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Returns the loopback source address for connection `index`, spread over `count`
/// addresses from 127.0.0.1 up, so that no single address runs out of ephemeral ports.
pub fn source_addr(index: usize, count: usize) -> IpAddr {
    let host = 1 + (index % count.clamp(1, 250)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host))
}

/// Contents of the Socket.IO CONNECT packet, and the event that ends the handshake.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// The CONNECT packet's `auth` object as JSON, if any.
    pub auth: Option<String>,
    /// An event the server sends once the connection is ready (Confab's `session`).
    pub ready_event: Option<&'static str>,
}

/// Opens a WebSocket from `source` to `server`, joins the default namespace and waits
/// for the ready event. Pings that arrive meanwhile get their pongs.
pub async fn connect(
    server: SocketAddr,
    source: IpAddr,
    options: &ConnectOptions,
) -> anyhow::Result<Ws> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, connect_inner(server, source, options))
        .await
        .context("handshake timed out")?
}

async fn connect_inner(
    server: SocketAddr,
    source: IpAddr,
    options: &ConnectOptions,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding the source address {source}"))?;
    let stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting to {server} from {source}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .context("WebSocket upgrade failed")?;

    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        bail!("expected the Engine.IO open packet, got {open:?}");
    }
    let connect = match &options.auth {
        Some(auth) => format!("40{auth}"),
        None => "40".to_owned(),
    };
    ws.send(Message::text(connect)).await?;

    let mut namespace_joined = false;
    loop {
        let text = next_text(&mut ws).await?;
        if text == "2" {
            ws.send(Message::text("3")).await?;
        } else if text.starts_with("40") {
            namespace_joined = true;
        } else if text.starts_with("44") {
            bail!("connection refused: {text}");
        } else if let Some(ready) = options.ready_event
            && namespace_joined
            && event_payload(&text, ready).is_some()
        {
            return Ok(ws);
        }
        if namespace_joined && options.ready_event.is_none() {
            return Ok(ws);
        }
    }
}

/// Waits for the next text frame, failing on close or on the end of the stream.
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => bail!("server closed the connection: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err).context("WebSocket read failed"),
            None => bail!("connection ended"),
        }
    }
}

/// Returns the JSON text after the event name in `42["name",...]`, without the closing
/// bracket, if `packet` is that event.
pub fn event_payload<'a>(packet: &'a str, name: &str) -> Option<&'a str> {
    let rest = packet.strip_prefix("42[\"")?.strip_prefix(name)?;
    let rest = rest.strip_prefix("\",")?;
    rest.strip_suffix(']')
}

/// A benchmark message: step, sender, sequence number within the step, send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub step: u32,
    pub sender: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Probe {
    /// Encodes the probe as message text: digits and dots only, so it needs no JSON
    /// escaping and passes every server's text validation.
    pub fn body(&self) -> String {
        format!(
            "b.{}.{}.{}.{}",
            self.step, self.sender, self.seq, self.sent_us
        )
    }

    /// Parses a body made by [`Probe::body`].
    pub fn parse(body: &str) -> Option<Self> {
        let mut parts = body.strip_prefix("b.")?.split('.');
        let probe = Probe {
            step: parts.next()?.parse().ok()?,
            sender: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
            sent_us: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(probe)
    }

    /// Finds a probe in a frame: the plain `message` event `42["message","b..."]`, or
    /// Confab's `message:new` whose object carries `"body":"b..."`.
    pub fn find(frame: &str, native: bool) -> Option<Self> {
        let body_start = if native {
            let payload = event_payload(frame, "message:new")?;
            let at = payload.find("\"body\":\"b.")?;
            &payload[at + 8..]
        } else {
            event_payload(frame, "message")?.strip_prefix('"')?
        };
        let end = body_start.find('"')?;
        Self::parse(&body_start[..end])
    }
}

/// Builds the Socket.IO event frame for a plain `message` with `body`.
pub fn message_frame(body: &str) -> String {
    format!("42[\"message\",\"{body}\"]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trip() {
        let p = Probe {
            step: 3,
            sender: 9,
            seq: 12345,
            sent_us: 987654321,
        };
        assert_eq!(Probe::parse(&p.body()), Some(p));
    }

    #[test]
    fn probe_in_plain_message() {
        let p = Probe {
            step: 1,
            sender: 2,
            seq: 3,
            sent_us: 4,
        };
        let frame = message_frame(&p.body());
        assert_eq!(Probe::find(&frame, false), Some(p));
        assert_eq!(Probe::find(&frame, true), None);
    }

    #[test]
    fn probe_in_message_new() {
        let frame = r#"42["message:new",{"id":7,"room_id":2,"seq":5,"kind":"text","body":"b.1.0.42.1000","author_id":3}]"#;
        let p = Probe::find(frame, true).expect("probe found");
        assert_eq!(p.seq, 42);
        assert_eq!(p.sent_us, 1000);
        assert_eq!(Probe::find(frame, false), None);
    }

    #[test]
    fn other_frames_are_not_probes() {
        assert_eq!(Probe::find("2", false), None);
        assert_eq!(Probe::find(r#"42["message","hello"]"#, false), None);
        assert_eq!(Probe::find(r#"42["message","b.1.2"]"#, false), None);
        assert_eq!(Probe::find(r#"42["presence",{"online":true}]"#, true), None);
    }

    #[test]
    fn event_payload_matches_whole_name() {
        assert_eq!(
            event_payload(r#"42["message","x"]"#, "message"),
            Some("\"x\"")
        );
        assert_eq!(event_payload(r#"42["message:new",{}]"#, "message"), None);
    }

    #[test]
    fn source_addresses_cycle() {
        assert_eq!(source_addr(0, 4).to_string(), "127.0.0.1");
        assert_eq!(source_addr(5, 4).to_string(), "127.0.0.2");
        assert_eq!(source_addr(7, 0).to_string(), "127.0.0.1");
    }
}
