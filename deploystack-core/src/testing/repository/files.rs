//! Conformance: what a publish writes — the manifest, its variants and its log lines — the
//! blob collection protocol, and build logs.
use super::*;

/// `logs_after` returns the lines stored after a sequence number, in order and with
/// increasing numbers, only of its own deployment, at most `limit` at a time.
pub async fn logs_after_returns_only_newer_lines(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let other = create(repo).await.id;
    let at = now_ms();
    let line = |message: &str| LogLine {
        attempt: 1,
        at,
        stream: LogStream::Stdout,
        message: message.to_owned(),
    };
    assert!(
        repo.logs_after(&id, 0, 100)
            .await
            .expect("logs_after failed")
            .is_empty(),
        "a new deployment has lines"
    );
    repo.append_log(&id, &[line("one"), line("two")])
        .await
        .expect("append_log failed");
    repo.append_log(&other, &[line("elsewhere")])
        .await
        .expect("append_log failed");
    let first = repo
        .logs_after(&id, 0, 100)
        .await
        .expect("logs_after failed");
    let messages: Vec<&str> = first.iter().map(|l| l.line.message.as_str()).collect();
    assert_eq!(messages, ["one", "two"], "logs_after from the start");
    assert!(
        first[0].seq > 0 && first[0].seq < first[1].seq,
        "sequence numbers do not increase"
    );
    assert_eq!(first[0].line, line("one"), "the line did not round-trip");

    let last = first[1].seq;
    assert!(
        repo.logs_after(&id, last, 100)
            .await
            .expect("logs_after failed")
            .is_empty(),
        "lines after the last one"
    );
    repo.append_log(&id, &[line("three"), line("four"), line("five")])
        .await
        .expect("append_log failed");
    let next = repo
        .logs_after(&id, last, 2)
        .await
        .expect("logs_after failed");
    let messages: Vec<&str> = next.iter().map(|l| l.line.message.as_str()).collect();
    assert_eq!(messages, ["three", "four"], "logs_after with a limit");
    assert!(next[0].seq > last, "a new line numbered before an old one");
    let rest = repo
        .logs_after(&id, next[1].seq, 100)
        .await
        .expect("logs_after failed");
    let messages: Vec<&str> = rest.iter().map(|l| l.line.message.as_str()).collect();
    assert_eq!(messages, ["five"], "the rest after a limited read");
}

/// The log lines given to `publish` are stored with the status change: they are there as
/// soon as the deployment reads `READY`, after the lines appended before, and a publish that
/// is fenced out stores none of them.
pub async fn publish_stores_its_log_lines_with_the_status(repo: &dyn Repository) {
    let line = |attempt, message: &str| LogLine {
        attempt,
        at: OffsetDateTime::now_utc(),
        stream: LogStream::System,
        message: message.to_owned(),
    };
    let id = create(repo).await.id;
    let stale = claim(repo, &id, "zombie", SHORT_LEASE).await.attempt;
    pause().await;
    let current = claim(repo, &id, "worker", LONG_LEASE).await.attempt;
    let files = [file("index.html", &format!("logged {id}"))];
    touch(repo, &files).await;
    repo.append_log(&id, &[line(current, "building")])
        .await
        .expect("append_log");

    let fenced = PublishedBuild {
        log: vec![line(stale, "published by the zombie")],
        ..published_build(&files)
    };
    let result = repo.publish(&id, stale, &fenced).await;
    assert!(is_lease_lost(&result), "a stale publish: {result:?}");

    let build = PublishedBuild {
        log: vec![line(current, "published 1 file")],
        ..published_build(&files)
    };
    let published = repo.publish(&id, current, &build).await.expect("publish");
    assert_eq!(published.status, DeploymentStatus::Ready);
    let messages: Vec<String> = repo
        .logs(&id)
        .await
        .expect("logs")
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(messages, ["building", "published 1 file"]);
}

