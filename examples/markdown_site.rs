//! A complete DeployStack server (API, serving and in-process build workers) with a build
//! strategy of its own: a Markdown site builder. It shows how user code extends detection —
//! a [`BuildStrategy`] registered with [`StrategyRegistry::register`] is asked before the
//! built-in strategies, so it wins for the trees it recognises and leaves every other upload
//! to them.
//!
//! The strategy takes an upload with Markdown pages and no `index.html` or `package.json`,
//! renders every `*.md` to `*.html` (`index.md` or `README.md` becomes the folder's
//! `index.html`, links to `.md` pages point at their `.html`), copies the other files (images,
//! CSS) as they are, and hands the result to the pipeline, which checks and publishes it like
//! any build output.
//!
//! Everything else is the real `deploystack-server`: the same `DEPLOYSTACK_*` configuration,
//! `Services::from_config` and `deploystack_http::serve` until SIGTERM or Ctrl-C.
//!
//! ```text
//! cargo run --example markdown_site
//! curl -F file=@notes.zip http://127.0.0.1:8080/api/v1/deployments
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use deploystack_core::Services;
use deploystack_core::build::{
    BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree, StrategyRegistry,
};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// The strategy's name, as the build log and the events show it.
const NAME: &str = "markdown";

/// Renders a folder of Markdown pages into a static HTML site.
struct MarkdownStrategy;

#[async_trait]
impl BuildStrategy for MarkdownStrategy {
    fn name(&self) -> &str {
        NAME
    }

    async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        // A finished site or a JavaScript project is someone else's to build.
        if source.has_file("index.html") || source.has_file("package.json") {
            return Ok(None);
        }
        let root = source.root().to_path_buf();
        let pages = tokio::task::spawn_blocking(move || markdown_pages(&root))
            .await
            .map_err(|err| BuildError::Unavailable(err.to_string()))??;
        Ok((!pages.is_empty()).then(|| Detection {
            strategy: NAME.to_owned(),
            reason: format!("{} Markdown pages and no index.html", pages.len()),
        }))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        let source = ctx.source.root().to_path_buf();
        let site = ctx.work_dir.join("site");
        let log = ctx.log.clone();
        let cancel = ctx.cancel.clone();
        let out = site.clone();
        // File work is blocking; it checks the cancellation between files.
        tokio::task::spawn_blocking(move || {
            let mut rendered = 0;
            for relative in walk(&source)? {
                if cancel.is_cancelled() {
                    return Err(BuildError::Canceled);
                }
                let from = source.join(&relative);
                let to = out.join(output_path(&relative));
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if is_markdown(&relative) {
                    let text =
                        std::fs::read_to_string(&from).map_err(|err| BuildError::Failed {
                            code: "build_failed".into(),
                            message: format!("{} is not UTF-8 text: {err}", relative.display()),
                        })?;
                    std::fs::write(&to, render_page(&text))?;
                    log.system(format!(
                        "markdown: {} → {}",
                        relative.display(),
                        output_path(&relative).display()
                    ));
                    rendered += 1;
                } else {
                    std::fs::copy(&from, &to)?;
                }
            }
            log.system(format!("markdown: rendered {rendered} pages"));
            Ok(())
        })
        .await
        .map_err(|err| BuildError::Unavailable(err.to_string()))??;
        Ok(BuildOutput { dir: site })
    }
}

/// Whether `path` names a Markdown file.
fn is_markdown(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("md"))
}

/// Where a source file lands in the site: `a/b.md` → `a/b.html`, `index.md` and `README.md`
/// → `index.html`, anything else unchanged.
fn output_path(relative: &Path) -> PathBuf {
    if !is_markdown(relative) {
        return relative.to_path_buf();
    }
    let stem = relative
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if stem.eq_ignore_ascii_case("index") || stem.eq_ignore_ascii_case("readme") {
        relative.with_file_name("index.html")
    } else {
        relative.with_extension("html")
    }
}

