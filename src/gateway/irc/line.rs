//! IRC message lines: framing of the byte stream, parsing with IRCv3 message tags, and
//! serialisation. Follows the grammar of RFC 1459 section 2.3.1 as clarified by the
//! Modern IRC documents, and the IRCv3 Message Tags specification for the tag section.

use std::fmt::Write as _;

/// Maximum bytes of a line without its tag section, CR LF included (RFC 1459 2.3).
pub const MAX_BODY_BYTES: usize = 512;
/// Maximum bytes of client tag data, without the leading '@' and the trailing space
/// (IRCv3 Message Tags: 4094 bytes for clients, 4096 with '@' and space).
pub const MAX_CLIENT_TAG_BYTES: usize = 4094;
/// Maximum bytes a reader buffers for one line before it reports 417: the largest tag
/// section IRCv3 allows (8191 bytes) plus a full body.
pub const MAX_LINE_BYTES: usize = 8191 + MAX_BODY_BYTES;

/// One parsed IRC message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Tags in the order received; a value of `None` is a tag sent without '='.
    pub tags: Vec<(String, Option<String>)>,
    /// The source (prefix) without the leading ':'.
    pub source: Option<String>,
    /// The command, upper-cased when it is a word.
    pub command: String,
    /// Parameters, the trailing one included, unescaped.
    pub params: Vec<String>,
}

/// Reason a line could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The line has no command (only tags, a source or spaces).
    NoCommand,
    /// The body (without tags) exceeds [`MAX_BODY_BYTES`], or the client tag data exceeds
    /// [`MAX_CLIENT_TAG_BYTES`]: RFC 1459 417 ERR_INPUTTOOLONG.
    TooLong,
    /// The line is not UTF-8. `command` is the command as far as it could be read.
    InvalidUtf8 { command: String },
}

impl Message {
    /// Builds a message with a command and parameters, and no tags or source.
    pub fn new(command: &str, params: &[&str]) -> Self {
        Self {
            tags: Vec::new(),
            source: None,
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// Returns the value of a tag, `Some("")` for a tag without a value.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// Returns the parameter at `index`, if present.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// Serialises the message as one line ending in CR LF. The last parameter is sent as
    /// a trailing parameter (after ':') when it is empty, contains a space or starts
    /// with ':'; other parameters must contain none of these, and callers ensure that.
    pub fn to_line(&self) -> String {
        let mut out = String::with_capacity(64);
        if !self.tags.is_empty() {
            out.push('@');
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                out.push_str(key);
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    out.push('=');
                    escape_tag_value(value, &mut out);
                }
            }
            out.push(' ');
        }
        if let Some(source) = &self.source {
            out.push(':');
            out.push_str(source);
            out.push(' ');
        }
        out.push_str(&self.command);
        push_params(&mut out, &self.params);
        out.push_str("\r\n");
        out
    }
}

/// Appends parameters to a line, the last one as a trailing parameter when it needs it.
pub fn push_params<S: AsRef<str>>(out: &mut String, params: &[S]) {
    let count = params.len();
    for (i, param) in params.iter().enumerate() {
        let param = param.as_ref();
        out.push(' ');
        let last = i + 1 == count;
        if last && (param.is_empty() || param.contains(' ') || param.starts_with(':')) {
            out.push(':');
        }
        out.push_str(param);
    }
}

