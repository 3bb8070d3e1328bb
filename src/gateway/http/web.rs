//! The web client: the files under `web/`, embedded into the binary at build time and
//! served at `/` (the page) and `/assets/` (its modules, styles and icons).
//!
//! Every response carries a strong ETag derived from the file's SHA-256 and
//! `Cache-Control: no-cache`, so browsers keep a copy but revalidate it on each load
//! and see a new release at once. File names stay unhashed because the ES modules import
//! each other by name without a build step.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The client's files. The `debug-embed` feature embeds them in debug builds too, so
/// debug and release builds serve the same bytes.
#[derive(RustEmbed)]
#[folder = "web/"]
struct WebFiles;

/// Serves the client's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve_file("index.html", &headers)
}

/// Serves one file of the client under `/assets/`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // The page is served at `/` only, so that it has one address.
    if path == "index.html" {
        return not_found();
    }
    serve_file(&path, &headers)
}

fn serve_file(path: &str, request_headers: &HeaderMap) -> Response {
    // rust-embed looks names up in a table built at compile time, so `..` or an absolute
    // path cannot reach the file system.
    let Some(file) = WebFiles::get(path) else {
        return not_found();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let etag = HeaderValue::from_str(&etag).expect("a hex ETag is a valid header value");

    let mut response = if if_none_match_hits(request_headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = file.data.into_owned().into_response();
        let content_type = content_type_of(file.metadata.mimetype());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Checks whether `If-None-Match` lists `etag` (or `*`), so the browser's copy is current.
fn if_none_match_hits(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let etag = etag.to_str().unwrap_or_default();
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Adds `charset=utf-8` to text types, because every text file of the client is UTF-8.
fn content_type_of(mimetype: &str) -> HeaderValue {
    let is_text = mimetype.starts_with("text/")
        || mimetype == "application/javascript"
        || mimetype == "application/json"
        || mimetype == "image/svg+xml";
    let value = if is_text {
        format!("{mimetype}; charset=utf-8")
    } else {
        mimetype.to_owned()
    };
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_and_weak_tags() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(if_none_match_hits(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abcd\""));
        assert!(!if_none_match_hits(&headers, &etag));
        assert!(!if_none_match_hits(&HeaderMap::new(), &etag));
    }

    #[test]
    fn text_types_get_utf8_charset() {
        assert_eq!(
            content_type_of("text/css"),
            HeaderValue::from_static("text/css; charset=utf-8")
        );
        assert_eq!(
            content_type_of("image/png"),
            HeaderValue::from_static("image/png")
        );
    }

    #[test]
    fn every_client_file_is_embedded() {
        for name in [
            "index.html",
            "app.js",
            "chat.js",
            "message-view.js",
            "i18n.js",
            "socket.js",
            "style.css",
        ] {
            assert!(WebFiles::get(name).is_some(), "{name} is not embedded");
        }
    }
}