/// Every regular file under `root`, relative to it, in a stable order. Symbolic links and
/// special files are left out: an upload is not trusted to point outside itself.
fn walk(root: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(root.join(&folder))? {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(relative);
            } else if kind.is_file() {
                files.push(relative);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The Markdown pages under `root`.
fn markdown_pages(root: &Path) -> Result<Vec<PathBuf>, BuildError> {
    Ok(walk(root)?.into_iter().filter(|p| is_markdown(p)).collect())
}

/// One Markdown page as a whole HTML document, titled by its first top-level heading.
fn render_page(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut title = None;
    let mut in_title = false;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        // Links between pages are written to the Markdown files; the site has HTML files.
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title: link_title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: page_link(dest_url),
            title: link_title,
            id,
        }),
        Event::Start(Tag::Heading {
            level: HeadingLevel::H1,
            ..
        }) if title.is_none() => {
            in_title = true;
            title = Some(String::new());
            event
        }
        Event::Text(ref text) | Event::Code(ref text) if in_title => {
            if let Some(title) = title.as_mut() {
                title.push_str(text);
            }
            event
        }
        Event::End(TagEnd::Heading(_)) => {
            in_title = false;
            event
        }
        other => other,
    });
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, events);
    let title = escape(title.as_deref().unwrap_or("Untitled"));
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

/// A relative link to `page.md` (with an optional `#fragment`) becomes `page.html`; links
/// to other sites and to other files stay as they are.
fn page_link(url: CowStr<'_>) -> CowStr<'_> {
    if url.contains("://") || url.starts_with("mailto:") {
        return url;
    }
    let (path, fragment) = url.split_once('#').unwrap_or((&url, ""));
    if !is_markdown(Path::new(path)) {
        return url;
    }
    let html = output_path(Path::new(path));
    let mut link = html.to_string_lossy().into_owned();
    if !fragment.is_empty() {
        link = format!("{link}#{fragment}");
    }
    CowStr::from(link)
}

/// Text made safe for an HTML element's content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    pulldown_cmark_escape::escape_html(&mut out, text).unwrap_or_default();
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    deploystack_core::config::cli::init_tracing();
    let config = deploystack_core::config::cli::load()?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let mut services = Services::from_config(config).await?;
    // The registry the services came with (the built-in strategies), plus ours first.
    // `Services::with_strategy` is the one-line form of the same thing.
    let mut strategies = StrategyRegistry::clone(&services.strategies);
    strategies.register(Arc::new(MarkdownStrategy));
    services.strategies = Arc::new(strategies);
    deploystack_http::serve(
        listener,
        services,
        deploystack_core::config::cli::shutdown_signal(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_become_html_files_and_links_follow_them() {
        assert_eq!(output_path(Path::new("README.md")), Path::new("index.html"));
        assert_eq!(
            output_path(Path::new("docs/Index.md")),
            Path::new("docs/index.html")
        );
        assert_eq!(output_path(Path::new("a/b.md")), Path::new("a/b.html"));
        assert_eq!(output_path(Path::new("logo.png")), Path::new("logo.png"));
        assert_eq!(&*page_link("guide.md#setup".into()), "guide.html#setup");
        assert_eq!(
            &*page_link("https://x.org/a.md".into()),
            "https://x.org/a.md"
        );
        assert_eq!(&*page_link("logo.png".into()), "logo.png");
    }

    #[test]
    fn a_page_renders_headings_lists_code_and_links() {
        let html = render_page(
            "# Notes & more\n\nSee [the guide](guide.md).\n\n- one\n- two\n\n```\nlet x = 1;\n```\n",
        );
        assert!(html.contains("<title>Notes &amp; more</title>"), "{html}");
        assert!(html.contains("<h1>Notes &amp; more</h1>"), "{html}");
        assert!(
            html.contains(r#"<a href="guide.html">the guide</a>"#),
            "{html}"
        );
        assert!(html.contains("<li>one</li>"), "{html}");
        assert!(html.contains("<pre><code>let x = 1;"), "{html}");
    }
}
