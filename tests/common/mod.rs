//! Harness for tests that run the real `confab` binary: start and stop it by PID, call
//! its REST API, and speak raw Socket.IO v5 over Engine.IO v4 WebSockets to it.
//!
//! Every wait here has a timeout, and a [`Server`] kills its process when dropped.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod irc;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

/// Default wait for one reply, event or state change.
pub const WAIT: Duration = Duration::from_secs(10);
/// Maximum wait for the server to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Password used for every account the tests register.
pub const PASSWORD: &str = "correct horse battery";

/// Options every test server gets unless the test overrides them: a generous sign-in
/// budget, because tests register many accounts from one address.
const DEFAULT_OPTIONS: &[(&str, &str)] = &[
    ("listen", "127.0.0.1:0"),
    ("irc-listen", "127.0.0.1:0"),
    ("auth-burst", "1000"),
    ("auth-rate", "60000"),
    ("log", "warn"),
];

/// A running `confab serve` process on a loopback port.
pub struct Server {
    child: Child,
    /// Address the server listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    /// Address of the plain-text IRC listener, when the gateway is on.
    pub irc_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    log_path: PathBuf,
    http: reqwest::Client,
    /// Directory of the log file, deleted with the server.
    log_dir: tempfile::TempDir,
    /// The data directory when the server created it, deleted with the server.
    owned_data_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh temporary data directory. `options` are long option
    /// names without the dashes, with values. They replace the defaults of the same name.
    pub async fn start(options: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("create a temporary data directory");
        let mut server = Self::start_in(dir.path(), options).await;
        server.owned_data_dir = Some(dir);
        server
    }

