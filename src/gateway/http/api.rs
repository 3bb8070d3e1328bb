//! REST handlers under `/api/v1`. Each decodes, calls the service, encodes.

use super::AppState;
use super::auth::{Authed, clear_session_cookies, with_session_cookies};
use super::error::{ApiError, ClientLang, Json, Localize, Path, Query};
use crate::core::error::ErrorCode;
use crate::core::ids::{MessageId, RoomId, UserId};
use crate::core::model::Visibility;
use crate::core::role::Role;
use crate::service::{ClientAddr, HistoryQuery, LoginResult, RoomRef, RoomSettings};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

type ApiResult = Result<Response, ApiError>;

fn ok<T: serde::Serialize>(value: T) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

/// Query parameters of the sign-in endpoints.
#[derive(Deserialize)]
pub struct SignInParams {
    /// Leaves the token out of the response body, so that it exists only in the HttpOnly
    /// session cookie, out of reach of the page's script. The web client sets it.
    #[serde(default)]
    cookie_only: bool,
}

/// Builds the response to a successful sign-in: the session as JSON plus its cookies.
fn signed_in(
    state: &AppState,
    status: StatusCode,
    login: &LoginResult,
    params: &SignInParams,
) -> ApiResult {
    let mut body = json!({
        "user": login.user,
        "csrf_token": login.csrf_token,
        "expires_at": login.expires_at,
    });
    if !params.cookie_only {
        body["token"] = json!(login.token);
    }
    let response = (status, axum::Json(body)).into_response();
    Ok(with_session_cookies(state, login, response))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    username: String,
    password: String,
    display_name: Option<String>,
}