/// `publish` writes the manifest, the counts and `READY` together, and clears the lease;
/// afterwards the attempt is spent.
pub async fn publish_writes_the_manifest_atomically(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let claim = claim(repo, &id, "worker", LONG_LEASE).await;
    let shared = format!("shared {id}");
    let files = [
        file("index.html", &format!("<h1>{id}</h1>")),
        file("css/site.css", &shared),
        file("assets/copy.css", &shared),
        file("empty.txt", ""),
    ];
    touch(repo, &files).await;

    let ready = repo
        .publish(&id, claim.attempt, &published_build(&files))
        .await
        .expect("publish failed");
    assert_eq!(
        ready.status,
        DeploymentStatus::Ready,
        "published deployment not READY"
    );
    assert_eq!(ready.attempt, claim.attempt, "publish changed the attempt");
    assert_eq!(ready.file_count, 4, "file_count");
    let total: u64 = files.iter().map(|f| f.size).sum();
    assert_eq!(
        u64::try_from(ready.total_bytes).ok(),
        Some(total),
        "total_bytes"
    );
    assert!(ready.ready_at.is_some(), "ready_at not set");
    assert_eq!(ready.lease_owner, None, "lease owner kept after publish");
    assert_eq!(ready.lease_expires_at, None, "lease kept after publish");
    assert_eq!(ready.error, None, "publish set an error");
    assert_eq!(
        get(repo, &id).await,
        ready,
        "get differs from what publish returned"
    );

    for f in &files {
        let found = repo
            .find_file(&id, &f.path)
            .await
            .expect("find_file failed");
        assert_eq!(found.as_ref(), Some(f), "find_file({:?})", f.path);
    }
    let absent = repo
        .find_file(&id, "missing.html")
        .await
        .expect("find_file failed");
    assert_eq!(absent, None, "find_file of a path not in the manifest");
    let mut by_path = files.to_vec();
    by_path.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        list_files(repo, &id).await,
        by_path,
        "list_files is not the manifest by path"
    );

    let again = repo
        .publish(&id, claim.attempt, &published_build(&files[..1]))
        .await;
    assert!(
        is_lease_lost(&again),
        "publishing a READY deployment again: {again:?}"
    );
    let renew = repo.renew_lease(&id, claim.attempt, LONG_LEASE).await;
    assert!(is_lease_lost(&renew), "renewing after publish: {renew:?}");
    assert_eq!(
        list_files(repo, &id).await.len(),
        4,
        "a refused publish changed the manifest"
    );
}

/// Log lines come back in the order they were appended, across batches and attempts.
pub async fn logs_keep_append_order_across_attempts(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let other = create(repo).await.id;
    let at = now_ms();
    let line = |attempt, stream, message: &str| LogLine {
        attempt,
        at,
        stream,
        message: message.to_owned(),
    };
    let first = [
        line(1, LogStream::System, "detected a static site"),
        line(1, LogStream::Stdout, "building"),
        line(1, LogStream::Stderr, "warning: something"),
    ];
    let second = [
        line(2, LogStream::System, "retrying"),
        line(2, LogStream::Stdout, ""),
        line(2, LogStream::Stdout, "done ✓"),
    ];
    repo.append_log(&id, &first)
        .await
        .expect("append_log failed");
    repo.append_log(&other, &[line(1, LogStream::Stdout, "elsewhere")])
        .await
        .expect("append_log failed");
    repo.append_log(&id, &[])
        .await
        .expect("appending no lines failed");
    repo.append_log(&id, &second)
        .await
        .expect("append_log failed");

    let logs = repo.logs(&id).await.expect("logs failed");
    let expected: Vec<LogLine> = first.iter().chain(&second).cloned().collect();
    assert_eq!(logs, expected, "logs are not the appended lines in order");
    let fresh = create(repo).await.id;
    assert!(
        repo.logs(&fresh).await.expect("logs failed").is_empty(),
        "a new deployment has log lines"
    );
}

