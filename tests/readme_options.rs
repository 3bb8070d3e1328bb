//! The READMEs promise that their options table lists what `confab serve --help` prints.
//! This test checks both languages.

use std::process::Command;

fn help_flags() -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--help"])
        .output()
        .expect("confab serve --help runs");
    assert!(output.status.success(), "serve --help failed");
    let text = String::from_utf8(output.stdout).expect("help text is UTF-8");
    let mut flags: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| rest.split([' ', '=']).next())
        .filter(|name| !name.is_empty() && *name != "help")
        .map(|name| format!("--{name}"))
        .collect();
    flags.dedup();
    assert!(
        flags.iter().any(|flag| flag == "--listen"),
        "no flags parsed from the help text: {flags:?}"
    );
    flags
}

fn missing_rows(readme: &str) -> Vec<String> {
    let path = format!("{}/{readme}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("README is readable");
    help_flags()
        .into_iter()
        .filter(|flag| !text.contains(&format!("| `{flag}` |")))
        .collect()
}

#[test]
fn english_readme_lists_every_option() {
    let missing = missing_rows("README.md");
    assert!(missing.is_empty(), "README.md has no row for {missing:?}");
}

#[test]
fn chinese_readme_lists_every_option() {
    let missing = missing_rows("README.zh-CN.md");
    assert!(
        missing.is_empty(),
        "README.zh-CN.md has no row for {missing:?}"
    );
}
