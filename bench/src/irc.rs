//! The minimal IRC client: plain TCP, registration with NICK and USER, one JOIN, and
//! just enough line parsing (RFC 1459 section 2.3.1, with IRCv3 message tags) to count
//! benchmark messages and reply to PING.

use anyhow::{Context, bail};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use crate::sio::HANDSHAKE_TIMEOUT;

/// One registered IRC connection that has joined its channel.
pub struct IrcConn {
    pub lines: Lines<BufReader<OwnedReadHalf>>,
    pub writer: OwnedWriteHalf,
}

/// Nickname and channel of one IRC member.
#[derive(Clone, Debug)]
pub struct Registration {
    pub nick: String,
    pub channel: String,
}

/// One parsed IRC line, borrowing from the line's text.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The source without the leading colon, if the line has one.
    pub source: Option<&'a str>,
    pub command: &'a str,
    /// Middle parameters, then the trailing one (without its colon) as the last entry.
    pub params: Vec<&'a str>,
}

impl<'a> Line<'a> {
    /// Parses `[@tags] [:source] COMMAND params… [:trailing]`; the tags are skipped.
    /// Returns `None` for a line without a command.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut rest = text.trim_end_matches(['\r', '\n']);
        if rest.starts_with('@') {
            rest = rest.split_once(' ')?.1.trim_start_matches(' ');
        }
        let mut source = None;
        if let Some(after_colon) = rest.strip_prefix(':') {
            let (prefix, after) = after_colon.split_once(' ')?;
            source = Some(prefix);
            rest = after.trim_start_matches(' ');
        }
        let (command, mut rest) = match rest.split_once(' ') {
            Some((command, after)) => (command, after),
            None => (rest, ""),
        };
        if command.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            match rest.split_once(' ') {
                Some((param, after)) => {
                    params.push(param);
                    rest = after;
                }
                None => {
                    params.push(rest);
                    break;
                }
            }
        }
        Some(Self {
            source,
            command,
            params,
        })
    }

    /// Returns the text of a PRIVMSG to `channel` (compared without regard to ASCII
    /// case, as IRC compares channel names), or `None` for any other line.
    pub fn privmsg_text(&self, channel: &str) -> Option<&'a str> {
        if !self.command.eq_ignore_ascii_case("PRIVMSG") || self.params.len() != 2 {
            return None;
        }
        self.params[0]
            .eq_ignore_ascii_case(channel)
            .then_some(self.params[1])
    }
}

/// Returns the PONG line for a PING line, or `None` for any other line.
pub fn pong_for(line: &Line<'_>) -> Option<String> {
    if !line.command.eq_ignore_ascii_case("PING") {
        return None;
    }
    let token = line.params.first().copied().unwrap_or("");
    Some(format!("PONG :{token}\r\n"))
}

/// Builds the line that sends `text` to `channel`.
pub fn privmsg_line(channel: &str, text: &str) -> String {
    format!("PRIVMSG {channel} :{text}\r\n")
}

/// Connects from `source` to `server`, registers as `registration.nick` and joins
/// `registration.channel`. Returns once the server has sent the end of the channel's
/// NAMES list (366), because from then on the connection receives the channel's
/// messages.
pub async fn connect(
    server: SocketAddr,
    source: IpAddr,
    registration: &Registration,
) -> anyhow::Result<IrcConn> {
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        connect_inner(server, source, registration),
    )
    .await
    .context("IRC registration timed out")?
}

