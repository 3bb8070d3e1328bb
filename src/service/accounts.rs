//! Accounts and sessions: registration, login, guests, logout, password and profile.

use super::{ChatService, ClientAddr, Session};
use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::event::{Event, UserUpdated};
use crate::core::i18n::Notice;
use crate::core::ids::UserId;
use crate::core::model::{AccountKind, MessageKind, User};
use crate::core::names;
use crate::core::role::Role;
use crate::core::time::now_millis;
use crate::hub::Outbound;
use crate::store::{NewMessage, NewUser, UserRow};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// A new session: the bearer token is shown to the client once and never stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoginResult {
    pub user: User,
    pub token: String,
    pub csrf_token: String,
    pub expires_at: i64,
    #[serde(skip)]
    pub session: Session,
}

/// Avatar image bytes and their media type.
pub struct Avatar {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

fn argon2(memory_kib: u32, passes: u32) -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(memory_kib, passes, 1, None)
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id on the blocking pool.
pub(super) async fn hash_password_with(
    password: &str,
    memory_kib: u32,
    passes: u32,
) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| anyhow::anyhow!("salt encoding failed: {e}"))?;
        let hash = argon2(memory_kib, passes)?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))?;
        Ok(hash.to_string())
    })
    .await?
}

/// Verifies a password against a PHC string on the blocking pool. The parameters come
/// from the stored string, so hashes made under older settings still verify.
async fn verify_password(password: &str, phc: &str) -> anyhow::Result<bool> {
    let password = password.to_owned();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash is invalid: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// Returns a new random token of 256 bits, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns the stored form of a bearer token.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl ChatService {
    async fn hash_password(&self, password: &str) -> ChatResult<String> {
        hash_password_with(
            password,
            self.config.argon2_memory_kib,
            self.config.argon2_passes,
        )
        .await
        .map_err(ChatError::Internal)
    }

    /// Starts a session for an account.
    async fn open_session(&self, row: &UserRow) -> ChatResult<LoginResult> {
        let now = now_millis();
        let ttl = match row.kind {
            AccountKind::Registered => self.config.session_ttl,
            AccountKind::Guest => self.config.guest_session_ttl,
        };
        let expires_at = now + ttl.as_millis() as i64;
        let token = random_token();
        let csrf_token = random_token();
        let stored = self
            .store
            .create_session(row.id, &token_hash(&token), &csrf_token, now, expires_at)
            .await?;
        let user = Self::public_user(row);
        Ok(LoginResult {
            session: Session {
                id: stored.id,
                user: user.clone(),
                csrf_token: csrf_token.clone(),
                expires_at,
            },
            user,
            token,
            csrf_token,
            expires_at,
        })
    }

    /// Adds a new account to the lobby, announcing it there.
    async fn join_lobby(&self, row: &UserRow) -> ChatResult<()> {
        let role = match row.kind {
            AccountKind::Registered => Role::Member,
            AccountKind::Guest => Role::Guest,
        };
        let event = NewMessage {
            room_id: self.lobby,
            kind: MessageKind::Join,
            author_id: Some(row.id),
            author_name: row.display_name.clone(),
            body: String::new(),
            target_id: None,
            target_name: None,
            client_msg_id: None,
            created_at: now_millis(),
        };
        if let Some(message) = self
            .store
            .add_member(self.lobby, row.id, role, event)
            .await?
        {
            let mut message = message;
            message.author_account = row.username.clone();
            self.after_commit(std::time::Instant::now(), message);
        }
        Ok(())
    }

    /// Registers an account and signs it in.
    pub async fn register(
        &self,
        addr: ClientAddr,
        username: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> ChatResult<LoginResult> {
        self.check_auth_limit(addr.0).await?;
        let _write = self.begin_write()?;

        let username = names::validate_username(username)?;
        names::validate_password(password, self.config.min_password_chars)?;
        let display_name = names::validate_display_name(display_name.unwrap_or(&username))?;
        let key = names::fold_key(&username);
        if self.store.user_by_username_key(&key).await?.is_some() {
            return Err(ChatError::new(
                ErrorCode::UsernameTaken,
                format!("username {username:?} is taken"),
            ));
        }

        let hash = self.hash_password(password).await?;
        let row = self
            .store
            .create_user(NewUser {
                username: Some(&username),
                username_key: Some(&key),
                display_name: &display_name,
                kind: AccountKind::Registered,
                password_hash: Some(&hash),
                created_at: now_millis(),
            })
            .await?;
        tracing::info!(user_id = %row.id, "account registered");
        self.join_lobby(&row).await?;
        self.open_session(&row).await
    }

    /// Signs in with a username and password. An unknown user and a wrong password give
    /// the same error after the same argon2 work.
    pub async fn login(
        &self,
        addr: ClientAddr,
        username: &str,
        password: &str,
    ) -> ChatResult<LoginResult> {
        self.check_auth_limit(addr.0).await?;
        let key = names::fold_key(username.trim());
        let row = self.store.user_by_username_key(&key).await?;
        let stored_hash = row
            .as_ref()
            .and_then(|r| r.password_hash.as_deref())
            .unwrap_or(&self.decoy_hash);
        let matches = verify_password(password, stored_hash)
            .await
            .map_err(ChatError::Internal)?;
        match row {
            Some(row) if matches && row.password_hash.is_some() => {
                let _write = self.begin_write()?;
                self.open_session(&row).await
            }
            _ => Err(ChatError::new(
                ErrorCode::BadCredentials,
                "unknown username or wrong password",
            )),
        }
    }

    /// Creates a guest account with a chosen nickname (or a generated one) and signs it in.
    /// A nickname equal to a registered username is rejected, so guests cannot pose as
    /// account holders.
    pub async fn guest_login(
        &self,
        addr: ClientAddr,
        nickname: Option<&str>,
    ) -> ChatResult<LoginResult> {
        if !self.config.allow_guests {
            return Err(ChatError::new(
                ErrorCode::GuestsDisabled,
                "guest sign-in refused",
            ));
        }
        self.check_auth_limit(addr.0).await?;
        let _write = self.begin_write()?;

        let nickname = match nickname {
            Some(n) => names::validate_display_name(n)?,
            None => {
                let mut suffix = [0u8; 2];
                rand::rng().fill_bytes(&mut suffix);
                format!("guest-{}", hex::encode(suffix))
            }
        };
        if self
            .store
            .user_by_username_key(&names::fold_key(&nickname))
            .await?
            .is_some()
        {
            return Err(ChatError::new(
                ErrorCode::NicknameTaken,
                format!("guest nickname {nickname:?} is a registered username"),
            ));
        }
        let row = self
            .store
            .create_user(NewUser {
                username: None,
                username_key: None,
                display_name: &nickname,
                kind: AccountKind::Guest,
                password_hash: None,
                created_at: now_millis(),
            })
            .await?;
        tracing::info!(user_id = %row.id, "guest signed in");
        self.join_lobby(&row).await?;
        self.open_session(&row).await
    }

    /// Resolves a bearer token to its live session.
    pub async fn authenticate(&self, token: &str) -> ChatResult<Session> {
        let unauthenticated =
            || ChatError::new(ErrorCode::Unauthenticated, "unknown or expired token");
        if token.is_empty() || token.len() > 128 {
            return Err(unauthenticated());
        }
        let (session, row) = self
            .store
            .session_and_user_by_token_hash(&token_hash(token), now_millis())
            .await?
            .ok_or_else(unauthenticated)?;
        Ok(Session {
            id: session.id,
            user: Self::public_user(&row),
            csrf_token: session.csrf_token,
            expires_at: session.expires_at,
        })
    }

    /// Ends a session and closes the connections that used it.
    pub async fn logout(&self, session: &Session) -> ChatResult<()> {
        self.store.delete_session(session.id).await?;
        self.hub.close_sessions(&[session.id], Notice::SessionEnded);
        tracing::info!(user_id = %session.user.id, session_id = %session.id, "logged out");
        Ok(())
    }

    /// Changes the password after checking the current one, and ends every other
    /// session of the account.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &str,
    ) -> ChatResult<()> {
        session.require_registered()?;
        names::validate_password(new, self.config.min_password_chars)?;
        // Limits guessing with a stolen session and the argon2 work one user can start.
        self.password_limit.check(&session.user_id())?;
        let row = self.user_row(session.user_id()).await?;
        let stored = row.password_hash.as_deref().unwrap_or(&self.decoy_hash);
        if !verify_password(current, stored)
            .await
            .map_err(ChatError::Internal)?
        {
            return Err(ChatError::new(
                ErrorCode::WrongPassword,
                "current password mismatch",
            ));
        }
        let _write = self.begin_write()?;
        let hash = self.hash_password(new).await?;
        self.store.set_password_hash(row.id, &hash).await?;
        let ended = self
            .store
            .delete_user_sessions(row.id, Some(session.id))
            .await?;
        self.hub.close_sessions(&ended, Notice::SessionEnded);
        tracing::info!(user_id = %row.id, ended = ended.len(), "password changed");
        Ok(())
    }

    /// Sets the display name and announces it to the user's rooms. Messages already sent
    /// keep the name they were sent under.
    pub async fn set_display_name(&self, session: &Session, name: &str) -> ChatResult<User> {
        let started = Instant::now();
        session.require_registered()?;
        let name = names::validate_display_name(name)?;
        let _write = self.begin_write()?;
        let previous = self.user_row(session.user_id()).await?.display_name;
        self.store
            .set_display_name(session.user_id(), &name)
            .await?;
        let user = Self::public_user(&self.user_row(session.user_id()).await?);
        if previous != user.display_name {
            self.announce_user(&previous, &user, started).await;
        }
        Ok(user)
    }

    /// Sends `user:updated` about a changed account to every room the user belongs to.
    /// The change is already stored, so a failure to list the rooms is logged, not
    /// returned: the user's rooms then see the change on their next member list.
    pub(super) async fn announce_user(
        &self,
        previous_display_name: &str,
        user: &User,
        started: Instant,
    ) {
        let rooms = match self.store.user_rooms(user.id).await {
            Ok(rooms) => rooms,
            Err(err) => {
                tracing::warn!(user_id = %user.id, error = %err, "user:updated not sent: listing the user's rooms failed");
                return;
            }
        };
        // Random rather than counted, so ids from different nodes do not collide.
        let change_id = rand::random::<u64>();
        for (room, _) in rooms {
            let event = Event::UserUpdated(UserUpdated {
                room_id: room.id,
                user: user.clone(),
                previous_display_name: previous_display_name.to_owned(),
                change_id,
            });
            self.hub.publish(room.id, Outbound::new(event, started));
        }
    }

    /// Returns an account by id.
    pub async fn user(&self, id: UserId) -> ChatResult<User> {
        Ok(Self::public_user(&self.user_row(id).await?))
    }

    /// Returns a registered account by username.
    pub async fn user_by_username(&self, username: &str) -> ChatResult<User> {
        let row = self
            .store
            .user_by_username_key(&names::fold_key(username.trim()))
            .await?
            .ok_or_else(|| {
                ChatError::new(ErrorCode::UserNotFound, format!("no user {username:?}"))
            })?;
        Ok(Self::public_user(&row))
    }

    /// Returns the caller's account as stored now. A session caches the account from
    /// its start, so names written into messages are read fresh here.
    pub(super) async fn current_user(&self, session: &Session) -> ChatResult<User> {
        self.user(session.user_id()).await
    }

    pub(super) async fn user_row(&self, id: UserId) -> ChatResult<UserRow> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or_else(|| ChatError::new(ErrorCode::UserNotFound, format!("no user {id}")))
    }
}
