//! How a failed request reads to a person: the server's `{"error": {"code", "message"}}`
//! turned into a [`CliError`] of the right kind (and so exit code), with a hint chosen by
//! the server's error code; and transport failures turned into "could not reach …".

use serde_json::Value;

use crate::config::Origin;
use crate::exit::{CliError, Kind};

/// What a request knew about where it was going, to word its errors.
pub struct Context<'a> {
    /// The server's address.
    pub base: &'a str,
    /// Whether a token was sent, and where it came from.
    pub token: Option<Origin>,
}

/// The error for an answer with `status` ≥ 400 and body `text`.
pub fn from_answer(context: &Context<'_>, status: u16, text: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|body| body.get("error").cloned())
        .filter(|error| error.get("code").is_some_and(Value::is_string));
    let Some(error) = parsed else {
        return CliError::new(
            Kind::Api,
            format!(
                "the server at {} answered {status} with something other than DeployStack's API",
                context.base
            ),
        )
        .with_hint("check the address: --url, DEPLOYSTACK_URL or `deploystack login`");
    };
    let code = error["code"].as_str().unwrap_or_default().to_owned();
    let message = error["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map_or_else(
            || format!("the server answered {status} {code}"),
            str::to_owned,
        );
    let kind = match (status, code.as_str()) {
        // No API route has that path: an older server, or not this API.
        (_, "not_found") => Kind::Api,
        (401 | 403, _) => Kind::Auth,
        (404 | 410, _) => Kind::NotFound,
        _ => Kind::Api,
    };
    let err = CliError::from_server(kind, status, message, error);
    match hint(context, status, &code) {
        Some(hint) => err.with_hint(hint),
        None => err,
    }
}

fn hint(context: &Context<'_>, status: u16, code: &str) -> Option<String> {
    let login = format!(
        "run `deploystack login --url {}` with a valid token, or set DEPLOYSTACK_TOKEN",
        context.base
    );
    Some(match (status, code) {
        (401, _) => match context.token {
            None => format!("this server needs a token: {login}"),
            Some(origin) => format!(
                "the token from {} was refused: {login} (make one with `deploystack tokens create` or `deploystack-server token create`)",
                origin.describe("token")
            ),
        },
        (403, "foreign_host" | "cross_site") => {
            format!("requests without a token are only taken from this machine: {login}")
        }
        (403, _) => {
            "use a token with that scope and project; `deploystack whoami` shows this one's"
                .to_owned()
        }
        (_, "not_found") => format!(
            "the server at {} has no such API route: is it a DeployStack server, and as new as this command?",
            context.base
        ),
        (_, "project_not_found") => {
            "`deploystack projects ls` lists the projects; `deploystack projects add NAME` creates one"
                .to_owned()
        }
        (_, "deployment_not_found" | "deployment_deleted") => {
            "`deploystack ls` lists the deployments".to_owned()
        }
        (_, "domain_not_found") => "`deploystack domains ls` lists the project's domains".to_owned(),
        (_, "env_not_found") => "`deploystack env ls` lists the project's variables".to_owned(),
        (_, "token_not_found") => "`deploystack tokens ls` lists the tokens".to_owned(),
        (429, _) => "the server is rate limiting this token; wait a moment and try again".to_owned(),
        (500..=599, _) => "the server failed; its log says why".to_owned(),
        _ => return None,
    })
}

/// The error for a request that got no answer.
pub fn unreachable(base: &str, err: &ureq::Error) -> CliError {
    let reason = match err {
        ureq::Error::Io(io) => io.kind().to_string(),
        ureq::Error::HostNotFound => "no such host".to_owned(),
        ureq::Error::ConnectionFailed => "the connection failed".to_owned(),
        ureq::Error::Timeout(_) => "it did not answer in time".to_owned(),
        other => other.to_string(),
    };
    CliError::new(
        Kind::Unreachable,
        format!("could not reach {base}: {reason}. Is the server running?"),
    )
    .with_hint("set DEPLOYSTACK_URL, pass --url, or run `deploystack login --url URL`")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: Context<'static> = Context {
        base: "http://127.0.0.1:8000",
        token: Some(Origin::Env),
    };

    #[test]
    fn statuses_decide_the_kind_and_codes_the_hint() {
        let body = r#"{"error":{"code":"project_not_found","message":"no project named web"}}"#;
        let err = from_answer(&CONTEXT, 404, body);
        assert_eq!(err.kind(), Kind::NotFound);
        assert_eq!(err.message(), "no project named web");
        assert!(err.hint().unwrap().contains("projects ls"));

        let body = r#"{"error":{"code":"invalid_token","message":"this token is not valid"}}"#;
        let err = from_answer(&CONTEXT, 401, body);
        assert_eq!(err.kind(), Kind::Auth);
        assert!(err.hint().unwrap().contains("DEPLOYSTACK_TOKEN"), "{err}");

        let body = r#"{"error":{"code":"missing_blobs","message":"m","missing":["ab"]}}"#;
        let err = from_answer(&CONTEXT, 400, body);
        assert_eq!(err.kind(), Kind::Api);
        assert_eq!(err.server().unwrap()["missing"][0], "ab");
    }

    #[test]
    fn an_answer_that_is_not_the_api_says_to_check_the_address() {
        let err = from_answer(&CONTEXT, 404, "<html>nginx</html>");
        assert_eq!(err.kind(), Kind::Api);
        assert!(err.message().contains("other than DeployStack's API"));
        let err = from_answer(
            &CONTEXT,
            404,
            r#"{"error":{"code":"not_found","message":"no API route has this path"}}"#,
        );
        assert_eq!(err.kind(), Kind::Api);
    }
}
