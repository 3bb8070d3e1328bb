//! Room announcements and moderation over Socket.IO and REST: a new public room reaches
//! every connected user, bans keep a user out, and settings changes reach members live.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn public_room_is_announced_to_everyone() {
    let server = Server::start(&[]).await;
    let creator = server.register("founder").await;
    let listener = server.register("listener").await;
    let (mut listener_socket, _) = server.socket(json!({ "token": listener.token })).await;
    let (mut guest_socket, _) = server.socket(json!({ "nickname": "Passer" })).await;
    let (mut creator_socket, _) = server.socket(json!({ "token": creator.token })).await;

    // A private room is not announced: the first announcement is the public room below.
    let private = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&creator.token),
            &json!({ "name": "back-office", "visibility": "private" }),
        )
        .await;
    assert_eq!(private.status, StatusCode::CREATED, "{}", private.text);

    let public = creator_socket
        .call(
            "room:create",
            json!({ "name": "town-square", "topic": "Everyone", "visibility": "public" }),
        )
        .await;
    assert_eq!(public["ok"], true, "{public}");
    let room_id = public["data"]["id"].clone();

    for (who, socket) in [
        ("listener", &mut listener_socket),
        ("guest", &mut guest_socket),
        ("creator", &mut creator_socket),
    ] {
        let announced = socket.wait_event("room:created").await;
        assert_eq!(announced["id"], room_id, "{who}: {announced}");
        assert_eq!(announced["name"], "town-square", "{who}: {announced}");
        assert_eq!(announced["visibility"], "public", "{who}: {announced}");
    }
}

/// Sends a JSON body with `method`, bearer-authenticated.
async fn send_json(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> common::Reply {
    server
        .http()
        .send(
            method,
            path,
            Some(token),
            &[],
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await
}

#[tokio::test]
async fn ban_over_rest_keeps_the_user_out() {
    let server = Server::start(&[]).await;
    let owner = server.register("keeper").await;
    let troll = server.register("troll").await;
    let created = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&owner.token),
            &json!({ "name": "quiet-corner", "visibility": "public" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let room_id = created.json()["id"].as_i64().unwrap();
    let join = format!("/api/v1/rooms/{room_id}/join");
    let joined = server
        .http()
        .post_json(&join, Some(&troll.token), &json!({}))
        .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    let (mut troll_socket, _) = server.socket(json!({ "token": troll.token })).await;

    let ban_path = format!("/api/v1/rooms/{room_id}/bans/{}", troll.user_id);
    let refused = send_json(
        &server,
        reqwest::Method::PUT,
        &format!("/api/v1/rooms/{room_id}/bans/{}", owner.user_id),
        &troll.token,
        &json!({}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    let banned = send_json(
        &server,
        reqwest::Method::PUT,
        &ban_path,
        &owner.token,
        &json!({ "reason": "flooding" }),
    )
    .await;
    assert_eq!(banned.status, StatusCode::NO_CONTENT, "{}", banned.text);
    let removed = troll_socket
        .wait_event_where("room:removed", |p| p["room_id"] == room_id)
        .await;
    assert_eq!(removed["reason"], "banned", "{removed}");

    let rejoin = server
        .http()
        .post_json(&join, Some(&troll.token), &json!({}))
        .await;
    assert_eq!(rejoin.status, StatusCode::FORBIDDEN, "{}", rejoin.text);
    assert_eq!(rejoin.error_code(), "banned");

    let list_path = format!("/api/v1/rooms/{room_id}/bans");
    let hidden = server.http().get(&list_path, Some(&troll.token)).await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN, "{}", hidden.text);
    let list = server.http().get(&list_path, Some(&owner.token)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let bans = list.json();
    assert_eq!(bans[0]["user"]["id"], troll.user_id, "{bans}");
    assert_eq!(bans[0]["reason"], "flooding", "{bans}");
    assert_eq!(bans[0]["banned_by"], owner.user_id, "{bans}");

    let lifted = server.http().delete(&ban_path, Some(&owner.token)).await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.text);
    let again = server.http().delete(&ban_path, Some(&owner.token)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
    assert_eq!(again.error_code(), "not_banned");
    let back = server
        .http()
        .post_json(&join, Some(&troll.token), &json!({}))
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
}

#[tokio::test]
async fn settings_change_reaches_members_live() {
    let server = Server::start(&[]).await;
    let owner = server.register("chair").await;
    let member = server.register("speaker").await;
    let (mut owner_socket, _) = server.socket(json!({ "token": owner.token })).await;
    let (mut member_socket, _) = server.socket(json!({ "token": member.token })).await;
    let created = owner_socket
        .call(
            "room:create",
            json!({ "name": "panel", "topic": "", "visibility": "public" }),
        )
        .await;
    assert_eq!(created["ok"], true, "{created}");
    let room_id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(created["data"]["moderated"], false, "{created}");
    assert_eq!(created["data"]["topic_locked"], true, "{created}");
    let joined = member_socket
        .call("room:join", json!({ "room_id": room_id }))
        .await;
    assert_eq!(joined["ok"], true, "{joined}");

    let refused = member_socket
        .call(
            "room:settings",
            json!({ "room_id": room_id, "moderated": true }),
        )
        .await;
    assert_eq!(refused["error"]["code"], "forbidden", "{refused}");

    // REST and Socket.IO change the same settings.
    let patched = send_json(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/v1/rooms/{room_id}"),
        &owner.token,
        &json!({ "moderated": true }),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json()["moderated"], true, "{}", patched.text);
    let updated = member_socket
        .wait_event_where("room:updated", |p| p["id"] == room_id)
        .await;
    assert_eq!(updated["moderated"], true, "{updated}");

    let silenced = member_socket
        .call(
            "message:send",
            json!({ "room_id": room_id, "body": "hello?" }),
        )
        .await;
    assert_eq!(silenced["error"]["code"], "room_moderated", "{silenced}");
    assert!(
        silenced["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("moderated")),
        "{silenced}"
    );

    let unlocked = owner_socket
        .call(
            "room:settings",
            json!({ "room_id": room_id, "moderated": false, "topic_locked": false }),
        )
        .await;
    assert_eq!(unlocked["ok"], true, "{unlocked}");
    let updated = member_socket
        .wait_event_where("room:updated", |p| {
            p["id"] == room_id && p["moderated"] == false
        })
        .await;
    assert_eq!(updated["topic_locked"], false, "{updated}");
    let topic = member_socket
        .call(
            "room:topic",
            json!({ "room_id": room_id, "topic": "Open floor" }),
        )
        .await;
    assert_eq!(topic["ok"], true, "{topic}");
}