/// The garbage-collection protocol: only old, unreferenced blobs are claimed; a claimed blob
/// cannot be touched or published until forgotten; stale claims are handed out again.
pub async fn blob_collection_protocol(repo: &dyn Repository) {
    let tag = DeploymentId::random();
    let unused = file("unused.txt", &format!("unused {tag}"));
    let referenced = file("referenced.txt", &format!("referenced {tag}"));
    let fresh = file("fresh.txt", &format!("fresh {tag}"));
    touch(repo, &[unused.clone(), referenced.clone()]).await;
    let owner = create(repo).await.id;
    let attempt = claim(repo, &owner, "worker", LONG_LEASE).await.attempt;
    publish(repo, &owner, attempt, std::slice::from_ref(&referenced)).await;

    pause().await;
    let cutoff = OffsetDateTime::now_utc();
    pause().await;
    touch(repo, std::slice::from_ref(&fresh)).await;

    let claimed = collect(repo, cutoff).await;
    assert!(
        claimed.contains(&unused.sha256),
        "an old unreferenced blob was not claimed"
    );
    assert!(
        !claimed.contains(&fresh.sha256),
        "a recently used blob was claimed"
    );
    assert!(
        !claimed.contains(&referenced.sha256),
        "a referenced blob was claimed"
    );
    let twice = collect(repo, cutoff).await;
    assert!(
        !twice.contains(&unused.sha256),
        "a fresh claim was handed out twice"
    );

    let busy = repo.touch_blobs(&[blob(&fresh), blob(&unused)]).await;
    assert!(
        matches!(busy, Err(RepositoryError::BlobBusy(h)) if h == unused.sha256),
        "touching a blob being collected: expected BlobBusy, got {busy:?}"
    );
    let late = create(repo).await.id;
    let late_attempt = claim(repo, &late, "worker", LONG_LEASE).await.attempt;
    let published = repo
        .publish(
            &late,
            late_attempt,
            &published_build(std::slice::from_ref(&unused)),
        )
        .await;
    assert!(
        matches!(published, Err(RepositoryError::BlobBusy(h)) if h == unused.sha256),
        "publishing a blob being collected: expected BlobBusy, got {published:?}"
    );
    assert!(
        list_files(repo, &late).await.is_empty(),
        "a refused publish wrote files"
    );
    assert_eq!(
        get(repo, &late).await.status,
        DeploymentStatus::Building,
        "a refused publish changed the status"
    );

    // A collector that crashed leaves its claim; once older than the cutoff it is retried.
    pause().await;
    let retry_cutoff = OffsetDateTime::now_utc();
    let retried = collect(repo, retry_cutoff).await;
    assert!(
        retried.contains(&unused.sha256),
        "a stale claim was not handed out again"
    );
    assert!(
        !retried.contains(&referenced.sha256),
        "a referenced blob was claimed"
    );

    repo.forget_blobs(&retried)
        .await
        .expect("forget_blobs failed");
    touch(repo, std::slice::from_ref(&unused)).await;
    let after = collect(repo, retry_cutoff).await;
    assert!(
        !after.contains(&unused.sha256),
        "a blob forgotten then touched again was claimed"
    );

    // Deleting the last deployment that references a blob makes it collectable.
    repo.delete_deployment(&owner)
        .await
        .expect("delete_deployment failed");
    pause().await;
    let orphaned = collect(repo, OffsetDateTime::now_utc()).await;
    assert!(
        orphaned.contains(&referenced.sha256),
        "a blob no deployment references any more was not claimed"
    );
    repo.forget_blobs(&orphaned)
        .await
        .expect("forget_blobs failed");
    repo.forget_blobs(&[])
        .await
        .expect("forgetting nothing failed");
    repo.touch_blobs(&[])
        .await
        .expect("touching nothing failed");
}

/// Precompressed variants are part of the manifest: they read back through `find_file` and
/// `list_files`, `known_encodings` offers them for the same content, and the blob collector
/// treats their blobs as referenced until the deployment is deleted.
pub async fn encodings_round_trip_and_keep_their_blobs(repo: &dyn Repository) {
    let tag = DeploymentId::random();
    let variant = |encoding, text: &str| EncodedVariant {
        encoding,
        sha256: ContentHash::of(format!("{text} {tag}").as_bytes()),
        size: 7,
    };
    let css = FileEntry {
        encodings: vec![variant(Encoding::Br, "br"), variant(Encoding::Gzip, "gz")],
        ..file("site.css", &format!("css {tag}"))
    };
    let js = FileEntry {
        encodings: vec![variant(Encoding::Gzip, "js-gz")],
        ..file("app.js", &format!("js {tag}"))
    };
    let png = file("logo.png", &format!("png {tag}"));
    let files = [js.clone(), png.clone(), css.clone()];
    touch(repo, &files).await;
    let id = create(repo).await.id;
    let attempt = claim(repo, &id, "worker", LONG_LEASE).await.attempt;
    publish(repo, &id, attempt, &files).await;

    let found = repo
        .find_file(&id, "site.css")
        .await
        .expect("find_file failed");
    assert_eq!(
        found.as_ref(),
        Some(&css),
        "variants of a file did not round-trip"
    );
    let found = repo
        .find_file(&id, "logo.png")
        .await
        .expect("find_file failed");
    assert_eq!(
        found.as_ref(),
        Some(&png),
        "a file without variants grew some"
    );
    let listed = repo.list_files(&id).await.expect("list_files failed");
    assert_eq!(
        listed,
        [js.clone(), png.clone(), css.clone()],
        "list_files lost variants"
    );
    let known = repo
        .known_encodings(&[css.sha256, js.sha256, png.sha256])
        .await
        .expect("known_encodings failed");
    assert_eq!(known.get(&css.sha256), Some(&css.encodings));
    assert_eq!(known.get(&js.sha256), Some(&js.encodings));
    assert!(
        !known.contains_key(&png.sha256),
        "variants invented for a png"
    );

    let variant_hashes: Vec<ContentHash> = [&css, &js]
        .iter()
        .flat_map(|f| f.encodings.iter().map(|v| v.sha256))
        .collect();
    pause().await;
    let cutoff = OffsetDateTime::now_utc();
    pause().await;
    let claimed = collect(repo, cutoff).await;
    for hash in &variant_hashes {
        assert!(
            !claimed.contains(hash),
            "a referenced variant blob was claimed"
        );
    }

    repo.delete_deployment(&id).await.expect("delete failed");
    let known = repo
        .known_encodings(&[css.sha256])
        .await
        .expect("known_encodings failed");
    assert!(
        known.is_empty(),
        "a deleted deployment still offers variants"
    );
    let claimed = collect(repo, cutoff).await;
    for hash in &variant_hashes {
        assert!(
            claimed.contains(hash),
            "the variant blob of a deleted deployment was not collected"
        );
    }
    repo.forget_blobs(&claimed)
        .await
        .expect("forget_blobs failed");
}

