//! Rooms: creation, listing, membership, invitations, roles, topics and direct rooms.

use super::{ChatService, Session};
use crate::core::error::{ChatError, ChatResult, ErrorCode};
use crate::core::event::{Event, RoomRemoved};
use crate::core::ids::{RoomId, UserId};
use crate::core::model::{Member, MessageKind, Room, RoomEntry, User, Visibility};
use crate::core::names;
use crate::core::role::Role;
use crate::core::time::now_millis;
use crate::hub::Outbound;
use crate::store::{NewMessage, NewRoom};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Instant;

/// Most public rooms returned by one listing.
const PUBLIC_ROOM_LIST_MAX: i64 = 500;

/// A room named by id or by name, as clients may do either.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RoomRef {
    Id(RoomId),
    Name(String),
}

/// Proof that the caller may read a room, with the caller's role if a member. Handed out
/// only by [`ChatService::access`], so holding one means the check ran.
pub(super) struct RoomAccess {
    pub room: Room,
    pub role: Option<Role>,
}

impl RoomAccess {
    /// Returns the member's role, or `NotMember`.
    pub fn member_role(&self) -> ChatResult<Role> {
        self.role.ok_or_else(|| {
            ChatError::new(
                ErrorCode::NotMember,
                format!("not a member of room {}", self.room.id),
            )
        })
    }
}

impl ChatService {
    /// Finds a room by id or name.
    pub async fn find_room(&self, room: &RoomRef) -> ChatResult<Room> {
        let found = match room {
            RoomRef::Id(id) => self.store.room_by_id(*id).await?,
            RoomRef::Name(name) => {
                let key = names::fold_key(name.trim().trim_start_matches('#'));
                self.store.room_by_name_key(&key).await?
            }
        };
        // One detail for missing and hidden rooms, so it never reveals that a room exists.
        found.ok_or_else(|| ChatError::new(ErrorCode::RoomNotFound, "no such room"))
    }

    /// Checks that the caller may read a room: members always, anyone signed in for
    /// public rooms. Private and direct rooms look the same as missing ones to outsiders,
    /// so their existence does not leak.
    pub(super) async fn access(
        &self,
        session: &Session,
        room_id: RoomId,
    ) -> ChatResult<RoomAccess> {
        let not_found = || ChatError::new(ErrorCode::RoomNotFound, "no such room");
        let room = self
            .store
            .room_by_id(room_id)
            .await?
            .ok_or_else(not_found)?;
        let role = self.store.role_of(room_id, session.user_id()).await?;
        if role.is_none() && room.visibility != Visibility::Public {
            return Err(not_found());
        }
        Ok(RoomAccess { room, role })
    }

    /// Returns a room the caller may read.
    pub async fn room(&self, session: &Session, room_id: RoomId) -> ChatResult<RoomEntry> {
        let access = self.access(session, room_id).await?;
        let peer = self.direct_peer(session, &access.room).await?;
        Ok(RoomEntry {
            online_count: self.hub.online_count(access.room.id),
            room: access.room,
            role: access.role,
            peer,
        })
    }

    async fn direct_peer(&self, session: &Session, room: &Room) -> ChatResult<Option<User>> {
        if room.visibility != Visibility::Direct {
            return Ok(None);
        }
        let members = self.store.members(room.id).await?;
        Ok(members
            .iter()
            .find(|m| m.user.id != session.user_id())
            .map(|m| Self::public_user(&m.user)))
    }

    /// Lists the caller's rooms first (with roles), then public rooms they have not joined.
    pub async fn list_rooms(&self, session: &Session) -> ChatResult<Vec<RoomEntry>> {
        self.read_limit.check(&session.user_id())?;
        let mine = self.store.user_rooms(session.user_id()).await?;
        let public = self.store.public_rooms(PUBLIC_ROOM_LIST_MAX).await?;
        let mut seen: HashMap<RoomId, ()> = HashMap::new();
        let mut entries = Vec::with_capacity(mine.len() + public.len());
        for (room, role) in mine {
            seen.insert(room.id, ());
            let peer = self.direct_peer(session, &room).await?;
            entries.push(RoomEntry {
                online_count: self.hub.online_count(room.id),
                room,
                role: Some(role),
                peer,
            });
        }
        for room in public {
            if seen.contains_key(&room.id) {
                continue;
            }
            entries.push(RoomEntry {
                online_count: self.hub.online_count(room.id),
                room,
                role: None,
                peer: None,
            });
        }
        Ok(entries)
    }