    /// Starts a server on `data_dir`, which the caller keeps (for restarts).
    pub async fn start_in(data_dir: &Path, options: &[(&str, &str)]) -> Server {
        let mut merged: Vec<(String, String)> = DEFAULT_OPTIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        merged.push(("data-dir".into(), data_dir.display().to_string()));
        for (key, value) in options {
            merged.retain(|(k, _)| k != key);
            merged.push((key.to_string(), value.to_string()));
        }

        let log_dir = tempfile::tempdir().expect("create a temporary log directory");
        let log_path = log_dir.path().join("confab.log");
        let log_file = std::fs::File::create(&log_path).expect("create the server log file");

        let mut command = Command::new(env!("CARGO_BIN_EXE_confab"));
        command.arg("serve");
        for (key, value) in &merged {
            command.arg(format!("--{key}={value}"));
        }
        // Settings from the caller's environment would change the server under test.
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("CONFAB_") || name == "RUST_LOG" {
                command.env_remove(&key);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = command.spawn().expect("spawn the confab binary");

        // A thread reads stdout to its end, so the child never blocks on a full pipe, and
        // hands over the first listening line with the IRC lines printed before it.
        let stdout = child.stdout.take().expect("child stdout is piped");
        let (line_tx, line_rx) = tokio::sync::oneshot::channel::<(String, Vec<String>)>();
        std::thread::spawn(move || {
            let mut line_tx = Some(line_tx);
            let mut irc_lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("confab irc listening on ") {
                    irc_lines.push(line);
                } else if line.starts_with("confab listening on ")
                    && let Some(tx) = line_tx.take()
                {
                    let _ = tx.send((line, std::mem::take(&mut irc_lines)));
                }
            }
        });

        let (line, irc_lines) = match tokio::time::timeout(STARTUP_TIMEOUT, line_rx).await {
            Ok(Ok(lines)) => lines,
            Ok(Err(_)) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "confab exited without printing its listening line; log:\n{}",
                    read_log(&log_path)
                );
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "confab printed no listening line within {STARTUP_TIMEOUT:?}; log:\n{}",
                    read_log(&log_path)
                );
            }
        };
        let base = line
            .trim()
            .strip_prefix("confab listening on ")
            .expect("line starts with the prefix")
            .trim_end_matches('/')
            .to_owned();
        let addr: SocketAddr = base
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("listening line has no http:// URL: {line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("listening line has no socket address: {line:?}: {e}"));

        let irc_addr = irc_lines.iter().find_map(|l| {
            l.strip_prefix("confab irc listening on irc://")
                .and_then(|a| a.trim().parse().ok())
        });

        Server {
            child,
            addr,
            base,
            irc_addr,
            data_dir: data_dir.to_owned(),
            log_path,
            http: http_client(None),
            log_dir,
            owned_data_dir: None,
        }
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reports whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics with the server log unless the process is still running.
    pub fn assert_alive(&mut self) {
        if !self.is_alive() {
            panic!("confab process exited; log:\n{}", self.log());
        }
    }

    /// Sends SIGKILL to the process and reaps it.
    pub fn kill_hard(&mut self) {
        // On Unix, Child::kill sends SIGKILL to this PID.
        self.child.kill().expect("send SIGKILL to confab");
        self.child.wait().expect("reap the killed confab process");
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit. Returns its exit
    /// status, or `None` if it was still running at the deadline.
    pub async fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the confab process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the resident set size of the process in KiB, from /proc/PID/status.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line in /proc/PID/status")
    }

    /// Returns what the server wrote to stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Returns an HTTP client for this server that keeps no cookies.
    pub fn http(&self) -> Http {
        Http {
            client: self.http.clone(),
            base: self.base.clone(),
        }
    }

    /// Returns an HTTP client for this server that stores and sends cookies, like a browser.
    pub fn browser(&self) -> Http {
        Http {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .no_proxy()
                .timeout(WAIT)
                .build()
                .expect("build an HTTP client"),
            base: self.base.clone(),
        }
    }

    /// Returns an HTTP client whose connections come from `local` (a 127.0.0.0/8 address).
    pub fn http_from(&self, local: IpAddr) -> Http {
        Http {
            client: http_client(Some(local)),
            base: self.base.clone(),
        }
    }

    /// Registers an account with [`PASSWORD`] and returns its credentials.
    pub async fn register(&self, username: &str) -> Account {
        let reply = self
            .http()
            .post_json(
                "/api/v1/auth/register",
                None,
                &json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "registering {username:?} failed: {}",
            reply.text
        );
        Account::from_login(&reply.json())
    }

    /// Returns the value of a metric line such as `confab_slow_consumer_disconnects_total`
    /// (summed over label sets), or `None` if `/metrics` lacks it.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let reply = self.http().get("/metrics", None).await;
        assert_eq!(reply.status, StatusCode::OK, "GET /metrics: {}", reply.text);
        metric_value(&reply.text, name)
    }

    /// Connects a Socket.IO client that authenticates with `auth` and returns it with
    /// the `session` event's payload.
    pub async fn socket(&self, auth: Value) -> (SioClient, Value) {
        let mut client = SioClient::open(self.addr, None)
            .await
            .expect("open a WebSocket to /socket.io/");
        match client.handshake(auth).await {
            Ok(_) => {}
            Err(err) => panic!("Socket.IO handshake rejected: {err}"),
        }
        let session = client.wait_event("session").await;
        (client, session)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- confab log (pid {}) ---\n{}",
                self.child.id(),
                self.log()
            );
        }
    }
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // The end of the log is what explains a failure; keep it readable.
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(80);
    lines[start..].join("\n")
}

fn http_client(local: Option<IpAddr>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().no_proxy().timeout(WAIT);
    if let Some(local) = local {
        builder = builder.local_address(local);
    }
    builder.build().expect("build an HTTP client")
}

/// Returns the sum of the samples of metric `name` in a Prometheus text exposition.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The name must end here: either labels or the value follow.
        let value = if let Some(labelled) = rest.strip_prefix('{') {
            labelled.split_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Credentials of a registered account.
#[derive(Clone, Debug)]
pub struct Account {
    pub token: String,
    pub csrf_token: String,
    pub user_id: i64,
    pub user: Value,
}

impl Account {
    /// Reads a login or registration response body.
    pub fn from_login(body: &Value) -> Account {
        Account {
            token: body["token"].as_str().expect("token in login body").into(),
            csrf_token: body["csrf_token"]
                .as_str()
                .expect("csrf_token in login body")
                .into(),
            user_id: body["user"]["id"].as_i64().expect("user.id in login body"),
            user: body["user"].clone(),
        }
    }
}

/// An HTTP response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub text: String,
}

