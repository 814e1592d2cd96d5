//! The settings: the auth default, the defaults, what a file overrides, secrets never printed, bad values named.

use super::*;

#[test]
fn auth_defaults_to_local_only_on_loopback_and_refuses_local_elsewhere() {
    let loopback: SocketAddr = "127.0.0.1:8000".parse().unwrap();
    let v6: SocketAddr = "[::1]:8000".parse().unwrap();
    let network: SocketAddr = "0.0.0.0:8000".parse().unwrap();
    let mut config = Config::default();
    assert_eq!(config.auth_mode(loopback).unwrap(), AuthMode::Local);
    assert_eq!(config.auth_mode(v6).unwrap(), AuthMode::Local);
    assert_eq!(config.auth_mode(network).unwrap(), AuthMode::Required);
    config.auth = Some(AuthMode::Local);
    assert!(matches!(
        config.auth_mode(network),
        Err(ConfigError::Auth(_))
    ));
    config.auth = Some(AuthMode::LocalUnsafe);
    assert_eq!(config.auth_mode(network).unwrap(), AuthMode::LocalUnsafe);
    config.auth = Some(AuthMode::Required);
    assert_eq!(config.auth_mode(loopback).unwrap(), AuthMode::Required);
    assert_eq!(
        "local-unsafe".parse::<AuthMode>(),
        Ok(AuthMode::LocalUnsafe)
    );
    assert!("open".parse::<AuthMode>().is_err());
}

#[test]
fn defaults_match_the_embedded_shape() {
    let config = Config::default();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(config.queue_url(), "memory://");
    assert!(config.database_url().starts_with("sqlite://"));
    assert!(config.database_url().ends_with("deploystack.db"));
    assert!(config.storage_url().starts_with("file://"));
    assert_eq!(config.body_read_timeout(), Duration::from_secs(30));
    assert_eq!(config.min_free_disk_bytes, 536_870_912);
}

#[test]
fn the_file_overrides_the_defaults_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploystack.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9000\"\nlease_secs = 7\nbody_read_timeout_secs = 5\nmin_free_disk_bytes = 0\n",
    )
    .unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.lease_secs, 7);
    assert_eq!(config.body_read_timeout(), Duration::from_secs(5));
    assert_eq!(config.min_free_disk_bytes, 0);
    assert_eq!(config.max_deliveries, Config::default().max_deliveries);
}

#[test]
fn s3_settings_come_from_the_file_and_the_secret_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(
        &path,
        "storage_url = \"s3://sites/prod\"\n[s3]\nregion = \"eu-west-1\"\nsecret_access_key = \"from-file\"\n",
    )
    .unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(config.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(config.s3.secret_access_key.as_deref(), Some("from-file"));
    assert_eq!(config.base_domain().unwrap().as_str(), "localhost");
    let printed = format!("{config:?}");
    assert!(!printed.contains("from-file"), "{printed}");
}

#[test]
fn secret_and_dns_settings_come_from_the_file_and_keys_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.toml");
    std::fs::write(
        &path,
        "secret_key = \"key-in-the-file\"\nprevious_secret_keys = [\"old-key-1\", \"old-key-2\"]\n\
         dns_servers = [\"127.0.0.1:5353\", \"[::1]:53\"]\n",
    )
    .unwrap();
    let config = Config::from_file(&path).unwrap();
    assert_eq!(
        config.secret_key.as_ref().map(SecretText::expose),
        Some("key-in-the-file")
    );
    assert_eq!(config.previous_secret_keys.len(), 2);
    assert_eq!(config.dns_servers[0].port(), 5353);
    assert!(config.dns_servers[1].is_ipv6());
    let printed = format!("{config:?}");
    assert!(!printed.contains("key-in-the-file"), "{printed}");
    assert!(!printed.contains("old-key"), "{printed}");
    assert!(Config::default().dns_servers.is_empty());
}

#[test]
fn bad_values_name_the_line_or_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \"x\"\nnot_a_setting = 1\n").unwrap();
    let err = Config::from_file(&path).unwrap_err();
    assert!(err.to_string().contains("bad.toml"), "{err}");

    std::fs::write(&path, "serve_cpu_affinity = true\n").unwrap();
    let err = Config::from_file(&path).unwrap_err();
    assert!(err.to_string().contains("serve_cpu_affinity"), "{err}");

    let config = Config {
        base_domain: "sites.example.com:80".to_owned(),
        ..Config::default()
    };
    let err = config.base_domain().unwrap_err();
    assert!(err.to_string().contains("DEPLOYSTACK_BASE_DOMAIN"), "{err}");
}
