//! Whose a site is. What serves a domain today (a site directory in the platform repo, an
//! nginx site or a certificate on the VPS) and what the bot's records say, so that no
//! onboarding takes over another tenant's site unless a person approved an adoption.
//! Not a step: preflight, adopt-site and deploy-config share it.

use std::time::Duration;

use super::common::Site;
use super::{StepContext, StepError};
use crate::adapters::repo::Checkout;
use crate::adapters::ssh;
use crate::config::VpsConfig;
use crate::domain::{DomainName, Slug};
use crate::state::sites::{self, SiteRecord};

pub use crate::report::{Findings, RepoSite, ServicesFacts};

impl ServicesFacts {
    /// Reads the facts from a services.yaml; `None` when it is not YAML at all.
    pub fn parse(text: &str) -> Option<Self> {
        let v: serde_norway::Value = serde_norway::from_str(text).ok()?;
        let s = |key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_owned);
        Some(Self {
            domain: s("domain"),
            feature: s("feature"),
            held_back: v
                .get("deploy_state")
                .and_then(|d| d.get("held_back"))
                .and_then(|h| h.as_bool()),
            aliases: v
                .get("aliases")
                .and_then(|a| a.as_sequence())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Whether the site serves `domain` (as its domain or an alias, apex or www).
    fn serves(&self, domain: &DomainName) -> bool {
        self.domain
            .iter()
            .chain(&self.aliases)
            .any(|name| same_site(name, domain))
    }
}

/// Whether `name` (as written in a folder name, a services.yaml or a certificate lineage)
/// means the site `domain`: the same name in any case or IDN form, or its `www.`.
pub fn same_site(name: &str, domain: &DomainName) -> bool {
    DomainName::parse(name).is_ok_and(|n| &n == domain || n == domain.www())
}

/// Whether the repo folder `name` (with its services.yaml, if any) serves `domain`.
pub fn repo_match(domain: &DomainName, name: &str, services: Option<&str>) -> Option<RepoSite> {
    let facts = services.and_then(ServicesFacts::parse);
    let serves = same_site(name, domain) || facts.as_ref().is_some_and(|f| f.serves(domain));
    serves.then(|| RepoSite {
        dir: name.to_owned(),
        services: facts,
    })
}

/// Whether the certbot lineage `name` is one for `domain`: certbot names a lineage after its
/// first domain, with `-0001`, `-0002`... when that name was taken.
pub fn lineage_of(name: &str, domain: &DomainName) -> bool {
    let base = match name.rsplit_once('-') {
        Some((base, n)) if n.len() == 4 && n.chars().all(|c| c.is_ascii_digit()) => base,
        _ => name,
    };
    same_site(name, domain) || same_site(base, domain)
}

/// The repo's site directories serving `domain`, in the checkout synced just now.
pub fn repo_sites(
    cx: &StepContext,
    repo: &Checkout<'_>,
    domain: &DomainName,
) -> Result<Vec<RepoSite>, StepError> {
    let dir = &cx.services.config.deploy.domains_dir;
    let mut out = Vec::new();
    for name in repo.subdirs(dir)? {
        let services = repo.read(&format!("{dir}/{name}/services.yaml"))?;
        if let Some(mut site) = repo_match(domain, &name, services.as_deref()) {
            site.dir = format!("{dir}/{name}");
            out.push(site);
        }
    }
    Ok(out)
}

/// The nginx sites and certificates on `vps` for `domain` (or its www).
async fn vps_findings(
    cx: &StepContext,
    vps: &VpsConfig,
    domain: &DomainName,
) -> Result<(Vec<(String, String)>, Vec<(String, String)>), StepError> {
    let session = cx.services.vps(vps).await?;
    let t = Duration::from_secs(30);
    let name_of = vps.name.to_string();
    let mut nginx = Vec::new();
    for name in [domain.clone(), domain.www()] {
        let site = Site::new(&vps.deploy, &vps.cert, &name);
        let path = site.vps_nginx_site();
        if ssh::run(&session, "test", &["-e", path], t).await?.success {
            nginx.push((name_of.clone(), path.to_owned()));
        }
    }
    let live = Site::new(&vps.deploy, &vps.cert, domain)
        .lineages_dir()
        .to_owned();
    let mut certs = Vec::new();
    if ssh::run(&session, "test", &["-d", &live], t).await?.success {
        let ls = ssh::run(&session, "ls", &["-1A", "--", &live], t).await?;
        if !ls.success {
            return Err(StepError::Transient(anyhow::anyhow!(
                "cannot list {live} on {}: {}",
                vps.name,
                ls.stderr.trim()
            )));
        }
        certs.extend(
            ls.stdout
                .lines()
                .filter(|l| lineage_of(l.trim(), domain))
                .map(|l| (name_of.clone(), format!("{live}/{}", l.trim()))),
        );
    }
    Ok((nginx, certs))
}

/// Everything that serves `domain` today, in the repo and on every VPS of the fleet (a site
/// elsewhere is as much somebody's as one on the run's own VPS). Takes a turn at the
/// checkout and syncs it, so the caller must not hold one.
pub async fn survey(cx: &StepContext, domain: &DomainName) -> Result<Findings, StepError> {
    let repo = {
        let checkout = cx.services.repo.lock().await;
        checkout.sync().await?;
        repo_sites(cx, &checkout, domain)?
    };
    survey_with(cx, domain, repo).await
}

/// [`survey`] with the repo part already read (by a caller in its turn at the checkout).
pub async fn survey_with(
    cx: &StepContext,
    domain: &DomainName,
    repo: Vec<RepoSite>,
) -> Result<Findings, StepError> {
    let (mut nginx, mut certs) = (Vec::new(), Vec::new());
    for vps in &cx.services.config.fleet {
        let (n, c) = vps_findings(cx, vps, domain).await?;
        nginx.extend(n);
        certs.extend(c);
    }
    Ok(Findings {
        domain: domain.clone(),
        vps: cx.services.config.vps_names(),
        repo,
        nginx,
        certs,
    })
}

/// What an onboarding of one slug may do with a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nothing serves it and nobody has it on record: the onboarding creates the site.
    Free,
    /// On record for this slug: a resumed or re-run onboarding of the same tenant.
    Ours(SiteRecord),
    /// Served, or on record for another slug: not this onboarding's without an adoption.
    Taken,
}

/// Decides the claim from the bot's record and what was found.
pub fn claim(slug: &Slug, record: Option<&SiteRecord>, findings: &Findings) -> Claim {
    match record {
        Some(r) if r.slug == slug.as_str() => Claim::Ours(r.clone()),
        Some(_) => Claim::Taken,
        None if findings.is_empty() => Claim::Free,
        None => Claim::Taken,
    }
}

/// The bot's record of `domain`.
pub async fn record(
    cx: &StepContext,
    domain: &DomainName,
) -> Result<Option<SiteRecord>, StepError> {
    Ok(sites::get(cx.state_db()?, domain.as_str()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    const COCOTTE: &str = "domain: cocotte.com\nfeature: agency-site\naliases:\n  - www.cocotte.com\ndeploy_state:\n  held_back: false\n";

    #[test]
    fn a_repo_folder_serves_a_domain_by_name_or_by_its_services_yaml() {
        let site = repo_match(&d("cocotte.com"), "cocotte.com", Some(COCOTTE)).unwrap();
        let facts = site.services.unwrap();
        assert_eq!(facts.domain.as_deref(), Some("cocotte.com"));
        assert_eq!(facts.feature.as_deref(), Some("agency-site"));
        assert_eq!(facts.held_back, Some(false));
        // Another case, the www folder, or a folder of another name whose services.yaml
        // names the domain or has it as an alias.
        assert!(repo_match(&d("cocotte.com"), "Cocotte.COM", None).is_some());
        assert!(repo_match(&d("cocotte.com"), "www.cocotte.com", None).is_some());
        assert!(repo_match(&d("cocotte.com"), "cocotte-shop", Some(COCOTTE)).is_some());
        let alias = "domain: cocotte.fr\naliases:\n  - COCOTTE.com\n";
        assert!(repo_match(&d("cocotte.com"), "cocotte.fr", Some(alias)).is_some());
        // Folders that are not the domain's.
        assert!(repo_match(&d("cocotte.com"), "quinn.www", None).is_none());
        assert!(repo_match(&d("cocotte.com"), "_template", None).is_none());
        assert!(repo_match(&d("cocotte.com"), "shop.cocotte.com", None).is_none());
        assert!(repo_match(&d("cocotte.com"), "quinn.com", Some("not: [yaml")).is_none());
    }

    #[test]
    fn certbot_lineages() {
        assert!(lineage_of("cocotte.com", &d("cocotte.com")));
        assert!(lineage_of("cocotte.com-0001", &d("cocotte.com")));
        assert!(lineage_of("www.cocotte.com", &d("cocotte.com")));
        assert!(!lineage_of("cocotte.com-1", &d("cocotte.com")));
        assert!(!lineage_of("README", &d("cocotte.com")));
        assert!(!lineage_of("notcocotte.com", &d("cocotte.com")));
    }

    #[test]
    fn a_claim_follows_the_record_first() {
        let slug = Slug::parse("merche").unwrap();
        let empty = Findings {
            domain: d("merche.com"),
            vps: "vps-0".into(),
            repo: vec![],
            nginx: vec![],
            certs: vec![],
        };
        let found = Findings {
            nginx: vec![(
                "vps-0".into(),
                "/etc/nginx/sites-available/merche.com".into(),
            )],
            ..empty.clone()
        };
        let rec = |slug: &str| SiteRecord {
            domain: "merche.com".into(),
            slug: slug.into(),
            vps: "vps-0".into(),
            run_id: uuid::Uuid::nil(),
            how: sites::SiteOrigin::Created,
            adopted_from: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        assert_eq!(claim(&slug, None, &empty), Claim::Free);
        assert_eq!(claim(&slug, None, &found), Claim::Taken);
        assert!(matches!(
            claim(&slug, Some(&rec("merche")), &found),
            Claim::Ours(_)
        ));
        assert_eq!(claim(&slug, Some(&rec("other")), &empty), Claim::Taken);
    }
}
