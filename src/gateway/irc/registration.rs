//! Connection registration (RFC 2812 section 3.1): CAP negotiation, NICK, USER, PASS
//! and SASL PLAIN, then the welcome burst.

use super::NickOwner;
use super::caps::{CapSet, Capability};
use super::conn::{Connection, SaslState};
use super::names::{is_valid_nick, nick_from_display_name};
use super::numerics::*;
use super::sink::{ClientView, IrcSink, user_source};
use crate::core::error::ErrorCode;
use crate::core::model::Visibility;
use crate::service::Session;
use base64::Engine as _;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// Size of an AUTHENTICATE chunk; a chunk of exactly this size means more follow.
const SASL_CHUNK_BYTES: usize = 400;
/// Maximum base64 bytes of one SASL response, longer ones get 905 ERR_SASLTOOLONG.
const SASL_MAX_BYTES: usize = 4 * SASL_CHUNK_BYTES;

impl Connection {
    /// Handles `CAP LS`, `LIST`, `REQ` and `END` (IRCv3 Capability Negotiation).
    pub(super) async fn cap(&mut self, params: &[String]) {
        let sub = params[0].to_ascii_uppercase();
        let nick = self.current_nick();
        let registered = self.view.is_some();
        match sub.as_str() {
            "LS" => {
                if !registered {
                    self.cap_negotiating = true;
                }
                let version: u32 = params.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                if version >= 302 {
                    // Version 302 enables cap-notify implicitly.
                    self.caps().set(Capability::CapNotify, true);
                }
                let list: Vec<String> = Capability::ALL
                    .into_iter()
                    .map(|cap| match cap.value().filter(|_| version >= 302) {
                        Some(value) => format!("{}={value}", cap.name()),
                        None => cap.name().to_owned(),
                    })
                    .collect();
                let line = self.server_line("CAP", &[&nick, "LS", &list.join(" ")]);
                self.emit(line);
            }
            "LIST" => {
                let names = self.caps().names();
                let line = self.server_line("CAP", &[&nick, "LIST", &names]);
                self.emit(line);
            }
            "REQ" => {
                if !registered {
                    self.cap_negotiating = true;
                }
                let requested = params.get(1).map_or("", String::as_str);
                let mut changes = Vec::new();
                for word in requested.split(' ').filter(|w| !w.is_empty()) {
                    let (name, enable) = match word.strip_prefix('-') {
                        Some(name) => (name, false),
                        None => (word, true),
                    };
                    match Capability::parse(name) {
                        Some(cap) => changes.push((cap, enable)),
                        None => {
                            changes.clear();
                            break;
                        }
                    }
                }
                // A request is applied whole or not at all.
                let verb = if changes.is_empty() { "NAK" } else { "ACK" };
                for (cap, enable) in changes {
                    self.caps().set(cap, enable);
                }
                let line = self.server_line("CAP", &[&nick, verb, requested]);
                self.emit(line);
            }
            "END" => {
                if !registered {
                    self.cap_negotiating = false;
                    self.try_register().await;
                }
            }
            _ => self.numeric("410", &[&params[0], "Invalid CAP command"]),
        }
    }

    /// Handles `PASS`: an account password, as `password` (the account is the nickname)
    /// or `account:password`.
    pub(super) fn pass_command(&mut self, password: &str) {
        if self.view.is_some() {
            self.numeric(ERR_ALREADYREGISTERED, &["You may not reregister"]);
            return;
        }
        self.pass = Some(password.to_owned());
    }

    /// Handles `USER <user> <mode> <unused> <realname>`.
    pub(super) async fn user_command(&mut self, params: &[String]) {
        if self.view.is_some() {
            self.numeric(ERR_ALREADYREGISTERED, &["You may not reregister"]);
            return;
        }
        // An empty user name or real name counts as missing (Modern IRC, USER).
        if params[0].is_empty() || params[3].is_empty() {
            self.numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"]);
            return;
        }
        self.user = Some((params[0].clone(), params[3].clone()));
        self.try_register().await;
    }

