//! The embedded platform as a program: in memory, with the shout strategy, on
//! `127.0.0.1:8000` (or the address given as the only argument) until Ctrl-C.

use deploystack_core::Config;
use deploystack_core::tokio;
use deploystack_core::tokio::net::TcpListener;

#[tokio::main(crate = "deploystack_core::tokio")]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let listener = TcpListener::bind(&address).await?;
    eprintln!("serving on http://{}", listener.local_addr()?);
    let services = deploystack_embedder_example::services(Config::default())
        .await
        .map_err(std::io::Error::other)?;
    deploystack_embedder_example::serve(listener, services, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