impl Reply {
    /// Parses the body as JSON, panicking with the body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "response ({}) is not JSON: {e}; body: {}",
                self.status, self.text
            )
        })
    }

    /// Returns `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in body: {}", self.text))
            .to_owned()
    }

    /// Returns a header as text, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header is ASCII").to_owned())
    }
}

/// A REST client bound to one server.
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    /// Sends a request and reads the whole response. `token` goes in a bearer header.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((bytes, content_type)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading the body of {method} {path} failed: {e}"))
            .to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            headers,
            bytes,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, &[], None).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(
            Method::POST,
            path,
            token,
            &[],
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, token, &[], None).await
    }
}

/// Why a read from a Socket.IO connection ended without a packet.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// The transport closed: end of stream, WebSocket close frame, I/O error or an
    /// Engine.IO close packet. The text names which.
    Closed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Timeout => f.write_str("timed out"),
            ReadError::Closed(how) => write!(f, "connection closed ({how})"),
        }
    }
}

/// One decoded Socket.IO packet from the server.
#[derive(Debug)]
enum Packet {
    Connect(Value),
    ConnectError(Value),
    Event(String, Value),
    Ack(u64, Value),
    Disconnect,
}

/// A minimal Socket.IO v5 client over an Engine.IO v4 WebSocket, default namespace only.
/// Every read replies to Engine.IO pings with pongs. Events read while waiting for
/// something else are kept in order for later.
pub struct SioClient {
    ws: WebSocketStream<TcpStream>,
    /// Payload of the Engine.IO open packet.
    pub open: Value,
    events: VecDeque<(String, Value)>,
    acks: HashMap<u64, Value>,
    next_ack: u64,
    /// Whether events are kept; a client that only sends can turn this off.
    keep_events: bool,
}

impl SioClient {
    /// Opens a WebSocket to `/socket.io/` and reads the Engine.IO open packet. `origin`
    /// is sent as the `Origin` header.
    pub async fn open(addr: SocketAddr, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("TCP connect timed out")?;
        Self::open_on(stream, addr, origin).await
    }

    /// Like [`SioClient::open`], with the client's receive buffer set to `bytes`, so a
    /// client that stops reading fills the path to it quickly.
    pub async fn open_small_buffer(addr: SocketAddr, bytes: u32) -> Self {
        let socket = TcpSocket::new_v4().expect("create a TCP socket");
        socket.set_recv_buffer_size(bytes).expect("set SO_RCVBUF");
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        Self::open_on(stream, addr, None)
            .await
            .expect("open a WebSocket to /socket.io/")
    }

