//! Shell completions and the man page, generated from the clap definition in [`crate::cli`]
//! (hidden subcommands `completions SHELL` and `man`; they need no config). The definition
//! is handed in (`Cli::command()`), so this module does not import the one that calls it.

use std::io::Write;
use std::process::ExitCode;

/// Writes the completion script for `shell`.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut cmd, "onboard-bot", out);
}

/// Writes the man page (roff) of the command line, or of the subcommand at `path`
/// (`["runs", "resume"]`: page `onboard-bot-runs-resume`, as the main page's list names it). The
/// main page adds the exit codes and the environment.
pub fn man(mut page: clap::Command, path: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
    // Building sets each subcommand's page name and synopsis (`onboard-bot runs resume`).
    page.build();
    for (i, name) in path.iter().enumerate() {
        page = page
            .find_subcommand(name)
            .filter(|s| !s.is_hide_set())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no subcommand `{}`", path[..=i].join(" ")))?;
    }
    clap_mangen::Man::new(page).render(out)?;
    if !path.is_empty() {
        return Ok(());
    }
    out.write_all(
        br#".SH "EXIT STATUS"
.TP
0
Done: the run finished, the check passed.
.TP
1
The run did not finish (failed, rejected, cancelled, parked past its deadline) or a check failed; unfinished runs stay resumable (\fBruns resume\fR).
.TP
2
Bad input or configuration, or the run was refused (a lock is held, production without \fB\-\-break\-glass\fR).
.TP
3
Internal error (the message says what failed).
.SH ENVIRONMENT
.TP
\fBONBOARD_BOT_CONFIG\fR
The config file, when \fB\-\-config\fR is not given.
.TP
\fBONBOARD_BOT_LOG_FORMAT\fR
\fBtext\fR or \fBjson\fR, when \fB\-\-log\-format\fR is not given.
.TP
\fBRUST_LOG\fR
Log filter (default \fBinfo,sqlx=warn\fR).
.SH "SEE ALSO"
\fBonboard\-bot man\fR \fISUBCOMMAND\fR... prints the page of a subcommand; docs/operations.md and docs/configuration.md in the source tree.
"#,
    )?;
    Ok(())
}

/// `onboard-bot completions SHELL` on stdout.
pub fn print_completions(
    cmd: clap::Command,
    shell: clap_complete::Shell,
) -> anyhow::Result<ExitCode> {
    completions(cmd, shell, &mut std::io::stdout().lock());
    Ok(ExitCode::SUCCESS)
}

/// `onboard-bot man` on stdout.
pub fn print_man(cmd: clap::Command, path: &[String]) -> anyhow::Result<ExitCode> {
    // Rendered in memory first: the only error left is an unknown subcommand (bad input).
    let mut page = Vec::new();
    if let Err(e) = man(cmd, path, &mut page) {
        eprintln!("invalid input: {e:#}");
        return Ok(ExitCode::from(2));
    }
    std::io::stdout().lock().write_all(&page)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    #[test]
    fn completions_and_man_page_name_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(Cli::command(), shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("onboard-bot") && text.contains("onboard"),
                "{shell}"
            );
        }
        let mut out = Vec::new();
        man(Cli::command(), &[], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie"), "{text}");
        for want in [
            "onboard\\-bot",
            "dns\\-check",
            "EXIT STATUS",
            "\\-\\-log\\-format",
        ] {
            assert!(text.contains(want), "man page lacks {want}");
        }
        let mut out = Vec::new();
        man(Cli::command(), &["runs".into(), "resume".into()], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(".TH onboard-bot-runs-resume"), "{text}");
        assert!(text.contains("take\\-over"), "{text}");
        assert!(man(Cli::command(), &["nope".into()], &mut Vec::new()).is_err());
    }
}
