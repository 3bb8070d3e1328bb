//! Rules for user-chosen text: usernames, display names, room names, topics and message
//! bodies. Each check returns the normalised value to store, so every protocol applies
//! the same normalisation.

use super::error::{ChatError, ErrorCode};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Shortest username, in characters after NFKC normalisation.
pub const USERNAME_MIN_CHARS: usize = 2;
/// Maximum username length, in characters after NFKC normalisation.
pub const USERNAME_MAX_CHARS: usize = 32;
/// Maximum display name (nickname) length, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
/// Maximum room name length, in characters.
pub const ROOM_NAME_MAX_CHARS: usize = 64;
/// Maximum room topic length, in characters.
pub const TOPIC_MAX_CHARS: usize = 300;
/// Maximum client message id length, in bytes of printable ASCII.
pub const CLIENT_MSG_ID_MAX_BYTES: usize = 64;
/// Default shortest password, in characters; no composition rules apply.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Maximum password length, in characters.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Returns the comparison key of a username or room name: NFKC, then lowercase, then NFKC
/// again (lowercasing can produce sequences that NFKC composes differently).
pub fn fold_key(name: &str) -> String {
    let folded: String = name.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// Reports whether a character renders as something a reader can see.
pub fn is_visible(c: char) -> bool {
    // Fillers that render blank even though their category is letter or symbol.
    const BLANK_LETTERS: [char; 6] = [
        '\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}', '\u{180E}',
    ];
    if BLANK_LETTERS.contains(&c) {
        return false;
    }
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::NonspacingMark
            | GeneralCategory::EnclosingMark
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    )
}

/// Reports whether a character can reorder surrounding text (bidirectional embeddings,
/// overrides and isolates). Names must not contain them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn reject(code: ErrorCode, detail: impl Into<String>) -> ChatError {
    ChatError::new(code, detail)
}