    /// Returns the ids of every room the user belongs to, to subscribe a new connection.
    pub async fn member_room_ids(&self, user: UserId) -> ChatResult<Vec<RoomId>> {
        Ok(self
            .store
            .user_rooms(user)
            .await?
            .into_iter()
            .map(|(room, _)| room.id)
            .collect())
    }

    /// Creates a public or private room owned by the caller. Guests may create public
    /// rooms only when `allow_guest_rooms` is set.
    pub async fn create_room(
        &self,
        session: &Session,
        name: &str,
        topic: &str,
        visibility: Visibility,
    ) -> ChatResult<Room> {
        if !(self.config.allow_guest_rooms && visibility == Visibility::Public) {
            session.require_registered()?;
        }
        if visibility == Visibility::Direct {
            return Err(ChatError::new(
                ErrorCode::InvalidPayload,
                "direct rooms are opened with a user, not created by name",
            ));
        }
        let name = names::validate_room_name(name)?;
        let topic = names::validate_topic(topic)?;
        let _write = self.begin_write()?;
        let room = self
            .store
            .create_room(NewRoom {
                name: &name,
                name_key: &names::fold_key(&name),
                topic: &topic,
                visibility,
                owner_id: Some(session.user_id()),
                members: &[(session.user_id(), Role::Owner)],
                created_at: now_millis(),
            })
            .await?;
        tracing::info!(room_id = %room.id, user_id = %session.user_id(), "room created");
        self.hub.subscribe_user(session.user_id(), room.id);
        self.hub.send_to_user(
            session.user_id(),
            Outbound::new(Event::RoomAdded(room.clone()), Instant::now()),
        );
        // Everyone may join a public room, so every connected user hears of it. The
        // creator gets it too, after `room:added`.
        if visibility == Visibility::Public {
            self.hub.broadcast(Outbound::new(
                Event::RoomCreated(room.clone()),
                Instant::now(),
            ));
        }
        Ok(room)
    }

    /// Builds a system event by the session's user under their current display name.
    pub(super) async fn system_event(
        &self,
        room_id: RoomId,
        kind: MessageKind,
        session: &Session,
    ) -> ChatResult<NewMessage> {
        Ok(self.event_by(room_id, kind, &self.current_user(session).await?))
    }

    fn event_by(&self, room_id: RoomId, kind: MessageKind, actor: &User) -> NewMessage {
        NewMessage {
            room_id,
            kind,
            author_id: Some(actor.id),
            author_name: actor.display_name.clone(),
            body: String::new(),
            target_id: None,
            target_name: None,
            client_msg_id: None,
            created_at: now_millis(),
        }
    }

    /// Joins a room: public rooms are open to everyone, private rooms need an invitation.
    /// Joining a room one is already in succeeds and changes nothing.
    pub async fn join_room(&self, session: &Session, room_id: RoomId) -> ChatResult<Room> {
        let started = Instant::now();
        let not_found = || ChatError::new(ErrorCode::RoomNotFound, "no such room");
        let room = self
            .store
            .room_by_id(room_id)
            .await?
            .ok_or_else(not_found)?;
        if self
            .store
            .role_of(room_id, session.user_id())
            .await?
            .is_some()
        {
            return Ok(room);
        }
        // The recorded owner keeps ownership through leaving: rejoining restores it, and
        // needs no invitation to their own private room.
        let is_owner = room.owner_id == Some(session.user_id());
        let role = match room.visibility {
            Visibility::Public | Visibility::Private if is_owner => Role::Owner,
            Visibility::Public if session.user.is_guest() => Role::Guest,
            Visibility::Public => Role::Member,
            Visibility::Private => {
                if session.user.is_guest()
                    || !self.store.has_invite(room_id, session.user_id()).await?
                {
                    return Err(not_found());
                }
                Role::Member
            }
            Visibility::Direct => return Err(not_found()),
        };
        // Checked after the visibility rules, so a private room stays hidden from a banned
        // user without an invitation. A ban deletes the invitation and blocks new ones.
        self.check_not_banned(room_id, session.user_id()).await?;

        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let event = self
            .system_event(room_id, MessageKind::Join, session)
            .await?;
        if let Some(message) = self
            .store
            .add_member(room_id, session.user_id(), role, event)
            .await?
        {
            self.hub.subscribe_user(session.user_id(), room_id);
            let mut message = message;
            message.author_account = session.user.username.clone();
            self.after_commit(started, message);
        }
        let room = self
            .store
            .room_by_id(room_id)
            .await?
            .ok_or_else(not_found)?;
        self.hub.send_to_user(
            session.user_id(),
            Outbound::new(Event::RoomAdded(room.clone()), started),
        );
        Ok(room)
    }

