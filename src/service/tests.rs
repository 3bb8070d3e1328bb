//! Service rules checked against real stores, with the hub and no gateway. Every test
//! runs twice: on SQLite in a temporary directory, and on PostgreSQL in a schema of its
//! own that is dropped afterwards.
//!
//! The PostgreSQL tests use `CONFAB_TEST_DATABASE_URL`, by default the local `test`
//! database. They fail, naming the URL, when it is unreachable.

use super::*;
use crate::core::ids::Seq;
use crate::core::model::{MessageKind, Visibility};
use crate::core::role::Role;
use crate::service::messages::SYNC_MESSAGES_MAX;
use crate::store::SqliteStore;
use crate::store::postgres::testing::TestSchema;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Fixture {
    service: Arc<ChatService>,
    /// The PostgreSQL schema, dropped with the fixture; `None` on SQLite.
    schema: Option<TestSchema>,
    _dir: tempfile::TempDir,
}

async fn fixture(backend: Backend) -> Fixture {
    fixture_with(backend, |_| {}).await
}

async fn fixture_with(backend: Backend, adjust: impl FnOnce(&mut ServiceConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, schema): (Arc<dyn Store>, _) = match backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&dir.path().join("t.db"))
                .await
                .expect("store opens");
            (Arc::new(store), None)
        }
        Backend::Postgres => {
            let schema = TestSchema::create();
            (Arc::new(schema.open().await), Some(schema))
        }
    };
    let service = service_on(store, dir.path(), adjust).await;
    Fixture {
        service,
        schema,
        _dir: dir,
    }
}

async fn service_on(
    store: Arc<dyn Store>,
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut ServiceConfig),
) -> Arc<ChatService> {
    let metrics = Arc::new(Metrics::new());
    let hub = Arc::new(Hub::new(metrics.clone()));
    let mut config = ServiceConfig::for_tests(dir.join("avatars"));
    config.send_burst = 10_000;
    config.send_per_second = 10_000.0;
    adjust(&mut config);
    let service = ChatService::new(store, hub, config, metrics)
        .await
        .expect("service starts");
    Arc::new(service)
}

/// Generates a `sqlite` and a `postgres` test for each named test function.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::Backend;

                #[tokio::test]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name(Backend::Postgres).await;
                }
            }
        )*
    };
}

on_both_backends!(
    resend_with_same_client_msg_id_stores_once,
    seq_is_gap_free_under_concurrent_senders,
    history_pages_skip_nothing_across_tombstones,
    private_room_is_invisible_to_outsiders,
    guests_read_and_post_in_public_rooms_only,
    guest_cannot_take_a_registered_name,
    guests_can_be_switched_off,
    usernames_collide_after_folding,
    login_failures_look_alike,
    password_change_ends_other_sessions,
    logout_revokes_the_token,
    moderation_follows_roles,
    direct_room_is_shared_and_private,
    send_limit_is_per_user_with_retry_time,
    sync_returns_what_was_missed,
    writes_stop_after_drain,
    client_msg_id_reuse_across_rooms,
    sync_marks_unreadable_rooms_gone,
    invite_is_recorded_in_the_room,
    housekeeping_removes_guests_without_sessions,
    owner_regains_ownership_on_rejoin,
    sync_by_rev_includes_edits_and_deletions,
    sync_rejects_a_room_named_twice,
    sync_reply_shares_one_message_budget,
    repeated_invite_is_announced_once,
    room_events_spend_the_send_budget,
    password_checks_are_rate_limited,
    replaced_avatar_file_is_deleted,
    guest_rooms_follow_the_setting,
    minimum_password_length_is_a_setting,
    leave_reason_is_stored_normalized,
    ban_removes_and_keeps_out,
    ban_follows_roles,
    unban_lets_the_user_back,
    ban_list_needs_moderator,
    moderated_room_silences_members,
    unlocked_topic_is_open_to_members,
    settings_change_is_announced_live,
    away_message_is_cleaned_and_cleared,
    profile_changes_reach_every_shared_room,
    tag_messages_check_tags_and_membership,
    operator_check_tells_name_from_password,
);

const ADDR: ClientAddr = ClientAddr(None);

async fn user(f: &Fixture, name: &str) -> Session {
    f.service
        .register(ADDR, name, "password123", None)
        .await
        .expect("registration succeeds")
        .session
}

async fn guest(f: &Fixture, nick: &str) -> Session {
    f.service
        .guest_login(ADDR, Some(nick))
        .await
        .expect("guest sign-in succeeds")
        .session
}

fn code<T: std::fmt::Debug>(r: ChatResult<T>) -> ErrorCode {
    r.expect_err("operation should fail").code()
}

async fn resend_with_same_client_msg_id_stores_once(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    let first = f
        .service
        .send_message(&alice, lobby, "hi", Some("c1"))
        .await
        .unwrap();
    let again = f
        .service
        .send_message(&alice, lobby, "hi", Some("c1"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.id, again.id);
    assert_eq!(first.seq, again.seq);
    let page = f
        .service
        .history(&alice, lobby, HistoryQuery::default())
        .await
        .unwrap();
    let texts: Vec<_> = page
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Text)
        .collect();
    assert_eq!(texts.len(), 1);
}

