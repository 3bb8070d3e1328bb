//! Away messages (IRC `AWAY`): kept per user in this node's memory and announced to the
//! user's rooms as `away` events. Presence (online or offline) is separate: a user with
//! no connection is offline, not away.

use super::{ChatService, Session};
use crate::core::error::ChatResult;
use crate::core::event::{AwayChange, Event};
use crate::core::ids::UserId;
use crate::hub::Outbound;
use std::time::Instant;

/// Maximum characters of an away message; longer ones are cut, as IRC servers cut them
/// to their AWAYLEN.
pub const AWAY_MAX_CHARS: usize = 300;

impl ChatService {
    /// Sets (`Some`) or clears (`None`) the caller's away message and announces the change
    /// to every room the caller belongs to. Control characters become spaces, and the
    /// message is cut to [`AWAY_MAX_CHARS`]. Returns the message as stored.
    ///
    /// NOTE: the message is kept on this node only. Other nodes relay the `away` events
    /// to their clients but return nothing from [`ChatService::away_message`] for this user.
    pub async fn set_away(
        &self,
        session: &Session,
        message: Option<&str>,
    ) -> ChatResult<Option<String>> {
        let started = Instant::now();
        let message = message
            .map(|m| {
                m.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(AWAY_MAX_CHARS)
                    .collect::<String>()
            })
            .filter(|m| !m.trim().is_empty());
        let user_id = session.user_id();
        let changed = {
            let mut away = self.away.lock().unwrap_or_else(|e| e.into_inner());
            let previous = match &message {
                Some(text) => away.insert(user_id, text.clone()),
                None => away.remove(&user_id),
            };
            previous != message
        };
        if !changed {
            return Ok(message);
        }

        let rooms = self.store.user_rooms(user_id).await?;
        let display_name = self.current_user(session).await?.display_name;
        // Random rather than counted, so ids from different nodes do not collide.
        let change_id = rand::random::<u64>();
        for (room, _) in rooms {
            self.hub.publish(
                room.id,
                Outbound::new(
                    Event::Away(AwayChange {
                        room_id: room.id,
                        user_id,
                        display_name: display_name.clone(),
                        message: message.clone(),
                        change_id,
                    }),
                    started,
                ),
            );
        }
        Ok(message)
    }

    /// Returns a user's away message, if the user set one on this node.
    pub fn away_message(&self, user: UserId) -> Option<String> {
        self.away
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .cloned()
    }

    /// Clears the away message of a user who has no connection left on this node, so a
    /// user who comes back is not shown as away. Peers already saw the user leave, so
    /// nothing is announced.
    pub fn forget_away_if_offline(&self, user: UserId) {
        if self.hub.is_online(user) {
            return;
        }
        self.away
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user);
    }
}
