//! The 429 of the rate limits, in the document: every operation the layer
//! (`crate::middleware::rate_limit`) counts gets the answer `rate_limited` with its
//! `Retry-After`, `RateLimit-Policy` and `RateLimit` headers, unless it describes a 429 of
//! its own (uploads do, naming `too_many_queued` too).
//!
//! ## Why here rather than on each handler
//! The layer answers it, not the handler, and decides from the method and path alone
//! (`rate_limit::class_of`): asking it for each documented operation keeps the document
//! saying what the server does, for routes added later too.

use axum::http::Method;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Object, OpenApi, Ref, Type};

/// `document` with a 429 on every operation the rate limits apply to.
pub fn describe(mut document: OpenApi) -> OpenApi {
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::HEAD, &mut item.head),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let limited = crate::middleware::rate_limit::class_of(&method, path).is_some();
            if let Some(operation) = operation.as_mut().filter(|_| limited) {
                add_too_many_requests(operation);
            }
        }
    }
    document
}

fn add_too_many_requests(operation: &mut Operation) {
    let header = |description: &str, kind: Type| {
        HeaderBuilder::new()
            .schema(Some(Object::with_type(kind)))
            .description(Some(description))
            .build()
    };
    let response = ResponseBuilder::new()
        .description(
            "`rate_limited`: this caller (its token, or its address without one) made too many \
             requests of this class; nothing was done (docs/security.md, Rate limits).",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .header(
            "Retry-After",
            header("Seconds until a retry can succeed (at least 1).", Type::Integer),
        )
        .header(
            "RateLimit-Policy",
            header("The quota: `\"<class>\";q=<requests>;w=<seconds>`.", Type::String),
        )
        .header(
            "RateLimit",
            header(
                "What is left: `\"<class>\";r=<requests>;t=<seconds until the whole quota is back>`.",
                Type::String,
            ),
        )
        .build();
    operation
        .responses
        .responses
        .entry("429".to_owned())
        .or_insert_with(|| response.into());
}

#[cfg(test)]
mod tests {
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    use crate::routes::{health, upload};
    use crate::state::AppState;

    #[test]
    fn rate_limited_operations_document_429_and_the_others_do_not() {
        let (_, api) = crate::routes::api().split_for_parts();
        let (_, platform) = OpenApiRouter::<AppState>::new()
            .routes(routes!(upload::deploy))
            .routes(routes!(health::healthz))
            .split_for_parts();
        let document = super::super::document(platform.nest("/api", api));
        let document = serde_json::to_value(document).unwrap();
        let responses =
            |path: &str, method: &str| document["paths"][path][method]["responses"].clone();
        for (path, method) in [
            ("/deploy", "post"),
            ("/api/v1/deployments", "post"),
            ("/api/v1/deployments", "get"),
            ("/api/v1/projects", "post"),
            ("/api/v1/projects/{name}", "patch"),
        ] {
            let answer = &responses(path, method)["429"];
            assert!(answer.is_object(), "{method} {path} has no 429");
        }
        // Uploads describe their own 429, which names the queue cap too.
        let upload = responses("/api/v1/deployments", "post")["429"]["description"].clone();
        assert!(
            upload.as_str().unwrap().contains("too_many_queued"),
            "{upload}"
        );
        let listing = &responses("/api/v1/deployments", "get")["429"];
        assert!(listing["headers"]["Retry-After"].is_object(), "{listing}");
        assert!(listing["headers"]["RateLimit"].is_object(), "{listing}");
        assert!(responses("/healthz", "get")["429"].is_null());
    }
}