async fn seq_is_gap_free_under_concurrent_senders(backend: Backend) {
    let f = fixture(backend).await;
    let lobby = f.service.lobby();
    // Register first: each registration appends a join event to the lobby.
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(user(&f, &format!("user{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let service = f.service.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..25 {
                let ack = service
                    .send_message(
                        &session,
                        lobby,
                        &format!("m{n}"),
                        Some(&format!("u{i}-{n}")),
                    )
                    .await
                    .unwrap();
                seqs.push(ack.seq.0);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one sender's seqs increase"
        );
        all.extend(seqs);
    }
    all.sort();
    let first = all[0];
    let expected: Vec<i64> = (first..first + 100).collect();
    assert_eq!(all, expected, "no gaps and no repeats");
}

async fn history_pages_skip_nothing_across_tombstones(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    let mut ids = Vec::new();
    for n in 0..250 {
        ids.push(
            f.service
                .send_message(&alice, lobby, &format!("m{n}"), None)
                .await
                .unwrap(),
        );
    }
    for ack in ids.iter().step_by(7) {
        f.service.delete_message(&alice, ack.id).await.unwrap();
    }

    // Walk backwards from the newest page.
    let mut seen = Vec::new();
    let mut query = HistoryQuery {
        before: None,
        after: None,
        limit: Some(100),
    };
    loop {
        let page = f.service.history(&alice, lobby, query).await.unwrap();
        assert!(page.messages.len() <= 100);
        assert!(
            page.messages.windows(2).all(|w| w[0].seq < w[1].seq),
            "pages are oldest first"
        );
        seen.splice(0..0, page.messages.iter().map(|m| m.seq.0));
        if !page.has_more {
            break;
        }
        query.before = Some(page.messages[0].seq);
    }
    let expected: Vec<i64> = (1..=seen.len() as i64).collect();
    assert_eq!(seen, expected, "every seq once, in order");

    let tombstone = f
        .service
        .history(
            &alice,
            lobby,
            HistoryQuery {
                before: None,
                after: Some(Seq(ids[0].seq.0 - 1)),
                limit: Some(1),
            },
        )
        .await
        .unwrap();
    assert!(tombstone.messages[0].is_deleted());
    assert_eq!(tombstone.messages[0].body, "");

    let both = HistoryQuery {
        before: Some(Seq(5)),
        after: Some(Seq(1)),
        limit: None,
    };
    assert_eq!(
        code(f.service.history(&alice, lobby, both).await),
        ErrorCode::InvalidPayload
    );
}

async fn private_room_is_invisible_to_outsiders(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "owner").await;
    let outsider = user(&f, "outsider").await;
    let visitor = guest(&f, "访客").await;
    let room = f
        .service
        .create_room(&owner, "secret", "", Visibility::Private)
        .await
        .unwrap();

    for session in [&outsider, &visitor] {
        assert_eq!(
            code(f.service.join_room(session, room.id).await),
            ErrorCode::RoomNotFound
        );
        assert_eq!(
            code(
                f.service
                    .history(session, room.id, HistoryQuery::default())
                    .await
            ),
            ErrorCode::RoomNotFound
        );
        assert_eq!(
            code(f.service.send_message(session, room.id, "hi", None).await),
            ErrorCode::RoomNotFound
        );
        assert_eq!(
            code(f.service.members(session, room.id).await),
            ErrorCode::RoomNotFound
        );
    }

    f.service
        .invite(&owner, room.id, outsider.user_id())
        .await
        .unwrap();
    f.service.join_room(&outsider, room.id).await.unwrap();
    f.service
        .send_message(&outsider, room.id, "hello", None)
        .await
        .unwrap();
    assert_eq!(
        code(f.service.invite(&owner, room.id, visitor.user_id()).await),
        ErrorCode::Forbidden,
        "guests cannot be invited into private rooms"
    );
}

async fn guests_read_and_post_in_public_rooms_only(backend: Backend) {
    let f = fixture(backend).await;
    let visitor = guest(&f, "小明").await;
    let lobby = f.service.lobby();
    f.service
        .send_message(&visitor, lobby, "你好", None)
        .await
        .unwrap();
    f.service
        .history(&visitor, lobby, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(
        code(
            f.service
                .create_room(&visitor, "mine", "", Visibility::Public)
                .await
        ),
        ErrorCode::GuestNotAllowed
    );
    assert_eq!(
        code(f.service.set_display_name(&visitor, "x").await),
        ErrorCode::GuestNotAllowed
    );
    let alice = user(&f, "alice").await;
    assert_eq!(
        code(f.service.open_direct(&visitor, alice.user_id()).await),
        ErrorCode::GuestNotAllowed
    );
    let ack = f
        .service
        .send_message(&visitor, lobby, "oops", None)
        .await
        .unwrap();
    assert_eq!(
        code(f.service.delete_message(&visitor, ack.id).await),
        ErrorCode::GuestNotAllowed
    );
}

async fn guest_cannot_take_a_registered_name(backend: Backend) {
    let f = fixture(backend).await;
    user(&f, "alice").await;
    assert_eq!(
        code(f.service.guest_login(ADDR, Some("ALICE")).await),
        ErrorCode::NicknameTaken
    );
}

async fn guests_can_be_switched_off(backend: Backend) {
    let f = fixture_with(backend, |c| c.allow_guests = false).await;
    assert_eq!(
        code(f.service.guest_login(ADDR, Some("x")).await),
        ErrorCode::GuestsDisabled
    );
}

async fn usernames_collide_after_folding(backend: Backend) {
    let f = fixture(backend).await;
    user(&f, "alice").await;
    for name in ["Alice", "ＡＬＩＣＥ", " alice "] {
        assert_eq!(
            code(f.service.register(ADDR, name, "password123", None).await),
            ErrorCode::UsernameTaken,
            "{name:?}"
        );
    }
}

async fn login_failures_look_alike(backend: Backend) {
    let f = fixture(backend).await;
    user(&f, "alice").await;
    let unknown = f
        .service
        .login(ADDR, "nobody", "password123")
        .await
        .unwrap_err();
    let wrong = f
        .service
        .login(ADDR, "alice", "wrong-password")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::BadCredentials);
    assert_eq!(wrong.code(), ErrorCode::BadCredentials);
    assert!(f.service.login(ADDR, "ALICE", "password123").await.is_ok());
}

async fn password_change_ends_other_sessions(backend: Backend) {
    let f = fixture(backend).await;
    let first = user(&f, "alice").await;
    let second = f.service.login(ADDR, "alice", "password123").await.unwrap();
    f.service
        .change_password(&first, "password123", "new password")
        .await
        .unwrap();
    assert!(f.service.authenticate(&second.token).await.is_err());
    assert_eq!(
        code(
            f.service
                .change_password(&first, "wrong", "another one")
                .await
        ),
        ErrorCode::WrongPassword
    );
    assert!(f.service.login(ADDR, "alice", "new password").await.is_ok());
    assert!(f.service.login(ADDR, "alice", "password123").await.is_err());
}

