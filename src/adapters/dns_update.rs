//! Writing a Provider's records into a zone the bot may change (`dns.update`): RFC 2136
//! updates, built, signed (TSIG) and checked by hickory-proto, sent over TCP to the zone's
//! primary. Each update carries prerequisites made from what the primary held when the plan
//! was read, so a record that changed since is never overwritten: the server refuses the whole
//! update instead.
//!
//! - [`read`]: the RRsets the primary holds now, exactly (rdata, TTL);
//! - [`plan`]: pure: from a check of the primary and those RRsets, what to add, what it
//!   replaces, and the prerequisites; [`ZoneUpdate::render`] is the text a person approves;
//! - [`send`]: one signed update, and the server's answer in words.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{DnsUpdateZone, TsigAlgorithm, TsigKey};
use crate::dnscheck::{Expected, Report, Rtype, Status, Want};
use crate::dnscheck::{ZoneLine, zone_file_lines};

/// What the primary holds: (owner name, type) → its RRset, exactly as served (empty: none).
pub type Held = BTreeMap<(String, Rtype), Vec<Record>>;

/// How an update failed; the step branches on the kind.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A prerequisite no longer holds: a record changed since it was read. Nothing was written.
    #[error("{0}")]
    PrerequisiteFailed(String),
    /// The server refused (NOTAUTH, REFUSED, a bad key, ...): retrying will not help.
    #[error("{0}")]
    Refused(String),
    /// Could not talk to the server, or no answer in time.
    #[error("{0:#}")]
    Transient(anyhow::Error),
}

use super::dns::record_type as rtype;

fn fqdn(name: &str) -> Result<Name, String> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("`{name}` is not a DNS name: {e}"))
}

/// Reads each (name, type) from the primary: the records owned by that name (a CNAME the
/// server follows is not counted as the name's own record of another type).
pub async fn read(
    server: SocketAddr,
    names: &[(String, Rtype)],
    timeout: Duration,
) -> Result<Held, UpdateError> {
    let resolver = super::dns::resolver_for(server, timeout).map_err(UpdateError::Transient)?;
    let mut held = Held::new();
    for (name, t) in names {
        let owner = fqdn(name).map_err(UpdateError::Refused)?;
        let records = match resolver.lookup(owner.clone(), rtype(*t)).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter(|r| {
                    r.record_type() == rtype(*t) && r.name.to_lowercase() == owner.to_lowercase()
                })
                .cloned()
                .collect(),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
            Err(e) => {
                return Err(UpdateError::Transient(anyhow::anyhow!(
                    "reading {name} {t} from the primary {server}: {e}"
                )));
            }
        };
        held.insert((name.clone(), *t), records);
    }
    Ok(held)
}

/// The (name, type) pairs [`plan`] needs read for `expected`.
pub fn names_to_read(expected: &[Expected]) -> Vec<(String, Rtype)> {
    let mut out: Vec<(String, Rtype)> = expected
        .iter()
        .flat_map(|e| [(e.name.clone(), e.rtype), (e.name.clone(), Rtype::CNAME)])
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One update of one zone: the prerequisites (each RRset exactly as read; none = must not
/// exist), the records deleted (those replaced) and the records added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneUpdate {
    pub zone: String,
    pub server: SocketAddr,
    pub key_name: String,
    pub algorithm: TsigAlgorithm,
    pub prerequisites: Vec<((String, Rtype), Vec<Record>)>,
    pub delete: Vec<Record>,
    pub add: Vec<Record>,
    /// What the bot cannot write (a DKIM key only the mail server knows): left to a person.
    pub left: Vec<String>,
}

impl ZoneUpdate {
    /// Whether there is anything to send.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty()
    }

    /// The plan a person approves: the records added (as zone-file lines, with their TTLs),
    /// those they replace, and the state the update requires. Never the key's secret.
    pub fn render(&self) -> String {
        let mut s = format!(
            "RFC 2136 update of zone {} at {}, signed with TSIG key {} ({}):\n",
            self.zone, self.server, self.key_name, self.algorithm
        );
        // Added and deleted records in one set of columns, as the dns-check snippet shows them.
        let mut lines = zone_file_lines(
            &self
                .add
                .iter()
                .chain(&self.delete)
                .map(zone_line)
                .collect::<Vec<_>>(),
        );
        let deleted = lines.split_off(self.add.len());
        s.push_str("add:\n");
        for l in &lines {
            let _ = writeln!(s, "  {l}");
        }
        if !deleted.is_empty() {
            s.push_str("replacing (deleted):\n");
            for l in &deleted {
                let _ = writeln!(s, "  {l}");
            }
        }
        s.push_str("only if the zone still holds exactly (else nothing is written):\n");
        for ((name, t), records) in &self.prerequisites {
            let now = if records.is_empty() {
                "no record".to_owned()
            } else {
                records
                    .iter()
                    .map(|r| rdata_text(&r.data))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "  {name}. {t}: {now}");
        }
        for l in &self.left {
            let _ = writeln!(s, "not written by the bot: {l}");
        }
        s
    }
}

