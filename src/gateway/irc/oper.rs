//! `OPER` and user modes. Operator blocks come from `--irc-oper`, and the service checks
//! them. Operator status grants no powers (see `crate::service::OperatorCheck`), so it is
//! only shown: user mode `+o`, WHOIS 313 and `*` in WHO flags.

use super::conn::Connection;
use super::names::channel_key;
use super::numerics::*;
use super::sink::{ClientView, user_source};
use crate::core::ids::UserId;
use crate::service::OperatorCheck;
use std::collections::HashMap;
use std::sync::Mutex;

/// Users with at least one operator connection on this node, with a count per user.
#[derive(Default)]
pub(crate) struct OperatorTable(Mutex<HashMap<UserId, usize>>);

impl OperatorTable {
    /// Records one more operator connection of `user`.
    pub fn add(&self, user: UserId) {
        *self.lock().entry(user).or_insert(0) += 1;
    }

    /// Records that one operator connection of `user` ended or dropped `+o`.
    pub fn release(&self, user: UserId) {
        let mut table = self.lock();
        if let Some(count) = table.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                table.remove(&user);
            }
        }
    }

    /// Reports whether `user` has an operator connection on this node.
    pub fn contains(&self, user: UserId) -> bool {
        self.lock().contains_key(&user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Connection {
    /// Handles `OPER name password` (RFC 2812 section 3.1.4): 381 and `MODE +o` on
    /// success, 464 for a wrong password, 491 when no operator block has that name.
    pub(super) async fn oper(&mut self, name: &str, password: &str) {
        let (Some(view), Some(session)) = (self.view.clone(), self.session.clone()) else {
            return;
        };
        let checked = self
            .shared
            .service
            .check_operator(&session, name, password)
            .await;
        match checked {
            Ok(OperatorCheck::Granted) => {
                if !self.operator {
                    self.operator = true;
                    self.shared.operators.add(view.user_id);
                }
                self.numeric(RPL_YOUREOPER, &["You are now an IRC operator"]);
                let nick = view.nick();
                let source = user_source(&nick, view.user_id);
                self.emit(format!(":{source} MODE {nick} +o\r\n"));
            }
            Ok(OperatorCheck::WrongPassword) => {
                self.numeric(ERR_PASSWDMISMATCH, &["Password incorrect"])
            }
            Ok(OperatorCheck::NoBlock) => {
                self.numeric(ERR_NOOPERHOST, &["No O-lines for your host"])
            }
            Err(err) => {
                let text = self.error_text(&err);
                self.numeric(ERR_PASSWDMISMATCH, &[text]);
            }
        }
    }

    /// Handles `MODE nick [changes]`: `i` is always set, `o` shows operator status and
    /// may be removed (`-o`) but only `OPER` sets it.
    pub(super) fn user_mode(&mut self, view: &ClientView, params: &[String]) {
        let nick = view.nick();
        if channel_key(&params[0]) != channel_key(&nick) {
            self.numeric(ERR_USERSDONTMATCH, &["Cannot change mode for other users"]);
            return;
        }
        let Some(changes) = params.get(1) else {
            let modes = if self.operator { "+io" } else { "+i" };
            self.numeric(RPL_UMODEIS, &[modes]);
            return;
        };
        if changes.chars().any(|c| !matches!(c, '+' | '-' | 'i' | 'o')) {
            self.numeric(ERR_UMODEUNKNOWNFLAG, &["Unknown MODE flag"]);
            return;
        }
        let mut adding = true;
        for c in changes.chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'o' if !adding && self.operator => {
                    self.operator = false;
                    self.shared.operators.release(view.user_id);
                    let source = user_source(&nick, view.user_id);
                    self.emit(format!(":{source} MODE {nick} -o\r\n"));
                }
                _ => {}
            }
        }
    }
}