async fn logout_revokes_the_token(backend: Backend) {
    let f = fixture(backend).await;
    let login = f
        .service
        .register(ADDR, "alice", "password123", None)
        .await
        .unwrap();
    assert!(f.service.authenticate(&login.token).await.is_ok());
    f.service.logout(&login.session).await.unwrap();
    assert_eq!(
        code(f.service.authenticate(&login.token).await),
        ErrorCode::Unauthenticated
    );
    assert_eq!(
        code(f.service.authenticate("forged").await),
        ErrorCode::Unauthenticated
    );
}

async fn moderation_follows_roles(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "owner").await;
    let admin = user(&f, "admin").await;
    let member = user(&f, "member").await;
    let room = f
        .service
        .create_room(&owner, "team", "", Visibility::Public)
        .await
        .unwrap();
    for s in [&admin, &member] {
        f.service.join_room(s, room.id).await.unwrap();
    }
    f.service
        .set_role(&owner, room.id, admin.user_id(), Role::Admin)
        .await
        .unwrap();

    assert_eq!(
        code(f.service.set_topic(&member, room.id, "x").await),
        ErrorCode::Forbidden
    );
    f.service
        .set_topic(&admin, room.id, "Team chat")
        .await
        .unwrap();
    assert_eq!(
        code(f.service.kick(&member, room.id, admin.user_id()).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(f.service.kick(&admin, room.id, owner.user_id()).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(
            f.service
                .set_role(&admin, room.id, member.user_id(), Role::Admin)
                .await
        ),
        ErrorCode::Forbidden
    );

    let ack = f
        .service
        .send_message(&member, room.id, "spam", None)
        .await
        .unwrap();
    assert_eq!(
        code(f.service.edit_message(&admin, ack.id, "edited").await),
        ErrorCode::Forbidden
    );
    f.service.delete_message(&admin, ack.id).await.unwrap();
    assert_eq!(
        code(f.service.delete_message(&member, ack.id).await),
        ErrorCode::MessageDeleted
    );

    f.service
        .kick(&admin, room.id, member.user_id())
        .await
        .unwrap();
    assert_eq!(
        code(
            f.service
                .send_message(&member, room.id, "back?", None)
                .await
        ),
        ErrorCode::NotMember
    );

    let page = f
        .service
        .history(&owner, room.id, HistoryQuery::default())
        .await
        .unwrap();
    let kinds: Vec<MessageKind> = page.messages.iter().map(|m| m.kind).collect();
    assert!(kinds.contains(&MessageKind::Topic));
    assert!(kinds.contains(&MessageKind::Kick));
    assert!(kinds.contains(&MessageKind::Join));
}

async fn direct_room_is_shared_and_private(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let bob = user(&f, "bob").await;
    let eve = user(&f, "eve").await;
    let room = f.service.open_direct(&alice, bob.user_id()).await.unwrap();
    let same = f.service.open_direct(&bob, alice.user_id()).await.unwrap();
    assert_eq!(room.id, same.id);
    assert_eq!(room.visibility, Visibility::Direct);
    f.service
        .send_message(&bob, room.id, "hi alice", None)
        .await
        .unwrap();
    assert_eq!(
        code(
            f.service
                .history(&eve, room.id, HistoryQuery::default())
                .await
        ),
        ErrorCode::RoomNotFound
    );
    assert_eq!(
        code(f.service.join_room(&eve, room.id).await),
        ErrorCode::RoomNotFound
    );
    assert_eq!(
        code(f.service.open_direct(&alice, alice.user_id()).await),
        ErrorCode::Forbidden
    );
}

async fn send_limit_is_per_user_with_retry_time(backend: Backend) {
    let f = fixture_with(backend, |c| {
        c.send_burst = 3;
        c.send_per_second = 1.0;
    })
    .await;
    let alice = user(&f, "alice").await;
    let bob = user(&f, "bob").await;
    let lobby = f.service.lobby();
    for n in 0..3 {
        f.service
            .send_message(&alice, lobby, &format!("m{n}"), None)
            .await
            .unwrap();
    }
    let err = f
        .service
        .send_message(&alice, lobby, "one too many", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert!(err.retry_after().unwrap() > Duration::ZERO);
    f.service
        .send_message(&bob, lobby, "bob has his own budget", None)
        .await
        .unwrap();
}

async fn sync_returns_what_was_missed(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    let seen = f
        .service
        .send_message(&alice, lobby, "seen", None)
        .await
        .unwrap()
        .seq;
    let mut missed = Vec::new();
    for n in 0..5 {
        missed.push(
            f.service
                .send_message(&alice, lobby, &format!("missed {n}"), None)
                .await
                .unwrap()
                .seq,
        );
    }
    let pages = f
        .service
        .sync(&alice, &[(lobby, SyncFrom::Seq(seen))])
        .await
        .unwrap();
    let got: Vec<Seq> = pages[0].messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, missed);
    assert!(!pages[0].has_more);
}

async fn writes_stop_after_drain(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    assert!(f.service.drain_writes(Duration::from_secs(1)).await);
    assert_eq!(
        code(
            f.service
                .send_message(&alice, f.service.lobby(), "late", None)
                .await
        ),
        ErrorCode::ShuttingDown
    );
}

async fn client_msg_id_reuse_across_rooms(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let room = f
        .service
        .create_room(&alice, "other", "", Visibility::Public)
        .await
        .unwrap();
    f.service
        .send_message(&alice, f.service.lobby(), "first", Some("same-id"))
        .await
        .unwrap();
    assert_eq!(
        code(
            f.service
                .send_message(&alice, room.id, "second", Some("same-id"))
                .await
        ),
        ErrorCode::ClientMsgIdReused
    );
}

async fn sync_marks_unreadable_rooms_gone(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "owner").await;
    let member = user(&f, "member").await;
    let room = f
        .service
        .create_room(&owner, "private", "", Visibility::Private)
        .await
        .unwrap();
    f.service
        .invite(&owner, room.id, member.user_id())
        .await
        .unwrap();
    f.service.join_room(&member, room.id).await.unwrap();
    f.service
        .kick(&owner, room.id, member.user_id())
        .await
        .unwrap();
    let lobby = f.service.lobby();

    let pages = f
        .service
        .sync(
            &member,
            &[
                (room.id, SyncFrom::Seq(Seq(0))),
                (lobby, SyncFrom::Seq(Seq(0))),
            ],
        )
        .await
        .unwrap();
    assert!(pages[0].gone);
    assert!(pages[0].messages.is_empty());
    assert!(!pages[1].gone);
    assert!(!pages[1].messages.is_empty());
}

