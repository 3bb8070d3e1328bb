//! The OpenAPI 3.1 document for `/api/v1`, served at `/api/v1/openapi.json`. A test checks
//! that it lists exactly the routes the router serves.

use axum::http::header;
use axum::response::IntoResponse;

/// The document's source, kept beside this file as JSON.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// Source of the router. The tests read its `.route(...)` calls instead of keeping a
    /// second list of routes by hand.
    const ROUTER_SOURCE: &str = include_str!("mod.rs");
    /// Source of the error codes, whose wire names the document's `ErrorCode` must list.
    const ERROR_SOURCE: &str = include_str!("../../core/error.rs");

    /// HTTP methods as axum's routing functions and OpenAPI path items spell them.
    const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

    type Route = (String, String);

    fn parsed_document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON")
    }

    /// Returns the length of `text` up to the parenthesis that closes one already open,
    /// skipping string literals.
    fn until_closing_paren(text: &str) -> usize {
        let mut depth = 1;
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced parentheses in router source: {text}");
    }

    /// Returns the HTTP methods named by calls such as `get(` or `.delete(` in a method
    /// router expression. Handler paths such as `api::delete` are not calls and don't count.
    fn methods_called(expression: &str) -> Vec<String> {
        let mut found = Vec::new();
        for method in METHODS {
            let call = format!("{method}(");
            for (at, _) in expression.match_indices(&call) {
                let preceded_by_identifier = expression[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if !preceded_by_identifier {
                    found.push(method.to_uppercase());
                }
            }
        }
        found
    }

    /// Returns the (method, path) pairs registered by the `.route(path, methods)` calls in
    /// `source` between `start_marker` and `end_marker`.
    fn routes_in(source: &str, start_marker: &str, end_marker: &str) -> BTreeSet<Route> {
        let start = source
            .find(start_marker)
            .unwrap_or_else(|| panic!("router source lacks {start_marker:?}"));
        let end = start
            + source[start..]
                .find(end_marker)
                .unwrap_or_else(|| panic!("router source lacks {end_marker:?}"));
        let mut rest = &source[start..end];
        let mut routes = BTreeSet::new();
        while let Some(at) = rest.find(".route(") {
            let args_start = at + ".route(".len();
            let args_len = until_closing_paren(&rest[args_start..]);
            let args = &rest[args_start..args_start + args_len];

            let path_start = args.find('"').expect("route path is a string literal") + 1;
            let path_len = args[path_start..]
                .find('"')
                .expect("route path literal is closed");
            let path = &args[path_start..path_start + path_len];
            let methods = methods_called(&args[path_start + path_len..]);
            assert!(!methods.is_empty(), "route {path:?} names no HTTP method");
            for method in methods {
                routes.insert((method, path.to_owned()));
            }
            rest = &rest[args_start + args_len..];
        }
        routes
    }

    /// Returns the routes of the `/api/v1` router, relative to `/api/v1`.
    fn router_routes() -> BTreeSet<Route> {
        routes_in(ROUTER_SOURCE, "let api = Router::new()", ".fallback(")
    }

    fn documented_routes(doc: &Value) -> BTreeSet<Route> {
        let paths = doc["paths"].as_object().expect("document has paths");
        let mut routes = BTreeSet::new();
        for (path, item) in paths {
            for method in METHODS {
                if item.get(method).is_some() {
                    routes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        routes
    }

    fn route(method: &str, path: &str) -> Route {
        (method.to_owned(), path.to_owned())
    }

    #[test]
    fn route_parser_reads_chained_and_layered_routes() {
        let source = r#"
            let api = Router::new()
                .route("/a", get(api::get_a).post(api::delete))
                .route(
                    "/b/{id}",
                    put(api::put_b)
                        .delete(api::delete_b)
                        .layer(DefaultBodyLimit::max(limit(1))),
                )
                .route("/c", axum::routing::delete(api::c))
                .fallback(nothing);
            let outer = Router::new().route("/outside", get(x));
        "#;
        let expected: BTreeSet<Route> = [
            route("GET", "/a"),
            route("POST", "/a"),
            route("PUT", "/b/{id}"),
            route("DELETE", "/b/{id}"),
            route("DELETE", "/c"),
        ]
        .into();
        assert_eq!(
            routes_in(source, "let api = Router::new()", ".fallback("),
            expected
        );
    }

    #[test]
    fn document_lists_every_router_route() {
        let served = router_routes();
        let documented = documented_routes(&parsed_document());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let not_served: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            not_served.is_empty(),
            "openapi.json documents routes the router lacks: {not_served:?}"
        );
    }

    #[test]
    fn document_is_openapi_3_1_under_api_v1() {
        let doc = parsed_document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "/api/v1");
    }

    /// Collects every `$ref` value in a JSON tree.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => references(child, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| references(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = parsed_document();
        let mut targets = Vec::new();
        references(&doc, &mut targets);
        assert!(!targets.is_empty(), "the document uses no $ref");
        for target in targets {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("$ref {target:?} is not local"));
            assert!(
                doc.pointer(pointer).is_some(),
                "$ref {target:?} points nowhere"
            );
        }
    }

    #[test]
    fn path_parameters_are_declared() {
        let doc = parsed_document();
        for (path, item) in doc["paths"].as_object().expect("document has paths") {
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, operation) in item.as_object().expect("path item is an object") {
                let declared: BTreeSet<&str> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(
                    declared, in_path,
                    "{method} {path}: declared path parameters differ from the template"
                );
            }
        }
    }

    #[test]
    fn error_code_schema_lists_every_code() {
        let as_str_start = ERROR_SOURCE
            .find("pub fn as_str(self)")
            .expect("error.rs defines ErrorCode::as_str");
        let as_str_len = ERROR_SOURCE[as_str_start..]
            .find("pub fn is_retryable")
            .expect("ErrorCode::is_retryable follows as_str");
        let wire_names: BTreeSet<&str> = ERROR_SOURCE[as_str_start..as_str_start + as_str_len]
            .split("=> \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(
            wire_names.contains("invalid_payload"),
            "error code names not found in error.rs"
        );

        let doc = parsed_document();
        let documented: BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode schema has an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(documented, wire_names);
    }
}
