//! Custom domains: `POST /projects/{name}/alias` (`vercel domains add`, a JSON body sent as
//! `text/plain`), `DELETE /projects/{name}/alias?domain=`, `GET /v5/domains` (`domains ls`),
//! `GET /v4/domains/{name}` and `…/config` (`domains add` and `inspect`), and the registrar
//! look-ups `inspect` makes (we sell no domains: price 404, never available).
//!
//! A domain added here is one of our custom domains (`services::domains`), unverified until
//! its TXT record `_deploystack.<domain>` is found; the answer's `x-vercel-notice-…` header,
//! which the CLI prints, names the record. `…/config` always answers `misconfigured: false`:
//! the CLI's advice for a misconfigured domain is hard-coded to Vercel's own IP address and
//! nameservers, which would send a user's DNS to Vercel; whether a domain is verified is
//! `verified` here and in our API.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use deploystack_core::domains::{DomainName, VerificationRecord};
use deploystack_core::model::{Domain, PageRequest};
use deploystack_core::repository::RepositoryError;
use deploystack_core::services::domains::{self, DomainError, DomainInput};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{self, AnyJson, TEAM_ID, TEAM_SLUG, ms, not_found, pagination};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes::domains::domain_error;
use crate::state::AppState;

/// Most projects `domains ls` reads the domains of (pages of 100).
const LIST_PROJECTS: usize = 1_000;

/// A domain as the CLI reads it (`internals/types` `Domain`): `creator` must be there, the
/// nameserver lists must be arrays.
fn domain_object(domain: &Domain) -> Value {
    json!({
        "id": domain.name.to_string(),
        "name": domain.name.to_string(),
        "projectId": domain.project.as_str(),
        "verified": domain.is_verified(),
        "createdAt": ms(domain.created_at),
        "boughtAt": null,
        "orderedAt": null,
        "expiresAt": null,
        "transferredAt": null,
        "serviceType": "external",
        "nameservers": [],
        "intendedNameservers": [],
        "customNameservers": [],
        "cdnEnabled": false,
        "creator": {"id": TEAM_ID, "username": TEAM_SLUG, "email": ""},
    })
}

/// `{"target": "PRODUCTION", "domain": "…"}`.
#[derive(Debug, Deserialize)]
pub struct AliasBody {
    /// The domain to add.
    pub domain: String,
}

/// `POST /projects/{name}/alias`: add the domain to the project; a JSON array with it,
/// which the CLI searches for the name. Adding it again to the same project is a success.
pub async fn add(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(id): Path<String>,
    AnyJson(body): AnyJson<AliasBody>,
) -> Result<Response, ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let input = DomainInput {
        name: body.domain.clone(),
        redirect: None,
        redirect_status: None,
    };
    let spec = domains::parse_input(&input, "").map_err(domain_error)?;
    let added = match domains::add(&state.services, &project.name, spec, caller.by()).await {
        Ok(added) => added.domain,
        Err(DomainError::Taken {
            this_project: true, ..
        }) => {
            domains::get(&state.services, &project.name, &body.domain)
                .await
                .map_err(domain_error)?
                .domain
        }
        Err(err) => return Err(domain_error(err)),
    };
    let answer = json!([{
        "domain": added.name.to_string(),
        "target": "PRODUCTION",
        "redirect": null,
        "createdAt": ms(added.created_at),
    }]);
    let mut response = Json(answer).into_response();
    if !added.is_verified() {
        let record = VerificationRecord::new(&added.name, &added.token);
        let notice = format!(
            "DeployStack serves {} once it is verified: publish the DNS record {} {} \"{}\" (it is checked in the background, or at once with POST /api/v1/projects/{}/domains/{}/verify)",
            added.name, record.record_type, record.name, record.value, project.name, added.name
        );
        if let Ok(value) = HeaderValue::from_str(&notice) {
            response.headers_mut().insert(
                HeaderName::from_static("x-vercel-notice-deploystack-verify"),
                value,
            );
        }
    }
    Ok(response)
}

/// `DELETE /projects/{name}/alias?domain=`: remove the domain from the project.
pub async fn remove(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let domain = query
        .get("domain")
        .ok_or_else(|| ApiError::bad_request("bad_request", "name the domain in ?domain="))?;
    domains::delete(&state.services, &project.name, domain, caller.by())
        .await
        .map_err(domain_error)?;
    Ok(Json(json!({})))
}

/// `GET /v5/domains`: every project's domains, by project, then name.
pub async fn list(State(state): State<AppState>, access: Access) -> Result<Json<Value>, ApiError> {
    access.check_project(None)?;
    let mut domains = Vec::new();
    let mut cursor = None;
    let mut seen = 0;
    while seen < LIST_PROJECTS {
        let page = state
            .services
            .repository
            .list_projects(&PageRequest { limit: 100, cursor })
            .await?;
        seen += page.items.len();
        for project in &page.items {
            let mut of_project = state
                .services
                .repository
                .list_domains(&project.name)
                .await?;
            of_project.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            domains.extend(of_project.iter().map(domain_object));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Json(json!({
        "pagination": pagination(domains.len(), None),
        "domains": domains,
    })))
}

/// The custom domain `raw`, if the token may see its project.
async fn find(state: &AppState, access: &Access, raw: &str) -> Result<Domain, ApiError> {
    let name = DomainName::parse(raw).map_err(|_| not_found("domain"))?;
    let domain = match state.services.repository.get_domain(&name).await {
        Ok(domain) => domain,
        Err(RepositoryError::NotFound) => return Err(not_found("domain")),
        Err(err) => return Err(err.into()),
    };
    access.check_project(Some(&domain.project))?;
    Ok(domain)
}

/// `GET /v4/domains/{name}` (and `/v5/…`): `{domain}`.
pub async fn get(
    State(state): State<AppState>,
    access: Access,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let domain = find(&state, &access, &name).await?;
    Ok(Json(json!({"domain": domain_object(&domain)})))
}

/// `GET /v4/domains/{name}/config`: never `misconfigured` (see the module docs).
pub async fn config(
    State(state): State<AppState>,
    access: Access,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let domain = find(&state, &access, &name).await?;
    Ok(Json(json!({
        "misconfigured": false,
        "configuredBy": domain.is_verified().then_some("TXT"),
        "acceptedChallenges": [],
        "aValues": [],
        "cnames": [],
        "serviceType": "external",
        "nameservers": [],
    })))
}

/// `GET /v1/registrar/domains/{name}/price`: we sell no domains.
pub async fn registrar_price() -> ApiError {
    not_found("registrar")
}

/// `GET /v1/registrar/domains/{name}/availability`: never available to buy here.
pub async fn registrar_availability() -> Json<Value> {
    Json(json!({"available": false}))
}