/// A record as a zone-file line.
fn zone_line(r: &Record) -> ZoneLine {
    ZoneLine {
        name: r.name.to_ascii(),
        ttl: r.ttl,
        rtype: r.record_type().to_string(),
        value: rdata_text(&r.data),
    }
}

/// A record's data in zone-file syntax (TXT strings quoted, as in the zone snippet).
pub fn rdata_text(data: &RData) -> String {
    match data {
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| {
                format!(
                    "\"{}\"",
                    String::from_utf8_lossy(s)
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A TXT value as strings of at most 255 bytes (split on character boundaries).
fn txt_strings(v: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for c in v.chars() {
        if out.last().is_some_and(|s| s.len() + c.len_utf8() > 255) {
            out.push(String::new());
        }
        out.last_mut().expect("never empty").push(c);
    }
    out
}

/// The record that makes `e` hold with `value`.
fn record_for(e: &Expected, value: &str, ttl: u32) -> Result<Record, String> {
    let name = fqdn(&e.name)?;
    let bad = |what: &str| format!("{} {}: `{value}` is not {what}", e.name, e.rtype);
    let data = match e.rtype {
        Rtype::A => RData::A(A(value.parse().map_err(|_| bad("an IPv4 address"))?)),
        Rtype::AAAA => RData::AAAA(AAAA(value.parse().map_err(|_| bad("an IPv6 address"))?)),
        Rtype::MX => {
            let (pref, host) = value
                .split_once(' ')
                .ok_or_else(|| bad("`preference host`"))?;
            RData::MX(MX::new(
                pref.parse().map_err(|_| bad("`preference host`"))?,
                fqdn(host)?,
            ))
        }
        Rtype::TXT => RData::TXT(TXT::new(txt_strings(value))),
        Rtype::CNAME => RData::CNAME(CNAME(fqdn(value)?)),
    };
    Ok(Record::from_rdata(name, ttl, data))
}

/// What to write so that every record of `report` (a check of the zone's primary alone) holds:
/// each record missing or wrong there is added with `ttl`; the RRset it replaces is deleted;
/// every RRset read for it becomes a prerequisite. A name that is a CNAME keeps it, except
/// for www, where an A record replaces a CNAME pointing elsewhere. Pure.
pub fn plan(
    zone: &DnsUpdateZone,
    report: &Report,
    held: &Held,
    ttl: u32,
) -> Result<ZoneUpdate, String> {
    let mut up = ZoneUpdate {
        zone: zone.zone.clone(),
        server: zone.server,
        key_name: zone.key.name.clone(),
        algorithm: zone.key.algorithm,
        prerequisites: Vec::new(),
        delete: Vec::new(),
        add: Vec::new(),
        left: Vec::new(),
    };
    let get = |name: &str, t: Rtype| held.get(&(name.to_owned(), t)).cloned().unwrap_or_default();
    let require = |up: &mut ZoneUpdate, name: &str, t: Rtype| {
        let key = (name.to_owned(), t);
        if !up.prerequisites.iter().any(|(k, _)| *k == key) {
            up.prerequisites.push((key, get(name, t)));
        }
    };
    for r in &report.records {
        if !matches!(r.status, Status::Missing | Status::WrongValue) {
            continue;
        }
        let e = &r.expected;
        let cname = get(&e.name, Rtype::CNAME);
        match &e.want {
            Want::Values(values) => {
                if !cname.is_empty() && e.rtype != Rtype::CNAME {
                    // A CNAME owns the whole name: writing beside it would break it.
                    up.left.push(format!(
                        "{} {} (the name is a CNAME: change it by hand)",
                        e.name, e.rtype
                    ));
                    continue;
                }
                require(&mut up, &e.name, e.rtype);
                require(&mut up, &e.name, Rtype::CNAME);
                up.delete.extend(get(&e.name, e.rtype));
                for v in values {
                    up.add.push(record_for(e, v, ttl)?);
                }
            }
            Want::AOrCname { ip, .. } => {
                require(&mut up, &e.name, Rtype::A);
                require(&mut up, &e.name, Rtype::CNAME);
                up.delete.extend(get(&e.name, Rtype::A));
                up.delete.extend(cname);
                up.add.push(record_for(e, ip, ttl)?);
            }
            Want::TxtTag { tag, suggest } => {
                if *tag == "v=DKIM1" {
                    // The key is the mail server's: the bot cannot know it.
                    up.left.push(format!(
                        "{} TXT (the DKIM key comes from the mail server)",
                        e.name
                    ));
                    continue;
                }
                require(&mut up, &e.name, Rtype::TXT);
                up.delete
                    .extend(get(&e.name, Rtype::TXT).into_iter().filter(|rec| {
                        let text = match &rec.data {
                            RData::TXT(t) => t
                                .txt_data
                                .iter()
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect::<String>(),
                            _ => String::new(),
                        };
                        text.trim_start()
                            .to_ascii_lowercase()
                            .starts_with(&tag.to_ascii_lowercase())
                    }));
                up.add.push(record_for(e, suggest, ttl)?);
            }
        }
    }
    Ok(up)
}

/// The update as a message (unsigned): zone section, prerequisites, deletions, additions.
pub fn message(up: &ZoneUpdate) -> Result<Message, String> {
    let id = u16::from_be_bytes(
        uuid::Uuid::new_v4().as_bytes()[..2]
            .try_into()
            .expect("two bytes"),
    );
    let mut msg = Message::new(id, MessageType::Query, OpCode::Update);
    let mut zone = Query::new();
    zone.set_name(fqdn(&up.zone)?)
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    msg.add_zone(zone);
    for ((name, t), records) in &up.prerequisites {
        if records.is_empty() {
            // RFC 2136 2.4.3: RRset does not exist (class NONE, no rdata).
            let mut r = Record::update0(fqdn(name)?, 0, rtype(*t));
            r.dns_class = DNSClass::NONE;
            msg.add_pre_requisite(r);
        } else {
            // 2.4.2: RRset exists with exactly these records (TTL 0).
            for rec in records {
                let mut r = rec.clone();
                r.ttl = 0;
                r.dns_class = DNSClass::IN;
                msg.add_pre_requisite(r);
            }
        }
    }
    for rec in &up.delete {
        // 2.5.4: delete an RR from an RRset (class NONE, TTL 0).
        let mut r = rec.clone();
        r.ttl = 0;
        r.dns_class = DNSClass::NONE;
        msg.add_update(r);
    }
    for rec in &up.add {
        msg.add_update(rec.clone());
    }
    Ok(msg)
}

fn signer(key: &TsigKey) -> Result<TSigner, UpdateError> {
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha256 => HickoryAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => HickoryAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => HickoryAlgorithm::HmacSha512,
    };
    let name = fqdn(&key.name).map_err(UpdateError::Refused)?;
    // 300 s of clock difference allowed, as nsupdate and knsupdate do.
    TSigner::new(key.secret_bytes(), algorithm, name, 300)
        .map_err(|e| UpdateError::Refused(format!("TSIG key {}: {e}", key.name)))
}

/// Sends `up` to the zone's primary, signed with `key`, and reads the answer: `Ok` only for a
/// NOERROR answer signed with the same key.
pub async fn send(up: &ZoneUpdate, key: &TsigKey, timeout: Duration) -> Result<(), UpdateError> {
    let mut msg = message(up).map_err(UpdateError::Refused)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| UpdateError::Transient(e.into()))?
        .as_secs();
    let mut verifier = msg
        .finalize(&signer(key)?, now)
        .map_err(|e| UpdateError::Refused(format!("signing the update: {e}")))?;
    let bytes = msg
        .to_vec()
        .map_err(|e| UpdateError::Refused(format!("encoding the update: {e}")))?;
    let answer = tokio::time::timeout(timeout, exchange(up.server, &bytes))
        .await
        .map_err(|_| {
            UpdateError::Transient(anyhow::anyhow!(
                "no answer from {} within {timeout:?}",
                up.server
            ))
        })?
        .map_err(|e| UpdateError::Transient(anyhow::anyhow!("{}: {e}", up.server)))?;
    let response = Message::from_vec(&answer).map_err(|e| {
        UpdateError::Refused(format!("{} answered something not DNS: {e}", up.server))
    })?;
    if response.id != msg.id {
        return Err(UpdateError::Refused(format!(
            "{} answered another message (id {}, sent {})",
            up.server, response.id, msg.id
        )));
    }
    let tsig_error = response.signature().and_then(|s| s.data.error);
    let signed = response.signature().is_some_and(|s| !s.data.mac.is_empty());
    let code = response.response_code;
    if code == ResponseCode::NoError {
        let verified = signed && verifier.as_mut().is_some_and(|v| v.verify(&answer).is_ok());
        if !verified {
            return Err(UpdateError::Refused(format!(
                "{} answered NOERROR without a valid signature of key {}: the update's outcome is not proven; check the zone",
                up.server, key.name
            )));
        }
        return Ok(());
    }
    Err(answer_error(&up.zone, &key.name, code, tsig_error))
}

/// The server's refusal in words.
fn answer_error(zone: &str, key: &str, code: ResponseCode, tsig: Option<TsigError>) -> UpdateError {
    let refused = |s: String| {
        UpdateError::Refused(format!("the update was refused: {s}; nothing was written"))
    };
    match (code, tsig) {
        (_, Some(TsigError::BadKey)) => refused(format!(
            "NOTAUTH (BADKEY): the server does not know the TSIG key {key}"
        )),
        (_, Some(TsigError::BadSig)) => refused(format!(
            "NOTAUTH (BADSIG): the signature does not verify: the secret of key {key} is not the server's"
        )),
        (_, Some(TsigError::BadTime)) => refused(
            "NOTAUTH (BADTIME): the server's clock and the bot's differ by more than 300 s".into(),
        ),
        (_, Some(TsigError::BadTrunc)) | (_, Some(TsigError::Unknown(_))) => {
            refused(format!("NOTAUTH: TSIG error {:?}", tsig.expect("matched")))
        }
        (ResponseCode::NotAuth, None) => refused(format!(
            "NOTAUTH: the server is not authoritative for {zone}, or key {key} may not update it"
        )),
        (ResponseCode::Refused, None) => refused(format!(
            "REFUSED: the server does not let key {key} update {zone} (its ACL)"
        )),
        (ResponseCode::NotZone, None) => refused(format!("NOTZONE: a record is not inside {zone}")),
        (
            ResponseCode::NXRRSet
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::YXDomain,
            None,
        ) => UpdateError::PrerequisiteFailed(format!(
            "the zone {zone} changed since the plan was read ({}: {}): the update's prerequisite no longer holds and nothing was written",
            code.to_str(),
            code
        )),
        (ResponseCode::ServFail, None) => UpdateError::Transient(anyhow::anyhow!(
            "SERVFAIL: the server could not apply the update to {zone}"
        )),
        (other, None) => refused(format!("{other}")),
    }
}

/// One DNS message over TCP (RFC 1035 4.2.2: each message with a two-byte length).
async fn exchange(server: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tcp = tokio::net::TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("update larger than 64 KiB"))?;
    tcp.write_all(&len.to_be_bytes()).await?;
    tcp.write_all(bytes).await?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await?;
    let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut answer).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TsigKey;
    use crate::dnscheck::{MailPattern, RecordReport, expected_records};
    use crate::domain::{DomainName, MailPlan};

    fn zone() -> DnsUpdateZone {
        DnsUpdateZone {
            zone: "merche.com".into(),
            server: "127.0.0.1:53".parse().unwrap(),
            key: TsigKey {
                name: "onboard-bot".into(),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQ=".to_owned().into(),
            },
        }
    }

    fn report(statuses: &[Status], mail: MailPlan) -> Report {
        let d = DomainName::parse("merche.com").unwrap();
        let expected = expected_records(
            &d,
            "203.0.113.7".parse().unwrap(),
            None,
            mail,
            &MailPattern::default(),
        );
        Report {
            domain: "merche.com".into(),
            records: expected
                .into_iter()
                .zip(statuses.iter().chain(std::iter::repeat(&Status::Missing)))
                .map(|(expected, status)| RecordReport {
                    expected,
                    status: *status,
                    found: vec![],
                    ttl: None,
                    problems: vec![],
                })
                .collect(),
            diagnoses: vec![],
            snippet: vec![],
            remove: vec![],
        }
    }

    fn a(name: &str, ip: &str) -> Record {
        Record::from_rdata(fqdn(name).unwrap(), 60, RData::A(A(ip.parse().unwrap())))
    }

    #[test]
    fn the_plan_adds_what_is_missing_replaces_what_is_wrong_and_requires_what_it_read() {
        let mut held = Held::new();
        held.insert(
            ("merche.com".into(), Rtype::A),
            vec![a("merche.com", "10.1.2.3")],
        );
        let r = report(&[Status::WrongValue, Status::Missing], MailPlan::Mailbox);
        let up = plan(&zone(), &r, &held, 300).unwrap();
        insta::assert_snapshot!(up.render());
        let msg = message(&up).unwrap();
        assert_eq!(msg.op_code, OpCode::Update);
        // Prerequisites: apex A exactly 10.1.2.3, and "does not exist" for each other RRset.
        assert!(
            msg.prerequisites()
                .iter()
                .any(|p| p.dns_class == DNSClass::IN
                    && p.ttl == 0
                    && p.data == RData::A(A("10.1.2.3".parse().unwrap())))
        );
        assert!(
            msg.prerequisites()
                .iter()
                .any(|p| p.dns_class == DNSClass::NONE && p.record_type() == RecordType::CNAME)
        );
        // The wrong A is deleted (class NONE), the new one added (class IN, TTL 300).
        assert!(
            msg.updates().iter().any(|u| u.dns_class == DNSClass::NONE
                && u.data == RData::A(A("10.1.2.3".parse().unwrap())))
        );
        assert!(msg.updates().iter().any(|u| u.dns_class == DNSClass::IN
            && u.ttl == 300
            && u.data == RData::A(A("203.0.113.7".parse().unwrap()))));
        assert!(!up.render().contains("c2VjcmV0"), "never the secret");
    }

    #[test]
    fn records_that_hold_are_left_alone_and_a_cname_owner_is_not_overwritten() {
        let r = report(&[Status::Ok, Status::Ok], MailPlan::None);
        assert!(plan(&zone(), &r, &Held::new(), 300).unwrap().is_empty());

        let mut r = report(&[Status::Ok, Status::Ok], MailPlan::None);
        r.records.push(RecordReport {
            expected: Expected {
                name: "www.merche.com".into(),
                rtype: Rtype::AAAA,
                want: Want::Values(vec!["2001:db8::1".into()]),
                purpose: "IPv6",
            },
            status: Status::Missing,
            found: vec![],
            ttl: None,
            problems: vec![],
        });
        let mut held = Held::new();
        held.insert(
            ("www.merche.com".into(), Rtype::CNAME),
            vec![Record::from_rdata(
                fqdn("www.merche.com").unwrap(),
                60,
                RData::CNAME(CNAME(fqdn("merche.com").unwrap())),
            )],
        );
        let up = plan(&zone(), &r, &held, 300).unwrap();
        assert!(up.is_empty());
        assert!(up.left[0].contains("CNAME"), "{:?}", up.left);
    }

    #[test]
    fn refusals_are_told_in_words_and_a_failed_prerequisite_is_its_own_kind() {
        let e = answer_error("z.com", "k", ResponseCode::NotAuth, Some(TsigError::BadKey));
        assert!(
            matches!(&e, UpdateError::Refused(m) if m.contains("NOTAUTH (BADKEY)")),
            "{e}"
        );
        let e = answer_error("z.com", "k", ResponseCode::NotAuth, Some(TsigError::BadSig));
        assert!(
            matches!(&e, UpdateError::Refused(m) if m.contains("BADSIG")),
            "{e}"
        );
        let e = answer_error("z.com", "k", ResponseCode::Refused, None);
        assert!(
            matches!(&e, UpdateError::Refused(m) if m.contains("REFUSED")),
            "{e}"
        );
        for code in [ResponseCode::NXRRSet, ResponseCode::YXRRSet] {
            assert!(matches!(
                answer_error("z.com", "k", code, None),
                UpdateError::PrerequisiteFailed(_)
            ));
        }
    }

    #[test]
    fn long_txt_values_are_split_into_255_byte_strings() {
        let v = "x".repeat(600);
        let parts = txt_strings(&v);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
    }
}
