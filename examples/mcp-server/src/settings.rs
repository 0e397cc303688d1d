//! The server's settings, from the environment.

use std::net::SocketAddr;

use crate::{Error, MCP_PATH};

/// Where the server listens, how clients reach it, and whose tokens it accepts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The authorization server's issuer identifier (`ISSUER`): its keys are found through
    /// its discovery document, its tokens' `iss` must equal it.
    pub issuer: String,
    /// The URL clients reach the server at (`PUBLIC_URL`, default `http://<BIND>`), without
    /// the MCP path: the resource is `<PUBLIC_URL>/mcp`.
    pub public_url: String,
    /// The address to listen on (`BIND`, default `127.0.0.1:8003`).
    pub bind: SocketAddr,
}

impl Settings {
    /// From `ISSUER` (required), `PUBLIC_URL` and `BIND`.
    ///
    /// # Errors
    /// `ISSUER` missing, or `BIND` not an `ip:port`.
    pub fn from_env() -> Result<Settings, Error> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let issuer = var("ISSUER").ok_or("environment variable ISSUER is required")?;
        let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:8003".to_owned());
        let bind: SocketAddr = bind
            .parse()
            .map_err(|e| format!("BIND {bind:?} is not an ip:port: {e}"))?;
        let public_url = var("PUBLIC_URL").unwrap_or_else(|| format!("http://{bind}"));
        Ok(Settings {
            issuer,
            public_url,
            bind,
        })
    }

    /// The resource identifier: the public URL of the MCP endpoint (the `aud` its tokens
    /// carry, RFC 8707).
    #[must_use]
    pub fn resource_url(&self) -> String {
        format!("{}{MCP_PATH}", self.public_url.trim_end_matches('/'))
    }

    /// The `Host` values rmcp accepts: the loopback names and the public URL's authority.
    #[must_use]
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let authority = self
            .public_url
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()));
        hosts.extend(authority);
        hosts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(public_url: &str) -> Settings {
        Settings {
            issuer: "http://127.0.0.1:8000".to_owned(),
            public_url: public_url.to_owned(),
            bind: "127.0.0.1:8003".parse().expect("addr"),
        }
    }

    #[test]
    fn the_resource_is_the_public_url_of_the_mcp_endpoint() {
        assert_eq!(
            settings("https://mcp.example/").resource_url(),
            "https://mcp.example/mcp"
        );
        assert_eq!(
            settings("https://mcp.example/tenant").resource_url(),
            "https://mcp.example/tenant/mcp"
        );
    }

    #[test]
    fn rmcp_accepts_loopback_and_the_public_host_only() {
        assert_eq!(
            settings("https://mcp.example:8443").allowed_hosts(),
            ["localhost", "127.0.0.1", "::1", "mcp.example:8443"]
        );
        // Never an empty list: rmcp would take it as "any host".
        assert_eq!(
            settings("not a url").allowed_hosts(),
            ["localhost", "127.0.0.1", "::1"]
        );
    }
}
