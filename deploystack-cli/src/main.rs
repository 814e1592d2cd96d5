//! `deploystack`: the command-line client of a DeployStack server. Everything it does is in
//! the library (`deploystack_cli::run`), where it can be tested.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(deploystack_cli::run(std::env::args_os()))
}