async fn connect_inner(
    server: SocketAddr,
    source: IpAddr,
    registration: &Registration,
) -> anyhow::Result<IrcConn> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding the source address {source}"))?;
    let stream: TcpStream = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting to {server} from {source}"))?;
    stream.set_nodelay(true)?;
    let (read, mut writer) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let nick = &registration.nick;
    let channel = &registration.channel;
    writer
        .write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes())
        .await?;

    let mut joined = false;
    loop {
        let Some(text) = lines.next_line().await? else {
            bail!("the server closed the connection during registration of {nick}");
        };
        let Some(line) = Line::parse(&text) else {
            continue;
        };
        if let Some(pong) = pong_for(&line) {
            writer.write_all(pong.as_bytes()).await?;
            continue;
        }
        match line.command {
            "001" => {
                writer
                    .write_all(format!("JOIN {channel}\r\n").as_bytes())
                    .await?;
                joined = true;
            }
            "366" if joined => return Ok(IrcConn { lines, writer }),
            "ERROR" => bail!("the server closed the connection of {nick}: {text}"),
            // 422 (no MOTD) is part of a normal welcome.
            "422" => {}
            // Other 4xx and 5xx replies are errors, for example 433 (nickname in use)
            // or 403 (no such channel).
            numeric if numeric.len() == 3 && matches!(numeric.as_bytes()[0], b'4' | b'5') => {
                bail!("registration of {nick} in {channel} failed: {text}")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sio::Probe;

    #[test]
    fn parse_privmsg_with_source() {
        let line = Line::parse(":b1!b1@127.0.0.1 PRIVMSG #lobby :b.1.2.3.4\r\n").unwrap();
        assert_eq!(line.source, Some("b1!b1@127.0.0.1"));
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.params, vec!["#lobby", "b.1.2.3.4"]);
        assert_eq!(line.privmsg_text("#lobby"), Some("b.1.2.3.4"));
        let probe = Probe::parse(line.privmsg_text("#Lobby").unwrap()).unwrap();
        assert_eq!((probe.step, probe.sender, probe.seq), (1, 2, 3));
    }

    #[test]
    fn parse_skips_tags() {
        let line = Line::parse("@time=2026-12-05T03:00:00.000Z;msgid=7 :a PRIVMSG #x :hi").unwrap();
        assert_eq!(line.source, Some("a"));
        assert_eq!(line.privmsg_text("#x"), Some("hi"));
    }

    #[test]
    fn parse_without_trailing() {
        let line = Line::parse(":srv 366 nick #lobby :End of NAMES list").unwrap();
        assert_eq!(line.command, "366");
        assert_eq!(line.params, vec!["nick", "#lobby", "End of NAMES list"]);
        let line = Line::parse("PING srv").unwrap();
        assert_eq!(line.source, None);
        assert_eq!(line.params, vec!["srv"]);
        let line = Line::parse("QUIT").unwrap();
        assert!(line.params.is_empty());
    }

    #[test]
    fn trailing_keeps_spaces_and_colons() {
        let line = Line::parse(":a PRIVMSG #x :one :two  three").unwrap();
        assert_eq!(line.privmsg_text("#x"), Some("one :two  three"));
    }

    #[test]
    fn other_lines_carry_no_text() {
        let notice = Line::parse(":a NOTICE #x :b.1.2.3.4").unwrap();
        assert_eq!(notice.privmsg_text("#x"), None);
        let other_channel = Line::parse(":a PRIVMSG #y :b.1.2.3.4").unwrap();
        assert_eq!(other_channel.privmsg_text("#x"), None);
        let to_nick = Line::parse(":a PRIVMSG nick :b.1.2.3.4").unwrap();
        assert_eq!(to_nick.privmsg_text("#x"), None);
    }

    #[test]
    fn empty_and_source_only_lines_are_rejected() {
        assert_eq!(Line::parse(""), None);
        assert_eq!(Line::parse(":source"), None);
        assert_eq!(Line::parse("@tags"), None);
    }

    #[test]
    fn ping_gets_pong() {
        let ping = Line::parse("PING :confab.irc").unwrap();
        assert_eq!(pong_for(&ping).as_deref(), Some("PONG :confab.irc\r\n"));
        let privmsg = Line::parse(":a PRIVMSG #x :PING").unwrap();
        assert_eq!(pong_for(&privmsg), None);
    }

    #[test]
    fn privmsg_line_round_trip() {
        let text = privmsg_line("#lobby", "b.1.0.5.99");
        let line = Line::parse(&text).unwrap();
        assert_eq!(line.privmsg_text("#lobby"), Some("b.1.0.5.99"));
    }
}
