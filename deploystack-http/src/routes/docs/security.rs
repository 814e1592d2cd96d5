//! Who may call each operation, in the document: the `bearer` scheme (`Authorization:
//! Bearer <token>`), required on every operation the authorization layer guards, with the
//! scope it needs in the description and its 401/403 answers; the open operations
//! (`/healthz`, `/readyz`) say they need nothing.
//!
//! ## Why derived from the rules rather than written on each handler
//! `middleware::auth::rules::need` decides every request from its method and path; asking it
//! here for each documented operation means the document says what the server does, and a
//! route added later is described under the rule it actually falls under.

use axum::http::Method;
use deploystack_core::model::DeploymentId;
use utoipa::openapi::PathItem;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, ResponseBuilder};

use crate::middleware::auth::rules::{self, Need};

/// The scheme's name in `components.securitySchemes`.
pub const SCHEME: &str = "bearer";

/// `document` with the bearer scheme and each operation's requirement.
pub fn describe(mut document: OpenApi) -> OpenApi {
    let scheme = SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("ds_<64 hex>")
            .description(Some(
                "An API token (`deploystack-server token create`, or `POST /api/v1/tokens`). \
                 On a loopback server with `auth = local`, same-site requests from this machine \
                 need none (docs/security.md).",
            ))
            .build(),
    );
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(SCHEME, scheme);
    for (path, item) in document.paths.paths.iter_mut() {
        let example = example_path(path);
        for (method, operation) in operations(item) {
            describe_operation(operation, rules::need(&method, &example));
        }
    }
    document
}

/// The operations of one path, with the method each answers.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::PATCH, &mut item.patch),
        (Method::HEAD, &mut item.head),
        (Method::OPTIONS, &mut item.options),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

/// A concrete path for a documented one: each `{parameter}` replaced by a valid value, so the
/// rules see what a real request would send.
fn example_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{id}" => DeploymentId::random().to_string(),
            "{domain}" => "www.example.com".to_owned(),
            s if s.starts_with('{') && s.ends_with('}') => "example".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn describe_operation(operation: &mut Operation, need: Need) {
    let Need::Scope(scope, _) = need else {
        // An empty list: this operation needs no credentials.
        operation.security = Some(Vec::new());
        return;
    };
    operation.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
    let note = format!("Needs a token with the scope `{}`.", scope.as_str());
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note,
    });
    let responses = &mut operation.responses.responses;
    for (status, text) in [
        (
            "401",
            "No token, or one that is unknown, revoked or expired (`WWW-Authenticate: Bearer`)",
        ),
        (
            "403",
            "The token lacks the scope or the project, or a tokenless request was refused by the local rule",
        ),
    ] {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(text).build()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_values_the_rules_accept() {
        let path = example_path("/api/v1/projects/{name}/domains/{domain}");
        assert_eq!(path, "/api/v1/projects/example/domains/www.example.com");
        let deployment = example_path("/api/v1/deployments/{id}");
        let id = deployment.rsplit('/').next().unwrap();
        assert!(id.parse::<DeploymentId>().is_ok(), "{deployment}");
    }
}