    async fn open_on(
        stream: TcpStream,
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<Self, tungstenite::Error> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let mut request = url.into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert(
                "origin",
                HeaderValue::from_str(origin).expect("origin is a valid header value"),
            );
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("WebSocket handshake timed out")?;
        let mut client = SioClient {
            ws,
            open: Value::Null,
            events: VecDeque::new(),
            acks: HashMap::new(),
            next_ack: 1,
            keep_events: true,
        };
        let deadline = Instant::now() + WAIT;
        let text = client
            .read_text(deadline)
            .await
            .unwrap_or_else(|e| panic!("no Engine.IO open packet: {e}"));
        let open = text
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("first packet is not an Engine.IO open packet: {text:?}"));
        client.open = serde_json::from_str(open).expect("open packet carries JSON");
        Ok(client)
    }

    /// Sends the Socket.IO connect packet with `auth` and returns the `40` payload, or
    /// the `44` connect_error payload as the error.
    pub async fn handshake(&mut self, auth: Value) -> Result<Value, Value> {
        self.send_text(&format!("40{auth}")).await;
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_packet(deadline).await {
                Ok(Packet::Connect(v)) => return Ok(v),
                Ok(Packet::ConnectError(v)) => return Err(v),
                Ok(other) => self.keep(other),
                Err(e) => panic!("no reply to the Socket.IO connect packet: {e}"),
            }
        }
    }

    /// Stops keeping events, for clients whose incoming events the test ignores.
    pub fn discard_events(&mut self) {
        self.keep_events = false;
        self.events.clear();
    }

    /// Sends one WebSocket text message as is.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .unwrap_or_else(|e| panic!("sending {} bytes failed: {e}", text.len()));
    }

    /// Sends one WebSocket message of any kind, returning the send error if any.
    pub async fn send_message(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(message).await
    }

    /// Sends an event without an acknowledgement id: `42["name",payload]`.
    pub async fn emit(&mut self, event: &str, payload: &Value) {
        self.send_text(&format!("42{}", json!([event, payload])))
            .await;
    }

    /// Sends an event with an acknowledgement id, `42<id>["name",payload]`, and returns the id.
    pub async fn emit_with_ack(&mut self, event: &str, payload: &Value) -> u64 {
        let id = self.allocate_ack_id();
        self.send_text(&format!("42{id}{}", json!([event, payload])))
            .await;
        id
    }

    /// Reserves an acknowledgement id, for packets the test builds itself.
    pub fn allocate_ack_id(&mut self) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        id
    }

    /// Waits for the acknowledgement `43<id>[...]` and returns its first argument.
    pub async fn wait_ack(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = self.acks.remove(&id) {
                return value;
            }
            match self.read_packet(deadline).await {
                Ok(packet) => self.keep(packet),
                Err(e) => panic!("no acknowledgement {id}: {e}"),
            }
        }
    }

    /// Sends an event with an acknowledgement and returns the server's reply.
    pub async fn call(&mut self, event: &str, payload: Value) -> Value {
        let id = self.emit_with_ack(event, &payload).await;
        self.wait_ack(id).await
    }

    /// Sends a message to a room, panicking unless the acknowledgement is `ok`; returns
    /// the acknowledgement's `data` (id, seq, ...).
    pub async fn send_ok(&mut self, room_id: i64, body: &str) -> Value {
        let reply = self
            .call("message:send", json!({ "room_id": room_id, "body": body }))
            .await;
        assert_eq!(reply["ok"], true, "message:send rejected: {reply}");
        reply["data"].clone()
    }

    /// Returns the next event, waiting up to `limit`.
    pub async fn next_event_within(
        &mut self,
        limit: Duration,
    ) -> Result<(String, Value), ReadError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        let deadline = Instant::now() + limit;
        loop {
            match self.read_packet(deadline).await? {
                Packet::Event(name, payload) => return Ok((name, payload)),
                other => self.keep(other),
            }
        }
    }

    /// Returns the payload of the next event called `name`, skipping others.
    pub async fn wait_event(&mut self, name: &str) -> Value {
        self.wait_event_where(name, |_| true).await
    }

    /// Returns the payload of the next event called `name` that `matches` accepts.
    /// Events skipped on the way are dropped.
    pub async fn wait_event_where(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event_within(left).await {
                Ok((event, payload)) if event == name && matches(&payload) => return payload,
                Ok(_) => {}
                Err(e) => panic!("waiting for event {name:?}: {e}"),
            }
        }
    }

    /// Reads until the transport closes or the server disconnects the namespace, replying
    /// to pings and discarding everything else.
    /// Returns how it closed, or `Err(())` if it was still open after `limit`.
    pub async fn wait_closed(&mut self, limit: Duration) -> Result<String, ()> {
        let deadline = Instant::now() + limit;
        loop {
            match self.read_packet(deadline).await {
                // Socket.IO clients close the transport when the server disconnects their
                // last namespace, so the DISCONNECT packet ends the connection too.
                Ok(Packet::Disconnect) => return Ok("Socket.IO disconnect packet".into()),
                Ok(_) => {}
                Err(ReadError::Closed(how)) => return Ok(how),
                Err(ReadError::Timeout) => return Err(()),
            }
        }
    }

    fn keep(&mut self, packet: Packet) {
        match packet {
            Packet::Event(name, payload) if self.keep_events => {
                self.events.push_back((name, payload))
            }
            Packet::Ack(id, value) => {
                self.acks.insert(id, value);
            }
            _ => {}
        }
    }

    /// Reads one Socket.IO packet, replying to Engine.IO pings on the way.
    async fn read_packet(&mut self, deadline: Instant) -> Result<Packet, ReadError> {
        loop {
            let text = self.read_text(deadline).await?;
            let Some(rest) = text.strip_prefix('4') else {
                match text.as_bytes().first() {
                    Some(b'1') => return Err(ReadError::Closed("Engine.IO close packet".into())),
                    Some(b'6') => continue,
                    _ => panic!("unexpected Engine.IO packet {text:?}"),
                }
            };
            return Ok(parse_socketio(rest));
        }
    }

    /// Reads one WebSocket text message, replying to Engine.IO pings (`2`) with pongs (`3`).
    async fn read_text(&mut self, deadline: Instant) -> Result<String, ReadError> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| ReadError::Timeout)?;
            match next {
                None => return Err(ReadError::Closed("end of stream".into())),
                Some(Err(e)) => return Err(ReadError::Closed(format!("error: {e}"))),
                Some(Ok(Message::Close(frame))) => {
                    return Err(ReadError::Closed(format!("close frame {frame:?}")));
                }
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == "2" {
                        // A failed pong shows up as a closed stream on the next read.
                        let _ = self.ws.send(Message::text("3")).await;
                        continue;
                    }
                    return Ok(text.as_str().to_owned());
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// Decodes a Socket.IO packet of the default namespace (after the Engine.IO `4`).
fn parse_socketio(text: &str) -> Packet {
    let (kind, rest) = text.split_at(1);
    let json_of = |s: &str| -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON in packet {text:?}: {e}"))
    };
    match kind {
        "0" => Packet::Connect(json_of(rest)),
        "1" => Packet::Disconnect,
        "4" => Packet::ConnectError(json_of(rest)),
        "2" | "3" => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (id, array) = rest.split_at(digits);
            let Value::Array(mut args) = json_of(array) else {
                panic!("packet {text:?} carries no JSON array");
            };
            if kind == "2" {
                assert!(!args.is_empty(), "event packet without a name: {text:?}");
                let name = args.remove(0);
                let name = name.as_str().expect("event name is a string").to_owned();
                Packet::Event(name, args.into_iter().next().unwrap_or(Value::Null))
            } else {
                let id = id.parse().expect("ack packet has an id");
                Packet::Ack(id, args.into_iter().next().unwrap_or(Value::Null))
            }
        }
        _ => panic!("unexpected Socket.IO packet {text:?}"),
    }
}

