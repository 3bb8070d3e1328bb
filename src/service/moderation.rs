//! Room moderation: bans, the moderated setting and the topic lock.

use super::{ChatService, Session};
use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::event::{Event, RoomRemoved};
use crate::core::ids::{RoomId, UserId};
use crate::core::model::{Ban, MessageKind, Room, RoomSetting, SettingsChange, Visibility};
use crate::core::names;
use crate::core::role::Role;
use crate::hub::Outbound;
use crate::store::NewBan;
use std::time::Instant;

/// New values for a room's settings. A `None` field leaves that setting as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoomSettings {
    pub moderated: Option<bool>,
    pub topic_locked: Option<bool>,
}

impl ChatService {
    /// Returns the caller's role in a room they moderate, or `Forbidden`. Direct rooms
    /// have no moderators.
    async fn moderator_role(&self, session: &Session, room_id: RoomId) -> ChatResult<(Room, Role)> {
        let access = self.access(session, room_id).await?;
        let role = access.member_role()?;
        if !role.is_moderator() || access.room.visibility == Visibility::Direct {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("{role:?} cannot moderate room {room_id}"),
            ));
        }
        Ok((access.room, role))
    }

    /// Bans a user from a room: the ban is stored, the user is removed from the room if
    /// a member (with a `ban` event that other members see) and loses any invitation.
    /// Afterwards they can neither join, be invited nor send there. Moderators may ban
    /// only roles below their own, never themselves nor the room's owner. Banning a user
    /// who is already banned changes nothing.
    pub async fn ban(
        &self,
        session: &Session,
        room_id: RoomId,
        target: UserId,
        reason: Option<&str>,
    ) -> ChatResult<()> {
        let started = Instant::now();
        let (room, role) = self.moderator_role(session, room_id).await?;
        if target == session.user_id() {
            return Err(ChatError::new(ErrorCode::Forbidden, "cannot ban oneself"));
        }
        let target_row = self.user_row(target).await?;
        // A non-member is judged by the role they would rejoin with: the recorded owner
        // regains ownership, everyone else comes back below any moderator.
        let target_role = match self.store.role_of(room_id, target).await? {
            Some(role) => role,
            None if room.owner_id == Some(target) => Role::Owner,
            None => Role::Member,
        };
        if !role.can_kick(target_role) {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("{role:?} cannot ban {target_role:?}"),
            ));
        }
        let reason = reason
            .map(names::normalize_leave_reason)
            .unwrap_or_default();

        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let mut event = self
            .system_event(room_id, MessageKind::Ban, session)
            .await?;
        event.target_id = Some(target);
        event.target_name = Some(target_row.display_name.clone());
        event.body = reason.clone();
        let ban = NewBan {
            room_id,
            user_id: target,
            banned_by: session.user_id(),
            reason: &reason,
            created_at: event.created_at,
        };
        let Some(message) = self.store.add_ban(ban, event).await? else {
            return Ok(());
        };
        self.after_commit(started, message);
        self.hub.unsubscribe_user(target, room_id);
        self.hub.send_to_user(
            target,
            Outbound::new(
                Event::RoomRemoved(RoomRemoved {
                    room_id,
                    reason: "banned",
                }),
                started,
            ),
        );
        tracing::info!(room_id = %room_id, user_id = %target, by = %session.user_id(), "user banned");
        Ok(())
    }

    /// Lifts a user's ban and stores an `unban` event in the room. Only moderators may do
    /// this. The user may then join or be invited again. A user who is not banned is
    /// `NotBanned`.
    pub async fn unban(
        &self,
        session: &Session,
        room_id: RoomId,
        target: UserId,
    ) -> ChatResult<()> {
        let started = Instant::now();
        self.moderator_role(session, room_id).await?;
        let target_row = self.user_row(target).await?;
        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let mut event = self
            .system_event(room_id, MessageKind::Unban, session)
            .await?;
        event.target_id = Some(target);
        event.target_name = Some(target_row.display_name.clone());
        let Some(message) = self.store.remove_ban(room_id, target, event).await? else {
            return Err(ChatError::new(
                ErrorCode::NotBanned,
                format!("user {target} is not banned from room {room_id}"),
            ));
        };
        self.after_commit(started, message);
        tracing::info!(room_id = %room_id, user_id = %target, by = %session.user_id(), "ban lifted");
        Ok(())
    }

    /// Lists a room's bans, oldest first, for moderators only.
    pub async fn bans(&self, session: &Session, room_id: RoomId) -> ChatResult<Vec<Ban>> {
        self.read_limit.check(&session.user_id())?;
        self.moderator_role(session, room_id).await?;
        let rows = self.store.bans(room_id).await?;
        Ok(rows
            .iter()
            .map(|row| Ban {
                room_id: row.room_id,
                user: Self::public_user(&row.user),
                banned_by: row.banned_by,
                banned_by_name: row.banned_by_name.clone(),
                reason: row.reason.clone(),
                created_at: row.created_at,
            })
            .collect())
    }

    /// Fails with `Banned` when the user is banned from the room.
    pub(super) async fn check_not_banned(&self, room_id: RoomId, user: UserId) -> ChatResult<()> {
        if self.store.is_banned(room_id, user).await? {
            return Err(ChatError::new(
                ErrorCode::Banned,
                format!("user {user} is banned from room {room_id}"),
            ));
        }
        Ok(())
    }

    /// Fails with `RoomModerated` when a member with `role` may not post in the room.
    pub(super) fn check_may_post(room: &Room, role: Role) -> ChatResult<()> {
        if room.moderated && !role.is_moderator() {
            return Err(ChatError::new(
                ErrorCode::RoomModerated,
                format!("room {} is moderated and {role:?} may not post", room.id),
            ));
        }
        Ok(())
    }

    /// Changes a room's settings, for moderators only. When something changed, a `settings`
    /// event listing the changes is stored and `room:updated` goes to the room's
    /// subscribers on every node. Returns the room as it is afterwards.
    pub async fn update_room_settings(
        &self,
        session: &Session,
        room_id: RoomId,
        settings: RoomSettings,
    ) -> ChatResult<Room> {
        let started = Instant::now();
        let (room, _) = self.moderator_role(session, room_id).await?;
        let moderated = settings.moderated.unwrap_or(room.moderated);
        let topic_locked = settings.topic_locked.unwrap_or(room.topic_locked);
        let mut changes = Vec::new();
        if moderated != room.moderated {
            changes.push(SettingsChange {
                setting: RoomSetting::Moderated,
                enabled: moderated,
            });
        }
        if topic_locked != room.topic_locked {
            changes.push(SettingsChange {
                setting: RoomSetting::TopicLocked,
                enabled: topic_locked,
            });
        }
        if changes.is_empty() {
            return Ok(room);
        }

        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let mut event = self
            .system_event(room_id, MessageKind::Settings, session)
            .await?;
        event.body = SettingsChange::encode(&changes);
        let message = self
            .store
            .set_room_settings(room_id, moderated, topic_locked, event)
            .await?;
        self.after_commit(started, message);
        let room = self.publish_room_updated(room_id, started).await?;
        tracing::info!(room_id = %room_id, by = %session.user_id(), moderated, topic_locked, "room settings changed");
        Ok(room)
    }
}
