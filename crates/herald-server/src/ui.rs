//! The web dashboard at `/ui` on the admin listener.
//!
//! The page is built from `web/` (TypeScript, bundled with esbuild: `cd web && npm ci && npm run build`) into
//! `crates/herald-server/ui/`, and those built files are compiled into the binary, so serving the dashboard needs
//! no Node, no files next to the binary and no configuration. Every path under `/ui/` that is not one of the assets
//! answers the page itself (the dashboard routes by URL hash, but a bookmarked `/ui/anything` must still load it),
//! and `/` redirects to `/ui/`.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(asset))
}

async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

async fn asset(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    match path.as_str() {
        "app.js" => file("text/javascript; charset=utf-8", APP_JS),
        "app.css" => file("text/css; charset=utf-8", APP_CSS),
        // A missing asset must not come back as the page: a browser would try to run HTML as a script.
        p if p.ends_with(".js") || p.ends_with(".css") || p.ends_with(".map") => StatusCode::NOT_FOUND.into_response(),
        _ => file("text/html; charset=utf-8", INDEX),
    }
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The file names carry no content hash, so the browser must revalidate after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_page_loads_its_bundle() {
        // The page and the bundle are built together by web/build.mjs; a stale or hand-edited copy shows up here.
        assert!(super::INDEX.contains(r#"<script src="/ui/app.js">"#));
        assert!(super::INDEX.contains(r#"href="/ui/app.css""#));
        assert!(super::APP_JS.contains("/api/herald/overview"));
    }
}