pub async fn register(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    ClientLang(lang): ClientLang,
    Query(params): Query<SignInParams>,
    Json(body): Json<RegisterBody>,
) -> ApiResult {
    let login = state
        .service
        .register(
            client,
            &body.username,
            &body.password,
            body.display_name.as_deref(),
        )
        .await
        .localized(lang)?;
    signed_in(&state, StatusCode::CREATED, &login, &params)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    ClientLang(lang): ClientLang,
    Query(params): Query<SignInParams>,
    Json(body): Json<LoginBody>,
) -> ApiResult {
    let login = state
        .service
        .login(client, &body.username, &body.password)
        .await
        .localized(lang)?;
    signed_in(&state, StatusCode::OK, &login, &params)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestBody {
    nickname: Option<String>,
}

pub async fn guest(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    ClientLang(lang): ClientLang,
    Query(params): Query<SignInParams>,
    Json(body): Json<GuestBody>,
) -> ApiResult {
    let login = state
        .service
        .guest_login(client, body.nickname.as_deref())
        .await
        .localized(lang)?;
    signed_in(&state, StatusCode::CREATED, &login, &params)
}

pub async fn logout(State(state): State<AppState>, auth: Authed) -> ApiResult {
    state
        .service
        .logout(&auth.session)
        .await
        .localized(auth.lang)?;
    Ok(clear_session_cookies(
        &state,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

pub async fn me(auth: Authed) -> ApiResult {
    ok(json!({
        "user": auth.session.user,
        "session_id": auth.session.id,
        "csrf_token": auth.session.csrf_token,
        "expires_at": auth.session.expires_at,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    display_name: String,
}

pub async fn update_me(
    State(state): State<AppState>,
    auth: Authed,
    Json(body): Json<ProfileBody>,
) -> ApiResult {
    let user = state
        .service
        .set_display_name(&auth.session, &body.display_name)
        .await
        .localized(auth.lang)?;
    ok(user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    auth: Authed,
    Json(body): Json<PasswordBody>,
) -> ApiResult {
    state
        .service
        .change_password(&auth.session, &body.current_password, &body.new_password)
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn put_avatar(
    State(state): State<AppState>,
    auth: Authed,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let body = body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::ImageTooLarge
        } else {
            ErrorCode::InvalidImage
        };
        ApiError::code(code, rejection.body_text(), auth.lang)
    })?;
    let user = state
        .service
        .set_avatar(&auth.session, &body)
        .await
        .localized(auth.lang)?;
    ok(user)
}

pub async fn delete_avatar(State(state): State<AppState>, auth: Authed) -> ApiResult {
    let user = state
        .service
        .clear_avatar(&auth.session)
        .await
        .localized(auth.lang)?;
    ok(user)
}

/// Query parameters of an avatar request.
#[derive(Deserialize)]
pub struct AvatarParams {
    /// Version of the image, from `User.avatar_url`.
    v: Option<String>,
}

pub async fn avatar(
    State(state): State<AppState>,
    ClientLang(lang): ClientLang,
    Path(id): Path<UserId>,
    Query(params): Query<AvatarParams>,
) -> ApiResult {
    let avatar = state.service.avatar(id).await.localized(lang)?;
    let mut response = avatar.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(avatar.content_type),
    );
    // Images are inert: no scripts even when opened directly (SVG can carry script).
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    // `User.avatar_url` carries `?v=` with a version that changes with the image, so a
    // versioned address never goes stale. An address without it must be revalidated.
    let cache = if params.v.is_some() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

pub async fn user(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<UserId>,
) -> ApiResult {
    ok(state.service.user(id).await.localized(auth.lang)?)
}

pub async fn user_by_name(
    State(state): State<AppState>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult {
    ok(state
        .service
        .user_by_username(&name)
        .await
        .localized(auth.lang)?)
}

pub async fn list_rooms(State(state): State<AppState>, auth: Authed) -> ApiResult {
    ok(state
        .service
        .list_rooms(&auth.session)
        .await
        .localized(auth.lang)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomBody {
    name: String,
    topic: Option<String>,
    visibility: Visibility,
}

pub async fn create_room(
    State(state): State<AppState>,
    auth: Authed,
    Json(body): Json<CreateRoomBody>,
) -> ApiResult {
    let room = state
        .service
        .create_room(
            &auth.session,
            &body.name,
            body.topic.as_deref().unwrap_or(""),
            body.visibility,
        )
        .await
        .localized(auth.lang)?;
    Ok((StatusCode::CREATED, axum::Json(room)).into_response())
}

pub async fn room(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
) -> ApiResult {
    ok(state
        .service
        .room(&auth.session, id)
        .await
        .localized(auth.lang)?)
}

pub async fn room_by_name(
    State(state): State<AppState>,
    auth: Authed,
    Path(name): Path<String>,
) -> ApiResult {
    let lang = auth.lang;
    let found = state
        .service
        .find_room(&RoomRef::Name(name))
        .await
        .localized(lang)?;
    ok(state
        .service
        .room(&auth.session, found.id)
        .await
        .localized(lang)?)
}

/// Body of `PATCH /rooms/{id}`: each field present is changed, the others are kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPatchBody {
    topic: Option<String>,
    moderated: Option<bool>,
    topic_locked: Option<bool>,
}

pub async fn update_room(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
    Json(body): Json<RoomPatchBody>,
) -> ApiResult {
    if body.topic.is_none() && body.moderated.is_none() && body.topic_locked.is_none() {
        return Err(ApiError::code(
            ErrorCode::InvalidPayload,
            "give at least one of topic, moderated, topic_locked",
            auth.lang,
        ));
    }
    // Settings first, so one request can unlock the topic and set it.
    let mut room = state
        .service
        .update_room_settings(
            &auth.session,
            id,
            RoomSettings {
                moderated: body.moderated,
                topic_locked: body.topic_locked,
            },
        )
        .await;
    if let (Ok(_), Some(topic)) = (&room, &body.topic) {
        room = state.service.set_topic(&auth.session, id, topic).await;
    }
    ok(room.localized(auth.lang)?)
}

pub async fn join(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
) -> ApiResult {
    ok(state
        .service
        .join_room(&auth.session, id)
        .await
        .localized(auth.lang)?)
}

pub async fn leave(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
) -> ApiResult {
    state
        .service
        .leave_room(&auth.session, id)
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn members(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
) -> ApiResult {
    ok(state
        .service
        .members(&auth.session, id)
        .await
        .localized(auth.lang)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRefBody {
    user_id: Option<UserId>,
    username: Option<String>,
}

async fn resolve_user(
    state: &AppState,
    auth: &Authed,
    body: UserRefBody,
) -> Result<UserId, ApiError> {
    match (body.user_id, body.username) {
        (Some(id), None) => Ok(id),
        (None, Some(name)) => Ok(state
            .service
            .user_by_username(&name)
            .await
            .localized(auth.lang)?
            .id),
        _ => Err(ApiError::code(
            ErrorCode::InvalidPayload,
            "give user_id or username",
            auth.lang,
        )),
    }
}

pub async fn invite(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
    Json(body): Json<UserRefBody>,
) -> ApiResult {
    let target = resolve_user(&state, &auth, body).await?;
    state
        .service
        .invite(&auth.session, id, target)
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn kick(
    State(state): State<AppState>,
    auth: Authed,
    Path((id, user)): Path<(RoomId, UserId)>,
) -> ApiResult {
    state
        .service
        .kick(&auth.session, id, user)
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn bans(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
) -> ApiResult {
    ok(state
        .service
        .bans(&auth.session, id)
        .await
        .localized(auth.lang)?)
}

/// Optional body of `PUT /rooms/{id}/bans/{user_id}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BanBody {
    reason: Option<String>,
}

pub async fn ban(
    State(state): State<AppState>,
    auth: Authed,
    Path((id, user)): Path<(RoomId, UserId)>,
    body: Bytes,
) -> ApiResult {
    // The body is optional: an empty one bans without a reason.
    let body: BanBody = if body.is_empty() {
        BanBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::code(
                ErrorCode::InvalidPayload,
                format!("invalid ban body: {err}"),
                auth.lang,
            )
        })?
    };
    state
        .service
        .ban(&auth.session, id, user, body.reason.as_deref())
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn unban(
    State(state): State<AppState>,
    auth: Authed,
    Path((id, user)): Path<(RoomId, UserId)>,
) -> ApiResult {
    state
        .service
        .unban(&auth.session, id, user)
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: Role,
}

pub async fn set_role(
    State(state): State<AppState>,
    auth: Authed,
    Path((id, user)): Path<(RoomId, UserId)>,
    Json(body): Json<RoleBody>,
) -> ApiResult {
    state
        .service
        .set_role(&auth.session, id, user, body.role)
        .await
        .localized(auth.lang)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn open_direct(
    State(state): State<AppState>,
    auth: Authed,
    Json(body): Json<UserRefBody>,
) -> ApiResult {
    let peer = resolve_user(&state, &auth, body).await?;
    ok(state
        .service
        .open_direct(&auth.session, peer)
        .await
        .localized(auth.lang)?)
}

pub async fn history(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult {
    ok(state
        .service
        .history(&auth.session, id, query)
        .await
        .localized(auth.lang)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    after_rev: i64,
}

pub async fn changes(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
    Query(query): Query<ChangesQuery>,
) -> ApiResult {
    ok(state
        .service
        .changes(&auth.session, id, query.after_rev)
        .await
        .localized(auth.lang)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    body: String,
    client_msg_id: Option<String>,
}

pub async fn send(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<RoomId>,
    Json(body): Json<SendBody>,
) -> ApiResult {
    let ack = state
        .service
        .send_message(&auth.session, id, &body.body, body.client_msg_id.as_deref())
        .await
        .localized(auth.lang)?;
    let status = if ack.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(ack)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    body: String,
}

pub async fn edit(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<MessageId>,
    Json(body): Json<EditBody>,
) -> ApiResult {
    ok(state
        .service
        .edit_message(&auth.session, id, &body.body)
        .await
        .localized(auth.lang)?)
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Authed,
    Path(id): Path<MessageId>,
) -> ApiResult {
    ok(state
        .service
        .delete_message(&auth.session, id)
        .await
        .localized(auth.lang)?)
}

pub async fn stats(State(state): State<AppState>) -> ApiResult {
    ok(state.service.stats())
}