/// Validates a username and returns it NFKC-normalised. Allowed: letters and digits of
/// any script, '.', '_' and '-', starting with a letter or digit.
pub fn validate_username(raw: &str) -> Result<String, ChatError> {
    let name: String = raw.trim().nfkc().collect();
    let count = name.chars().count();
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&count) {
        return Err(reject(
            ErrorCode::InvalidUsername,
            format!("username has {count} characters"),
        ));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or(' ');
    if !first.is_alphanumeric() {
        return Err(reject(
            ErrorCode::InvalidUsername,
            "username must start with a letter or digit",
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')) || !is_visible(*c))
    {
        return Err(reject(
            ErrorCode::InvalidUsername,
            format!("username contains {:?}", bad),
        ));
    }
    Ok(name)
}

/// Validates a display name or guest nickname and returns it trimmed and NFC-normalised.
/// Any script is allowed; control characters, bidirectional overrides and names with no
/// visible character are rejected.
pub fn validate_display_name(raw: &str) -> Result<String, ChatError> {
    let name: String = raw.trim().nfc().collect();
    let count = name.chars().count();
    if count == 0 || count > DISPLAY_NAME_MAX_CHARS {
        return Err(reject(
            ErrorCode::InvalidDisplayName,
            format!("display name has {count} characters"),
        ));
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(reject(
            ErrorCode::InvalidDisplayName,
            "display name contains control characters",
        ));
    }
    if !name.chars().any(is_visible) {
        return Err(reject(
            ErrorCode::InvalidDisplayName,
            "display name has no visible character",
        ));
    }
    Ok(name)
}

/// Validates a password's length. Passwords are never normalised or trimmed: they are
/// hashed exactly as typed.
pub fn validate_password(password: &str, min_chars: usize) -> Result<(), ChatError> {
    let count = password.chars().count();
    if !(min_chars..=PASSWORD_MAX_CHARS).contains(&count) {
        return Err(reject(
            ErrorCode::InvalidPassword,
            format!("password has {count} characters"),
        ));
    }
    Ok(())
}

/// Validates a room name and returns it NFKC-normalised. Room names become IRC channel
/// names later, so spaces, commas and '#' are excluded.
pub fn validate_room_name(raw: &str) -> Result<String, ChatError> {
    let name: String = raw.trim().trim_start_matches('#').nfkc().collect();
    let count = name.chars().count();
    if count == 0 || count > ROOM_NAME_MAX_CHARS {
        return Err(reject(
            ErrorCode::InvalidRoomName,
            format!("room name has {count} characters"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')) || !is_visible(*c))
    {
        return Err(reject(
            ErrorCode::InvalidRoomName,
            format!("room name contains {:?}", bad),
        ));
    }
    Ok(name)
}

/// Maximum length of the reason a user gives for leaving a room, in characters.
pub const LEAVE_REASON_MAX_CHARS: usize = 300;

/// Normalizes the reason given for leaving a room: control characters become spaces,
/// the ends are trimmed and the text is cut to [`LEAVE_REASON_MAX_CHARS`]. A reason is
/// cleaned rather than rejected, because a bad reason must not stop someone leaving.
pub fn normalize_leave_reason(raw: &str) -> String {
    let cleaned: String = raw
        .nfc()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned
        .trim()
        .chars()
        .take(LEAVE_REASON_MAX_CHARS)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Validates a room topic: at most [`TOPIC_MAX_CHARS`], one line, no control characters.
pub fn validate_topic(raw: &str) -> Result<String, ChatError> {
    let topic: String = raw.trim().nfc().collect();
    let count = topic.chars().count();
    if count > TOPIC_MAX_CHARS {
        return Err(reject(
            ErrorCode::InvalidTopic,
            format!("topic has {count} characters"),
        ));
    }
    if topic.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(reject(
            ErrorCode::InvalidTopic,
            "topic contains control characters",
        ));
    }
    Ok(topic)
}

/// Validates a message body and returns it with line endings normalised to `\n`.
/// The body needs a visible character and at most `max_chars` characters; the only
/// control characters allowed are newline and tab.
pub fn validate_body(raw: &str, max_chars: usize) -> Result<String, ChatError> {
    let body = raw.replace("\r\n", "\n").replace('\r', "\n");
    let count = body.chars().count();
    if count > max_chars {
        return Err(reject(
            ErrorCode::BodyTooLong,
            format!("body has {count} characters, the limit is {max_chars}"),
        ));
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(reject(
            ErrorCode::InvalidBody,
            "body contains control characters",
        ));
    }
    if !body.chars().any(is_visible) {
        return Err(reject(ErrorCode::InvalidBody, "body is empty"));
    }
    Ok(body)
}

/// Validates a sender's idempotency key.
pub fn validate_client_msg_id(raw: &str) -> Result<(), ChatError> {
    let ok = !raw.is_empty()
        && raw.len() <= CLIENT_MSG_ID_MAX_BYTES
        && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(reject(
            ErrorCode::InvalidClientMsgId,
            format!("client_msg_id of {} bytes", raw.len()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: std::fmt::Debug>(r: Result<T, ChatError>) -> ErrorCode {
        r.unwrap_err().code()
    }

    #[test]
    fn username_accepts_scripts_and_punctuation() {
        assert_eq!(validate_username("alice").unwrap(), "alice");
        assert_eq!(validate_username("  bob_01 ").unwrap(), "bob_01");
        assert_eq!(validate_username("张伟").unwrap(), "张伟");
        assert_eq!(validate_username("a.b-c").unwrap(), "a.b-c");
    }

    #[test]
    fn username_rejects_bad_shapes() {
        assert_eq!(code(validate_username("a")), ErrorCode::InvalidUsername);
        assert_eq!(
            code(validate_username(&"x".repeat(33))),
            ErrorCode::InvalidUsername
        );
        assert_eq!(
            code(validate_username("_alice")),
            ErrorCode::InvalidUsername
        );
        assert_eq!(
            code(validate_username("al ice")),
            ErrorCode::InvalidUsername
        );
        assert_eq!(
            code(validate_username("al\u{200B}ice")),
            ErrorCode::InvalidUsername
        );
        assert_eq!(
            code(validate_username("\u{3164}\u{3164}")),
            ErrorCode::InvalidUsername
        );
        assert_eq!(
            code(validate_username("<b>x</b>")),
            ErrorCode::InvalidUsername
        );
    }

    #[test]
    fn fold_key_merges_case_and_width() {
        assert_eq!(fold_key("Alice"), fold_key("alice"));
        assert_eq!(fold_key("ＡＬＩＣＥ"), fold_key("alice"));
        assert_eq!(fold_key("ﬁsh"), fold_key("FISH"));
        assert_ne!(fold_key("alice"), fold_key("alicia"));
    }

    #[test]
    fn display_name_rules() {
        assert_eq!(validate_display_name(" 小明 ").unwrap(), "小明");
        assert_eq!(validate_display_name("Ann <3").unwrap(), "Ann <3");
        assert_eq!(
            code(validate_display_name("   ")),
            ErrorCode::InvalidDisplayName
        );
        assert_eq!(
            code(validate_display_name("\u{200B}\u{200D}")),
            ErrorCode::InvalidDisplayName
        );
        assert_eq!(
            code(validate_display_name("evil\u{202E}txt")),
            ErrorCode::InvalidDisplayName
        );
        assert_eq!(
            code(validate_display_name("a\nb")),
            ErrorCode::InvalidDisplayName
        );
        assert_eq!(
            code(validate_display_name(&"名".repeat(65))),
            ErrorCode::InvalidDisplayName
        );
    }

    #[test]
    fn password_length_only() {
        assert!(validate_password("12345678", PASSWORD_MIN_CHARS).is_ok());
        assert!(validate_password("密码密码密码密码", PASSWORD_MIN_CHARS).is_ok());
        assert_eq!(
            code(validate_password("1234567", PASSWORD_MIN_CHARS)),
            ErrorCode::InvalidPassword
        );
        assert_eq!(
            code(validate_password(&"p".repeat(129), PASSWORD_MIN_CHARS)),
            ErrorCode::InvalidPassword
        );
        assert!(validate_password("sesame", 6).is_ok());
    }

    #[test]
    fn room_name_rules() {
        assert_eq!(validate_room_name("#rust-lang").unwrap(), "rust-lang");
        assert_eq!(validate_room_name("闲聊").unwrap(), "闲聊");
        assert_eq!(code(validate_room_name("a b")), ErrorCode::InvalidRoomName);
        assert_eq!(code(validate_room_name("a,b")), ErrorCode::InvalidRoomName);
        assert_eq!(code(validate_room_name("")), ErrorCode::InvalidRoomName);
    }

    #[test]
    fn body_rules() {
        assert_eq!(validate_body("hi\r\nthere", 10).unwrap(), "hi\nthere");
        assert_eq!(
            validate_body("<script>alert(1)</script>", 100).unwrap(),
            "<script>alert(1)</script>"
        );
        assert_eq!(code(validate_body(" \n\t", 10)), ErrorCode::InvalidBody);
        assert_eq!(code(validate_body("a\u{0}b", 10)), ErrorCode::InvalidBody);
        assert_eq!(code(validate_body("abcdef", 5)), ErrorCode::BodyTooLong);
        assert!(validate_body("你好世界！", 5).is_ok());
    }

    #[test]
    fn client_msg_id_rules() {
        assert!(validate_client_msg_id("c-1700000000-1").is_ok());
        assert_eq!(
            code(validate_client_msg_id("")),
            ErrorCode::InvalidClientMsgId
        );
        assert_eq!(
            code(validate_client_msg_id("a b")),
            ErrorCode::InvalidClientMsgId
        );
        assert_eq!(
            code(validate_client_msg_id(&"x".repeat(65))),
            ErrorCode::InvalidClientMsgId
        );
    }
}
