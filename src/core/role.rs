//! Room roles and the permission rules between them.

use serde::{Deserialize, Serialize};

/// A member's role in one room, from most to least powerful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Guest,
}

impl Role {
    /// Returns the name stored in the database and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Guest => "guest",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "guest" => Some(Role::Guest),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::Guest => 0,
        }
    }

    /// Reports whether this role moderates the room: kicks, topic, deleting others' messages.
    pub fn is_moderator(self) -> bool {
        self.rank() >= Role::Admin.rank()
    }

    /// Reports whether a member with this role may remove a member holding `target`.
    /// Moderators act only on roles below their own, so admins cannot kick each other
    /// and no one can kick the owner.
    pub fn can_kick(self, target: Role) -> bool {
        self.is_moderator() && self.rank() > target.rank()
    }

    /// Reports whether this role may invite people into a private room.
    pub fn can_invite(self) -> bool {
        self.rank() >= Role::Member.rank()
    }

    /// Reports whether this role may set another member's role to `new_role`.
    /// Only the owner changes roles, and ownership is not transferable this way.
    pub fn can_set_role(self, target: Role, new_role: Role) -> bool {
        self == Role::Owner
            && target != Role::Owner
            && target != Role::Guest
            && matches!(new_role, Role::Admin | Role::Member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kick_needs_a_higher_moderator() {
        assert!(Role::Owner.can_kick(Role::Admin));
        assert!(Role::Admin.can_kick(Role::Member));
        assert!(Role::Admin.can_kick(Role::Guest));
        assert!(!Role::Admin.can_kick(Role::Admin));
        assert!(!Role::Admin.can_kick(Role::Owner));
        assert!(!Role::Member.can_kick(Role::Guest));
    }

    #[test]
    fn only_owner_sets_roles() {
        assert!(Role::Owner.can_set_role(Role::Member, Role::Admin));
        assert!(Role::Owner.can_set_role(Role::Admin, Role::Member));
        assert!(!Role::Owner.can_set_role(Role::Member, Role::Owner));
        assert!(!Role::Owner.can_set_role(Role::Guest, Role::Admin));
        assert!(!Role::Admin.can_set_role(Role::Member, Role::Admin));
    }

    #[test]
    fn invite_and_moderation() {
        assert!(Role::Member.can_invite());
        assert!(!Role::Guest.can_invite());
        assert!(Role::Admin.is_moderator());
        assert!(!Role::Member.is_moderator());
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Owner, Role::Admin, Role::Member, Role::Guest] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