/// Builds a valid RGB PNG of `width` x `height` pixels. `text_bytes` adds a `tEXt` chunk
/// of that many bytes, to make the file larger without changing the image.
pub fn png(width: u32, height: u32, text_bytes: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    if text_bytes > 0 {
        let mut text = b"Comment\0".to_vec();
        text.resize(text_bytes.max(text.len()), b'x');
        chunk(&mut out, b"tEXt", &text);
    }

    // Each scanline: filter byte 0, then one orange RGB pixel after another.
    let mut row = vec![0u8];
    for _ in 0..width {
        row.extend_from_slice(&[0xf4, 0x51, 0x1e]);
    }
    let raw = row.repeat(height as usize);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Wraps `data` in a zlib stream of uncompressed deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// CRC-32 (IEEE 802.3), as PNG chunks use.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Checks that a well-behaved client still sends and receives on `server`, and that the
/// process is alive: `client` sends a message to the lobby and must get its ack and the
/// matching `message:new`.
pub async fn assert_still_serving(server: &mut Server, client: &mut SioClient, lobby_id: i64) {
    server.assert_alive();
    let body = format!("still here {}", unique_suffix());
    let ack = client.send_ok(lobby_id, &body).await;
    let id = ack["id"].clone();
    let message = client
        .wait_event_where("message:new", |m| m["id"] == id)
        .await;
    assert_eq!(message["body"], body.as_str(), "echoed message body");
    server.assert_alive();
}

/// Returns a short value that differs between calls in one process.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}
