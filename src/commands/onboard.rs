//! `/onboard` and `onboard-bot onboard`: the runbook's "Inputs", validated.

use super::{Caller, CommandError, Reply};
use crate::config::{Config, OnboardingConfig};
use crate::domain::{
    Brand, DisplayName, DomainName, Email, InputError, MailPlan, OperatingMode, Slug, VpsName,
};
use crate::engine::{Engine, StartOptions};
use crate::request::{OnboardRequest, Request};

/// The options as typed, before validation (shared by the CLI and Discord).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OnboardArgs {
    /// Short, kebab-case, globally unique name of the Provider (e.g. merche-biche).
    #[arg(long)]
    pub slug: String,
    /// The Person's display name (e.g. "Merche Biche").
    #[arg(long)]
    pub name: String,
    /// The Person's email address.
    #[arg(long)]
    pub email: String,
    /// Operating mode: person-only, person-owns-org or person-joins-org.
    #[arg(long, default_value = "person-only")]
    pub mode: String,
    /// Org slug: the new org (person-owns-org) or the existing one to join (person-joins-org).
    #[arg(long)]
    pub org: Option<String>,
    /// Name of the new org (person-owns-org only).
    #[arg(long)]
    pub org_name: Option<String>,
    /// A domain to serve (repeat for a second one); {slug}.com when none is given.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// Mail on the domain: mailbox, forwarding or none.
    #[arg(long, value_enum, default_value = "none")]
    pub mail: MailPlan,
    /// Generic feature of the site, from the configured list (never provider-named).
    #[arg(long)]
    pub feature: Option<String>,
    /// Brand site copy, for Org-shaped providers.
    #[arg(long)]
    pub brand_copy: Option<String>,
    /// Brand logo URL (https), for Org-shaped providers.
    #[arg(long)]
    pub logo: Option<String>,
    /// Brand colour palette: hex colours separated by commas (#1a2b3c,#ffffff).
    #[arg(long)]
    pub palette: Option<String>,
    /// Take over the existing site of the domain(s) for this Provider, after an approval
    /// whose plan names what is there; without it, a domain already served is refused.
    #[arg(long)]
    pub adopt_site: bool,
    /// The VPS of the fleet (config `vps:`) the sites go on, by name; the first by default.
    #[arg(long)]
    pub vps: Option<String>,
}

impl OnboardArgs {
    /// [`OnboardArgs::parse`], with the VPS checked against the fleet and recorded by name
    /// (the first VPS when none was given): what the front-ends call.
    pub fn parse_in(&self, config: &Config) -> Result<Request, InputError> {
        let mut request = self.parse(&config.onboarding)?;
        if let Request::Onboard(r) = &mut request {
            r.vps = Some(choose_vps(config, r.vps.as_ref())?);
        }
        Ok(request)
    }

