//! OpenAPI schemas of the identifier types, which serialize as strings of a fixed shape
//! (feature `openapi`). The other model types derive theirs beside their definition.
//!
//! ## Why written by hand?
//! The identifiers are newtypes over bytes or a checked `String` with their own serde
//! implementations; a derive would describe their Rust layout, not the string the API
//! shows. The pattern here is the one `FromStr` accepts.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::{DeploymentId, ProjectName};

impl PartialSchema for DeploymentId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{32}$"))
            .description(Some(
                "A deployment id: 128 random bits as 32 lowercase hexadecimal characters.",
            ))
            .examples([serde_json::json!("3f9c1b2e4d5a6978a0b1c2d3e4f50617")])
            .into()
    }
}

impl ToSchema for DeploymentId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DeploymentId")
    }
}

impl PartialSchema for ProjectName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"))
            .min_length(Some(1))
            .max_length(Some(63))
            .description(Some(
                "A project name: a DNS-safe slug of a-z, 0-9 and '-', not starting or ending with '-'.",
            ))
            .examples([serde_json::json!("marketing-site")])
            .into()
    }
}

impl ToSchema for ProjectName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProjectName")
    }
}
