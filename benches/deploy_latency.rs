//! Deploy latency: upload → `READY`, as medians over repeated runs, on two shapes:
//!
//! - **embedded**: SQLite, local storage, the in-memory queue, in-process workers;
//! - **cluster** (with `--features postgres,redis,s3` and the engines the tests use:
//!   `DATABASE_URL`, `REDIS_URL`, `S3_ENDPOINT`/`S3_BUCKET`): PostgreSQL, Redis Streams and
//!   S3, with the same in-process workers, so the difference is the engines' round trips.
//!
//! ```sh
//! cargo bench --bench deploy_latency             # 20 runs per fixture
//! DEPLOY_BENCH_RUNS=50 cargo bench --bench deploy_latency
//! # both shapes; scripts/with-services starts the engines and sets their variables
//! scripts/with-services cargo bench --bench deploy_latency --features postgres,redis,s3
//! ```
//!
//! Each server runs in this process on a loopback port chosen by the OS; every run is bounded
//! (at most 60 s to become READY) and the number of runs is fixed.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use deploystack_core::{Config, Services};

/// A site of `files` files of `bytes_per_file` bytes. `salt` changes every file's content, so
/// a new salt means no blob can be reused; text is compressible, `binary` files are not.
fn site_zip(files: usize, bytes_per_file: usize, binary: bool, salt: u64) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("index.html", options).unwrap();
    writer
        .write_all(format!("<!doctype html><h1>bench {salt}</h1>").as_bytes())
        .unwrap();
    for i in 0..files {
        let body = if binary {
            // xorshift64: cheap, incompressible, reproducible.
            let mut state = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64 + 1);
            (0..bytes_per_file)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect::<Vec<u8>>()
        } else {
            let line = format!("console.log({salt}, {i});\n");
            line.repeat(bytes_per_file / line.len() + 1).into_bytes()[..bytes_per_file].to_vec()
        };
        let name = if binary {
            format!("media/{i}.bin")
        } else {
            format!("assets/{}/file-{i}.js", i % 10)
        };
        writer.start_file(name, options).unwrap();
        writer.write_all(&body).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

async fn deploy_once(client: &reqwest::Client, base: &str, zip: Vec<u8>) -> (Duration, Duration) {
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(zip).file_name("site.zip"),
    );
    let answer: serde_json::Value = client
        .post(format!("{base}/deploy"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let accepted = started.elapsed();
    let id = answer["deployment_id"].as_str().unwrap().to_owned();
    let deadline = started + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = client
            .get(format!("{base}/api/v1/deployments/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match status["status"].as_str() {
            Some("READY") => return (accepted, started.elapsed()),
            Some("ERROR") => panic!("deployment failed: {status}"),
            _ => assert!(Instant::now() < deadline, "not READY within 60 s"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label:<44} median {:>8.1} ms   p90 {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

/// Serve `services` on a loopback port, deploy every fixture `runs` times, print the figures.
async fn measure(shape: &str, services: Services, runs: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(deploystack_http::serve(listener, services, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    println!("deploy latency, {shape} shape, {runs} runs per case");
    let mut salt = 0u64;
    for (label, files, size, binary) in [
        ("small site (10 files x 2 KB)", 10, 2 * 1024, false),
        ("medium site (1,000 files x 1 KB)", 1000, 1024, false),
        (
            "large files (20 files x 1 MB, random)",
            20,
            1024 * 1024,
            true,
        ),
    ] {
        // Fresh content every run: every blob is new.
        let mut accepted = Vec::with_capacity(runs);
        let mut ready = Vec::with_capacity(runs);
        for _ in 0..runs {
            salt += 1;
            let (a, r) = deploy_once(&client, &base, site_zip(files, size, binary, salt)).await;
            accepted.push(a);
            ready.push(r);
        }
        summary(&format!("{label}, new content: 202"), accepted);
        summary(&format!("{label}, new content: READY"), ready);
        // The same content again: every blob is already stored.
        let same = site_zip(files, size, binary, salt);
        let mut ready = Vec::with_capacity(runs);
        for _ in 0..runs {
            ready.push(deploy_once(&client, &base, same.clone()).await.1);
        }
        summary(&format!("{label}, redeploy: READY"), ready);
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// The defaults without rate limits: one client deploys hundreds of times and polls every
/// 2 ms, far past the default deploys and reads limits; this measures deploys, not the
/// limiter.
fn unlimited() -> Config {
    Config {
        rate_limit_deploys_per_minute: 0,
        rate_limit_writes_per_minute: 0,
        rate_limit_reads_per_minute: 0,
        ..Config::default()
    }
}

/// The cluster shape's services on the test engines, or why it cannot run.
#[cfg(all(feature = "postgres", feature = "redis", feature = "s3"))]
async fn cluster_services() -> Result<Services, String> {
    use deploystack_core::testing::env;
    let missing = "set DATABASE_URL, REDIS_URL and S3_ENDPOINT (run through scripts/with-services)";
    let (Some(admin), Some(redis), Some(s3)) = (env::postgres_url(), env::redis_url(), env::s3())
    else {
        return Err(missing.to_owned());
    };
    let prefix = env::unique_name("bench");
    let mut config = Config {
        database_url: Some(env::fresh_postgres_database(&admin).await),
        queue_url: Some(redis.clone()),
        cache_url: Some(redis),
        redis_prefix: prefix.clone(),
        storage_url: Some(format!("s3://{}/{prefix}", s3.bucket)),
        embedded_workers: Some(2),
        ..unlimited()
    };
    config.s3.endpoint = Some(s3.endpoint);
    config.s3.access_key_id = Some(s3.access_key_id);
    config.s3.secret_access_key = Some(s3.secret_access_key);
    config.s3.region = Some(s3.region);
    config.s3.allow_http = Some(true);
    Services::from_config(config)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(not(all(feature = "postgres", feature = "redis", feature = "s3")))]
async fn cluster_services() -> Result<Services, String> {
    Err("rebuild with --features postgres,redis,s3".to_owned())
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("DEPLOY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data.path().to_path_buf(),
        ..unlimited()
    };
    measure(
        "embedded",
        Services::from_config(config).await.unwrap(),
        runs,
    )
    .await;
    match cluster_services().await {
        Ok(services) => measure("cluster", services, runs).await,
        Err(why) => println!("cluster shape skipped: {why}"),
    }
}