async fn invite_is_recorded_in_the_room(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "owner").await;
    let friend = user(&f, "friend").await;
    let room = f
        .service
        .create_room(&owner, "club", "", Visibility::Private)
        .await
        .unwrap();
    f.service
        .invite(&owner, room.id, friend.user_id())
        .await
        .unwrap();
    let page = f
        .service
        .history(&owner, room.id, HistoryQuery::default())
        .await
        .unwrap();
    let invite = page
        .messages
        .iter()
        .find(|m| m.kind == MessageKind::Invite)
        .expect("an invite event");
    assert_eq!(invite.target_id, Some(friend.user_id()));
    assert_eq!(invite.author_id, Some(owner.user_id()));
}

async fn housekeeping_removes_guests_without_sessions(backend: Backend) {
    // Sessions and guests expire at once, so one pass removes both.
    let f = fixture_with(backend, |c| c.guest_session_ttl = Duration::ZERO).await;
    let alice = user(&f, "alice").await;
    let visitor = guest(&f, "visitor").await;
    let lobby = f.service.lobby();
    f.service
        .send_message(&visitor, lobby, "hello before leaving", None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let done = f.service.housekeeping().await.unwrap();

    assert_eq!(done.expired_sessions, 1, "the guest's session");
    assert_eq!(done.deleted_guests, 1);
    assert_eq!(
        code(f.service.user(visitor.user_id()).await),
        ErrorCode::UserNotFound
    );
    assert!(
        f.service.user(alice.user_id()).await.is_ok(),
        "registered users stay"
    );
    let page = f
        .service
        .history(&alice, lobby, HistoryQuery::default())
        .await
        .unwrap();
    let kept = page
        .messages
        .iter()
        .find(|m| m.body == "hello before leaving")
        .expect("the guest's message stays");
    assert_eq!(kept.author_id, None);
    assert_eq!(kept.author_name, "visitor");
}

async fn owner_regains_ownership_on_rejoin(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "owner").await;
    for visibility in [Visibility::Public, Visibility::Private] {
        let name = format!("room-{}", visibility.as_str());
        let room = f
            .service
            .create_room(&owner, &name, "", visibility)
            .await
            .unwrap();
        f.service.leave_room(&owner, room.id).await.unwrap();
        f.service.join_room(&owner, room.id).await.unwrap();
        let entry = f.service.room(&owner, room.id).await.unwrap();
        assert_eq!(entry.role, Some(Role::Owner), "{name}");
        f.service
            .set_topic(&owner, room.id, "still mine")
            .await
            .unwrap();
    }
}

async fn sync_by_rev_includes_edits_and_deletions(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    let kept = f
        .service
        .send_message(&alice, lobby, "keep me", None)
        .await
        .unwrap();
    let edited = f
        .service
        .send_message(&alice, lobby, "typo", None)
        .await
        .unwrap();
    let removed = f
        .service
        .send_message(&alice, lobby, "oops", None)
        .await
        .unwrap();
    let seen = f
        .service
        .history(&alice, lobby, HistoryQuery::default())
        .await
        .unwrap()
        .last_rev;

    f.service
        .edit_message(&alice, edited.id, "fixed")
        .await
        .unwrap();
    f.service.delete_message(&alice, removed.id).await.unwrap();
    let fresh = f
        .service
        .send_message(&alice, lobby, "new one", None)
        .await
        .unwrap();

    let pages = f
        .service
        .sync(&alice, &[(lobby, SyncFrom::Rev(seen))])
        .await
        .unwrap();
    let page = &pages[0];
    let ids: Vec<_> = page.messages.iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        vec![edited.id, removed.id, fresh.id],
        "changes in revision order"
    );
    assert_eq!(page.messages[0].body, "fixed");
    assert!(page.messages[1].is_deleted());
    assert!(
        !ids.contains(&kept.id),
        "unchanged messages are not repeated"
    );
    assert!(page.messages.windows(2).all(|w| w[0].rev < w[1].rev));
    assert_eq!(page.last_rev, page.messages[2].rev);
    assert!(!page.has_more);

    let later = f
        .service
        .sync(&alice, &[(lobby, SyncFrom::Rev(page.last_rev))])
        .await
        .unwrap();
    assert!(
        later[0].messages.is_empty(),
        "nothing after the last revision"
    );
}

async fn sync_rejects_a_room_named_twice(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    let twice = [(lobby, SyncFrom::Seq(Seq(0))), (lobby, SyncFrom::Rev(0))];
    assert_eq!(
        code(f.service.sync(&alice, &twice).await),
        ErrorCode::InvalidPayload
    );
}

async fn sync_reply_shares_one_message_budget(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    for n in 0..120 {
        f.service
            .send_message(&alice, lobby, &format!("m{n}"), None)
            .await
            .unwrap();
    }
    let mut from = vec![(lobby, SyncFrom::Seq(Seq(0)))];
    for i in 0..9 {
        let room = f
            .service
            .create_room(&alice, &format!("extra{i}"), "", Visibility::Public)
            .await
            .unwrap();
        from.push((room.id, SyncFrom::Seq(Seq(0))));
    }

    let pages = f.service.sync(&alice, &from).await.unwrap();

    let total: usize = pages.iter().map(|p| p.messages.len()).sum();
    assert!(
        total <= SYNC_MESSAGES_MAX as usize,
        "{total} messages in one reply"
    );
    assert_eq!(pages[0].messages.len(), (SYNC_MESSAGES_MAX / 10) as usize);
    assert!(pages[0].has_more);
}

