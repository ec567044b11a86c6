//! The pages people use: the console for the retailer's staff (`/console`), the storefront
//! demo (`/shop`) and the widget a retailer embeds in its own pages (`/widget.js`), with their
//! stylesheet and scripts (`/assets/...`). Every file is in the binary (`web/`, read at compile
//! time); pages load nothing from any other host, and the pages' Content-Security-Policy
//! (`default-src 'self'`, no inline script or style) makes the browser refuse anything else.
//!
//! The pages hold no secret: the console and the shop ask for an API key (kept in the tab's
//! session storage, sent in the `Authorization` header, so a forged cross-site form carries no
//! key), and the widget is given a key by the page that embeds it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::routes;

use super::auth::{Access, Subject};
use super::openapi::Api;

/// Routes of this resource: all public (the data behind them needs a key).
pub fn routes() -> Api {
    let public = Access::Public;
    Api::new()
        .route(public, Subject::None, routes!(console))
        .route(public, Subject::None, routes!(shop))
        .route(public, Subject::None, routes!(widget))
        .route(public, Subject::None, routes!(stylesheet))
        .route(public, Subject::None, routes!(ui_script))
        .route(public, Subject::None, routes!(console_script))
        .route(public, Subject::None, routes!(shop_script))
}

/// The pages' policy: this origin only, no inline code, not framed, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // Assets change with the binary; the browser asks again (cheap: they are small).
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The console: overview, catalog, customers, playgrounds, reports, audit log, keys, settings.
#[utoipa::path(get, path = "/console", operation_id = "consolePage", tag = "pages",
    responses((status = 200, description = "The console (it asks for an API key).", content_type = "text/html", body = String)))]
async fn console() -> Response {
    page("text/html; charset=utf-8", include_str!("../../web/console.html"))
}

/// The storefront demo over the loaded catalog.
#[utoipa::path(get, path = "/shop", operation_id = "shopPage", tag = "pages",
    responses((status = 200, description = "The storefront demo.", content_type = "text/html", body = String)))]
async fn shop() -> Response {
    page("text/html; charset=utf-8", include_str!("../../web/shop.html"))
}

/// The embeddable widget: a recommendations strip and an assistant panel for a retailer's pages.
#[utoipa::path(get, path = "/widget.js", operation_id = "widgetScript", tag = "pages",
    responses((status = 200, description = "The widget (see the README for the snippet).", content_type = "text/javascript", body = String)))]
async fn widget() -> Response {
    // Loaded by other origins' pages: no frame or CSP headers of its own matter there.
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("../../web/widget.js"),
    )
        .into_response()
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/assets/ui.css", operation_id = "stylesheet", tag = "pages",
    responses((status = 200, description = "CSS.", content_type = "text/css", body = String)))]
async fn stylesheet() -> Response {
    page("text/css; charset=utf-8", include_str!("../../web/ui.css"))
}

/// The pages' shared script: API calls, elements, charts, streamed answers.
#[utoipa::path(get, path = "/assets/ui.js", operation_id = "uiScript", tag = "pages",
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)))]
async fn ui_script() -> Response {
    page("text/javascript; charset=utf-8", include_str!("../../web/ui.js"))
}

/// The console's script.
#[utoipa::path(get, path = "/assets/console.js", operation_id = "consoleScript", tag = "pages",
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)))]
async fn console_script() -> Response {
    page("text/javascript; charset=utf-8", include_str!("../../web/console.js"))
}

/// The storefront's script.
#[utoipa::path(get, path = "/assets/shop.js", operation_id = "shopScript", tag = "pages",
    responses((status = 200, description = "JavaScript.", content_type = "text/javascript", body = String)))]
async fn shop_script() -> Response {
    page("text/javascript; charset=utf-8", include_str!("../../web/shop.js"))
}
