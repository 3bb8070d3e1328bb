//! A raw IRC client for protocol tests: it writes exact bytes and reads lines, checking
//! that every line the server sends ends in CR LF. Every wait has a timeout.

use super::WAIT;
use base64::Engine as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// One IRC connection to the server under test.
pub struct IrcClient {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Every line received so far, without CR LF, for failure messages.
    pub received: Vec<String>,
    /// Set once the server closed the connection.
    pub closed: bool,
}

impl IrcClient {
    /// Connects without registering.
    pub async fn connect(addr: SocketAddr) -> IrcClient {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("IRC connect timed out")
            .expect("connect to the IRC listener");
        Self::from_stream(stream)
    }

    /// Connects with a small receive buffer, for clients that stop reading.
    pub async fn connect_small_buffer(addr: SocketAddr, bytes: u32) -> IrcClient {
        let socket = TcpSocket::new_v4().expect("create a TCP socket");
        socket
            .set_recv_buffer_size(bytes)
            .expect("set the receive buffer size");
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("IRC connect timed out")
            .expect("connect to the IRC listener");
        Self::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> IrcClient {
        IrcClient {
            stream,
            buffer: Vec::new(),
            received: Vec::new(),
            closed: false,
        }
    }

    /// Connects and registers as a guest with `nick`, waiting for 001.
    pub async fn guest(addr: SocketAddr, nick: &str) -> IrcClient {
        let mut client = Self::connect(addr).await;
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        client.expect_numeric("001").await;
        client.expect_numeric("422").await;
        client
    }

    /// Connects and registers with SASL PLAIN and `caps`, waiting for 001.
    pub async fn sasl(
        addr: SocketAddr,
        nick: &str,
        account: &str,
        password: &str,
        caps: &str,
    ) -> IrcClient {
        let mut client = Self::connect(addr).await;
        client.send("CAP LS 302").await;
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        client.wait_for(|l| l.contains(" CAP * LS ")).await;
        client.send(&format!("CAP REQ :sasl {caps}")).await;
        client
            .wait_for(|l| l.contains(" CAP ") && l.contains(" ACK "))
            .await;
        client.send("AUTHENTICATE PLAIN").await;
        client.wait_for(|l| l == "AUTHENTICATE +").await;
        client
            .send(&format!("AUTHENTICATE {}", plain(account, password)))
            .await;
        client.expect_numeric("903").await;
        client.send("CAP END").await;
        client.expect_numeric("001").await;
        client.expect_numeric("422").await;
        client
    }

    /// Returns the last lines received, each cut to 160 bytes, for failure messages.
    pub fn transcript(&self) -> String {
        let start = self.received.len().saturating_sub(40);
        self.received[start..]
            .iter()
            .map(|l| match l.char_indices().nth(160) {
                Some((cut, _)) => format!("{}…", &l[..cut]),
                None => l.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends one line, adding CR LF.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Sends exact bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("IRC write timed out")
            .expect("write to the IRC connection");
    }

    /// Returns the next line within `limit`, `None` on timeout or when the connection
    /// closed. Panics on a line that does not end in CR LF.
    pub async fn next_line_within(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                assert!(
                    !line.contains(&b'\n') && !line.contains(&b'\r'),
                    "line with a bare CR or LF: {line:?}"
                );
                let line = String::from_utf8(line).expect("server lines are UTF-8");
                self.received.push(line.clone());
                return Some(line);
            }
            if self.closed {
                return None;
            }
            let mut chunk = [0u8; 8192];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                    assert!(
                        self.buffer.is_empty(),
                        "connection closed inside a line: {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    );
                }
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Returns the first line that `matches` accepts, skipping others; panics with the
    /// lines received if none comes within [`WAIT`].
    pub async fn wait_for(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line_within(left).await {
                Some(line) if matches(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "no matching line within {WAIT:?} (closed: {}); received:\n{}",
                    self.closed,
                    self.transcript()
                ),
            }
        }
    }

    /// Waits for a numeric reply with `code` and returns its line.
    pub async fn expect_numeric(&mut self, code: &str) -> String {
        let code = code.to_owned();
        self.wait_for(move |l| command_of(l) == code).await
    }

    /// Returns every line received within `limit`.
    pub async fn lines_within(&mut self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return lines;
            }
            match self.next_line_within(left).await {
                Some(line) => lines.push(line),
                None => return lines,
            }
        }
    }

    /// Sends a PING and waits for its PONG, so every earlier reply has arrived. Returns
    /// the lines received before the PONG.
    pub async fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("PING {token}")).await;
        let mut before = Vec::new();
        loop {
            match self.next_line_within(WAIT).await {
                Some(line) if command_of(&line) == "PONG" && line.ends_with(token) => {
                    return before;
                }
                Some(line) => before.push(line),
                None => panic!("no PONG {token}; received:\n{}", self.transcript()),
            }
        }
    }
}

/// Returns the SASL PLAIN response for an account, base64-encoded.
pub fn plain(account: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}

/// Returns a line's command, skipping its tags and source.
pub fn command_of(line: &str) -> &str {
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let mut word = words.next().unwrap_or("");
    if word.starts_with('@') {
        word = words.next().unwrap_or("");
    }
    if word.starts_with(':') {
        word = words.next().unwrap_or("");
    }
    word
}

/// Returns a line's trailing parameter (after " :"), or "".
pub fn trailing(line: &str) -> &str {
    let body = match line.strip_prefix('@') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, b)| b),
        None => line,
    };
    let body = body
        .strip_prefix(':')
        .map_or(body, |b| b.split_once(' ').map_or("", |(_, r)| r));
    body.split_once(" :").map_or("", |(_, t)| t)
}

/// Returns a tag's value from a line, if the line has it.
pub fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';').find_map(|t| match t.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if t == key => Some(""),
        _ => None,
    })
}
