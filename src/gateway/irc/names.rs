//! Nicknames and channel names on IRC. Nicknames are display names: a guest's nickname
//! is the nickname it chose, and a registered user's nickname is derived from the display
//! name that web and Socket.IO clients show. Names compare by Confab's folding (NFKC,
//! lowercase, NFKC), the same as usernames and room names over REST and Socket.IO.

use crate::core::names;

/// Characters that cannot appear in a nickname: they separate parameters, sources and
/// target lists, or are masks (RFC 2812 section 2.3.1).
const NICK_FORBIDDEN: &[char] = &[' ', ',', '*', '?', '!', '@', '\r', '\n', '\0'];
/// Characters that cannot start a nickname: channel prefixes, the trailing marker and
/// the server-mask prefix.
const NICK_FORBIDDEN_FIRST: &[char] = &['#', '&', ':', '$', '+', '~', '%'];

/// Returns the comparison key of a nickname.
pub fn nick_key(nick: &str) -> String {
    names::fold_key(nick)
}

/// Returns the comparison key of a channel name, which is the room name's key.
pub fn channel_key(channel: &str) -> String {
    names::fold_key(channel.strip_prefix('#').unwrap_or(channel))
}

/// Derives the nickname shown on IRC for a display name: each forbidden character
/// becomes '_', and a forbidden first character gets a '_' before it.
pub fn nick_from_display_name(display_name: &str) -> String {
    let mut nick: String = display_name
        .chars()
        .map(|c| if NICK_FORBIDDEN.contains(&c) { '_' } else { c })
        .collect();
    if nick.starts_with(NICK_FORBIDDEN_FIRST) || nick.is_empty() {
        nick.insert(0, '_');
    }
    nick
}

/// Checks a nickname a client asked for: a valid display name of at most `max_chars`
/// characters that IRC can carry unchanged.
pub fn is_valid_nick(nick: &str, max_chars: usize) -> bool {
    let count = nick.chars().count();
    if count == 0 || count > max_chars {
        return false;
    }
    if nick_from_display_name(nick) != nick {
        return false;
    }
    matches!(names::validate_display_name(nick), Ok(valid) if valid == nick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_map_to_nicks() {
        assert_eq!(nick_from_display_name("Alice Smith"), "Alice_Smith");
        assert_eq!(nick_from_display_name("#chan"), "_#chan");
        assert_eq!(nick_from_display_name("小明"), "小明");
        assert_eq!(nick_from_display_name("a!b@c"), "a_b_c");
    }

    #[test]
    fn nick_validity() {
        assert!(is_valid_nick("alice", 30));
        assert!(is_valid_nick("小明", 30));
        assert!(is_valid_nick("[bot]`^{}|", 30));
        assert!(!is_valid_nick("a b", 30));
        assert!(!is_valid_nick("#a", 30));
        assert!(!is_valid_nick(":a", 30));
        assert!(!is_valid_nick("a,b", 30));
        assert!(!is_valid_nick("", 30));
        assert!(!is_valid_nick(&"x".repeat(31), 30));
        assert!(!is_valid_nick("a\u{202e}b", 30));
    }

    #[test]
    fn keys_fold_case_and_width() {
        assert_eq!(nick_key("ALICE"), nick_key("alice"));
        assert_eq!(nick_key("ＡＬＩＣＥ"), nick_key("alice"));
        assert_eq!(channel_key("#Lobby"), channel_key("lobby"));
    }
}