    /// Validates every field; the first error names the field and the rule. The VPS name is
    /// only checked for its form here ([`OnboardArgs::parse_in`] checks it is in the fleet).
    pub fn parse(&self, cfg: &OnboardingConfig) -> Result<Request, InputError> {
        let slug = Slug::parse(&self.slug)?;
        slug.check_not_reserved("slug", &cfg.reserved_slugs)?;
        let display_name = DisplayName::parse_field("name", &self.name)?;
        let email = Email::parse(&self.email)?;
        let mode =
            OperatingMode::from_parts(&self.mode, self.org.as_deref(), self.org_name.as_deref())?;
        if let Some(org) = mode.org_slug() {
            org.check_not_reserved("org", &cfg.reserved_slugs)?;
        }
        let mut domains = if self.domains.is_empty() {
            vec![DomainName::parse(&format!("{slug}.{}", cfg.default_tld))?]
        } else {
            self.domains
                .iter()
                .map(|d| DomainName::parse(d))
                .collect::<Result<Vec<_>, _>>()?
        };
        for d in &domains {
            d.check_site_name("domain")?;
        }
        domains.dedup();
        if domains.len() > 2 {
            return Err(InputError::new(
                "domain",
                "at most two domains per onboarding; add more later",
            ));
        }
        let feature = match &self.feature {
            None => cfg.default_feature.clone(),
            Some(f) => {
                let f = f.trim();
                if f.contains(slug.as_str()) {
                    return Err(InputError::new(
                        "feature",
                        format!(
                            "`{f}` is named after the provider: features are provider-generic (naming.md), don't write a new {slug}-* feature"
                        ),
                    ));
                }
                if !cfg.features.iter().any(|known| known == f) {
                    return Err(InputError::new(
                        "feature",
                        format!(
                            "`{f}` is not a known feature; choose one of {}",
                            cfg.features.join(", ")
                        ),
                    ));
                }
                f.to_owned()
            }
        };
        let has_brand = self.brand_copy.is_some() || self.logo.is_some() || self.palette.is_some();
        let brand = match (has_brand, mode.is_org_shaped()) {
            (false, _) => None,
            (true, false) => return Err(brand_refused()),
            (true, true) => Some(Brand::parse(
                self.brand_copy.as_deref().unwrap_or(""),
                self.logo.as_deref(),
                self.palette.as_deref().unwrap_or(""),
            )?),
        };
        Ok(Request::Onboard(OnboardRequest {
            slug,
            display_name,
            email,
            mode,
            domains,
            brand,
            mail: self.mail,
            feature,
            adopt_site: self.adopt_site,
            vps: self
                .vps
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(VpsName::parse)
                .transpose()?,
        }))
    }
}

/// The VPS a new onboarding goes on: the one named, which must be in the fleet, else the
/// first.
pub fn choose_vps(config: &Config, name: Option<&VpsName>) -> Result<VpsName, InputError> {
    match config.vps(name) {
        Some(v) => Ok(v.name.clone()),
        None => Err(InputError::new(
            "vps",
            format!(
                "`{}` is not a VPS of the fleet; choose one of {}",
                name.map(VpsName::as_str).unwrap_or_default(),
                config.vps_names()
            ),
        )),
    }
}

/// Brand assets asked for a person-only Provider.
pub fn brand_refused() -> InputError {
    InputError::new(
        "brand",
        "brand assets are for Org-shaped providers; person-only takes none",
    )
}

