//! Identifier newtypes, so a room id can never be passed where a user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Account id, for registered users and guests alike.
    UserId
);
id_type!(
    /// Room id; direct conversations are rooms too.
    RoomId
);
id_type!(
    /// Global message id, unique across all rooms.
    MessageId
);
id_type!(
    /// Login session id (the row id, never the secret token).
    SessionId
);
id_type!(
    /// Position of a message in its room: strictly increasing, assigned at commit.
    Seq
);