/// A deployment created from a manifest keeps its source files: they read back in path
/// order, the collector never claims their blobs while the deployment exists (however old
/// the blobs), creating one that names a blob being collected is refused with `BlobBusy` and
/// records nothing, and deleting the deployment releases its blobs.
pub async fn source_files_keep_their_blobs(repo: &dyn Repository) {
    let tag = DeploymentId::random();
    let entry = |path: &str, mode: u32| {
        let content = format!("{path} {tag}");
        ManifestEntry {
            path: path.to_owned(),
            digest: ContentHash::of(content.as_bytes()),
            size: content.len() as u64,
            mode,
        }
    };
    let page = entry("index.html", 0o100_644);
    let script = entry("bin/build.sh", 0o100_755);
    let doomed = entry("doomed.txt", 0o100_644);
    let blob_of = |e: &ManifestEntry| BlobRef {
        sha256: e.digest,
        size: e.size,
    };
    repo.touch_blobs(&[blob_of(&page), blob_of(&script), blob_of(&doomed)])
        .await
        .expect("touch_blobs failed");

    let mut new = new_deployment();
    let id = new.id;
    new.source_key = crate::model::manifest_source_key(&id);
    new.source_files = vec![page.clone(), script.clone()];
    let created = repo
        .create_deployment(&new)
        .await
        .expect("create_deployment with source files failed");
    assert_eq!(created.source_key, new.source_key);
    let read = repo
        .list_source_files(&id)
        .await
        .expect("list_source_files failed");
    assert_eq!(
        read,
        vec![script.clone(), page.clone()],
        "source files by path"
    );
    let other = create(repo).await.id;
    assert!(
        repo.list_source_files(&other)
            .await
            .expect("list_source_files failed")
            .is_empty(),
        "a deployment uploaded as a zip has source files"
    );

    pause().await;
    let claimed = collect(repo, OffsetDateTime::now_utc()).await;
    assert!(
        claimed.contains(&doomed.digest),
        "an old blob no source names was not claimed"
    );
    for kept in [&page, &script] {
        assert!(
            !claimed.contains(&kept.digest),
            "a blob a deployment's source names was claimed"
        );
    }

    let mut late = new_deployment();
    late.source_key = crate::model::manifest_source_key(&late.id);
    late.source_files = vec![entry("late.html", 0o100_644), doomed.clone()];
    let refused = repo.create_deployment(&late).await;
    assert!(
        matches!(refused, Err(RepositoryError::BlobBusy(h)) if h == doomed.digest),
        "a source naming a blob being collected: expected BlobBusy, got {refused:?}"
    );
    assert!(
        matches!(
            repo.get_deployment(&late.id).await,
            Err(RepositoryError::NotFound)
        ),
        "a refused creation recorded the deployment"
    );
    assert!(
        repo.list_source_files(&late.id)
            .await
            .expect("list_source_files failed")
            .is_empty()
    );
    repo.forget_blobs(&claimed)
        .await
        .expect("forget_blobs failed");

    repo.delete_deployment(&id)
        .await
        .expect("delete_deployment failed");
    assert!(
        repo.list_source_files(&id)
            .await
            .expect("list_source_files failed")
            .is_empty(),
        "a deleted deployment kept its source files"
    );
    pause().await;
    let released = collect(repo, OffsetDateTime::now_utc()).await;
    for freed in [&page, &script] {
        assert!(
            released.contains(&freed.digest),
            "a blob only a deleted deployment's source named was not claimed"
        );
    }
    repo.forget_blobs(&released)
        .await
        .expect("forget_blobs failed");
}
