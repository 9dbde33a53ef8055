//! The custom_id of the Approve and Reject buttons: everything a click needs to find its plan
//! again, so buttons keep working after a restart (Discord allows 100 characters).
//!
//! Format: `ob1:<a|r>:<run id, 32 hex>:<step>:<plan hash prefix, 16 hex>`. The form Reject
//! opens for the reason has the same fields under its own tag, `ob1f:<run>:<step>:<hash>`, so
//! its submission finds the plan without any state in the process that opened it.

use uuid::Uuid;

/// Discord's limit on a component's custom_id.
pub const MAX_LEN: usize = 100;
/// How much of the plan hash a button carries: enough to tell plans apart, short enough to fit.
pub const HASH_PREFIX_LEN: usize = 16;
const TAG: &str = "ob1";
/// The tag of the reject form's custom_id.
const FORM_TAG: &str = "ob1f";

/// What a button click asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalButton {
    pub approve: bool,
    pub run_id: Uuid,
    pub step: String,
    /// The first [`HASH_PREFIX_LEN`] characters of the plan hash.
    pub hash_prefix: String,
}

impl ApprovalButton {
    pub fn new(approve: bool, run_id: Uuid, step: &str, plan_hash: &str) -> Self {
        Self {
            approve,
            run_id,
            step: step.to_owned(),
            hash_prefix: plan_hash.chars().take(HASH_PREFIX_LEN).collect(),
        }
    }

    /// The custom_id. Step names are short kebab-case words, so this stays far below 100.
    pub fn encode(&self) -> String {
        let id = format!(
            "{TAG}:{}:{}:{}:{}",
            if self.approve { "a" } else { "r" },
            self.run_id.simple(),
            self.step,
            self.hash_prefix
        );
        debug_assert!(id.len() <= MAX_LEN, "custom_id too long: {id}");
        id
    }

    /// `None` for any custom_id this bot did not make (or an older format).
    pub fn decode(custom_id: &str) -> Option<Self> {
        let mut parts = custom_id.split(':');
        if parts.next()? != TAG {
            return None;
        }
        let approve = match parts.next()? {
            "a" => true,
            "r" => false,
            _ => return None,
        };
        let run_id = Uuid::try_parse(parts.next()?).ok()?;
        let step = parts.next()?;
        let hash_prefix = parts.next()?;
        let step_ok = !step.is_empty()
            && step
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let hash_ok = hash_prefix.len() == HASH_PREFIX_LEN
            && hash_prefix.bytes().all(|b| b.is_ascii_hexdigit());
        if parts.next().is_some() || !step_ok || !hash_ok {
            return None;
        }
        Some(Self {
            approve,
            run_id,
            step: step.to_owned(),
            hash_prefix: hash_prefix.to_owned(),
        })
    }

    /// The custom_id of the form that asks for the reason of a rejection of this plan.
    pub fn encode_reject_form(&self) -> String {
        format!(
            "{FORM_TAG}:{}:{}:{}",
            self.run_id.simple(),
            self.step,
            self.hash_prefix
        )
    }

    /// The rejection a submitted reject form stands for; `None` for any other custom_id.
    pub fn decode_reject_form(custom_id: &str) -> Option<Self> {
        let rest = custom_id.strip_prefix(FORM_TAG)?.strip_prefix(':')?;
        Self::decode(&format!("{TAG}:r:{rest}"))
    }

    /// Whether `plan_hash` is the plan this button was made for.
    pub fn matches(&self, plan_hash: &str) -> bool {
        plan_hash.starts_with(&self.hash_prefix)
    }

    /// The same button with the other verdict (to find a message's pair).
    pub fn with_verdict(&self, approve: bool) -> Self {
        Self {
            approve,
            ..self.clone()
        }
    }
}

/// The tag of the Approve all button's custom_id: `ob1all:<run id, 32 hex>:<up-front plan
/// hash prefix, 16 hex>`.
const ALL_TAG: &str = "ob1all";