/// Parses one line, without its line ending.
pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(_) => {
            let lossy = String::from_utf8_lossy(line);
            let command = lossy
                .split(' ')
                .filter(|w| !w.is_empty())
                .find(|w| !w.starts_with('@') && !w.starts_with(':'))
                .unwrap_or("*")
                .to_ascii_uppercase();
            return Err(ParseError::InvalidUtf8 { command });
        }
    };

    let mut rest = text.trim_start_matches(' ');
    let mut tags = Vec::new();
    if let Some(after_at) = rest.strip_prefix('@') {
        let (tag_text, after) = after_at.split_once(' ').unwrap_or((after_at, ""));
        if tag_text.len() > MAX_CLIENT_TAG_BYTES {
            return Err(ParseError::TooLong);
        }
        tags = parse_tags(tag_text);
        rest = after;
    }
    rest = rest.trim_start_matches(' ');
    if rest.len() > MAX_BODY_BYTES - 2 {
        return Err(ParseError::TooLong);
    }

    let mut source = None;
    if let Some(after_colon) = rest.strip_prefix(':') {
        let (src, after) = after_colon.split_once(' ').unwrap_or((after_colon, ""));
        source = Some(src.to_owned());
        rest = after.trim_start_matches(' ');
    }

    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    // A word starting with '@' cannot be a command: serialised, it would read back as a
    // tag section (found by the fuzz target with `@ @cmd x`).
    if command.is_empty() || command.starts_with('@') {
        return Err(ParseError::NoCommand);
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing.to_owned());
            break;
        }
        let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param.to_owned());
        rest = after;
    }
    Ok(Message {
        tags,
        source,
        command: command.to_ascii_uppercase(),
        params,
    })
}

fn parse_tags(text: &str) -> Vec<(String, Option<String>)> {
    text.split(';')
        .filter(|t| !t.is_empty())
        .map(|tag| match tag.split_once('=') {
            Some((key, value)) => (key.to_owned(), Some(unescape_tag_value(value))),
            None => (tag.to_owned(), None),
        })
        .collect()
}

/// Escapes a tag value as IRCv3 Message Tags define: ';', space, '\', CR and LF.
pub fn escape_tag_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Reverses [`escape_tag_value`]. An unknown escape drops the backslash, and a trailing
/// lone backslash is dropped, as the specification requires.
pub fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('\\') => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Splits a byte stream into lines. CR LF, bare LF and bare CR all end a line, and empty
/// lines are skipped. A line longer than [`MAX_LINE_BYTES`] is reported once as
/// [`Frame::TooLong`] and its bytes up to the next line ending are discarded.
#[derive(Default)]
pub struct LineReader {
    buffer: Vec<u8>,
    /// Set while the rest of an over-long line is being discarded.
    discarding: bool,
}

/// One item taken from a [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(Vec<u8>),
    TooLong,
}

impl LineReader {
    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Takes the next complete line, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            let end = self.buffer.iter().position(|b| *b == b'\r' || *b == b'\n');
            let Some(end) = end else {
                if !self.discarding && self.buffer.len() > MAX_LINE_BYTES {
                    self.buffer.clear();
                    self.discarding = true;
                    return Some(Frame::TooLong);
                }
                if self.discarding {
                    self.buffer.clear();
                }
                return None;
            };
            let line: Vec<u8> = self.buffer[..end].to_vec();
            self.buffer.drain(..=end);
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if line.len() > MAX_LINE_BYTES {
                return Some(Frame::TooLong);
            }
            return Some(Frame::Line(line));
        }
    }
}

/// Formats a time in milliseconds since the Unix epoch as the IRCv3 server-time value,
/// e.g. `2026-12-04T10:00:00.123Z`.
pub fn server_time(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    );
    out
}

