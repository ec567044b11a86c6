//! The one list of routes, and the OpenAPI 3.1 document made from it.
//!
//! Every endpoint is a handler with a `#[utoipa::path]` attribute (method, path, parameters,
//! bodies), registered once with [`Api::route`] together with who may call it and whether it is
//! audited. From that one registration come the axum route, the operation in the document
//! (with its security requirement: the role, as OpenAPI 3.1 allows for non-OAuth schemes) and
//! the rule the auth middleware enforces, so a route cannot be served without a role or be
//! missing from the document.
//!
//! [`document`] adds what every operation shares: the problem+json error responses (each
//! operation gets those its shape can produce: 400 for parameters and bodies, 404 for an id in
//! the path, 408/413/415 for bodies, 401/403/429 for keyed routes, 507 for keyed writes, 500/503
//! for all). It is served
//! at `GET /openapi.json`, and `GET /docs` is a reference page rendered from it in the browser
//! by a script aisle serves itself (no CDN).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Header, InfoBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Access, Rule, Subject};
use super::problem::ProblemDocument;

/// Routes being registered: the router, its part of the document and the auth rules.
pub struct Api {
    router: OpenApiRouter<AppState>,
    rules: Vec<Rule>,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("HEAD", item.head.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, o)| o.map(|o| (m, o)))
    .collect()
}

impl Api {
    /// No routes.
    pub fn new() -> Self {
        Self { router: OpenApiRouter::new(), rules: Vec::new() }
    }

    /// Register the handlers of `routes!(...)`: who may call them, and whether (and under which
    /// subject) calls are audited.
    pub fn route(mut self, access: Access, audit: Subject, handlers: UtoipaMethodRouter<AppState>) -> Self {
        let (schemas, mut paths, method_router) = handlers;
        for (path, item) in paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                op.security = Some(match access {
                    Access::Public => vec![SecurityRequirement::default()],
                    Access::Role(_) | Access::Shopper(_) => vec![
                        SecurityRequirement::new("bearer", access.roles()),
                        SecurityRequirement::new("api_key", access.roles()),
                    ],
                });
                let mut ext = op.extensions.take().unwrap_or_default();
                let role = match access {
                    Access::Public => "public",
                    Access::Role(r) | Access::Shopper(r) => r.as_str(),
                };
                ext.insert("x-aisle-role".into(), role.into());
                if matches!(access, Access::Shopper(_)) {
                    ext.insert("x-aisle-widget".into(), true.into());
                }
                if audit != Subject::None {
                    ext.insert("x-aisle-audited".into(), true.into());
                }
                op.extensions = Some(ext);
                self.rules.push(Rule { method, path: path.clone(), access, audit });
            }
        }
        self.router = self.router.routes((schemas, paths, method_router));
        self
    }

    /// Add another resource's routes.
    pub fn merge(mut self, other: Api) -> Self {
        self.router = self.router.merge(other.router);
        self.rules.extend(other.rules);
        self
    }

    fn into_parts(self) -> (axum::Router<AppState>, OpenApi, Vec<Rule>) {
        let (router, doc) = self.router.split_for_parts();
        (router, doc, self.rules)
    }
}

/// Routes of this resource.
pub fn routes() -> Api {
    Api::new().route(Access::Public, Subject::None, routes!(openapi_json)).route(
        Access::Public,
        Subject::None,
        routes!(docs),
    )
}

/// The routes, built once: the router the server serves, its document and its auth rules.
struct Built {
    router: axum::Router<AppState>,
    doc: OpenApi,
    json: String,
    rules: Vec<Rule>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (router, doc, rules) = super::api().into_parts();
        let doc = finish(doc);
        // Keys sorted, so that the same routes give the same bytes in every process.
        let json =
            serde_json::to_value(&doc).map(sorted).and_then(|v| serde_json::to_string_pretty(&v)).unwrap_or_default();
        Built { router, doc, json, rules }
    })
}

/// `v` with every object's keys in order (serde_json keeps insertion order in this build, and
/// utoipa's extensions are a HashMap).
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<_> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// One server-sent event, as the `text/event-stream` responses' schema (OpenAPI 3.1 describes a
/// stream by one event).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the document's shape; axum writes the events
pub struct SseEvent {
    /// The event's data: a JSON document (or `[DONE]` at the end of an OpenAI stream).
    data: String,
    /// The event's name, where the stream names its events.
    event: Option<String>,
    /// Its id.
    id: Option<String>,
    /// Reconnection time in milliseconds.
    retry: Option<u64>,
}