/// What a click on Approve all asks for: the run's whole plan, as it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproveAllButton {
    pub run_id: Uuid,
    /// The first [`HASH_PREFIX_LEN`] characters of the up-front plan's hash.
    pub hash_prefix: String,
}

impl ApproveAllButton {
    pub fn new(run_id: Uuid, up_front_hash: &str) -> Self {
        Self {
            run_id,
            hash_prefix: up_front_hash.chars().take(HASH_PREFIX_LEN).collect(),
        }
    }

    pub fn encode(&self) -> String {
        format!("{ALL_TAG}:{}:{}", self.run_id.simple(), self.hash_prefix)
    }

    /// `None` for any other custom_id.
    pub fn decode(custom_id: &str) -> Option<Self> {
        let mut parts = custom_id.split(':');
        if parts.next()? != ALL_TAG {
            return None;
        }
        let run_id = Uuid::try_parse(parts.next()?).ok()?;
        let hash_prefix = parts.next()?;
        let hash_ok = hash_prefix.len() == HASH_PREFIX_LEN
            && hash_prefix.bytes().all(|b| b.is_ascii_hexdigit());
        if parts.next().is_some() || !hash_ok {
            return None;
        }
        Some(Self {
            run_id,
            hash_prefix: hash_prefix.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_fits() {
        let run = Uuid::new_v4();
        let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let b = ApprovalButton::new(true, run, "create-person", hash);
        let id = b.encode();
        assert!(id.len() <= MAX_LEN);
        assert_eq!(ApprovalButton::decode(&id), Some(b.clone()));
        assert!(b.matches(hash));
        assert!(!b.matches("f123"));
        assert!(
            !ApprovalButton::decode(&b.with_verdict(false).encode())
                .unwrap()
                .approve
        );
        let form = b.encode_reject_form();
        assert!(form.len() <= MAX_LEN);
        assert_eq!(
            ApprovalButton::decode_reject_form(&form),
            Some(b.with_verdict(false))
        );
        assert_eq!(
            ApprovalButton::decode(&form),
            None,
            "a form is not a button"
        );
        assert_eq!(ApprovalButton::decode_reject_form(&id), None);
        assert_eq!(ApprovalButton::decode_reject_form("ob1fx:nope"), None);
    }

    #[test]
    fn approve_all_round_trips_and_is_no_step_button() {
        let b = ApproveAllButton::new(Uuid::new_v4(), &"ab".repeat(32));
        let id = b.encode();
        assert!(id.len() <= MAX_LEN);
        assert_eq!(ApproveAllButton::decode(&id), Some(b));
        assert_eq!(ApprovalButton::decode(&id), None);
        assert_eq!(ApprovalButton::decode_reject_form(&id), None);
        let step = ApprovalButton::new(true, Uuid::new_v4(), "cert", &"cd".repeat(32));
        assert_eq!(ApproveAllButton::decode(&step.encode()), None);
        assert_eq!(
            ApproveAllButton::decode("ob1all:nope:0123456789abcdef"),
            None
        );
    }

    #[test]
    fn foreign_ids_are_not_ours() {
        for id in [
            "",
            "approve:db1",
            "ob1:x:00000000000000000000000000000000:s:0123456789abcdef",
            "ob1:a:nope:s:0123456789abcdef",
            "ob1:a:00000000000000000000000000000000:S P:0123456789abcdef",
            "ob1:a:00000000000000000000000000000000:s:0123",
            "ob1:a:00000000000000000000000000000000:s:0123456789abcdef:extra",
        ] {
            assert_eq!(ApprovalButton::decode(id), None, "{id}");
        }
    }

    proptest! {
        #[test]
        fn any_step_name_round_trips(step in "[a-z][a-z0-9-]{0,40}", hash in "[0-9a-f]{64}", approve: bool) {
            let b = ApprovalButton::new(approve, Uuid::new_v4(), &step, &hash);
            let id = b.encode();
            prop_assert!(id.len() <= MAX_LEN);
            prop_assert_eq!(ApprovalButton::decode(&id), Some(b));
        }
    }
}
