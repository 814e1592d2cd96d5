//! The command line, declared once with clap: every command, flag and environment variable,
//! their help texts, and (through `clap_complete`) the shell completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deploy folders to a DeployStack server and manage its projects.
#[derive(Debug, Parser)]
#[command(
    name = "deploystack",
    version,
    about,
    propagate_version = true,
    after_help = "Exit codes: 0 ok, 1 deployment failed, 2 usage, 3 auth, 4 server unreachable, \
                  5 not found, 6 other server error, 7 local file error. See docs/cli.md."
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The server's address [default: the config file's, else http://127.0.0.1:8000]
    #[arg(long, global = true, env = "DEPLOYSTACK_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The API token [default: the config file's, else none]
    #[arg(
        long,
        global = true,
        env = "DEPLOYSTACK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy a folder (or a .zip): send what the server lacks, follow the build, print the URL
    Deploy(DeployArgs),
    /// List deployments, newest first (of the linked project, if any)
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show a deployment
    Inspect(TargetArg),
    /// Print a deployment's build log
    Logs(LogsArgs),
    /// Delete a deployment: its URLs stop serving at once
    #[command(visible_alias = "remove")]
    Rm(TargetArg),
    /// Make a READY deployment its project's production (no rebuild)
    Promote(TargetArg),
    /// Roll production back to the previous deployment, or to the one named
    Rollback(RollbackArgs),
    /// A project's environment variables
    #[command(subcommand)]
    Env(EnvCommand),
    /// A project's custom domains
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Projects
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// API tokens (needs an admin token)
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Check a server address and token, and keep them in the config file
    Login(LoginArgs),
    /// Forget the server and token kept by `login`
    Logout,
    /// Show the server, and the token's name, scopes and projects
    Whoami,
    /// Link this folder to a project: later commands here use it
    Link(LinkArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

/// The project a command acts on.
#[derive(Debug, Args, Clone, Default)]
pub struct ProjectArg {
    /// The project [default: the folder's link, see `deploystack link`]
    #[arg(long, short = 'p', env = "DEPLOYSTACK_PROJECT", value_name = "NAME")]
    pub project: Option<String>,
}

/// `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The folder or .zip file to deploy
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Deploy to production: it takes the project's address once READY
    #[arg(long)]
    pub prod: bool,
    /// The project [default: the folder's link; none: a deployment of no project]
    #[arg(long, short = 'p', env = "DEPLOYSTACK_PROJECT", value_name = "NAME")]
    pub project: Option<String>,
    /// A variable for this deployment, KEY=VALUE (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A variable for this deployment's build, KEY=VALUE (repeatable)
    #[arg(long = "build-env", short = 'b', value_name = "KEY=VALUE")]
    pub build_env: Vec<String>,
    /// Do not wait for the build: print the deployment and exit
    #[arg(long)]
    pub no_wait: bool,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this project's deployments [default: the folder's link, else every project's]
    #[arg(long, short = 'p', env = "DEPLOYSTACK_PROJECT", value_name = "NAME")]
    pub project: Option<String>,
    /// Every project's deployments, even in a linked folder
    #[arg(long, conflicts_with = "project")]
    pub all: bool,
    /// How many to show
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
}

/// A deployment named by its id or URL.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// The deployment's id or a URL it is served at
    #[arg(value_name = "ID|URL")]
    pub target: String,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The deployment's id or a URL it is served at
    #[arg(value_name = "ID|URL")]
    pub target: String,
    /// Keep printing new lines until the build ends
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The deployment to roll back to [default: the previous production]
    #[arg(value_name = "ID|URL")]
    pub target: Option<String>,
    /// The project, when no deployment is named
    #[command(flatten)]
    pub project: ProjectArg,
}

