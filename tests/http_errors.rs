//! Shapes of REST error replies: every failure is the JSON error body, with a detail
//! for developers on rule violations.

mod common;

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn wrong_method_gets_json_error() {
    let server = Server::start(&[]).await;
    let alice = server.register("alice").await;

    let reply = server
        .http()
        .send(Method::DELETE, "/api/v1/me", Some(&alice.token), &[], None)
        .await;

    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.error_code(), "method_not_allowed");
    assert!(reply.json()["error"]["message"].as_str().is_some());
}

#[tokio::test]
async fn malformed_body_names_the_field() {
    let server = Server::start(&[]).await;
    let alice = server.register("alice").await;

    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&alice.token),
            &json!({"name": "room", "visibility": "public", "colour": "red"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "invalid_payload");
    let detail = reply.json()["error"]["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        detail.contains("colour"),
        "detail should name the field: {detail:?}"
    );
}

#[tokio::test]
async fn null_topic_means_no_topic() {
    let server = Server::start(&[]).await;
    let alice = server.register("alice").await;

    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&alice.token),
            &json!({"name": "quiet", "visibility": "public", "topic": null}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json()["topic"], "");
}

#[tokio::test]
async fn length_error_states_the_limit() {
    let server = Server::start(&[("max-message-chars", "10")]).await;
    let alice = server.register("alice").await;

    let reply = server
        .http()
        .post_json(
            "/api/v1/rooms/1/messages",
            Some(&alice.token),
            &json!({"body": "far more than ten characters"}),
        )
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "body_too_long");
    let detail = reply.json()["error"]["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        detail.contains("10"),
        "detail should give the limit: {detail:?}"
    );
}

#[tokio::test]
async fn kicking_a_non_member_names_the_target() {
    let server = Server::start(&[]).await;
    let owner = server.register("owner").await;
    let stranger = server.register("stranger").await;
    let room = server
        .http()
        .post_json(
            "/api/v1/rooms",
            Some(&owner.token),
            &json!({"name": "den", "visibility": "private"}),
        )
        .await
        .json();
    let room_id = room["id"].as_i64().expect("room id");

    let reply = server
        .http()
        .delete(
            &format!("/api/v1/rooms/{room_id}/members/{}", stranger.user_id),
            Some(&owner.token),
        )
        .await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "target_not_member");
}

#[tokio::test]
async fn error_body_always_has_detail_key() {
    // REST sends the detail field on every error, null when there is nothing to add.
    let server = Server::start(&[]).await;
    let reply = server.http().get("/api/v1/no-such-endpoint", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = reply.json();
    assert!(body["error"].as_object().unwrap().contains_key("detail"));
}
