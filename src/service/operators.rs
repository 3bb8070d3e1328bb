//! Server operators (IRC `OPER`): named password blocks from the server configuration.
//!
//! Operator status grants no power over other users. Confab's rules (who may speak,
//! join or moderate a room) are enforced per room by the service on every protocol, and
//! there is no server-wide role in them that the Socket.IO and REST gateways could honour.
//! An IRC operator is therefore only shown as one (user mode `+o`, WHOIS 313).

use super::{ChatService, Session};
use crate::core::error::{ChatError, ChatResult};
use argon2::{Argon2, PasswordHash, PasswordVerifier};

/// One operator block: a name and the argon2 PHC string of its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorBlock {
    pub name: String,
    pub password_hash: String,
}

impl OperatorBlock {
    /// Parses `NAME:PHC`, where PHC is an argon2 hash such as `confab hash-password`
    /// prints.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((name, hash)) = text.split_once(':') else {
            return Err(format!(
                "{text:?} is not NAME:PASSWORD_HASH; create the hash with `confab hash-password`"
            ));
        };
        if name.is_empty() || name.contains([' ', ',', '\r', '\n']) {
            return Err(format!(
                "operator name {name:?} is empty or contains a space, comma or line break"
            ));
        }
        let parsed = PasswordHash::new(hash)
            .map_err(|e| format!("password hash of operator {name:?} is not a PHC string: {e}"))?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "password hash of operator {name:?} uses {}, expected argon2",
                parsed.algorithm
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            password_hash: hash.to_owned(),
        })
    }
}

/// Result of an operator sign-in attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorCheck {
    /// The name and password match a block.
    Granted,
    /// A block has this name, but the password is wrong.
    WrongPassword,
    /// No block has this name.
    NoBlock,
}

impl ChatService {
    /// Checks an operator name and password against the configured blocks. Attempts
    /// count against the same per-user budget as password checks with a live session.
    pub async fn check_operator(
        &self,
        session: &Session,
        name: &str,
        password: &str,
    ) -> ChatResult<OperatorCheck> {
        self.password_limit.check(&session.user_id())?;
        let Some(block) = self.config.operators.iter().find(|b| b.name == name) else {
            return Ok(OperatorCheck::NoBlock);
        };
        let hash = block.password_hash.clone();
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| ChatError::Internal(anyhow::anyhow!("operator check failed: {e}")))?;
        if matches {
            tracing::info!(user_id = %session.user_id(), operator = name, "operator sign-in");
            Ok(OperatorCheck::Granted)
        } else {
            tracing::warn!(user_id = %session.user_id(), operator = name, "operator password rejected");
            Ok(OperatorCheck::WrongPassword)
        }
    }
}
