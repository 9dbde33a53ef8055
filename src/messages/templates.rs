//! What the deploy-config plan says about the template beyond its diffs.

use crate::templating::{PLACEHOLDER, PlaceholderLeft};

/// The `{provider}` placeholders the edits leave (in a comment, or a key the runbook does not
/// set), one line each, for the approver to see before the copy is pushed; empty when none.
pub fn placeholders_left(left: &[PlaceholderLeft]) -> String {
    if left.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "left as in the template: {PLACEHOLDER} on {} line(s) outside the values the runbook sets (edit by hand if it should name the Provider):\n",
        left.len()
    );
    for p in left {
        out.push_str(&format!("  {} line {}: {}\n", p.path, p.line, p.text));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_left_in_the_plan() {
        assert_eq!(placeholders_left(&[]), "");
        let left = crate::templating::placeholders_left(
            "deployments/@domains/merche.com/services.yaml",
            "# Copied from _template/{provider}.com.\ndomain: merche.com\nowner: \"{provider}\"   # a key the runbook does not set\n",
        );
        insta::assert_snapshot!(placeholders_left(&left));
    }
}
