//! The environment-variables part of the `Repository` conformance suite: CRUD, the rule that
//! no two variables of a key share a target (also under racing writes), variables going with
//! their project, and the rotation walk over every sealed value.
//!
//! `reseal_all` rewrites every sealed value of the database, upload-time variables of other
//! deployments included (sealing plaintext ones): don't run
//! [`reseal_all_moves_every_value_to_the_current_key`] while another process relies on
//! reading those rows unchanged.

use futures_util::future::join_all;

use super::is_not_found;
use super::projects::{project, random_name};
use crate::model::{
    BuildSettings, DeploymentId, EnvTarget, EnvVar, EnvVarId, EnvVarType, EnvVarUpdate,
    NewDeployment, NewEnvVar, Target,
};
use crate::repository::{Repository, RepositoryError};
use crate::secrets::{Keyring, SecretKey};

use EnvTarget::{Development, Preview, Production};

/// Run every environment-variables check.
pub async fn run_env(repo: &dyn Repository) {
    env_vars_are_created_listed_updated_and_deleted(repo).await;
    a_key_never_shares_a_target(repo).await;
    deleting_a_project_deletes_its_variables(repo).await;
    reseal_all_moves_every_value_to_the_current_key(repo).await;
}

fn new_var(keyring: &Keyring, key: &str, value: &str, targets: &[EnvTarget]) -> NewEnvVar {
    NewEnvVar {
        id: EnvVarId::random(),
        key: key.into(),
        sealed_value: keyring.seal(value).expect("seal"),
        targets: targets.to_vec(),
        kind: EnvVarType::Encrypted,
    }
}

/// Create, list in key order, get, update each field, delete; `NotFound` for an unknown
/// project, an unknown id, another project's id and a repeated delete.
pub async fn env_vars_are_created_listed_updated_and_deleted(repo: &dyn Repository) {
    let keyring = Keyring::new(SecretKey::generate(), []);
    let name = project(repo, "env-crud").await;
    let other = project(repo, "env-other").await;
    assert_eq!(
        repo.list_env_vars(&name).await.expect("list_env_vars"),
        vec![]
    );

    let b = new_var(&keyring, "B_KEY", "b-value", &[Production, Preview]);
    let a = new_var(&keyring, "A_KEY", "a-value", &[Development]);
    let created_b = repo
        .create_env_var(&name, &b)
        .await
        .expect("create_env_var");
    assert_eq!(
        (
            &created_b.id,
            &created_b.key,
            &created_b.sealed_value,
            &created_b.targets
        ),
        (&b.id, &b.key, &b.sealed_value, &b.targets)
    );
    assert_eq!(created_b.project, name);
    assert_eq!(created_b.kind, EnvVarType::Encrypted);
    let created_a = repo
        .create_env_var(&name, &a)
        .await
        .expect("create_env_var");
    let listed = repo.list_env_vars(&name).await.expect("list_env_vars");
    assert_eq!(listed, vec![created_a.clone(), created_b.clone()]);
    assert_eq!(
        repo.get_env_var(&name, &b.id).await.expect("get_env_var"),
        created_b
    );
    assert!(is_not_found(&repo.get_env_var(&other, &b.id).await));
    assert!(is_not_found(
        &repo.get_env_var(&name, &EnvVarId::random()).await
    ));

    let sealed = keyring.seal("new-value").expect("seal");
    let updated = repo
        .update_env_var(
            &name,
            &b.id,
            &EnvVarUpdate {
                sealed_value: Some(sealed.clone()),
                targets: Some(vec![Preview]),
                kind: Some(EnvVarType::Sensitive),
            },
        )
        .await
        .expect("update_env_var");
    assert_eq!(updated.sealed_value, sealed);
    assert_eq!(updated.targets, vec![Preview]);
    assert_eq!(updated.kind, EnvVarType::Sensitive);
    assert_eq!(updated.created_at, created_b.created_at);
    assert!(updated.updated_at >= created_b.updated_at);
    let kept = repo
        .update_env_var(&name, &b.id, &EnvVarUpdate::default())
        .await
        .expect("update_env_var");
    assert_eq!((kept.sealed_value, kept.targets), (sealed, vec![Preview]));
    assert!(is_not_found(
        &repo
            .update_env_var(&other, &b.id, &EnvVarUpdate::default())
            .await
    ));

    assert!(is_not_found(&repo.delete_env_var(&other, &b.id).await));
    repo.delete_env_var(&name, &b.id)
        .await
        .expect("delete_env_var");
    assert!(is_not_found(&repo.delete_env_var(&name, &b.id).await));
    assert_eq!(
        repo.list_env_vars(&name).await.expect("list_env_vars"),
        vec![created_a]
    );

    let unknown = random_name("env-none");
    assert!(is_not_found(&repo.list_env_vars(&unknown).await));
    assert!(is_not_found(&repo.create_env_var(&unknown, &a).await));
}