    /// Leaves a room. The lobby can be left too; direct rooms cannot.
    pub async fn leave_room(&self, session: &Session, room_id: RoomId) -> ChatResult<()> {
        self.leave_room_with_reason(session, room_id, None).await
    }

    /// Leaves a room like [`Self::leave_room`], storing the reason (normalized by
    /// [`names::normalize_leave_reason`]) as the body of the leave event, so every
    /// protocol can show it.
    pub async fn leave_room_with_reason(
        &self,
        session: &Session,
        room_id: RoomId,
        reason: Option<&str>,
    ) -> ChatResult<()> {
        let started = Instant::now();
        let access = self.access(session, room_id).await?;
        access.member_role()?;
        if access.room.visibility == Visibility::Direct {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                "direct rooms cannot be left",
            ));
        }
        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let mut event = self
            .system_event(room_id, MessageKind::Leave, session)
            .await?;
        event.body = reason
            .map(names::normalize_leave_reason)
            .unwrap_or_default();
        if let Some(message) = self
            .store
            .remove_member(room_id, session.user_id(), event)
            .await?
        {
            self.after_commit(started, message);
        }
        self.hub.unsubscribe_user(session.user_id(), room_id);
        self.hub.send_to_user(
            session.user_id(),
            Outbound::new(
                Event::RoomRemoved(RoomRemoved {
                    room_id,
                    reason: "left",
                }),
                started,
            ),
        );
        Ok(())
    }

    /// Invites a registered user into a private room; any member except guests may invite.
    pub async fn invite(
        &self,
        session: &Session,
        room_id: RoomId,
        target: UserId,
    ) -> ChatResult<()> {
        session.require_registered()?;
        let access = self.access(session, room_id).await?;
        let role = access.member_role()?;
        if access.room.visibility != Visibility::Private || !role.can_invite() {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("cannot invite into room {room_id}"),
            ));
        }
        let target_row = self.user_row(target).await?;
        if target_row.kind != crate::core::model::AccountKind::Registered {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                "guests cannot be invited",
            ));
        }
        if self.store.role_of(room_id, target).await?.is_some() {
            return Err(ChatError::new(
                ErrorCode::AlreadyMember,
                format!("user {target} is a member"),
            ));
        }
        self.check_not_banned(room_id, target).await?;
        let started = Instant::now();
        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let added = self
            .store
            .add_invite(room_id, target, session.user_id(), now_millis())
            .await?;
        if !added {
            // Inviting again changes nothing and announces nothing.
            return Ok(());
        }
        let mut event = self
            .system_event(room_id, MessageKind::Invite, session)
            .await?;
        event.target_id = Some(target);
        event.target_name = Some(target_row.display_name.clone());
        let appended = self.store.append_message(event).await?;
        self.after_commit(started, appended.message);
        tracing::info!(room_id = %room_id, user_id = %target, by = %session.user_id(), "invited");
        Ok(())
    }

    /// Removes a member; moderators may remove only roles below their own.
    pub async fn kick(&self, session: &Session, room_id: RoomId, target: UserId) -> ChatResult<()> {
        let started = Instant::now();
        let access = self.access(session, room_id).await?;
        let role = access.member_role()?;
        let target_role = self.store.role_of(room_id, target).await?.ok_or_else(|| {
            ChatError::new(
                ErrorCode::TargetNotMember,
                format!("user {target} is not in room {room_id}"),
            )
        })?;
        if !role.can_kick(target_role) || access.room.visibility == Visibility::Direct {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("{role:?} cannot kick {target_role:?}"),
            ));
        }
        let target_row = self.user_row(target).await?;
        let _write = self.begin_write()?;
        let mut event = self
            .system_event(room_id, MessageKind::Kick, session)
            .await?;
        event.target_id = Some(target);
        event.target_name = Some(target_row.display_name.clone());
        if let Some(message) = self.store.remove_member(room_id, target, event).await? {
            self.after_commit(started, message);
        }
        self.hub.unsubscribe_user(target, room_id);
        self.hub.send_to_user(
            target,
            Outbound::new(
                Event::RoomRemoved(RoomRemoved {
                    room_id,
                    reason: "kicked",
                }),
                started,
            ),
        );
        tracing::info!(room_id = %room_id, user_id = %target, by = %session.user_id(), "member kicked");
        Ok(())
    }

    /// Sets a member's role; only the owner may, between admin and member.
    pub async fn set_role(
        &self,
        session: &Session,
        room_id: RoomId,
        target: UserId,
        new_role: Role,
    ) -> ChatResult<()> {
        let access = self.access(session, room_id).await?;
        let role = access.member_role()?;
        let target_role = self.store.role_of(room_id, target).await?.ok_or_else(|| {
            ChatError::new(
                ErrorCode::TargetNotMember,
                format!("user {target} is not in room {room_id}"),
            )
        })?;
        if !role.can_set_role(target_role, new_role) {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("{role:?} cannot make {target_role:?} {new_role:?}"),
            ));
        }
        let _write = self.begin_write()?;
        self.store.set_role(room_id, target, new_role).await
    }

    /// Sets the topic: moderators only while the room's topic is locked, any member
    /// otherwise.
    pub async fn set_topic(
        &self,
        session: &Session,
        room_id: RoomId,
        topic: &str,
    ) -> ChatResult<Room> {
        let started = Instant::now();
        let access = self.access(session, room_id).await?;
        let role = access.member_role()?;
        if access.room.topic_locked && !role.is_moderator() {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                "the topic is locked: only admins set it",
            ));
        }
        let topic = names::validate_topic(topic)?;
        // Events written to the room count against the same budget as messages.
        self.send_limit.check(&session.user_id())?;
        let _write = self.begin_write()?;
        let mut event = self
            .system_event(room_id, MessageKind::Topic, session)
            .await?;
        event.body = topic.clone();
        let message = self.store.set_topic(room_id, &topic, event).await?;
        self.after_commit(started, message);
        let room = self.publish_room_updated(room_id, started).await?;
        Ok(room)
    }

    /// Reads a room back after a change to it and sends `room:updated` to its members.
    pub(super) async fn publish_room_updated(
        &self,
        room_id: RoomId,
        started: Instant,
    ) -> ChatResult<Room> {
        let room = self
            .store
            .room_by_id(room_id)
            .await?
            .ok_or_else(|| ChatError::new(ErrorCode::RoomNotFound, "no such room"))?;
        self.hub.publish(
            room_id,
            Outbound::new(Event::RoomUpdated(room.clone()), started),
        );
        Ok(room)
    }

    /// Lists a room's members with their roles and whether they are online.
    pub async fn members(&self, session: &Session, room_id: RoomId) -> ChatResult<Vec<Member>> {
        self.read_limit.check(&session.user_id())?;
        self.access(session, room_id).await?;
        let rows = self.store.members(room_id).await?;
        Ok(rows
            .iter()
            .map(|m| Member {
                user: Self::public_user(&m.user),
                role: m.role,
                joined_at: m.joined_at,
                online: self.hub.is_online(m.user.id),
            })
            .collect())
    }

    /// Opens (or returns the existing) direct room between the caller and another
    /// registered user.
    pub async fn open_direct(&self, session: &Session, peer: UserId) -> ChatResult<Room> {
        session.require_registered()?;
        let peer_row = self.user_row(peer).await?;
        if peer_row.kind != crate::core::model::AccountKind::Registered || peer == session.user_id()
        {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                "direct rooms need two different registered users",
            ));
        }
        let (low, high) = if session.user_id() < peer {
            (session.user_id(), peer)
        } else {
            (peer, session.user_id())
        };
        // '@' and ':' cannot appear in room names, so this key never collides with one.
        let key = format!("@dm:{low}:{high}");
        if let Some(room) = self.store.room_by_name_key(&key).await? {
            return Ok(room);
        }
        let _write = self.begin_write()?;
        let created = self
            .store
            .create_room(NewRoom {
                name: &key,
                name_key: &key,
                topic: "",
                visibility: Visibility::Direct,
                owner_id: None,
                members: &[(session.user_id(), Role::Member), (peer, Role::Member)],
                created_at: now_millis(),
            })
            .await;
        let room = match created {
            Ok(room) => room,
            // Both users opened it at once: the other request created it.
            Err(err) if err.code() == ErrorCode::RoomNameTaken => {
                return self.store.room_by_name_key(&key).await?.ok_or(err);
            }
            Err(err) => return Err(err),
        };
        for user in [session.user_id(), peer] {
            self.hub.subscribe_user(user, room.id);
            self.hub.send_to_user(
                user,
                Outbound::new(Event::RoomAdded(room.clone()), Instant::now()),
            );
        }
        Ok(room)
    }
}