async fn repeated_invite_is_announced_once(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "owner").await;
    let friend = user(&f, "friend").await;
    let room = f
        .service
        .create_room(&owner, "club", "", Visibility::Private)
        .await
        .unwrap();
    for _ in 0..3 {
        f.service
            .invite(&owner, room.id, friend.user_id())
            .await
            .unwrap();
    }
    let page = f
        .service
        .history(&owner, room.id, HistoryQuery::default())
        .await
        .unwrap();
    let invites = page
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Invite)
        .count();
    assert_eq!(invites, 1);
}

async fn room_events_spend_the_send_budget(backend: Backend) {
    let f = fixture_with(backend, |c| {
        c.send_burst = 3;
        c.send_per_second = 0.01;
    })
    .await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();
    f.service.leave_room(&alice, lobby).await.unwrap();
    f.service.join_room(&alice, lobby).await.unwrap();
    f.service.leave_room(&alice, lobby).await.unwrap();
    assert_eq!(
        code(f.service.join_room(&alice, lobby).await),
        ErrorCode::RateLimited
    );
}

async fn leave_reason_is_stored_normalized(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let bob = user(&f, "bob").await;
    let lobby = f.service.lobby();
    let long = format!("  bye\u{7}now {}", "x".repeat(400));
    f.service
        .leave_room_with_reason(&alice, lobby, Some(&long))
        .await
        .unwrap();
    f.service.leave_room(&bob, lobby).await.unwrap();

    let page = f
        .service
        .history(&user(&f, "carol").await, lobby, HistoryQuery::default())
        .await
        .unwrap();
    let leaves: Vec<&str> = page
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Leave)
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(leaves.len(), 2, "{leaves:?}");
    assert!(leaves[0].starts_with("bye now xxx"), "{}", leaves[0]);
    assert_eq!(
        leaves[0].chars().count(),
        crate::core::names::LEAVE_REASON_MAX_CHARS
    );
    assert_eq!(leaves[1], "");
}

async fn password_checks_are_rate_limited(backend: Backend) {
    let f = fixture_with(backend, |c| {
        c.auth_burst = 2;
        c.auth_per_minute = 0.6;
    })
    .await;
    let login = f
        .service
        .register(ClientAddr(None), "alice", "password123", None)
        .await
        .unwrap();
    let session = login.session;
    for _ in 0..2 {
        assert_eq!(
            code(
                f.service
                    .change_password(&session, "wrong guess", "new password")
                    .await
            ),
            ErrorCode::WrongPassword
        );
    }
    assert_eq!(
        code(
            f.service
                .change_password(&session, "wrong guess", "new password")
                .await
        ),
        ErrorCode::RateLimited
    );
}

async fn replaced_avatar_file_is_deleted(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "alice").await;
    let first = tiny_png(1);
    let second = tiny_png(2);
    f.service.set_avatar(&alice, &first).await.unwrap();
    let dir = f.service.config().avatar_dir.clone();
    let files = |dir: &std::path::Path| std::fs::read_dir(dir).unwrap().count();
    assert_eq!(files(&dir), 1);
    f.service.set_avatar(&alice, &second).await.unwrap();
    assert_eq!(files(&dir), 1, "the first upload is gone");
    f.service.clear_avatar(&alice).await.unwrap();
    assert_eq!(files(&dir), 0, "clearing removes the file");
}

/// Builds the head of a PNG image `width` pixels wide and 1 high: the signature and
/// the IHDR chunk, which is all the avatar check reads.
fn tiny_png(width: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&1u32.to_be_bytes());
    png.extend_from_slice(&[8, 6, 0, 0, 0]);
    png.extend_from_slice(&[0, 0, 0, 0]);
    png
}

async fn guest_rooms_follow_the_setting(backend: Backend) {
    let f = fixture_with(backend, |c| c.allow_guest_rooms = true).await;
    let visitor = guest(&f, "访客").await;
    let room = f
        .service
        .create_room(&visitor, "open-room", "", Visibility::Public)
        .await
        .expect("guests create public rooms when allowed");
    assert_eq!(room.owner_id, Some(visitor.user_id()));
    assert_eq!(
        code(
            f.service
                .create_room(&visitor, "closed-room", "", Visibility::Private)
                .await
        ),
        ErrorCode::GuestNotAllowed,
        "private rooms stay registered-only"
    );
}

async fn minimum_password_length_is_a_setting(backend: Backend) {
    let f = fixture_with(backend, |c| c.min_password_chars = 4).await;
    f.service
        .register(ADDR, "shortpw", "abcd", None)
        .await
        .expect("a 4-character password is allowed at minimum 4");
    assert_eq!(
        code(f.service.register(ADDR, "shorterpw", "abc", None).await),
        ErrorCode::InvalidPassword
    );
}

