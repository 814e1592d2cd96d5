//! The variables service on in-memory services: who sees which value, the conflict rule,
//! the sensitive rule of PATCH, desired-state sync, what a build receives, and rotation.
#![cfg(feature = "sqlite")]

use super::*;
use crate::config::Config;
use crate::model::{
    BuildSettings, ChangeAction, Deployment, DeploymentId, EnvVar, NewDeployment, NewProject,
    Retention, Target,
};
use crate::secrets::SecretKey;
use EnvTarget::{Development, Preview, Production};

async fn services_with_project() -> (Services, ProjectName) {
    let services = Services::in_memory(Config::default()).await.unwrap();
    let name: ProjectName = "shop".parse().unwrap();
    crate::services::projects::create(
        &services,
        NewProject {
            name: name.clone(),
            build_settings: BuildSettings::default(),
            retention: Retention::default(),
        },
        None,
    )
    .await
    .unwrap();
    (services, name)
}

fn var(key: &str, value: &str, targets: &[EnvTarget], kind: EnvVarType) -> DesiredEnvVar {
    DesiredEnvVar {
        key: key.into(),
        value: value.into(),
        targets: targets.to_vec(),
        kind,
    }
}

#[tokio::test]
async fn each_type_shows_its_value_only_to_whom_it_may() {
    let (services, shop) = services_with_project().await;
    let plain = var(
        "API_URL",
        "https://api.example",
        &[Production],
        EnvVarType::Plain,
    );
    let created = create(&services, &shop, plain, None).await.unwrap();
    assert_eq!(created.value.as_deref(), Some("https://api.example"));
    let encrypted = create(
        &services,
        &shop,
        var(
            "DB_URL",
            "postgres://db",
            &[Production, Preview],
            EnvVarType::Encrypted,
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(encrypted.value, None);
    assert_eq!(encrypted.targets, vec![Production, Preview]);
    let sensitive = create(
        &services,
        &shop,
        var("TOKEN", "tok-123456", &[Preview], EnvVarType::Sensitive),
        None,
    )
    .await
    .unwrap();

    let hidden = list(&services, &shop, false).await.unwrap();
    let values: Vec<_> = hidden
        .iter()
        .map(|v| (v.key.as_str(), v.value.as_deref()))
        .collect();
    assert_eq!(
        values,
        [
            ("API_URL", Some("https://api.example")),
            ("DB_URL", None),
            ("TOKEN", None)
        ]
    );
    let shown = list(&services, &shop, true).await.unwrap();
    let values: Vec<_> = shown
        .iter()
        .map(|v| (v.key.as_str(), v.value.as_deref()))
        .collect();
    assert_eq!(
        values,
        [
            ("API_URL", Some("https://api.example")),
            ("DB_URL", Some("postgres://db")),
            ("TOKEN", None)
        ]
    );
    let one = get(&services, &shop, &sensitive.id, true).await.unwrap();
    assert_eq!(one.value, None);
    assert_eq!(
        get(&services, &shop, &encrypted.id, true)
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("postgres://db")
    );

    // At rest, every type is sealed.
    for stored in services.repository.list_env_vars(&shop).await.unwrap() {
        assert!(stored.sealed_value.starts_with("v1:"), "{stored:?}");
        for plaintext in ["https://api.example", "postgres://db", "tok-123456"] {
            assert!(!stored.sealed_value.contains(plaintext));
        }
    }
}

#[tokio::test]
async fn a_key_may_not_share_a_target_with_itself() {
    let (services, shop) = services_with_project().await;
    create(
        &services,
        &shop,
        var("A", "1", &[Production], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap();
    let preview = create(
        &services,
        &shop,
        var("A", "2", &[Preview, Development], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap();
    let err = create(
        &services,
        &shop,
        var("A", "3", &[Development], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, EnvError::Conflict { field, message } if field == "key" && message.contains("development")),
        "{err:?}"
    );
    let err = update(
        &services,
        &shop,
        &preview.id,
        EnvVarPatch {
            targets: Some(vec![Production]),
            ..EnvVarPatch::default()
        },
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, EnvError::Conflict { field, .. } if field == "targets"),
        "{err:?}"
    );
    let err = create(
        &services,
        &shop,
        var("1A", "x", &[Production], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, EnvError::Invalid { field, .. } if field == "key"),
        "{err:?}"
    );
    let err = create(
        &services,
        &shop,
        var("B", "x", &[], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, EnvError::Invalid { field, .. } if field == "targets"),
        "{err:?}"
    );
    let unknown: ProjectName = "nope".parse().unwrap();
    let err = create(
        &services,
        &unknown,
        var("B", "x", &[Preview], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EnvError::ProjectNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn a_sensitive_value_becomes_readable_only_with_a_new_value() {
    let (services, shop) = services_with_project().await;
    let token = create(
        &services,
        &shop,
        var("TOKEN", "old-secret", &[Production], EnvVarType::Sensitive),
        None,
    )
    .await
    .unwrap();
    let reveal = EnvVarPatch {
        kind: Some(EnvVarType::Plain),
        ..EnvVarPatch::default()
    };
    let err = update(&services, &shop, &token.id, reveal, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EnvError::Invalid { field, .. } if field == "type"),
        "{err:?}"
    );
    let replaced = update(
        &services,
        &shop,
        &token.id,
        EnvVarPatch {
            value: Some("new-value".into()),
            kind: Some(EnvVarType::Plain),
            ..EnvVarPatch::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(replaced.value.as_deref(), Some("new-value"));

    delete(&services, &shop, &token.id, None).await.unwrap();
    let again = delete(&services, &shop, &token.id, None).await.unwrap_err();
    assert!(
        matches!(again, EnvError::NotFound(id) if id == token.id),
        "{again:?}"
    );
}

#[tokio::test]
async fn sync_reaches_the_list_and_a_second_apply_changes_nothing() {
    let (services, shop) = services_with_project().await;
    create(
        &services,
        &shop,
        var("OLD", "x", &[Production], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap();
    create(
        &services,
        &shop,
        var("TOKEN", "s1-secret", &[Production], EnvVarType::Sensitive),
        None,
    )
    .await
    .unwrap();
    let desired = vec![
        var("TOKEN", "s2-secret", &[Production], EnvVarType::Sensitive),
        var(
            "API",
            "https://a",
            &[Preview, Production],
            EnvVarType::Plain,
        ),
    ];
    let changes = sync(&services, &shop, &desired, None).await.unwrap();
    let summary: Vec<_> = changes
        .iter()
        .map(|c| (c.action, c.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (ChangeAction::Deleted, "OLD (production)"),
            (ChangeAction::Updated, "TOKEN (production)"),
            (ChangeAction::Created, "API (production, preview)"),
        ]
    );
    assert_eq!(
        sync(&services, &shop, &desired, None).await.unwrap(),
        vec![]
    );
    let stored = services.repository.list_env_vars(&shop).await.unwrap();
    let token = stored.iter().find(|v| v.key == "TOKEN").unwrap();
    assert_eq!(
        services.keyring.open(&token.sealed_value).unwrap(),
        "s2-secret"
    );

    let twice = [
        var("A", "1", &[Production], EnvVarType::Plain),
        var("A", "2", &[Production, Preview], EnvVarType::Plain),
    ];
    let err = validate_desired(&twice).unwrap_err();
    assert!(
        matches!(&err, EnvError::Conflict { field, .. } if field == "env[1].targets"),
        "{err:?}"
    );
    let bad = [var("PATH", "1", &[Production], EnvVarType::Plain)];
    let err = sync(&services, &shop, &bad, None).await.unwrap_err();
    assert!(
        matches!(&err, EnvError::Invalid { field, .. } if field == "env[0].key"),
        "{err:?}"
    );
    assert_eq!(
        services
            .repository
            .list_env_vars(&shop)
            .await
            .unwrap()
            .len(),
        2,
        "an invalid list changed something"
    );
}

#[tokio::test]
async fn a_build_gets_its_targets_variables_and_the_upload_overrides_them() {
    let (services, shop) = services_with_project().await;
    create(
        &services,
        &shop,
        var(
            "SHARED",
            "project",
            &[Production, Preview],
            EnvVarType::Plain,
        ),
        None,
    )
    .await
    .unwrap();
    create(
        &services,
        &shop,
        var(
            "PROD_ONLY",
            "p-secret",
            &[Production],
            EnvVarType::Encrypted,
        ),
        None,
    )
    .await
    .unwrap();
    create(
        &services,
        &shop,
        var("LOCAL", "dev", &[Development], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap();
    let upload = seal_upload_env(
        &services.keyring,
        vec![EnvVar {
            name: "SHARED".into(),
            value: "upload".into(),
            sensitive: false,
        }],
    )
    .unwrap();
    assert!(Keyring::is_sealed(&upload[0].value));
    let deployment = services
        .repository
        .create_deployment(&NewDeployment {
            id: DeploymentId::random(),
            project: Some(shop.clone()),
            target: Target::Production,
            source_key: "sources/x.zip".into(),
            source_files: Vec::new(),
            settings: BuildSettings::default(),
            env: upload,
            created_by: None,
        })
        .await
        .unwrap();
    let env = for_build(&services, &deployment).await.unwrap();
    let seen: Vec<_> = env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str(), v.sensitive))
        .collect();
    assert_eq!(
        seen,
        [("PROD_ONLY", "p-secret", true), ("SHARED", "upload", false)]
    );

    let preview = Deployment {
        target: Target::Preview,
        env: vec![],
        ..deployment
    };
    let env = for_build(&services, &preview).await.unwrap();
    let seen: Vec<_> = env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(seen, [("SHARED", "project")]);
    // A value stored before sealing existed is read as it is.
    assert_eq!(
        open_upload_value(&services.keyring, "plain-old").unwrap(),
        "plain-old"
    );
}

#[tokio::test]
async fn rotation_moves_every_value_to_the_new_key() {
    let (services, shop) = services_with_project().await;
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let with_a = services.clone().with_keyring(Keyring::new(a.clone(), []));
    create(
        &with_a,
        &shop,
        var("TOKEN", "secret-1", &[Production], EnvVarType::Sensitive),
        None,
    )
    .await
    .unwrap();
    create(
        &with_a,
        &shop,
        var("API", "https://x", &[Preview], EnvVarType::Plain),
        None,
    )
    .await
    .unwrap();

    let rotating = services.clone().with_keyring(Keyring::new(b.clone(), [a]));
    let report = rotate(&rotating).await.unwrap();
    assert_eq!(report.env_vars.resealed, 2, "{report:?}");
    assert_eq!(rotate(&rotating).await.unwrap().env_vars.current, 2);

    let with_b_only = services.clone().with_keyring(Keyring::new(b, []));
    let stored = with_b_only.repository.list_env_vars(&shop).await.unwrap();
    let opened: Vec<String> = stored
        .iter()
        .map(|v| with_b_only.keyring.open(&v.sealed_value).unwrap())
        .collect();
    assert_eq!(opened, ["https://x", "secret-1"]);
}