/// `env …`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the variables (values of encrypted ones with --decrypt)
    Ls {
        #[command(flatten)]
        project: ProjectArg,
        /// Show the values of encrypted variables too
        #[arg(long)]
        decrypt: bool,
    },
    /// Add a variable; without VALUE, it is read from stdin
    Add {
        /// Its name
        key: String,
        /// Its value
        value: Option<String>,
        /// Where it applies (repeatable) [default: all three]
        #[arg(long = "target", short = 't', value_enum)]
        targets: Vec<EnvTarget>,
        /// Who may read it back
        #[arg(long = "type", value_enum, default_value = "encrypted")]
        kind: EnvType,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Remove a variable (of every target, or of those given)
    Rm {
        /// Its name
        key: String,
        /// Only where it applies to these targets (repeatable)
        #[arg(long = "target", short = 't', value_enum)]
        targets: Vec<EnvTarget>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Write the variables of one target to a .env file
    Pull {
        /// The file to write
        #[arg(default_value = ".env")]
        file: PathBuf,
        /// Whose variables
        #[arg(long, value_enum, default_value = "development")]
        environment: EnvTarget,
        #[command(flatten)]
        project: ProjectArg,
    },
}

/// Where a variable applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvTarget {
    /// Builds of production deployments
    Production,
    /// Builds of preview deployments
    Preview,
    /// Local development (`env pull`)
    Development,
}

impl EnvTarget {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvTarget::Production => "production",
            EnvTarget::Preview => "preview",
            EnvTarget::Development => "development",
        }
    }
}

/// Who may read a variable back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvType {
    /// Shown in every answer
    Plain,
    /// Shown only with --decrypt; masked in build logs
    Encrypted,
    /// Never shown again; masked in build logs
    Sensitive,
}

impl EnvType {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvType::Plain => "plain",
            EnvType::Encrypted => "encrypted",
            EnvType::Sensitive => "sensitive",
        }
    }
}

/// `domains …`.
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// List the project's domains
    Ls {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Add a domain: prints the TXT record that proves it is yours
    Add {
        /// The domain (www.example.com)
        domain: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Check the domain's TXT record now
    Verify {
        /// The domain
        domain: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Remove a domain
    Rm {
        /// The domain
        domain: String,
        #[command(flatten)]
        project: ProjectArg,
    },
}

/// `projects …`.
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// List the projects
    Ls,
    /// Create a project
    Add {
        /// Its name (lowercase letters, digits and dashes)
        name: String,
    },
    /// Delete a project and every deployment of it
    Rm {
        /// Its name
        name: String,
    },
}

/// `tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List the tokens (never their secrets)
    Ls,
    /// Make a token: prints its secret, once
    Create {
        /// What to call it (ci, alice laptop)
        name: String,
        /// Its scopes (repeatable; each includes the ones before it)
        #[arg(long = "scope", short = 's', value_enum, default_values = ["deploy"])]
        scopes: Vec<Scope>,
        /// Limit it to these projects (repeatable) [default: every project]
        #[arg(long = "project", short = 'p', value_name = "NAME")]
        projects: Vec<String>,
        /// Its lifetime: 30d, 12h, 3600 [default: until revoked]
        #[arg(long, value_name = "LIFETIME")]
        expires_in: Option<String>,
    },
    /// Revoke a token: it stops working at once
    Revoke {
        /// Its id (from `deploystack tokens ls`)
        id: String,
    },
}

/// A token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Read everything it may see
    Read,
    /// Deploy, promote, roll back, change variables and domains
    Deploy,
    /// Everything, tokens and projects included
    Admin,
}

impl Scope {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Log in without a token (a local server with `auth = local`)
    #[arg(long)]
    pub no_token: bool,
}

/// `link`.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The project to link to
    pub project: String,
    /// The folder to link
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn repeated_variables_and_global_flags_after_the_command_are_read() {
        let cli = Cli::try_parse_from([
            "deploystack",
            "deploy",
            "./site",
            "--prod",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--build-env",
            "C=3",
            "--json",
            "--url",
            "http://h:1",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.url.as_deref(), Some("http://h:1"));
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy");
        };
        assert!(args.prod);
        assert_eq!(args.env, vec!["A=1", "B=2"]);
        assert_eq!(args.build_env, vec!["C=3"]);
        assert_eq!(args.path, PathBuf::from("./site"));
    }

    #[test]
    fn a_wrong_command_line_is_a_usage_error() {
        for args in [
            vec!["deploystack", "deploi"],
            vec!["deploystack", "logs"],
            vec!["deploystack", "tokens", "create", "ci", "--scope", "root"],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