/// The router of every route (without state, fallbacks or middleware: see `api::router`).
pub fn router() -> axum::Router<AppState> {
    built().router.clone()
}

/// The OpenAPI document of every route.
pub fn document() -> &'static OpenApi {
    &built().doc
}

/// The auth rule of every route.
pub fn rules() -> &'static [Rule] {
    &built().rules
}

fn problem_response(description: &str, retry_after: bool) -> Response {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    let mut r = ResponseBuilder::new().description(description).content("application/problem+json", content);
    if retry_after {
        let mut h = Header::new(u64::schema());
        h.description = Some("Seconds after which a retry may succeed.".into());
        r = r.header("Retry-After", h);
    }
    r.build()
}

/// The shared error responses: (status, component name, description, carries Retry-After).
const ERRORS: &[(&str, &str, &str, bool)] = &[
    ("400", "BadRequest", "Invalid input: `errors` names each bad field with a JSON pointer.", false),
    ("401", "Unauthorized", "No valid API key (send `Authorization: Bearer <key>` or `x-api-key`).", false),
    ("403", "Forbidden", "The key's role is too low for this operation.", false),
    ("404", "NotFound", "No such resource.", false),
    ("408", "RequestTimeout", "The body did not arrive within `[server] body_timeout_secs`.", false),
    ("413", "PayloadTooLarge", "The body is larger than `[server] max_body_bytes`.", false),
    ("415", "UnsupportedMediaType", "The body is not `application/json`.", false),
    ("429", "TooManyRequests", "The key is over its rate or concurrency limit.", true),
    ("500", "InternalError", "A server fault; the detail names a request id to find in the log.", false),
    ("503", "Unavailable", "Not ready (models loading), overloaded, or the store is unavailable.", true),
    ("507", "InsufficientStorage", "The data directory is full; nothing was written.", true),
];

/// Add the info, security schemes, problem schema and shared error responses.
fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("aisle")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Self-hosted recommendations, product search and a grounded shopping assistant. Errors are RFC 9457 \
             problem+json. Keys carry a role (read < app < admin); each operation's security requirement names the \
             role it needs, and `x-aisle-role` repeats it.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert("Problem".into(), ProblemDocument::schema());
    let mut nested = Vec::new();
    ProblemDocument::schemas(&mut nested);
    components.schemas.extend(nested);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An aisle API key.")).build(),
        ),
    );
    components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    for (_, name, description, retry) in ERRORS {
        components.responses.insert((*name).into(), RefOr::T(problem_response(description, *retry)));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_id = path.contains('{');
        for (method, op) in operations(item) {
            let keyed = op.extensions.as_ref().and_then(|e| e.get("x-aisle-role")).is_some_and(|r| r != "public");
            let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = op.request_body.is_some();
            let writes = matches!(method, "PUT" | "POST" | "DELETE");
            for (status, name, _, _) in ERRORS {
                let wanted = match *status {
                    "400" => has_params || has_body,
                    "401" | "403" | "429" => keyed,
                    "404" => has_id,
                    "408" | "413" | "415" => has_body,
                    "507" => writes && keyed,
                    _ => true,
                };
                if wanted && !op.responses.responses.contains_key(*status) {
                    op.responses
                        .responses
                        .insert((*status).into(), RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
                }
            }
        }
    }
    doc
}

/// The OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "meta",
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], built().json.clone())
}

/// The API reference page, rendered from `/openapi.json` in the browser.
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "meta",
    responses((status = 200, description = "The reference page.", content_type = "text/html", body = String)))]
async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_has_an_id_and_a_role() {
        let doc: Value = serde_json::from_str(&super::built().json).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50);
        for r in found {
            let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
            assert!(target.is_some(), "{r} does not resolve");
        }
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                assert!(op["x-aisle-role"].is_string(), "{method} {path} has no role");
                assert!(op["security"].is_array(), "{method} {path} has no security requirement");
            }
        }
        assert_eq!(ids.len(), super::rules().len());
    }
}
