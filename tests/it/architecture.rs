//! Rules of the code's shape that a reviewer would otherwise have to remember: no
//! code outside its own module names a particular feed (`src/feeds/`), so a new feed
//! is one module and one registry line.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn no_code_outside_a_feeds_module_names_that_feed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let feeds = src.join("feeds");
    let mut offences = Vec::new();
    for file in sources(&src).into_iter().filter(|f| !f.starts_with(&feeds)) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may pick any feed to test with.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            let names_a_feed = [
                "feeds::cdr",
                "feeds::queue",
                "feeds::recordings",
                "feeds::push",
            ]
            .iter()
            .any(|feed| line.contains(feed))
                || line.contains("Category::new(")
                || line
                    .split("Category::")
                    .skip(1)
                    .any(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
            if names_a_feed {
                offences.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "these lines name a particular feed outside src/feeds/ (go through feeds::FEEDS or a Feed's fields instead):\n{}",
        offences.join("\n")
    );
}
