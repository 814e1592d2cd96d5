//! API errors: JSON `{"error": {"code", "message"}}` with the right status, plus `"field"`
//! when the error is about one input field. Internal details are logged here and never
//! returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deploystack_core::breaker::BreakerOpen;
use deploystack_core::repository::RepositoryError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer of the API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`), when that is known.
    pub retry_after: Option<u32>,
    /// The input field the error is about (`name`, `retention.keep_previews`), when there is
    /// one: answered as `error.field`.
    pub field: Option<String>,
    /// The digests a manifest names that the server lacks (`missing_blobs`): answered as
    /// `error.missing`.
    pub missing: Option<Vec<String>>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            field: None,
            missing: None,
        }
    }

    /// The same error, listing the blobs a manifest names that the server lacks.
    pub fn with_missing(mut self, missing: Vec<String>) -> Self {
        self.missing = Some(missing);
        self
    }

    /// The same error, about input field `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same error, telling the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for an unknown deployment.
    pub fn deployment_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "deployment_not_found",
            "no deployment with this id",
        )
    }

    /// 409 for a deployment that can no longer be changed that way (a cancel of a final one).
    pub fn deployment_final(status: deploystack_core::model::DeploymentStatus) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "deployment_final",
            format!(
                "the deployment is already {status}; only QUEUED or BUILDING deployments can be canceled"
            ),
        )
    }

    /// 500: logs `detail` and answers with a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; the server log has details",
        )
    }

    /// 503: a dependency is down; logs `detail`.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; try again shortly",
        )
    }
}

impl From<&BreakerOpen> for ApiError {
    /// 503 `unavailable` with `Retry-After`: a circuit breaker refused the call without
    /// trying, so the client learns at once when trying again may work. Logged at debug
    /// only: during an outage every such request lands here, and the breaker's opening was
    /// logged once already (`/metrics` counts the refusals).
    fn from(open: &BreakerOpen) -> Self {
        tracing::debug!(breaker = open.breaker, error = %open, "refused by an open circuit breaker");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; try again after the time in Retry-After",
        )
        .retry_after(u32::try_from(open.retry_after_secs()).unwrap_or(u32::MAX))
    }
}

impl From<RepositoryError> for ApiError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::NotFound => ApiError::deployment_not_found(),
            RepositoryError::Final(status) => ApiError::deployment_final(status),
            RepositoryError::Unavailable(_) => ApiError::unavailable(err),
            RepositoryError::Full(_) => {
                tracing::error!(error = %err, "the repository's disk is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the server's database has no disk space left; free some space and try again",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// The body of every error answer of the API: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`deployment_not_found`, `invalid_query`, …): what a
    /// program branches on.
    #[schema(example = "deployment_not_found")]
    pub code: String,
    /// What went wrong and, where possible, how to fix it: what a person reads.
    #[schema(example = "no deployment with this id")]
    pub message: String,
    /// The input field the error is about (`name`, `retention.keep_previews`), when there
    /// is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// With `missing_blobs`: the sha256 digests of the blobs to upload before sending the
    /// same manifest again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
                missing: self.missing,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_open_breaker_is_503_with_retry_after() {
        let open = BreakerOpen {
            breaker: "storage",
            retry_after: Duration::from_millis(4_200),
        };
        let response = ApiError::from(&open).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn a_full_repository_is_507_not_a_transient_503() {
        let full = ApiError::from(RepositoryError::Full("database or disk is full".into()));
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.code, "insufficient_storage");
        let down = ApiError::from(RepositoryError::Unavailable("connection refused".into()));
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