/// Two services over one PostgreSQL schema stand for two nodes. Their concurrent sends to
/// one room must still get every `seq` exactly once, because the room row lock taken by
/// the seq update is held until commit.
#[tokio::test]
async fn seq_is_gap_free_across_two_postgres_nodes() {
    let f = fixture(Backend::Postgres).await;
    let schema = f
        .schema
        .as_ref()
        .expect("a PostgreSQL fixture has a schema");
    let second_dir = tempfile::tempdir().expect("temp dir");
    let second = service_on(Arc::new(schema.open().await), second_dir.path(), |config| {
        config.send_burst = 10_000;
        config.send_per_second = 10_000.0;
    })
    .await;
    let lobby = f.service.lobby();
    assert_eq!(second.lobby(), lobby, "both nodes see the same lobby");

    // Register first: each registration appends a join event to the lobby.
    let mut sessions = Vec::new();
    for i in 0..6 {
        sessions.push(user(&f, &format!("writer{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let node = if i % 2 == 0 {
            f.service.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..30 {
                let ack = node
                    .send_message(
                        &session,
                        lobby,
                        &format!("m{n}"),
                        Some(&format!("w{i}-{n}")),
                    )
                    .await
                    .expect("send succeeds");
                seqs.push(ack.seq.0);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("sender task finishes"));
    }
    all.sort();
    let first = all[0];
    let expected: Vec<i64> = (first..first + 180).collect();
    assert_eq!(all, expected, "no gaps and no repeats across nodes");

    // The other node's history contains the same seqs, read in pages. The reader's own
    // join event comes after them.
    let reader = user(&f, "reader").await;
    let mut stored = Vec::new();
    let mut after = Seq(first - 1);
    for _ in 0..10 {
        let page = second
            .history(
                &reader,
                lobby,
                HistoryQuery {
                    after: Some(after),
                    limit: Some(50),
                    ..HistoryQuery::default()
                },
            )
            .await
            .expect("history loads");
        stored.extend(page.messages.iter().map(|m| m.seq.0));
        match page.messages.last() {
            Some(last) if page.has_more => after = last.seq,
            _ => break,
        }
    }
    stored.retain(|seq| *seq < first + 180);
    assert_eq!(stored, expected, "history contains the same seqs");
}

/// A resend that reaches another node while the first send is in flight still stores
/// the message once.
#[tokio::test]
async fn resend_on_two_postgres_nodes_stores_once() {
    let f = fixture(Backend::Postgres).await;
    let schema = f
        .schema
        .as_ref()
        .expect("a PostgreSQL fixture has a schema");
    let second_dir = tempfile::tempdir().expect("temp dir");
    let second = service_on(Arc::new(schema.open().await), second_dir.path(), |_| {}).await;
    let alice = user(&f, "alice").await;
    let lobby = f.service.lobby();

    for n in 0..20 {
        let client_id = format!("race-{n}");
        let (a, b) = tokio::join!(
            f.service
                .send_message(&alice, lobby, "hi", Some(&client_id)),
            second.send_message(&alice, lobby, "hi", Some(&client_id)),
        );
        let (a, b) = (a.expect("first send"), b.expect("second send"));
        assert_eq!(a.id, b.id, "both acks name one message");
        assert_eq!(a.seq, b.seq);
        assert!(a.duplicate != b.duplicate, "exactly one send stored it");
    }
}

/// Records every event delivered to a connection.
#[derive(Default)]
struct RecordingSink {
    events: std::sync::Mutex<Vec<crate::core::event::Event>>,
}

impl crate::hub::Sink for RecordingSink {
    fn send(&self, event: &Arc<crate::hub::Outbound>) -> Result<(), crate::hub::SinkError> {
        self.events.lock().unwrap().push(event.event.clone());
        Ok(())
    }

    fn close(&self, _notice: crate::core::i18n::Notice) {}
}

impl RecordingSink {
    /// Returns what `pick` takes from each recorded event it matches, in order.
    fn matching<T>(&self, pick: impl Fn(&crate::core::event::Event) -> Option<T>) -> Vec<T> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(pick)
            .collect()
    }

    fn names(&self) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.name())
            .collect()
    }
}

/// Creates a public room owned by `owner` with `admin` as admin and `member` as member.
async fn moderated_team(f: &Fixture, owner: &Session, admin: &Session, member: &Session) -> RoomId {
    let room = f
        .service
        .create_room(owner, "team", "", Visibility::Public)
        .await
        .unwrap();
    for s in [admin, member] {
        f.service.join_room(s, room.id).await.unwrap();
    }
    f.service
        .set_role(owner, room.id, admin.user_id(), Role::Admin)
        .await
        .unwrap();
    room.id
}

async fn ban_removes_and_keeps_out(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let room = moderated_team(&f, &owner, &admin, &member).await;
    let watcher = Arc::new(RecordingSink::default());
    let conn = f
        .service
        .hub()
        .connect(member.user_id(), member.id, watcher.clone());
    f.service.hub().subscribe(conn, room);

    f.service
        .ban(&admin, room, member.user_id(), Some("  spam\nlinks  "))
        .await
        .unwrap();

    assert!(
        watcher.names().contains(&"room:removed"),
        "the banned user's connection hears of the removal: {:?}",
        watcher.names()
    );
    let removed = watcher.events.lock().unwrap().iter().find_map(|e| match e {
        crate::core::event::Event::RoomRemoved(r) => Some(r.reason),
        _ => None,
    });
    assert_eq!(removed, Some("banned"));
    let members = f.service.members(&owner, room).await.unwrap();
    assert!(members.iter().all(|m| m.user.id != member.user_id()));
    let page = f
        .service
        .history(&owner, room, HistoryQuery::default())
        .await
        .unwrap();
    let event = page
        .messages
        .iter()
        .find(|m| m.kind == MessageKind::Ban)
        .expect("a ban event is stored");
    assert_eq!(event.target_id, Some(member.user_id()));
    assert_eq!(event.author_id, Some(admin.user_id()));
    assert_eq!(event.body, "spam links");

    assert_eq!(
        code(f.service.join_room(&member, room).await),
        ErrorCode::Banned
    );
    assert_eq!(
        code(f.service.send_message(&member, room, "hi", None).await),
        ErrorCode::NotMember
    );
    // Banning again changes nothing and stores no second event.
    f.service
        .ban(&owner, room, member.user_id(), None)
        .await
        .unwrap();
    let page = f
        .service
        .history(&owner, room, HistoryQuery::default())
        .await
        .unwrap();
    let bans = page.messages.iter().filter(|m| m.kind == MessageKind::Ban);
    assert_eq!(bans.count(), 1);

    // A banned user cannot be invited into a private room either.
    let private = f
        .service
        .create_room(&owner, "inner", "", Visibility::Private)
        .await
        .unwrap();
    f.service
        .ban(&owner, private.id, member.user_id(), None)
        .await
        .unwrap();
    assert_eq!(
        code(f.service.invite(&owner, private.id, member.user_id()).await),
        ErrorCode::Banned
    );
    f.service.hub().disconnect(conn);
}

