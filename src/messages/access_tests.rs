#[test]
fn a_refused_command_is_named_and_said_to_be_audited() {
    let text = super::command_refused("cert issue");
    assert!(
        text.starts_with("Only the ops team may use /cert issue: ")
            && text.contains("recorded in the audit trail"),
        "{text}"
    );
}
