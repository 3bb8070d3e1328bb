//! Room announcements over Socket.IO: a new public room reaches every connected user.

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