async fn ban_follows_roles(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let other_admin = user(&f, "admin2").await;
    let room = moderated_team(&f, &owner, &admin, &member).await;
    f.service.join_room(&other_admin, room).await.unwrap();
    f.service
        .set_role(&owner, room, other_admin.user_id(), Role::Admin)
        .await
        .unwrap();

    let cases = [
        (&member, admin.user_id(), "a member bans an admin"),
        (&member, owner.user_id(), "a member bans the owner"),
        (&admin, other_admin.user_id(), "an admin bans an equal"),
        (&admin, owner.user_id(), "an admin bans the owner"),
        (&admin, admin.user_id(), "an admin bans themselves"),
        (&owner, owner.user_id(), "the owner bans themselves"),
    ];
    for (actor, target, case) in cases {
        let result = f.service.ban(actor, room, target, None).await;
        assert_eq!(code(result), ErrorCode::Forbidden, "{case}");
    }

    // The owner keeps that rank after leaving, so an admin still cannot ban them.
    f.service.leave_room(&owner, room).await.unwrap();
    assert_eq!(
        code(f.service.ban(&admin, room, owner.user_id(), None).await),
        ErrorCode::Forbidden
    );
    // Someone who never joined can be banned before they arrive.
    let outsider = user(&f, "outsider").await;
    f.service
        .ban(&admin, room, outsider.user_id(), None)
        .await
        .unwrap();
    assert_eq!(
        code(f.service.join_room(&outsider, room).await),
        ErrorCode::Banned
    );
    // Direct rooms have no moderators.
    let direct = f
        .service
        .open_direct(&admin, member.user_id())
        .await
        .unwrap();
    assert_eq!(
        code(
            f.service
                .ban(&admin, direct.id, member.user_id(), None)
                .await
        ),
        ErrorCode::Forbidden
    );
}

async fn unban_lets_the_user_back(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let room = moderated_team(&f, &owner, &admin, &member).await;
    f.service
        .ban(&admin, room, member.user_id(), None)
        .await
        .unwrap();
    assert_eq!(
        code(f.service.unban(&member, room, member.user_id()).await),
        ErrorCode::NotMember
    );
    f.service
        .unban(&admin, room, member.user_id())
        .await
        .unwrap();
    assert_eq!(
        code(f.service.unban(&admin, room, member.user_id()).await),
        ErrorCode::NotBanned
    );
    f.service.join_room(&member, room).await.unwrap();
    f.service
        .send_message(&member, room, "back", None)
        .await
        .unwrap();
    let page = f
        .service
        .history(&owner, room, HistoryQuery::default())
        .await
        .unwrap();
    let unban = page
        .messages
        .iter()
        .find(|m| m.kind == MessageKind::Unban)
        .expect("an unban event is stored");
    assert_eq!(unban.target_id, Some(member.user_id()));
}

async fn ban_list_needs_moderator(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let room = moderated_team(&f, &owner, &admin, &member).await;
    let troll = user(&f, "troll").await;
    f.service.join_room(&troll, room).await.unwrap();
    f.service
        .ban(&admin, room, troll.user_id(), Some("flooding"))
        .await
        .unwrap();

    assert_eq!(
        code(f.service.bans(&member, room).await),
        ErrorCode::Forbidden
    );
    let bans = f.service.bans(&owner, room).await.unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].user.id, troll.user_id());
    assert_eq!(bans[0].banned_by, Some(admin.user_id()));
    assert_eq!(bans[0].banned_by_name.as_deref(), Some("admin"));
    assert_eq!(bans[0].reason, "flooding");
    assert!(bans[0].created_at > 0);
}

async fn moderated_room_silences_members(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let room = moderated_team(&f, &owner, &admin, &member).await;
    let earlier = f
        .service
        .send_message(&member, room, "before", None)
        .await
        .unwrap();
    let on = RoomSettings {
        moderated: Some(true),
        topic_locked: None,
    };
    assert_eq!(
        code(f.service.update_room_settings(&member, room, on).await),
        ErrorCode::Forbidden
    );
    let updated = f
        .service
        .update_room_settings(&admin, room, on)
        .await
        .unwrap();
    assert!(updated.moderated);
    assert!(updated.topic_locked, "an unnamed setting keeps its value");

    assert_eq!(
        code(f.service.send_message(&member, room, "hello?", None).await),
        ErrorCode::RoomModerated
    );
    assert_eq!(
        code(f.service.edit_message(&member, earlier.id, "edited").await),
        ErrorCode::RoomModerated
    );
    f.service
        .send_message(&admin, room, "admins speak", None)
        .await
        .unwrap();
    f.service
        .send_message(&owner, room, "owners speak", None)
        .await
        .unwrap();

    let off = RoomSettings {
        moderated: Some(false),
        topic_locked: None,
    };
    f.service
        .update_room_settings(&owner, room, off)
        .await
        .unwrap();
    f.service
        .send_message(&member, room, "free again", None)
        .await
        .unwrap();
}

async fn unlocked_topic_is_open_to_members(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let room = moderated_team(&f, &owner, &admin, &member).await;
    let entry = f.service.room(&member, room).await.unwrap();
    assert!(
        entry.room.topic_locked,
        "new rooms start with the topic locked"
    );
    assert_eq!(
        code(f.service.set_topic(&member, room, "mine").await),
        ErrorCode::Forbidden
    );
    let unlock = RoomSettings {
        moderated: None,
        topic_locked: Some(false),
    };
    f.service
        .update_room_settings(&owner, room, unlock)
        .await
        .unwrap();
    let changed = f.service.set_topic(&member, room, "mine").await.unwrap();
    assert_eq!(changed.topic, "mine");
    assert!(!changed.topic_locked);
}

async fn settings_change_is_announced_live(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "owner").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let room = moderated_team(&f, &owner, &admin, &member).await;
    let watcher = Arc::new(RecordingSink::default());
    let conn = f
        .service
        .hub()
        .connect(member.user_id(), member.id, watcher.clone());
    f.service.hub().subscribe(conn, room);
    let before = f.service.room(&owner, room).await.unwrap().room.last_seq;

    let both = RoomSettings {
        moderated: Some(true),
        topic_locked: Some(false),
    };
    f.service
        .update_room_settings(&admin, room, both)
        .await
        .unwrap();
    // Setting the same values again stores and announces nothing.
    f.service
        .update_room_settings(&admin, room, both)
        .await
        .unwrap();

    let updates = watcher.matching(|e| match e {
        crate::core::event::Event::RoomUpdated(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(updates.len(), 1, "one room:updated for one change");
    assert!(updates[0].moderated);
    assert!(!updates[0].topic_locked);
    let page = f
        .service
        .history(&owner, room, HistoryQuery::default())
        .await
        .unwrap();
    let settings: Vec<_> = page
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Settings)
        .collect();
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0].body, "+moderated -topic_locked");
    assert_eq!(settings[0].seq.0, before.0 + 1);
    f.service.hub().disconnect(conn);
}

