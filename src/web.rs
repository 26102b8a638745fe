//! The web app (`/`) and the operator page (`/ops`), served from the files of `web/dist`
//! compiled into the binary: nothing to install or deploy next to it. The files are built by
//! `npm run build` in `web/` and committed; `scripts/test.sh` rebuilds them and fails when they
//! differ. Must not hold logic: the pages talk to the same REST and Socket.IO API as any client.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// (path, content type, bytes) of every file served.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../web/dist/index.html"),
    ),
    (
        "/ops",
        "text/html; charset=utf-8",
        include_bytes!("../web/dist/ops.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/dist/app.js"),
    ),
    (
        "/ops.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/dist/ops.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/dist/style.css"),
    ),
];

pub fn router() -> Router {
    FILES
        .iter()
        .fold(Router::new(), |app, &(path, kind, body)| {
            app.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, kind),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body,
                    )
                        .into_response()
                }),
            )
        })
}