/// A second variable of a key may take only targets the key does not have yet, on create
/// and on update; of racing creates for one target exactly one wins.
pub async fn a_key_never_shares_a_target(repo: &dyn Repository) {
    let keyring = Keyring::new(SecretKey::generate(), []);
    let name = project(repo, "env-conflict").await;
    repo.create_env_var(&name, &new_var(&keyring, "API", "1", &[Production]))
        .await
        .expect("create_env_var");
    let preview = new_var(&keyring, "API", "2", &[Preview]);
    repo.create_env_var(&name, &preview)
        .await
        .expect("a second target is free");
    let clash = repo
        .create_env_var(
            &name,
            &new_var(&keyring, "API", "3", &[Development, Production]),
        )
        .await;
    assert!(
        matches!(&clash, Err(RepositoryError::Conflict(m)) if m.contains("API") && m.contains("production")),
        "{clash:?}"
    );
    let moved = repo
        .update_env_var(
            &name,
            &preview.id,
            &EnvVarUpdate {
                targets: Some(vec![Production]),
                ..EnvVarUpdate::default()
            },
        )
        .await;
    assert!(
        matches!(moved, Err(RepositoryError::Conflict(_))),
        "{moved:?}"
    );
    // Its own targets never clash with themselves.
    repo.update_env_var(
        &name,
        &preview.id,
        &EnvVarUpdate {
            targets: Some(vec![Preview, Development]),
            ..EnvVarUpdate::default()
        },
    )
    .await
    .expect("update_env_var");
    assert_eq!(
        repo.list_env_vars(&name)
            .await
            .expect("list_env_vars")
            .len(),
        2
    );

    let racing: Vec<NewEnvVar> = (0..4)
        .map(|n| new_var(&keyring, "RACE", &n.to_string(), &[Preview]))
        .collect();
    let results = join_all(racing.iter().map(|new| repo.create_env_var(&name, new))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(RepositoryError::Conflict(_)))),
        "{results:?}"
    );
}

/// A deleted project's variables are gone: a project created again under its name has none.
pub async fn deleting_a_project_deletes_its_variables(repo: &dyn Repository) {
    let keyring = Keyring::new(SecretKey::generate(), []);
    let name = project(repo, "env-delete").await;
    let var = new_var(&keyring, "GONE", "x", &[Production]);
    repo.create_env_var(&name, &var)
        .await
        .expect("create_env_var");
    repo.delete_project(&name).await.expect("delete_project");
    assert!(is_not_found(&repo.list_env_vars(&name).await));
    repo.create_project(&crate::model::NewProject {
        name: name.clone(),
        build_settings: BuildSettings::default(),
        retention: crate::model::Retention::default(),
    })
    .await
    .expect("create_project");
    assert_eq!(
        repo.list_env_vars(&name).await.expect("list_env_vars"),
        vec![]
    );
    assert!(is_not_found(&repo.get_env_var(&name, &var.id).await));
}

/// Values sealed under an old key, and upload-time values stored in plaintext, end under the
/// current key and still open to the same text; a second run changes nothing of them; a
/// value whose key is gone is counted as failed and left as it was.
pub async fn reseal_all_moves_every_value_to_the_current_key(repo: &dyn Repository) {
    let (old, new) = (SecretKey::generate(), SecretKey::generate());
    let before = Keyring::new(old.clone(), []);
    let name = project(repo, "env-rotate").await;
    let var = new_var(&before, "TOKEN", "rotate-me", &[Production]);
    repo.create_env_var(&name, &var)
        .await
        .expect("create_env_var");
    let lost = Keyring::new(SecretKey::generate(), []);
    let orphan = new_var(&lost, "ORPHAN", "no-key", &[Preview]);
    repo.create_env_var(&name, &orphan)
        .await
        .expect("create_env_var");
    let deployment = repo
        .create_deployment(&NewDeployment {
            id: DeploymentId::random(),
            project: Some(name.clone()),
            target: Target::Production,
            source_key: "sources/rotate.zip".into(),
            source_files: Vec::new(),
            settings: BuildSettings::default(),
            env: vec![
                EnvVar {
                    name: "SEALED".into(),
                    value: before.seal("sealed-upload").expect("seal"),
                    sensitive: true,
                },
                EnvVar {
                    name: "LEGACY".into(),
                    value: "plaintext-upload".into(),
                    sensitive: false,
                },
            ],
            created_by: None,
        })
        .await
        .expect("create_deployment");

    let rotating = Keyring::new(new.clone(), [old]);
    let report = repo.reseal_all(&rotating).await.expect("reseal_all");
    assert!(report.env_vars.resealed >= 1, "{report:?}");
    assert!(report.env_vars.failed >= 1, "{report:?}");
    assert!(report.build_env.resealed >= 2, "{report:?}");

    let after = Keyring::new(new, []);
    let stored = repo.get_env_var(&name, &var.id).await.expect("get_env_var");
    assert_eq!(after.open(&stored.sealed_value).expect("open"), "rotate-me");
    let untouched = repo
        .get_env_var(&name, &orphan.id)
        .await
        .expect("get_env_var");
    assert_eq!(untouched.sealed_value, orphan.sealed_value);
    let env = repo
        .get_deployment(&deployment.id)
        .await
        .expect("get_deployment")
        .env;
    let opened: Vec<(String, String, bool)> = env
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                after.open(&v.value).expect("open"),
                v.sensitive,
            )
        })
        .collect();
    assert_eq!(
        opened,
        [
            ("SEALED".into(), "sealed-upload".into(), true),
            ("LEGACY".into(), "plaintext-upload".into(), false)
        ]
    );

    repo.reseal_all(&rotating).await.expect("reseal_all");
    assert_eq!(
        repo.get_env_var(&name, &var.id)
            .await
            .expect("get_env_var")
            .sealed_value,
        stored.sealed_value,
        "a second run rewrote a value already under the current key"
    );
    repo.delete_project(&name).await.expect("delete_project");
}
