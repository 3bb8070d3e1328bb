//! The OpenAPI 3.1 document for `/api/v1`, served at `/api/v1/openapi.json`. A test checks
//! that it lists exactly the routes the router serves.

use axum::http::header;
use axum::response::IntoResponse;

/// The document's source, kept beside this file as JSON.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