async fn profile_changes_reach_every_shared_room(backend: Backend) {
    let f = fixture(backend).await;
    let (owner, admin, member) = (
        user(&f, "renamer").await,
        user(&f, "admin").await,
        user(&f, "member").await,
    );
    let team = moderated_team(&f, &owner, &admin, &member).await;
    let lobby = f.service.lobby();
    let watcher = Arc::new(RecordingSink::default());
    let conn = f
        .service
        .hub()
        .connect(member.user_id(), member.id, watcher.clone());
    f.service.hub().subscribe(conn, team);
    f.service.hub().subscribe(conn, lobby);

    f.service.set_display_name(&owner, "Renamed").await.unwrap();
    // The same name again changes nothing and announces nothing.
    f.service.set_display_name(&owner, "Renamed").await.unwrap();
    f.service.set_avatar(&owner, &tiny_png(3)).await.unwrap();
    f.service.clear_avatar(&owner).await.unwrap();
    // Clearing an avatar that is already the generated one announces nothing.
    f.service.clear_avatar(&owner).await.unwrap();

    let updates = watcher.matching(|e| match e {
        crate::core::event::Event::UserUpdated(u) => Some(u.clone()),
        _ => None,
    });
    assert_eq!(
        updates.len(),
        6,
        "three changes, each to the lobby and the team"
    );
    let rooms: std::collections::HashSet<_> = updates.iter().map(|u| u.room_id).collect();
    assert_eq!(rooms, [lobby, team].into_iter().collect());

    let rename = &updates[0];
    assert_eq!(rename.user.id, owner.user_id());
    assert_eq!(rename.previous_display_name, "renamer");
    assert_eq!(rename.user.display_name, "Renamed");
    assert_eq!(updates[1].change_id, rename.change_id, "one id per change");

    let upload = &updates[2];
    assert_ne!(upload.change_id, rename.change_id);
    assert_eq!(upload.previous_display_name, "Renamed");
    assert_ne!(upload.user.avatar_url, rename.user.avatar_url);
    let cleared = &updates[4];
    assert_ne!(cleared.user.avatar_url, upload.user.avatar_url);
}

async fn away_message_is_cleaned_and_cleared(backend: Backend) {
    let f = fixture(backend).await;
    let alice = user(&f, "awayalice").await;

    let long = format!("lunch\u{7}break {}", "x".repeat(400));
    let stored = f.service.set_away(&alice, Some(&long)).await.unwrap();
    let stored = stored.expect("a non-empty message is stored");
    assert!(stored.starts_with("lunch break "), "{stored}");
    assert_eq!(stored.chars().count(), away::AWAY_MAX_CHARS);
    assert_eq!(f.service.away_message(alice.user_id()), Some(stored));

    let blank = f.service.set_away(&alice, Some("  \t ")).await.unwrap();
    assert_eq!(blank, None, "a blank message clears");
    assert_eq!(f.service.away_message(alice.user_id()), None);

    f.service.set_away(&alice, Some("back soon")).await.unwrap();
    // No connection is registered with the hub, so the user counts as offline.
    f.service.forget_away_if_offline(alice.user_id());
    assert_eq!(f.service.away_message(alice.user_id()), None);
}

async fn tag_messages_check_tags_and_membership(backend: Backend) {
    let f = fixture(backend).await;
    let owner = user(&f, "tagowner").await;
    let outsider = user(&f, "tagoutsider").await;
    let lobby = f.service.lobby;

    f.service
        .send_tag_message(&owner, lobby, "+typing=active;+example")
        .await
        .expect("valid tags in a room the user belongs to");
    let missing_plus = f
        .service
        .send_tag_message(&owner, lobby, "typing=active")
        .await
        .unwrap_err();
    assert_eq!(missing_plus.code(), ErrorCode::InvalidPayload);
    let too_long = format!("+big={}", "x".repeat(messages::CLIENT_TAGS_MAX_BYTES));
    let oversized = f
        .service
        .send_tag_message(&owner, lobby, &too_long)
        .await
        .unwrap_err();
    assert_eq!(oversized.code(), ErrorCode::PayloadTooLarge);

    let private = f
        .service
        .create_room(&owner, "tagsecret", "", Visibility::Private)
        .await
        .unwrap();
    let outside = f
        .service
        .send_tag_message(&outsider, private.id, "+typing=active")
        .await;
    assert!(outside.is_err(), "a non-member relayed tags: {outside:?}");

    f.service
        .send_tagged_message(&owner, lobby, "tagged", None, Some("+draft/react=x"))
        .await
        .unwrap();
    let page = f
        .service
        .history(&owner, lobby, HistoryQuery::default())
        .await
        .unwrap();
    let stored = page
        .messages
        .iter()
        .find(|m| m.body == "tagged")
        .expect("the message is stored");
    assert_eq!(stored.client_tags, None, "client tags are never stored");
}

async fn operator_check_tells_name_from_password(backend: Backend) {
    let hash = accounts::hash_password_with("oper secret", 19 * 1024, 2)
        .await
        .unwrap();
    let block = OperatorBlock::parse(&format!("boss:{hash}")).unwrap();
    let f = fixture_with(backend, |config| config.operators = vec![block]).await;
    let session = user(&f, "operuser").await;

    let granted = f
        .service
        .check_operator(&session, "boss", "oper secret")
        .await;
    assert_eq!(granted.unwrap(), OperatorCheck::Granted);
    let wrong = f.service.check_operator(&session, "boss", "guess").await;
    assert_eq!(wrong.unwrap(), OperatorCheck::WrongPassword);
    let unknown = f
        .service
        .check_operator(&session, "nobody", "oper secret")
        .await;
    assert_eq!(unknown.unwrap(), OperatorCheck::NoBlock);

    assert!(OperatorBlock::parse("no-separator").is_err());
    assert!(OperatorBlock::parse("boss:plaintext").is_err());
    assert!(OperatorBlock::parse(":$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA").is_err());
}