    /// Handles `NICK`: before registration it reserves the nickname; afterwards it
    /// changes a registered user's display name, which is what the nickname shows.
    pub(super) async fn nick_command(&mut self, nick: Option<&String>) {
        let Some(nick) = nick.filter(|n| !n.is_empty()) else {
            self.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
            return;
        };
        if !is_valid_nick(nick, self.shared.settings.nick_max_chars) {
            self.numeric(ERR_ERRONEUSNICKNAME, &[nick, "Erroneous nickname"]);
            return;
        }
        let Some(view) = self.view.clone() else {
            let owner = NickOwner::Connection(self.serial);
            if !self.shared.nicks.claim(nick, owner) {
                self.numeric(ERR_NICKNAMEINUSE, &[nick, "Nickname is already in use"]);
                return;
            }
            if let Some(old) = self.nick.replace(nick.clone())
                && super::names::nick_key(&old) != super::names::nick_key(nick)
            {
                self.shared.nicks.release(&old, owner);
            }
            self.try_register().await;
            return;
        };

        let old = view.nick();
        if old == *nick {
            return;
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        if session.user.is_guest() {
            self.numeric(
                ERR_NONICKCHANGE,
                &[nick, "Guests keep the nickname they signed in with"],
            );
            return;
        }
        let owner = NickOwner::User(view.user_id);
        if !self.shared.nicks.claim(nick, owner) {
            self.numeric(ERR_NICKNAMEINUSE, &[nick, "Nickname is already in use"]);
            return;
        }
        match self.shared.service.set_display_name(&session, nick).await {
            Ok(_) => {
                let mut current = view.nick.write().unwrap_or_else(|e| e.into_inner());
                if *current == *nick {
                    // The change's `user:updated` event renamed this connection first: it
                    // moved the claim from the old nickname and sent the NICK line, so
                    // only the claim taken above is left to give back.
                    drop(current);
                    self.shared.nicks.release(nick, owner);
                } else {
                    *current = nick.clone();
                    drop(current);
                    // Also right when only the case changed: the claim above counted the
                    // same key once more.
                    self.shared.nicks.release(&old, owner);
                    let line = format!(":{} NICK {nick}\r\n", user_source(&old, view.user_id));
                    self.emit(line);
                }
            }
            Err(err) => {
                self.shared.nicks.release(nick, owner);
                let text = self.error_text(&err);
                self.numeric(ERR_ERRONEUSNICKNAME, &[nick, text]);
            }
        }
    }

    /// Handles `AUTHENTICATE` for the PLAIN mechanism (RFC 4616 inside IRCv3 SASL 3.1):
    /// chunked base64 of 400 bytes, `+` for an empty chunk, `*` to abort.
    pub(super) async fn authenticate(&mut self, param: &str) {
        if self.view.is_some() || self.sasl_session.is_some() {
            self.numeric(
                ERR_SASLALREADY,
                &["You have already authenticated using SASL"],
            );
            return;
        }
        if param == "*" {
            self.sasl = SaslState::Idle;
            self.numeric(ERR_SASLABORTED, &["SASL authentication aborted"]);
            return;
        }
        let buffer = match &mut self.sasl {
            SaslState::Idle => {
                if param.eq_ignore_ascii_case("PLAIN") {
                    self.sasl = SaslState::Plain(String::new());
                    self.emit("AUTHENTICATE +\r\n".to_owned());
                } else {
                    self.numeric(RPL_SASLMECHS, &["PLAIN", "are available SASL mechanisms"]);
                    self.numeric(ERR_SASLFAIL, &["SASL authentication failed"]);
                }
                return;
            }
            SaslState::Plain(buffer) => buffer,
        };
        if param.len() > SASL_CHUNK_BYTES || buffer.len() + param.len() > SASL_MAX_BYTES {
            self.sasl = SaslState::Idle;
            self.numeric(ERR_SASLTOOLONG, &["SASL message too long"]);
            return;
        }
        if param != "+" {
            buffer.push_str(param);
        }
        if param.len() == SASL_CHUNK_BYTES {
            return;
        }
        let encoded = std::mem::take(buffer);
        self.sasl = SaslState::Idle;

        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(decoded) = decoded else {
            self.numeric(
                ERR_SASLFAIL,
                &["SASL authentication failed: invalid base64"],
            );
            return;
        };
        let parts: Vec<&str> = decoded.split('\0').collect();
        let [authzid, authcid, password] = parts[..] else {
            self.numeric(
                ERR_SASLFAIL,
                &["SASL authentication failed: malformed PLAIN"],
            );
            return;
        };
        if !authzid.is_empty() && authzid != authcid {
            self.numeric(
                ERR_SASLFAIL,
                &["SASL authentication failed: authzid differs"],
            );
            return;
        }
        match self
            .shared
            .service
            .login(self.addr(), authcid, password)
            .await
        {
            Ok(login) => {
                let account = login.user.username.clone().unwrap_or_default();
                let source = user_source(&self.current_nick(), login.user.id);
                let text = format!("You are now logged in as {account}");
                self.numeric(RPL_LOGGEDIN, &[&source, &account, &text]);
                self.numeric(RPL_SASLSUCCESS, &["SASL authentication successful"]);
                self.sasl_session = Some(login.session);
            }
            Err(err) => {
                let text = format!("SASL authentication failed: {}", self.error_text(&err));
                self.numeric(ERR_SASLFAIL, &[&text]);
            }
        }
    }

    /// Completes registration once NICK and USER arrived and CAP negotiation ended: signs
    /// in by SASL, PASS or as a guest, then sends the welcome burst.
    pub(super) async fn try_register(&mut self) {
        if self.view.is_some() || self.cap_negotiating || self.user.is_none() {
            return;
        }
        let Some(requested) = self.nick.clone() else {
            return;
        };
        let service = self.shared.service.clone();

        // Sign in: SASL, then PASS, then a guest under the requested nickname.
        let session = if let Some(session) = self.sasl_session.take() {
            session
        } else if let Some(pass) = self.pass.take() {
            let (account, password) = match pass.split_once(':') {
                Some((account, password)) if !account.is_empty() => {
                    (account.to_owned(), password.to_owned())
                }
                _ => (requested.clone(), pass.clone()),
            };
            match service.login(self.addr(), &account, &password).await {
                Ok(login) => login.session,
                Err(err) => {
                    let text = self.error_text(&err);
                    self.numeric(ERR_PASSWDMISMATCH, &[text]);
                    self.queue.close("Bad password");
                    return;
                }
            }
        } else {
            match service.guest_login(self.addr(), Some(&requested)).await {
                Ok(login) => login.session,
                Err(err) if err.code() == ErrorCode::NicknameTaken => {
                    // The nickname is a registered account's: ask for another one.
                    self.numeric(
                        ERR_NICKNAMEINUSE,
                        &[&requested, "Nickname belongs to a registered account"],
                    );
                    return;
                }
                Err(err) if err.code() == ErrorCode::InvalidDisplayName => {
                    self.numeric(ERR_ERRONEUSNICKNAME, &[&requested, "Erroneous nickname"]);
                    return;
                }
                Err(err) => {
                    let text = self.error_text(&err).to_owned();
                    self.numeric(ERR_PASSWDMISMATCH, &[&text]);
                    self.queue.close(&text);
                    return;
                }
            }
        };
        self.finish_registration(session, requested);
        self.follow_direct_rooms().await;
    }

    fn finish_registration(&mut self, session: Session, requested: String) {
        let user_id = session.user_id();
        let owner = NickOwner::User(user_id);
        let pending = NickOwner::Connection(self.serial);

        // The nickname shows the display name, so messages from this user carry it on
        // every protocol. If another user has it on this node, the user id makes it unique.
        let mut nick = nick_from_display_name(&session.user.display_name);
        if !self.shared.nicks.transfer(&nick, pending, owner) {
            nick = format!("{nick}-{user_id}");
            self.shared.nicks.claim(&nick, owner);
        }
        if super::names::nick_key(&nick) != super::names::nick_key(&requested) {
            self.shared.nicks.release(&requested, pending);
        }
        self.nick = None;

        let caps = CapSet::default();
        for cap in Capability::ALL {
            caps.set(cap, self.early_caps.has(cap));
        }
        let view = Arc::new(ClientView {
            user_id,
            account: session.user.username.clone(),
            real_name: session.user.display_name.clone(),
            nick: RwLock::new(nick.clone()),
            caps,
            channels: Mutex::new(HashMap::new()),
            echo_labels: Mutex::new(HashMap::new()),
            directs: Mutex::new(HashMap::new()),
            part_reasons: Mutex::new(HashMap::new()),
            quit_users: Mutex::new(HashSet::new()),
            away_seen: Mutex::new(HashMap::new()),
            renames_seen: Mutex::new(HashMap::new()),
            echo_sent: tokio::sync::Notify::new(),
        });
        self.view = Some(view.clone());
        let sink = Arc::new(IrcSink {
            queue: self.queue.clone(),
            view,
            server_name: self.shared.settings.server_name.clone(),
            service: self.shared.service.clone(),
            shared: self.shared.clone(),
        });
        self.conn_id = Some(self.shared.service.hub().connect(user_id, session.id, sink));
        tracing::info!(peer = %self.peer, %user_id, nick, "IRC client registered");
        self.session = Some(session);
        self.welcome(&nick);
    }

    /// Subscribes this connection to the user's direct rooms, so messages that other
    /// users send there arrive as private messages.
    async fn follow_direct_rooms(&mut self) {
        let (Some(view), Some(session), Some(conn_id)) =
            (self.view.clone(), self.session.clone(), self.conn_id)
        else {
            return;
        };
        let service = self.shared.service.clone();
        let entries = match service.list_rooms(&session).await {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(peer = %self.peer, user_id = %view.user_id, error = %err,
                    "listing direct rooms for a new IRC connection failed");
                return;
            }
        };
        for entry in entries {
            if entry.room.visibility != Visibility::Direct || entry.role.is_none() {
                continue;
            }
            match entry.peer {
                Some(peer) => {
                    view.set_direct_peer(entry.room.id, nick_from_display_name(&peer.display_name))
                }
                None => view.add_direct(entry.room.id),
            }
            service.hub().subscribe(conn_id, entry.room.id);
        }
    }

    /// Sends 001 to 005, LUSERS and the MOTD reply (RFC 2812 section 5.1).
    fn welcome(&mut self, nick: &str) {
        let settings = self.shared.settings.clone();
        let server = settings.server_name.as_str();
        let version = concat!("confab-", env!("CARGO_PKG_VERSION"));
        self.numeric(
            RPL_WELCOME,
            &[&format!("Welcome to the Confab IRC gateway, {nick}")],
        );
        self.numeric(
            RPL_YOURHOST,
            &[&format!("Your host is {server}, running version {version}")],
        );
        self.numeric(
            RPL_CREATED,
            &[&format!(
                "This server was started {}",
                self.shared.started_at
            )],
        );
        self.numeric(RPL_MYINFO, &[server, version, "i", "bimot", "bo"]);
        let tokens = super::isupport_tokens(&settings);
        for chunk in tokens.chunks(12) {
            let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
            params.push("are supported by this server");
            self.numeric(RPL_ISUPPORT, &params);
        }
        self.lusers();
        self.motd();
    }
}
