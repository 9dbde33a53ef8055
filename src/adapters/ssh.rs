//! The VPS over SSH with the openssh crate: one multiplexed master per VPS, host keys checked
//! against the configured known_hosts, key-only authentication (BatchMode: never a prompt).

use openssh::{KnownHosts, Session, SessionBuilder};

use crate::config::VpsConfig;

/// Opens the master connection to the VPS.
pub async fn connect(vps: &VpsConfig) -> anyhow::Result<Session> {
    let mut b = SessionBuilder::default();
    if let Some(cfg) = &vps.ssh_config {
        b.config_file(cfg);
    }
    b.user_known_hosts_file(&vps.known_hosts)
        .known_hosts_check(KnownHosts::Strict)
        .connect_timeout(vps.connect_timeout);
    b.connect_mux(&vps.ssh_host)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open SSH to {} ({}): {e}", vps.name, vps.ssh_host))
}

/// `config check`: connect and run `true`.
pub async fn check(vps: &VpsConfig) -> anyhow::Result<String> {
    let session = connect(vps).await?;
    let status = session.command("true").status().await?;
    session.close().await.ok();
    anyhow::ensure!(status.success(), "`true` exited with {status}");
    Ok(format!("{} ({}) runs commands", vps.name, vps.ssh_host))
}

/// What a remote command printed and how it ended.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args...` on the VPS. Each argument is escaped for the remote shell by the
/// openssh crate (`arg`, never `raw_arg`), so no value can become shell syntax.
pub async fn run(
    session: &Session,
    program: &str,
    args: &[&str],
    timeout: std::time::Duration,
) -> Result<RemoteOutput, super::Error> {
    use super::Error;
    let mut cmd = session.command(program);
    for a in args {
        cmd.arg(a);
    }
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            Error::Transient(anyhow::anyhow!(
                "`{program}` on the VPS timed out after {}s",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| {
            Error::Transient(anyhow::anyhow!(
                "SSH to the VPS failed running `{program}`: {e}"
            ))
        })?;
    Ok(RemoteOutput {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
