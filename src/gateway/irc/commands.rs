//! The command table: each command's minimum parameter count, whether it is allowed
//! before registration completes, and its maximum number of comma-separated targets.
//! The connection checks these once, before any handler runs.

/// A command the gateway handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandId {
    Authenticate,
    Away,
    Capability,
    Chathistory,
    Invite,
    Join,
    Kick,
    List,
    Lusers,
    Mode,
    Motd,
    Names,
    Nick,
    Notice,
    Oper,
    Part,
    Pass,
    Ping,
    Pong,
    Privmsg,
    Quit,
    Tagmsg,
    Topic,
    User,
    Who,
    Whois,
}

/// One row of the table.
pub struct CommandSpec {
    pub name: &'static str,
    pub id: CommandId,
    /// Parameters the command needs; fewer get 461 ERR_NEEDMOREPARAMS. Commands with
    /// their own "missing parameter" numeric (NICK, PRIVMSG, NOTICE) have 0 here.
    pub min_params: usize,
    /// Whether the command is accepted before registration (RFC 2812 section 3.1).
    pub before_registration: bool,
    /// Maximum comma-separated targets in the first parameter, advertised as TARGMAX;
    /// `None` when the command takes no target list.
    pub max_targets: Option<usize>,
}

const fn spec(
    name: &'static str,
    id: CommandId,
    min_params: usize,
    before_registration: bool,
    max_targets: Option<usize>,
) -> CommandSpec {
    CommandSpec {
        name,
        id,
        min_params,
        before_registration,
        max_targets,
    }
}

/// Every command the gateway handles. Anything else gets 421 ERR_UNKNOWNCOMMAND.
pub const COMMANDS: &[CommandSpec] = &[
    spec("AUTHENTICATE", CommandId::Authenticate, 1, true, None),
    spec("AWAY", CommandId::Away, 0, false, None),
    spec("CAP", CommandId::Capability, 1, true, None),
    spec("CHATHISTORY", CommandId::Chathistory, 4, false, None),
    spec("INVITE", CommandId::Invite, 2, false, None),
    spec("JOIN", CommandId::Join, 1, false, Some(10)),
    spec("KICK", CommandId::Kick, 2, false, Some(1)),
    spec("LIST", CommandId::List, 0, false, None),
    spec("LUSERS", CommandId::Lusers, 0, false, None),
    spec("MODE", CommandId::Mode, 1, false, None),
    spec("MOTD", CommandId::Motd, 0, false, None),
    spec("NAMES", CommandId::Names, 0, false, Some(1)),
    spec("NICK", CommandId::Nick, 0, true, None),
    spec("NOTICE", CommandId::Notice, 0, false, Some(4)),
    spec("OPER", CommandId::Oper, 2, false, None),
    spec("PART", CommandId::Part, 1, false, Some(10)),
    spec("PASS", CommandId::Pass, 1, true, None),
    spec("PING", CommandId::Ping, 1, true, None),
    spec("PONG", CommandId::Pong, 0, true, None),
    spec("PRIVMSG", CommandId::Privmsg, 0, false, Some(4)),
    spec("QUIT", CommandId::Quit, 0, true, None),
    spec("TAGMSG", CommandId::Tagmsg, 1, false, Some(4)),
    spec("TOPIC", CommandId::Topic, 1, false, None),
    spec("USER", CommandId::User, 4, true, None),
    spec("WHO", CommandId::Who, 0, false, None),
    spec("WHOIS", CommandId::Whois, 1, false, None),
];

/// Finds a command by its upper-case name.
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Returns the ISUPPORT TARGMAX value built from the table.
pub fn targmax() -> String {
    COMMANDS
        .iter()
        .filter_map(|c| c.max_targets.map(|n| format!("{}:{n}", c.name)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_unique_and_upper_case() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.name, spec.name.to_ascii_uppercase());
            assert!(
                COMMANDS[i + 1..]
                    .iter()
                    .all(|other| other.name != spec.name),
                "{} twice",
                spec.name
            );
        }
    }

    #[test]
    fn registration_commands_are_allowed_early() {
        for name in [
            "CAP",
            "NICK",
            "USER",
            "PASS",
            "AUTHENTICATE",
            "PING",
            "QUIT",
        ] {
            assert!(find(name).unwrap().before_registration, "{name}");
        }
        for name in ["JOIN", "PRIVMSG", "TOPIC"] {
            assert!(!find(name).unwrap().before_registration, "{name}");
        }
    }

    #[test]
    fn targmax_lists_target_commands() {
        let value = targmax();
        assert!(value.contains("PRIVMSG:4"), "{value}");
        assert!(value.contains("JOIN:10"), "{value}");
    }
}