/// Starts the onboarding run (its locks taken, or refused naming who holds them).
pub async fn run(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    opts: StartOptions,
) -> Result<Reply, CommandError> {
    super::start(engine, caller, request, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> OnboardArgs {
        OnboardArgs {
            slug: "merche-biche".into(),
            name: "Merche Biche".into(),
            email: "merche@example.com".into(),
            mode: "person-only".into(),
            ..Default::default()
        }
    }

    /// A config with a fleet of two.
    fn fleet() -> Config {
        // SAFETY-free: variables nobody else reads.
        unsafe { std::env::set_var("OB_ONBOARD_TEST_PW", "pw-for-onboard-tests") };
        let yaml = r#"
environment: lab
state_db: {host: 127.0.0.1, user: bot, database: bot, password: {env: OB_ONBOARD_TEST_PW}}
tenant_db: {host: 127.0.0.1, user: w, database: platform, password: {env: OB_ONBOARD_TEST_PW}, authoritative: "127.0.0.1:5432"}
vps:
  - {name: vps-0, ssh_host: quinn-vps, known_hosts: kh, ipv4: 10.0.0.1}
  - {name: vps-1, ssh_host: quinn-vps-1, known_hosts: kh, ipv4: 10.0.0.2, ipv6: "2001:db8::2"}
dns: {authoritative: ["127.0.0.1:53"]}
repo: {checkout: co, remote: /tmp/origin.git}
audit: {key: {env: OB_ONBOARD_TEST_PW}}
"#;
        Config::parse(yaml, std::path::Path::new("/etc/ob/bot.yaml")).unwrap()
    }

    fn chosen(vps: Option<&str>) -> Result<String, InputError> {
        let args = OnboardArgs {
            vps: vps.map(Into::into),
            ..args()
        };
        match args.parse_in(&fleet())? {
            Request::Onboard(r) => Ok(r.vps.expect("recorded").to_string()),
            _ => panic!("an onboarding request"),
        }
    }

    #[test]
    fn the_vps_is_the_one_named_or_the_first_and_is_recorded() {
        assert_eq!(chosen(None).unwrap(), "vps-0");
        assert_eq!(chosen(Some("")).unwrap(), "vps-0");
        assert_eq!(chosen(Some("vps-1")).unwrap(), "vps-1");
        assert_eq!(chosen(Some(" vps-1 ")).unwrap(), "vps-1");
    }

    #[test]
    fn an_unknown_or_malformed_vps_is_refused_with_the_names_allowed() {
        let err = chosen(Some("vps-9")).unwrap_err();
        assert_eq!(err.field, "vps");
        assert_eq!(
            err.message,
            "`vps-9` is not a VPS of the fleet; choose one of vps-0, vps-1"
        );
        let err = chosen(Some("vps 1; rm -rf /")).unwrap_err();
        assert_eq!(err.field, "vps");
        // A stored request names its VPS; one stored before the fleet has none (the first).
        let Request::Onboard(r) = args().parse_in(&fleet()).unwrap() else {
            panic!()
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["vps"], "vps-0");
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("vps");
        let back: OnboardRequest = serde_json::from_value(old).unwrap();
        assert_eq!(back.vps, None);
    }

    #[test]
    fn defaults_to_slug_dot_com() {
        let Request::Onboard(r) = args().parse(&OnboardingConfig::default()).unwrap() else {
            panic!("an onboarding request")
        };
        assert_eq!(r.domains[0].as_str(), "merche-biche.com");
        assert_eq!(r.feature, "provider-site");
    }

    #[test]
    fn refuses_provider_named_feature_and_reserved_slug() {
        let cfg = OnboardingConfig::default();
        let err = OnboardArgs {
            feature: Some("merche-biche-site".into()),
            ..args()
        }
        .parse(&cfg)
        .unwrap_err();
        assert_eq!(err.field, "feature");
        assert!(
            err.message
                .contains("don't write a new merche-biche-* feature"),
            "{err}"
        );
        let err = OnboardArgs {
            slug: "admin".into(),
            ..args()
        }
        .parse(&cfg)
        .unwrap_err();
        assert!(err.message.contains("reserved"));
        let err = OnboardArgs {
            domains: vec!["a.com".into(), "b.com".into(), "c.com".into()],
            ..args()
        }
        .parse(&cfg)
        .unwrap_err();
        assert_eq!(err.field, "domain");
        let err = OnboardArgs {
            palette: Some("#fff000".into()),
            ..args()
        }
        .parse(&cfg)
        .unwrap_err();
        assert_eq!(err.field, "brand");
    }

    #[test]
    fn a_site_is_named_by_its_apex_and_never_by_a_repo_folder() {
        let cfg = OnboardingConfig::default();
        let domain = |d: &str| {
            OnboardArgs {
                domains: vec![d.into()],
                ..args()
            }
            .parse(&cfg)
        };
        // The runbook serves the apex and www together: www.x is not a site of its own.
        let err = domain("www.merche.com").unwrap_err();
        assert_eq!(err.field, "domain");
        assert!(err.message.contains("give the apex `merche.com`"), "{err}");
        let err = domain("WWW.Merche.com").unwrap_err();
        assert!(err.message.contains("give the apex `merche.com`"), "{err}");
        // Folders of the platform repo that are not Provider sites.
        for folder in ["quinn.www", "_template", "_template/{provider}.com"] {
            assert_eq!(domain(folder).unwrap_err().field, "domain", "{folder}");
        }
        let Request::Onboard(r) = domain("Shop.Merche.COM").unwrap() else {
            panic!("an onboarding request")
        };
        assert_eq!(r.domains[0].as_str(), "shop.merche.com");
        assert!(!r.adopt_site);
    }
}
