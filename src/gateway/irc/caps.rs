//! IRCv3 capabilities the gateway offers (Capability Negotiation 3.2), and the set one
//! client has enabled.

use std::sync::atomic::{AtomicU32, Ordering};

/// A capability the gateway implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    AccountNotify,
    AccountTag,
    AwayNotify,
    Batch,
    CapNotify,
    Chathistory,
    EchoMessage,
    ExtendedJoin,
    LabeledResponse,
    MessageTags,
    Sasl,
    ServerTime,
}

impl Capability {
    /// Every capability, in the order `CAP LS` lists them.
    pub const ALL: [Capability; 12] = [
        Capability::AccountNotify,
        Capability::AccountTag,
        Capability::AwayNotify,
        Capability::Batch,
        Capability::CapNotify,
        Capability::Chathistory,
        Capability::EchoMessage,
        Capability::ExtendedJoin,
        Capability::LabeledResponse,
        Capability::MessageTags,
        Capability::Sasl,
        Capability::ServerTime,
    ];

    /// Returns the capability name.
    pub fn name(self) -> &'static str {
        match self {
            Capability::AccountNotify => "account-notify",
            Capability::AccountTag => "account-tag",
            Capability::AwayNotify => "away-notify",
            Capability::Batch => "batch",
            Capability::CapNotify => "cap-notify",
            Capability::Chathistory => "draft/chathistory",
            Capability::EchoMessage => "echo-message",
            Capability::ExtendedJoin => "extended-join",
            Capability::LabeledResponse => "labeled-response",
            Capability::MessageTags => "message-tags",
            Capability::Sasl => "sasl",
            Capability::ServerTime => "server-time",
        }
    }

    /// Returns the value advertised to `CAP LS 302` clients, if any.
    pub fn value(self) -> Option<&'static str> {
        match self {
            Capability::Sasl => Some("PLAIN"),
            _ => None,
        }
    }

    /// Finds a capability by name.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The capabilities one client has enabled; read by the sink on every event.
#[derive(Default)]
pub struct CapSet(AtomicU32);

impl CapSet {
    /// Reports whether `cap` is enabled.
    pub fn has(&self, cap: Capability) -> bool {
        self.0.load(Ordering::Acquire) & cap.bit() != 0
    }

    /// Enables or disables `cap`.
    pub fn set(&self, cap: Capability, enabled: bool) {
        if enabled {
            self.0.fetch_or(cap.bit(), Ordering::AcqRel);
        } else {
            self.0.fetch_and(!cap.bit(), Ordering::AcqRel);
        }
    }

    /// Returns the enabled capabilities' names, space-separated.
    pub fn names(&self) -> String {
        Capability::ALL
            .into_iter()
            .filter(|c| self.has(*c))
            .map(Capability::name)
            .collect::<Vec<_>>()
            .join(" ")
    }
}