/// Parses a server-time value back into milliseconds since the Unix epoch.
pub fn parse_server_time(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Splits a message body into pieces of at most `max_bytes` bytes each, cutting only
/// between extended grapheme clusters (so never inside a UTF-8 sequence or a composed
/// character). A single cluster longer than `max_bytes` is cut between characters.
/// Concatenating the pieces gives the original text.
pub fn split_graphemes(text: &str, max_bytes: usize) -> Vec<&str> {
    use unicode_segmentation::UnicodeSegmentation;
    let max_bytes = max_bytes.max(4);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (offset, cluster) in text.grapheme_indices(true) {
        let cluster_end = offset + cluster.len();
        if cluster_end - start <= max_bytes {
            end = cluster_end;
            continue;
        }
        if end > start {
            pieces.push(&text[start..end]);
            start = end;
        }
        // A cluster that alone exceeds the budget is cut at character boundaries.
        while cluster_end - start > max_bytes {
            let mut cut = start + max_bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            pieces.push(&text[start..cut]);
            start = cut;
        }
        end = cluster_end;
    }
    if end > start {
        pieces.push(&text[start..end]);
    }
    pieces
}

/// Checks the properties the fuzz target and the corpus test rely on, panicking when one
/// fails: the reader and parser never panic, every line the reader yields is free of
/// CR and LF, and a parsed line serialises to one CR LF line that parses back to the
/// same message.
pub fn check_invariants(data: &[u8]) {
    let _ = parse(data);
    let mut reader = LineReader::default();
    reader.extend(data);
    while let Some(frame) = reader.next_frame() {
        let Frame::Line(bytes) = frame else { continue };
        assert!(!bytes.is_empty(), "empty line yielded");
        assert!(
            !bytes.contains(&b'\r') && !bytes.contains(&b'\n'),
            "line ending inside a line"
        );
        let Ok(message) = parse(&bytes) else { continue };
        let line = message.to_line();
        let body = line
            .strip_suffix("\r\n")
            .expect("serialised line ends in CR LF");
        assert!(
            !body.contains(['\r', '\n']),
            "serialised line contains CR or LF"
        );
        let again = parse(body.as_bytes()).expect("serialised line parses");
        let normalise = |m: &Message| -> Vec<(String, String)> {
            m.tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect()
        };
        assert_eq!(normalise(&again), normalise(&message), "tags changed");
        assert_eq!(again.source, message.source, "source changed");
        assert_eq!(again.command, message.command, "command changed");
        assert_eq!(again.params, message.params, "parameters changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays every input of the fuzz corpus through the fuzz target's checks.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/irc_line");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).expect("read the fuzz corpus directory") {
            let path = entry.expect("list the fuzz corpus").path();
            let data = std::fs::read(&path).expect("read a corpus file");
            check_invariants(&data);
            count += 1;
        }
        assert!(count >= 5, "only {count} corpus files in {dir}");
    }

    #[test]
    fn leading_spaces_before_tags_are_skipped() {
        let m = parse(b"  @a=b PING x").unwrap();
        assert_eq!(m.tag("a"), Some("b"));
        assert_eq!(m.command, "PING");
    }

    #[test]
    fn parse_full_line_with_tags_and_source() {
        let m = parse(b"@label=a1;+draft/reply=x\\sy;flag :nick!u@h PRIVMSG #room :hello there")
            .unwrap();
        assert_eq!(m.tag("label"), Some("a1"));
        assert_eq!(m.tag("+draft/reply"), Some("x y"));
        assert_eq!(m.tag("flag"), Some(""));
        assert_eq!(m.source.as_deref(), Some("nick!u@h"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#room", "hello there"]);
    }

    #[test]
    fn parse_keeps_empty_trailing_parameter() {
        let m = parse(b"TOPIC #room :").unwrap();
        assert_eq!(m.params, vec!["#room", ""]);
    }

    #[test]
    fn parse_collapses_repeated_spaces() {
        let m = parse(b"  nick   alice  ").unwrap();
        assert_eq!(m.command, "NICK");
        assert_eq!(m.params, vec!["alice"]);
    }

    #[test]
    fn parse_rejects_line_without_command() {
        assert_eq!(parse(b"@a=b"), Err(ParseError::NoCommand));
        assert_eq!(parse(b":source"), Err(ParseError::NoCommand));
    }

    #[test]
    fn parse_limits_body_to_510_bytes() {
        let mut line = b"PRIVMSG #a :".to_vec();
        line.resize(510, b'x');
        assert!(parse(&line).is_ok());
        line.push(b'x');
        assert_eq!(parse(&line), Err(ParseError::TooLong));
    }

    #[test]
    fn parse_limits_client_tags() {
        let tag = format!("@+a={} PING x", "v".repeat(MAX_CLIENT_TAG_BYTES - 3));
        assert!(parse(tag.as_bytes()).is_ok());
        let tag = format!("@+a={} PING x", "v".repeat(MAX_CLIENT_TAG_BYTES - 2));
        assert_eq!(parse(tag.as_bytes()), Err(ParseError::TooLong));
    }

    #[test]
    fn parse_reports_invalid_utf8_with_command() {
        let err = parse(b"privmsg #a :\xff\xfe").unwrap_err();
        assert_eq!(
            err,
            ParseError::InvalidUtf8 {
                command: "PRIVMSG".into()
            }
        );
    }

    #[test]
    fn serialise_uses_trailing_only_when_needed() {
        assert_eq!(Message::new("PING", &["abc"]).to_line(), "PING abc\r\n");
        assert_eq!(
            Message::new("TOPIC", &["#a", ""]).to_line(),
            "TOPIC #a :\r\n"
        );
        assert_eq!(Message::new("X", &[":y"]).to_line(), "X ::y\r\n");
        assert_eq!(Message::new("X", &["a b"]).to_line(), "X :a b\r\n");
    }

    #[test]
    fn tag_values_round_trip() {
        let raw = "a;b c\\d\r\ne";
        let mut escaped = String::new();
        escape_tag_value(raw, &mut escaped);
        assert_eq!(escaped, "a\\:b\\sc\\\\d\\r\\ne");
        assert_eq!(unescape_tag_value(&escaped), raw);
        assert_eq!(unescape_tag_value("x\\"), "x");
        assert_eq!(unescape_tag_value("\\q"), "q");
    }

    #[test]
    fn serialise_then_parse_round_trips() {
        let m = Message {
            tags: vec![("time".into(), Some("2026-01-01T00:00:00.000Z".into()))],
            source: Some("a!b@c".into()),
            command: "PRIVMSG".into(),
            params: vec!["#x".into(), ":-) hi".into()],
        };
        let line = m.to_line();
        let parsed = parse(line.trim_end().as_bytes()).unwrap();
        assert_eq!(parsed, m);
    }

    #[test]
    fn reader_accepts_every_line_ending() {
        let mut reader = LineReader::default();
        reader.extend(b"A\r\nB\nC\rD\r\n\r\n\nE");
        let mut lines = Vec::new();
        while let Some(Frame::Line(line)) = reader.next_frame() {
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines, vec!["A", "B", "C", "D"]);
        reader.extend(b"\n");
        assert_eq!(reader.next_frame(), Some(Frame::Line(b"E".to_vec())));
    }

    #[test]
    fn reader_reports_overlong_line_once() {
        let mut reader = LineReader::default();
        reader.extend(&vec![b'x'; MAX_LINE_BYTES + 10]);
        assert_eq!(reader.next_frame(), Some(Frame::TooLong));
        reader.extend(&[b'x'; 100]);
        assert_eq!(reader.next_frame(), None);
        reader.extend(b"\r\nPING a\r\n");
        assert_eq!(reader.next_frame(), Some(Frame::Line(b"PING a".to_vec())));
    }

    #[test]
    fn server_time_round_trips() {
        let text = server_time(1_764_806_400_123);
        assert_eq!(text, "2025-12-04T00:00:00.123Z");
        assert_eq!(parse_server_time(&text), Some(1_764_806_400_123));
    }

    #[test]
    fn split_never_cuts_a_grapheme() {
        // A family emoji is one grapheme of 25 bytes; Chinese characters are 3 bytes.
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        let text = format!("你好{family}世界e\u{301}");
        for max in 4..40 {
            let pieces = split_graphemes(&text, max);
            assert_eq!(pieces.concat(), text, "max {max}");
            for piece in &pieces {
                assert!(piece.len() <= max, "piece {piece:?} over {max}");
            }
            if max >= family.len() {
                assert!(pieces.iter().any(|p| p.contains(family)), "max {max}");
            }
            assert!(
                pieces.iter().all(|p| !p.starts_with('\u{301}')),
                "max {max}"
            );
        }
    }
}
