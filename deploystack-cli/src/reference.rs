//! A deployment named on the command line: its id (32 hex digits), or any URL it is served
//! at — its own host, `http(s)://<id>.<base-domain>/…`, or the path-based address
//! `http(s)://<host>/<id>/…` — so a person can paste what `deploy` printed or what the
//! browser shows.

use crate::exit::CliError;

/// The deployment id named by `text` (lowercase), or a usage error saying what is expected.
pub fn deployment_id(text: &str) -> Result<String, CliError> {
    let text = text.trim();
    if is_id(text) {
        return Ok(text.to_ascii_lowercase());
    }
    from_url(text).ok_or_else(|| {
        CliError::usage(format!(
            "{text:?} names no deployment: give its id (32 hex digits) or a URL it is served at, http://<id>.<domain>/ or http://<host>/<id>/"
        ))
        .with_hint("`deploystack ls` lists deployments with their ids and URLs")
    })
}

/// Whether `text` is a deployment id.
pub fn is_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn from_url(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    // Credentials and the port are not part of the host name.
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    let first_label = host.split('.').next()?;
    if host.contains('.') && is_id(first_label) {
        return Some(first_label.to_owned());
    }
    let first_segment = path.strip_prefix('/')?.split(['/', '?', '#']).next()?;
    is_id(first_segment).then(|| first_segment.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f9c0b5e9d2a4c7f8e3b1a0d9c8b7a6f";

    #[test]
    fn an_id_is_taken_as_it_is_in_lowercase() {
        assert_eq!(deployment_id(ID).unwrap(), ID);
        assert_eq!(deployment_id(&ID.to_uppercase()).unwrap(), ID);
        assert_eq!(deployment_id(&format!(" {ID}\n")).unwrap(), ID);
    }

    #[test]
    fn the_id_is_read_from_the_host_or_the_first_path_segment_of_a_url() {
        for url in [
            format!("http://{ID}.localhost:8000/"),
            format!("https://{ID}.deploy.example.com/assets/app.js?x=1"),
            format!("http://{ID}.localhost"),
            format!("http://127.0.0.1:8000/{ID}/"),
            format!("http://127.0.0.1:8000/{ID}"),
            format!("https://deploy.example.com/{ID}/index.html#top"),
            format!("http://user:pw@{ID}.localhost:8000/"),
            format!("HTTP://{}.LOCALHOST:8000/", ID.to_uppercase()),
        ] {
            assert_eq!(deployment_id(&url).unwrap(), ID, "{url}");
        }
    }

    #[test]
    fn anything_else_is_a_usage_error_that_says_what_is_expected() {
        for text in [
            "",
            "3f9c",
            &format!("{ID}0"),
            "http://shop.localhost:8000/",
            "http://127.0.0.1:8000/api/v1/deployments",
            &format!("ftp://{ID}.localhost/"),
            &format!("http://x/a/{ID}/"),
            // A bare host that is an id has no base domain: it is not a deployment host.
            &format!("http://{ID}/"),
        ] {
            let err = deployment_id(text).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{text}");
            assert!(err.message().contains("32 hex digits"), "{text}");
        }
    }
}
