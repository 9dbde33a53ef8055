//! `onboard-bot completions SHELL` and `onboard-bot man` come from the CLI definition alone: they
//! work without a config file and mention the commands.

use crate::support::harness::blocking;

use std::process::Command;
use std::time::Duration;

/// Ample for what these tests do (no lab service, no network).
const LIMIT: Duration = Duration::from_secs(60);

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_onboard-bot"))
        .args(["--config", "/nonexistent/onboard-bot.yaml"])
        .args(args)
        .env_remove("ONBOARD_BOT_CONFIG")
        .output()
        .expect("run onboard-bot");
    assert!(
        out.status.success(),
        "onboard-bot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn completions_need_no_config() {
    blocking(LIMIT, || {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let text = run(&["completions", shell]);
            assert!(text.contains("onboard"), "{shell}: {text}");
            assert!(text.contains("dns-check"), "{shell} completes subcommands");
        }
    });
}

#[test]
fn man_page_needs_no_config() {
    blocking(LIMIT, || {
        let text = run(&["man"]);
        assert!(text.contains(".TH onboard-bot"), "{text}");
        assert!(text.contains("onboard"));
        assert!(text.contains("EXIT STATUS"));
        let page = run(&["man", "locks", "take-over"]);
        assert!(page.contains(".TH onboard-bot-locks-take-over"), "{page}");
        assert!(page.contains("reason"), "{page}");
    });
}

#[test]
fn the_generators_stay_out_of_help() {
    blocking(LIMIT, || {
        let text = run(&["--help"]);
        assert!(
            !text.contains("completions") && !text.contains("\n  man"),
            "{text}"
        );
    });
}
