//! HTTP gateway: the REST API under `/api/v1`, its OpenAPI document, health and metrics
//! endpoints, the web client at `/` and `/assets/`, and the security headers on every response.

mod api;
pub mod auth;
mod client;
pub mod error;
mod openapi;
mod web;

use crate::core::error::ErrorCode;
use crate::gateway::socketio;
use crate::service::ChatService;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Router, middleware};
use error::{ApiError, ClientLang};
use socketioxide::SocketIo;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

/// Shared state of HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<ChatService>,
    pub io: SocketIo,
    /// Origins allowed for browser connections and writes, without trailing slashes.
    pub origins: Arc<Vec<String>>,
    /// Whether cookies get the `Secure` attribute (HTTPS only).
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
}

/// Content-Security-Policy for pages: scripts, styles and connections from this origin
/// only, no inline script, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Builds the application router. `socketio` is the Socket.IO layer, which serves
/// `/socket.io/` in front of the routes.
pub fn router(
    state: AppState,
    socketio: socketioxide::layer::SocketIoLayer,
    max_request_bytes: usize,
    max_avatar_bytes: usize,
) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/auth/register", post(api::register))
        .route("/auth/login", post(api::login))
        .route("/auth/guest", post(api::guest))
        .route("/auth/logout", post(api::logout))
        .route("/me", get(api::me).patch(api::update_me))
        .route("/me/password", put(api::change_password))
        .route(
            "/me/avatar",
            put(api::put_avatar)
                .delete(api::delete_avatar)
                .layer(DefaultBodyLimit::max(max_avatar_bytes)),
        )
        .route("/users/{id}", get(api::user))
        .route("/users/{id}/avatar", get(api::avatar))
        .route("/users/by-name/{name}", get(api::user_by_name))
        .route("/rooms", get(api::list_rooms).post(api::create_room))
        .route("/rooms/by-name/{name}", get(api::room_by_name))
        .route("/rooms/{id}", get(api::room).patch(api::update_room))
        .route("/rooms/{id}/join", post(api::join))
        .route("/rooms/{id}/leave", post(api::leave))
        .route("/rooms/{id}/members", get(api::members))
        .route(
            "/rooms/{id}/members/{user_id}",
            axum::routing::delete(api::kick),
        )
        .route("/rooms/{id}/members/{user_id}/role", put(api::set_role))
        .route("/rooms/{id}/bans", get(api::bans))
        .route(
            "/rooms/{id}/bans/{user_id}",
            put(api::ban).delete(api::unban),
        )
        .route("/rooms/{id}/invites", post(api::invite))
        .route("/rooms/{id}/messages", get(api::history).post(api::send))
        .route("/rooms/{id}/changes", get(api::changes))
        .route(
            "/messages/{id}",
            axum::routing::patch(api::edit).delete(api::delete),
        )
        .route("/dm", post(api::open_direct))
        .route("/stats", get(api::stats))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed);

    let mut app = Router::new()
        .route("/", get(web::index))
        .route("/assets/{*path}", get(web::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(socketio)
        .layer(middleware::from_fn(socketio::own_request_head))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::check_origin,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client::resolve_client,
        ));

    let headers: [(HeaderName, &'static str); 4] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    if state.secure_cookies {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    app.with_state(state)
}

async fn api_method_not_allowed(
    ClientLang(lang): ClientLang,
    method: axum::http::Method,
    uri: Uri,
) -> ApiError {
    ApiError::code(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not served at {}", uri.path()),
        lang,
    )
}

async fn api_not_found(ClientLang(lang): ClientLang, uri: Uri) -> ApiError {
    ApiError::code(
        ErrorCode::NotFound,
        format!("no endpoint {}", uri.path()),
        lang,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    // Without Redis a node still serves its own clients and stores their messages, so
    // it stays ready; the body says that other nodes' events arrive late.
    let bus_down = state
        .service
        .hub()
        .bus()
        .is_some_and(|bus| !bus.is_connected());
    match state.service.ready().await {
        Ok(()) if bus_down => (StatusCode::OK, "ready, redis unavailable\n").into_response(),
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(err) => {
            tracing::warn!(cause = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = state.service.metrics();
    let (websocket, polling) = crate::gateway::socketio::count_by_transport(&state.io);
    metrics
        .connections
        .get_or_create(&vec![("transport", "websocket")])
        .set(websocket);
    metrics
        .connections
        .get_or_create(&vec![("transport", "polling")])
        .set(polling);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}
